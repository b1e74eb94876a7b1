//! Self-metrics: tiny lock-free counters, gauges and histograms rendered in the Prometheus
//! text format, plus the storage engine's own metric definitions (all named `strata_*`).
//!
//! Other crates define their metrics with the same types and list them in their own
//! `metrics.rs`; the binary renders every crate's list on `/metrics`.

use crate::model::Signal;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Anything that can write itself in the Prometheus text exposition format.
pub trait Render: Sync {
    fn render(&self, out: &mut String);
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A monotonically increasing count.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    v: AtomicU64,
}

impl Counter {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Counter {
            name,
            help,
            v: AtomicU64::new(0),
        }
    }
    pub fn add(&self, n: u64) {
        self.v.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.v.load(Ordering::Relaxed)
    }
}

impl Render for Counter {
    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        let _ = writeln!(out, "{} {}", self.name, self.get());
    }
}

/// A value that goes up and down.
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    v: AtomicI64,
}

impl Gauge {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Gauge {
            name,
            help,
            v: AtomicI64::new(0),
        }
    }
    pub fn set(&self, v: i64) {
        self.v.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, v: i64) {
        self.v.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.v.load(Ordering::Relaxed)
    }
}

impl Render for Gauge {
    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        let _ = writeln!(out, "{} {}", self.name, self.get());
    }
}

/// A counter with one series per signal (`signal="metrics|logs|traces"`).
pub struct SignalCounter {
    name: &'static str,
    help: &'static str,
    v: [AtomicU64; 3],
}

impl SignalCounter {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        SignalCounter {
            name,
            help,
            v: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
    fn slot(signal: Signal) -> usize {
        match signal {
            Signal::Metrics => 0,
            Signal::Logs => 1,
            Signal::Traces => 2,
        }
    }
    pub fn add(&self, signal: Signal, n: u64) {
        self.v[Self::slot(signal)].fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self, signal: Signal) -> u64 {
        self.v[Self::slot(signal)].load(Ordering::Relaxed)
    }
}

impl Render for SignalCounter {
    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for s in Signal::ALL {
            let _ = writeln!(out, "{}{{signal=\"{s}\"}} {}", self.name, self.get(s));
        }
    }
}

/// A histogram over fixed bucket bounds (seconds).
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    counts: [AtomicU64; 16],
    count: AtomicU64,
    /// Sum in nanoseconds-equivalent micro units to stay integral.
    sum_micros: AtomicU64,
}

/// Latency buckets from 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Histogram {
    pub const fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        Histogram {
            name,
            help,
            bounds,
            counts: [const { AtomicU64::new(0) }; 16],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
    pub fn observe(&self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate().take(16) {
            if v <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }
}

impl Render for Histogram {
    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (i, b) in self.bounds.iter().enumerate().take(16) {
            let _ = writeln!(
                out,
                "{}_bucket{{le=\"{b}\"}} {}",
                self.name,
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{}_bucket{{le=\"+Inf\"}} {count}", self.name);
        let _ = writeln!(
            out,
            "{}_sum {}",
            self.name,
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{}_count {count}", self.name);
    }
}

pub static WAL_BYTES_WRITTEN: Counter = Counter::new(
    "strata_wal_bytes_written_total",
    "Bytes appended to the write-ahead log.",
);
pub static WAL_RECORDS_WRITTEN: Counter = Counter::new(
    "strata_wal_records_written_total",
    "Records appended to the write-ahead log.",
);
pub static WAL_FSYNC_SECONDS: Histogram = Histogram::new(
    "strata_wal_fsync_duration_seconds",
    "Time to write and fsync one group of WAL records.",
    LATENCY_BUCKETS,
);
pub static WAL_CORRUPT_BYTES: Counter = Counter::new(
    "strata_wal_corrupt_bytes_dropped_total",
    "Bytes of torn or corrupt WAL records dropped during replay.",
);
pub static WAL_FAILED: Gauge = Gauge::new(
    "strata_wal_failed",
    "1 when the WAL refuses writes after an fsync or write error.",
);
pub static WAL_DISK_BYTES: Gauge = Gauge::new(
    "strata_wal_disk_bytes",
    "Bytes in write-ahead log segment files.",
);
pub static ROWS_WRITTEN: SignalCounter = SignalCounter::new(
    "strata_storage_rows_written_total",
    "Rows (samples, log records, spans) durably written, per signal.",
);
pub static MEMTABLE_BYTES: Gauge = Gauge::new(
    "strata_memtable_bytes",
    "Bytes of Arrow data held in memtables, waiting to be flushed.",
);
pub static FLUSHES: Counter =
    Counter::new("strata_flushes_total", "Memtable flushes to Parquet files.");
pub static FLUSH_SECONDS: Histogram = Histogram::new(
    "strata_flush_duration_seconds",
    "Time to flush all memtables to Parquet.",
    LATENCY_BUCKETS,
);
pub static FILES: Gauge = Gauge::new("strata_files", "Parquet files named by the catalog.");
pub static FILE_BYTES: Gauge = Gauge::new(
    "strata_file_bytes",
    "Bytes in Parquet files named by the catalog.",
);
pub static COMPACTIONS: Counter = Counter::new(
    "strata_compactions_total",
    "Compactions that merged files of one partition.",
);
pub static RETENTION_DELETED_FILES: Counter = Counter::new(
    "strata_retention_deleted_files_total",
    "Files deleted because their partition passed the retention age.",
);
pub static QUARANTINED_FILES: Counter = Counter::new(
    "strata_quarantined_files_total",
    "Corrupt data files compaction could not read, moved out of the catalog into quarantine/.",
);
pub static SERIES: Gauge = Gauge::new(
    "strata_series",
    "Metric series in the label index, all tenants.",
);

/// The storage engine's metrics, for `/metrics`.
pub static STORAGE_METRICS: &[&dyn Render] = &[
    &WAL_BYTES_WRITTEN,
    &WAL_RECORDS_WRITTEN,
    &WAL_FSYNC_SECONDS,
    &WAL_CORRUPT_BYTES,
    &WAL_FAILED,
    &WAL_DISK_BYTES,
    &ROWS_WRITTEN,
    &MEMTABLE_BYTES,
    &FLUSHES,
    &FLUSH_SECONDS,
    &FILES,
    &FILE_BYTES,
    &COMPACTIONS,
    &RETENTION_DELETED_FILES,
    &QUARANTINED_FILES,
    &SERIES,
];

/// Renders a list of metrics.
pub fn render_all(metrics: &[&dyn Render], out: &mut String) {
    for m in metrics {
        m.render(out);
    }
}
