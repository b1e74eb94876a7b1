//! OTLP traces -> storage spans, every field kept.

use crate::attributes::{attributes_json, attributes_value};
use crate::limits::{Limits, note_rejection};
use crate::otlp::common::{ResourceOrigin, check_id, hex_id, nanos};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use strata_storage::model::{Span, SpanEvent, SpanLink};
use strata_storage::schema::origin_text_len;
use strata_storage::schema::spans_too_large;

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

/// Why a span is rejected, if it is: the checks of [`convert`]. Only counts are needed,
/// so a span over a limit is rejected before its attributes, events or links are
/// converted.
pub(crate) fn span_problem(
    trace_id_len: usize,
    span_id_len: usize,
    parent: &[u8],
    counts: SpanCounts,
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
    .and_then(|_| limits.check_attributes(counts.attributes))
    .and_then(|_| limits.check_events_links(counts.events, counts.links))
    .and_then(|_| {
        limits
            .check_attributes(counts.event_attributes)
            .map_err(|e| format!("an event has {e}"))
    })
    .and_then(|_| {
        limits
            .check_attributes(counts.link_attributes)
            .map_err(|e| format!("a link has {e}"))
    })
}

/// How many attributes, events and links a span has, and the most attributes one of its
/// events or links has (each held to `max_attributes_per_item`, as the span's own).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SpanCounts {
    pub attributes: usize,
    pub events: usize,
    pub links: usize,
    pub event_attributes: usize,
    pub link_attributes: usize,
}

/// The fewest bytes of JSON an event or link takes in the `events` / `links` column
/// (`{"time_ns":0,"name":"","attributes":{},"dropped_attributes_count":0}` is 68).
const MIN_EVENT_JSON: usize = 64;
const MIN_LINK_JSON: usize = 96;

/// A span's text in a `spans` batch, at least: what [`convert`] counts against
/// [`Limits::max_text_bytes`] so that a request the batch builder would refuse is
/// mostly refused before its spans are all converted.
fn span_text_lower_bound(s: &OtlpSpan, attributes: &str, origin_bytes: usize) -> usize {
    let events: usize = s.events.iter().map(|e| MIN_EVENT_JSON + e.name.len()).sum();
    let links: usize = s
        .links
        .iter()
        .map(|l| MIN_LINK_JSON + l.trace_state.len())
        .sum();
    2 * (s.trace_id.len() + s.span_id.len() + s.parent_span_id.len())
        + s.trace_state.len()
        + s.name.len()
        + attributes.len()
        + events
        + links
        + s.status.as_ref().map_or(0, |st| st.message.len())
        + origin_bytes
}

/// Converts a request; spans with bad ids or over the limits are rejected one by one. A
/// request whose spans would make more text than one batch may hold is refused whole
/// ([`strata_storage::Error::TooLarge`]).
pub fn convert(
    req: &ExportTraceServiceRequest,
    limits: &Limits,
) -> Result<TracesConversion, strata_storage::Error> {
    let mut out = TracesConversion::default();
    let mut text_bytes = 0usize;
    let max_text = limits.max_text_bytes();
    for rs in &req.resource_spans {
        // The resource's JSON once per resource block, and nothing for scopes without spans.
        let mut resource = None;
        let resource_attributes = rs.resource.as_ref().map_or(0, |r| r.attributes.len());
        for ss in &rs.scope_spans {
            if ss.spans.is_empty() {
                continue;
            }
            let scope_attributes = ss.scope.as_ref().map_or(0, |s| s.attributes.len());
            if let Err(e) = limits.check_origin(resource_attributes, scope_attributes) {
                for s in &ss.spans {
                    out.rejected += 1;
                    note_rejection(&mut out.errors, || {
                        super::common::span_rejection(&s.name, &e)
                    });
                }
                continue;
            }
            let resource = resource
                .get_or_insert_with(|| ResourceOrigin::new(rs.resource.as_ref(), &rs.schema_url));
            let origin = resource.with_scope(ss.scope.as_ref(), &ss.schema_url);
            let origin_bytes = origin_text_len(&origin);
            for s in &ss.spans {
                let counts = SpanCounts {
                    attributes: s.attributes.len(),
                    events: s.events.len(),
                    links: s.links.len(),
                    event_attributes: s
                        .events
                        .iter()
                        .map(|e| e.attributes.len())
                        .max()
                        .unwrap_or(0),
                    link_attributes: s
                        .links
                        .iter()
                        .map(|l| l.attributes.len())
                        .max()
                        .unwrap_or(0),
                };
                let problem = span_problem(
                    s.trace_id.len(),
                    s.span_id.len(),
                    &s.parent_span_id,
                    counts,
                    limits,
                );
                if let Err(e) = problem {
                    out.rejected += 1;
                    note_rejection(&mut out.errors, || {
                        super::common::span_rejection(&s.name, &e)
                    });
                    continue;
                }
                let attributes = attributes_json(&s.attributes);
                text_bytes =
                    text_bytes.saturating_add(span_text_lower_bound(s, &attributes, origin_bytes));
                if text_bytes > max_text {
                    return Err(spans_too_large(max_text));
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
                    attributes,
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
    Ok(out)
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
        let out = convert(&req, &Limits::default()).expect("converts");
        assert_eq!(out.rejected, 0, "{:?}", out.errors);
        assert!(!out.spans.is_empty());
        assert_eq!(out.spans[0].trace_id.len(), 32);
        assert!(out.spans[0].end_time_ns >= out.spans[0].start_time_ns);
    }
}
