//! OTLP/HTTP receiver: `POST /v1/{traces,metrics,logs}` with protobuf or JSON bodies,
//! optionally gzip-compressed; the response uses the request's encoding.

use crate::body::{decode_content, read_limited};
use crate::error::Error;
use crate::otlp::decoded_size;
use crate::service::{Ingester, Outcome};
use crate::telemetry::REQUESTS_FAILED;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use strata_storage::TenantId;
use strata_storage::model::Signal;
use strata_storage::tenant::TENANT_HEADER;

/// The body encodings OTLP/HTTP allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn from_headers(headers: &HeaderMap) -> Result<Self, Error> {
        let (ct, mime) = crate::body::content_type(headers);
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            _ => Err(Error::UnsupportedContentType(ct.to_owned())),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An error answer in the request's encoding.
pub fn error_response(err: &Error, encoding: Encoding) -> Response {
    let status = err.http_status();
    let code = err.grpc_status().code() as i32;
    let message = err.client_message();
    let body = match encoding {
        Encoding::Protobuf => RpcStatus { code, message }.encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    if let Some(secs) = err.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The tenant a request names (header absent: `default`).
pub fn tenant_of(headers: &HeaderMap) -> Result<TenantId, Error> {
    Ok(TenantId::from_header(
        headers.get(TENANT_HEADER).map(|v| v.as_bytes()),
    )?)
}

/// One OTLP signal's request and response types.
pub(crate) trait OtlpSignal:
    Message + Default + serde::de::DeserializeOwned + Send + 'static
{
    type Response: Message + serde::Serialize;
    const SIGNAL: Signal;
    /// The OTLP/gRPC service's name.
    const GRPC_SERVICE: &'static str;
    fn store(
        ingester: &Ingester,
        tenant: &TenantId,
        req: Self,
    ) -> impl std::future::Future<Output = Result<Outcome, Error>> + Send;
    /// Stores a request given as protobuf bytes, which it decodes with bounded memory.
    fn store_protobuf(
        ingester: &Ingester,
        tenant: &TenantId,
        body: bytes::Bytes,
    ) -> impl std::future::Future<Output = Result<Outcome, Error>> + Send;
    fn respond(outcome: Outcome) -> Self::Response;
}

impl OtlpSignal for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    const SIGNAL: Signal = Signal::Traces;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    async fn store(ingester: &Ingester, tenant: &TenantId, req: Self) -> Result<Outcome, Error> {
        ingester.traces(tenant, req).await
    }
    async fn store_protobuf(
        ingester: &Ingester,
        tenant: &TenantId,
        body: bytes::Bytes,
    ) -> Result<Outcome, Error> {
        ingester.traces_protobuf(tenant, body).await
    }
    fn respond(o: Outcome) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (o.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: o.rejected as i64,
                error_message: o.message,
            }),
        }
    }
}

impl OtlpSignal for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const SIGNAL: Signal = Signal::Metrics;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    async fn store(ingester: &Ingester, tenant: &TenantId, req: Self) -> Result<Outcome, Error> {
        ingester.metrics(tenant, req).await
    }
    async fn store_protobuf(
        ingester: &Ingester,
        tenant: &TenantId,
        body: bytes::Bytes,
    ) -> Result<Outcome, Error> {
        ingester.metrics_protobuf(tenant, body).await
    }
    fn respond(o: Outcome) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (o.rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: o.rejected as i64,
                error_message: o.message,
            }),
        }
    }
}

impl OtlpSignal for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    const SIGNAL: Signal = Signal::Logs;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    async fn store(ingester: &Ingester, tenant: &TenantId, req: Self) -> Result<Outcome, Error> {
        ingester.logs(tenant, req).await
    }
    async fn store_protobuf(
        ingester: &Ingester,
        tenant: &TenantId,
        body: bytes::Bytes,
    ) -> Result<Outcome, Error> {
        ingester.logs_protobuf(tenant, body).await
    }
    fn respond(o: Outcome) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (o.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: o.rejected as i64,
                error_message: o.message,
            }),
        }
    }
}

/// A request body after decompression.
enum Decoded<R> {
    Request(R),
    /// The request's protobuf, not decoded yet ([`OtlpSignal::store_protobuf`]).
    Protobuf(bytes::Bytes),
}

async fn export<R: OtlpSignal>(ingester: Ingester, headers: HeaderMap, body: Body) -> Response {
    let encoding = match Encoding::from_headers(&headers) {
        Ok(e) => e,
        Err(e) => {
            REQUESTS_FAILED.add(R::SIGNAL, 1);
            return error_response(&e, Encoding::Json);
        }
    };
    match export_inner::<R>(&ingester, &headers, body, encoding).await {
        Ok(resp) => resp,
        Err(e) => {
            REQUESTS_FAILED.add(R::SIGNAL, 1);
            tracing::debug!(signal = %R::SIGNAL, error = %e, "OTLP/HTTP request refused");
            error_response(&e, encoding)
        }
    }
}

async fn export_inner<R: OtlpSignal>(
    ingester: &Ingester,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
) -> Result<Response, Error> {
    let tenant = tenant_of(headers)?;
    let limit = ingester.limits().max_request_bytes;
    let raw = read_limited(body, limit).await?;
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let decoded = tokio::task::spawn_blocking(move || -> Result<Decoded<R>, Error> {
        let data = decode_content(content_encoding.as_deref(), raw, limit)?;
        match encoding {
            Encoding::Protobuf => Ok(Decoded::Protobuf(data)),
            Encoding::Json => {
                decoded_size::check_json(R::SIGNAL, &data)?;
                Ok(Decoded::Request(serde_json::from_slice(&data)?))
            }
        }
    })
    .await
    .map_err(|_| Error::Storage(strata_storage::Error::ShuttingDown))??;
    let outcome = match decoded {
        Decoded::Request(req) => R::store(ingester, &tenant, req).await?,
        Decoded::Protobuf(data) => R::store_protobuf(ingester, &tenant, data).await?,
    };
    let resp = R::respond(outcome);
    let body = match encoding {
        Encoding::Protobuf => resp.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&resp)?,
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response())
}

/// The OTLP/HTTP routes.
pub fn router(ingester: Ingester) -> Router {
    Router::new()
        .route(
            "/v1/traces",
            post(|State(i): State<Ingester>, h: HeaderMap, b: Body| {
                export::<ExportTraceServiceRequest>(i, h, b)
            }),
        )
        .route(
            "/v1/metrics",
            post(|State(i): State<Ingester>, h: HeaderMap, b: Body| {
                export::<ExportMetricsServiceRequest>(i, h, b)
            }),
        )
        .route(
            "/v1/logs",
            post(|State(i): State<Ingester>, h: HeaderMap, b: Body| {
                export::<ExportLogsServiceRequest>(i, h, b)
            }),
        )
        .with_state(ingester)
}
