//! The query HTTP API routes.

use crate::error::Error;
use crate::sql::{self, SqlLimits};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use std::sync::Arc;
use strata_storage::tenant::TENANT_HEADER;
use strata_storage::{Storage, TenantId};

/// What the query routes need.
#[derive(Clone)]
pub struct QueryState {
    pub storage: Storage,
    pub sql_limits: Arc<SqlLimits>,
}

#[derive(Deserialize)]
struct SqlRequest {
    query: String,
}

fn tenant(headers: &HeaderMap) -> Result<TenantId, Error> {
    TenantId::from_header(headers.get(TENANT_HEADER).map(|v| v.as_bytes())).map_err(Error::Tenant)
}

fn error_json(e: &Error) -> Response {
    if matches!(e, Error::Internal(_)) {
        tracing::error!(error = ?e, "query failed");
    }
    (
        e.http_status(),
        axum::Json(serde_json::json!({ "status": "error", "error": e.to_string() })),
    )
        .into_response()
}

async fn sql_handler(
    State(state): State<QueryState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result = async {
        let t = tenant(&headers)?;
        let req: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
            Error::BadQuery(format!(
                "the body must be JSON like {{\"query\": \"SELECT ...\"}}: {e}"
            ))
        })?;
        sql::run(&state.storage, &t, &req.query, &state.sql_limits).await
    }
    .await;
    match result {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => error_json(&e),
    }
}

/// The query routes for the HTTP API port.
pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql_handler))
        .with_state(state)
}
