//! OTLP traces protobuf decoded straight into a `spans` batch.
//!
//! The generic path decodes a request into prost structs (an allocation per string and
//! id), converts them into model spans (more strings) and copies those into Arrow
//! builders. This one walks the protobuf wire format once and appends each span's fields
//! to [`SpansBuilder`] from the request bytes: ids are hex-encoded on the stack, attribute
//! JSON is written into one reused buffer. Resources, scopes, events and links (a few per
//! request or per span) still go through prost and the model conversion, so their JSON is
//! the generic path's by construction.
//!
//! The result is exactly `spans_batch(convert(decode(body)))` (a test checks it). Input the
//! walk does not take plainly (malformed protobuf, invalid UTF-8, wire types other than
//! the schema's, a singular message field repeated, which prost merges) returns `None`:
//! the caller then takes the generic path, which gives the same answer or the same error.

use crate::attributes::{any_to_json, push_int, push_json_str, write_attributes_json};
use crate::limits::Limits;
use crate::otlp::common::{ResourceOrigin, nanos};
use crate::otlp::traces::{SpanCounts, event, link, span_problem};
use crate::protowire::{Fields, Wire, bytes, fixed32, fixed64, text, varint};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use prost::Message;
use strata_storage::model::Origin;
use strata_storage::schema::{SpanRow, SpansBuilder};

/// A decoded request: its spans as a batch, and the spans rejected one by one.
pub struct WireSpans {
    pub builder: SpansBuilder,
    pub rejected: u64,
    pub errors: Vec<String>,
    /// Set when the spans make more text than one batch may hold: the request is then
    /// refused whole (the builder is emptied and the rest of the body only checked, so
    /// that malformed input still gets the generic path's answer).
    pub too_large: Option<strata_storage::Error>,
}

/// A singular message field: `None` when it was already seen (prost would merge them).
fn once<'a>(slot: &mut Option<&'a [u8]>, w: Wire<'a>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(bytes(w)?);
    Some(())
}

/// An attribute value as the walk sees it.
enum AttrValue<'a> {
    Null,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    /// Anything else: the `AnyValue` message, decoded by prost when written.
    Other(&'a [u8]),
}

/// A `KeyValue` message: its key and value.
fn key_value(b: &[u8]) -> Option<(&str, AttrValue<'_>)> {
    let mut key = "";
    let mut value: Option<&[u8]> = None;
    let mut f = Fields::new(b);
    while let Some((n, w)) = f.next_field()? {
        match n {
            1 => key = text(w)?,
            2 => once(&mut value, w)?,
            _ => {}
        }
    }
    let Some(v) = value else {
        return Some((key, AttrValue::Null));
    };
    // The oneof: the last variant present wins, as in prost.
    let mut out = AttrValue::Null;
    let mut f = Fields::new(v);
    while let Some((n, w)) = f.next_field()? {
        out = match n {
            1 => AttrValue::Str(text(w)?),
            2 => AttrValue::Bool(varint(w)? != 0),
            3 => AttrValue::Int(varint(w)? as i64),
            4..=8 => AttrValue::Other(v),
            _ => continue,
        };
        if matches!(out, AttrValue::Other(_)) {
            break;
        }
    }
    Some((key, out))
}

/// Checks a value as prost's decoding of the request would, without keeping it: what the
/// walk did not look at (an array, kvlist, double or bytes value) is decoded and dropped.
fn check_value(v: &AttrValue<'_>) -> Option<()> {
    if let AttrValue::Other(b) = v {
        AnyValue::decode(*b).ok()?;
    }
    Some(())
}

/// Checks a `KeyValue` list member as prost would decode it, keeping nothing.
fn check_key_value(b: &[u8]) -> Option<()> {
    check_value(&key_value(b)?.1)
}

/// Checks an `Event` message as prost would decode it, collecting nothing (its attributes
/// one at a time), and counts its attributes: an event of millions of attributes costs
/// no memory before the span is rejected for it.
fn check_event(b: &[u8]) -> Option<usize> {
    let mut attributes = 0usize;
    let mut f = Fields::new(b);
    while let Some((n, w)) = f.next_field()? {
        match n {
            1 => {
                fixed64(w)?;
            }
            2 => {
                text(w)?;
            }
            3 => {
                check_key_value(bytes(w)?)?;
                attributes += 1;
            }
            4 => {
                varint(w)?;
            }
            _ => {}
        }
    }
    Some(attributes)
}

/// [`check_event`] for a `Link` message.
fn check_link(b: &[u8]) -> Option<usize> {
    let mut attributes = 0usize;
    let mut f = Fields::new(b);
    while let Some((n, w)) = f.next_field()? {
        match n {
            1 | 2 => {
                bytes(w)?;
            }
            3 => {
                text(w)?;
            }
            4 => {
                check_key_value(bytes(w)?)?;
                attributes += 1;
            }
            5 => {
                varint(w)?;
            }
            6 => {
                fixed32(w)?;
            }
            _ => {}
        }
    }
    Some(attributes)
}

fn write_value(out: &mut String, v: &AttrValue<'_>) -> Option<()> {
    match v {
        AttrValue::Null => out.push_str("null"),
        AttrValue::Str(s) => push_json_str(out, s),
        AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AttrValue::Int(n) => push_int(out, *n),
        AttrValue::Other(b) => {
            let any = AnyValue::decode(*b).ok()?;
            match any.value {
                None => out.push_str("null"),
                Some(_) => out.push_str(&any_to_json(&any).to_string()),
            }
        }
    }
    Some(())
}

/// Lower-case hex of an id into `buf`.
fn hex<'b>(id: &[u8], buf: &'b mut [u8; 32]) -> &'b str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = id.len().min(16);
    for (i, b) in id.iter().take(n).enumerate() {
        buf[2 * i] = HEX[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    std::str::from_utf8(&buf[..2 * n]).unwrap_or_default()
}

/// Reused buffers of the walk.
#[derive(Default)]
struct Scratch<'a> {
    attrs: Vec<(&'a str, AttrValue<'a>)>,
    attrs_json: String,
    events: Vec<&'a [u8]>,
    links: Vec<&'a [u8]>,
}

/// Decodes an `ExportTraceServiceRequest`, calling `on_span` with every span stored;
/// `None` when the generic path must take the request.
pub fn decode(
    body: &[u8],
    limits: &Limits,
    on_span: &mut dyn FnMut(&SpanRow<'_>, &Origin),
) -> Option<WireSpans> {
    let mut out = WireSpans {
        builder: SpansBuilder::with_capacity(body.len() / 256)
            .with_max_text_bytes(limits.max_span_text_bytes()),
        rejected: 0,
        errors: Vec::new(),
        too_large: None,
    };
    let mut scratch = Scratch::default();
    let mut f = Fields::new(body);
    while let Some((n, w)) = f.next_field()? {
        if n == 1 {
            resource_spans(bytes(w)?, limits, &mut out, &mut scratch, on_span)?;
        }
    }
    Some(out)
}

/// One `ResourceSpans`. Its fields are walked twice (the resource and schema URL may come
/// after the scopes), so that no list of scopes or spans is built: a body of millions of
/// empty scopes or spans costs no memory. The resource's origin is built once, at the
/// first scope that has spans.
fn resource_spans<'a>(
    b: &'a [u8],
    limits: &Limits,
    out: &mut WireSpans,
    scratch: &mut Scratch<'a>,
    on_span: &mut dyn FnMut(&SpanRow<'_>, &Origin),
) -> Option<()> {
    let mut resource = None;
    let mut schema_url = "";
    let mut f = Fields::new(b);
    while let Some((n, w)) = f.next_field()? {
        match n {
            1 => once(&mut resource, w)?,
            2 => {
                bytes(w)?;
            }
            3 => schema_url = text(w)?,
            _ => {}
        }
    }
    let resource = match resource {
        Some(r) => Some(Resource::decode(r).ok()?),
        None => None,
    };
    let mut resource_origin = None;
    let mut f = Fields::new(b);
    while let Some((n, w)) = f.next_field()? {
        if n != 2 {
            continue;
        }
        let s = bytes(w)?;
        let mut scope = None;
        let mut scope_url = "";
        let mut has_spans = false;
        let mut g = Fields::new(s);
        while let Some((n, w)) = g.next_field()? {
            match n {
                1 => once(&mut scope, w)?,
                2 => {
                    bytes(w)?;
                    has_spans = true;
                }
                3 => scope_url = text(w)?,
                _ => {}
            }
        }
        let scope = match scope {
            Some(s) => Some(InstrumentationScope::decode(s).ok()?),
            None => None,
        };
        if !has_spans {
            continue;
        }
        let origin = resource_origin
            .get_or_insert_with(|| ResourceOrigin::new(resource.as_ref(), schema_url))
            .with_scope(scope.as_ref(), scope_url);
        let mut g = Fields::new(s);
        while let Some((n, w)) = g.next_field()? {
            if n == 2 {
                one_span(bytes(w)?, &origin, limits, out, scratch, on_span)?;
            }
        }
    }
    Some(())
}

fn one_span<'a>(
    b: &'a [u8],
    origin: &Origin,
    limits: &Limits,
    out: &mut WireSpans,
    scratch: &mut Scratch<'a>,
    on_span: &mut dyn FnMut(&SpanRow<'_>, &Origin),
) -> Option<()> {
    let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let (mut trace_state, mut name) = ("", "");
    let (mut flags, mut kind, mut start, mut end) = (0u32, 0i32, 0u64, 0u64);
    let (mut dropped_attrs, mut dropped_events, mut dropped_links) = (0u32, 0u32, 0u32);
    let mut status = None;
    let mut counts = SpanCounts::default();
    scratch.attrs.clear();
    scratch.events.clear();
    scratch.links.clear();
    // Attributes, events and links past their limits make the span rejected: they are
    // counted and checked as prost would check them, one at a time, never collected.
    // Every event and link is checked (and its attributes counted) without decoding it.
    let mut f = Fields::new(b);
    while let Some((n, w)) = f.next_field()? {
        match n {
            1 => trace_id = bytes(w)?,
            2 => span_id = bytes(w)?,
            3 => trace_state = text(w)?,
            4 => parent = bytes(w)?,
            5 => name = text(w)?,
            6 => kind = varint(w)? as i32,
            7 => start = fixed64(w)?,
            8 => end = fixed64(w)?,
            9 => {
                let kv = key_value(bytes(w)?)?;
                counts.attributes += 1;
                if counts.attributes <= limits.max_attributes_per_item {
                    scratch.attrs.push(kv);
                } else {
                    check_value(&kv.1)?;
                }
            }
            10 => dropped_attrs = varint(w)? as u32,
            11 => {
                let e = bytes(w)?;
                counts.event_attributes = counts.event_attributes.max(check_event(e)?);
                counts.events += 1;
                if counts.events <= limits.max_events_per_span {
                    scratch.events.push(e);
                }
            }
            12 => dropped_events = varint(w)? as u32,
            13 => {
                let l = bytes(w)?;
                counts.link_attributes = counts.link_attributes.max(check_link(l)?);
                counts.links += 1;
                if counts.links <= limits.max_links_per_span {
                    scratch.links.push(l);
                }
            }
            14 => dropped_links = varint(w)? as u32,
            15 => once(&mut status, w)?,
            16 => flags = fixed32(w)?,
            _ => {}
        }
    }
    let (mut status_code, mut status_message) = (0i32, "");
    if let Some(st) = status {
        let mut f = Fields::new(st);
        while let Some((n, w)) = f.next_field()? {
            match n {
                2 => status_message = text(w)?,
                3 => status_code = varint(w)? as i32,
                _ => {}
            }
        }
    }
    if let Err(e) = span_problem(trace_id.len(), span_id.len(), parent, counts, limits) {
        // A rejected span's contents are still checked, as prost checks them: a malformed
        // one gives the generic path's 400 for the request, not a rejection.
        // (Events and links were checked as they were counted.)
        for (_, v) in &scratch.attrs {
            check_value(v)?;
        }
        out.rejected += 1;
        if out.errors.len() < 10 {
            out.errors.push(super::common::span_rejection(name, &e));
        }
        return Some(());
    }
    // Events and links are checked before anything is appended, so that a malformed one
    // leaves the whole request to the generic path.
    let mut events = Vec::with_capacity(scratch.events.len());
    for e in &scratch.events {
        events.push(event(&Event::decode(*e).ok()?));
    }
    let mut links = Vec::with_capacity(scratch.links.len());
    for l in &scratch.links {
        links.push(link(&Link::decode(*l).ok()?));
    }
    scratch.attrs_json.clear();
    let mut ok = true;
    write_attributes_json(&mut scratch.attrs_json, &mut scratch.attrs, |o, v| {
        ok &= write_value(o, v).is_some();
    });
    if !ok {
        return None;
    }
    if out.too_large.is_some() {
        // The request is refused already: the rest is only checked.
        return Some(());
    }
    let events_json = if events.is_empty() {
        "[]".to_owned()
    } else {
        serde_json::to_string(&events).ok()?
    };
    let links_json = if links.is_empty() {
        "[]".to_owned()
    } else {
        serde_json::to_string(&links).ok()?
    };
    let (mut t, mut s, mut p) = ([0u8; 32], [0u8; 32], [0u8; 32]);
    let row = SpanRow {
        trace_id: hex(trace_id, &mut t),
        span_id: hex(span_id, &mut s),
        parent_span_id: hex(parent, &mut p),
        trace_state,
        flags,
        name,
        kind,
        start_time_ns: nanos(start),
        end_time_ns: nanos(end),
        attributes: &scratch.attrs_json,
        dropped_attributes_count: dropped_attrs,
        events_json: &events_json,
        dropped_events_count: dropped_events,
        links_json: &links_json,
        dropped_links_count: dropped_links,
        status_code,
        status_message,
    };
    match out.builder.append(&row, origin) {
        Ok(()) => on_span(&row, origin),
        Err(e) => {
            out.builder = SpansBuilder::with_capacity(0);
            out.too_large = Some(e);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests;
