//! Arrow schemas of the three signal tables and the conversion of model rows into batches.
//!
//! These schemas are the columns users see in SQL (`metrics`, `logs`, `spans`) and the
//! columns of the Parquet files; the README documents each one.

use crate::error::{Error, Result};
use crate::model::{Labels, LogRecord, Origin, Sample, SampleValue, Signal, Span};
use datafusion::arrow::array::ArrayBuilder;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, FixedSizeBinaryBuilder, Float64Builder,
    Int32Builder, Int64Builder, MapArray, MapBuilder, MapFieldNames, RecordBatch, StringArray,
    StringBuilder, StructArray, TimestampMillisecondBuilder, TimestampNanosecondArray,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Array, UInt64Builder, new_empty_array,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Int64Type, Schema, SchemaRef, TimeUnit, TimestampNanosecondType,
};
use parking_lot::RwLock;
use std::sync::{Arc, LazyLock};

fn map_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

fn ts_ns() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, None)
}

fn origin_fields() -> Vec<Field> {
    vec![
        Field::new("service_name", DataType::Utf8, false),
        Field::new("resource_attributes", DataType::Utf8, false),
        Field::new("resource_dropped_attributes_count", DataType::UInt32, false),
        Field::new("resource_schema_url", DataType::Utf8, false),
        Field::new("scope_name", DataType::Utf8, false),
        Field::new("scope_version", DataType::Utf8, false),
        Field::new("scope_attributes", DataType::Utf8, false),
        Field::new("scope_dropped_attributes_count", DataType::UInt32, false),
        Field::new("scope_schema_url", DataType::Utf8, false),
    ]
}

static METRICS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("metric_name", DataType::Utf8, false),
        Field::new("labels", map_type(), false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("value", DataType::Float64, true),
        Field::new("histogram", DataType::Utf8, true),
        Field::new("exemplars", DataType::Utf8, true),
    ]))
});

static LOGS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("timestamp", ts_ns(), false),
        Field::new("observed_timestamp", ts_ns(), false),
        Field::new("stream_id", DataType::UInt64, false),
        Field::new("stream_labels", map_type(), false),
        Field::new("severity_number", DataType::Int32, false),
        Field::new("severity_text", DataType::Utf8, false),
        Field::new("body", DataType::Utf8, false),
        Field::new("body_type", DataType::Utf8, false),
        Field::new("attributes", DataType::Utf8, false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("event_name", DataType::Utf8, false),
    ];
    fields.extend(origin_fields());
    Arc::new(Schema::new(fields))
});

static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("parent_span_id", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Int32, false),
        Field::new("start_time", ts_ns(), false),
        Field::new("end_time", ts_ns(), false),
        Field::new("duration", DataType::Int64, false),
        Field::new("attributes", DataType::Utf8, false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new("events", DataType::Utf8, false),
        Field::new("dropped_events_count", DataType::UInt32, false),
        Field::new("links", DataType::Utf8, false),
        Field::new("dropped_links_count", DataType::UInt32, false),
        Field::new("status_code", DataType::Int32, false),
        Field::new("status_message", DataType::Utf8, false),
    ];
    fields.extend(origin_fields());
    Arc::new(Schema::new(fields))
});

/// The table schema of a signal.
pub fn schema(signal: Signal) -> SchemaRef {
    match signal {
        Signal::Metrics => METRICS.clone(),
        Signal::Logs => LOGS.clone(),
        Signal::Traces => SPANS.clone(),
    }
}

/// The SQL table name of a signal.
pub fn table_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Metrics => "metrics",
        Signal::Logs => "logs",
        Signal::Traces => "spans",
    }
}

/// The `series_id` and `timestamp` (ms) values of a metrics batch, `None` when it lacks
/// either column.
pub fn metric_keys(batch: &RecordBatch) -> Option<(&[u64], &[i64])> {
    use datafusion::arrow::datatypes::{TimestampMillisecondType, UInt64Type};
    let ids = batch
        .column_by_name("series_id")?
        .as_primitive_opt::<UInt64Type>()?;
    let ts = batch
        .column_by_name("timestamp")?
        .as_primitive_opt::<TimestampMillisecondType>()?;
    Some((ids.values().as_ref(), ts.values().as_ref()))
}

/// The columns a signal's files are sorted by (their main access path).
///
/// Spans go by service first: a search names a service (Jaeger requires one), and its
/// rows then sit in a few pages that the page index finds; within a service a trace's
/// spans are together, so a lookup by id still reads one page per column per service
/// the trace crosses.
pub fn sort_columns(signal: Signal) -> &'static [&'static str] {
    match signal {
        Signal::Metrics => &["series_id", "timestamp"],
        Signal::Logs => &["stream_id", "timestamp"],
        Signal::Traces => &["service_name", "trace_id", "start_time"],
    }
}

/// The column holding the time a row is partitioned by, and its unit in nanoseconds.
pub fn time_column(signal: Signal) -> (&'static str, i64) {
    match signal {
        Signal::Metrics => ("timestamp", 1_000_000),
        Signal::Logs => ("timestamp", 1),
        Signal::Traces => ("start_time", 1),
    }
}

fn labels_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(
        Some(MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        }),
        StringBuilder::new(),
        StringBuilder::new(),
    )
}

fn append_labels(b: &mut MapBuilder<StringBuilder, StringBuilder>, labels: &Labels) -> Result<()> {
    for l in labels.iter() {
        b.keys().append_value(&l.name);
        b.values().append_value(&l.value);
    }
    b.append(true)?;
    Ok(())
}

/// Converts samples into a `metrics` batch.
pub fn metrics_batch(samples: &[Sample]) -> Result<RecordBatch> {
    let n = samples.len();
    let mut series_id = UInt64Builder::with_capacity(n);
    let mut name = StringBuilder::with_capacity(n, n * 16);
    let mut labels = labels_builder();
    let mut ts = TimestampMillisecondBuilder::with_capacity(n);
    let mut value = Float64Builder::with_capacity(n);
    let mut hist = StringBuilder::new();
    let mut exemplars = StringBuilder::new();
    for s in samples {
        series_id.append_value(s.labels.series_id().0);
        name.append_value(s.labels.metric_name());
        append_labels(&mut labels, &s.labels)?;
        ts.append_value(s.timestamp_ms);
        match &s.value {
            SampleValue::Float(v) => {
                value.append_value(*v);
                hist.append_null();
            }
            SampleValue::Histogram(h) => {
                value.append_null();
                hist.append_value(serde_json::to_string(h)?);
            }
        }
        if s.exemplars.is_empty() {
            exemplars.append_null();
        } else {
            exemplars.append_value(serde_json::to_string(&s.exemplars)?);
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(series_id.finish()),
        Arc::new(name.finish()),
        Arc::new(labels.finish()),
        Arc::new(ts.finish()),
        Arc::new(value.finish()),
        Arc::new(hist.finish()),
        Arc::new(exemplars.finish()),
    ];
    Ok(RecordBatch::try_new(schema(Signal::Metrics), cols)?)
}

/// A `metrics` batch with `metric_name` and `labels` emptied (every row `""` and `{}`),
/// and `histogram` / `exemplars` shared all-null columns when no row has one.
///
/// Memtables keep metric rows this way: a label set is held once per series by the label
/// index, so repeating it on every sample would multiply memory by five or more. The
/// emptied columns share one zero-filled buffer between all batches (see [`zeros`]), so
/// a row costs its series id, timestamp and value: 24 bytes.
/// [`fill_metric_labels`] puts the columns back for readers that need them.
pub fn strip_metric_labels(batch: &RecordBatch) -> Result<RecordBatch> {
    Ok(strip_metric_labels_sized(batch)?.0)
}

/// [`strip_metric_labels`], with the bytes the stripped batch holds of its own (the
/// shared empty columns not counted): what a memtable accounts for it.
pub fn strip_metric_labels_sized(batch: &RecordBatch) -> Result<(RecordBatch, usize)> {
    let n = batch.num_rows();
    let schema = batch.schema();
    let mut own_bytes = 0;
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        let col = match f.name().as_str() {
            "metric_name" => empty_strings(n, false)?,
            "labels" => empty_maps(f.data_type(), n)?,
            "histogram" | "exemplars" if c.null_count() == n => empty_strings(n, true)?,
            _ => {
                own_bytes += c.get_array_memory_size();
                c.clone()
            }
        };
        cols.push(col);
    }
    Ok((RecordBatch::try_new(schema, cols)?, own_bytes))
}

/// A stripped `metrics` batch (as [`strip_metric_labels`] makes) from one read without
/// the `metric_name` and `labels` columns.
pub fn metrics_batch_without_labels(partial: &RecordBatch) -> Result<RecordBatch> {
    let n = partial.num_rows();
    let schema = schema(Signal::Metrics);
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        cols.push(match f.name().as_str() {
            "metric_name" => empty_strings(n, false)?,
            "labels" => empty_maps(f.data_type(), n)?,
            other => partial.column_by_name(other).cloned().ok_or_else(|| {
                datafusion::arrow::error::ArrowError::SchemaError(format!(
                    "metrics batch lacks column {other}"
                ))
            })?,
        });
    }
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// `len` zero bytes, sliced from one buffer that every caller shares (grown, never
/// shrunk, when a longer run is asked for). Empty strings, empty maps and all-null
/// columns are nothing but zeros (offsets all 0, validity bits all 0), so batches of
/// any number of rows can point into the same allocation instead of holding their own.
fn zeros(len: usize) -> Buffer {
    static ZEROS: LazyLock<RwLock<Buffer>> =
        LazyLock::new(|| RwLock::new(Buffer::from_vec(Vec::<u64>::new())));
    {
        let z = ZEROS.read();
        if z.len() >= len {
            return z.slice_with_length(0, len);
        }
    }
    let mut z = ZEROS.write();
    if z.len() < len {
        // u64 elements keep the buffer aligned for the i32 offsets read from it.
        let words = len.div_ceil(8).next_power_of_two();
        *z = Buffer::from_vec(vec![0u64; words]);
    }
    z.slice_with_length(0, len)
}

/// `n` zero offsets (every row empty), backed by the shared zero buffer.
fn zero_offsets(n: usize) -> OffsetBuffer<i32> {
    let bytes = (n + 1) * std::mem::size_of::<i32>();
    OffsetBuffer::new(ScalarBuffer::<i32>::new(zeros(bytes), 0, n + 1))
}

/// `n` empty strings, or (`null`) `n` nulls, sharing the zero buffer.
fn empty_strings(n: usize, null: bool) -> Result<ArrayRef> {
    let nulls = null.then(|| NullBuffer::new(BooleanBuffer::new(zeros(n.div_ceil(8)), 0, n)));
    Ok(Arc::new(StringArray::try_new(
        zero_offsets(n),
        Buffer::from_vec(Vec::<u8>::new()),
        nulls,
    )?))
}

/// `n` empty maps of the map type `map_type`, sharing the zero buffer.
fn empty_maps(map_type: &DataType, n: usize) -> Result<ArrayRef> {
    let DataType::Map(entries_field, sorted) = map_type else {
        return Err(datafusion::arrow::error::ArrowError::SchemaError(format!(
            "expected a map column, found {map_type}"
        ))
        .into());
    };
    let DataType::Struct(fields) = entries_field.data_type() else {
        return Err(datafusion::arrow::error::ArrowError::SchemaError(format!(
            "expected map entries to be a struct, found {}",
            entries_field.data_type()
        ))
        .into());
    };
    let children = fields
        .iter()
        .map(|f| new_empty_array(f.data_type()))
        .collect();
    let entries = StructArray::try_new(fields.clone(), children, None)?;
    Ok(Arc::new(MapArray::try_new(
        entries_field.clone(),
        zero_offsets(n),
        entries,
        None,
        *sorted,
    )?))
}

/// Refills `metric_name` and `labels` of a batch made by [`strip_metric_labels`], looking
/// label sets up by `series_id`. A series `lookup` does not know gets empty labels.
pub fn fill_metric_labels(
    batch: &RecordBatch,
    lookup: &dyn Fn(u64) -> Option<Labels>,
) -> Result<RecordBatch> {
    let Some(ids) = batch
        .column_by_name("series_id")
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
    else {
        return Ok(batch.clone());
    };
    let n = batch.num_rows();
    let mut name = StringBuilder::with_capacity(n, n * 16);
    let mut labels = labels_builder();
    let mut current: Option<(u64, Labels)> = None;
    for row in 0..n {
        let id = ids.value(row);
        if current.as_ref().map(|(c, _)| *c) != Some(id) {
            current = Some((id, lookup(id).unwrap_or_default()));
        }
        let l = current.as_ref().map(|(_, l)| l);
        name.append_value(l.map(Labels::metric_name).unwrap_or(""));
        match l {
            Some(l) => append_labels(&mut labels, l)?,
            None => labels.append(true)?,
        }
    }
    replace_label_columns(batch, Arc::new(name.finish()), Arc::new(labels.finish()))
}

fn replace_label_columns(
    batch: &RecordBatch,
    name: ArrayRef,
    labels: ArrayRef,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| match f.name().as_str() {
            "metric_name" => name.clone(),
            "labels" => labels.clone(),
            _ => c.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// Builders for the resource/scope columns shared by logs and spans.
#[derive(Debug)]
struct OriginBuilders {
    service_name: StringBuilder,
    resource_attributes: StringBuilder,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: StringBuilder,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
}

impl OriginBuilders {
    fn new() -> Self {
        OriginBuilders {
            service_name: StringBuilder::new(),
            resource_attributes: StringBuilder::new(),
            resource_dropped: UInt32Builder::new(),
            resource_schema_url: StringBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attributes: StringBuilder::new(),
            scope_dropped: UInt32Builder::new(),
            scope_schema_url: StringBuilder::new(),
        }
    }

    fn append(&mut self, o: &Origin) {
        self.service_name.append_value(&o.service_name);
        self.resource_attributes
            .append_value(json_or_empty(&o.resource_attributes));
        self.resource_dropped
            .append_value(o.resource_dropped_attributes_count);
        self.resource_schema_url
            .append_value(&o.resource_schema_url);
        self.scope_name.append_value(&o.scope_name);
        self.scope_version.append_value(&o.scope_version);
        self.scope_attributes
            .append_value(json_or_empty(&o.scope_attributes));
        self.scope_dropped
            .append_value(o.scope_dropped_attributes_count);
        self.scope_schema_url.append_value(&o.scope_schema_url);
    }

    fn finish(mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(Arc::new(self.service_name.finish()));
        cols.push(Arc::new(self.resource_attributes.finish()));
        cols.push(Arc::new(self.resource_dropped.finish()));
        cols.push(Arc::new(self.resource_schema_url.finish()));
        cols.push(Arc::new(self.scope_name.finish()));
        cols.push(Arc::new(self.scope_version.finish()));
        cols.push(Arc::new(self.scope_attributes.finish()));
        cols.push(Arc::new(self.scope_dropped.finish()));
        cols.push(Arc::new(self.scope_schema_url.finish()));
    }
}

fn json_or_empty(s: &str) -> &str {
    if s.is_empty() { "{}" } else { s }
}

/// Converts log records into a `logs` batch.
pub fn logs_batch(records: &[LogRecord]) -> Result<RecordBatch> {
    let mut b =
        LogsBuilder::with_capacity(records.len(), records.iter().map(|r| r.body.len()).sum());
    // Consecutive records of one stream (the usual case) hash their labels once.
    let mut last: Option<(&Labels, u64)> = None;
    for r in records {
        let id = match last {
            Some((l, id)) if l == &r.stream => id,
            _ => r.stream.series_id().0,
        };
        last = Some((&r.stream, id));
        b.append(
            &r.stream,
            id,
            &r.origin,
            &LogRow {
                timestamp_ns: r.timestamp_ns,
                observed_timestamp_ns: r.observed_timestamp_ns,
                severity_number: r.severity_number,
                severity_text: &r.severity_text,
                body: &r.body,
                body_type: &r.body_type,
                attributes: &r.attributes,
                dropped_attributes_count: r.dropped_attributes_count,
                flags: r.flags,
                trace_id: &r.trace_id,
                span_id: &r.span_id,
                event_name: &r.event_name,
            },
        )?;
    }
    b.finish()
}

/// One log record's own values in borrowed form, as [`LogsBuilder`] takes them (its
/// stream and origin are passed beside it: they are shared by many records).
pub struct LogRow<'a> {
    pub timestamp_ns: i64,
    pub observed_timestamp_ns: i64,
    pub severity_number: i32,
    pub severity_text: &'a str,
    pub body: &'a str,
    pub body_type: &'a str,
    /// JSON object text; empty means `{}`.
    pub attributes: &'a str,
    pub dropped_attributes_count: u32,
    pub flags: u32,
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub event_name: &'a str,
}

/// Builds a `logs` batch one record at a time from borrowed values, without a model
/// [`LogRecord`] per row (the Loki push receiver appends straight from the request).
#[derive(Debug)]
pub struct LogsBuilder {
    ts: TimestampNanosecondBuilder,
    observed: TimestampNanosecondBuilder,
    stream_id: UInt64Builder,
    stream: MapBuilder<StringBuilder, StringBuilder>,
    sev_num: Int32Builder,
    sev_text: StringBuilder,
    body: StringBuilder,
    body_type: StringBuilder,
    attrs: StringBuilder,
    dropped: UInt32Builder,
    flags: UInt32Builder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    event_name: StringBuilder,
    origin: OriginBuilders,
    /// Bytes of text appended so far, over every text column.
    text_bytes: usize,
    /// The most text the batch may hold ([`LOGS_BATCH_MAX_TEXT_BYTES`] by default).
    max_text_bytes: usize,
    /// The text of the last stream's labels, by stream id: the same for all its rows.
    stream_text: Option<(u64, usize)>,
}

/// The most text (lines, metadata, and the stream's labels and origin copied onto each
/// line, summed over every column) one `logs` batch built with [`LogsBuilder`] may hold:
/// 1 GiB, under the 2 GiB an Arrow `Utf8` column can address. A push of a few hundred
/// kilobytes (one stream of large labels and thousands of empty lines) would otherwise
/// make gigabytes and overflow a column's offsets.
pub const LOGS_BATCH_MAX_TEXT_BYTES: usize = 1 << 30;

/// The text of an origin as [`OriginBuilders`] stores it on every row (what each row of a
/// `logs` or `spans` batch counts for its origin against the batch's text limit).
pub fn origin_text_len(origin: &Origin) -> usize {
    origin.service_name.len()
        + json_or_empty(&origin.resource_attributes).len()
        + origin.resource_schema_url.len()
        + origin.scope_name.len()
        + origin.scope_version.len()
        + json_or_empty(&origin.scope_attributes).len()
        + origin.scope_schema_url.len()
}

impl LogsBuilder {
    /// A builder for about `n` records of about `body_bytes` of lines in all.
    pub fn with_capacity(n: usize, body_bytes: usize) -> Self {
        LogsBuilder {
            ts: TimestampNanosecondBuilder::with_capacity(n),
            observed: TimestampNanosecondBuilder::with_capacity(n),
            stream_id: UInt64Builder::with_capacity(n),
            stream: labels_builder(),
            sev_num: Int32Builder::with_capacity(n),
            sev_text: StringBuilder::with_capacity(n, 0),
            body: StringBuilder::with_capacity(n, body_bytes),
            body_type: StringBuilder::with_capacity(n, n * 6),
            attrs: StringBuilder::with_capacity(n, n * 2),
            dropped: UInt32Builder::with_capacity(n),
            flags: UInt32Builder::with_capacity(n),
            trace_id: StringBuilder::with_capacity(n, 0),
            span_id: StringBuilder::with_capacity(n, 0),
            event_name: StringBuilder::with_capacity(n, 0),
            origin: OriginBuilders::new(),
            text_bytes: 0,
            max_text_bytes: LOGS_BATCH_MAX_TEXT_BYTES,
            stream_text: None,
        }
    }

    /// Sets the most text the batch may hold (at most [`LOGS_BATCH_MAX_TEXT_BYTES`]).
    pub fn with_max_text_bytes(mut self, max: usize) -> Self {
        self.max_text_bytes = max.min(LOGS_BATCH_MAX_TEXT_BYTES);
        self
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True before the first row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one record of the stream `stream`, whose [`Labels::series_id`] is
    /// `stream_id` (computed once per stream by the caller), or refuses it with
    /// [`Error::TooLarge`] (appending nothing) when the batch would then hold more than
    /// [`LOGS_BATCH_MAX_TEXT_BYTES`] of text.
    pub fn append(
        &mut self,
        stream: &Labels,
        stream_id: u64,
        origin: &Origin,
        r: &LogRow<'_>,
    ) -> Result<()> {
        let labels_text = match self.stream_text {
            Some((id, n)) if id == stream_id => n,
            _ => {
                let n: usize = stream.iter().map(|l| l.name.len() + l.value.len()).sum();
                self.stream_text = Some((stream_id, n));
                n
            }
        };
        // The origin is counted per row: rows of one stream may come from resources and
        // scopes of different text (OTLP's stream labels are a few resource attributes).
        let row = labels_text
            + origin_text_len(origin)
            + r.severity_text.len()
            + r.body.len()
            + r.body_type.len()
            + json_or_empty(r.attributes).len()
            + r.trace_id.len()
            + r.span_id.len()
            + r.event_name.len();
        let total = self.text_bytes.saturating_add(row);
        if total > self.max_text_bytes {
            return Err(Error::TooLarge(format!(
                "the log records of this request make more than {} bytes of text (bodies, \
                 attributes or metadata, and the stream labels, resource and scope copied onto \
                 each record); send fewer records per request, or smaller labels or resource \
                 attributes",
                self.max_text_bytes
            )));
        }
        self.text_bytes = total;
        self.ts.append_value(r.timestamp_ns);
        self.observed.append_value(r.observed_timestamp_ns);
        self.stream_id.append_value(stream_id);
        append_labels(&mut self.stream, stream)?;
        self.sev_num.append_value(r.severity_number);
        self.sev_text.append_value(r.severity_text);
        self.body.append_value(r.body);
        self.body_type.append_value(r.body_type);
        self.attrs.append_value(json_or_empty(r.attributes));
        self.dropped.append_value(r.dropped_attributes_count);
        self.flags.append_value(r.flags);
        self.trace_id.append_value(r.trace_id);
        self.span_id.append_value(r.span_id);
        self.event_name.append_value(r.event_name);
        self.origin.append(origin);
        Ok(())
    }

    /// The batch of the rows appended.
    pub fn finish(mut self) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.observed.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.stream.finish()),
            Arc::new(self.sev_num.finish()),
            Arc::new(self.sev_text.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.body_type.finish()),
            Arc::new(self.attrs.finish()),
            Arc::new(self.dropped.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.event_name.finish()),
        ];
        self.origin.finish(&mut cols);
        Ok(RecordBatch::try_new(schema(Signal::Logs), cols)?)
    }
}

/// One span's values in borrowed form, as [`SpansBuilder`] takes them: events and links
/// are their JSON text (arrays of [`crate::model::SpanEvent`] / [`crate::model::SpanLink`]).
pub struct SpanRow<'a> {
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub parent_span_id: &'a str,
    pub trace_state: &'a str,
    pub flags: u32,
    pub name: &'a str,
    pub kind: i32,
    pub start_time_ns: i64,
    pub end_time_ns: i64,
    pub attributes: &'a str,
    pub dropped_attributes_count: u32,
    pub events_json: &'a str,
    pub dropped_events_count: u32,
    pub links_json: &'a str,
    pub dropped_links_count: u32,
    pub status_code: i32,
    pub status_message: &'a str,
}

/// Builds a `spans` batch one span at a time, without a model [`Span`] per row (the
/// OTLP/HTTP receiver decodes protobuf straight into it).
pub struct SpansBuilder {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: Int32Builder,
    start: TimestampNanosecondBuilder,
    end: TimestampNanosecondBuilder,
    duration: Int64Builder,
    attrs: StringBuilder,
    dropped_attrs: UInt32Builder,
    events: StringBuilder,
    dropped_events: UInt32Builder,
    links: StringBuilder,
    dropped_links: UInt32Builder,
    status_code: Int32Builder,
    status_message: StringBuilder,
    origin: OriginBuilders,
    /// Bytes of text appended so far, over every text column.
    text_bytes: usize,
    /// The most text the batch may hold ([`SPANS_BATCH_MAX_TEXT_BYTES`] by default).
    max_text_bytes: usize,
}

/// The most text (ids, names, attribute, event, link and origin JSON, summed over every
/// column) one `spans` batch built with [`SpansBuilder`] may hold: 1 GiB. Under the 2 GiB
/// an Arrow `Utf8` column can address, so that no column's offsets can overflow, and a
/// bound on what one request can make the server build (a resource of a megabyte copied
/// onto every span of a 64 MiB request would otherwise be tens of gigabytes).
pub const SPANS_BATCH_MAX_TEXT_BYTES: usize = 1 << 30;

/// The refusal of spans that make more than `max` bytes of text.
pub fn spans_too_large(max: usize) -> Error {
    Error::TooLarge(format!(
        "the spans of this request make more than {max} bytes of text (ids, names, \
         attributes, events, links and the resource and scope copied onto each span); send \
         fewer spans per request or a smaller resource"
    ))
}

impl SpansBuilder {
    /// A builder for about `n` spans.
    pub fn with_capacity(n: usize) -> Self {
        SpansBuilder {
            trace_id: StringBuilder::with_capacity(n, n * 32),
            span_id: StringBuilder::with_capacity(n, n * 16),
            parent: StringBuilder::with_capacity(n, n * 16),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::with_capacity(n),
            name: StringBuilder::new(),
            kind: Int32Builder::with_capacity(n),
            start: TimestampNanosecondBuilder::with_capacity(n),
            end: TimestampNanosecondBuilder::with_capacity(n),
            duration: Int64Builder::with_capacity(n),
            attrs: StringBuilder::new(),
            dropped_attrs: UInt32Builder::with_capacity(n),
            events: StringBuilder::new(),
            dropped_events: UInt32Builder::with_capacity(n),
            links: StringBuilder::new(),
            dropped_links: UInt32Builder::with_capacity(n),
            status_code: Int32Builder::with_capacity(n),
            status_message: StringBuilder::new(),
            origin: OriginBuilders::new(),
            text_bytes: 0,
            max_text_bytes: SPANS_BATCH_MAX_TEXT_BYTES,
        }
    }

    /// Sets the most text the batch may hold (at most [`SPANS_BATCH_MAX_TEXT_BYTES`]).
    pub fn with_max_text_bytes(mut self, max: usize) -> Self {
        self.max_text_bytes = max.min(SPANS_BATCH_MAX_TEXT_BYTES);
        self
    }

    /// Appends a span, or refuses it with [`Error::TooLarge`] (appending nothing) when
    /// the batch would then hold more text than its limit.
    pub fn append(&mut self, s: &SpanRow<'_>, origin: &Origin) -> Result<()> {
        let row = s.trace_id.len()
            + s.span_id.len()
            + s.parent_span_id.len()
            + s.trace_state.len()
            + s.name.len()
            + json_or_empty(s.attributes).len()
            + s.events_json.len()
            + s.links_json.len()
            + s.status_message.len()
            + origin_text_len(origin);
        let total = self.text_bytes.saturating_add(row);
        if total > self.max_text_bytes {
            return Err(spans_too_large(self.max_text_bytes));
        }
        self.text_bytes = total;
        self.trace_id.append_value(s.trace_id);
        self.span_id.append_value(s.span_id);
        self.parent.append_value(s.parent_span_id);
        self.trace_state.append_value(s.trace_state);
        self.flags.append_value(s.flags);
        self.name.append_value(s.name);
        self.kind.append_value(s.kind);
        self.start.append_value(s.start_time_ns);
        self.end.append_value(s.end_time_ns);
        self.duration
            .append_value(s.end_time_ns.saturating_sub(s.start_time_ns));
        self.attrs.append_value(json_or_empty(s.attributes));
        self.dropped_attrs.append_value(s.dropped_attributes_count);
        self.events.append_value(s.events_json);
        self.dropped_events.append_value(s.dropped_events_count);
        self.links.append_value(s.links_json);
        self.dropped_links.append_value(s.dropped_links_count);
        self.status_code.append_value(s.status_code);
        self.status_message.append_value(s.status_message);
        self.origin.append(origin);
        Ok(())
    }

    pub fn len(&self) -> usize {
        use datafusion::arrow::array::ArrayBuilder;
        self.kind.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn finish(mut self) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.end.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.attrs.finish()),
            Arc::new(self.dropped_attrs.finish()),
            Arc::new(self.events.finish()),
            Arc::new(self.dropped_events.finish()),
            Arc::new(self.links.finish()),
            Arc::new(self.dropped_links.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
        ];
        self.origin.finish(&mut cols);
        Ok(RecordBatch::try_new(schema(Signal::Traces), cols)?)
    }
}

/// Converts spans into a `spans` batch.
pub fn spans_batch(spans: &[Span]) -> Result<RecordBatch> {
    spans_batch_limited(spans, SPANS_BATCH_MAX_TEXT_BYTES)
}

/// Converts spans into a `spans` batch of at most `max_text_bytes` of text (see
/// [`SpansBuilder::with_max_text_bytes`]), else [`Error::TooLarge`].
pub fn spans_batch_limited(spans: &[Span], max_text_bytes: usize) -> Result<RecordBatch> {
    let mut b = SpansBuilder::with_capacity(spans.len()).with_max_text_bytes(max_text_bytes);
    for s in spans {
        let events = serde_json::to_string(&s.events)?;
        let links = serde_json::to_string(&s.links)?;
        b.append(
            &SpanRow {
                trace_id: &s.trace_id,
                span_id: &s.span_id,
                parent_span_id: &s.parent_span_id,
                trace_state: &s.trace_state,
                flags: s.flags,
                name: &s.name,
                kind: s.kind,
                start_time_ns: s.start_time_ns,
                end_time_ns: s.end_time_ns,
                attributes: &s.attributes,
                dropped_attributes_count: s.dropped_attributes_count,
                events_json: &events,
                dropped_events_count: s.dropped_events_count,
                links_json: &links,
                dropped_links_count: s.dropped_links_count,
                status_code: s.status_code,
                status_message: &s.status_message,
            },
            &s.origin,
        )?;
    }
    b.finish()
}

// ---------------------------------------------------------------- spans files
//
// Spans files store a leaner form of the `spans` table (layout 2): `span_id` and
// `parent_span_id` as 8 raw bytes (`FixedSizeBinary(8)`, a root's parent null) instead of
// 16 hex digits, and no `end_time` (it is `start_time + duration`). `trace_id` stays hex
// text so its statistics, bloom filter and SQL filters keep working unchanged. Layout 3
// adds dedicated attribute columns (`attr:<type>:<key>`, see `crate::span_attrs`) after
// the columns of layout 2, taking those members out of `attributes`. Files of the first
// layout (every column as in the table) are still read: readers pass every batch read
// from a file through [`spans_from_file`], which accepts all three.

/// The schema of spans files of layout 2 (layout 3 files add dedicated attribute
/// columns after these).
pub fn spans_file_schema() -> SchemaRef {
    static FILE: LazyLock<SchemaRef> = LazyLock::new(|| {
        let fields: Vec<Field> = SPANS
            .fields()
            .iter()
            .filter(|f| f.name() != "end_time")
            .map(|f| match f.name().as_str() {
                "span_id" => Field::new("span_id", DataType::FixedSizeBinary(8), false),
                "parent_span_id" => {
                    Field::new("parent_span_id", DataType::FixedSizeBinary(8), true)
                }
                _ => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    });
    FILE.clone()
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// 16 lower-case hex digits as 8 bytes.
fn id_bytes(hex: &str) -> Option<[u8; 8]> {
    let b = hex.as_bytes();
    if b.len() != 16 {
        return None;
    }
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (hex_nibble(b[2 * i])? << 4) | hex_nibble(b[2 * i + 1])?;
    }
    Some(out)
}

/// A span-id column as raw bytes; `None` when a value is not 16 lower-case hex digits
/// (the batch is then written in the first layout, which keeps any text). Empty text
/// (a root's parent) becomes null when `empty_as_null`.
fn ids_to_binary(col: &ArrayRef, empty_as_null: bool) -> Option<ArrayRef> {
    let s = col.as_any().downcast_ref::<StringArray>()?;
    let mut b = FixedSizeBinaryBuilder::with_capacity(s.len(), 8);
    for i in 0..s.len() {
        let v = if s.is_null(i) { "" } else { s.value(i) };
        if v.is_empty() && empty_as_null {
            b.append_null();
        } else {
            b.append_value(id_bytes(v)?).ok()?;
        }
    }
    Some(Arc::new(b.finish()))
}

/// Raw id bytes as lower-case hex text (null as "").
fn ids_to_hex(a: &FixedSizeBinaryArray) -> ArrayRef {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let width = usize::try_from(a.value_length()).unwrap_or(0);
    let mut b = StringBuilder::with_capacity(a.len(), a.len() * width * 2);
    let mut buf = String::with_capacity(width * 2);
    for i in 0..a.len() {
        if a.is_null(i) {
            b.append_value("");
            continue;
        }
        buf.clear();
        for &byte in a.value(i) {
            buf.push(HEX[usize::from(byte >> 4)] as char);
            buf.push(HEX[usize::from(byte & 15)] as char);
        }
        b.append_value(&buf);
    }
    Arc::new(b.finish())
}

/// A spans batch in the form a spans file stores it.
pub struct SpansFile {
    pub batch: RecordBatch,
    /// Dedicated attribute columns to write without a dictionary (many distinct values).
    pub plain_columns: Vec<String>,
}

/// A sorted `spans` batch in the form spans files store (layout 3: layout 2 plus the
/// dedicated attribute columns of [`crate::span_attrs`]), or `None` when some id is not
/// canonical hex and the batch must be stored as it is.
pub fn spans_to_file(batch: &RecordBatch) -> Result<Option<SpansFile>> {
    let file = spans_file_schema();
    let mut fields: Vec<Field> = Vec::with_capacity(file.fields().len() + 8);
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(file.fields().len() + 8);
    let mut dedicated = Vec::new();
    let mut plain_columns = Vec::new();
    for f in file.fields() {
        let Some(col) = batch.column_by_name(f.name()) else {
            return Ok(None);
        };
        cols.push(match f.name().as_str() {
            "span_id" => match ids_to_binary(col, false) {
                Some(c) => c,
                None => return Ok(None),
            },
            "parent_span_id" => match ids_to_binary(col, true) {
                Some(c) => c,
                None => return Ok(None),
            },
            "attributes" => match col.as_string_opt::<i32>() {
                Some(attrs) => {
                    let plan = crate::span_attrs::choose(attrs);
                    plain_columns.extend(
                        plan.iter()
                            .filter(|d| !d.dictionary)
                            .map(crate::span_attrs::Dedicated::column_name),
                    );
                    let (rest, split) = crate::span_attrs::split(attrs, &plan);
                    dedicated = split;
                    rest
                }
                None => col.clone(),
            },
            _ => col.clone(),
        });
        fields.push(f.as_ref().clone());
    }
    for (f, c) in dedicated {
        fields.push(f);
        cols.push(c);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
    Ok(Some(SpansFile {
        batch,
        plain_columns,
    }))
}

/// A batch read from a spans file of any layout (all columns, or a projection) in the
/// `spans` table's form: ids as hex text, `end_time` filled in from `start_time +
/// duration` when the file has none and both are present, and `attributes` with the
/// dedicated attribute columns' members put back (those columns are read along with
/// `attributes`; without it they are dropped). Columns keep the table's order.
pub fn spans_from_file(batch: &RecordBatch) -> Result<RecordBatch> {
    let table = schema(Signal::Traces);
    let mut fields = Vec::with_capacity(table.fields().len());
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(table.fields().len());
    for f in table.fields() {
        let col: ArrayRef = match batch.column_by_name(f.name()) {
            Some(c) if f.name() == "attributes" => merged_attributes(batch, c)?,
            Some(c) => match c.as_any().downcast_ref::<FixedSizeBinaryArray>() {
                Some(bin) => ids_to_hex(bin),
                None => c.clone(),
            },
            None if f.name() == "end_time" => {
                let start = batch
                    .column_by_name("start_time")
                    .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>());
                let duration = batch
                    .column_by_name("duration")
                    .and_then(|c| c.as_primitive_opt::<Int64Type>());
                let (Some(start), Some(duration)) = (start, duration) else {
                    continue;
                };
                let end: TimestampNanosecondArray = start
                    .values()
                    .iter()
                    .zip(duration.values().iter())
                    .map(|(s, d)| Some(s.saturating_add(*d)))
                    .collect();
                Arc::new(end)
            }
            None => continue,
        };
        fields.push(f.clone());
        cols.push(col);
    }
    let schema = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new_with_options(
        schema,
        cols,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// The `attributes` column of a file batch with its dedicated columns merged back.
fn merged_attributes(batch: &RecordBatch, rest: &ArrayRef) -> Result<ArrayRef> {
    let schema = batch.schema();
    let dedicated: Vec<crate::span_attrs::DedicatedColumn<'_>> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(f, values)| {
            crate::span_attrs::parse_column_name(f.name())
                .map(|(_, key)| crate::span_attrs::DedicatedColumn { key, values })
        })
        .collect();
    match rest.as_string_opt::<i32>() {
        Some(rest) if !dedicated.is_empty() => {
            crate::span_attrs::merge_attributes(rest, &dedicated)
        }
        _ => Ok(rest.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{decode_parquet, encode_parquet};
    use crate::model::SpanEvent;

    #[test]
    fn a_logs_batch_refuses_text_past_its_limit() {
        // Large stream labels copied onto every empty line: the labels count on each row.
        let value = "v".repeat(1000);
        let labels = Labels::from_pairs([("a", value.as_str()), ("b", value.as_str())]);
        let id = labels.series_id().0;
        let origin = Origin::default();
        let row = LogRow {
            timestamp_ns: 1,
            observed_timestamp_ns: 1,
            severity_number: 0,
            severity_text: "",
            body: "",
            body_type: "string",
            attributes: "",
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: "",
            span_id: "",
            event_name: "",
        };
        let mut b = LogsBuilder::with_capacity(16, 0).with_max_text_bytes(10_000);
        let mut appended = 0;
        let err = loop {
            match b.append(&labels, id, &origin, &row) {
                Ok(()) => appended += 1,
                Err(e) => break e,
            }
            assert!(appended < 100, "never refused");
        };
        // Each row holds the 2,002 bytes of labels, 6 of body type and 2 of `{}`.
        assert_eq!(appended, 4);
        assert_eq!(b.len(), 4, "the refused row is not appended");
        assert!(matches!(err, Error::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("10000 bytes"), "{err}");
        assert_eq!(b.finish().expect("batch").num_rows(), 4);
    }

    fn span(trace: u8, span: u8, parent: Option<u8>, start: i64) -> Span {
        Span {
            trace_id: format!("{trace:032x}"),
            span_id: format!("{:016x}", u64::from(span) << 56 | 0xabcdef),
            parent_span_id: parent
                .map(|p| format!("{:016x}", u64::from(p) << 56 | 0xabcdef))
                .unwrap_or_default(),
            name: format!("op{span}"),
            kind: 2,
            start_time_ns: start,
            end_time_ns: start + 1_500 + i64::from(span),
            attributes: r#"{"http.route":"/a"}"#.into(),
            events: vec![SpanEvent {
                time_ns: start + 10,
                name: "e".into(),
                attributes: serde_json::json!({"k": 1}),
                dropped_attributes_count: 0,
            }],
            status_code: 2,
            origin: Origin {
                service_name: "svc".into(),
                ..Origin::default()
            },
            ..Span::default()
        }
    }

    fn round_trip(spans: &[Span]) -> (RecordBatch, Vec<RecordBatch>) {
        let batch = spans_batch(spans).expect("batch");
        let bytes = encode_parquet(Signal::Traces, &batch).expect("encode");
        let read = decode_parquet(bytes::Bytes::from(bytes), None, None).expect("decode");
        (batch, read)
    }

    #[test]
    fn spans_files_store_binary_ids_without_end_time_and_read_back_whole() {
        let spans = vec![
            span(1, 1, None, 1_000),
            span(1, 2, Some(1), 1_100),
            span(2, 3, None, 900),
        ];
        let (batch, read) = round_trip(&spans);
        let file = &read[0];
        assert!(file.column_by_name("end_time").is_none());
        assert_eq!(
            file.schema()
                .field_with_name("span_id")
                .expect("span_id")
                .data_type(),
            &DataType::FixedSizeBinary(8)
        );
        let parents = file.column_by_name("parent_span_id").expect("parent");
        assert_eq!(parents.null_count(), 2, "roots have a null parent");
        let back = spans_from_file(file).expect("convert");
        assert_eq!(back.schema(), schema(Signal::Traces));
        assert_eq!(back, batch);
    }

    #[test]
    fn common_attributes_get_dedicated_columns_and_read_back_as_written() {
        // Distinct values (plain, delta-encoded columns) and repeated ones (dictionary).
        let spans: Vec<Span> = (0..3000u32)
            .map(|i| {
                let mut s = span((i % 200) as u8, (i % 250) as u8, None, i64::from(i));
                s.span_id = format!("{:016x}", u64::from(i) << 20 | 0xabc);
                s.attributes = if i % 100 == 7 {
                    r#"{"id":7,"other":"x"}"#.into()
                } else {
                    format!(
                        r#"{{"id":"u{i}","n":{},"ok":{}}}"#,
                        i * 7919 % 5003,
                        i % 3 == 0
                    )
                };
                s
            })
            .collect();
        let batch = spans_batch(&spans).expect("batch");
        let bytes = encode_parquet(Signal::Traces, &batch).expect("encode");
        let read = decode_parquet(bytes::Bytes::from(bytes), None, None).expect("decode");
        let file = &read[0];
        for col in ["attr:str:id", "attr:int:n", "attr:bool:ok"] {
            assert!(file.column_by_name(col).is_some(), "{col}");
        }
        let back: Vec<RecordBatch> = read
            .iter()
            .map(|b| spans_from_file(b).expect("convert"))
            .collect();
        let back = datafusion::arrow::compute::concat_batches(&schema(Signal::Traces), &back)
            .expect("concat");
        assert_eq!(back, batch);
    }

    #[test]
    fn spans_with_ids_that_are_not_canonical_hex_keep_the_first_layout() {
        let mut odd = span(3, 4, Some(1), 5_000);
        odd.span_id = "not-hex".into();
        let (batch, read) = round_trip(&[odd, span(3, 5, None, 4_000)]);
        let file = &read[0];
        assert!(file.column_by_name("end_time").is_some());
        assert_eq!(spans_from_file(file).expect("convert"), batch);
    }

    #[test]
    fn projections_of_lean_files_get_end_time_only_with_start_and_duration() {
        let (_, read) = round_trip(&[span(1, 1, None, 1_000)]);
        let file = &read[0];
        let idx = |n: &str| file.schema().index_of(n).expect("column");
        let both = file
            .project(&[idx("trace_id"), idx("start_time"), idx("duration")])
            .expect("project");
        let out = spans_from_file(&both).expect("convert");
        let names: Vec<String> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["trace_id", "start_time", "end_time", "duration"]);
        let end = out.column(2).as_primitive::<TimestampNanosecondType>();
        assert_eq!(end.value(0), 1_000 + 1_501);
        let ids = file.project(&[idx("span_id")]).expect("project");
        let out = spans_from_file(&ids).expect("convert");
        assert_eq!(out.num_columns(), 1);
        assert_eq!(
            out.column(0).as_string::<i32>().value(0),
            format!("{:016x}", 1u64 << 56 | 0xabcdef)
        );
    }
}
