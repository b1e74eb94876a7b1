//! The router, the query endpoints (`query`, `query_range`), Loki's parameter forms, the
//! adapter from storage to the LogQL engine, and what every handler shares: the tenant,
//! errors, and running reads off the reactor with a deadline.

use super::LokiApiConfig;
use super::meta;
use super::source::{LogReader, ReadError, ReadLimit, ReadStream, Wanted};
use crate::prom::params::{BadRequest, Params, Req, parse_rfc3339_ns};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value as Json, json};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata_logql::{
    Direction, Engine, Entry, Expr, Limits, LineFilterOp, LogSource, MatchOp, Matcher, Selection,
    SourceError, Stream,
};
use strata_storage::index::{LabelMatcher, MatchOp as IndexOp};
use strata_storage::{Storage, TenantId};

/// What every handler needs.
#[derive(Clone)]
pub(crate) struct LokiState {
    pub storage: Storage,
    pub config: Arc<LokiApiConfig>,
    /// Slots for live tails (`max_tail_sessions`).
    pub tails: Arc<tokio::sync::Semaphore>,
}

/// Serves Loki's HTTP query API over `storage` (see the module docs for the routes).
pub fn router(storage: Storage, config: LokiApiConfig) -> Router {
    let state = LokiState {
        storage,
        tails: Arc::new(tokio::sync::Semaphore::new(config.max_tail_sessions)),
        config: Arc::new(config),
    };
    Router::new()
        .route("/loki/api/v1/query", get(query).post(query))
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/labels", get(meta::labels).post(meta::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(meta::label_values).post(meta::label_values),
        )
        .route("/loki/api/v1/series", get(meta::series).post(meta::series))
        .route(
            "/loki/api/v1/index/stats",
            get(meta::index_stats).post(meta::index_stats),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(meta::volume).post(meta::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(meta::volume_range).post(meta::volume_range),
        )
        // Answers built whole are gzipped for clients that ask (Grafana does), as Loki's
        // are; the live tail (a WebSocket, below) is not.
        .layer(axum::middleware::from_fn(crate::gzip::gzip_answers))
        .route("/loki/api/v1/tail", get(super::tail::tail))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route("/ready", get(|| async { "ready\n" }))
        .with_state(state)
}

/// An error answered as Loki does: a status and a plain-text message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LokiError {
    pub status: StatusCode,
    pub message: String,
}

impl LokiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        LokiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 500 whose detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "loki api request failed");
        LokiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error while running the query".into(),
        }
    }

    fn of_limit(l: &ReadLimit) -> Self {
        match l {
            ReadLimit::TooManyBytes { .. } => LokiError::bad_request(l.to_string()),
            ReadLimit::Timeout => LokiError {
                status: StatusCode::GATEWAY_TIMEOUT,
                message:
                    "context deadline exceeded: the query ran longer than query.loki.query_timeout"
                        .into(),
            },
            ReadLimit::Canceled => LokiError {
                status: StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                message: "context canceled".into(),
            },
        }
    }

    pub fn of_read(e: ReadError) -> Self {
        match e {
            ReadError::Limit(l) => Self::of_limit(&l),
            ReadError::Storage(m) => LokiError::internal(m),
        }
    }
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response()
    }
}

/// `{"status":"success","data":...}`.
pub(crate) fn success(data: Json) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// Reads the tenant header and the merged URL/form parameters.
impl From<BadRequest> for LokiError {
    fn from(e: BadRequest) -> Self {
        LokiError::bad_request(e.0)
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Parses a time as Loki does: float seconds (with a `.`), an integer (seconds up to 10
/// digits, nanoseconds above), or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || {
        format!("cannot parse {s:?} as a timestamp: use Unix seconds or nanoseconds, or RFC 3339")
    };
    if s.contains('.')
        && let Ok(f) = s.parse::<f64>()
    {
        if !f.is_finite() || f.abs() > 9.2e9 {
            return Err(bad());
        }
        let secs = f.trunc();
        let ms = ((f - secs) * 1000.0).round();
        return Ok(secs as i64 * 1_000_000_000 + ms as i64 * 1_000_000);
    }
    match s.parse::<i64>() {
        Ok(n) if s.trim_start_matches('-').len() <= 10 => {
            n.checked_mul(1_000_000_000).ok_or_else(bad)
        }
        Ok(n) => Ok(n),
        Err(_) => parse_rfc3339_ns(s).ok_or_else(bad),
    }
}

/// Parses a duration given as float seconds or as a duration (`5m`, `1h30m`).
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f.abs() < 9.2e9 {
            return Ok((f * 1e9) as i64);
        }
    } else if let Some(ns) = strata_logql::parse_duration(s) {
        return Ok(ns);
    }
    Err(format!(
        "cannot parse {s:?} as a duration: use seconds or a duration such as 5m"
    ))
}

fn param_err(name: &str, e: String) -> LokiError {
    LokiError::bad_request(format!("invalid parameter {name:?}: {e}"))
}

/// The `[start, end)` of a request: `end` defaults to now, `start` to `end - since`
/// (`since` defaults to one hour); the range is checked against `max_query_range`.
pub(crate) fn time_range(p: &Params, config: &LokiApiConfig) -> Result<(i64, i64), LokiError> {
    let end = match p.get("end") {
        "" => now_ns(),
        v => parse_time(v).map_err(|e| param_err("end", e))?,
    };
    let since = match p.get("since") {
        "" => 3600 * 1_000_000_000,
        v => parse_duration(v).map_err(|e| param_err("since", e))?,
    };
    let start = match p.get("start") {
        "" => end.saturating_sub(since),
        v => parse_time(v).map_err(|e| param_err("start", e))?,
    };
    if end < start {
        return Err(LokiError::bad_request(
            "end timestamp must not be before or equal to start time",
        ));
    }
    check_range(start, end, config)?;
    Ok((start, end))
}

pub(crate) fn check_range(start: i64, end: i64, config: &LokiApiConfig) -> Result<(), LokiError> {
    let max = i64::try_from(config.max_query_range.as_nanos()).unwrap_or(i64::MAX);
    let len = end.saturating_sub(start);
    if len > max {
        return Err(LokiError::bad_request(format!(
            "the query time range exceeds the limit (query length: {}, limit: {})",
            humantime::format_duration(Duration::from_secs((len / 1_000_000_000) as u64)),
            humantime::format_duration(config.max_query_range)
        )));
    }
    Ok(())
}

/// Sets the flag when dropped: the handler's future was dropped (client gone) or finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `f` on the blocking pool with a reader for `tenant` that stops at the query
/// timeout or when the request goes away.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &LokiState,
    tenant: TenantId,
    f: impl FnOnce(LogReader) -> Result<T, LokiError> + Send + 'static,
) -> Result<T, LokiError> {
    let timeout = state.config.query_timeout;
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let reader = LogReader::new(
        state.storage.clone(),
        tenant,
        Instant::now().checked_add(timeout),
        cancel,
        state.config.max_bytes_scanned,
    );
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || f(reader))).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(LokiError::internal(e)),
        Err(_) => Err(LokiError::of_limit(&ReadLimit::Timeout)),
    }
}

/// A LogQL matcher as a label-index matcher (regexes fully anchored, as in Loki).
pub(crate) fn index_matcher(m: &Matcher) -> Result<LabelMatcher, LokiError> {
    let anchored = |v: &str| {
        regex::Regex::new(&format!("^(?s:{v})$"))
            .map_err(|e| LokiError::bad_request(format!("invalid regex {v:?}: {e}")))
    };
    let op = match m.op {
        MatchOp::Eq => IndexOp::Equal(m.value.clone()),
        MatchOp::Neq => IndexOp::NotEqual(m.value.clone()),
        MatchOp::Re => IndexOp::Regex(anchored(&m.value)?),
        MatchOp::Nre => IndexOp::NotRegex(anchored(&m.value)?),
    };
    Ok(LabelMatcher {
        name: m.name.clone(),
        op,
    })
}

/// Parses a stream selector parameter into index matchers.
pub(crate) fn selector(name: &str, s: &str) -> Result<Vec<LabelMatcher>, LokiError> {
    let ms = strata_logql::parse_selector(s).map_err(|e| param_err(name, e.to_string()))?;
    ms.iter().map(index_matcher).collect()
}

/// The LogQL engine's view of one tenant's logs.
pub struct StorageLogSource {
    reader: LogReader,
    stopped: RefCell<Option<ReadLimit>>,
}

impl StorageLogSource {
    pub fn new(reader: LogReader) -> Self {
        StorageLogSource {
            reader,
            stopped: RefCell::new(None),
        }
    }

    /// The limit that stopped a read, if one did.
    pub fn limit_hit(&self) -> Option<ReadLimit> {
        self.stopped.borrow().clone()
    }

    pub fn reader(&self) -> &LogReader {
        &self.reader
    }
}

pub(crate) fn to_stream(s: ReadStream) -> Stream {
    Stream {
        labels: s
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect(),
        entries: s
            .entries
            .into_iter()
            .map(|e| Entry::new(e.ts_ns, e.line).with_metadata(e.metadata))
            .collect(),
    }
}

impl StorageLogSource {
    /// The index matchers and `|=` needles of a selection.
    fn plan(sel: &Selection<'_>) -> Result<(Vec<LabelMatcher>, Vec<String>), SourceError> {
        let matchers = sel
            .matchers
            .iter()
            .map(index_matcher)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SourceError::Failed(e.message))?;
        let needles: Vec<String> = sel
            .line_filters
            .iter()
            .filter(|f| f.op == LineFilterOp::Contains)
            .map(|f| f.pattern.clone())
            .collect();
        Ok((matchers, needles))
    }

    fn read_error(&self, e: ReadError) -> SourceError {
        match e {
            ReadError::Limit(l) => {
                let msg = l.to_string();
                *self.stopped.borrow_mut() = Some(l);
                SourceError::Limit(msg)
            }
            ReadError::Storage(m) => {
                tracing::error!(error = %m, "reading logs failed");
                SourceError::Failed("storage could not be read".into())
            }
        }
    }
}

impl LogSource for StorageLogSource {
    fn select(&self, sel: &Selection<'_>) -> Result<Vec<Stream>, SourceError> {
        let (matchers, needles) = Self::plan(sel)?;
        self.reader
            .select(&matchers, sel.start_ns, sel.end_ns, &needles, true)
            .map(|streams| streams.into_iter().map(to_stream).collect())
            .map_err(|e| self.read_error(e))
    }

    /// A batch (up to 16k rows of one row group or memtable batch) at a time, so a
    /// metric query over any range holds one batch of lines, not the selection.
    fn select_chunks(
        &self,
        sel: &Selection<'_>,
        f: &mut dyn FnMut(Stream) -> bool,
    ) -> Result<(), SourceError> {
        let (matchers, needles) = Self::plan(sel)?;
        self.reader
            .select_each(
                &matchers,
                sel.start_ns,
                sel.end_ns,
                &needles,
                Wanted {
                    body: sel.need_lines,
                    label_names: sel.label_names,
                },
                &mut |s| f(to_stream(s)),
            )
            .map_err(|e| self.read_error(e))
    }
}

pub(crate) fn engine_limits(config: &LokiApiConfig) -> Limits {
    Limits {
        max_entries: config.max_entries_limit,
        max_bytes_scanned: if config.max_bytes_scanned == 0 {
            u64::MAX
        } else {
            config.max_bytes_scanned
        },
        max_series: config.max_series,
        timeout: Some(config.query_timeout),
        max_points: 11_000,
    }
}

fn parse_query(p: &Params) -> Result<Expr, LokiError> {
    let q = p.get("query");
    if q.is_empty() {
        return Err(LokiError::bad_request("query parameter is required"));
    }
    strata_logql::parse(q).map_err(|e| LokiError::bad_request(e.to_string()))
}

fn limit_param(p: &Params) -> Result<usize, LokiError> {
    match p.get("limit") {
        "" => Ok(100),
        v => v
            .parse::<usize>()
            .map_err(|_| param_err("limit", format!("{v:?} is not a non-negative integer"))),
    }
}

fn direction_param(p: &Params) -> Result<Direction, LokiError> {
    match p.get("direction") {
        "" => Ok(Direction::Backward),
        v => Direction::parse(v)
            .ok_or_else(|| param_err("direction", format!("{v:?}: use forward or backward"))),
    }
}

fn engine_error(e: strata_logql::Error, source: &StorageLogSource) -> LokiError {
    if let Some(l) = source.limit_hit() {
        return LokiError::of_limit(&l);
    }
    let class = e.class();
    let status = StatusCode::from_u16(class.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return LokiError::internal(e);
    }
    LokiError {
        status,
        message: e.to_string(),
    }
}

enum Range {
    Instant(i64),
    Range {
        start: i64,
        end: i64,
        step: i64,
        interval: Option<i64>,
    },
}

async fn evaluate(
    state: &LokiState,
    tenant: TenantId,
    expr: Expr,
    range: Range,
    limit: usize,
    direction: Direction,
    categorize: bool,
) -> Response {
    let config = state.config.clone();
    let result = blocking(state, tenant, move |reader| {
        let engine = Engine::new(engine_limits(&config));
        let source = StorageLogSource::new(reader);
        let res = match range {
            Range::Instant(t) => {
                engine.query_instant_with_stats(&source, &expr, t, limit, direction)
            }
            Range::Range {
                start,
                end,
                step,
                interval,
            } => engine.query_range_with_stats(
                &source, &expr, start, end, step, interval, limit, direction,
            ),
        };
        let (result, stats) = res.map_err(|e| engine_error(e, &source))?;
        let mut data = result.to_loki_json_opts(&stats, categorize);
        if let Some(s) = data.get_mut("stats").and_then(Json::as_object_mut) {
            s.insert("strata".into(), source.reader().stats.to_json());
        }
        Ok(data)
    })
    .await;
    match result {
        Ok(data) => success(data),
        Err(e) => e.into_response(),
    }
}

fn categorize_flag(headers: &HeaderMap) -> bool {
    headers
        .get("X-Loki-Response-Encoding-Flags")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "categorize-labels"))
}

async fn query(
    State(state): State<LokiState>,
    headers: HeaderMap,
    req: Result<Req, BadRequest>,
) -> Response {
    let prepared = (|| {
        let req = req?;
        let p = &req.params;
        let time = match p.get("time") {
            "" => now_ns(),
            v => parse_time(v).map_err(|e| param_err("time", e))?,
        };
        Ok::<_, LokiError>((
            req.tenant,
            parse_query(p)?,
            time,
            limit_param(p)?,
            direction_param(p)?,
        ))
    })();
    match prepared {
        Ok((tenant, expr, time, limit, direction)) => {
            evaluate(
                &state,
                tenant,
                expr,
                Range::Instant(time),
                limit,
                direction,
                categorize_flag(&headers),
            )
            .await
        }
        Err(e) => e.into_response(),
    }
}

async fn query_range(
    State(state): State<LokiState>,
    headers: HeaderMap,
    req: Result<Req, BadRequest>,
) -> Response {
    let prepared = (|| {
        let req = req?;
        let p = &req.params;
        let (start, end) = time_range(p, &state.config)?;
        let step = match p.get("step") {
            // Loki's default: about 250 points over the range, at least one second.
            "" => ((end - start) / 250).max(1_000_000_000) / 1_000_000_000 * 1_000_000_000,
            v => parse_duration(v).map_err(|e| param_err("step", e))?,
        };
        if step <= 0 {
            return Err(LokiError::bad_request(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        let interval = match p.get("interval") {
            "" => None,
            v => Some(parse_duration(v).map_err(|e| param_err("interval", e))?),
        };
        Ok((
            req.tenant,
            parse_query(p)?,
            Range::Range {
                start,
                end,
                step,
                interval,
            },
            limit_param(p)?,
            direction_param(p)?,
        ))
    })();
    match prepared {
        Ok((tenant, expr, range, limit, direction)) => {
            evaluate(
                &state,
                tenant,
                expr,
                range,
                limit,
                direction,
                categorize_flag(&headers),
            )
            .await
        }
        Err(e) => e.into_response(),
    }
}

async fn buildinfo(State(state): State<LokiState>) -> Response {
    axum::Json(json!({
        "version": state.config.build_version,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_loki() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000_000_000));
        assert_eq!(
            parse_time("1700000000000000123"),
            Ok(1_700_000_000_000_000_123)
        );
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.000000001Z"),
            Ok(1_700_000_000_000_000_001)
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_duration("15"), Ok(15_000_000_000));
        assert_eq!(parse_duration("0.5"), Ok(500_000_000));
        assert!(parse_duration("soon").is_err());
    }
}
