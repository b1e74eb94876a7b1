//! A spans file with a page that makes the Parquet decoder panic (a damaged
//! `DELTA_BYTE_ARRAY` page, as storage's compaction test makes one) is an error of the
//! queries that read it, not a panic unwinding through a query thread: trace by id, scans
//! (search) and the trace APIs answer it as an internal error, and queries that do not
//! need the damaged file still answer.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use std::path::Path;
use strata_query::traces::limits::Budget;
use strata_query::traces::{TraceApiConfig, read, router};
use strata_storage::model::{Origin, Signal, Span};
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

/// Rewrites a spans file uncompressed (its dedicated `user.id` column `DELTA_BYTE_ARRAY`),
/// then makes the first suffix length of that column's page -1: the decoder then slices
/// out of bounds (a panic, not an error). As storage's `corrupt_delta_page`.
fn corrupt_delta_page(path: &Path, rows: usize) {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
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
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    for b in builder.build().unwrap() {
        w.write(&b.unwrap()).unwrap();
    }
    w.close().unwrap();
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
    std::fs::write(path, &out).unwrap();
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
    corrupt_delta_page(&damaged, 2000);

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
    let get = |uri: String| {
        let app = app.clone();
        async move {
            let resp = app
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    for uri in [
        format!("/api/traces/{DAMAGED}"),
        format!("/api/v2/traces/{DAMAGED}"),
        format!("/jaeger/api/traces/{DAMAGED}"),
    ] {
        let (status, body) = get(uri.clone()).await;
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
    let (status, body) = get(format!("/api/traces/{GOOD}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
