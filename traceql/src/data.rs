//! The trace model the evaluator works on: one trace with all its spans.

use crate::value::{SpanKind, StatusCode, Value};

/// One span event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventData {
    pub name: String,
    pub time_ns: i64,
    pub attributes: Vec<(String, Value)>,
}

/// One span link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkData {
    /// Lower-case hex.
    pub trace_id: String,
    /// Lower-case hex.
    pub span_id: String,
    pub attributes: Vec<(String, Value)>,
}

/// One span with its resource and scope.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanData {
    /// Lower-case hex (16 digits).
    pub span_id: String,
    /// Lower-case hex; `None` (or an empty string) for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    pub status: StatusCode,
    pub status_message: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// `service.name` of the resource (also looked up as `resource.service.name` when the
    /// resource attributes do not carry it).
    pub service_name: String,
    pub attributes: Vec<(String, Value)>,
    pub resource_attributes: Vec<(String, Value)>,
    pub scope_name: String,
    pub scope_version: String,
    pub events: Vec<EventData>,
    pub links: Vec<LinkData>,
}

impl SpanData {
    pub fn duration_ns(&self) -> i64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The parent id, treating an empty string as "no parent".
    pub fn parent_id(&self) -> Option<&str> {
        self.parent_span_id.as_deref().filter(|p| !p.is_empty())
    }
}

/// All spans of one trace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceData {
    /// Lower-case hex (32 digits).
    pub trace_id: String,
    pub spans: Vec<SpanData>,
}
