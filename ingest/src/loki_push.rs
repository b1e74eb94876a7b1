//! Loki's push API, `POST /loki/api/v1/push`, so that Promtail, Grafana Alloy and the Loki
//! clients can send logs to Strata unchanged.
//!
//! Two bodies are accepted, as Loki accepts them:
//! - `application/json` (optionally gzip-encoded):
//!   `{"streams":[{"stream":{"app":"api"},"values":[["<unix ns>","line",{"k":"v"}]]}]}`;
//! - `application/x-protobuf`: a snappy-compressed (block format) `logproto.PushRequest`
//!   whose streams carry their labels as a selector string, `{app="api"}`.
//!
//! A stream's labels become the record's stream labels exactly (validated: Prometheus label
//! names, no duplicates, the ingest label limits); structured metadata is kept as the
//! record's attributes. A request is decoded and validated whole before anything is written:
//! any bad stream or entry rejects it with a 400 naming what was wrong, so nothing is ever
//! half-written. Success is Loki's 204.
//!
//! Both bodies are walked once, each entry checked and appended to the batch as it comes
//! (protobuf on the wire, [`wire`]; JSON with serde, [`json`]), so a push takes its batch
//! and little more: the rows it builds are bounded by [`decoded_size::budget`] of the body
//! (413 past it), their text by [`Limits::max_text_bytes`].

use crate::body::{decode_content, read_limited};
use crate::error::Error;
use crate::limits::Limits;
use crate::otlp::decoded_size;
use crate::otlp::http::tenant_of;
use crate::service::Ingester;
use crate::telemetry::REQUESTS_FAILED;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::time::{SystemTime, UNIX_EPOCH};
use strata_storage::model::{Labels, LogRecord, Origin, Signal};
use strata_storage::schema::{LogRow, LogsBuilder};

mod json;
mod wire;

/// Why a push body was rejected. Every variant is the client's fault (4xx).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(
        "request body decompresses to {decoded_len} bytes, more than the limit of {limit} bytes"
    )]
    TooLarge { decoded_len: usize, limit: usize },
    /// The lines would make more text than one batch may hold (the storage's message).
    #[error("{0}")]
    TooMuchText(String),
    #[error("invalid snappy (block format) body: {0}")]
    Snappy(#[source] snap::Error),
    /// The entries would take more memory than the body's size allows.
    #[error("{0}")]
    Expands(crate::otlp::decoded_size::Expands),
    #[error("invalid protobuf PushRequest: {0}")]
    Protobuf(#[source] crate::protowire::WireError),
    #[error("invalid JSON push body: {0}")]
    Json(String),
    #[error("stream {stream}: error parsing labels {labels:?}: {reason}")]
    Labels {
        stream: usize,
        labels: String,
        reason: String,
    },
    #[error("stream {stream} {labels}: entry {entry}: {reason}")]
    Entry {
        stream: usize,
        labels: String,
        entry: usize,
        reason: String,
    },
}

impl PushError {
    /// True for a body over the size limit (413); every other error is a 400.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            PushError::TooLarge { .. } | PushError::TooMuchText(_) | PushError::Expands(_)
        )
    }
}

/// The body formats of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFormat {
    Json,
    SnappyProtobuf,
}

impl PushFormat {
    fn from_headers(headers: &HeaderMap) -> Result<Self, Error> {
        let (ct, mime) = crate::body::content_type(headers);
        match mime.as_str() {
            // Loki treats a missing content type as protobuf, as Promtail's oldest versions sent.
            "application/x-protobuf" | "application/protobuf" | "" => {
                Ok(PushFormat::SnappyProtobuf)
            }
            "application/json" => Ok(PushFormat::Json),
            _ => Err(Error::UnsupportedContentType(ct.to_owned())),
        }
    }
}

/// Decodes and validates a whole push body into log records.
pub fn decode(
    format: PushFormat,
    body: &[u8],
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<LogRecord>, PushError> {
    let mut out = Vec::new();
    decode_into(format, body, limits, now_ns, &mut out)?;
    Ok(out)
}

/// Decodes and validates a whole push body straight into a `logs` batch builder: the same
/// rows as `schema::logs_batch(&decode(..)?)`, without a model record (and its dozen
/// strings) per line. Stream labels are parsed, validated and hashed once per stream.
pub fn decode_batch(
    format: PushFormat,
    body: &[u8],
    limits: &Limits,
    now_ns: i64,
) -> Result<LogsBuilder, PushError> {
    let mut sink = BatchSink::new(limits.max_text_bytes());
    decode_into(format, body, limits, now_ns, &mut sink)?;
    Ok(sink.finish())
}

fn decode_into(
    format: PushFormat,
    body: &[u8],
    limits: &Limits,
    now_ns: i64,
    sink: &mut impl Sink,
) -> Result<(), PushError> {
    match format {
        PushFormat::SnappyProtobuf => {
            let decoded_len = snap::raw::decompress_len(body).map_err(PushError::Snappy)?;
            if decoded_len > limits.max_request_bytes {
                return Err(PushError::TooLarge {
                    decoded_len,
                    limit: limits.max_request_bytes,
                });
            }
            let raw = snap::raw::Decoder::new()
                .decompress_vec(body)
                .map_err(PushError::Snappy)?;
            // Every string is borrowed from `raw`; malformed protobuf is refused by the walk
            // itself, naming the field, before any entry is used.
            convert(&raw, limits, now_ns, sink)
        }
        PushFormat::Json => json::convert(body, limits, now_ns, sink),
    }
}

/// A validated stream: its labels, their hash and the origin its records carry.
struct StreamInfo {
    labels: Labels,
    id: u64,
    origin: Origin,
    /// The text each row of the stream copies (its labels and origin), as the batch
    /// builder counts it.
    text_bytes: usize,
}

impl StreamInfo {
    fn new(labels: Labels) -> Self {
        let origin = Origin {
            service_name: labels.get("service_name").unwrap_or("").to_owned(),
            resource_attributes: "{}".into(),
            scope_attributes: "{}".into(),
            ..Origin::default()
        };
        let text_bytes = labels
            .iter()
            .map(|l| l.name.len() + l.value.len())
            .sum::<usize>()
            + strata_storage::schema::origin_text_len(&origin);
        StreamInfo {
            id: labels.series_id().0,
            origin,
            labels,
            text_bytes,
        }
    }

    /// The text each row of the stream copies: its labels and origin.
    fn text_bytes(&self) -> usize {
        self.text_bytes
    }
}

/// Where validated entries go: model records (tests, and what the rows mean) or a batch.
trait Sink {
    /// The (decompressed) body is `body_bytes` long: what a batch may size itself by.
    fn body_size(&mut self, _body_bytes: usize) {}
    /// Drops what was built: the request is refused.
    fn discard(&mut self);
    /// One validated entry; `attributes` is its structured metadata as a JSON object.
    fn entry(
        &mut self,
        stream: &StreamInfo,
        ts: i64,
        now_ns: i64,
        line: &str,
        attributes: &str,
    ) -> strata_storage::Result<()>;
}

impl Sink for Vec<LogRecord> {
    fn discard(&mut self) {
        *self = Vec::new();
    }

    fn entry(
        &mut self,
        stream: &StreamInfo,
        ts: i64,
        now_ns: i64,
        line: &str,
        attributes: &str,
    ) -> strata_storage::Result<()> {
        self.push(LogRecord {
            timestamp_ns: ts,
            observed_timestamp_ns: now_ns,
            body: line.to_owned(),
            body_type: "string".into(),
            attributes: attributes.to_owned(),
            origin: stream.origin.clone(),
            stream: stream.labels.clone(),
            ..LogRecord::default()
        });
        Ok(())
    }
}

/// Builds the batch as entries come. The builder is made at the first entry that passed
/// its checks, sized by the body but at most [`BatchSink::MAX_RESERVED_ROWS`] rows: a
/// guess made before anything is validated reserves little, and the builder grows past it.
struct BatchSink {
    builder: Option<LogsBuilder>,
    body_bytes: usize,
    max_text_bytes: usize,
}

impl BatchSink {
    /// The most rows reserved before they come (about 16 MiB of builders, for a body of
    /// 8 MiB or more). Reserving them at once rather than growing from a few keeps the
    /// builders' buffers in single large allocations that grow in place.
    const MAX_RESERVED_ROWS: usize = 1 << 17;

    fn new(max_text_bytes: usize) -> Self {
        BatchSink {
            builder: None,
            body_bytes: 0,
            max_text_bytes,
        }
    }

    fn builder(&mut self) -> &mut LogsBuilder {
        let (body_bytes, max_text) = (self.body_bytes, self.max_text_bytes);
        self.builder.get_or_insert_with(|| {
            // Entries of about 64 bytes in the body, each line about its size.
            let rows = (body_bytes / 64).clamp(1, Self::MAX_RESERVED_ROWS);
            LogsBuilder::with_capacity(rows, rows * 64).with_max_text_bytes(max_text)
        })
    }

    fn finish(self) -> LogsBuilder {
        self.builder
            .unwrap_or_else(|| LogsBuilder::with_capacity(0, 0))
    }
}

impl Sink for BatchSink {
    fn body_size(&mut self, body_bytes: usize) {
        self.body_bytes = body_bytes;
    }

    fn discard(&mut self) {
        self.builder = None;
    }

    fn entry(
        &mut self,
        stream: &StreamInfo,
        ts: i64,
        now_ns: i64,
        line: &str,
        attributes: &str,
    ) -> strata_storage::Result<()> {
        self.builder().append(
            &stream.labels,
            stream.id,
            &stream.origin,
            &LogRow {
                timestamp_ns: ts,
                observed_timestamp_ns: now_ns,
                severity_number: 0,
                severity_text: "",
                body: line,
                body_type: "string",
                attributes,
                dropped_attributes_count: 0,
                flags: 0,
                trace_id: "",
                span_id: "",
                event_name: "",
            },
        )
    }
}

/// The client's label selector as an error shows it (at most 128 characters).
fn clipped(labels: &str) -> String {
    let (shown, more) = crate::otlp::common::clip(labels);
    format!("{shown}{more}")
}

/// A sink's refusal: too much text is a 413, anything else names the entry (400).
fn sink_error(e: strata_storage::Error, bad: impl FnOnce(String) -> PushError) -> PushError {
    match e {
        strata_storage::Error::TooLarge(m) => PushError::TooMuchText(m),
        other => bad(format!("building the batch failed: {other}")),
    }
}

/// What a row of a `logs` batch takes besides its text: its fixed-width values (times,
/// stream id, severity, counts) and the offsets of its string and label columns.
const ROW_BYTES: usize = 128;

/// What the rows of a push take, counted entry by entry against
/// [`decoded_size::budget`] of its (decompressed) body.
struct Footprint {
    body_bytes: usize,
    budget: usize,
    rows_bytes: usize,
    entries: u64,
}

impl Footprint {
    fn new(body_bytes: usize) -> Self {
        Footprint {
            body_bytes,
            budget: decoded_size::budget(body_bytes),
            rows_bytes: 0,
            entries: 0,
        }
    }

    /// Counts an entry of `line_bytes` whose row copies `stream_text`; false once the
    /// rows so far are over the budget.
    fn add(&mut self, stream_text: usize, line_bytes: usize) -> bool {
        self.entries += 1;
        self.rows_bytes = self
            .rows_bytes
            .saturating_add(ROW_BYTES + stream_text + line_bytes);
        self.rows_bytes <= self.budget
    }

    /// Counts `bytes` more for entries counted already; false once over the budget.
    fn grow(&mut self, bytes: usize) -> bool {
        self.rows_bytes = self.rows_bytes.saturating_add(bytes);
        self.rows_bytes <= self.budget
    }

    /// The refusal of a push over the budget, once every entry is counted.
    fn refusal(&self) -> PushError {
        PushError::Expands(decoded_size::Expands {
            body_bytes: self.body_bytes,
            decoded_bytes: self.rows_bytes,
            limit: self.budget,
            times: decoded_size::MAX_EXPANSION,
            holds: format!(
                "{} entries of about {ROW_BYTES} bytes each besides their text",
                self.entries
            ),
        })
    }
}

/// The first refusal of a walk: any of [`PushError`], or the body's budget (told once the
/// walk has counted every entry).
enum Refused {
    Error(PushError),
    OverBudget,
}

/// The answer of a walk that ended: its first refusal, if any.
fn walk_outcome(refused: Option<Refused>, footprint: &Footprint) -> Result<(), PushError> {
    match refused {
        None => Ok(()),
        Some(Refused::Error(e)) => Err(e),
        Some(Refused::OverBudget) => Err(footprint.refusal()),
    }
}

/// One walk of a protobuf push: each entry is checked and goes to the sink as it comes.
/// After the first refusal (a stream's labels, an entry, too much text, or more memory
/// than [`decoded_size::budget`] allows for the body) nothing more is built, but the rest
/// is still walked: a malformed body is refused as malformed wherever the fault lies, as
/// when a first walk checked it whole, and a refusal for size counts every entry.
fn convert(
    raw: &[u8],
    limits: &Limits,
    now_ns: i64,
    sink: &mut impl Sink,
) -> Result<(), PushError> {
    sink.body_size(raw.len());
    let mut footprint = Footprint::new(raw.len());
    let mut refused: Option<Refused> = None;
    let mut attrs = String::new();
    let mut metadata = Vec::new();
    let mut streams = wire::Streams::new(raw);
    let mut si = 0;
    while let Some(stream) = streams.next().map_err(PushError::Protobuf)? {
        let info = match refused {
            Some(_) => None,
            None => match parse_labels(stream.labels).and_then(|p| stream_labels(p, limits)) {
                Ok(labels) => Some(StreamInfo::new(labels)),
                Err(reason) => {
                    refused = Some(Refused::Error(PushError::Labels {
                        stream: si,
                        labels: clipped(stream.labels),
                        reason,
                    }));
                    None
                }
            },
        };
        let stream_text = info.as_ref().map_or(0, StreamInfo::text_bytes);
        let keep = if info.is_some() {
            limits.max_attributes_per_item
        } else {
            0
        };
        let mut entries = stream.entries();
        let mut ei = 0;
        while let Some(e) = entries
            .next(&mut metadata, keep)
            .map_err(PushError::Protobuf)?
        {
            let within = footprint.add(stream_text, e.line.len());
            if let (None, Some(info)) = (&refused, &info) {
                let stored = if within {
                    store_entry(
                        info,
                        (si, ei),
                        &e,
                        &metadata,
                        limits,
                        now_ns,
                        &mut attrs,
                        sink,
                    )
                    .map_err(Refused::Error)
                } else {
                    Err(Refused::OverBudget)
                };
                if let Err(r) = stored {
                    sink.discard();
                    refused = Some(r);
                }
            }
            ei += 1;
        }
        si += 1;
    }
    walk_outcome(refused, &footprint)
}

/// Checks one entry of a protobuf push (stream `si`, entry `ei`) and hands it to the sink.
#[allow(clippy::too_many_arguments)]
fn store_entry(
    info: &StreamInfo,
    (si, ei): (usize, usize),
    e: &wire::Entry<'_>,
    metadata: &[(&str, &str)],
    limits: &Limits,
    now_ns: i64,
    attrs: &mut String,
    sink: &mut impl Sink,
) -> Result<(), PushError> {
    let bad = |reason: String| PushError::Entry {
        stream: si,
        labels: info.labels.to_string(),
        entry: ei,
        reason,
    };
    let ts = e
        .timestamp
        .map(|(seconds, nanos)| {
            seconds
                .checked_mul(1_000_000_000)
                .and_then(|s| s.checked_add(i64::from(nanos)))
        })
        .unwrap_or(Some(0))
        .ok_or_else(|| bad("timestamp out of range".into()))?;
    check_entry(e.line, metadata, e.metadata_count, limits, attrs).map_err(bad)?;
    sink.entry(
        info,
        if ts == 0 { now_ns } else { ts },
        now_ns,
        e.line,
        attrs,
    )
    .map_err(|e| sink_error(e, bad))
}

/// Checks an entry against the limits and writes its metadata's JSON object into `attrs`;
/// `count` is how many pairs the entry has (`metadata` holds them all when within the limit).
fn check_entry<K: AsRef<str>, V: AsRef<str>>(
    line: &str,
    metadata: &[(K, V)],
    count: usize,
    limits: &Limits,
    attrs: &mut String,
) -> Result<(), String> {
    limits.check_log_body(line.len())?;
    limits.check_attributes(count)?;
    attrs.clear();
    if metadata.is_empty() {
        attrs.push_str("{}");
        return Ok(());
    }
    if metadata.iter().any(|(n, _)| n.as_ref().is_empty()) {
        return Err("structured metadata with an empty name".into());
    }
    // Sorted by name, a repeated name keeping its last value (as a JSON object decodes).
    let map: std::collections::BTreeMap<&str, &str> = metadata
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    let json = serde_json::to_string(&map).map_err(|e| e.to_string())?;
    attrs.push_str(&json);
    Ok(())
}

/// A label name as Prometheus allows it: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Validates a stream's label pairs and builds its label set.
fn stream_labels(pairs: Vec<(String, String)>, limits: &Limits) -> Result<Labels, String> {
    let mut seen = std::collections::HashSet::new();
    for (n, _) in &pairs {
        if !valid_label_name(n) {
            return Err(format!("invalid label name {n:?}"));
        }
        if !seen.insert(n.as_str()) {
            return Err(format!("duplicate label name {n:?}"));
        }
    }
    let labels = Labels::from_pairs(pairs);
    if labels.is_empty() {
        return Err("at least one label pair with a non-empty value is required per stream".into());
    }
    limits.check_labels(&labels)?;
    Ok(labels)
}

/// Parses a Prometheus-style label set, `{name="value", other="x"}`, with Go string escapes.
pub fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let b = s.trim();
    let inner = b
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or("labels must be enclosed in { }")?;
    let chars: Vec<char> = inner.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while chars
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        if name.is_empty() {
            return Err(format!("expected a label name at offset {start}"));
        }
        skip_ws(&mut i);
        if chars.get(i) != Some(&'=') {
            return Err(format!("expected '=' after label name {name:?}"));
        }
        i += 1;
        skip_ws(&mut i);
        if chars.get(i) != Some(&'"') {
            return Err(format!("expected a quoted value for label {name:?}"));
        }
        i += 1;
        let mut value = String::new();
        loop {
            let c = *chars
                .get(i)
                .ok_or_else(|| format!("unterminated value of label {name:?}"))?;
            i += 1;
            match c {
                '"' => break,
                '\\' => {
                    let e = *chars
                        .get(i)
                        .ok_or_else(|| format!("unterminated value of label {name:?}"))?;
                    i += 1;
                    value.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '\\' => '\\',
                        '"' => '"',
                        '\'' => '\'',
                        other => return Err(format!("unknown escape \\{other} in label {name:?}")),
                    });
                }
                c => value.push(c),
            }
        }
        out.push((name, value));
        skip_ws(&mut i);
        match chars.get(i) {
            Some(',') => i += 1,
            None => break,
            Some(c) => return Err(format!("expected ',' or '}}', found {c:?}")),
        }
    }
    Ok(out)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn error_response(e: &Error) -> Response {
    REQUESTS_FAILED.add(Signal::Logs, 1);
    let mut resp = (e.http_status(), format!("{}\n", e.client_message())).into_response();
    if let Some(secs) = e.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

async fn push(State(ingester): State<Ingester>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let tenant = tenant_of(&headers)?;
        let format = PushFormat::from_headers(&headers)?;
        let limit = ingester.limits().max_request_bytes;
        let raw = read_limited(body, limit).await?;
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let limits = ingester.limits().clone();
        let batch = tokio::task::spawn_blocking(move || -> Result<LogsBuilder, Error> {
            // Snappy is the protobuf body's own framing; Content-Encoding may add gzip on top.
            let enc = encoding.filter(|e| !e.eq_ignore_ascii_case("snappy"));
            let data = decode_content(enc.as_deref(), raw, limit)?;
            Ok(decode_batch(format, &data, &limits, now_ns())?)
        })
        .await
        .map_err(|_| Error::Storage(strata_storage::Error::ShuttingDown))??;
        ingester.store_log_batch(&tenant, batch).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "Loki push refused");
            error_response(&e)
        }
    }
}

/// The Loki push route, for the HTTP API port.
pub fn router(ingester: Ingester) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .with_state(ingester)
}

#[cfg(test)]
mod tests;
