//! Strata's PromQL engine.
//!
//! Parses queries with `promql-parser` (extended with the histogram trim
//! operators `</` and `>/`, see `parse`) and evaluates them with Prometheus 3
//! semantics over any [`SeriesSource`] (the storage layer implements it; the
//! in-memory [`MemorySource`] serves tests). The HTTP API calls
//! [`Engine::instant_query`] / [`Engine::range_query`] and renders the
//! result with [`QueryResult::to_api_json`]; errors map to Prometheus's
//! `errorType` via [`Error::error_type`].
//!
//! Layout: [`model`] (labels, samples, values), [`histogram`] (native
//! histograms), `eval` (evaluator core, selectors, binary operators,
//! aggregations), `functions`, [`json`] (API output), [`source`].
//!
//! Invariants: every selector is selected once per query for the whole
//! time range it needs (an aggregation over a per-series argument reads its
//! selector in chunks of series instead, see [`SeriesSource::select_chunked`]);
//! no input can make evaluation panic; memory is bounded by `max_samples` and
//! range resolution by `max_points_per_series`.

pub mod annotations;
mod engine;
pub mod error;
mod eval;
mod functions;
pub mod histogram;
pub mod json;
pub mod model;
mod parse;
pub mod source;

pub use engine::{Engine, EngineOptions, QueryResult};
pub use error::{Error, ErrorType, SourceError};
pub use eval::prepare::AT_MODIFIER_UNSAFE;
pub use model::{FPoint, HPoint, Labels, RawSample, RawSeries, SampleValue, Value};
pub use parse::{
    QueryTimes, RangeModifier, format_query, is_modifier_mark, modifier_of, parse, parse_in,
};
pub use source::{MatchKind, Matcher, MemorySource, SeriesChunks, SeriesSource, WholeSelection};

/// Relative float comparison as Prometheus's `util/almost.Equal` does it.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}
