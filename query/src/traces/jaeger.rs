//! Jaeger's query HTTP API (served under `/jaeger`): trace by id, trace search, services,
//! operations and the dependency graph, in Jaeger's envelope
//! (`{"data", "total", "limit", "offset", "errors"}`) and span model.

use super::attrs::{jaeger_kind, kind_from_jaeger};
use super::catalog::{Operation, operations};
use super::dependencies::dependencies;
use super::jaeger_model::{Processes, envelope, error_envelope, span_json, trace_json};
use super::params::{
    TagFilter, bad, duration_bounds, int_param, now_ns, parse_go_duration, parse_tags,
};
use super::read::{normalize_trace_id, read_trace, spans_of};
use super::search::{SpanConditions, find_traces};
use super::stream::streamed;
use super::{TraceState, blocking, check_limit, check_range, load_trace, params, tenant};
use crate::error::{Error, Result};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};

pub(crate) fn routes() -> Router<TraceState> {
    Router::new()
        .route("/api/traces/{id}", get(get_trace))
        .route("/api/traces", get(search))
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations_handler))
        .route("/api/dependencies", get(dependencies_handler))
}

/// A failed request, answered in Jaeger's error envelope; internals stay in our logs.
struct JaegerError(Error);

impl From<Error> for JaegerError {
    fn from(e: Error) -> Self {
        JaegerError(e)
    }
}

impl IntoResponse for JaegerError {
    fn into_response(self) -> Response {
        let e = self.0;
        if matches!(e, Error::Internal(_)) {
            tracing::error!(error = ?e, "trace query failed");
        }
        let status = e.http_status();
        (
            status,
            Json(error_envelope(status.as_u16(), &e.to_string())),
        )
            .into_response()
    }
}

type Answer = std::result::Result<Json<Value>, JaegerError>;

async fn get_trace(
    State(state): State<TraceState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> std::result::Result<Response, JaegerError> {
    let (id, batches) = load_trace(&state, &headers, &id).await?;
    Ok(streamed("application/json", move |sink| {
        sink.buf().extend_from_slice(
            format!("{{\"data\":[{{\"traceID\":\"{id}\",\"spans\":[").as_bytes(),
        );
        let mut processes = Processes::default();
        let mut seen = HashSet::new();
        let mut first = true;
        for batch in &batches {
            for span in spans_of(batch)? {
                if !seen.insert(span.span_id.clone()) {
                    continue;
                }
                if !first {
                    sink.buf().push(b',');
                }
                first = false;
                let v = span_json(&span, &mut processes);
                serde_json::to_writer(sink.buf(), &v).map_err(|e| Error::Internal(Box::new(e)))?;
                sink.maybe_flush()?;
            }
        }
        sink.buf().extend_from_slice(b"],\"processes\":");
        serde_json::to_writer(sink.buf(), &processes.to_json())
            .map_err(|e| Error::Internal(Box::new(e)))?;
        sink.buf().extend_from_slice(
            b",\"warnings\":null}],\"total\":1,\"limit\":0,\"offset\":0,\"errors\":null}",
        );
        Ok(())
    }))
}

/// `start`/`end` in microseconds, or `lookback` (`1h`, `2d`; `custom` means none) back
/// from `end`; the configured default range otherwise.
fn time_range(p: &crate::prom::params::Params, state: &TraceState) -> Result<(i64, i64)> {
    let end = match int_param(p, "end")? {
        Some(us) => us.saturating_mul(1000),
        None => now_ns(),
    };
    let start = match int_param(p, "start")? {
        Some(us) => us.saturating_mul(1000),
        None => {
            let lookback = p.get("lookback");
            let back = if lookback.is_empty() || lookback == "custom" {
                i64::try_from(state.config.default_search_range.as_nanos()).unwrap_or(i64::MAX)
            } else {
                parse_go_duration(lookback).map_err(|e| bad("lookback", lookback, e))?
            };
            end.saturating_sub(back)
        }
    };
    check_range(&state.config, start, end)?;
    Ok((start, end))
}

fn conditions(p: &crate::prom::params::Params) -> Result<SpanConditions> {
    let mut tags = Vec::new();
    for raw in p.all("tags") {
        tags.extend(parse_tags(raw).map_err(|e| bad("tags", raw, e))?);
    }
    for raw in p.all("tag") {
        let (k, v) = raw
            .split_once(':')
            .ok_or_else(|| bad("tag", raw, "expected key:value"))?;
        tags.push(TagFilter {
            key: k.to_owned(),
            value: v.to_owned(),
        });
    }
    let (min, max) = duration_bounds(p)?;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(SpanConditions {
        service: non_empty(p.get("service")),
        operation: non_empty(p.get("operation")),
        kind: None,
        tags,
        min_duration_ns: min,
        max_duration_ns: max,
        tempo_names: false,
    })
}

async fn search(State(state): State<TraceState>, headers: HeaderMap, uri: Uri) -> Answer {
    let t = tenant(&headers)?;
    let p = params(&uri);
    let ids: Vec<String> = p
        .all("traceID")
        .into_iter()
        .map(normalize_trace_id)
        .collect::<Result<_>>()?;
    let storage = state.storage.clone();
    if !ids.is_empty() {
        let traces = blocking(&state, move |b| {
            let mut out = Vec::new();
            for id in ids {
                let spans = read_trace(&storage, &t, &id, b)?;
                if !spans.is_empty() {
                    out.push(trace_json(&id, &spans));
                }
            }
            Ok(out)
        })
        .await?;
        return Ok(listed(traces));
    }
    if p.get("service").is_empty() {
        return Err(Error::BadQuery("parameter 'service' is required".into()).into());
    }
    let (start, end) = time_range(&p, &state)?;
    let limit = check_limit(&state.config, int_param(&p, "limit")?)?;
    let cond = conditions(&p)?;
    let traces = blocking(&state, move |b| {
        let hits = find_traces(&storage, &t, &cond, start, end, limit, b)?;
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            let spans = read_trace(&storage, &t, &h.trace_id, b)?;
            out.push(trace_json(&h.trace_id, &spans));
        }
        Ok(out)
    })
    .await?;
    Ok(listed(traces))
}

/// A list in Jaeger's envelope, its length as the total.
fn listed(items: Vec<Value>) -> Json<Value> {
    let n = items.len();
    Json(envelope(Value::Array(items), n))
}

/// The tenant's (service, operation, kind) triples.
async fn all_operations(state: &TraceState, headers: &HeaderMap) -> Result<BTreeSet<Operation>> {
    let t = tenant(headers)?;
    let storage = state.storage.clone();
    blocking(state, move |b| operations(&storage, &t, b)).await
}

async fn services(State(state): State<TraceState>, headers: HeaderMap) -> Answer {
    let names: BTreeSet<String> = all_operations(&state, &headers)
        .await?
        .into_iter()
        .map(|(s, _, _)| s)
        .collect();
    Ok(listed(names.into_iter().map(Value::String).collect()))
}

async fn service_operations(
    State(state): State<TraceState>,
    headers: HeaderMap,
    Path(service): Path<String>,
) -> Answer {
    let names: BTreeSet<String> = all_operations(&state, &headers)
        .await?
        .into_iter()
        .filter(|(s, _, _)| *s == service)
        .map(|(_, n, _)| n)
        .collect();
    Ok(listed(names.into_iter().map(Value::String).collect()))
}

async fn operations_handler(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let p = params(&uri);
    let service = p.get("service").to_owned();
    if service.is_empty() {
        return Err(Error::BadQuery("parameter 'service' is required".into()).into());
    }
    let kind = match p.get("spanKind") {
        "" => None,
        k => Some(kind_from_jaeger(k).ok_or_else(|| {
            bad(
                "spanKind",
                k,
                "expected server, client, producer, consumer, internal or unspecified",
            )
        })?),
    };
    let data: Vec<Value> = all_operations(&state, &headers)
        .await?
        .into_iter()
        .filter(|(s, _, k)| *s == service && kind.is_none_or(|want| want == *k))
        .map(|(_, name, k)| json!({"name": name, "spanKind": jaeger_kind(k)}))
        .collect();
    Ok(listed(data))
}

async fn dependencies_handler(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let t = tenant(&headers)?;
    let p = params(&uri);
    let end = match int_param(&p, "endTs")? {
        Some(ms) => ms.saturating_mul(1_000_000),
        None => now_ns(),
    };
    let lookback = match int_param(&p, "lookback")? {
        Some(ms) if ms < 0 => return Err(bad("lookback", p.get("lookback"), "negative").into()),
        Some(ms) => ms.saturating_mul(1_000_000),
        None => 86_400_000_000_000,
    };
    let start = end.saturating_sub(lookback);
    check_range(&state.config, start, end)?;
    let storage = state.storage.clone();
    let deps = blocking(&state, move |b| dependencies(&storage, &t, start, end, b)).await?;
    Ok(listed(
        deps.into_iter()
            .map(|d| json!({"parent": d.parent, "child": d.child, "callCount": d.call_count}))
            .collect(),
    ))
}
