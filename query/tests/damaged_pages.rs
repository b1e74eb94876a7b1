//! A spans, logs or metrics file with a page that makes the Parquet decoder panic (a
//! damaged `DELTA_BYTE_ARRAY` page, as storage's compaction test makes one) is an error of
//! the queries that read it, not a panic unwinding through a query thread: trace by id,
//! scans (search), the trace APIs, Loki's queries and PromQL (decoded on the calling thread
//! or in parts on decode threads) answer it as an internal error without detail, naming
//! the file relative to the data directory in the error that is logged, and queries that
//! do not need the damaged file still answer.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use strata_promql::{MatchKind, Matcher, SeriesSource};
use strata_query::loki::LokiApiConfig;
use strata_query::loki::source::{LogReader, ReadError};
use strata_query::prom::source::{Scanner, SourceLimits};
use strata_query::prom::{PromApiConfig, StorageSource};
use strata_query::traces::limits::Budget;
use strata_query::traces::{TraceApiConfig, read, router};
use strata_storage::index::{LabelMatcher, MatchOp};
use strata_storage::model::{
    BucketSpan, Labels, LogRecord, MetricsWrite, NativeHistogram, Origin, Sample, SampleValue,
    Signal, Span,
};
use strata_storage::{Storage, StorageConfig, TenantId};
use tower::ServiceExt;

const DAMAGED: &str = "0af7651916cd43dd8448eb211c80319c";
const GOOD: &str = "1bf7651916cd43dd8448eb211c80319d";
const T0: i64 = 1_700_000_000_000_000_000;

/// `n` spans of `trace`, each with its own `user.id` (which gets a dedicated column).
fn spans(trace: &str, first: usize, n: usize) -> Vec<Span> {
    (first..first + n)
        .map(|i| Span {
            trace_id: trace.into(),
            span_id: format!("{:016x}", i + 1),
            name: "op".into(),
            start_time_ns: T0 + i as i64,
            end_time_ns: T0 + i as i64 + 10,
            attributes: format!(
                r#"{{"user.id":"{}{i:05}"}}"#,
                char::from(b'a' + (i % 26) as u8)
            ),
            origin: Origin {
                service_name: "svc".into(),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}

/// Rewrites a data file uncompressed with `column` `DELTA_BYTE_ARRAY`, then makes the
/// first suffix length of that column's page -1: the decoder then slices out of bounds (a
/// panic, not an error). As storage's `corrupt_delta_page`, for any column.
fn corrupt_delta_page(path: &Path, column: &str, rows: usize) {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    let schema = builder.schema().clone();
    assert!(schema.index_of(column).is_ok(), "{column} in {schema:?}");
    let column_path = ColumnPath::new(vec![column.into()]);
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_key_value_metadata(kv)
        .set_column_dictionary_enabled(column_path.clone(), false)
        .set_column_encoding(column_path, Encoding::DELTA_BYTE_ARRAY)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    for b in builder.build().unwrap() {
        w.write(&b.unwrap()).unwrap();
    }
    w.close().unwrap();
    std::fs::write(path, &out).unwrap();
    // The column's chunk.
    let meta = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .metadata()
        .clone();
    assert_eq!(meta.num_row_groups(), 1);
    let leaf = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [column.to_owned()])
        .expect("the column's leaf");
    let (start, len) = meta.row_group(0).column(leaf).byte_range();
    let chunk = start as usize..(start + len) as usize;
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
    let at: Vec<usize> = out[chunk.clone()]
        .windows(header.len())
        .enumerate()
        .filter(|(_, w)| *w == header.as_slice())
        .map(|(i, _)| chunk.start + i)
        .collect();
    assert_eq!(at.len(), 2, "one page of prefix and suffix lengths");
    // The first suffix length becomes zigzag -1 (1), written in as many varint bytes as
    // the length it replaces (a long string's takes two: 0x81 0x00).
    let first = at[1] + header.len();
    let len = out[first..].iter().take_while(|b| *b & 0x80 != 0).count() + 1;
    for (k, b) in out[first..first + len].iter_mut().enumerate() {
        *b = match (k, k + 1 == len) {
            (0, true) => 0x01,
            (0, false) => 0x81,
            (_, true) => 0x00,
            (_, false) => 0x80,
        };
    }
    std::fs::write(path, &out).unwrap();
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The chain of an error's messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[tokio::test]
async fn a_page_that_makes_the_decoder_panic_is_an_error_of_the_queries_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .unwrap();
    let t = TenantId::default_tenant();
    storage
        .write_spans(&t, spans(DAMAGED, 0, 2000))
        .await
        .unwrap();
    storage.flush().await.unwrap();
    storage
        .write_spans(&t, spans(GOOD, 5000, 10))
        .await
        .unwrap();
    storage.flush().await.unwrap();
    let snap = storage.snapshot(&t, Signal::Traces, i64::MIN, i64::MAX);
    assert_eq!(snap.files.len(), 2);
    let damaged = snap
        .files
        .iter()
        .find(|f| f.rows == 2000)
        .map(|f| snap.files_root.join(&f.path))
        .unwrap();
    corrupt_delta_page(&damaged, "attr:str:user.id", 2000);

    let config = TraceApiConfig {
        max_search_range: std::time::Duration::from_secs(3650 * 86_400),
        ..TraceApiConfig::default()
    };
    let budget = Budget::new(&config);
    // The trace in the damaged file: an error naming the panic, not a panic.
    let err = read::trace_batches(&storage, &t, DAMAGED, &budget).expect_err("damaged");
    let text = chain(&err);
    assert!(text.contains("the decoder panicked"), "{text}");
    // A scan that decodes the damaged column: the same.
    let mut rows = 0;
    let err = read::scan(
        &storage,
        &t,
        T0,
        T0 + 10_000,
        &["attributes"],
        &budget,
        &mut |b| {
            rows += b.num_rows();
            Ok(true)
        },
    )
    .expect_err("damaged");
    assert!(
        chain(&err).contains("the decoder panicked"),
        "{}",
        chain(&err)
    );
    // The other trace is found without the damaged file (its bloom filter rules it out).
    let good = read::trace_batches(&storage, &t, GOOD, &budget).unwrap();
    assert_eq!(good.iter().map(|b| b.num_rows()).sum::<usize>(), 10);

    // Over HTTP: the damaged trace is a 500 with no detail; the good one still answers.
    let app = router(storage.clone(), config);
    for uri in [
        format!("/api/traces/{DAMAGED}"),
        format!("/api/v2/traces/{DAMAGED}"),
        format!("/jaeger/api/traces/{DAMAGED}"),
    ] {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {body}");
        assert!(
            body.contains("internal error while running the query"),
            "{uri}: {body}"
        );
        assert!(
            !body.contains(&dir.path().display().to_string()),
            "{uri}: {body}"
        );
    }
    let (status, body) = get(&app, &format!("/api/traces/{GOOD}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn record(service: &str, i: usize) -> LogRecord {
    LogRecord {
        timestamp_ns: T0 + i as i64 * 1_000_000,
        body: format!(
            "{}{i:05} request handled",
            char::from(b'a' + (i % 26) as u8)
        ),
        body_type: "string".into(),
        origin: Origin {
            service_name: service.into(),
            ..Origin::default()
        },
        stream: Labels::from_pairs([("service_name", service)]),
        ..LogRecord::default()
    }
}

#[tokio::test]
async fn a_logs_page_that_makes_the_decoder_panic_is_an_error_of_loki_queries() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .unwrap();
    let t = TenantId::default_tenant();
    let damaged: Vec<LogRecord> = (0..2000).map(|i| record("damaged", i)).collect();
    storage.write_logs(&t, damaged).await.unwrap();
    storage.flush().await.unwrap();
    let good: Vec<LogRecord> = (0..10).map(|i| record("good", i)).collect();
    storage.write_logs(&t, good).await.unwrap();
    storage.flush().await.unwrap();
    let snap = storage.snapshot(&t, Signal::Logs, i64::MIN, i64::MAX);
    let path = snap
        .files
        .iter()
        .find(|f| f.rows == 2000)
        .map(|f| snap.files_root.join(&f.path))
        .unwrap();
    corrupt_delta_page(&path, "body", 2000);

    // The read: an error naming the panic, not a panic.
    let reader = LogReader::new(
        storage.clone(),
        t.clone(),
        None,
        Arc::new(AtomicBool::new(false)),
        0,
    );
    let matcher = |service: &str| LabelMatcher {
        name: "service_name".into(),
        op: MatchOp::Equal(service.into()),
    };
    let (start, end) = (T0 - 1_000_000_000, T0 + 10_000_000_000);
    match reader.select(&[matcher("damaged")], start, end, &[], false) {
        Err(ReadError::Storage(m)) => assert!(m.contains("the decoder panicked"), "{m}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("read a damaged page"),
    }
    let good = reader
        .select(&[matcher("good")], start, end, &[], false)
        .unwrap();
    assert_eq!(good.iter().map(|s| s.entries.len()).sum::<usize>(), 10);

    let app = strata_query::loki::router(storage.clone(), LokiApiConfig::default());
    let range = |selector: &str| {
        format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&limit=5000",
            urlencode(selector),
            T0 - 1_000_000_000,
            T0 + 10_000_000_000
        )
    };
    let (status, body) = get(&app, &range(r#"{service_name="damaged"}"#)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(!body.contains(&dir.path().display().to_string()), "{body}");
    // The other stream's file still answers.
    let (status, body) = get(&app, &range(r#"{service_name="good"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.matches("request handled").count(), 10, "{body}");
}

/// `n` samples, a second apart from `T0_MS` (in one of storage's hour windows, so one
/// file), of series `name`: native histograms (each sample's JSON differs) or floats.
fn samples(name: &str, n: usize, histograms: bool) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            labels: Labels::from_pairs([("__name__", name.to_owned())]),
            timestamp_ms: T0_MS + i as i64 * 1000,
            value: if histograms {
                SampleValue::Histogram(Box::new(NativeHistogram {
                    schema: 0,
                    count: i as f64,
                    sum: i as f64 * 1.5,
                    positive_spans: vec![BucketSpan {
                        offset: 0,
                        length: 1,
                    }],
                    positive_buckets: vec![i as f64],
                    ..NativeHistogram::default()
                }))
            } else {
                SampleValue::Float(i as f64)
            },
            exemplars: vec![],
        })
        .collect()
}

const T0_MS: i64 = T0 / 1_000_000;
/// The last sample's time.
const END_MS: i64 = T0_MS + 1999 * 1000;

#[tokio::test]
async fn a_metrics_page_that_makes_the_decoder_panic_is_an_error_of_promql_queries() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .unwrap();
    let t = TenantId::default_tenant();
    // The damaged file holds one native-histogram series only (every `histogram` row set,
    // so the column's values are its rows); the good file one float series.
    for (name, histograms) in [("damaged", true), ("good", false)] {
        let write = MetricsWrite {
            samples: samples(name, 2000, histograms),
            metadata: vec![],
        };
        storage.write_metrics(&t, write).await.unwrap();
        storage.flush().await.unwrap();
    }
    let snap = storage.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
    assert_eq!(snap.files.len(), 2);
    let damaged = snap
        .files
        .iter()
        .min_by_key(|f| f.id)
        .map(|f| f.path.clone())
        .unwrap();
    corrupt_delta_page(&snap.files_root.join(&damaged), "histogram", 2000);
    // Errors name the file as the data directory holds it.
    let name = format!("files/{damaged}");

    let source = StorageSource::new(
        Scanner::new(
            storage.clone(),
            t.clone(),
            None,
            Arc::new(AtomicBool::new(false)),
        ),
        SourceLimits {
            max_series: 1000,
            max_samples: 1_000_000,
        },
    );
    let select = |metric: &str, start_ms: i64| {
        let m = Matcher::new(MatchKind::Equal, "__name__", metric).unwrap();
        source.select(&[m], start_ms, END_MS)
    };
    // Ten minutes decode on the calling thread; 90 days of one file in two parts on two
    // decode threads. Both: an error naming the panic and the file, not a panic.
    for start_ms in [END_MS - 600_000, END_MS - 90 * 86_400_000] {
        let err = select("damaged", start_ms).expect_err("a damaged page");
        assert!(err.message.contains("the decoder panicked"), "{err:?}");
        assert!(
            err.message.contains(&format!("data file {name}: ")),
            "{err:?}"
        );
        assert!(
            !err.message.contains(&dir.path().display().to_string()),
            "{err:?}"
        );
        // The good series' file still answers.
        let good = select("good", start_ms).unwrap();
        assert_eq!(good.len(), 1);
        assert!(!good[0].floats.is_empty());
    }

    let app = strata_query::prom::router(storage.clone(), PromApiConfig::default());
    let query = |q: &str| {
        format!(
            "/api/v1/query?query={}&time={}",
            urlencode(q),
            END_MS as f64 / 1000.0
        )
    };
    for q in ["damaged", "count_over_time(damaged[90d])"] {
        let (status, body) = get(&app, &query(q)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{q}: {body}");
        assert!(
            body.contains("internal error while running the query"),
            "{q}: {body}"
        );
        assert!(
            !body.contains(&dir.path().display().to_string()) && !body.contains(".parquet"),
            "{q}: {body}"
        );
    }
    let (status, body) = get(&app, &query("count_over_time(good[90d])")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""2000"]"#), "{body}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Rewrites a metrics file with the same rows, its series directory replaced by
/// `entries` (stored sorted by id, as writers store them).
fn rewrite_directory(path: &Path, mut entries: Vec<strata_storage::files::DirectoryEntry>) {
    use datafusion::parquet::file::metadata::KeyValue;
    use strata_storage::files::{SERIES_DIRECTORY_KEY, directory_hex};
    let data = std::fs::File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).unwrap();
    let kept: Vec<KeyValue> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| kv.key != SERIES_DIRECTORY_KEY && kv.key != "ARROW:schema")
        .collect();
    let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batches[0].schema(), None).unwrap();
    for kv in kept {
        w.append_key_value_metadata(kv);
    }
    entries.sort_unstable();
    w.append_key_value_metadata(KeyValue::new(
        SERIES_DIRECTORY_KEY.to_string(),
        directory_hex(&entries),
    ));
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    std::fs::write(path, out).unwrap();
}

/// A metrics file whose series directory does not fit its rows (a series left out, or
/// a series' rows said to start late) is read by its `series_id` column: PromQL answers
/// every series with all its samples, where trusting the directory lost or misplaced some.
#[tokio::test]
async fn queries_do_not_trust_a_series_directory_that_does_not_fit_its_file() {
    for damage in ["a series left out", "rows shifted"] {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(StorageConfig {
            data_dir: dir.path().to_path_buf(),
            ..StorageConfig::default()
        })
        .unwrap();
        let t = TenantId::default_tenant();
        let t0 = 1_700_000_000_000i64;
        let mut samples = Vec::new();
        for s in 0..6 {
            let labels = Labels::from_pairs([("__name__", "dir_damage"), ("s", &format!("{s}"))]);
            for i in 0..20 {
                samples.push(Sample {
                    labels: labels.clone(),
                    timestamp_ms: t0 + i * 15_000,
                    value: SampleValue::Float(f64::from(s * 100) + i as f64),
                    exemplars: Vec::new(),
                });
            }
        }
        let write = MetricsWrite {
            samples,
            metadata: Vec::new(),
        };
        storage.write_metrics(&t, write).await.unwrap();
        storage.flush().await.unwrap();
        let snap = storage.snapshot(&t, Signal::Metrics, i64::MIN, i64::MAX);
        assert_eq!(snap.files.len(), 1);
        let path = snap.files_root.join(&snap.files[0].path);
        let data = std::fs::File::open(&path).unwrap();
        let meta = ParquetRecordBatchReaderBuilder::try_new(data).unwrap();
        let mut entries =
            strata_storage::files::series_directory(meta.metadata().file_metadata()).unwrap();
        entries.sort_unstable_by_key(|e| e.1);
        assert_eq!(entries.len(), 6);
        match damage {
            "a series left out" => {
                entries.remove(2);
            }
            _ => {
                entries[3].1 += 1;
            }
        }
        rewrite_directory(&path, entries);

        let app = strata_query::prom::router(storage.clone(), PromApiConfig::default());
        let at = (t0 + 19 * 15_000) / 1000;
        let (status, body) = get(
            &app,
            &format!("/api/v1/query?query=sum_over_time(dir_damage[10m])&time={at}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut got: Vec<(String, f64)> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = r["metric"]["s"].as_str().unwrap().to_string();
                (s, r["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<(String, f64)> = (0..6)
            .map(|s| (s.to_string(), f64::from(s * 100 * 20 + 190)))
            .collect();
        assert_eq!(got, want, "{damage}");
    }
}
