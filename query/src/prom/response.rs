//! Prometheus's API envelope (`status`, `data`, `errorType`, `error`, `warnings`, `infos`)
//! and the one place that maps error types to HTTP status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use strata_promql::ErrorType;

/// An error answered in Prometheus's envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The `errorType`.
    pub typ: ErrorType,
    /// The `error` text shown to the client.
    pub message: String,
}

impl ApiError {
    /// A `bad_data` error (400).
    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            typ: ErrorType::BadData,
            message: message.into(),
        }
    }

    /// An `internal` error (500); the detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "prometheus api request failed");
        ApiError {
            typ: ErrorType::Internal,
            message: "internal error while running the query".into(),
        }
    }

    /// The HTTP status of this error, as Prometheus's `respondError` picks it.
    pub fn status(&self) -> StatusCode {
        match self.typ {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            // Prometheus answers canceled queries with nginx's "client closed request".
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn annotations(body: &mut Map<String, Value>, warnings: Vec<String>, infos: Vec<String>) {
    if !warnings.is_empty() {
        body.insert("warnings".into(), json!(warnings));
    }
    if !infos.is_empty() {
        body.insert("infos".into(), json!(infos));
    }
}

/// A success response.
pub fn success(data: Value, warnings: Vec<String>, infos: Vec<String>) -> Response {
    let mut body = Map::new();
    body.insert("status".into(), json!("success"));
    body.insert("data".into(), data);
    annotations(&mut body, warnings, infos);
    (StatusCode::OK, axum::Json(Value::Object(body))).into_response()
}

/// A success response whose `data` is JSON text already (query results, written
/// straight from the engine's values rather than through a `serde_json::Value` tree).
pub fn success_raw(data: &[u8], warnings: &[String], infos: &[String]) -> Response {
    let mut body = Vec::with_capacity(data.len() + 64);
    body.extend_from_slice(br#"{"status":"success","data":"#);
    body.extend_from_slice(data);
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if !list.is_empty() {
            body.extend_from_slice(format!(r#","{key}":"#).as_bytes());
            if serde_json::to_writer(&mut body, list).is_err() {
                body.extend_from_slice(b"[]");
            }
        }
    }
    body.push(b'}');
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// An error response.
pub fn failure(err: ApiError, warnings: Vec<String>, infos: Vec<String>) -> Response {
    let mut body = Map::new();
    body.insert("status".into(), json!("error"));
    body.insert("errorType".into(), json!(err.typ.as_str()));
    body.insert("error".into(), json!(err.message));
    annotations(&mut body, warnings, infos);
    (err.status(), axum::Json(Value::Object(body))).into_response()
}

/// What a handler produced.
pub enum Outcome {
    /// Data plus annotations.
    Ok {
        data: Value,
        warnings: Vec<String>,
        infos: Vec<String>,
    },
    /// Data serialized already (see [`success_raw`]), plus annotations.
    Raw {
        data: Vec<u8>,
        warnings: Vec<String>,
        infos: Vec<String>,
    },
    /// An error.
    Err(ApiError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        failure(self, Vec::new(), Vec::new())
    }
}

impl From<super::params::BadRequest> for ApiError {
    fn from(e: super::params::BadRequest) -> Self {
        ApiError::bad_data(e.0)
    }
}

impl From<ApiError> for Outcome {
    fn from(e: ApiError) -> Self {
        Outcome::Err(e)
    }
}

impl Outcome {
    /// Data without annotations.
    pub fn data(data: Value) -> Self {
        Outcome::Ok {
            data,
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        match self {
            Outcome::Ok {
                data,
                warnings,
                infos,
            } => success(data, warnings, infos),
            Outcome::Raw {
                data,
                warnings,
                infos,
            } => success_raw(&data, &warnings, &infos),
            Outcome::Err(e) => e.into_response(),
        }
    }
}
