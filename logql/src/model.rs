//! Data model shared with log sources: entries, streams, the selection a
//! source is asked for, and limits.

use std::collections::HashSet;
use std::time::Duration;

use crate::ast::LineFilter;
use crate::error::SourceError;
use crate::matcher::Matcher;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub ts_ns: i64,
    pub line: String,
    /// Structured metadata (non-indexed labels: OTLP attributes, trace_id...).
    pub metadata: Vec<(String, String)>,
    /// Labels extracted by parsers (filled in query results; sources leave it empty).
    pub parsed: Vec<(String, String)>,
}

impl Entry {
    pub fn new(ts_ns: i64, line: impl Into<String>) -> Self {
        Entry {
            ts_ns,
            line: line.into(),
            metadata: Vec::new(),
            parsed: Vec::new(),
        }
    }

    pub fn with_metadata(mut self, metadata: Vec<(String, String)>) -> Self {
        self.metadata = metadata;
        self
    }
}

/// A log stream: its label set (sorted by name) and entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    pub labels: Vec<(String, String)>,
    pub entries: Vec<Entry>,
}

impl Stream {
    /// `{a="b", c="d"}` as Loki prints label sets.
    pub fn labels_string(&self) -> String {
        labels_string(&self.labels)
    }
}

/// A label set: `(name, value)` pairs sorted by name.
pub type LabelPairs = Vec<(String, String)>;

/// `{a="b", c="d"}`.
pub fn labels_string(labels: &[(String, String)]) -> String {
    let mut s = String::from("{");
    for (i, (n, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(n);
        s.push('=');
        s.push_str(&serde_json::Value::String(v.clone()).to_string());
    }
    s.push('}');
    s
}

/// What the engine asks a source for: streams matching `matchers` with
/// entries in `[start_ns, end_ns)`.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    pub matchers: &'a [Matcher],
    pub start_ns: i64,
    /// Exclusive.
    pub end_ns: i64,
    /// The leading line filters of the pipeline: a hint the source may use to
    /// skip data; the engine applies them again. Ops a source does not
    /// understand must be ignored, never used to drop data.
    pub line_filters: &'a [LineFilter],
    /// Set for log queries whose whole pipeline is `line_filters`: the query
    /// returns at most this many lines in this direction, so a source that
    /// applies every one of `line_filters` may return just the newest
    /// (`Backward`) or oldest (`Forward`) that many matching entries of each
    /// stream. `None` when every entry in range is needed (metric queries).
    pub limit: Option<(usize, Direction)>,
    /// False when the query uses only the entries' timestamps and labels (a
    /// `count_over_time` with no pipeline): a source may then hand back empty lines.
    pub need_lines: bool,
    /// When set, the only label names the query uses (a `by` grouping with no
    /// pipeline): a source may leave out structured metadata when every selected stream
    /// already has a label of each of these names.
    pub label_names: Option<&'a HashSet<String>>,
}

/// Anything that can return log streams.
pub trait LogSource {
    fn select(&self, sel: &Selection<'_>) -> Result<Vec<Stream>, SourceError>;

    /// The entries of [`Self::select`] handed to `f` a chunk at a time, so that a
    /// consumer that aggregates as it reads (metric queries) never holds the whole
    /// selection: a source may cut a stream into several chunks (per file, row group or
    /// memtable batch), each chunk's entries in time order (chunks of one stream may
    /// overlap in time). Stops early when `f` returns false. The
    /// default hands over each stream of `select` whole, in `select`'s order.
    fn select_chunks(
        &self,
        sel: &Selection<'_>,
        f: &mut dyn FnMut(Stream) -> bool,
    ) -> Result<(), SourceError> {
        for s in self.select(sel)? {
            if !f(s) {
                break;
            }
        }
        Ok(())
    }
}

/// Streams held in memory (tests, small tools).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub streams: Vec<Stream>,
}

impl MemorySource {
    pub fn new(mut streams: Vec<Stream>) -> Self {
        for s in &mut streams {
            s.labels.sort();
            s.entries.sort_by_key(|e| e.ts_ns);
        }
        MemorySource { streams }
    }
}

impl LogSource for MemorySource {
    fn select(&self, sel: &Selection<'_>) -> Result<Vec<Stream>, SourceError> {
        let mut out = Vec::new();
        for s in &self.streams {
            if !sel.matchers.iter().all(|m| m.matches_labels(&s.labels)) {
                continue;
            }
            let entries: Vec<Entry> = s
                .entries
                .iter()
                .filter(|e| e.ts_ns >= sel.start_ns && e.ts_ns < sel.end_ns)
                .cloned()
                .collect();
            if !entries.is_empty() {
                out.push(Stream {
                    labels: s.labels.clone(),
                    entries,
                });
            }
        }
        Ok(out)
    }
}

/// Order of log lines in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

impl Direction {
    /// Parses Loki's `direction` parameter (`forward`/`backward`, any case).
    pub fn parse(s: &str) -> Option<Direction> {
        match s.to_ascii_lowercase().as_str() {
            "forward" => Some(Direction::Forward),
            "backward" => Some(Direction::Backward),
            _ => None,
        }
    }
}

/// Resource limits of one query.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `limit` a log query may ask for (Loki's `max_entries_limit_per_query`).
    pub max_entries: usize,
    /// Most bytes of log lines a query may read from the source.
    pub max_bytes_scanned: u64,
    /// Most series a metric query may produce (Loki's `max_query_series`).
    pub max_series: usize,
    /// Wall-clock budget of one query.
    pub timeout: Option<Duration>,
    /// Most steps of a range query (Loki: 11,000).
    pub max_points: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 5000,
            max_bytes_scanned: 1 << 30,
            max_series: 500,
            timeout: Some(Duration::from_secs(60)),
            max_points: 11_000,
        }
    }
}

/// Work done by one query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub bytes_processed: u64,
    pub lines_processed: u64,
    /// Bytes of structured metadata read (included in `bytes_processed`).
    pub metadata_bytes_processed: u64,
    /// Lines that passed the whole pipeline.
    pub post_filter_lines: u64,
    pub entries_returned: u64,
    pub streams_selected: u64,
    pub exec_time_secs: f64,
    /// The direction of a log query (the order of its entries).
    pub direction: Option<Direction>,
}
