//! Strata's LogQL engine.
//!
//! [`parse`] turns a query into an [`Expr`]; [`Engine`] evaluates it against
//! any [`LogSource`] (the storage adapter implements it; [`MemorySource`]
//! serves tests) under [`Limits`], and [`QueryResult::to_loki_json`] renders
//! Loki's HTTP `data` object. Errors classify into HTTP statuses via
//! [`Error::class`].
//!
//! Layout: `lexer` + `parser` (syntax, positions), [`ast`], `pipeline` (line
//! filters, parsers, label filters, formatting, run per entry), `template`
//! (Go text/template subset), `pattern`, `engine` (log queries, selection,
//! limits), `eval` (metric queries), [`result`] (JSON).
//!
//! Semantics follow Loki: regex matchers are fully anchored, metric windows
//! are `(t - range, t]`, log queries read `[start, end)` and return the newest
//! (backward) or oldest (forward) `limit` lines across all streams; parsed
//! labels colliding with stream labels get an `_extracted` suffix.

pub mod ast;
mod engine;
pub mod error;
mod eval;
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
pub use matcher::{MatchOp, Matcher};
pub use model::{
    Direction, Entry, Limits, LogSource, MemorySource, Selection, Stats, Stream, labels_string,
};
pub use parser::{parse, parse_selector};
pub use result::{QueryResult, Sample, Series};

/// Parses a duration as LogQL writes it (`5m`, `1h30m`, `250ms`, `1d`) into nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    lexer::parse_duration(s)
}
