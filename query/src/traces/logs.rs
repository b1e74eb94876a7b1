//! `GET /api/traces/{id}/logs`: jump from a trace to its logs. Answers the tenant's log
//! records whose `trace_id` is the trace's, oldest first, as
//! `{"traceID": ..., "logs": [{"timestamp": ns string, "spanID", "severityText",
//! "severityNumber", "body", "serviceName", "attributes": {...}}], "total": n}`.
//! Logs files are not sorted by trace id, so this reads the `trace_id` column of the logs
//! in `[start, end]` (Unix seconds; default: the configured search range before now).

use super::params::{bad, int_param, now_ns};
use super::tempo::Answer;
use super::{TraceState, check_range, params, tenant};
use crate::error::Result;
use crate::sql::{SqlLimits, run};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use serde_json::{Value, json};

pub(crate) fn routes() -> Router<TraceState> {
    Router::new().route("/api/traces/{id}/logs", get(trace_logs))
}

async fn trace_logs(
    State(state): State<TraceState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Answer {
    Ok(axum::Json(logs_of(&state, &headers, &id, &uri).await?))
}

async fn logs_of(state: &TraceState, headers: &HeaderMap, id: &str, uri: &Uri) -> Result<Value> {
    let t = tenant(headers)?;
    let id = super::read::normalize_trace_id(id)?;
    let p = params(uri);
    let end = int_param(&p, "end")?.map_or_else(now_ns, |s| s.saturating_mul(1_000_000_000));
    let range = i64::try_from(state.config.max_search_range.as_nanos()).unwrap_or(i64::MAX);
    let start = int_param(&p, "start")?.map_or_else(
        || end.saturating_sub(range),
        |s| s.saturating_mul(1_000_000_000),
    );
    check_range(&state.config, start, end)?;
    let limit = match int_param(&p, "limit")? {
        None => 1000,
        Some(n) if (1..=100_000).contains(&n) => n as usize,
        Some(n) => return Err(bad("limit", &n.to_string(), "must be between 1 and 100000")),
    };
    // SQL gives pushdown of the trace id and time filters into the Parquet scan.
    let sql = format!(
        "SELECT CAST(timestamp AS BIGINT) AS ts, span_id, severity_text, severity_number, body, \
         service_name, attributes FROM logs WHERE trace_id = '{id}' \
         AND timestamp >= to_timestamp_nanos({start}) AND timestamp <= to_timestamp_nanos({end}) \
         ORDER BY timestamp LIMIT {limit}"
    );
    let storage = state.storage.clone();
    let timeout = state.config.timeout;
    let limits = SqlLimits {
        max_rows: limit,
        timeout,
    };
    let answer = run(&storage, &t, &sql, &limits).await?;
    let logs: Vec<Value> = answer
        .rows
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().unwrap_or(Value::Null);
            let attrs = match get(6) {
                Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
                other => other,
            };
            json!({
                "timestamp": get(0).as_i64().map(|v| v.to_string()),
                "spanID": get(1),
                "severityText": get(2),
                "severityNumber": get(3),
                "body": get(4),
                "serviceName": get(5),
                "attributes": attrs,
            })
        })
        .collect();
    let n = logs.len();
    Ok(json!({"traceID": id, "logs": logs, "total": n}))
}
