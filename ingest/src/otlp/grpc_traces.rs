//! The OTLP/gRPC trace service, taking its request as protobuf bytes.
//!
//! The service `opentelemetry-proto` generates decodes every request into prost structs
//! before the handler runs: about a hundred bytes of structs per two-byte empty link or
//! event, so a 64 MiB request of them builds gigabytes before any limit is checked (and a
//! malformed body is `INTERNAL`). This one is the same service (path, compression,
//! message size limit) with a codec that hands over the bytes: the request then goes
//! through [`Ingester::traces_protobuf`] as OTLP/HTTP protobuf does, which counts events,
//! links and attributes against the limits before decoding them, bounds the batch it
//! builds, and answers a malformed body with `INVALID_ARGUMENT`.

use crate::otlp::http::OtlpSignal;
use crate::service::Ingester;
use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::convert::Infallible;
use strata_storage::model::Signal;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::{Request, Response, Status};

/// The gRPC method path of OTLP trace export.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Request bytes in, `ExportTraceServiceResponse` out.
#[derive(Default)]
struct BytesCodec;

struct BytesDecoder;

struct ResponseEncoder;

impl Codec for BytesCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The OTLP trace service over an [`Ingester`].
#[derive(Clone)]
pub struct TraceBytesServer {
    ingester: Ingester,
    accept: EnabledCompressionEncodings,
    send: EnabledCompressionEncodings,
    max_decoding_message_size: usize,
}

impl TraceBytesServer {
    /// Gzip accepted and sent; requests over `max_request_bytes` refused by tonic
    /// (`RESOURCE_EXHAUSTED`), as the generated service does with the same settings.
    pub fn new(ingester: Ingester) -> Self {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        let max_decoding_message_size = ingester.limits().max_request_bytes;
        TraceBytesServer {
            ingester,
            accept,
            send: accept,
            max_decoding_message_size,
        }
    }
}

impl tonic::server::NamedService for TraceBytesServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// One export call.
struct Export(Ingester);

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingester = self.0.clone();
        Box::pin(async move {
            let tenant = super::grpc::tenant(&request)?;
            let outcome = ingester
                .traces_protobuf(&tenant, request.into_inner())
                .await
                .map_err(|e| super::grpc::failed(Signal::Traces, e))?;
            Ok(Response::new(
                <ExportTraceServiceRequest as OtlpSignal>::respond(outcome),
            ))
        })
    }
}

impl<B> Service<http::Request<B>> for TraceBytesServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(BytesCodec)
                .apply_compression_config(this.accept, this.send)
                .apply_max_message_size_config(Some(this.max_decoding_message_size), None);
            Ok(grpc.unary(Export(this.ingester), req).await)
        })
    }
}
