//! The router and the query endpoints (`/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/format_query`), plus what every handler shares: tenant and parameter
//! extraction and running storage reads and evaluation off the reactor with a deadline.

use super::PromApiConfig;
use super::params::{
    Params, invalid_param, limit_param, parse_duration_ms, parse_time, time_param,
};
use super::response::{ApiError, Outcome};
use super::source::cache::SampleCache;
use super::source::{Limit, Scanner, SourceLimits, StorageSource};
use super::{meta, status};
use axum::Router;
use axum::extract::State;

use axum::routing::get;
use promql_parser::parser::value::ValueType;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata_promql::{Engine, EngineOptions, ErrorType, QueryTimes, Value};
use strata_storage::{Storage, TenantId};

/// What every handler needs.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub storage: Storage,
    pub config: Arc<PromApiConfig>,
    pub started: SystemTime,
    /// Decoded row ranges kept between queries (`sample_cache_bytes`).
    pub cache: Arc<SampleCache>,
}

/// Serves Prometheus's HTTP query API over `storage` (see the module docs for the routes).
pub fn router(storage: Storage, config: PromApiConfig) -> Router {
    let cache = Arc::new(SampleCache::new(config.sample_cache_bytes));
    router_with_cache(storage, config, cache)
}

/// [`router`] with its sample cache given (to watch it, or share it between routers over
/// the same storage); `config.sample_cache_bytes` is not used.
pub fn router_with_cache(
    storage: Storage,
    config: PromApiConfig,
    cache: Arc<SampleCache>,
) -> Router {
    let state = ApiState {
        storage,
        cache,
        config: Arc::new(config),
        started: SystemTime::now(),
    };
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route(
            "/api/v1/parse_query",
            get(parse_query_ast).post(parse_query_ast),
        )
        .route("/api/v1/series", get(meta::series).post(meta::series))
        .route("/api/v1/labels", get(meta::labels).post(meta::labels))
        .route("/api/v1/label/{name}/values", get(meta::label_values))
        .route("/api/v1/metadata", get(meta::metadata))
        .route(
            "/api/v1/query_exemplars",
            get(meta::query_exemplars).post(meta::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .layer(axum::middleware::from_fn(crate::gzip::gzip_answers))
        .with_state(state)
}

pub(crate) use super::params::{BadRequest, Req};

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The API error of a read stopped by a limit.
pub(crate) fn limit_error(l: &Limit) -> ApiError {
    let typ = match l {
        Limit::TooManySeries(_) | Limit::TooManySamples => ErrorType::Execution,
        Limit::Timeout => ErrorType::Timeout,
        Limit::Canceled => ErrorType::Canceled,
    };
    ApiError {
        typ,
        message: l.to_string(),
    }
}

/// Sets the flag when dropped: the handler's future was dropped (client gone) or finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `f` on the blocking pool with a scanner for `tenant` that stops at the deadline
/// or when the request goes away; a late answer becomes a `timeout` error.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &ApiState,
    tenant: TenantId,
    timeout: Duration,
    f: impl FnOnce(Scanner) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let scanner = Scanner::new(
        state.storage.clone(),
        tenant,
        Instant::now().checked_add(timeout),
        cancel,
    )
    .with_cache(state.cache.clone());
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || f(scanner))).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(_) => Err(limit_error(&Limit::Timeout)),
    }
}

/// The effective timeout: the config's, shortened by a `timeout` parameter.
pub(crate) fn timeout_param(p: &Params, config: &PromApiConfig) -> Result<Duration, ApiError> {
    let v = p.get("timeout");
    if v.is_empty() {
        return Ok(config.query_timeout);
    }
    let ms = parse_duration_ms(v).map_err(|e| invalid_param("timeout", e))?;
    let asked = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    Ok(asked.min(config.query_timeout))
}

fn lookback_param(p: &Params, config: &PromApiConfig) -> Result<Duration, ApiError> {
    let v = p.get("lookback_delta");
    if v.is_empty() {
        return Ok(config.lookback_delta);
    }
    let ms = parse_duration_ms(v).map_err(|e| invalid_param("lookback_delta", e))?;
    Ok(match u64::try_from(ms) {
        Ok(ms) if ms > 0 => Duration::from_millis(ms),
        _ => config.lookback_delta,
    })
}

/// The `query` parameter, parsed to evaluate over `times` (which duration expressions
/// such as `[step() * 4]` refer to; `None` outside an evaluation).
fn parse_query(
    p: &Params,
    times: Option<QueryTimes>,
) -> Result<promql_parser::parser::Expr, ApiError> {
    strata_promql::parse_in(p.get("query"), times).map_err(|e| invalid_param("query", e))
}

enum Range {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

struct Evaluation {
    expr: promql_parser::parser::Expr,
    range: Range,
    timeout: Duration,
    lookback: Duration,
    limit: usize,
}

async fn evaluate(state: &ApiState, tenant: TenantId, ev: Evaluation) -> Outcome {
    let config = state.config.clone();
    let result = blocking(state, tenant, ev.timeout, move |scanner| {
        let engine = Engine::new(EngineOptions {
            lookback_delta: ev.lookback,
            max_samples: config.max_samples,
            timeout: ev.timeout,
            ..EngineOptions::default()
        });
        let source = StorageSource::new(
            scanner,
            SourceLimits {
                max_series: config.max_series,
                max_samples: config.max_samples,
            },
        );
        let res = match ev.range {
            Range::Instant(t) => engine.instant_query_expr(&source, &ev.expr, t),
            Range::Range { start, end, step } => {
                engine.range_query_expr(&source, &ev.expr, start, end, step)
            }
        };
        let mut r = res.map_err(|e| match e {
            strata_promql::Error::Source(inner) => match source.limit_hit() {
                Some(l) => limit_error(&l),
                None => ApiError::internal(inner),
            },
            other => ApiError {
                typ: other.error_type(),
                message: other.to_string(),
            },
        })?;
        if ev.limit > 0 {
            let truncated = match &mut r.value {
                Value::Vector(v) if v.len() > ev.limit => {
                    v.truncate(ev.limit);
                    true
                }
                Value::Matrix(m) if m.len() > ev.limit => {
                    m.truncate(ev.limit);
                    true
                }
                _ => false,
            };
            if truncated {
                r.warnings.push("results truncated due to limit".into());
            }
        }
        // Serialized here, on the blocking pool, not on the reactor.
        let mut data = Vec::new();
        r.write_api_json(&mut data).map_err(ApiError::internal)?;
        Ok((data, r.warnings, r.infos))
    })
    .await;
    match result {
        Ok((data, warnings, infos)) => Outcome::Raw {
            data,
            warnings,
            infos,
        },
        Err(e) => e.into(),
    }
}

async fn query(
    State(state): State<ApiState>,
    req: Result<Req, BadRequest>,
) -> Result<Outcome, ApiError> {
    let req = req?;
    let p = &req.params;
    let limit = limit_param(p)?;
    let time = time_param(p, "time", now_ms())?;
    let ev = Evaluation {
        limit,
        range: Range::Instant(time),
        timeout: timeout_param(p, &state.config)?,
        lookback: lookback_param(p, &state.config)?,
        expr: parse_query(p, Some(QueryTimes::instant(time)))?,
    };
    Ok(evaluate(&state, req.tenant, ev).await)
}

fn range_type_name(t: ValueType) -> Option<&'static str> {
    match t {
        ValueType::Vector | ValueType::Scalar => None,
        ValueType::Matrix => Some("range vector"),
        ValueType::String => Some("string"),
    }
}

async fn query_range(
    State(state): State<ApiState>,
    req: Result<Req, BadRequest>,
) -> Result<Outcome, ApiError> {
    let req = req?;
    let p = &req.params;
    let limit = limit_param(p)?;
    let start = parse_time(p.get("start")).map_err(|e| invalid_param("start", e))?;
    let end = parse_time(p.get("end")).map_err(|e| invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let step = parse_duration_ms(p.get("step")).map_err(|e| invalid_param("step", e))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > 11_000 {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let timeout = timeout_param(p, &state.config)?;
    let lookback = lookback_param(p, &state.config)?;
    let times = QueryTimes {
        start_ms: start,
        end_ms: end,
        step_ms: step,
    };
    let expr = parse_query(p, Some(times))?;
    if let Some(t) = range_type_name(expr.value_type()) {
        return Err(invalid_param(
            "query",
            format!(
                "invalid expression type {t:?} for range query, must be Scalar or instant Vector"
            ),
        ));
    }
    let ev = Evaluation {
        expr,
        range: Range::Range { start, end, step },
        timeout,
        lookback,
        limit,
    };
    Ok(evaluate(&state, req.tenant, ev).await)
}

async fn format_query(req: Result<Req, BadRequest>) -> Result<Outcome, ApiError> {
    let expr = parse_query(&req?.params, None)?;
    Ok(Outcome::data(serde_json::Value::String(
        strata_promql::format_query(&expr),
    )))
}

/// `/api/v1/parse_query`: the expression's syntax tree, as Prometheus 3 answers it.
async fn parse_query_ast(req: Result<Req, BadRequest>) -> Result<Outcome, ApiError> {
    let expr = parse_query(&req?.params, None)?;
    Ok(Outcome::data(super::ast::translate(&expr)))
}
