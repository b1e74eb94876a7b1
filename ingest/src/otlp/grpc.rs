//! OTLP/gRPC receiver: the trace, metrics and logs collector services, gzip accepted (the
//! trace service is [`TraceBytesServer`], which takes the request as bytes).

use crate::error::Error;
use crate::otlp::grpc_traces::TraceBytesServer;
use crate::otlp::http::OtlpSignal;
use crate::service::Ingester;
use crate::telemetry::REQUESTS_FAILED;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use strata_storage::TenantId;
use strata_storage::model::Signal;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

/// Implements the three OTLP collector services over one [`Ingester`].
#[derive(Clone)]
pub struct OtlpGrpc {
    ingester: Ingester,
}

pub(super) fn tenant<T>(req: &Request<T>) -> Result<TenantId, Status> {
    let value = req.metadata().get("x-scope-orgid").map(|v| v.as_bytes());
    TenantId::from_header(value).map_err(|e| Error::from(e).grpc_status())
}

pub(super) fn failed(signal: Signal, e: Error) -> Status {
    REQUESTS_FAILED.add(signal, 1);
    tracing::debug!(%signal, error = %e, "OTLP/gRPC request refused");
    e.grpc_status()
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let t = tenant(&request)?;
        let o = self
            .ingester
            .metrics(&t, request.into_inner())
            .await
            .map_err(|e| failed(Signal::Metrics, e))?;
        Ok(Response::new(
            <ExportMetricsServiceRequest as OtlpSignal>::respond(o),
        ))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let t = tenant(&request)?;
        let o = self
            .ingester
            .logs(&t, request.into_inner())
            .await
            .map_err(|e| failed(Signal::Logs, e))?;
        Ok(Response::new(
            <ExportLogsServiceRequest as OtlpSignal>::respond(o),
        ))
    }
}

/// Serves the OTLP gRPC services on `listener` until `shutdown` completes.
pub async fn serve(
    ingester: Ingester,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let limit = ingester.limits().max_request_bytes;
    let svc = OtlpGrpc { ingester };
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        // Traces: the request bytes go to the protobuf walk, as on OTLP/HTTP.
        .add_service(TraceBytesServer::new(svc.ingester.clone()))
        .add_service(
            MetricsServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit),
        )
        .add_service(
            LogsServiceServer::new(svc)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
