//! Metrics files whose series directory does not fit their rows: merges and start-up
//! must find every row and series all the same.

use super::*;
use crate::files::{DirectoryEntry, SERIES_DIRECTORY_KEY, directory_hex, series_directory};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::metadata::KeyValue;

/// The series directory of a metrics file, by first row (file order).
fn directory_in_file_order(path: &Path) -> Vec<DirectoryEntry> {
    let data = bytes::Bytes::from(std::fs::read(path).expect("read"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).expect("footer");
    let mut entries = series_directory(builder.metadata().file_metadata()).expect("directory");
    entries.sort_unstable_by_key(|e| e.1);
    entries
}

/// Rewrites a metrics file with the same rows in the same order, its series directory
/// replaced by `directory` (the footer value as stored; `None` leaves the key out).
fn rewrite_directory(path: &Path, directory: Option<String>) {
    let data = bytes::Bytes::from(std::fs::read(path).expect("read"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).expect("footer");
    let kept: Vec<KeyValue> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        // The writer adds the Arrow schema itself.
        .filter(|kv| kv.key != SERIES_DIRECTORY_KEY && kv.key != "ARROW:schema")
        .collect();
    let batches: Vec<RecordBatch> = builder
        .build()
        .expect("reader")
        .collect::<std::result::Result<_, _>>()
        .expect("decode");
    let schema = batches.first().expect("rows").schema();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, None).expect("writer");
    for kv in kept {
        w.append_key_value_metadata(kv);
    }
    if let Some(value) = directory {
        w.append_key_value_metadata(KeyValue::new(SERIES_DIRECTORY_KEY.to_string(), value));
    }
    for b in &batches {
        w.write(b).expect("write");
    }
    w.close().expect("close");
    std::fs::write(path, out).expect("rewrite");
}

/// `entries` (in any order) as a footer directory value, sorted as writers store it.
fn stored(mut entries: Vec<DirectoryEntry>) -> Option<String> {
    entries.sort_unstable();
    Some(directory_hex(&entries))
}

/// Ways a directory can be damaged (each applied to a file in file order), and whether
/// the reader loses rows when it trusts it.
fn damaged(case: usize, mut entries: Vec<DirectoryEntry>) -> Option<String> {
    match case {
        // A series left out.
        0 => {
            entries.remove(3);
            stored(entries)
        }
        // The last series one row short: the directory covers fewer rows than the file.
        1 => {
            if let Some(last) = entries.last_mut() {
                last.2 -= 1;
            }
            stored(entries)
        }
        // A series' rows said to start one row late: a gap, then an overlap.
        2 => {
            entries[2].1 += 1;
            stored(entries)
        }
        // The entries out of id order (as stored).
        3 => {
            entries.sort_unstable();
            entries.reverse();
            Some(directory_hex(&entries))
        }
        // Not hex.
        4 => Some("not a directory".into()),
        // No directory at all: the file is still in label order.
        _ => None,
    }
}

#[test]
fn a_window_merge_past_the_row_cap_keeps_every_row_of_inputs_with_damaged_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let mut c = hourly(dir.path());
    c.compaction_max_rows = 100;
    let s = Storage::open(c).expect("open");
    // Six flushes of 20 series x 2 samples, all in hour 0: 240 rows, three series ranges.
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
    let before = latest(&s, &t);
    assert_eq!(before.len(), 240);
    let inputs = metric_files(&s, &t);
    assert_eq!(inputs.len(), 6);
    for (case, f) in inputs.iter().enumerate() {
        let path = s.inner.files.local_path(&f.path);
        let entries = directory_in_file_order(&path);
        assert_eq!(entries.len(), 20);
        rewrite_directory(&path, damaged(case, entries));
    }
    assert_eq!(block(s.compact()).expect("compact"), 1);
    let outputs = metric_files(&s, &t);
    assert!(outputs.iter().all(|f| f.level == 1), "{outputs:?}");
    // Every row is in the merged files...
    assert_eq!(outputs.iter().map(|f| f.rows).sum::<u64>(), 240);
    assert_eq!(latest(&s, &t), before);
    // ...still split by series range: each series in one file.
    assert_eq!(outputs.len(), 3);
    let mut seen = BTreeSet::new();
    for f in &outputs {
        let ids = file_series(&s, f);
        assert_eq!(ids.len() as u64, f.rows / 12);
        assert!(seen.is_disjoint(&ids));
        seen.extend(ids);
    }
    assert_eq!(seen.len(), 20);
}

#[test]
fn a_directory_naming_the_wrong_series_leaves_no_series_in_two_files_of_a_window() {
    // A directory whose runs cover every row once but whose ids are swapped between two
    // series: a merge reading by it would put each one's rows in the other's range.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let mut c = hourly(dir.path());
    c.compaction_max_rows = 30;
    let s = Storage::open(c).expect("open");
    for f in 0..2i64 {
        let samples = (0..20)
            .flat_map(|k| {
                let job = format!("job{k:02}");
                [0, 1].map(|j| sample("up", &job, 1000 + f * 120_000 + j * 60_000, 1.0))
            })
            .collect();
        write(&s, &t, samples);
        block(s.flush()).expect("flush");
    }
    let before = latest(&s, &t);
    let damaged = &metric_files(&s, &t)[1];
    let path = s.inner.files.local_path(&damaged.path);
    let mut entries = directory_in_file_order(&path);
    let (a, b) = (entries[1].0, entries[17].0);
    entries[1].0 = b;
    entries[17].0 = a;
    rewrite_directory(&path, stored(entries));
    assert_eq!(block(s.compact()).expect("compact"), 1);
    let outputs = metric_files(&s, &t);
    // 80 rows under a cap of 30: three series ranges, each series in one of them.
    assert_eq!(outputs.len(), 3);
    let mut seen = BTreeSet::new();
    for f in &outputs {
        let ids = file_series(&s, f);
        assert_eq!(ids.len() as u64, f.rows / 4, "{ids:?}");
        assert!(seen.is_disjoint(&ids));
        seen.extend(ids);
    }
    assert_eq!(seen.len(), 20);
    assert_eq!(latest(&s, &t), before);
}

/// Damages a directory (given in file order) into a footer value.
type Damage = fn(Vec<DirectoryEntry>) -> Option<String>;

#[test]
fn start_up_indexes_every_series_of_a_file_whose_directory_is_damaged() {
    // Each case: 30 series x 10 rows in one file, its directory damaged, then a restart
    // (the WAL is gone after the flush: the index comes from the file alone).
    let cases: Vec<(&str, Damage)> = vec![
        ("a series left out", |mut e| {
            e.remove(5);
            stored(e)
        }),
        (
            "a series said to start inside the next one's rows",
            |mut e| {
                e[5].1 = e[6].1 + 1;
                stored(e)
            },
        ),
        // Still covering every row once: only the series found at the named rows tell.
        (
            "the boundary between two series moved into the first's rows",
            |mut e| {
                e[5].2 -= 3;
                e[6].1 -= 3;
                e[6].2 += 3;
                stored(e)
            },
        ),
        ("the directory unreadable", |_| Some("zz".into())),
    ];
    let t = TenantId::default_tenant();
    for (what, damage) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = {
            let s = Storage::open(config(dir.path())).expect("open");
            let samples = (0..30)
                .flat_map(|k| {
                    let job = format!("job{k:02}");
                    (0..10).map(move |i| sample("req", &job, 1000 * i, k as f64))
                })
                .collect();
            write(&s, &t, samples);
            block(s.flush()).expect("flush");
            let files = metric_files(&s, &t);
            assert_eq!(files.len(), 1);
            let path = s.inner.files.local_path(&files[0].path);
            let entries = directory_in_file_order(&path);
            assert_eq!(entries.len(), 30);
            assert!(entries.iter().all(|e| e.2 == 10));
            rewrite_directory(&path, damage(entries));
            latest(&s, &t)
        };
        let s = Storage::open(config(dir.path())).expect("reopen");
        let mut jobs: Vec<String> = s
            .select_labels(&t, Signal::Metrics, &[])
            .iter()
            .map(|(_, l)| l.get("job").expect("job").to_string())
            .collect();
        jobs.sort();
        let want: Vec<String> = (0..30).map(|k| format!("job{k:02}")).collect();
        assert_eq!(jobs, want, "{what}");
        assert_eq!(latest(&s, &t), before, "{what}");
    }
}

#[test]
fn a_merge_that_fails_to_write_deletes_the_files_it_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TenantId::default_tenant();
    let mut c = hourly(dir.path());
    c.compaction_max_rows = 100;
    let s = Storage::open(c).expect("open");
    for f in 0..3i64 {
        let samples = (0..20)
            .flat_map(|k| {
                let job = format!("job{k:02}");
                (0..4).map(move |j| sample("up", &job, 1000 + f * 240_000 + j * 60_000, 1.0))
            })
            .collect();
        write(&s, &t, samples);
        block(s.flush()).expect("flush");
    }
    let before = latest(&s, &t);
    let inputs = metric_files(&s, &t);
    assert_eq!(inputs.len(), 3);
    // 240 rows under a cap of 100: three outputs, numbered from the next file id. The
    // second cannot be written (a directory stands where it would go).
    let first = s.inner.state.read().catalog.next_file_id;
    let output = |id: u64| {
        s.inner
            .files
            .local_path(&format!("default/metrics/1970-01-01T0000/{id:016}.parquet"))
    };
    std::fs::create_dir_all(output(first + 1).join("blocker")).expect("mkdir");
    block(s.compact()).expect_err("the second output cannot be written");
    // The first output went again; the catalog and the rows are as before.
    assert!(!output(first).exists(), "the first output is left behind");
    assert_eq!(metric_files(&s, &t), inputs);
    assert_eq!(latest(&s, &t), before);
    // Once the way is clear, the merge is made.
    std::fs::remove_dir_all(output(first + 1)).expect("rmdir");
    assert_eq!(block(s.compact()).expect("compact"), 1);
    assert_eq!(metric_files(&s, &t).len(), 3);
    assert_eq!(latest(&s, &t), before);
}
