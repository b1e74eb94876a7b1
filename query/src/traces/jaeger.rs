//! Jaeger's query HTTP API (served under `/jaeger`): trace by id, trace search, services,
//! operations and the dependency graph, in Jaeger's envelope
//! (`{"data", "total", "limit", "offset", "errors"}`) and span model.

use super::attrs::{jaeger_kind, kind_from_jaeger};
use super::catalog::operations;
use super::dependencies::dependencies;
use super::jaeger_model::{Processes, envelope, error_envelope, span_json, trace_json};
use super::params::{
    TagFilter, bad, duration_param, int_param, now_ns, parse_go_duration, parse_tags,
};
use super::read::{normalize_trace_id, read_trace, spans_of, trace_batches};
use super::search::{SpanConditions, find_traces};
use super::stream::streamed;
use super::{TraceState, blocking, check_limit, check_range, params, tenant};
use crate::error::{Error, Result};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
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

/// A failed request in Jaeger's error envelope; internals stay in our logs.
fn jaeger_error(e: &Error) -> Response {
    if matches!(e, Error::Internal(_)) {
        tracing::error!(error = ?e, "trace query failed");
    }
    let status = e.http_status();
    (
        status,
        axum::Json(error_envelope(status.as_u16(), &e.to_string())),
    )
        .into_response()
}

fn answer(r: Result<Value>) -> Response {
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => jaeger_error(&e),
    }
}

async fn get_trace(
    State(state): State<TraceState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let found = async {
        let t = tenant(&headers)?;
        let id = normalize_trace_id(&id)?;
        let storage = state.storage.clone();
        let tid = id.clone();
        let batches = blocking(&state, move |b| trace_batches(&storage, &t, &tid, b)).await?;
        if batches.is_empty() {
            return Err(Error::NotFound(format!("trace {id} not found")));
        }
        Ok((id, batches))
    }
    .await;
    let (id, batches) = match found {
        Ok(x) => x,
        Err(e) => return jaeger_error(&e),
    };
    streamed("application/json", move |sink| {
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
    })
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
    let min = duration_param(p, "minDuration")?;
    let max = duration_param(p, "maxDuration")?;
    if let (Some(lo), Some(hi)) = (min, max)
        && hi < lo
    {
        return Err(Error::BadQuery(
            "maxDuration must be greater than minDuration".into(),
        ));
    }
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

async fn search(State(state): State<TraceState>, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
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
            let n = traces.len();
            return Ok(envelope(Value::Array(traces), n));
        }
        if p.get("service").is_empty() {
            return Err(Error::BadQuery("parameter 'service' is required".into()));
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
        let n = traces.len();
        Ok(envelope(Value::Array(traces), n))
    }
    .await;
    answer(r)
}

async fn services(State(state): State<TraceState>, headers: HeaderMap) -> Response {
    let r = async {
        let t = tenant(&headers)?;
        let storage = state.storage.clone();
        let ops = blocking(&state, move |b| operations(&storage, &t, b)).await?;
        let names: BTreeSet<String> = ops.into_iter().map(|(s, _, _)| s).collect();
        let n = names.len();
        Ok(envelope(json!(names), n))
    }
    .await;
    answer(r)
}

async fn service_operations(
    State(state): State<TraceState>,
    headers: HeaderMap,
    Path(service): Path<String>,
) -> Response {
    let r = async {
        let t = tenant(&headers)?;
        let storage = state.storage.clone();
        let ops = blocking(&state, move |b| operations(&storage, &t, b)).await?;
        let names: BTreeSet<String> = ops
            .into_iter()
            .filter(|(s, _, _)| *s == service)
            .map(|(_, n, _)| n)
            .collect();
        let n = names.len();
        Ok(envelope(json!(names), n))
    }
    .await;
    answer(r)
}

async fn operations_handler(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let r = async {
        let t = tenant(&headers)?;
        let p = params(&uri);
        let service = p.get("service").to_owned();
        if service.is_empty() {
            return Err(Error::BadQuery("parameter 'service' is required".into()));
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
        let storage = state.storage.clone();
        let ops = blocking(&state, move |b| operations(&storage, &t, b)).await?;
        let data: Vec<Value> = ops
            .into_iter()
            .filter(|(s, _, k)| *s == service && kind.is_none_or(|want| want == *k))
            .map(|(_, name, k)| json!({"name": name, "spanKind": jaeger_kind(k)}))
            .collect();
        let n = data.len();
        Ok(envelope(Value::Array(data), n))
    }
    .await;
    answer(r)
}

async fn dependencies_handler(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let r = async {
        let t = tenant(&headers)?;
        let p = params(&uri);
        let end = match int_param(&p, "endTs")? {
            Some(ms) => ms.saturating_mul(1_000_000),
            None => now_ns(),
        };
        let lookback = match int_param(&p, "lookback")? {
            Some(ms) if ms < 0 => return Err(bad("lookback", p.get("lookback"), "negative")),
            Some(ms) => ms.saturating_mul(1_000_000),
            None => 86_400_000_000_000,
        };
        let start = end.saturating_sub(lookback);
        check_range(&state.config, start, end)?;
        let storage = state.storage.clone();
        let deps = blocking(&state, move |b| dependencies(&storage, &t, start, end, b)).await?;
        let data: Vec<Value> = deps
            .into_iter()
            .map(|d| json!({"parent": d.parent, "child": d.child, "callCount": d.call_count}))
            .collect();
        let n = data.len();
        Ok(envelope(Value::Array(data), n))
    }
    .await;
    answer(r)
}
