//! `POST /api/v1/write`: Prometheus remote write 1.0 (snappy-compressed protobuf).

use crate::body::read_limited;
use crate::error::Error;
use crate::otlp::http::tenant_of;
use crate::service::Ingester;
use crate::telemetry::REQUESTS_FAILED;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use strata_storage::model::Signal;

fn error_response(e: &Error) -> Response {
    REQUESTS_FAILED.add(Signal::Metrics, 1);
    let mut resp = (e.http_status(), e.client_message()).into_response();
    if let Some(secs) = e.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

async fn write(State(ingester): State<Ingester>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let tenant = tenant_of(&headers)?;
        if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
            let enc = enc.to_str().unwrap_or("").trim().to_ascii_lowercase();
            if enc != "snappy" {
                return Err(Error::UnsupportedEncoding(enc));
            }
        }
        let raw = read_limited(body, ingester.limits().max_request_bytes).await?;
        ingester.remote_write(&tenant, raw).await
    }
    .await;
    match result {
        Ok(o) if o.rejected == 0 => StatusCode::NO_CONTENT.into_response(),
        // The valid series were stored; tell the sender which were not (it must not retry).
        Ok(o) => (
            StatusCode::BAD_REQUEST,
            format!("{} samples rejected: {}", o.rejected, o.message),
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}

/// The remote-write route, for the HTTP API port.
pub fn router(ingester: Ingester) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .with_state(ingester)
}
