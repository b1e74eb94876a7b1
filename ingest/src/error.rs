//! The ingest crate's error type, and the one place it maps to HTTP status and gRPC code.

use axum::http::StatusCode;

/// Why a write was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid tenant: {0}")]
    Tenant(#[source] strata_storage::Error),
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: use gzip or identity")]
    UnsupportedEncoding(String),
    #[error("request body is larger than the limit of {limit} bytes{}", if *.decompressed { " after decompression" } else { "" })]
    TooLarge { limit: usize, decompressed: bool },
    #[error("malformed gzip body: {0}")]
    BadGzip(String),
    #[error("malformed protobuf body: {0}")]
    BadProtobuf(#[from] prost::DecodeError),
    /// Refused by a decoder that walks the wire format itself (prost's form of message).
    #[error("malformed protobuf body: {0}")]
    MalformedProtobuf(#[source] crate::protowire::WireError),
    /// A logs or metrics request that would take too much memory decoded.
    #[error("{0}")]
    Expands(#[from] crate::otlp::decoded_size::Expands),
    #[error("malformed OTLP/JSON body: {0}")]
    BadJson(#[from] serde_json::Error),
    #[error("malformed remote-write body: {0}")]
    RemoteWrite(#[from] crate::remote_write::DecodeError),
    /// A Loki push refused: malformed (400), or too large (413, told as it is).
    #[error("{prefix}{0}", prefix = loki_prefix(.0))]
    LokiPush(#[from] crate::loki_push::PushError),
    #[error("{0}")]
    Storage(#[source] strata_storage::Error),
}

/// "malformed Loki push body: " before a 400's reason; a 413 says what was too large.
fn loki_prefix(e: &crate::loki_push::PushError) -> &'static str {
    if e.is_too_large() {
        ""
    } else {
        "malformed Loki push body: "
    }
}

impl From<strata_storage::Error> for Error {
    fn from(e: strata_storage::Error) -> Self {
        match e {
            strata_storage::Error::InvalidTenant { .. } => Error::Tenant(e),
            other => Error::Storage(other),
        }
    }
}

/// Result with the ingest error by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::Tenant(_)
            | Error::BadGzip(_)
            | Error::BadProtobuf(_)
            | Error::MalformedProtobuf(_)
            | Error::BadJson(_) => StatusCode::BAD_REQUEST,
            Error::RemoteWrite(e) if e.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RemoteWrite(_) => StatusCode::BAD_REQUEST,
            Error::LokiPush(e) if e.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            Error::LokiPush(_) => StatusCode::BAD_REQUEST,
            Error::UnsupportedContentType(_) | Error::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Error::TooLarge { .. }
            | Error::Expands(_)
            | Error::Storage(strata_storage::Error::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Storage(strata_storage::Error::Overloaded { .. }) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status for this error.
    pub fn grpc_status(&self) -> tonic::Status {
        let msg = self.client_message();
        match self.http_status() {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                tonic::Status::invalid_argument(msg)
            }
            StatusCode::PAYLOAD_TOO_LARGE => tonic::Status::resource_exhausted(msg),
            _ => tonic::Status::unavailable(msg),
        }
    }

    /// Seconds a client should wait before retrying, for overload and outage answers.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Storage(strata_storage::Error::Overloaded { .. }) => Some(5),
            Error::Storage(strata_storage::Error::TooLarge(_)) => None,
            Error::Storage(_) => Some(30),
            _ => None,
        }
    }

    /// The text sent to the client: what was wrong, never internal paths.
    pub fn client_message(&self) -> String {
        match self {
            Error::Storage(strata_storage::Error::Overloaded { .. }) => {
                "Strata is overloaded: too much data waits to be flushed; retry later".into()
            }
            Error::Storage(e @ strata_storage::Error::TooLarge(_)) => e.to_string(),
            Error::Storage(_) => "Strata cannot store data right now; retry later".into(),
            other => other.to_string(),
        }
    }
}
