//! The crate's error type and its mapping onto Prometheus's API `errorType`.

/// Errors a query can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The query text does not parse or a parameter is invalid (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed, e.g. a vector-matching error (`execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (`timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The query was canceled (`canceled`).
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// Too many samples would be loaded into memory (`execution`).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The series source failed (`internal`); the detail is not for clients.
    #[error("error selecting series: {0}")]
    Source(#[from] SourceError),
}

/// An error reported by a [`crate::SeriesSource`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// Human-readable detail, for logs.
    pub message: String,
}

impl SourceError {
    /// Creates a source error.
    pub fn new(message: impl Into<String>) -> Self {
        SourceError {
            message: message.into(),
        }
    }
}

/// Prometheus's API error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Bad request data.
    BadData,
    /// Evaluation error.
    Execution,
    /// Timed out.
    Timeout,
    /// Canceled.
    Canceled,
    /// Internal failure.
    Internal,
}

impl ErrorType {
    /// The `errorType` string of the HTTP API.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
        }
    }
}

impl Error {
    /// The API error type this error maps to.
    pub fn error_type(&self) -> ErrorType {
        match self {
            Error::BadData(_) => ErrorType::BadData,
            Error::Execution(_) | Error::TooManySamples(_) => ErrorType::Execution,
            Error::Timeout(_) => ErrorType::Timeout,
            Error::Canceled(_) => ErrorType::Canceled,
            Error::Source(_) => ErrorType::Internal,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an execution error from a format string.
macro_rules! exec_err {
    ($($arg:tt)*) => { $crate::error::Error::Execution(format!($($arg)*)) };
}
pub(crate) use exec_err;
