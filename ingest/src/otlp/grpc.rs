//! OTLP/gRPC receiver: the trace, metrics and logs collector services, gzip accepted, each
//! taking its request as bytes ([`BytesServer`]).

use crate::error::Error;
use crate::otlp::grpc_traces::BytesServer;
use crate::service::Ingester;
use crate::telemetry::REQUESTS_FAILED;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use strata_storage::TenantId;
use strata_storage::model::Signal;
use tonic::{Request, Status};

pub(super) fn tenant<T>(req: &Request<T>) -> Result<TenantId, Status> {
    let value = req.metadata().get("x-scope-orgid").map(|v| v.as_bytes());
    TenantId::from_header(value).map_err(|e| Error::from(e).grpc_status())
}

pub(super) fn failed(signal: Signal, e: Error) -> Status {
    REQUESTS_FAILED.add(signal, 1);
    tracing::debug!(%signal, error = %e, "OTLP/gRPC request refused");
    e.grpc_status()
}

/// Serves the OTLP gRPC services on `listener` until `shutdown` completes.
pub async fn serve(
    ingester: Ingester,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_service(BytesServer::<ExportTraceServiceRequest>::new(
            ingester.clone(),
        ))
        .add_service(BytesServer::<ExportMetricsServiceRequest>::new(
            ingester.clone(),
        ))
        .add_service(BytesServer::<ExportLogsServiceRequest>::new(ingester))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
