//! Strata's LogQL engine.
//!
//! [`parse`] turns a query into an [`Expr`]; [`Engine`] evaluates it against
//! any [`LogSource`] (the storage adapter implements it; [`MemorySource`]
//! serves tests) under [`Limits`], and [`QueryResult::to_loki_json`] renders
//! Loki's HTTP `data` object. Errors classify into HTTP statuses via
//! [`Error::class`].
//!
//! Layout: `lexer` + `parser` (syntax, positions; `parser/pipeline.rs` for
//! stages), [`ast`], `pipeline` (runs stages on one entry), `labels` (the
//! per-entry label set and label-set interning), `json` (allocation-light JSON
//! scanner), `pattern`, `ip`, `template` (Go text/template subset), `engine`
//! (selection, limits, log queries), `eval` (metric queries), [`result`]
//! (Loki JSON).
//!
//! Semantics follow Loki: regex matchers are fully anchored, metric windows
//! are `(t - range, t]`, log queries read `[start, end)` and return the newest
//! (backward) or oldest (forward) `limit` lines across all streams; parsed
//! labels colliding with stream labels get an `_extracted` suffix.

pub mod ast;
mod display;
mod engine;
pub mod error;
mod eval;
mod ip;
mod json;
mod labels;
mod lexer;
mod matcher;
pub mod model;
mod parser;
mod pattern;
mod pipeline;
pub mod result;
mod template;

pub use ast::{Expr, LineFilter, LineFilterOp, LogExpr};
pub use engine::Engine;
pub use error::{Error, ErrorClass, ParseError, SourceError};
pub use ip::IpPattern;
pub use matcher::{MatchOp, Matcher};
pub use model::{
    Direction, Entry, Limits, LogSource, MemorySource, Selection, Stats, Stream, labels_string,
};
pub use parser::{parse, parse_selector};
pub use pattern::Pattern;
pub use result::{QueryResult, Sample, Series};
pub use template::Template;

/// Parses a duration as LogQL writes it (`5m`, `1h30m`, `250ms`, `1d`) into nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    lexer::parse_duration(s)
}
