//! Stored spans back in OTLP form (`ResourceSpans` grouped by resource and scope), for
//! Tempo's trace-by-id answers: OTLP/JSON through `opentelemetry-proto`'s serde support
//! (hex ids, camelCase, 64-bit times as strings) or protobuf through prost.

use serde_json::Value as Json;
use std::collections::HashMap;
use strata_proto::opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use strata_proto::opentelemetry_proto::tonic::resource::v1::Resource;
use strata_proto::opentelemetry_proto::tonic::trace::v1 as otlp;
use strata_storage::model::Span;

fn any_value(v: &Json) -> AnyValue {
    let value = match v {
        Json::Null => None,
        Json::Bool(b) => Some(Value::BoolValue(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Some(Value::IntValue(i)),
            None => Some(Value::DoubleValue(n.as_f64().unwrap_or(0.0))),
        },
        Json::String(s) => Some(Value::StringValue(s.clone())),
        Json::Array(a) => Some(Value::ArrayValue(ArrayValue {
            values: a.iter().map(any_value).collect(),
        })),
        Json::Object(m) => Some(Value::KvlistValue(KeyValueList {
            values: m.iter().map(|(k, v)| key_value(k, v)).collect(),
        })),
    };
    AnyValue { value }
}

fn key_value(k: &str, v: &Json) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: Some(any_value(v)),
        ..KeyValue::default()
    }
}

/// Stored attributes (a JSON object, as text or value) as OTLP key-values.
pub fn key_values(attrs: &Json) -> Vec<KeyValue> {
    match attrs {
        Json::Object(m) => m.iter().map(|(k, v)| key_value(k, v)).collect(),
        _ => Vec::new(),
    }
}

fn key_values_text(text: &str) -> Vec<KeyValue> {
    serde_json::from_str::<Json>(text)
        .map(|v| key_values(&v))
        .unwrap_or_default()
}

fn id_bytes(hex_id: &str) -> Vec<u8> {
    hex::decode(hex_id).unwrap_or_default()
}

fn unsigned(ns: i64) -> u64 {
    u64::try_from(ns).unwrap_or(0)
}

/// One stored span as an OTLP span.
pub fn otlp_span(s: &Span) -> otlp::Span {
    otlp::Span {
        trace_id: id_bytes(&s.trace_id),
        span_id: id_bytes(&s.span_id),
        trace_state: s.trace_state.clone(),
        parent_span_id: id_bytes(&s.parent_span_id),
        flags: s.flags,
        name: s.name.clone(),
        kind: s.kind,
        start_time_unix_nano: unsigned(s.start_time_ns),
        end_time_unix_nano: unsigned(s.end_time_ns),
        attributes: key_values_text(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| otlp::span::Event {
                time_unix_nano: unsigned(e.time_ns),
                name: e.name.clone(),
                attributes: key_values(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| otlp::span::Link {
                trace_id: id_bytes(&l.trace_id),
                span_id: id_bytes(&l.span_id),
                trace_state: l.trace_state.clone(),
                attributes: key_values(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: (s.status_code != 0 || !s.status_message.is_empty()).then(|| otlp::Status {
            message: s.status_message.clone(),
            code: s.status_code,
        }),
    }
}

/// Spans grouped into `ResourceSpans` by resource, then by scope, in first-seen order.
pub fn resource_spans<'a>(spans: impl IntoIterator<Item = &'a Span>) -> Vec<otlp::ResourceSpans> {
    let mut out: Vec<otlp::ResourceSpans> = Vec::new();
    let mut by_resource: HashMap<(&str, &str, u32, &str), usize> = HashMap::new();
    let mut by_scope: HashMap<(usize, &str, &str, &str, u32, &str), usize> = HashMap::new();
    for s in spans {
        let o = &s.origin;
        let rkey = (
            o.resource_attributes.as_str(),
            o.service_name.as_str(),
            o.resource_dropped_attributes_count,
            o.resource_schema_url.as_str(),
        );
        let r = *by_resource.entry(rkey).or_insert_with(|| {
            let mut attributes = key_values_text(&o.resource_attributes);
            if !attributes.iter().any(|kv| kv.key == "service.name") {
                attributes.insert(
                    0,
                    key_value("service.name", &Json::from(o.service_name.as_str())),
                );
            }
            out.push(otlp::ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    dropped_attributes_count: o.resource_dropped_attributes_count,
                    entity_refs: Vec::new(),
                }),
                scope_spans: Vec::new(),
                schema_url: o.resource_schema_url.clone(),
            });
            out.len() - 1
        });
        let skey = (
            r,
            o.scope_name.as_str(),
            o.scope_version.as_str(),
            o.scope_attributes.as_str(),
            o.scope_dropped_attributes_count,
            o.scope_schema_url.as_str(),
        );
        let rs = &mut out[r];
        let sc = *by_scope.entry(skey).or_insert_with(|| {
            rs.scope_spans.push(otlp::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: o.scope_name.clone(),
                    version: o.scope_version.clone(),
                    attributes: key_values_text(&o.scope_attributes),
                    dropped_attributes_count: o.scope_dropped_attributes_count,
                }),
                spans: Vec::new(),
                schema_url: o.scope_schema_url.clone(),
            });
            rs.scope_spans.len() - 1
        });
        rs.scope_spans[sc].spans.push(otlp_span(s));
    }
    out
}
