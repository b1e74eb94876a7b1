//! The query crate's error type and its HTTP mapping.

use axum::http::StatusCode;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid tenant: {0}")]
    Tenant(#[source] strata_storage::Error),
    #[error("{0}")]
    BadQuery(String),
    #[error("the result has more than {limit} rows; add a LIMIT or narrow the query")]
    TooManyRows { limit: usize },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("the query took longer than {seconds} s")]
    Timeout { seconds: f64 },
    #[error("internal error while running the query")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::Tenant(_) | Error::BadQuery(_) | Error::TooManyRows { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::LimitExceeded(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e {
            // Storage-side failures may name files and paths: never the client's fault, and
            // their text stays in our logs.
            D::IoError(_)
            | D::ObjectStore(_)
            | D::ParquetError(_)
            | D::External(_)
            | D::ExecutionJoin(_)
            | D::Internal(_) => Error::Internal(Box::new(e)),
            D::Diagnostic(_, inner) => Error::from(*inner),
            D::Context(ctx, inner) => match Error::from(*inner) {
                Error::BadQuery(m) => Error::BadQuery(format!("{ctx}: {m}")),
                other => other,
            },
            other => Error::BadQuery(other.to_string()),
        }
    }
}

/// Result with the query error by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
