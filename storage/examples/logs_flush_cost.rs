//! Where a logs flush's CPU goes, phase by phase, on real lines:
//!
//! ```sh
//! cargo run --release -p strata-ingest --example loki_bench_lines -- --gb 0.1 \
//!     --start-ns 1700000000000000000 --bodies /tmp/b.bin --summary /tmp/s.json > /tmp/lines.txt
//! cargo run --release -p strata-storage --example logs_flush_cost -- /tmp/lines.txt
//! ```
//!
//! Builds memtable-sized batches from the lines (Loki-push records, streams
//! `{service_name, level}` as `benches/logs/run.py` sends them), then times the flush's
//! phases in CPU seconds per GB of lines: the row order, the Parquet encoding (per column group) and the token index.

use strata_storage::files::{encode_parquet_ordered, sort_order};
use strata_storage::model::{Labels, LogRecord, Origin, Signal};
use strata_storage::schema::logs_batch;
use strata_storage::token_index::TokenIndex;

/// CPU time of this thread in seconds (`/proc/thread-self/schedstat`), so that a busy
/// machine does not inflate the figures.
fn cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

const SERVICES: [&str; 8] = [
    "checkout", "cart", "frontend", "payments", "search", "auth", "shipping", "email",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: logs_flush_cost LINES_FILE")?;
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().collect();
    let raw: usize = lines.iter().map(|l| l.len() + 1).sum();
    let t0 = 1_700_000_000_000_000_000i64;
    let mut batches = Vec::new();
    let t = cpu();
    for (c, chunk) in lines.chunks(4096).enumerate() {
        let recs: Vec<LogRecord> = chunk
            .iter()
            .enumerate()
            .map(|(j, l)| {
                let i = c * 4096 + j;
                let service = SERVICES[i * 7 % 8];
                let level = ["info", "info", "info", "debug", "warn", "error"][i * 13 % 6];
                LogRecord {
                    timestamp_ns: t0 + i as i64 * 1_700_000,
                    observed_timestamp_ns: t0 + i as i64 * 1_700_000 + 5,
                    body: (*l).to_owned(),
                    body_type: "string".into(),
                    attributes: "{}".into(),
                    origin: Origin {
                        service_name: service.into(),
                        resource_attributes: "{}".into(),
                        scope_attributes: "{}".into(),
                        ..Origin::default()
                    },
                    stream: Labels::from_pairs([("service_name", service), ("level", level)]),
                    ..LogRecord::default()
                }
            })
            .collect();
        batches.push(logs_batch(&recs)?);
    }
    let build = cpu() - t;
    let t = cpu();
    let order = sort_order(Signal::Logs, &batches)?;
    let sort = cpu() - t;
    let t = cpu();
    let bytes = encode_parquet_ordered(Signal::Logs, &batches, &order, None, &|b| Ok(b))?;
    let encode = cpu() - t;
    let t = cpu();
    let bodies: Vec<&str> = order
        .iter()
        .map(|&(b, r)| {
            batches[b as usize]
                .column_by_name("body")
                .and_then(|c| {
                    c.as_any()
                        .downcast_ref::<datafusion::arrow::array::StringArray>()
                })
                .map_or("", |a| a.value(r as usize))
        })
        .collect();
    let index = TokenIndex::build(&bodies, 128 * 1024).encode();
    let tokens = cpu() - t;
    // Reading every column back (what a log query's scan decodes).
    let t = cpu();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes.clone()),
        )?
        .with_batch_size(16 * 1024)
        .build()?;
    let mut rows = 0;
    for b in reader {
        rows += b?.num_rows();
    }
    let read = cpu() - t;
    assert_eq!(rows, lines.len());
    let gb = raw as f64 / 1e9;
    println!(
        "{} lines, {:.1} MB: memtable batches {:.2} s/GB, sort {:.2} s/GB, parquet {:.2} s/GB \
         ({:.1} MB), token index {:.2} s/GB ({:.2} MB); reading the file back {:.2} s/GB",
        lines.len(),
        raw as f64 / 1e6,
        build / gb,
        sort / gb,
        encode / gb,
        bytes.len() as f64 / 1e6,
        tokens / gb,
        index.len() as f64 / 1e6,
        read / gb
    );
    Ok(())
}
