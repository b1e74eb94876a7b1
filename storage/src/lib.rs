//! Strata's storage engine.
//!
//! Key types: [`Storage`] (the engine handle: durable writes, snapshots for queries, flush,
//! compaction, retention), [`model`] (what receivers produce and queries read),
//! [`TenantId`], the [`wal::Wal`], the [`catalog::Catalog`] of Parquet files and the
//! roaring [`index::LabelIndex`].
//!
//! Invariants: a write is acknowledged only after its WAL record is fsynced; a file is
//! visible only once the catalog names it; WAL segments are deleted only after the
//! catalog names the files holding their data.

pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod files;
pub mod index;
pub mod model;
pub mod schema;
pub mod span_attrs;
pub mod telemetry;
pub mod tenant;
pub mod token_index;
pub mod varint;
pub mod wal;
pub mod wal_entry;

pub use config::StorageConfig;
pub use engine::{LogsAppended, Snapshot, Storage};
pub use error::{Error, Result};
pub use tenant::TenantId;
