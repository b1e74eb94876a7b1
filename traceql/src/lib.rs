//! TraceQL: parse a query once, evaluate it on whole traces.
//!
//! ```
//! use strata_traceql::{parse, evaluate, SpanData, TraceData};
//!
//! let q = parse(r#"{ resource.service.name = "api" && duration > 10ms }"#).unwrap();
//! let trace = TraceData {
//!     trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
//!     spans: vec![SpanData {
//!         span_id: "b7ad6b7169203331".into(),
//!         name: "GET /".into(),
//!         service_name: "api".into(),
//!         start_ns: 0,
//!         end_ns: 20_000_000,
//!         ..Default::default()
//!     }],
//! };
//! let sets = evaluate(&q, &trace);
//! assert_eq!(sets[0].spans, vec![0]);
//! ```
//!
//! Semantics follow Grafana Tempo: the pipeline starts from one spanset holding every
//! span of the trace; spanset filters keep matching spans; `&&`/`||` between spansets
//! union both sides' spans; structural operators return the right side's spans; a
//! trace matches when at least one spanset is left. Comparisons of incompatible types,
//! and any comparison with a missing attribute (also `!=`), are false.
//!
//! Supported:
//! - filters `{ }` with `= != > >= < <= =~ !~` (regexes fully anchored, compiled once
//!   at parse time), `&& || !`, `+ - * / % ^`, parentheses, `= nil` / `!= nil`;
//!   inside a filter `&&` and `||` have the same precedence and group left to right,
//!   as in Tempo's grammar;
//! - attributes `span.x`, `resource.x`, `.x` (span, else resource), `event.x`, `link.x`,
//!   `parent.x` / `parent.span.x` / `parent.resource.x`, quoted names (`span."a b"`);
//!   a filter reading event (link) fields matches a span when some event (link) does;
//! - intrinsics `name status statusMessage kind duration rootName rootServiceName
//!   traceDuration` and `span:` `trace:` `event:` `link:` `instrumentation:` forms
//!   (`span:id`, `span:parentID`, `span:childCount`, `trace:id`,
//!   `event:timeSinceStart`, `link:traceID`, `link:spanID` ...);
//! - literals: strings (`"..."` with escapes, `` `raw` ``), ints, floats, durations
//!   (`10ns 100us 1.5ms 2s 1m 1h 1d 1h30m`), `true false nil`, statuses, kinds,
//!   `minInt maxInt`; ints, floats and durations compare numerically; arrays match
//!   when any element does (`!=` and `!~`: every element);
//! - spanset operators `&& ||`, structural `> < >> << ~`, negated `!> !< !>> !<< !~`
//!   and union `&> &< &>> &<< &~`;
//! - pipelines: spanset filters, `count() avg() min() max() sum()` in comparisons with
//!   arithmetic (`| count() > 2`, `| max(duration) - min(duration) > 1s`), `by()`,
//!   `select()`, `coalesce()`, parenthesised sub-pipelines, trailing `with(...)` hints.
//!
//! Rejected with a positioned [`ParseError`]: metrics functions (`rate()` ...), the
//! `nestedSet*` and `parent` intrinsics, `instrumentation.*` attributes, type errors
//! Tempo rejects (`{ name = 1 }`), invalid or oversized regexes, structural operators
//! on `by()` output without `coalesce()`, queries nested deeper than 64 levels or with
//! more than 512 operators.
//!
//! [`Query`] is `Send + Sync`: parse once, evaluate on many traces from many threads.

mod ast;
mod data;
mod error;
mod eval;
mod hints;
mod lexer;
mod parser;
mod summary;
mod value;

pub use ast::Query;
pub use data::{EventData, LinkData, SpanData, TraceData};
pub use error::ParseError;
pub use eval::{Spanset, evaluate};
pub use hints::{Condition, HintField, Hints, Predicate};
pub use lexer::parse_duration;
pub use parser::parse;
pub use summary::{ROOT_SPAN_NOT_YET_RECEIVED, trace_summary_json};
pub use value::{SpanKind, StatusCode, Value, format_go_duration};
