//! Errors: parse errors with positions, source errors, and the query error
//! enum with its HTTP status classification.

use std::fmt;

/// A syntax or validation error in a LogQL query, with the byte offset and
/// the 1-based line and column (in characters) where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn at(src: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(src.len());
        let mut line = 1;
        let mut col = 1;
        for (i, c) in src.char_indices() {
            if i >= offset {
                break;
            }
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        ParseError {
            offset,
            line,
            col,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 && self.col == 0 {
            write!(f, "parse error : {}", self.message)
        } else {
            write!(
                f,
                "parse error at line {}, col {}: {}",
                self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for ParseError {}

/// An error raised by a [`crate::LogSource`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The source refused because a limit was reached (bytes, series, ...).
    #[error("{0}")]
    Limit(String),
    /// The source failed (storage error); the message is safe to show.
    #[error("{0}")]
    Failed(String),
}

/// How an HTTP layer should answer an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The client's query is wrong (400).
    BadRequest,
    /// The query is valid but cannot be run as asked (422-like / 400 in Loki).
    Unprocessable,
    /// The query hit a resource limit (Loki answers 400 for limits).
    Limit,
    /// The query ran out of time (Loki answers 504 for a deadline).
    Timeout,
    /// The storage failed (500/503).
    Internal,
}

impl ErrorClass {
    /// The HTTP status code Loki uses for this class.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::BadRequest | ErrorClass::Limit => 400,
            ErrorClass::Unprocessable => 422,
            ErrorClass::Timeout => 504,
            ErrorClass::Internal => 500,
        }
    }
}

/// Errors from parsing or evaluating a query.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Source(SourceError),
    #[error("context deadline exceeded")]
    Timeout,
    #[error("{0}")]
    Invalid(String),
    /// A pipeline error reached a metric result (Loki's `ErrPipeline`).
    #[error("{0}")]
    Pipeline(String),
}

impl From<SourceError> for Error {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Limit(m) => Error::Limit(m),
            other => Error::Source(other),
        }
    }
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Parse(_) | Error::Invalid(_) | Error::Pipeline(_) => ErrorClass::BadRequest,
            Error::Limit(_) => ErrorClass::Limit,
            Error::Timeout => ErrorClass::Timeout,
            Error::Source(_) => ErrorClass::Internal,
        }
    }

    /// Shorthand for `self.class().http_status()`.
    pub fn http_status(&self) -> u16 {
        self.class().http_status()
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
