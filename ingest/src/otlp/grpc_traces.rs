//! The OTLP/gRPC services (traces, metrics, logs), taking their requests as protobuf bytes.
//!
//! The services `opentelemetry-proto` generates decode every request into prost structs
//! before the handler runs: about a hundred bytes of structs per two-byte empty link,
//! event, log record or data point, so a 64 MiB request of them builds gigabytes before
//! any limit is checked (and a malformed body is `INTERNAL`). These are the same services
//! (path, compression, message size limit) with a codec that hands over the bytes: the
//! request then goes where OTLP/HTTP protobuf goes ([`OtlpSignal::store_protobuf`]): spans
//! to [`Ingester::traces_protobuf`], which counts events, links and attributes against the
//! limits before decoding them and bounds the batch it builds; logs and metrics to a check
//! of their decoded size ([`crate::otlp::decoded_size`]) before prost runs. A malformed
//! body is `INVALID_ARGUMENT`.

use crate::otlp::http::OtlpSignal;
use crate::service::Ingester;
use bytes::{Buf, Bytes};
use prost::Message;
use std::convert::Infallible;
use std::marker::PhantomData;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::{Request, Response, Status};

/// Request bytes in, the signal's response out.
struct BytesCodec<R>(PhantomData<fn() -> R>);

struct BytesDecoder;

struct ResponseEncoder<R>(PhantomData<fn() -> R>);

impl<R: OtlpSignal> Codec for BytesCodec<R>
where
    R::Response: Send,
{
    type Encode = R::Response;
    type Decode = Bytes;
    type Encoder = ResponseEncoder<R>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

impl<R: OtlpSignal> Encoder for ResponseEncoder<R> {
    type Item = R::Response;
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

/// The OTLP service of signal `R` over an [`Ingester`].
pub struct BytesServer<R> {
    ingester: Ingester,
    accept: EnabledCompressionEncodings,
    send: EnabledCompressionEncodings,
    max_decoding_message_size: usize,
    signal: PhantomData<fn() -> R>,
}

impl<R> Clone for BytesServer<R> {
    fn clone(&self) -> Self {
        BytesServer {
            ingester: self.ingester.clone(),
            accept: self.accept,
            send: self.send,
            max_decoding_message_size: self.max_decoding_message_size,
            signal: PhantomData,
        }
    }
}

impl<R> BytesServer<R> {
    /// Gzip accepted and sent; requests over `max_request_bytes` refused by tonic
    /// (`RESOURCE_EXHAUSTED`), as the generated service does with the same settings.
    pub fn new(ingester: Ingester) -> Self {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        let max_decoding_message_size = ingester.limits().max_request_bytes;
        BytesServer {
            ingester,
            accept,
            send: accept,
            max_decoding_message_size,
            signal: PhantomData,
        }
    }
}

impl<R: OtlpSignal> tonic::server::NamedService for BytesServer<R> {
    const NAME: &'static str = R::GRPC_SERVICE;
}

/// One export call.
struct Export<R>(Ingester, PhantomData<fn() -> R>);

impl<R: OtlpSignal> tonic::server::UnaryService<Bytes> for Export<R>
where
    R::Response: Send,
{
    type Response = R::Response;
    type Future = BoxFuture<Response<R::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingester = self.0.clone();
        Box::pin(async move {
            let tenant = super::grpc::tenant(&request)?;
            let outcome = R::store_protobuf(&ingester, &tenant, request.into_inner())
                .await
                .map_err(|e| super::grpc::failed(R::SIGNAL, e))?;
            Ok(Response::new(R::respond(outcome)))
        })
    }
}

impl<R: OtlpSignal, B> Service<http::Request<B>> for BytesServer<R>
where
    R::Response: Send,
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
        let path = req.uri().path();
        let export = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(R::GRPC_SERVICE))
            == Some("/Export");
        if !export {
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
            let mut grpc = tonic::server::Grpc::new(BytesCodec::<R>(PhantomData))
                .apply_compression_config(this.accept, this.send)
                .apply_max_message_size_config(Some(this.max_decoding_message_size), None);
            Ok(grpc
                .unary(Export::<R>(this.ingester, PhantomData), req)
                .await)
        })
    }
}
