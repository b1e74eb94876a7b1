//! OTLP traces protobuf decoded straight into a `spans` batch.
//!
//! The generic path decodes a request into prost structs (an allocation per string and
//! id), converts them into model spans (more strings) and copies those into Arrow
//! builders. This one walks the protobuf wire format and appends each span's fields to
//! [`SpansBuilder`] from the request bytes: ids are hex-encoded on the stack, attribute,
//! event and link JSON is written into reused buffers, each event and link walked once.
//!
//! The result is exactly `spans_batch(convert(decode(body)))` (tests check it), for every
//! form prost takes: fields in any order, unknown fields (groups too), singular fields
//! given more than once (the last scalar or string wins, messages merge). Malformed input
//! is a [`WireError`] naming the field, as prost's would be: prost never runs, so no body
//! becomes its whole request's structs, whatever it holds.

mod value;

use crate::attributes::{push_int, push_json_str};
use crate::limits::{Limits, note_rejection};
use crate::otlp::common::{ResourceOrigin, ScopeParts, nanos};
use crate::otlp::traces::{SpanCounts, span_problem};
use crate::protowire::{
    At, Fields, I32, I64, LEN, Merged, Named, VARINT, WireError, bytes, fixed32, fixed64, text,
    varint,
};

// Field names of the messages walked, for errors.
const REQUEST: &[(u32, &str, u8)] = &[(1, "resource_spans", LEN)];
const RESOURCE_SPANS: &[(u32, &str, u8)] = &[
    (1, "resource", LEN),
    (2, "scope_spans", LEN),
    (3, "schema_url", LEN),
];
const RESOURCE: &[(u32, &str, u8)] = &[
    (1, "attributes", LEN),
    (2, "dropped_attributes_count", VARINT),
    (3, "entity_refs", LEN),
];
const ENTITY_REF: &[(u32, &str, u8)] = &[
    (1, "schema_url", LEN),
    (2, "type", LEN),
    (3, "id_keys", LEN),
    (4, "description_keys", LEN),
];
const SCOPE_SPANS: &[(u32, &str, u8)] =
    &[(1, "scope", LEN), (2, "spans", LEN), (3, "schema_url", LEN)];
const SCOPE: &[(u32, &str, u8)] = &[
    (1, "name", LEN),
    (2, "version", LEN),
    (3, "attributes", LEN),
    (4, "dropped_attributes_count", VARINT),
];
const EVENT: &[(u32, &str, u8)] = &[
    (1, "time_unix_nano", I64),
    (2, "name", LEN),
    (3, "attributes", LEN),
    (4, "dropped_attributes_count", VARINT),
];
const LINK: &[(u32, &str, u8)] = &[
    (1, "trace_id", LEN),
    (2, "span_id", LEN),
    (3, "trace_state", LEN),
    (4, "attributes", LEN),
    (5, "dropped_attributes_count", VARINT),
    (6, "flags", I32),
];
const SPAN: &[(u32, &str, u8)] = &[
    (1, "trace_id", LEN),
    (2, "span_id", LEN),
    (3, "trace_state", LEN),
    (4, "parent_span_id", LEN),
    (5, "name", LEN),
    (6, "kind", VARINT),
    (7, "start_time_unix_nano", I64),
    (8, "end_time_unix_nano", I64),
    (9, "attributes", LEN),
    (10, "dropped_attributes_count", VARINT),
    (11, "events", LEN),
    (12, "dropped_events_count", VARINT),
    (13, "links", LEN),
    (14, "dropped_links_count", VARINT),
    (15, "status", LEN),
    (16, "flags", I32),
];
const STATUS: &[(u32, &str, u8)] = &[(2, "message", LEN), (3, "code", VARINT)];

use super::common::{HEX, push_hex};
use strata_storage::model::Origin;
use strata_storage::schema::{SpanRow, SpansBuilder};
use value::{AttrValue, key_value, write_attributes, write_value};

/// A decoded request: its spans as a batch, and the spans rejected one by one.
pub struct WireSpans {
    pub builder: SpansBuilder,
    pub rejected: u64,
    pub errors: Vec<String>,
    /// Set when the spans make more text than one batch may hold: the request is then
    /// refused whole (the builder is emptied and the rest of the body only checked, so
    /// that malformed input is still refused as malformed).
    pub too_large: Option<strata_storage::Error>,
}

/// The attributes of a resource or scope: every one checked and counted, collected in
/// order up to the limit (past it, the block's spans are rejected and nothing is built).
struct Attributes<'a> {
    members: Vec<(&'a str, AttrValue<'a>)>,
    count: usize,
    limit: usize,
    /// The value of the first `service.name`, as the generic path's `service_name` takes.
    service_name: Option<AttrValue<'a>>,
}

impl<'a> Attributes<'a> {
    fn new(limit: usize) -> Self {
        Attributes {
            members: Vec::new(),
            count: 0,
            limit,
            service_name: None,
        }
    }

    fn push(&mut self, kv: (&'a str, AttrValue<'a>)) {
        self.count += 1;
        if self.count > self.limit {
            return;
        }
        if kv.0 == "service.name" && self.service_name.is_none() {
            self.service_name = Some(kv.1.clone());
        }
        self.members.push(kv);
    }

    fn json(&mut self) -> Result<String, WireError> {
        let mut out = String::with_capacity(2 + self.members.len() * 32);
        write_attributes(&mut out, &mut self.members)?;
        Ok(out)
    }
}

/// A value as text: strings as they are, anything else as its JSON (`any_to_text`).
fn value_text(v: &AttrValue<'_>) -> Result<String, WireError> {
    match v {
        AttrValue::Str(s) => Ok((*s).to_owned()),
        AttrValue::Null => Ok(String::new()),
        other => {
            // A value given more than once merges, and may end a string or nothing.
            let mut out = String::new();
            write_value(&mut out, other)?;
            Ok(match out.as_str() {
                "null" => String::new(),
                s if s.starts_with('"') => serde_json::from_str(s).unwrap_or(out),
                _ => out,
            })
        }
    }
}

/// A (merged) `Resource`: its attributes and dropped attribute count.
fn resource(mut m: Merged<'_>, limit: usize) -> Result<(Attributes<'_>, u32), WireError> {
    let mut attrs = Attributes::new(limit);
    let mut dropped = 0u32;
    while let Some((n, w)) = m.next_field().named("Resource", RESOURCE)? {
        match n {
            1 => attrs.push(
                m.message(w)
                    .and_then(key_value)
                    .at("Resource", "attributes")?,
            ),
            2 => dropped = varint(w).at("Resource", "dropped_attributes_count")? as u32,
            3 => m
                .message(w)
                .and_then(entity_ref)
                .at("Resource", "entity_refs")?,
            _ => {}
        }
    }
    Ok((attrs, dropped))
}

/// Checks an `EntityRef` (kept by no one, but prost checks it).
fn entity_ref(mut f: Fields<'_>) -> Result<(), WireError> {
    while let Some((n, w)) = f.next_field().named("EntityRef", ENTITY_REF)? {
        match n {
            1 => text(w).at("EntityRef", "schema_url")?,
            2 => text(w).at("EntityRef", "type")?,
            3 => text(w).at("EntityRef", "id_keys")?,
            4 => text(w).at("EntityRef", "description_keys")?,
            _ => "",
        };
    }
    Ok(())
}

/// A (merged) `InstrumentationScope`.
struct Scope<'a> {
    name: &'a str,
    version: &'a str,
    attributes: Attributes<'a>,
    dropped: u32,
}

fn scope(mut m: Merged<'_>, limit: usize) -> Result<Scope<'_>, WireError> {
    let mut out = Scope {
        name: "",
        version: "",
        attributes: Attributes::new(limit),
        dropped: 0,
    };
    while let Some((n, w)) = m.next_field().named("InstrumentationScope", SCOPE)? {
        match n {
            1 => out.name = text(w).at("InstrumentationScope", "name")?,
            2 => out.version = text(w).at("InstrumentationScope", "version")?,
            3 => out.attributes.push(
                m.message(w)
                    .and_then(key_value)
                    .at("InstrumentationScope", "attributes")?,
            ),
            4 => {
                out.dropped =
                    varint(w).at("InstrumentationScope", "dropped_attributes_count")? as u32
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Reads an `Event` (walked once): counts its attributes and, when `out` is given and it
/// is within the attribute limit, appends its JSON (the model's `SpanEvent`) to `out`.
/// Attributes past the limit are checked, not collected.
fn event<'a>(
    mut f: Fields<'a>,
    out: Option<&mut String>,
    attrs: &mut Vec<(&'a str, AttrValue<'a>)>,
    limits: &Limits,
) -> Result<usize, WireError> {
    attrs.clear();
    let (mut time, mut name, mut dropped, mut count) = (0u64, "", 0u32, 0usize);
    while let Some((n, w)) = f.next_field().named("Event", EVENT)? {
        match n {
            1 => time = fixed64(w).at("Event", "time_unix_nano")?,
            2 => name = text(w).at("Event", "name")?,
            3 => {
                let kv = f.message(w).and_then(key_value).at("Event", "attributes")?;
                count += 1;
                if count <= limits.max_attributes_per_item {
                    attrs.push(kv);
                }
            }
            4 => dropped = varint(w).at("Event", "dropped_attributes_count")? as u32,
            _ => {}
        }
    }
    if let Some(o) = out.filter(|_| count <= limits.max_attributes_per_item) {
        if o.len() > 1 {
            o.push(',');
        }
        o.push_str("{\"time_ns\":");
        push_int(o, nanos(time));
        o.push_str(",\"name\":");
        push_json_str(o, name);
        o.push_str(",\"attributes\":");
        write_attributes(o, attrs)?;
        o.push_str(",\"dropped_attributes_count\":");
        push_int(o, i64::from(dropped));
        o.push('}');
    }
    Ok(count)
}

/// [`event`] for a `Link` (the model's `SpanLink`).
fn link<'a>(
    mut f: Fields<'a>,
    out: Option<&mut String>,
    attrs: &mut Vec<(&'a str, AttrValue<'a>)>,
    limits: &Limits,
) -> Result<usize, WireError> {
    attrs.clear();
    let (mut trace_id, mut span_id, mut trace_state): (&[u8], &[u8], &str) = (&[], &[], "");
    let (mut dropped, mut flags, mut count) = (0u32, 0u32, 0usize);
    while let Some((n, w)) = f.next_field().named("Link", LINK)? {
        match n {
            1 => trace_id = bytes(w).at("Link", "trace_id")?,
            2 => span_id = bytes(w).at("Link", "span_id")?,
            3 => trace_state = text(w).at("Link", "trace_state")?,
            4 => {
                let kv = f.message(w).and_then(key_value).at("Link", "attributes")?;
                count += 1;
                if count <= limits.max_attributes_per_item {
                    attrs.push(kv);
                }
            }
            5 => dropped = varint(w).at("Link", "dropped_attributes_count")? as u32,
            6 => flags = fixed32(w).at("Link", "flags")?,
            _ => {}
        }
    }
    if let Some(o) = out.filter(|_| count <= limits.max_attributes_per_item) {
        if o.len() > 1 {
            o.push(',');
        }
        o.push_str("{\"trace_id\":\"");
        push_hex(o, trace_id);
        o.push_str("\",\"span_id\":\"");
        push_hex(o, span_id);
        o.push_str("\",\"trace_state\":");
        push_json_str(o, trace_state);
        o.push_str(",\"attributes\":");
        write_attributes(o, attrs)?;
        o.push_str(",\"dropped_attributes_count\":");
        push_int(o, i64::from(dropped));
        o.push_str(",\"flags\":");
        push_int(o, i64::from(flags));
        o.push('}');
    }
    Ok(count)
}

/// Lower-case hex of an id into `buf`.
fn hex<'b>(id: &[u8], buf: &'b mut [u8; 32]) -> &'b str {
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
    item_attrs: Vec<(&'a str, AttrValue<'a>)>,
    attrs_json: String,
    events_json: String,
    links_json: String,
}

/// Decodes an `ExportTraceServiceRequest`, calling `on_span` with every span stored.
pub fn decode(
    body: &[u8],
    limits: &Limits,
    on_span: &mut dyn FnMut(&SpanRow<'_>, &Origin),
) -> Result<WireSpans, WireError> {
    let mut out = WireSpans {
        builder: SpansBuilder::with_capacity(body.len() / 256)
            .with_max_text_bytes(limits.max_text_bytes()),
        rejected: 0,
        errors: Vec::new(),
        too_large: None,
    };
    let mut scratch = Scratch::default();
    let mut f = Fields::new(body);
    while let Some((n, w)) = f.next_field().named("ExportTraceServiceRequest", REQUEST)? {
        if n == 1 {
            f.message(w)
                .and_then(|rs| resource_spans(rs, limits, &mut out, &mut scratch, on_span))
                .at("ExportTraceServiceRequest", "resource_spans")?;
        }
    }
    Ok(out)
}

/// One `ResourceSpans`. Its fields are walked more than once (the resource and schema URL
/// may come after the scopes, the resource may come in pieces), so that no list of scopes
/// or spans is built: a body of millions of empty scopes or spans costs no memory. The
/// resource's origin is built once, at the first scope that has spans.
fn resource_spans<'a>(
    rs: Fields<'a>,
    limits: &Limits,
    out: &mut WireSpans,
    scratch: &mut Scratch<'a>,
    on_span: &mut dyn FnMut(&SpanRow<'_>, &Origin),
) -> Result<(), WireError> {
    let (mut schema_url, mut has_resource) = ("", false);
    let mut f = rs.clone();
    while let Some((n, w)) = f.next_field().named("ResourceSpans", RESOURCE_SPANS)? {
        match n {
            1 => {
                f.message(w).at("ResourceSpans", "resource")?;
                has_resource = true;
            }
            2 => {
                f.message(w).at("ResourceSpans", "scope_spans")?;
            }
            3 => schema_url = text(w).at("ResourceSpans", "schema_url")?,
            _ => {}
        }
    }
    let mut resource = if has_resource {
        let limit = limits.max_resource_attributes;
        Some(resource(Merged::new(rs.clone(), 1), limit).at("ResourceSpans", "resource")?)
    } else {
        None
    };
    let mut resource_origin = None;
    let mut f = rs;
    while let Some((n, w)) = f.next_field().named("ResourceSpans", RESOURCE_SPANS)? {
        if n != 2 {
            continue;
        }
        let ss = f.message(w)?;
        scope_spans(
            ss,
            &mut resource,
            &mut resource_origin,
            schema_url,
            limits,
            out,
            scratch,
            on_span,
        )
        .at("ResourceSpans", "scope_spans")?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn scope_spans<'a>(
    ss: Fields<'a>,
    resource: &mut Option<(Attributes<'a>, u32)>,
    resource_origin: &mut Option<ResourceOrigin>,
    resource_schema_url: &str,
    limits: &Limits,
    out: &mut WireSpans,
    scratch: &mut Scratch<'a>,
    on_span: &mut dyn FnMut(&SpanRow<'_>, &Origin),
) -> Result<(), WireError> {
    let (mut scope_url, mut has_scope, mut has_spans) = ("", false, false);
    let mut g = ss.clone();
    while let Some((n, w)) = g.next_field().named("ScopeSpans", SCOPE_SPANS)? {
        match n {
            1 => {
                g.message(w).at("ScopeSpans", "scope")?;
                has_scope = true;
            }
            2 => {
                g.message(w).at("ScopeSpans", "spans")?;
                has_spans = true;
            }
            3 => scope_url = text(w).at("ScopeSpans", "schema_url")?,
            _ => {}
        }
    }
    let mut scope = if has_scope {
        let limit = limits.max_scope_attributes;
        Some(scope(Merged::new(ss.clone(), 1), limit).at("ScopeSpans", "scope")?)
    } else {
        None
    };
    if !has_spans {
        return Ok(());
    }
    let counts = (
        resource.as_ref().map_or(0, |(a, _)| a.count),
        scope.as_ref().map_or(0, |s| s.attributes.count),
    );
    // Over a limit, every span of the block is rejected (and checked); `one_span` then
    // never asks for the origin.
    let block = limits.check_origin(counts.0, counts.1).err();
    // The origin is built at the block's first stored span: a block whose spans are all
    // rejected, or that comes once the request is refused as too large, copies nothing
    // (else a large resource copied once per tiny scope block costs far more than its bytes).
    let mut make_origin = || -> Result<Origin, WireError> {
        #[cfg(test)]
        tests::ORIGINS_MADE.with(|n| n.set(n.get() + 1));
        let resource_origin = match resource_origin {
            Some(r) => r,
            None => resource_origin.insert(match resource {
                Some((attrs, dropped)) => ResourceOrigin::from_parts(
                    attrs.service_name.as_ref().map(value_text).transpose()?,
                    attrs.json()?,
                    *dropped,
                    resource_schema_url,
                ),
                None => ResourceOrigin::new(None, resource_schema_url),
            }),
        };
        Ok(match scope.take() {
            Some(mut s) => resource_origin.with_scope_parts(
                ScopeParts {
                    name: s.name,
                    version: s.version,
                    attributes: s.attributes.json()?,
                    dropped_attributes_count: s.dropped,
                },
                scope_url,
            ),
            None => resource_origin.with_scope(None, scope_url),
        })
    };
    let mut origin = None;
    let mut g = ss;
    while let Some((n, w)) = g.next_field().named("ScopeSpans", SCOPE_SPANS)? {
        if n == 2 {
            let span = g.message(w)?;
            let origin = OriginOnce {
                built: &mut origin,
                make: &mut make_origin,
            };
            one_span(
                span,
                origin,
                block.as_deref(),
                limits,
                out,
                scratch,
                on_span,
            )
            .at("ScopeSpans", "spans")?;
        }
    }
    Ok(())
}

/// A scope block's origin, made at the first span that is stored.
struct OriginOnce<'o> {
    built: &'o mut Option<Origin>,
    make: &'o mut dyn FnMut() -> Result<Origin, WireError>,
}

impl<'o> OriginOnce<'o> {
    fn get(self) -> Result<&'o Origin, WireError> {
        Ok(match self.built {
            Some(o) => o,
            None => self.built.insert((self.make)()?),
        })
    }
}

/// One span, appended unless rejected: for its own ids or counts, or for `block`, why
/// every span of its resource or scope is.
fn one_span<'a>(
    mut f: Fields<'a>,
    origin: OriginOnce<'_>,
    block: Option<&str>,
    limits: &Limits,
    out: &mut WireSpans,
    scratch: &mut Scratch<'a>,
    on_span: &mut dyn FnMut(&SpanRow<'_>, &Origin),
) -> Result<(), WireError> {
    let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let (mut trace_state, mut name) = ("", "");
    let (mut flags, mut kind, mut start, mut end) = (0u32, 0i32, 0u64, 0u64);
    let (mut dropped_attrs, mut dropped_events, mut dropped_links) = (0u32, 0u32, 0u32);
    let (mut status_code, mut status_message) = (0i32, "");
    let mut counts = SpanCounts::default();
    scratch.attrs.clear();
    scratch.events_json.clear();
    scratch.events_json.push('[');
    scratch.links_json.clear();
    scratch.links_json.push('[');
    // Attributes, events and links past their limits make the span rejected: they are
    // checked as prost would check them and counted, one at a time, never collected.
    // Events and links within the limits are written as they are walked.
    while let Some((n, w)) = f.next_field().named("Span", SPAN)? {
        match n {
            1 => trace_id = bytes(w).at("Span", "trace_id")?,
            2 => span_id = bytes(w).at("Span", "span_id")?,
            3 => trace_state = text(w).at("Span", "trace_state")?,
            4 => parent = bytes(w).at("Span", "parent_span_id")?,
            5 => name = text(w).at("Span", "name")?,
            6 => kind = varint(w).at("Span", "kind")? as i32,
            7 => start = fixed64(w).at("Span", "start_time_unix_nano")?,
            8 => end = fixed64(w).at("Span", "end_time_unix_nano")?,
            9 => {
                let kv = f.message(w).and_then(key_value).at("Span", "attributes")?;
                counts.attributes += 1;
                if counts.attributes <= limits.max_attributes_per_item {
                    scratch.attrs.push(kv);
                }
            }
            10 => dropped_attrs = varint(w).at("Span", "dropped_attributes_count")? as u32,
            11 => {
                counts.events += 1;
                let keep = counts.events <= limits.max_events_per_span;
                let out = Some(&mut scratch.events_json).filter(|_| keep);
                let n = f
                    .message(w)
                    .and_then(|e| event(e, out, &mut scratch.item_attrs, limits))
                    .at("Span", "events")?;
                counts.event_attributes = counts.event_attributes.max(n);
            }
            12 => dropped_events = varint(w).at("Span", "dropped_events_count")? as u32,
            13 => {
                counts.links += 1;
                let keep = counts.links <= limits.max_links_per_span;
                let out = Some(&mut scratch.links_json).filter(|_| keep);
                let n = f
                    .message(w)
                    .and_then(|e| link(e, out, &mut scratch.item_attrs, limits))
                    .at("Span", "links")?;
                counts.link_attributes = counts.link_attributes.max(n);
            }
            14 => dropped_links = varint(w).at("Span", "dropped_links_count")? as u32,
            15 => {
                // Each `status` merges into the one before, as protobuf merges messages.
                let mut st = f.message(w).at("Span", "status")?;
                let r = (|| -> Result<(), WireError> {
                    while let Some((n, w)) = st.next_field().named("Status", STATUS)? {
                        match n {
                            2 => status_message = text(w).at("Status", "message")?,
                            3 => status_code = varint(w).at("Status", "code")? as i32,
                            _ => {}
                        }
                    }
                    Ok(())
                })();
                r.at("Span", "status")?;
            }
            16 => flags = fixed32(w).at("Span", "flags")?,
            _ => {}
        }
    }
    let problem = match block {
        Some(why) => Err(why.to_owned()),
        None => span_problem(trace_id.len(), span_id.len(), parent, counts, limits),
    };
    if let Err(e) = problem {
        out.rejected += 1;
        note_rejection(&mut out.errors, || super::common::span_rejection(name, &e));
        return Ok(());
    }
    if out.too_large.is_some() {
        // The request is refused already: the rest is only checked.
        return Ok(());
    }
    let origin = origin.get()?;
    scratch.events_json.push(']');
    scratch.links_json.push(']');
    scratch.attrs_json.clear();
    write_attributes(&mut scratch.attrs_json, &mut scratch.attrs)?;
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
        events_json: &scratch.events_json,
        dropped_events_count: dropped_events,
        links_json: &scratch.links_json,
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
    Ok(())
}

#[cfg(test)]
mod tests;
