//! What an OTLP logs or metrics request takes in memory once decoded, checked before it is.
//!
//! Logs and metrics are decoded into prost structs (and OTLP/JSON into the same structs by
//! serde) before any limit applies. Most of a request's decoded size is its strings, about
//! their size on the wire, but an element of a repeated message field costs its struct
//! whatever it holds: an empty log record is 2 bytes on the wire and 184 in memory, an empty
//! attribute 2 and 64, so a 64 MiB body of them would become gigabytes. A walk of the wire
//! format (nothing collected, the request's schema in the tables below) adds up what prost
//! would allocate, and a request that would take more than [`MAX_EXPANSION`] times its size
//! (at least [`MIN_DECODED_BUDGET`]) is refused whole, `413` / `RESOURCE_EXHAUSTED`, before
//! prost runs. Real telemetry takes a few times its size; only runs of (nearly) empty items
//! come near the limit. OTLP/JSON is bounded the same way by counting its objects (at
//! [`MAX_JSON_EXPANSION`]).
//!
//! The walk stops at malformed framing (a length past the end, a bad varint or key), which
//! prost refuses as well, with prost's form of message naming the field. Anything prost
//! checks inside a well-framed field (UTF-8, a known field's wire type) is left to prost.

use crate::protowire::{At, Fields, I32, I64, LEN, Named, VARINT, Wire, WireError};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point::Buckets,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::mem::size_of;
use strata_storage::model::Signal;

/// The most a request may take decoded, in multiples of its (decompressed) size.
pub const MAX_EXPANSION: usize = 16;

/// The same for OTLP/JSON, whose estimate is coarser (every object counted as the
/// signal's largest struct, though most are attributes and values a fraction of it):
/// twice as much, so that real JSON of many small attributes stays well clear of it while
/// runs of empty objects (60 to 90 times their size) are still refused.
pub const MAX_JSON_EXPANSION: usize = 2 * MAX_EXPANSION;

/// What any request may take decoded, however small.
pub const MIN_DECODED_BUDGET: usize = 4 << 20;

/// A request refused for what it would take decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {body_bytes}-byte request would take about {decoded_bytes} bytes in memory once \
     decoded, more than the limit of {limit} ({times} times its size, at least \
     {MIN_DECODED_BUDGET}): it holds {holds}; send fewer or fuller items"
)]
pub struct Expands {
    pub body_bytes: usize,
    pub decoded_bytes: usize,
    pub limit: usize,
    /// The limit in multiples of the body ([`MAX_EXPANSION`] or [`MAX_JSON_EXPANSION`]).
    pub times: usize,
    /// What takes the most: `4000000 LogRecord messages of 184 bytes each`.
    pub holds: String,
}

/// The memory budget of a request of `body_bytes`.
pub fn budget(body_bytes: usize) -> usize {
    budget_of(body_bytes, MAX_EXPANSION)
}

fn budget_of(body_bytes: usize, times: usize) -> usize {
    body_bytes.saturating_mul(times).max(MIN_DECODED_BUDGET)
}

/// How a field's values take memory once decoded.
#[derive(Clone, Copy)]
enum Child {
    /// A repeated message: each element takes its struct, and its fields.
    Repeated(&'static Schema),
    /// A singular message (or oneof variant): inside its parent's struct; its fields take.
    Inline(&'static Schema),
    /// A repeated string: a `String` each, and its bytes.
    Texts,
    /// A repeated 8-byte number, packed (its bytes, 8 per element at most: packed varints
    /// when `varint`) or not (8 per element).
    Numbers { varint: bool },
}

/// A message type: its name, fields (for errors, as prost names them), struct size and the
/// fields that take more than their bytes. A length-delimited field not among `children`
/// is a string or bytes (its length); fields of other wire types are inside the struct.
struct Schema {
    id: usize,
    name: &'static str,
    size: usize,
    fields: &'static [(u32, &'static str, u8)],
    children: &'static [(u32, Child)],
}

impl Schema {
    fn child(&self, n: u32) -> Option<Child> {
        self.children.iter().find(|(f, _)| *f == n).map(|(_, c)| *c)
    }

    fn field_name(&self, n: u32) -> &'static str {
        self.fields
            .iter()
            .find(|(f, _, _)| *f == n)
            .map_or("?", |(_, name, _)| name)
    }
}

/// Every message type walked, in [`Schema::id`] order: a schema's id is its place here
/// (checked when compiled), which [`Tally`] counts by.
static ALL: [&Schema; 27] = [
    &KEY_VALUE,
    &ANY_VALUE,
    &ARRAY_VALUE,
    &KEY_VALUE_LIST,
    &SCOPE,
    &RESOURCE,
    &ENTITY_REF,
    &LOGS_REQUEST,
    &RESOURCE_LOGS,
    &SCOPE_LOGS,
    &LOG_RECORD,
    &METRICS_REQUEST,
    &RESOURCE_METRICS,
    &SCOPE_METRICS,
    &METRIC,
    &GAUGE,
    &SUM,
    &HISTOGRAM,
    &EXPONENTIAL_HISTOGRAM,
    &SUMMARY,
    &NUMBER_POINT,
    &HISTOGRAM_POINT,
    &EXPONENTIAL_POINT,
    &BUCKETS,
    &SUMMARY_POINT,
    &QUANTILE,
    &EXEMPLAR,
];

const SCHEMAS: usize = ALL.len();

const _: () = {
    let mut i = 0;
    while i < SCHEMAS {
        assert!(ALL[i].id == i, "a schema's id is not its place in ALL");
        i += 1;
    }
};

static KEY_VALUE: Schema = Schema {
    id: 0,
    name: "KeyValue",
    size: size_of::<KeyValue>(),
    fields: &[
        (1, "key", LEN),
        (2, "value", LEN),
        (3, "key_strindex", VARINT),
    ],
    children: &[(2, Child::Inline(&ANY_VALUE))],
};
static ANY_VALUE: Schema = Schema {
    id: 1,
    name: "AnyValue",
    size: size_of::<AnyValue>(),
    fields: &[
        (1, "string_value", LEN),
        (2, "bool_value", VARINT),
        (3, "int_value", VARINT),
        (4, "double_value", I64),
        (5, "array_value", LEN),
        (6, "kvlist_value", LEN),
        (7, "bytes_value", LEN),
        (8, "string_value_strindex", VARINT),
    ],
    children: &[
        (5, Child::Inline(&ARRAY_VALUE)),
        (6, Child::Inline(&KEY_VALUE_LIST)),
    ],
};
static ARRAY_VALUE: Schema = Schema {
    id: 2,
    name: "ArrayValue",
    size: size_of::<ArrayValue>(),
    fields: &[(1, "values", LEN)],
    children: &[(1, Child::Repeated(&ANY_VALUE))],
};
static KEY_VALUE_LIST: Schema = Schema {
    id: 3,
    name: "KeyValueList",
    size: size_of::<KeyValueList>(),
    fields: &[(1, "values", LEN)],
    children: &[(1, Child::Repeated(&KEY_VALUE))],
};
static SCOPE: Schema = Schema {
    id: 4,
    name: "InstrumentationScope",
    size: size_of::<InstrumentationScope>(),
    fields: &[
        (1, "name", LEN),
        (2, "version", LEN),
        (3, "attributes", LEN),
        (4, "dropped_attributes_count", VARINT),
    ],
    children: &[(3, Child::Repeated(&KEY_VALUE))],
};
static RESOURCE: Schema = Schema {
    id: 5,
    name: "Resource",
    size: size_of::<Resource>(),
    fields: &[
        (1, "attributes", LEN),
        (2, "dropped_attributes_count", VARINT),
        (3, "entity_refs", LEN),
    ],
    children: &[
        (1, Child::Repeated(&KEY_VALUE)),
        (3, Child::Repeated(&ENTITY_REF)),
    ],
};
static ENTITY_REF: Schema = Schema {
    id: 6,
    name: "EntityRef",
    size: size_of::<EntityRef>(),
    fields: &[
        (1, "schema_url", LEN),
        (2, "type", LEN),
        (3, "id_keys", LEN),
        (4, "description_keys", LEN),
    ],
    children: &[(3, Child::Texts), (4, Child::Texts)],
};

static LOGS_REQUEST: Schema = Schema {
    id: 7,
    name: "ExportLogsServiceRequest",
    size: size_of::<ExportLogsServiceRequest>(),
    fields: &[(1, "resource_logs", LEN)],
    children: &[(1, Child::Repeated(&RESOURCE_LOGS))],
};
static RESOURCE_LOGS: Schema = Schema {
    id: 8,
    name: "ResourceLogs",
    size: size_of::<ResourceLogs>(),
    fields: &[
        (1, "resource", LEN),
        (2, "scope_logs", LEN),
        (3, "schema_url", LEN),
    ],
    children: &[
        (1, Child::Inline(&RESOURCE)),
        (2, Child::Repeated(&SCOPE_LOGS)),
    ],
};
static SCOPE_LOGS: Schema = Schema {
    id: 9,
    name: "ScopeLogs",
    size: size_of::<ScopeLogs>(),
    fields: &[
        (1, "scope", LEN),
        (2, "log_records", LEN),
        (3, "schema_url", LEN),
    ],
    children: &[
        (1, Child::Inline(&SCOPE)),
        (2, Child::Repeated(&LOG_RECORD)),
    ],
};
static LOG_RECORD: Schema = Schema {
    id: 10,
    name: "LogRecord",
    size: size_of::<LogRecord>(),
    fields: &[
        (1, "time_unix_nano", I64),
        (11, "observed_time_unix_nano", I64),
        (2, "severity_number", VARINT),
        (3, "severity_text", LEN),
        (5, "body", LEN),
        (6, "attributes", LEN),
        (7, "dropped_attributes_count", VARINT),
        (8, "flags", I32),
        (9, "trace_id", LEN),
        (10, "span_id", LEN),
        (12, "event_name", LEN),
    ],
    children: &[
        (5, Child::Inline(&ANY_VALUE)),
        (6, Child::Repeated(&KEY_VALUE)),
    ],
};

static METRICS_REQUEST: Schema = Schema {
    id: 11,
    name: "ExportMetricsServiceRequest",
    size: size_of::<ExportMetricsServiceRequest>(),
    fields: &[(1, "resource_metrics", LEN)],
    children: &[(1, Child::Repeated(&RESOURCE_METRICS))],
};
static RESOURCE_METRICS: Schema = Schema {
    id: 12,
    name: "ResourceMetrics",
    size: size_of::<ResourceMetrics>(),
    fields: &[
        (1, "resource", LEN),
        (2, "scope_metrics", LEN),
        (3, "schema_url", LEN),
    ],
    children: &[
        (1, Child::Inline(&RESOURCE)),
        (2, Child::Repeated(&SCOPE_METRICS)),
    ],
};
static SCOPE_METRICS: Schema = Schema {
    id: 13,
    name: "ScopeMetrics",
    size: size_of::<ScopeMetrics>(),
    fields: &[
        (1, "scope", LEN),
        (2, "metrics", LEN),
        (3, "schema_url", LEN),
    ],
    children: &[(1, Child::Inline(&SCOPE)), (2, Child::Repeated(&METRIC))],
};
static METRIC: Schema = Schema {
    id: 14,
    name: "Metric",
    size: size_of::<Metric>(),
    fields: &[
        (1, "name", LEN),
        (2, "description", LEN),
        (3, "unit", LEN),
        (5, "gauge", LEN),
        (7, "sum", LEN),
        (9, "histogram", LEN),
        (10, "exponential_histogram", LEN),
        (11, "summary", LEN),
        (12, "metadata", LEN),
    ],
    children: &[
        (5, Child::Inline(&GAUGE)),
        (7, Child::Inline(&SUM)),
        (9, Child::Inline(&HISTOGRAM)),
        (10, Child::Inline(&EXPONENTIAL_HISTOGRAM)),
        (11, Child::Inline(&SUMMARY)),
        (12, Child::Repeated(&KEY_VALUE)),
    ],
};
static GAUGE: Schema = Schema {
    id: 15,
    name: "Gauge",
    size: size_of::<Gauge>(),
    fields: &[(1, "data_points", LEN)],
    children: &[(1, Child::Repeated(&NUMBER_POINT))],
};
static SUM: Schema = Schema {
    id: 16,
    name: "Sum",
    size: size_of::<Sum>(),
    fields: &[
        (1, "data_points", LEN),
        (2, "aggregation_temporality", VARINT),
        (3, "is_monotonic", VARINT),
    ],
    children: &[(1, Child::Repeated(&NUMBER_POINT))],
};
static HISTOGRAM: Schema = Schema {
    id: 17,
    name: "Histogram",
    size: size_of::<Histogram>(),
    fields: &[
        (1, "data_points", LEN),
        (2, "aggregation_temporality", VARINT),
    ],
    children: &[(1, Child::Repeated(&HISTOGRAM_POINT))],
};
static EXPONENTIAL_HISTOGRAM: Schema = Schema {
    id: 18,
    name: "ExponentialHistogram",
    size: size_of::<ExponentialHistogram>(),
    fields: &[
        (1, "data_points", LEN),
        (2, "aggregation_temporality", VARINT),
    ],
    children: &[(1, Child::Repeated(&EXPONENTIAL_POINT))],
};
static SUMMARY: Schema = Schema {
    id: 19,
    name: "Summary",
    size: size_of::<Summary>(),
    fields: &[(1, "data_points", LEN)],
    children: &[(1, Child::Repeated(&SUMMARY_POINT))],
};
static NUMBER_POINT: Schema = Schema {
    id: 20,
    name: "NumberDataPoint",
    size: size_of::<NumberDataPoint>(),
    fields: &[
        (7, "attributes", LEN),
        (2, "start_time_unix_nano", I64),
        (3, "time_unix_nano", I64),
        (4, "as_double", I64),
        (6, "as_int", I64),
        (5, "exemplars", LEN),
        (8, "flags", VARINT),
    ],
    children: &[
        (7, Child::Repeated(&KEY_VALUE)),
        (5, Child::Repeated(&EXEMPLAR)),
    ],
};
static HISTOGRAM_POINT: Schema = Schema {
    id: 21,
    name: "HistogramDataPoint",
    size: size_of::<HistogramDataPoint>(),
    fields: &[
        (9, "attributes", LEN),
        (2, "start_time_unix_nano", I64),
        (3, "time_unix_nano", I64),
        (4, "count", I64),
        (5, "sum", I64),
        (6, "bucket_counts", LEN),
        (7, "explicit_bounds", LEN),
        (8, "exemplars", LEN),
        (10, "flags", VARINT),
        (11, "min", I64),
        (12, "max", I64),
    ],
    children: &[
        (9, Child::Repeated(&KEY_VALUE)),
        (6, Child::Numbers { varint: false }),
        (7, Child::Numbers { varint: false }),
        (8, Child::Repeated(&EXEMPLAR)),
    ],
};
static EXPONENTIAL_POINT: Schema = Schema {
    id: 22,
    name: "ExponentialHistogramDataPoint",
    size: size_of::<ExponentialHistogramDataPoint>(),
    fields: &[
        (1, "attributes", LEN),
        (2, "start_time_unix_nano", I64),
        (3, "time_unix_nano", I64),
        (4, "count", I64),
        (5, "sum", I64),
        (6, "scale", VARINT),
        (7, "zero_count", I64),
        (8, "positive", LEN),
        (9, "negative", LEN),
        (10, "flags", VARINT),
        (11, "exemplars", LEN),
        (12, "min", I64),
        (13, "max", I64),
        (14, "zero_threshold", I64),
    ],
    children: &[
        (1, Child::Repeated(&KEY_VALUE)),
        (8, Child::Inline(&BUCKETS)),
        (9, Child::Inline(&BUCKETS)),
        (11, Child::Repeated(&EXEMPLAR)),
    ],
};
static BUCKETS: Schema = Schema {
    id: 23,
    name: "Buckets",
    size: size_of::<Buckets>(),
    fields: &[(1, "offset", VARINT), (2, "bucket_counts", LEN)],
    children: &[(2, Child::Numbers { varint: true })],
};
static SUMMARY_POINT: Schema = Schema {
    id: 24,
    name: "SummaryDataPoint",
    size: size_of::<SummaryDataPoint>(),
    fields: &[
        (7, "attributes", LEN),
        (2, "start_time_unix_nano", I64),
        (3, "time_unix_nano", I64),
        (4, "count", I64),
        (5, "sum", I64),
        (6, "quantile_values", LEN),
        (8, "flags", VARINT),
    ],
    children: &[
        (7, Child::Repeated(&KEY_VALUE)),
        (6, Child::Repeated(&QUANTILE)),
    ],
};
static QUANTILE: Schema = Schema {
    id: 25,
    name: "ValueAtQuantile",
    size: size_of::<ValueAtQuantile>(),
    fields: &[(1, "quantile", I64), (2, "value", I64)],
    children: &[],
};
static EXEMPLAR: Schema = Schema {
    id: 26,
    name: "Exemplar",
    size: size_of::<Exemplar>(),
    fields: &[
        (7, "filtered_attributes", LEN),
        (2, "time_unix_nano", I64),
        (4, "span_id", LEN),
        (5, "trace_id", LEN),
        (3, "as_double", I64),
        (6, "as_int", I64),
    ],
    children: &[(7, Child::Repeated(&KEY_VALUE))],
};

/// What a walk has added up.
struct Tally {
    bytes: usize,
    /// Elements of each repeated message type, by [`Schema::id`].
    counts: [u64; SCHEMAS],
}

impl Tally {
    fn new() -> Self {
        Tally {
            bytes: 0,
            counts: [0; SCHEMAS],
        }
    }

    fn add(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n);
    }

    /// The repeated message type that takes the most: (schema, count).
    fn largest(&self) -> Option<(&'static Schema, u64)> {
        ALL.iter()
            .zip(self.counts)
            .filter(|(_, c)| *c > 0)
            .map(|(s, c)| (*s, c))
            .max_by_key(|(s, c)| c.saturating_mul(s.size as u64))
    }
}

/// Adds up the fields of one message of type `s`.
fn walk(mut f: Fields<'_>, s: &'static Schema, tally: &mut Tally) -> Result<(), WireError> {
    while let Some((n, w)) = f.next_field().named(s.name, s.fields)? {
        let Wire::Bytes(b) = w else {
            if let Some(Child::Numbers { .. }) = s.child(n) {
                tally.add(8);
            }
            continue;
        };
        match s.child(n) {
            Some(Child::Repeated(c)) => {
                tally.add(c.size);
                tally.counts[c.id] += 1;
                walk(f.message(w)?, c, tally).at(s.name, s.field_name(n))?;
            }
            Some(Child::Inline(c)) => {
                walk(f.message(w)?, c, tally).at(s.name, s.field_name(n))?;
            }
            Some(Child::Texts) => tally.add(size_of::<String>() + b.len()),
            Some(Child::Numbers { varint: true }) => tally.add(b.len().saturating_mul(8)),
            Some(Child::Numbers { varint: false }) => tally.add(b.len()),
            // A string or bytes, or an unknown field (prost skips those: nothing).
            None if s.fields.iter().any(|(f, _, _)| *f == n) => tally.add(b.len()),
            None => {}
        }
    }
    Ok(())
}

fn request_schema(signal: Signal) -> &'static Schema {
    match signal {
        Signal::Metrics => &METRICS_REQUEST,
        _ => &LOGS_REQUEST,
    }
}

/// Why a body may not be decoded.
#[derive(Debug)]
pub enum Refusal {
    Malformed(WireError),
    Expands(Expands),
}

fn refusal(
    (body_bytes, times): (usize, usize),
    decoded_bytes: usize,
    holds: impl FnOnce() -> String,
) -> Result<(), Refusal> {
    let limit = budget_of(body_bytes, times);
    if decoded_bytes <= limit {
        return Ok(());
    }
    Err(Refusal::Expands(Expands {
        body_bytes,
        decoded_bytes,
        limit,
        times,
        holds: holds(),
    }))
}

/// What an OTLP logs or metrics protobuf request would take decoded, in bytes.
fn estimate(signal: Signal, body: &[u8]) -> Result<Tally, WireError> {
    let s = request_schema(signal);
    let mut tally = Tally::new();
    tally.add(s.size);
    walk(Fields::new(body), s, &mut tally)?;
    Ok(tally)
}

/// Checks what an OTLP logs or metrics protobuf request would take decoded.
pub fn check_protobuf(signal: Signal, body: &[u8]) -> Result<(), Refusal> {
    let tally = estimate(signal, body).map_err(Refusal::Malformed)?;
    refusal((body.len(), MAX_EXPANSION), tally.bytes, || {
        tally.largest().map_or_else(String::new, |(s, count)| {
            format!("{count} {} messages of {} bytes each", s.name, s.size)
        })
    })
}

/// Checks what an OTLP/JSON request (of any signal) would take decoded: each JSON object
/// becomes at most one struct (the largest the signal has), strings about their length;
/// the limit is [`MAX_JSON_EXPANSION`] times the body.
pub fn check_json(signal: Signal, body: &[u8]) -> Result<(), Refusal> {
    let weight = match signal {
        Signal::Metrics => size_of::<ExponentialHistogramDataPoint>(),
        Signal::Logs => size_of::<LogRecord>(),
        Signal::Traces => size_of::<opentelemetry_proto::tonic::trace::v1::Span>(),
    };
    let (mut objects, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'{' {
            objects += 1;
        }
    }
    let decoded = objects.saturating_mul(weight).saturating_add(body.len());
    refusal((body.len(), MAX_JSON_EXPANSION), decoded, || {
        format!("{objects} JSON objects of up to {weight} bytes each")
    })
}

impl From<Refusal> for crate::Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Malformed(e) => crate::Error::MalformedProtobuf(e),
            Refusal::Expands(e) => crate::Error::Expands(e),
        }
    }
}

#[cfg(test)]
mod tests;
