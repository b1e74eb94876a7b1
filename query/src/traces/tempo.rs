//! Tempo's HTTP API at the root: trace by id (v1 and v2, OTLP/JSON or protobuf), search
//! (TraceQL or legacy tags), tag names and values, echo and build info. Errors are plain
//! text with the status code, as Tempo answers them.

use super::otlp_model::resource_spans;
use super::read::spans_of;
use super::stream::{ChunkSink, streamed};
use super::{TraceState, load_trace};
use crate::error::{Error, Result};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datafusion::arrow::array::RecordBatch;
use prost::Message;
use std::collections::HashSet;
use strata_proto::opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use strata_storage::model::Span;

/// Spans encoded per chunk when a trace is written out.
const SPANS_PER_CHUNK: usize = 2000;

pub(crate) fn routes() -> Router<TraceState> {
    Router::new()
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(super::tempo_search::search))
        .route("/api/search/tags", get(super::tempo_tags::tags_v1))
        .route("/api/v2/search/tags", get(super::tempo_tags::tags_v2))
        .route(
            "/api/search/tag/{tag}/values",
            get(super::tempo_tags::values_v1),
        )
        .route(
            "/api/v2/search/tag/{tag}/values",
            get(super::tempo_tags::values_v2),
        )
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(buildinfo))
}

/// A failed Tempo request, answered as its status and the message as text; internals
/// stay in our logs.
pub(crate) struct TempoError(Error);

impl From<Error> for TempoError {
    fn from(e: Error) -> Self {
        TempoError(e)
    }
}

impl IntoResponse for TempoError {
    fn into_response(self) -> Response {
        let e = self.0;
        if matches!(e, Error::Internal(_)) {
            tracing::error!(error = ?e, "trace query failed");
        }
        (e.http_status(), format!("{e}\n")).into_response()
    }
}

/// What a Tempo handler answers.
pub(crate) type Answer<T = axum::Json<serde_json::Value>> = std::result::Result<T, TempoError>;

async fn buildinfo() -> Response {
    axum::Json(serde_json::json!({
        "version": "2.8.0",
        "revision": "strata",
        "branch": "main",
        "buildUser": "strata",
        "buildDate": "",
        "goVersion": "",
    }))
    .into_response()
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf") || v.contains("application/x-protobuf"))
}

/// Calls `f` with the trace's spans as `ResourceSpans`, a chunk at a time (duplicates
/// of a span id kept once).
fn for_each_chunk(
    batches: &[RecordBatch],
    f: &mut dyn FnMut(Vec<ResourceSpans>) -> Result<()>,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut pending: Vec<Span> = Vec::with_capacity(SPANS_PER_CHUNK);
    for batch in batches {
        for span in spans_of(batch)? {
            if !seen.insert(span.span_id.clone()) {
                continue;
            }
            pending.push(span);
            if pending.len() >= SPANS_PER_CHUNK {
                f(resource_spans(&pending))?;
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        f(resource_spans(&pending))?;
    }
    Ok(())
}

fn json_err(e: serde_json::Error) -> Error {
    Error::Internal(Box::new(e))
}

/// Writes `prefix`, the comma-separated `ResourceSpans` as OTLP/JSON, then `suffix`.
fn write_json(
    sink: &mut ChunkSink,
    batches: &[RecordBatch],
    prefix: &str,
    suffix: &str,
) -> Result<()> {
    sink.buf().extend_from_slice(prefix.as_bytes());
    let mut first = true;
    for_each_chunk(batches, &mut |chunk| {
        for rs in chunk {
            if !first {
                sink.buf().push(b',');
            }
            first = false;
            serde_json::to_writer(sink.buf(), &rs).map_err(json_err)?;
        }
        sink.maybe_flush()
    })?;
    sink.buf().extend_from_slice(suffix.as_bytes());
    Ok(())
}

/// `GET /api/traces/{id}`: Tempo v1, `{"batches": [ResourceSpans...]}`; as protobuf a
/// `tempopb.Trace`, which has the wire form of OTLP's `TracesData`.
async fn trace_v1(
    State(state): State<TraceState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Response> {
    let (_, batches) = load_trace(&state, &headers, &id).await?;
    Ok(if wants_protobuf(&headers) {
        // Concatenated `TracesData` messages are one `TracesData` (a repeated field).
        streamed("application/protobuf", move |sink| {
            for_each_chunk(&batches, &mut |chunk| {
                TracesData {
                    resource_spans: chunk,
                }
                .encode(sink.buf())
                .map_err(|e| Error::Internal(Box::new(e)))?;
                sink.maybe_flush()
            })
        })
    } else {
        streamed("application/json", move |sink| {
            write_json(sink, &batches, "{\"batches\":[", "]}")
        })
    })
}

/// `GET /api/v2/traces/{id}`: `{"trace": {"resourceSpans": [...]}, "status": "COMPLETE"}`;
/// as protobuf a `tempopb.TraceByIDResponse`.
async fn trace_v2(
    State(state): State<TraceState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Response> {
    let (_, batches) = load_trace(&state, &headers, &id).await?;
    Ok(if wants_protobuf(&headers) {
        streamed("application/protobuf", move |sink| {
            // The outer message needs the inner length first: encode the trace, then frame it.
            let mut inner = Vec::new();
            for_each_chunk(&batches, &mut |chunk| {
                TracesData {
                    resource_spans: chunk,
                }
                .encode(&mut inner)
                .map_err(|e| Error::Internal(Box::new(e)))
            })?;
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, sink.buf());
            prost::encoding::encode_varint(inner.len() as u64, sink.buf());
            for piece in inner.chunks(256 * 1024) {
                sink.buf().extend_from_slice(piece);
                sink.maybe_flush()?;
            }
            Ok(())
        })
    } else {
        streamed("application/json", move |sink| {
            write_json(
                sink,
                &batches,
                "{\"trace\":{\"resourceSpans\":[",
                "]},\"status\":\"COMPLETE\"}",
            )
        })
    })
}
