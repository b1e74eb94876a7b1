//! Strata's receivers: OTLP over gRPC and HTTP, Prometheus remote write and Loki push.
//!
//! Every receiver decodes its wire format (bounded in size before and after
//! decompression), resolves the tenant, and hands the request to the [`Ingester`], which
//! converts it to the storage model, rejects over-limit items one by one and writes the
//! rest durably. Wire types stop here: past this crate only storage model types travel.
//! Errors map to HTTP status and gRPC code in one place, [`error::Error`].

pub mod attributes;
pub mod body;
pub mod error;
pub mod limits;
pub mod loki_push;
pub mod otlp;
mod protowire;
pub mod remote_write;
pub mod remote_write_http;
pub mod service;
pub mod spanmetrics;
pub mod telemetry;

pub use error::{Error, Result};
pub use protowire::WireError;
pub use service::{IngestConfig, Ingester, Outcome};
