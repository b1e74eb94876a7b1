use super::*;
use crate::model::{Labels, LogRecord, Sample, SampleValue};
use datafusion::arrow::array::Float64Array;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn config(dir: &Path) -> StorageConfig {
    StorageConfig {
        data_dir: dir.to_path_buf(),
        compaction_min_files: 2,
        ..StorageConfig::default()
    }
}

fn sample(name: &str, job: &str, ts: i64, v: f64) -> Sample {
    Sample {
        labels: Labels::from_pairs([("__name__", name), ("job", job)]),
        timestamp_ms: ts,
        value: SampleValue::Float(v),
        exemplars: vec![],
    }
}

fn values(snapshot: &Snapshot, storage: &Storage) -> Vec<f64> {
    let mut out = Vec::new();
    let mut batches = snapshot.batches.clone();
    for f in &snapshot.files {
        let data = std::fs::read(storage.inner.files.local_path(&f.path)).expect("read");
        batches.extend(decode_parquet(bytes::Bytes::from(data), None, None).expect("decode"));
    }
    for b in batches {
        let col = b
            .column_by_name("value")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>().cloned())
            .expect("value column");
        out.extend(col.iter().flatten());
    }
    out.sort_by(f64::total_cmp);
    out
}

fn write(storage: &Storage, tenant: &TenantId, samples: Vec<Sample>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(storage.write_metrics(
        tenant,
        MetricsWrite {
            samples,
            metadata: vec![],
        },
    ))
    .expect("write");
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt")
        .block_on(f)
}

#[test]
fn writes_are_readable_at_once_and_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    {
        let s = Storage::open(config(dir.path())).expect("open");
        write(
            &s,
            &t,
            vec![sample("up", "a", 1000, 1.0), sample("up", "b", 1000, 2.0)],
        );
        let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
        assert_eq!(values(&snap, &s), vec![1.0, 2.0]);
    }
    // No flush happened: the data comes back from the WAL.
    let s = Storage::open(config(dir.path())).expect("reopen");
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(values(&snap, &s), vec![1.0, 2.0]);
    let series = s.select_labels(&t, Signal::Metrics, &[]);
    assert_eq!(series.len(), 2);
}

#[test]
fn flush_moves_rows_to_files_without_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    {
        let s = Storage::open(config(dir.path())).expect("open");
        write(&s, &t, vec![sample("up", "a", 1000, 1.0)]);
        block(s.flush()).expect("flush");
        write(&s, &t, vec![sample("up", "a", 2000, 3.0)]);
        let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
        assert_eq!(snap.files.len(), 1);
        assert_eq!(values(&snap, &s), vec![1.0, 3.0]);
    }
    let s = Storage::open(config(dir.path())).expect("reopen");
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(values(&snap, &s), vec![1.0, 3.0]);
    // The label index is rebuilt from files too.
    assert_eq!(s.select_labels(&t, Signal::Metrics, &[]).len(), 1);
}

#[test]
fn reopen_rebuilds_the_label_index_from_each_series_first_row() {
    // 300 series x 50 rows in one file with a series directory: opening reads one row per
    // series, and every series must come back with its labels.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    {
        let s = Storage::open(config(dir.path())).expect("open");
        let mut samples = Vec::new();
        for k in 0..300 {
            for i in 0..50 {
                samples.push(sample("req", &format!("job{k:03}"), 1000 * i, k as f64));
            }
        }
        write(&s, &t, samples);
        block(s.flush()).expect("flush");
        let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
        assert_eq!(snap.files.len(), 1);
        let path = s.inner.files.local_path(&snap.files[0].path);
        let file = std::fs::File::open(path).expect("file");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("footer");
        let dir_meta = builder.metadata().file_metadata();
        assert!(
            SeriesRuns::from_directory(dir_meta)
                .expect("a directory that fits")
                .is_some(),
            "no series directory"
        );
    }
    let s = Storage::open(config(dir.path())).expect("reopen");
    let mut jobs: Vec<String> = s
        .select_labels(&t, Signal::Metrics, &[])
        .iter()
        .map(|(_, l)| {
            assert_eq!(l.get("__name__"), Some("req"));
            l.get("job").expect("job").to_string()
        })
        .collect();
    jobs.sort();
    let want: Vec<String> = (0..300).map(|k| format!("job{k:03}")).collect();
    assert_eq!(jobs, want);
    let one = LabelMatcher {
        name: "job".into(),
        op: crate::index::MatchOp::Equal("job123".into()),
    };
    assert_eq!(s.select_labels(&t, Signal::Metrics, &[one]).len(), 1);
}

#[test]
fn tenants_are_separate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Storage::open(config(dir.path())).expect("open");
    let a = TenantId::new("a").expect("tenant");
    let b = TenantId::new("b").expect("tenant");
    write(&s, &a, vec![sample("up", "x", 1000, 1.0)]);
    write(&s, &b, vec![sample("up", "x", 1000, 2.0)]);
    block(s.flush()).expect("flush");
    assert_eq!(
        values(&s.snapshot(&a, Signal::Metrics, i64::MIN, i64::MAX), &s),
        vec![1.0]
    );
    assert_eq!(
        values(&s.snapshot(&b, Signal::Metrics, i64::MIN, i64::MAX), &s),
        vec![2.0]
    );
}

#[test]
fn compaction_merges_and_retention_drops_old_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    for i in 0..3 {
        write(&s, &t, vec![sample("up", "a", 1000 + i, i as f64)]);
        block(s.flush()).expect("flush");
    }
    assert_eq!(
        s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX)
            .files
            .len(),
        3
    );
    assert_eq!(block(s.compact()).expect("compact"), 1);
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(snap.files.len(), 1);
    assert_eq!(values(&snap, &s), vec![0.0, 1.0, 2.0]);
    // Samples from 1970 are far past the 30-day default.
    assert_eq!(block(s.apply_retention(now_ns())).expect("retention"), 1);
    assert!(
        s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX)
            .files
            .is_empty()
    );
}

#[test]
fn overload_is_refused_not_buffered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.flush_bytes = 1;
    c.max_pending_bytes = 1;
    let s = Storage::open(c).expect("open");
    let t = TenantId::default_tenant();
    write(&s, &t, vec![sample("up", "a", 1000, 1.0)]);
    let err = block(s.write_metrics(
        &t,
        MetricsWrite {
            samples: vec![sample("up", "a", 2000, 1.0)],
            metadata: vec![],
        },
    ));
    assert!(matches!(err, Err(Error::Overloaded { .. })));
}

#[test]
fn day_partitions_are_utc_days() {
    assert_eq!(day_of(0), "1970-01-01");
    assert_eq!(day_of(1_709_164_800_000_000_000), "2024-02-29");
    assert_eq!(day_of(-1), "1969-12-31");
}

/// `(metric_name, job label, value)` of every row of a snapshot, memtable and files.
fn named_rows(snapshot: &Snapshot, storage: &Storage) -> Vec<(String, String, f64)> {
    let mut batches = snapshot.batches.clone();
    for f in &snapshot.files {
        let data = std::fs::read(storage.inner.files.local_path(&f.path)).expect("read");
        batches.extend(decode_parquet(bytes::Bytes::from(data), None, None).expect("decode"));
    }
    let mut out = Vec::new();
    for b in batches {
        let names = b
            .column_by_name("metric_name")
            .and_then(|c| c.as_string_opt::<i32>().cloned())
            .expect("metric_name");
        let maps = b
            .column_by_name("labels")
            .and_then(|c| c.as_map_opt().cloned())
            .expect("labels");
        let vals = b
            .column_by_name("value")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>().cloned())
            .expect("value");
        for row in 0..b.num_rows() {
            let labels = labels_at(&maps, row);
            assert_eq!(labels.metric_name(), names.value(row));
            out.push((
                names.value(row).to_string(),
                labels.get("job").unwrap_or("").to_string(),
                vals.value(row),
            ));
        }
    }
    out.sort_by(|a, b| a.2.total_cmp(&b.2));
    out
}

#[test]
fn memtable_metric_rows_hold_labels_once_per_series_yet_read_back_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    let samples: Vec<Sample> = (0..1000)
        .map(|i| {
            let mut smp = sample(
                "http_server_request_duration_seconds_count",
                "checkout-service-with-a-long-name",
                1000 + i,
                i as f64,
            );
            smp.labels = Labels::from_pairs([
                (
                    "__name__",
                    "http_server_request_duration_seconds_count".to_string(),
                ),
                ("job", "checkout-service-with-a-long-name".to_string()),
                ("instance", format!("pod-{}", i % 10)),
                ("http_route", "/api/v1/orders/{order_id}/items".to_string()),
            ]);
            smp
        })
        .collect();
    let full = schema::metrics_batch(&samples).expect("batch");
    write(&s, &t, samples);
    // Memory: the rows kept are a fraction of the labelled batch.
    let kept = s.pending_bytes();
    assert!(
        kept * 3 < full.get_array_memory_size() as u64,
        "memtable keeps {kept} bytes for a {} byte labelled batch",
        full.get_array_memory_size()
    );
    // SQL-style readers see the labels and names; PromQL-style ones skip them.
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    let rows = named_rows(&snap, &s);
    assert_eq!(rows.len(), 1000);
    assert!(rows.iter().all(
        |(n, j, _)| n == "http_server_request_duration_seconds_count"
            && j == "checkout-service-with-a-long-name"
    ));
    let lean = s.snapshot_by_series(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(
        lean.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        1000
    );
    // A flush writes the labels into the file, and they survive a reopen.
    block(s.flush()).expect("flush");
    drop(s);
    let s = Storage::open(config(dir.path())).expect("reopen");
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert!(snap.batches.is_empty());
    let rows = named_rows(&snap, &s);
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[7].1, "checkout-service-with-a-long-name");
    assert_eq!(rows[7].2, 7.0);
}

#[test]
fn compaction_keeps_labels_and_respects_the_row_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let mut c = config(dir.path());
    c.compaction_max_rows = 5;
    let s = Storage::open(c).expect("open");
    // Four one-row files and one four-row file in the same day.
    for i in 0..4 {
        write(
            &s,
            &t,
            vec![sample("up", &format!("job{i}"), 1000 + i, i as f64)],
        );
        block(s.flush()).expect("flush");
    }
    write(
        &s,
        &t,
        (0..4)
            .map(|i| sample("load", "big", 2000 + i, 10.0 + i as f64))
            .collect(),
    );
    block(s.flush()).expect("flush");
    assert_eq!(block(s.compact()).expect("compact"), 1);
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    // The window's eight rows pass the cap: two files, split by series range (label
    // order: the four rows of `load` first, then the four series of `up`).
    let mut rows: Vec<u64> = snap.files.iter().map(|f| f.rows).collect();
    rows.sort();
    assert_eq!(rows, vec![4, 4]);
    let named = named_rows(&snap, &s);
    assert_eq!(named.len(), 8);
    assert_eq!(named[2], ("up".to_string(), "job2".to_string(), 2.0));
    assert_eq!(named[5], ("load".to_string(), "big".to_string(), 11.0));
}

#[test]
fn day_compaction_merges_what_fits_when_the_cap_admits_fewer_than_min_files() {
    // Logs (and traces) compact by day, the smallest files as many as fit the cap.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let mut c = config(dir.path());
    c.compaction_min_files = 4;
    c.compaction_max_rows = 5;
    let s = Storage::open(c).expect("open");
    // Five two-row files: only two fit under the cap at a time, fewer than min_files.
    for i in 0..5i64 {
        let app = format!("app{i}");
        block(s.write_logs(
            &t,
            vec![
                log_record(&app, 1_000_000 + i, "a"),
                log_record(&app, 1_100_000 + i, "b"),
            ],
        ))
        .expect("write");
        block(s.flush()).expect("flush");
    }
    let files = |s: &Storage| {
        let mut rows: Vec<u64> = s
            .snapshot(&t, Signal::Logs, i64::MIN, i64::MAX)
            .files
            .iter()
            .map(|f| f.rows)
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert_eq!(files(&s), vec![2, 2, 2, 4]);
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert_eq!(files(&s), vec![2, 4, 4]);
    // Three files below the cap now, fewer than min_files: left alone.
    assert_eq!(block(s.compact()).expect("compact"), 0);
    assert_eq!(files(&s).iter().sum::<u64>(), 10);
}

#[test]
fn replaced_files_outlive_their_readers_then_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    for i in 0..2 {
        write(&s, &t, vec![sample("up", "a", 1000 + i, i as f64)]);
        block(s.flush()).expect("flush");
    }
    // A reader takes its snapshot, then compaction replaces the files it names.
    let before = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(before.files.len(), 2);
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert_eq!(values(&before, &s), vec![0.0, 1.0]);
    // Within the grace period nothing is deleted; past it (zero here) the old files go.
    assert_eq!(block(s.reap(Duration::from_secs(3600))).expect("reap"), 0);
    assert_eq!(block(s.reap(Duration::ZERO)).expect("reap"), 2);
    for f in &before.files {
        assert!(!s.inner.files.local_path(&f.path).exists());
    }
    let after = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(values(&after, &s), vec![0.0, 1.0]);
}

#[test]
fn orphan_files_are_removed_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let orphan = {
        let s = Storage::open(config(dir.path())).expect("open");
        write(&s, &t, vec![sample("up", "a", 1000, 1.0)]);
        block(s.flush()).expect("flush");
        // As if a crash came between a catalog update and the deletion it allowed.
        let kept = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX).files[0].clone();
        let orphan = s
            .inner
            .files
            .local_path(&kept.path)
            .with_file_name("9999999999999999.parquet");
        std::fs::copy(s.inner.files.local_path(&kept.path), &orphan).expect("copy");
        orphan
    };
    let s = Storage::open(config(dir.path())).expect("reopen");
    assert!(!orphan.exists());
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(values(&snap, &s), vec![1.0]);
}

#[test]
fn memtable_metric_rows_cost_their_id_time_and_value_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    let rows = 20_000;
    let samples: Vec<Sample> = (0..rows)
        .map(|i| {
            sample(
                "node_cpu_seconds_total",
                &format!("j{}", i % 500),
                1000 + i,
                i as f64,
            )
        })
        .collect();
    write(&s, &t, samples);
    // series_id, timestamp and value are 24 bytes; the emptied label columns and the
    // all-null histogram/exemplar columns share one zero buffer and cost nothing per row.
    let per_row = s.pending_bytes() as f64 / rows as f64;
    assert!(per_row <= 26.0, "{per_row} bytes per memtable row");
    let lean = s.snapshot_by_series(&t, Signal::Metrics, i64::MIN, i64::MAX);
    let b = &lean.batches[0];
    assert_eq!(b.num_rows(), rows as usize);
    let name = b
        .column_by_name("metric_name")
        .expect("name")
        .as_string::<i32>();
    assert!(name.iter().all(|n| n == Some("")));
    let hist = b.column_by_name("histogram").expect("histogram");
    assert_eq!(hist.null_count(), rows as usize);
    let labels = b.column_by_name("labels").expect("labels").as_map();
    assert!((0..b.num_rows()).all(|r| labels.value(r).is_empty()));
    // SQL readers still get every row whole.
    let full = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    let named = named_rows(&full, &s);
    assert_eq!(named.len(), rows as usize);
    assert_eq!(named[4321].1, format!("j{}", 4321 % 500));
}

#[test]
fn flush_splits_rows_by_time_window_sorted_with_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    let day_ms = 86_400_000;
    // Interleaved days and series, out of order, over two requests.
    let mut first = Vec::new();
    let mut second = Vec::new();
    for i in 0..300i64 {
        let ts = if i % 2 == 0 {
            day_ms - 1000 * (i + 1)
        } else {
            day_ms + 1000 * i
        };
        let smp = sample("up", &format!("job{}", i % 7), ts, i as f64);
        if i % 3 == 0 {
            first.push(smp)
        } else {
            second.push(smp)
        }
    }
    write(&s, &t, first);
    write(&s, &t, second);
    block(s.flush()).expect("flush");
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert!(snap.batches.is_empty());
    let mut files = snap.files.clone();
    files.sort_by_key(|f| f.partition.clone());
    let parts: Vec<(&str, u64)> = files
        .iter()
        .map(|f| (f.partition.as_str(), f.rows))
        .collect();
    // 1-hour windows (the default block duration), named by their start.
    assert_eq!(
        parts,
        vec![("1970-01-01T2300", 150), ("1970-01-02T0000", 150)]
    );
    assert_eq!(files[0].min_time_ns, (day_ms - 299_000) * 1_000_000);
    assert_eq!(files[0].max_time_ns, (day_ms - 1000) * 1_000_000);
    assert_eq!(files[1].min_time_ns, (day_ms + 1000) * 1_000_000);
    assert_eq!(files[1].max_time_ns, (day_ms + 299_000) * 1_000_000);
    for f in &files {
        let data =
            bytes::Bytes::from(std::fs::read(s.inner.files.local_path(&f.path)).expect("read"));
        // The footer names the series with histogram rows (none here), so float reads
        // can skip that column.
        let meta =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                data.clone(),
            )
            .expect("footer")
            .metadata()
            .clone();
        assert_eq!(
            crate::files::histogram_series(meta.file_metadata()),
            Some(vec![])
        );
        let batches = decode_parquet(data, None, None).expect("decode");
        let mut keys = Vec::new();
        for b in &batches {
            let ids = b
                .column_by_name("series_id")
                .expect("id")
                .as_primitive::<UInt64Type>();
            let ts = b
                .column_by_name("timestamp")
                .expect("ts")
                .as_primitive::<TimestampMillisecondType>();
            let vals = b
                .column_by_name("value")
                .expect("value")
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            let maps = b.column_by_name("labels").expect("labels").as_map();
            for r in 0..b.num_rows() {
                // Every row is in the file's window and carries its own series' labels.
                let i = vals.value(r) as i64;
                let window = ts.value(r).div_euclid(3_600_000) * 3_600_000_000_000;
                assert_eq!(window_name(window), f.partition);
                let labels = labels_at(maps, r);
                assert_eq!(labels.get("job"), Some(format!("job{}", i % 7).as_str()));
                assert_eq!(labels.series_id().0, ids.value(r));
                keys.push((labels, ts.value(r), ids.value(r)));
            }
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            keys, sorted,
            "rows of {} sorted by series labels then time",
            f.path
        );
        // The series directory names each series' rows.
        let dir = crate::files::series_directory(meta.file_metadata()).expect("directory");
        assert_eq!(dir.iter().map(|e| e.2).sum::<u64>(), keys.len() as u64);
        for (id, first, rows) in dir {
            let run = &keys[first as usize..(first + rows) as usize];
            assert!(run.iter().all(|k| k.2 == id), "{} rows of {id}", f.path);
        }
    }
    assert_eq!(
        values(&snap, &s),
        (0..300).map(|i| i as f64).collect::<Vec<_>>()
    );
}

/// Spans whose `user.id` values are all distinct: a dedicated string column written
/// without a dictionary, `DELTA_BYTE_ARRAY` encoded.
fn spans_with_user_ids(first: usize, n: usize) -> Vec<crate::model::Span> {
    (first..first + n)
        .map(|i| crate::model::Span {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: format!("{:016x}", i + 1),
            name: "op".into(),
            start_time_ns: 1_700_000_000_000_000_000 + i as i64,
            end_time_ns: 1_700_000_000_000_000_000 + i as i64 + 10,
            attributes: format!(
                r#"{{"user.id":"{}{i:05}"}}"#,
                char::from(b'a' + (i % 26) as u8)
            ),
            origin: crate::model::Origin {
                service_name: "svc".into(),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}

/// Rewrites a spans file uncompressed (its dedicated `user.id` column still
/// `DELTA_BYTE_ARRAY`), then makes the first suffix length of that column's page -1: the
/// Parquet decoder then slices out of bounds (a panic, not an error).
fn corrupt_delta_page(path: &Path, rows: usize) {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::{Compression, Encoding};
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::parquet::schema::types::ColumnPath;
    let data = bytes::Bytes::from(std::fs::read(path).expect("read"));
    let builder =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)
            .expect("footer");
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    let schema = builder.schema().clone();
    assert!(schema.index_of("attr:str:user.id").is_ok(), "{schema:?}");
    let column = ColumnPath::new(vec!["attr:str:user.id".into()]);
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_key_value_metadata(kv)
        .set_column_dictionary_enabled(column.clone(), false)
        .set_column_encoding(column, Encoding::DELTA_BYTE_ARRAY)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props)).expect("writer");
    for b in builder.build().expect("reader") {
        w.write(&b.expect("batch")).expect("write");
    }
    w.close().expect("close");
    // Prefix and suffix lengths are each a delta-bit-packed run whose header is block
    // size 128 (80 01), 4 miniblocks (04), the value count, then the first value
    // (zigzag): the second such header is the suffix lengths'.
    let mut header = vec![0x80, 0x01, 0x04];
    let mut n = rows as u64;
    while n >= 0x80 {
        header.push((n as u8) | 0x80);
        n >>= 7;
    }
    header.push(n as u8);
    let at: Vec<usize> = out
        .windows(header.len())
        .enumerate()
        .filter(|(_, w)| *w == header.as_slice())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 2, "one page of prefix and suffix lengths");
    out[at[1] + header.len()] = 0x01; // zigzag -1
    std::fs::write(path, &out).expect("write");
}

#[test]
fn compaction_quarantines_a_file_whose_pages_make_the_decoder_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    for (first, n) in [(0, 2000), (5000, 2000), (9000, 2000)] {
        block(s.write_spans(&t, spans_with_user_ids(first, n))).expect("write");
        block(s.flush()).expect("flush");
    }
    let files = s.snapshot(&t, Signal::Traces, i64::MIN, i64::MAX).files;
    assert_eq!(files.len(), 3);
    let bad = files[0].clone();
    let bad_path = s.inner.files.local_path(&bad.path);
    corrupt_delta_page(&bad_path, 2000);

    // The read is a clear error naming the corruption, not a panic.
    let data = bytes::Bytes::from(std::fs::read(&bad_path).expect("read"));
    let err = decode_parquet(data, None, None).expect_err("corrupt");
    assert!(err.is_corrupt_file(), "{err}");
    assert!(err.to_string().contains("corrupt data file"), "{err}");

    // Compaction merges the two good files and takes the bad one out of the catalog,
    // keeping it in quarantine/; the next round has nothing left to fail on.
    let before = telemetry::QUARANTINED_FILES.get();
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert!(telemetry::QUARANTINED_FILES.get() > before);
    let snap = s.snapshot(&t, Signal::Traces, i64::MIN, i64::MAX);
    assert_eq!(snap.files.len(), 1);
    assert_eq!(snap.files[0].rows, 4000);
    assert!(snap.files.iter().all(|f| f.id != bad.id));
    let kept = dir.path().join("quarantine").join(&bad.path);
    assert_eq!(
        std::fs::read(&kept).expect("quarantined copy"),
        std::fs::read(&bad_path).expect("original until reaped")
    );
    assert_eq!(block(s.compact()).expect("compact again"), 0);
    // The quarantined file survives a restart (orphan removal is under files/ only).
    drop(s);
    let s = Storage::open(config(dir.path())).expect("reopen");
    assert!(kept.exists());
    assert_eq!(
        s.snapshot(&t, Signal::Traces, i64::MIN, i64::MAX)
            .files
            .len(),
        1
    );
}

#[test]
fn a_data_directory_is_open_in_one_storage_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let first = Storage::open(config(dir.path())).expect("open");
    write(&first, &t, vec![sample("up", "a", 1000, 1.0)]);
    let err = Storage::open(config(dir.path()))
        .err()
        .expect("a second open of the same directory must fail");
    assert!(matches!(err, Error::DirectoryInUse { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("in use: another process holds its lock"),
        "{message}"
    );
    let lock = dir.path().join("lock");
    assert!(message.contains(&lock.display().to_string()), "{message}");
    // The refused open changed nothing: the first storage still answers, and once it is
    // closed the directory opens again with the acknowledged write in it.
    let snap = first.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(values(&snap, &first), vec![1.0]);
    drop(first);
    let again = Storage::open(config(dir.path())).expect("reopen once the first is closed");
    let snap = again.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(values(&snap, &again), vec![1.0]);
}

/// Overwrites a data file's footer (a torn write or a bad disk): no reader can open it.
fn corrupt_footer(path: &Path) {
    let mut data = std::fs::read(path).expect("read");
    let n = data.len();
    data[n - 8..].copy_from_slice(&[0xde; 8]);
    std::fs::write(path, &data).expect("write");
}

fn log_record(stream: &str, ts: i64, body: &str) -> LogRecord {
    LogRecord {
        timestamp_ns: ts,
        observed_timestamp_ns: ts,
        body: body.into(),
        body_type: "string".into(),
        attributes: "{}".into(),
        stream: Labels::from_pairs([("app", stream)]),
        ..LogRecord::default()
    }
}

#[test]
fn start_up_quarantines_unreadable_metrics_and_logs_files_and_serves_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    for job in ["bad", "good"] {
        write(
            &s,
            &t,
            vec![sample("up", job, 1000, 1.0), sample("up", job, 2000, 2.0)],
        );
        block(s.flush()).expect("flush");
    }
    for app in ["bad", "good"] {
        block(s.write_logs(&t, vec![log_record(app, 1_000_000, "line")])).expect("write");
        block(s.flush()).expect("flush");
    }
    // Acknowledged but not flushed: only in the WAL.
    write(&s, &t, vec![sample("up", "wal", 3000, 7.0)]);
    let bad: Vec<FileMeta> = [Signal::Metrics, Signal::Logs]
        .into_iter()
        .map(|signal| s.snapshot(&t, signal, i64::MIN, i64::MAX).files[0].clone())
        .collect();
    drop(s);
    for f in &bad {
        corrupt_footer(&dir.path().join("files").join(&f.path));
    }

    let before = telemetry::QUARANTINED_FILES.get();
    let s = Storage::open(config(dir.path())).expect("opens despite the damaged files");
    assert!(telemetry::QUARANTINED_FILES.get() >= before + 2);
    for f in &bad {
        let kept = dir.path().join("quarantine").join(&f.path);
        let mut damaged = std::fs::read(&kept).expect("kept in quarantine");
        assert_eq!(damaged.split_off(damaged.len() - 8), vec![0xde; 8]);
    }
    // The other metrics file and the WAL's samples answer; the damaged file is gone from
    // the catalog (and from files/, as files no catalog names are).
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(snap.files.len(), 1);
    assert!(snap.files.iter().all(|f| f.id != bad[0].id));
    assert_eq!(values(&snap, &s), vec![1.0, 2.0, 7.0]);
    let mut jobs: Vec<String> = s
        .select_labels(&t, Signal::Metrics, &[])
        .iter()
        .filter_map(|(_, l)| l.get("job").map(str::to_owned))
        .collect();
    jobs.sort();
    assert_eq!(jobs, vec!["good", "wal"]);
    let logs = s.snapshot(&t, Signal::Logs, i64::MIN, i64::MAX);
    assert_eq!(logs.files.len(), 1);
    assert!(logs.files.iter().all(|f| f.id != bad[1].id));
    assert!(!dir.path().join("files").join(&bad[0].path).exists());
    // New writes land, and the next start finds nothing damaged.
    write(&s, &t, vec![sample("up", "after", 4000, 9.0)]);
    drop(s);
    let s = Storage::open(config(dir.path())).expect("reopen");
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(values(&snap, &s), vec![1.0, 2.0, 7.0, 9.0]);
}

/// Overwrites every byte of a data file's column chunks (between the leading magic and
/// the footer), leaving the footer intact: the file opens, its pages do not decode.
fn corrupt_pages(path: &Path) {
    let mut data = std::fs::read(path).expect("read");
    let n = data.len();
    let footer = u32::from_le_bytes(data[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    data[4..n - 8 - footer].fill(0xde);
    std::fs::write(path, &data).expect("write");
}

#[test]
fn start_up_quarantines_a_file_whose_pages_do_not_decode_with_its_sidecar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    for app in ["bad", "good"] {
        block(s.write_logs(&t, vec![log_record(app, 1_000_000, "a line")])).expect("write");
        block(s.flush()).expect("flush");
    }
    let bad = s.snapshot(&t, Signal::Logs, i64::MIN, i64::MAX).files[0].clone();
    drop(s);
    let file = dir.path().join("files").join(&bad.path);
    let sidecar = PathBuf::from(format!("{}.tokens", file.display()));
    assert!(sidecar.exists(), "a logs file has a token index sidecar");
    corrupt_pages(&file);

    let s = Storage::open(config(dir.path())).expect("opens despite the damaged pages");
    let kept = dir.path().join("quarantine").join(&bad.path);
    assert!(kept.exists(), "the damaged file is kept in quarantine");
    assert!(
        PathBuf::from(format!("{}.tokens", kept.display())).exists(),
        "its sidecar is kept with it"
    );
    let logs = s.snapshot(&t, Signal::Logs, i64::MIN, i64::MAX);
    assert_eq!(logs.files.len(), 1);
    assert!(logs.files.iter().all(|f| f.id != bad.id));
}

#[test]
fn start_up_refuses_rather_than_quarantines_a_file_it_cannot_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    write(&s, &t, vec![sample("up", "a", 1000, 1.0)]);
    block(s.flush()).expect("flush");
    let f = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX).files[0].clone();
    drop(s);
    // Reading fails (EISDIR stands in for EIO, ESTALE or a timeout on a network disk):
    // nothing says the bytes are bad, so the file must not leave the catalog.
    let file = dir.path().join("files").join(&f.path);
    let aside = dir.path().join("aside.parquet");
    std::fs::rename(&file, &aside).expect("move aside");
    std::fs::create_dir(&file).expect("a directory in its place");
    let err = Storage::open(config(dir.path()))
        .err()
        .expect("an unreadable file stops start-up");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(!dir.path().join("quarantine").exists());
    // Once the disk answers again, everything is there.
    std::fs::remove_dir(&file).expect("remove the directory");
    std::fs::rename(&aside, &file).expect("put back");
    let s = Storage::open(config(dir.path())).expect("open");
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(values(&snap, &s), vec![1.0]);
}

/// With `metric_slab_rows` set, a metrics file spanning several 15-minute windows holds
/// them as time slabs: each slab (at least that many rows, windows merged until then) is
/// its own row groups, sorted by series labels then time, and the directory names each
/// series' rows once per slab. Re-opening reads each series' labels from its first row only.
#[test]
fn metric_files_hold_time_slabs_as_row_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |d: &Path| StorageConfig {
        metric_slab_rows: 128 * 1024,
        ..config(d)
    };
    let t = TenantId::default_tenant();
    // 30 series, a sample every 200 ms for 40 minutes: 4,500 rows per series and window,
    // 135,000 per window; a window of the same day (15-minute windows divide days).
    let day0 = 1_700_006_400_000; // 2023-11-15 00:00 UTC
    let window = crate::files::METRIC_WINDOW_MS;
    let (series, step, minutes) = (30, 200, 40);
    {
        let s = Storage::open(config(dir.path())).expect("open");
        let mut samples = Vec::new();
        for i in 0..(minutes * 60_000 / step) {
            for k in 0..series {
                samples.push(sample(
                    "slabbed",
                    &format!("job{k:02}"),
                    day0 + i * step,
                    1.0,
                ));
            }
            if samples.len() >= 60_000 {
                write(&s, &t, std::mem::take(&mut samples));
            }
        }
        write(&s, &t, samples);
        block(s.flush()).expect("flush");
        let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
        assert_eq!(snap.files.len(), 1);
        let path = s.inner.files.local_path(&snap.files[0].path);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).expect("file"))
                .expect("footer");
        let meta = builder.metadata().clone();
        // Row groups' time ranges: within one window each (the windows of 135,000 rows
        // each close a slab; the last, 10 minutes, is one too), ascending.
        let ts_col = meta
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.name() == "timestamp")
            .expect("timestamp column");
        let mut slabs: Vec<i64> = Vec::new();
        let mut first_row = 0u64;
        let mut group_rows = Vec::new();
        for rg in meta.row_groups() {
            let Some(datafusion::parquet::file::statistics::Statistics::Int64(v)) =
                rg.column(ts_col).statistics()
            else {
                panic!("no timestamp statistics");
            };
            let (lo, hi) = (*v.min_opt().expect("min"), *v.max_opt().expect("max"));
            assert_eq!(lo.div_euclid(window), hi.div_euclid(window), "{lo}..{hi}");
            let w = lo.div_euclid(window);
            assert!(slabs.last().is_none_or(|&l| l <= w), "ascending windows");
            if slabs.last() != Some(&w) {
                slabs.push(w);
            }
            group_rows.push((first_row, rg.num_rows() as u64, w));
            first_row += rg.num_rows() as u64;
        }
        let windows =
            (day0 + (minutes * 60_000 - 1)).div_euclid(window) - day0.div_euclid(window) + 1;
        assert_eq!(slabs.len() as i64, windows);
        // The directory: one entry per series and slab, each inside one slab's groups.
        let entries = crate::files::series_directory(meta.file_metadata()).expect("directory");
        assert_eq!(entries.len(), series as usize * slabs.len());
        assert_eq!(
            entries.iter().map(|e| e.2).sum::<u64>(),
            meta.file_metadata().num_rows() as u64
        );
        let window_of_row = |row: u64| {
            group_rows
                .iter()
                .find(|g| row >= g.0 && row < g.0 + g.1)
                .map(|g| g.2)
        };
        for (_, first, rows) in &entries {
            assert_eq!(window_of_row(*first), window_of_row(first + rows - 1));
        }
        assert_eq!(
            values(&snap, &s).len(),
            (series * minutes * 60_000 / step) as usize
        );
    }
    // The label index comes back from one row per series.
    let s = Storage::open(config(dir.path())).expect("reopen");
    assert_eq!(
        s.select_labels(&t, Signal::Metrics, &[]).len(),
        series as usize
    );
}

/// Small flushes merge their windows into one slab: a slab holds at least
/// `metric_slab_rows` rows, so sparse data keeps one row group and one entry per series.
#[test]
fn sparse_metric_windows_share_one_slab() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |d: &Path| StorageConfig {
        metric_slab_rows: 128 * 1024,
        ..config(d)
    };
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    let day0 = 1_700_006_400_000;
    let samples = (0..240)
        .flat_map(|i| {
            (0..3).map(move |k| sample("sparse", &format!("j{k}"), day0 + i * 15_000, i as f64))
        })
        .collect();
    write(&s, &t, samples);
    block(s.flush()).expect("flush");
    let snap = s.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    let path = s.inner.files.local_path(&snap.files[0].path);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).expect("file"))
            .expect("footer");
    assert_eq!(builder.metadata().num_row_groups(), 1);
    let entries =
        crate::files::series_directory(builder.metadata().file_metadata()).expect("directory");
    assert_eq!(entries.len(), 3);
}

/// Logs files write the short metadata columns log queries read (and the record
/// attributes) without a dictionary, keep one for the resource and scope attributes and
/// keep `service_name`'s min/max for SQL's pruning; every value reads back as written.
#[test]
fn logs_files_write_metadata_plain_and_read_it_back() {
    use datafusion::arrow::array::AsArray;
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(config(dir.path())).expect("open");
    let records: Vec<LogRecord> = (0..300)
        .map(|i| {
            let mut r = log_record(if i % 2 == 0 { "api" } else { "web" }, 1_000 + i, "a line");
            r.severity_text = if i % 3 == 0 { "ERROR" } else { "INFO" }.into();
            r.trace_id = if i % 4 == 0 {
                format!("{i:032x}")
            } else {
                String::new()
            };
            r.span_id = if i % 4 == 0 {
                format!("{i:016x}")
            } else {
                String::new()
            };
            r.attributes = format!(r#"{{"n":"{i}"}}"#).as_str().into();
            r.origin.service_name = if i % 2 == 0 { "api" } else { "web" }.into();
            r.origin.resource_attributes = r#"{"host.name":"h1"}"#.into();
            r.origin.scope_name = "lib".into();
            r.origin.scope_version = "1.2".into();
            r.origin.scope_attributes = r#"{"s":"1"}"#.into();
            r
        })
        .collect();
    block(s.write_logs(&t, records)).expect("write");
    block(s.flush()).expect("flush");
    let snap = s.snapshot(&t, Signal::Logs, i64::MIN, i64::MAX);
    assert_eq!(snap.files.len(), 1);
    let path = s.inner.files.local_path(&snap.files[0].path);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).expect("file"))
            .expect("footer");
    let meta = builder.metadata().clone();
    let rg = &meta.row_groups()[0];
    let chunk = |name: &str| {
        rg.columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    for col in [
        "service_name",
        "severity_text",
        "trace_id",
        "span_id",
        "scope_name",
        "scope_version",
        "attributes",
    ] {
        assert_eq!(
            chunk(col).dictionary_page_offset(),
            None,
            "{col} has a dictionary"
        );
    }
    for col in ["resource_attributes", "scope_attributes"] {
        assert!(
            chunk(col).dictionary_page_offset().is_some(),
            "{col} has no dictionary"
        );
    }
    let stats = chunk("service_name")
        .statistics()
        .expect("service_name statistics");
    assert_eq!(stats.min_bytes_opt(), Some(&b"api"[..]));
    assert_eq!(stats.max_bytes_opt(), Some(&b"web"[..]));

    let mut rows = Vec::new();
    for batch in builder.build().expect("reader") {
        let batch = batch.expect("batch");
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .expect(name)
                .as_string::<i32>()
                .clone()
        };
        let ts = batch.column_by_name("timestamp").expect("timestamp");
        let ts = ts
            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
            .clone();
        let (svc, sev, trace, span, attrs, res) = (
            col("service_name"),
            col("severity_text"),
            col("trace_id"),
            col("span_id"),
            col("attributes"),
            col("resource_attributes"),
        );
        for r in 0..batch.num_rows() {
            rows.push((
                ts.value(r) - 1_000,
                svc.value(r).to_owned(),
                sev.value(r).to_owned(),
                trace.value(r).to_owned(),
                span.value(r).to_owned(),
                attrs.value(r).to_owned(),
                res.value(r).to_owned(),
            ));
        }
    }
    rows.sort();
    assert_eq!(rows.len(), 300);
    for (i, (n, svc, sev, trace, span, attrs, res)) in rows.into_iter().enumerate() {
        assert_eq!(n, i as i64);
        assert_eq!(svc, if i % 2 == 0 { "api" } else { "web" });
        assert_eq!(sev, if i % 3 == 0 { "ERROR" } else { "INFO" });
        let want_trace = if i % 4 == 0 {
            format!("{i:032x}")
        } else {
            String::new()
        };
        assert_eq!(trace, want_trace);
        let want_span = if i % 4 == 0 {
            format!("{i:016x}")
        } else {
            String::new()
        };
        assert_eq!(span, want_span);
        assert_eq!(attrs, format!(r#"{{"n":"{i}"}}"#));
        assert_eq!(res, r#"{"host.name":"h1"}"#);
    }
}

#[test]
fn series_are_visited_sorted_by_labels_with_a_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Storage::open(config(dir.path())).expect("open");
    let t = TenantId::new("t").expect("tenant");
    // Names and jobs written out of order; "b" < "b0" < "ba" as label sets compare, and a
    // longer set with an equal prefix sorts after the shorter one.
    let mut samples = Vec::new();
    for (name, job) in [
        ("b", "x"),
        ("a", "z"),
        ("b0", "y"),
        ("a", "y"),
        ("ba", "a"),
        ("a", "y0"),
    ] {
        samples.push(sample(name, job, 1000, 1.0));
    }
    let mut extra = sample("a", "y", 1000, 2.0);
    extra.labels = Labels::from_pairs([("__name__", "a"), ("job", "y"), ("zone", "1")]);
    samples.push(extra);
    write(&s, &t, samples);
    let mut seen: Vec<(SeriesId, Vec<(String, String)>)> = Vec::new();
    let n = s
        .each_series_sorted(&t, Signal::Metrics, &[], 100, &mut |id, pairs| {
            seen.push((
                id,
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ))
        })
        .expect("under the limit");
    assert_eq!(n, 7);
    let sets: Vec<String> = seen
        .iter()
        .map(|(_, p)| {
            p.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(
        sets,
        [
            "__name__=a,job=y",
            "__name__=a,job=y,zone=1",
            "__name__=a,job=y0",
            "__name__=a,job=z",
            "__name__=b,job=x",
            "__name__=b0,job=y",
            "__name__=ba,job=a",
        ]
    );
    // The ids are those the index gives for the same sets.
    for (id, pairs) in &seen {
        let labels = s
            .select_labels(&t, Signal::Metrics, &[])
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, l)| l)
            .expect("indexed");
        let want: Vec<(String, String)> = labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        assert_eq!(&want, pairs);
    }
    // A matcher narrows; past the limit nothing is visited and the count comes back.
    let job_y = LabelMatcher {
        name: "job".into(),
        op: crate::index::MatchOp::Equal("y".into()),
    };
    let mut visited = 0;
    let r = s.each_series_sorted(
        &t,
        Signal::Metrics,
        std::slice::from_ref(&job_y),
        3,
        &mut |_, _| visited += 1,
    );
    assert_eq!((r, visited), (Ok(3), 3));
    let r = s.each_series_sorted(&t, Signal::Metrics, &[job_y], 2, &mut |_, _| visited += 1);
    assert_eq!((r, visited), (Err(3), 3));
    // An unknown tenant has no series.
    let other = TenantId::new("other").expect("tenant");
    assert_eq!(
        s.each_series_sorted(&other, Signal::Metrics, &[], 0, &mut |_, _| ()),
        Ok(0)
    );
}

const HOUR_MS: i64 = 3_600_000;

fn hourly(dir: &Path) -> StorageConfig {
    StorageConfig {
        metric_block_duration: Duration::from_secs(3600),
        ..config(dir)
    }
}

/// Each (series id, timestamp) of a tenant's metrics with the value a reader keeps: files
/// in snapshot order, then memtables, the last row of a series and timestamp winning (as
/// PromQL reads them).
fn latest(storage: &Storage, t: &TenantId) -> BTreeMap<(u64, i64), f64> {
    let snap = storage.snapshot(t, Signal::Metrics, i64::MIN, i64::MAX);
    let mut batches = Vec::new();
    for f in &snap.files {
        let data = std::fs::read(storage.inner.files.local_path(&f.path)).expect("read");
        batches.extend(decode_parquet(bytes::Bytes::from(data), None, None).expect("decode"));
    }
    batches.extend(snap.batches.iter().cloned());
    let mut out = BTreeMap::new();
    for b in &batches {
        let (ids, ts) = schema::metric_keys(b).expect("keys");
        let vals = b
            .column_by_name("value")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .expect("values");
        for r in 0..b.num_rows() {
            out.insert((ids[r], ts[r]), vals.value(r));
        }
    }
    out
}

/// The series ids of a metrics file's directory.
fn file_series(storage: &Storage, f: &FileMeta) -> BTreeSet<u64> {
    let data =
        bytes::Bytes::from(std::fs::read(storage.inner.files.local_path(&f.path)).expect("read"));
    let meta = ParquetRecordBatchReaderBuilder::try_new(data)
        .expect("footer")
        .metadata()
        .clone();
    crate::files::series_directory(meta.file_metadata())
        .expect("directory")
        .iter()
        .map(|e| e.0)
        .collect()
}

fn metric_files(storage: &Storage, t: &TenantId) -> Vec<FileMeta> {
    storage
        .snapshot(t, Signal::Metrics, i64::MIN, i64::MAX)
        .files
}

#[test]
fn a_flush_spanning_windows_writes_one_file_per_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(hourly(dir.path())).expect("open");
    // Three hours of two series, written newest first.
    let mut samples = Vec::new();
    for i in (0..180i64).rev() {
        for job in ["a", "b"] {
            samples.push(sample("up", job, 1000 + i * 60_000, i as f64));
        }
    }
    write(&s, &t, samples);
    block(s.flush()).expect("flush");
    let files = metric_files(&s, &t);
    let parts: Vec<(&str, u64)> = files
        .iter()
        .map(|f| (f.partition.as_str(), f.rows))
        .collect();
    assert_eq!(
        parts,
        vec![
            ("1970-01-01T0000", 120),
            ("1970-01-01T0100", 120),
            ("1970-01-01T0200", 120)
        ]
    );
    for (k, f) in files.iter().enumerate() {
        let k = k as i64;
        assert_eq!(f.min_time_ns, (k * HOUR_MS + 1000) * 1_000_000);
        assert_eq!(
            f.max_time_ns,
            (k * HOUR_MS + 59 * 60_000 + 1000) * 1_000_000
        );
        assert!(
            f.path
                .starts_with(&format!("default/metrics/{}/", f.partition))
        );
    }
    assert_eq!(latest(&s, &t).len(), 360);
}

#[test]
fn compaction_merges_a_window_into_files_disjoint_in_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let mut c = hourly(dir.path());
    c.compaction_max_rows = 100;
    let s = Storage::open(c).expect("open");
    // Six flushes of 20 series x 2 samples, each flush a different time, all in hour 0,
    // plus a seventh with one sample in hour 1.
    for f in 0..6i64 {
        let samples = (0..20)
            .flat_map(|k| {
                let job = format!("job{k:02}");
                [0, 1].map(|j| {
                    sample(
                        "up",
                        &job,
                        1000 + f * 120_000 + j * 60_000,
                        (f * 100 + k) as f64,
                    )
                })
            })
            .collect();
        write(&s, &t, samples);
        block(s.flush()).expect("flush");
    }
    write(&s, &t, vec![sample("up", "job00", HOUR_MS + 5, 7.0)]);
    block(s.flush()).expect("flush");
    let before = latest(&s, &t);
    assert_eq!(before.len(), 241);
    assert_eq!(metric_files(&s, &t).len(), 7);
    // Hour 0 (six writes, 240 rows) is merged; hour 1 has one file and stays.
    assert_eq!(block(s.compact()).expect("compact"), 1);
    let files = metric_files(&s, &t);
    let hour0: Vec<&FileMeta> = files
        .iter()
        .filter(|f| f.partition == "1970-01-01T0000")
        .collect();
    // 240 rows (20 series of 12) under a cap of 100: three files of about equal rows...
    assert_eq!(
        hour0.iter().map(|f| f.rows).collect::<Vec<_>>(),
        vec![84, 84, 72]
    );
    // ...each a range of series in label order, named in the catalog...
    let id = |job: &str| {
        Labels::from_pairs([("__name__", "up"), ("job", job)])
            .series_id()
            .0
    };
    assert_eq!(
        hour0.iter().map(|f| f.series).collect::<Vec<_>>(),
        vec![
            Some((id("job00"), id("job06"))),
            Some((id("job07"), id("job13"))),
            Some((id("job14"), id("job19")))
        ]
    );
    // ...with no series in two of them, all one write.
    let mut seen = BTreeSet::new();
    for f in &hour0 {
        let ids = file_series(&s, f);
        assert_eq!(ids.len() as u64, f.rows / 12);
        assert!(seen.is_disjoint(&ids));
        seen.extend(ids);
        assert_eq!(f.level, 1);
        assert_eq!(f.write_seq(), hour0[0].write_seq());
    }
    assert_eq!(files.len(), 4);
    // In window order: the hour-1 file comes last.
    assert_eq!(
        files.last().map(|f| f.partition.as_str()),
        Some("1970-01-01T0100")
    );
    assert_eq!(latest(&s, &t), before);
    // Settled: nothing more to do.
    assert_eq!(block(s.compact()).expect("compact"), 0);
    // The same after a restart.
    drop(s);
    let s = Storage::open(hourly(dir.path())).expect("reopen");
    assert_eq!(latest(&s, &t), before);
}

#[test]
fn late_rows_and_rewrites_merge_into_their_window_the_later_write_winning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(hourly(dir.path())).expect("open");
    let id = |job: &str| {
        Labels::from_pairs([("__name__", "up"), ("job", job)])
            .series_id()
            .0
    };
    for i in 0..3i64 {
        write(&s, &t, vec![sample("up", "a", 1000 + i, i as f64)]);
        block(s.flush()).expect("flush");
    }
    // A rewrite of the first sample in the memtable wins over the files already.
    write(&s, &t, vec![sample("up", "a", 1000, 10.0)]);
    assert_eq!(latest(&s, &t).get(&(id("a"), 1000)), Some(&10.0));
    block(s.flush()).expect("flush");
    assert_eq!(latest(&s, &t).get(&(id("a"), 1000)), Some(&10.0));
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert_eq!(metric_files(&s, &t).len(), 1);
    assert_eq!(latest(&s, &t).get(&(id("a"), 1000)), Some(&10.0));
    // Late data into the (long ended) window, with another rewrite: its own file first,
    // then merged with the window's file.
    write(
        &s,
        &t,
        vec![sample("up", "b", 500, 5.0), sample("up", "a", 1001, 11.0)],
    );
    block(s.flush()).expect("flush");
    assert_eq!(metric_files(&s, &t).len(), 2);
    assert_eq!(block(s.compact()).expect("compact"), 1);
    let files = metric_files(&s, &t);
    assert_eq!(files.len(), 1);
    // Rewritten rows stay (readers keep the last): 4 + 2.
    assert_eq!(files[0].rows, 6);
    let want: BTreeMap<(u64, i64), f64> = [
        ((id("a"), 1000), 10.0),
        ((id("a"), 1001), 11.0),
        ((id("a"), 1002), 2.0),
        ((id("b"), 500), 5.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(latest(&s, &t), want);
}

#[test]
fn files_spanning_windows_are_split_keeping_their_place_in_write_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let id = |job: &str| {
        Labels::from_pairs([("__name__", "up"), ("job", job)])
            .series_id()
            .0
    };
    // Written as an older version did: one file per day (here: day-long windows), two of
    // them over three hours, the second rewriting some samples of the first.
    {
        let mut c = config(dir.path());
        c.metric_block_duration = Duration::from_secs(86_400);
        let s = Storage::open(c).expect("open");
        for (v, jobs) in [(1.0, ["a", "b"]), (2.0, ["b", "c"])] {
            let mut samples = Vec::new();
            for i in 0..6i64 {
                for job in jobs {
                    samples.push(sample("up", job, i * 30 * 60_000, v));
                }
            }
            write(&s, &t, samples);
            block(s.flush()).expect("flush");
        }
        assert_eq!(metric_files(&s, &t).len(), 2);
    }
    let s = Storage::open(hourly(dir.path())).expect("reopen");
    // A newer write into hour 1 rewrites a sample both old files hold.
    write(&s, &t, vec![sample("up", "b", 2 * 30 * 60_000, 3.0)]);
    block(s.flush()).expect("flush");
    let before = latest(&s, &t);
    assert_eq!(before.get(&(id("b"), 3_600_000)), Some(&3.0));
    assert_eq!(before.get(&(id("b"), 0)), Some(&2.0));
    assert_eq!(before.get(&(id("a"), 0)), Some(&1.0));
    assert_eq!(before.len(), 18);
    // Two splits, then hours 0, 1 and 2 merged (hour 1 with the newer file).
    assert_eq!(block(s.compact()).expect("compact"), 5);
    let files = metric_files(&s, &t);
    let parts: Vec<&str> = files.iter().map(|f| f.partition.as_str()).collect();
    assert_eq!(
        parts,
        vec!["1970-01-01T0000", "1970-01-01T0100", "1970-01-01T0200"]
    );
    assert_eq!(latest(&s, &t), before);
    assert_eq!(block(s.compact()).expect("compact"), 0);
}

#[test]
fn an_open_window_waits_for_min_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let mut c = hourly(dir.path());
    c.compaction_min_files = 3;
    let s = Storage::open(c).expect("open");
    let now_ms = now_ns() / 1_000_000;
    for i in 0..2 {
        write(&s, &t, vec![sample("up", "a", now_ms + i, 1.0)]);
        block(s.flush()).expect("flush");
    }
    // The window has not ended: two writes are fewer than min_files.
    assert_eq!(block(s.compact()).expect("compact"), 0);
    write(&s, &t, vec![sample("up", "a", now_ms + 2, 1.0)]);
    block(s.flush()).expect("flush");
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert_eq!(metric_files(&s, &t).len(), 1);
}

#[test]
fn the_block_duration_must_divide_a_day_into_minutes() {
    let mut c = StorageConfig::default();
    assert!(c.validate().is_ok());
    for (secs, ok) in [
        (3600, true),
        (1800, true),
        (86_400, true),
        (7000, false),
        (30, false),
        (172_800, false),
    ] {
        c.metric_block_duration = Duration::from_secs(secs);
        assert_eq!(c.validate().is_ok(), ok, "{secs}s");
    }
}

#[test]
fn a_trickle_of_late_samples_waits_while_a_tenth_of_the_window_merges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let mut c = hourly(dir.path());
    c.compaction_min_files = 8;
    let s = Storage::open(c).expect("open");
    // Hour 0 of 1970 has long ended: two writes of 40 rows each are merged.
    let rows = |from: i64, n: i64, v: f64| -> Vec<Sample> {
        (0..n)
            .map(|k| sample("up", &format!("job{k:02}"), 1000 + from, v))
            .collect()
    };
    for f in 0..2 {
        write(&s, &t, rows(f * 60_000, 40, 1.0));
        block(s.flush()).expect("flush");
    }
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert_eq!(metric_files(&s, &t).len(), 1);
    // One late sample (1 row against 80): the window is not rewritten for it...
    write(&s, &t, rows(200_000, 1, 2.0));
    block(s.flush()).expect("flush");
    assert_eq!(block(s.compact()).expect("compact"), 0);
    assert_eq!(metric_files(&s, &t).len(), 2);
    // ...and reads see it all the same.
    assert_eq!(latest(&s, &t).len(), 81);
    // Once the late rows are a tenth of the window (1 + 9 of 90), it is merged again.
    write(&s, &t, rows(300_000, 9, 3.0));
    block(s.flush()).expect("flush");
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert_eq!(metric_files(&s, &t).len(), 1);
    assert_eq!(latest(&s, &t).len(), 90);
}

#[test]
fn a_slabbed_metrics_file_records_no_series_range() {
    // Slabs are in series order each, not across: series `a` only in the second slab and
    // `z` only in the first would lie outside a first-row..last-row range.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let s = Storage::open(StorageConfig {
        metric_slab_rows: 1,
        ..hourly(dir.path())
    })
    .expect("open");
    write(
        &s,
        &t,
        vec![
            sample("up", "b", 1000, 1.0),
            sample("up", "z", 2000, 1.0),
            sample("up", "a", 40 * 60_000, 1.0),
            sample("up", "y", 41 * 60_000, 1.0),
        ],
    );
    block(s.flush()).expect("flush");
    let files = metric_files(&s, &t);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].series, None);
    // Without slabs the same rows are in series order and the range is recorded.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Storage::open(hourly(dir.path())).expect("open");
    write(
        &s,
        &t,
        vec![
            sample("up", "b", 1000, 1.0),
            sample("up", "a", 40 * 60_000, 1.0),
        ],
    );
    block(s.flush()).expect("flush");
    assert!(metric_files(&s, &t)[0].series.is_some());
}

mod directory;
