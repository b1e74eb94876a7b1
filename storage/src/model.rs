//! The storage data model: what every receiver converts to and every query reads.
//!
//! Wire types (OTLP, remote write) stop at the ingest crate; past it only these types travel.
//! Metrics follow the Prometheus data model (a series is its sorted label set). Logs and spans
//! keep every OTLP field; attribute maps are carried as JSON objects (see [`Attributes`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The metric-name label.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// The bit pattern Prometheus uses to mark a series stale (a NaN that no computation produces).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Returns true if `v` is the staleness marker (not merely any NaN).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The staleness marker value.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A sorted, duplicate-free label set, `__name__` included. Empty values are dropped, as in
/// Prometheus, where an empty label is the same as an absent one.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a label set from pairs in any order. A later duplicate name wins.
    pub fn from_pairs<I, N, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<Label> = Vec::new();
        for (n, val) in pairs {
            let label = Label {
                name: n.into(),
                value: val.into(),
            };
            if let Some(existing) = v.iter_mut().find(|l| l.name == label.name) {
                existing.value = label.value;
            } else {
                v.push(label);
            }
        }
        v.retain(|l| !l.value.is_empty());
        v.sort();
        Labels(v)
    }

    /// A label set from labels in any order, refusing duplicate names (`Err` holds the
    /// second label of the first duplicated name). Empty values are dropped. Unlike
    /// [`Labels::from_pairs`], whose later duplicates win, this is for input where a
    /// repeated name is an error; it costs a sort, not a search per label.
    pub fn from_unique(mut labels: Vec<Label>) -> Result<Self, Label> {
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(i) = labels.windows(2).position(|w| w[0].name == w[1].name) {
            return Err(labels.swap_remove(i + 1));
        }
        labels.retain(|l| !l.value.is_empty());
        Ok(Labels(labels))
    }

    /// A label set from labels already sorted by name, duplicate-free and without empty
    /// values (as taken from another `Labels`).
    pub(crate) fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels(labels)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME_LABEL).unwrap_or("")
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Stable 64-bit identity of the label set; the same across restarts and machines.
    pub fn series_id(&self) -> SeriesId {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for l in &self.0 {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xfe]);
        }
        SeriesId(h.digest())
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        write!(f, "{name}{{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME_LABEL) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        write!(f, "}}")
    }
}

/// The stable identity of a series (hash of its label set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesId(pub u64);

/// A bucket span of a native histogram: `offset` buckets skipped, then `length` buckets present.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketSpan {
    pub offset: i32,
    pub length: u32,
}

/// A native (exponential) histogram with absolute float bucket counts, as Prometheus's
/// `FloatHistogram`. OTLP exponential histograms are kept whole in this form.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NativeHistogram {
    /// Resolution: bucket boundaries are powers of `2^(2^-schema)`. -53 means custom buckets.
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<BucketSpan>,
    /// Absolute counts, one per bucket the spans name.
    pub positive_buckets: Vec<f64>,
    pub negative_spans: Vec<BucketSpan>,
    pub negative_buckets: Vec<f64>,
    /// 0 unknown, 1 counter reset, 2 not a counter reset, 3 gauge histogram.
    pub counter_reset_hint: u8,
    /// Upper bounds for schema -53 (custom buckets).
    pub custom_values: Vec<f64>,
}

/// The value of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SampleValue {
    Float(f64),
    Histogram(Box<NativeHistogram>),
}

/// An exemplar attached to a sample: usually carries `trace_id` and `span_id` labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// One sample of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub labels: Labels,
    pub timestamp_ms: i64,
    pub value: SampleValue,
    pub exemplars: Vec<Exemplar>,
}

/// Prometheus metric family type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// Metadata of a metric family (`/api/v1/metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetricMetadata {
    /// The family name (without `_bucket`/`_sum`/`_count` suffixes).
    pub metric_family_name: String,
    pub metric_type: MetricType,
    pub unit: String,
    pub help: String,
}

/// A write of metric samples (from OTLP or remote write), with the families' metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsWrite {
    pub samples: Vec<Sample>,
    pub metadata: Vec<MetricMetadata>,
}

/// An attribute map encoded as a JSON object (`{"key": value}`), values typed as JSON allows:
/// strings, integers, doubles, booleans, arrays and nested objects (OTLP kvlists); bytes are
/// base64 strings. Kept as text so any attribute stays queryable without being an index key.
pub type Attributes = String;

/// The resource and instrumentation scope a log record or span came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub service_name: String,
    pub resource_attributes: Attributes,
    pub resource_dropped_attributes_count: u32,
    pub resource_schema_url: String,
    pub scope_name: String,
    pub scope_version: String,
    pub scope_attributes: Attributes,
    pub scope_dropped_attributes_count: u32,
    pub scope_schema_url: String,
}

/// One OTLP log record with every field kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Nanoseconds since the epoch; the observed time when the record has none.
    pub timestamp_ns: i64,
    pub observed_timestamp_ns: i64,
    pub severity_number: i32,
    pub severity_text: String,
    /// The body as text: a string body as is, any other value as JSON.
    pub body: String,
    /// Which OTLP AnyValue kind the body was: `string`, `int`, `double`, `bool`, `bytes`,
    /// `array`, `kvlist` or `empty`.
    pub body_type: String,
    pub attributes: Attributes,
    pub dropped_attributes_count: u32,
    pub flags: u32,
    /// Lower-case hex, empty when absent.
    pub trace_id: String,
    pub span_id: String,
    pub event_name: String,
    pub origin: Origin,
    /// The stream labels (configured resource attributes plus severity), sorted.
    pub stream: Labels,
}

/// A span event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub time_ns: i64,
    pub name: String,
    pub attributes: serde_json::Value,
    pub dropped_attributes_count: u32,
}

/// A span link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: serde_json::Value,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

/// One OTLP span with every field kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Lower-case hex.
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    /// OTLP SpanKind number (0 unspecified, 1 internal, 2 server, 3 client, 4 producer,
    /// 5 consumer).
    pub kind: i32,
    pub start_time_ns: i64,
    pub end_time_ns: i64,
    pub attributes: Attributes,
    pub dropped_attributes_count: u32,
    pub events: Vec<SpanEvent>,
    pub dropped_events_count: u32,
    pub links: Vec<SpanLink>,
    pub dropped_links_count: u32,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    pub status_message: String,
    pub origin: Origin,
}

/// The three kinds of telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    Metrics,
    Logs,
    Traces,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Logs, Signal::Traces];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Traces => "traces",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attribute name as a label name, as Loki and Prometheus escape names: every character
/// outside `[a-zA-Z0-9_]` becomes `_` (`service.name` -> `service_name`), and a leading
/// digit gets a `_` in front.
pub fn label_name(attr: &str) -> String {
    let mut s: String = attr
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// The level of a log record as Loki detects it from OTLP severity: the severity text in
/// lower case, else one derived from the severity number, else `unknown`.
pub fn severity_level(severity_number: i32, severity_text: &str) -> String {
    if !severity_text.is_empty() {
        return severity_text.to_ascii_lowercase();
    }
    match severity_number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "unknown",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_dedupe_and_drop_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        let names: Vec<_> = l
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(names, vec![("a", "1"), ("b", "3")]);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn series_id_is_order_independent_and_distinguishes_boundaries() {
        let a = Labels::from_pairs([("x", "1"), ("y", "2")]);
        let b = Labels::from_pairs([("y", "2"), ("x", "1")]);
        assert_eq!(a.series_id(), b.series_id());
        let c = Labels::from_pairs([("x", "12")]);
        let d = Labels::from_pairs([("x", "1"), ("2", "")]);
        assert_ne!(c.series_id(), d.series_id());
    }

    #[test]
    fn stale_marker_is_a_specific_nan() {
        assert!(is_stale_marker(stale_marker()));
        assert!(!is_stale_marker(f64::NAN));
    }
}
