//! Loki's HTTP API over Strata's storage, so Grafana's Loki data source (Explore, dashboards,
//! the label browser) and Loki clients such as `logcli` work against Strata.
//!
//! Routes ([`router`]): `/loki/api/v1/query`, `/query_range` (GET or form POST), `/labels`,
//! `/label/{name}/values`, `/series`, `/index/stats`, `/index/volume`,
//! `/index/volume_range`, `/tail` (WebSocket live tail, in `tail`), `/status/buildinfo`, and
//! `/ready`. Push lives in the ingest crate.
//! Successes use Loki's `{"status":"success","data":...}` envelope; errors are Loki's plain
//! text bodies with its status codes (400 for bad queries and limits, 504 for timeouts).
//!
//! Layout: [`source`] reads streams out of storage (stream index, pruned Parquet with the
//! token index, memtables) and adapts them to the `strata-logql` engine's `LogSource`;
//! `api` holds the router, parameters and query endpoints; `meta` the label browser and
//! index endpoints; [`LokiApiConfig`] the limits.

mod api;
mod config;
mod meta;
pub mod source;
mod tail;

pub use api::router;
pub use config::LokiApiConfig;
