//! OTLP traces -> storage spans, every field kept.

use crate::attributes::{attributes_json, attributes_value};
use crate::limits::Limits;
use crate::otlp::common::{check_id, hex_id, nanos, origin};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use strata_storage::model::{Span, SpanEvent, SpanLink};

/// What became of a traces request.
#[derive(Debug, Default)]
pub struct TracesConversion {
    pub spans: Vec<Span>,
    pub rejected: u64,
    pub errors: Vec<String>,
}

/// A span event in the model's form.
pub(crate) fn event(e: &Event) -> SpanEvent {
    SpanEvent {
        time_ns: nanos(e.time_unix_nano),
        name: e.name.clone(),
        attributes: attributes_value(&e.attributes),
        dropped_attributes_count: e.dropped_attributes_count,
    }
}

/// A span link in the model's form.
pub(crate) fn link(l: &Link) -> SpanLink {
    SpanLink {
        trace_id: hex_id(&l.trace_id),
        span_id: hex_id(&l.span_id),
        trace_state: l.trace_state.clone(),
        attributes: attributes_value(&l.attributes),
        dropped_attributes_count: l.dropped_attributes_count,
        flags: l.flags,
    }
}

/// Why a span is rejected, if it is: the checks of [`convert`].
pub(crate) fn span_problem(
    trace_id_len: usize,
    span_id_len: usize,
    parent: &[u8],
    attributes: usize,
    limits: &Limits,
) -> Result<(), String> {
    (if trace_id_len != 16 {
        Err(format!("trace_id must be 16 bytes, got {trace_id_len}"))
    } else if span_id_len != 8 {
        Err(format!("span_id must be 8 bytes, got {span_id_len}"))
    } else {
        Ok(())
    })
    .and_then(|_| check_id(parent, 8, "parent_span_id"))
    .and_then(|_| limits.check_attributes(attributes))
}

/// Converts a request; spans with bad ids or over the limits are rejected one by one.
pub fn convert(req: &ExportTraceServiceRequest, limits: &Limits) -> TracesConversion {
    let mut out = TracesConversion::default();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            let origin = origin(
                rs.resource.as_ref(),
                &rs.schema_url,
                ss.scope.as_ref(),
                &ss.schema_url,
            );
            for s in &ss.spans {
                let problem = span_problem(
                    s.trace_id.len(),
                    s.span_id.len(),
                    &s.parent_span_id,
                    s.attributes.len(),
                    limits,
                );
                if let Err(e) = problem {
                    out.rejected += 1;
                    if out.errors.len() < 10 {
                        out.errors.push(super::common::span_rejection(&s.name, &e));
                    }
                    continue;
                }
                let status = s.status.as_ref();
                out.spans.push(Span {
                    trace_id: hex_id(&s.trace_id),
                    span_id: hex_id(&s.span_id),
                    parent_span_id: hex_id(&s.parent_span_id),
                    trace_state: s.trace_state.clone(),
                    flags: s.flags,
                    name: s.name.clone(),
                    kind: s.kind,
                    start_time_ns: nanos(s.start_time_unix_nano),
                    end_time_ns: nanos(s.end_time_unix_nano),
                    attributes: attributes_json(&s.attributes),
                    dropped_attributes_count: s.dropped_attributes_count,
                    events: s.events.iter().map(event).collect(),
                    dropped_events_count: s.dropped_events_count,
                    links: s.links.iter().map(link).collect(),
                    dropped_links_count: s.dropped_links_count,
                    status_code: status.map_or(0, |st| st.code),
                    status_message: status.map(|st| st.message.clone()).unwrap_or_default(),
                    origin: origin.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_shared_example() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/otlp-examples/trace.json"
        );
        let text = std::fs::read_to_string(path).expect("example");
        let req: ExportTraceServiceRequest = serde_json::from_str(&text).expect("parse");
        let out = convert(&req, &Limits::default());
        assert_eq!(out.rejected, 0, "{:?}", out.errors);
        assert!(!out.spans.is_empty());
        assert_eq!(out.spans[0].trace_id.len(), 32);
        assert!(out.spans[0].end_time_ns >= out.spans[0].start_time_ns);
    }
}
