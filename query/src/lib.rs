//! Strata's query layer: SQL over every signal (DataFusion over memtables and Parquet),
//! and the HTTP query APIs. PromQL evaluation lives in the `strata-promql` crate; this
//! crate adapts storage to it. [`traces`] serves the Jaeger and Tempo trace APIs.

pub mod error;
mod footer;
mod guard;
mod gzip;
pub mod http;
pub mod json;
pub mod loki;
pub mod prom;
mod pruning;
pub mod sql;
mod sql_attributes;
pub mod traces;

pub use error::{Error, Result};
