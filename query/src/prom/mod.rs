//! Prometheus's HTTP query API over Strata's storage, so Grafana's Prometheus data source
//! (and any Prometheus API client) works against Strata.
//!
//! Routes ([`router`]): `/api/v1/query`, `/api/v1/query_range` (GET or form POST),
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`, `/api/v1/metadata`,
//! `/api/v1/query_exemplars`, `/api/v1/format_query`, `/api/v1/parse_query`, `/api/v1/status/{buildinfo,
//! runtimeinfo,tsdb}`. Answers use Prometheus's envelope and status codes; the tenant comes
//! from `X-Scope-OrgID`.
//!
//! Layout: [`source`] reads samples for the `strata-promql` engine (label index, then
//! pruned Parquet files and memtables); `api` holds the router and query endpoints; `meta`
//! the series/labels/metadata/exemplar endpoints; `status` the status pages; `params` the
//! parameter parsing; `response` the envelope. Storage reads and evaluation run on the
//! blocking pool with the query's deadline and stop when the client goes away.

mod api;
mod ast;
mod config;
mod meta;
pub(crate) mod params;
mod response;
pub mod source;
mod status;

pub use api::{router, router_with_cache};
pub use config::PromApiConfig;
pub use source::StorageSource;
pub use source::cache::SampleCache;
