//! The storage crate's error type.

use std::path::PathBuf;

/// Errors from the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid tenant id {id:?}: {reason}")]
    InvalidTenant { id: String, reason: &'static str },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the write-ahead log is failed after an fsync/write error and accepts no writes: {reason}"
    )]
    WalFailed { reason: String },
    #[error(
        "the data directory is in use: another process holds its lock {path}; \
         each Strata process needs its own storage.data_dir"
    )]
    DirectoryInUse { path: PathBuf },
    #[error("the storage engine is shutting down")]
    ShuttingDown,
    #[error("memory limit reached: {pending_bytes} bytes wait to be flushed (limit {limit_bytes})")]
    Overloaded {
        pending_bytes: u64,
        limit_bytes: u64,
    },
    #[error("arrow error: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("parquet error: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("catalog {path} is corrupt: {source}")]
    CorruptCatalog {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("serialization error: {0}")]
    Json(#[from] serde_json::Error),
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("query error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("corrupt data file: {0}")]
    Corrupt(String),
    /// A batch would hold more text than one Arrow column can (or than the limit set to
    /// keep a request's memory bounded): refused whole, nothing of it written.
    #[error("{0}")]
    TooLarge(String),
}

impl Error {
    /// Whether the error says a data file's content is unreadable (corrupt or truncated
    /// Parquet, a page the decoder cannot take), as opposed to a failure to get at it.
    /// Arrow and JSON errors are left out: they also come from our own conversions, and a
    /// file is only quarantined for what the decoder says of its bytes.
    pub fn is_corrupt_file(&self) -> bool {
        matches!(self, Error::Corrupt(_) | Error::Parquet(_))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the storage error by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
