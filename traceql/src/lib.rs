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
pub use parser::parse;
pub use summary::{ROOT_SPAN_NOT_YET_RECEIVED, trace_summary_json};
pub use value::{SpanKind, StatusCode, Value, format_go_duration};
