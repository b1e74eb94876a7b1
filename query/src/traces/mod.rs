//! Strata's trace APIs: Tempo's and Jaeger's HTTP APIs over stored spans, so Grafana's
//! Tempo and Jaeger data sources (and the Jaeger UI) work unchanged.
//!
//! Paths (see the README's "Traces" section):
//! - Tempo at the root: `/api/traces/{id}` (v1, `{"batches": [...]}`),
//!   `/api/v2/traces/{id}` (`{"trace": {...}, "status": ...}`), both OTLP/JSON or, with
//!   `Accept: application/protobuf`, protobuf; `/api/search`, `/api/search/tags`,
//!   `/api/v2/search/tags`, `/api/search/tag/{tag}/values`,
//!   `/api/v2/search/tag/{tag}/values`, `/api/echo`, `/api/status/buildinfo`.
//! - Jaeger under `/jaeger` (its `/api/traces/{id}` clashes with Tempo's):
//!   `/jaeger/api/traces/{id}`, `/jaeger/api/traces?service=...`, `/jaeger/api/services`,
//!   `/jaeger/api/services/{service}/operations`, `/jaeger/api/operations`,
//!   `/jaeger/api/dependencies`. Grafana's Jaeger data source URL is then
//!   `http://host:9600/jaeger`.
//! - `/api/traces/{id}/logs`: the logs carrying the trace's id.
//!
//! Layout: [`read`] reads traces by id and scans spans (with [`limits::Budget`]); `search`
//! matches span conditions; `catalog` lists services and operations; `dependencies` builds
//! the service graph; `jaeger_model` and `otlp_model` turn stored spans into each wire
//! model; `jaeger` and `tempo` hold the handlers (`tempo_search` evaluates TraceQL with
//! `strata-traceql`, `tempo_tags` lists tag names and values); `stream` writes large bodies in chunks.

mod attrs;
mod catalog;
mod dependencies;
mod jaeger;
mod jaeger_model;
pub mod limits;
mod logs;
mod otlp_model;
mod params;
pub mod read;
mod search;
mod stream;
mod tempo;
mod tempo_search;
mod tempo_tags;

pub use limits::TraceApiConfig;

use crate::error::{Error, Result};
use crate::prom::params::Params;
use axum::Router;
use axum::http::HeaderMap;
use datafusion::arrow::array::RecordBatch;
use limits::{Budget, CancelOnDrop};
use std::sync::Arc;
use strata_storage::tenant::TENANT_HEADER;
use strata_storage::{Storage, TenantId};

/// What every trace handler needs.
#[derive(Clone)]
pub(crate) struct TraceState {
    pub storage: Storage,
    pub config: Arc<TraceApiConfig>,
}

/// The trace API routes (Tempo at the root, Jaeger under `/jaeger`).
pub fn router(storage: Storage, config: TraceApiConfig) -> Router {
    let state = TraceState {
        storage,
        config: Arc::new(config),
    };
    Router::new()
        .merge(tempo::routes())
        .merge(logs::routes())
        .nest("/jaeger", jaeger::routes())
        .with_state(state)
}

pub(crate) fn tenant(headers: &HeaderMap) -> Result<TenantId> {
    TenantId::from_header(headers.get(TENANT_HEADER).map(|v| v.as_bytes())).map_err(Error::Tenant)
}

pub(crate) fn params(uri: &axum::http::Uri) -> Params {
    Params::new(uri.query(), None)
}

/// A trace's stored batches by id, with its id normalized; `NotFound` when it has no spans.
pub(crate) async fn load_trace(
    state: &TraceState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(String, Vec<RecordBatch>)> {
    let t = tenant(headers)?;
    let id = read::normalize_trace_id(id)?;
    let storage = state.storage.clone();
    let tid = id.clone();
    let batches = blocking(state, move |b| read::trace_batches(&storage, &t, &tid, b)).await?;
    if batches.is_empty() {
        return Err(Error::NotFound(format!("trace {id} not found")));
    }
    Ok((id, batches))
}

/// Runs `f` on the blocking pool with a fresh budget; the request's timeout applies and
/// the work stops when the client goes away.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &TraceState,
    f: impl FnOnce(&Budget) -> Result<T> + Send + 'static,
) -> Result<T> {
    let budget = Budget::new(&state.config);
    let _guard = CancelOnDrop(budget.clone());
    let b = budget.clone();
    let timeout = state.config.timeout;
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || f(&b))).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(Error::Internal(Box::new(e))),
        Err(_) => Err(Error::Timeout {
            seconds: timeout.as_secs_f64(),
        }),
    }
}

/// Checks a search range against `max_search_range`.
pub(crate) fn check_range(config: &TraceApiConfig, start_ns: i64, end_ns: i64) -> Result<()> {
    if end_ns < start_ns {
        return Err(Error::BadQuery(
            "the end of the time range is before its start".into(),
        ));
    }
    let max = i64::try_from(config.max_search_range.as_nanos()).unwrap_or(i64::MAX);
    if end_ns.saturating_sub(start_ns) > max {
        return Err(Error::BadQuery(format!(
            "the time range is longer than the {} allowed (query.traces.max_search_range)",
            humantime::format_duration(config.max_search_range)
        )));
    }
    Ok(())
}

/// Checks a result `limit` against `max_result_traces` (0 or absent: the default).
pub(crate) fn check_limit(config: &TraceApiConfig, limit: Option<i64>) -> Result<usize> {
    match limit {
        None | Some(0) => Ok(config.default_result_traces),
        Some(n) if n < 0 => Err(Error::BadQuery(format!(
            "invalid limit {n}: must be positive"
        ))),
        Some(n) if n as u64 > config.max_result_traces as u64 => Err(Error::BadQuery(format!(
            "limit {n} is above the {} traces allowed (query.traces.max_result_traces)",
            config.max_result_traces
        ))),
        Some(n) => Ok(n as usize),
    }
}
