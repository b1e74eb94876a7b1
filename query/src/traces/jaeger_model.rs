//! Stored spans in Jaeger's JSON model (the one Jaeger's query service and UI, and
//! Grafana's Jaeger data source read): spans with `references` (the parent as `CHILD_OF`,
//! links as `FOLLOWS_FROM`), microsecond times, typed `tags`, `logs` from span events,
//! and one `processes` entry per distinct resource.
//!
//! OpenTelemetry fields without a Jaeger counterpart become tags the way Jaeger's own
//! OTLP translation names them: `span.kind`, `otel.status_code`, `otel.status_description`,
//! `error` (true for error status), `otel.scope.name`, `otel.scope.version`,
//! `w3c.tracestate`.

use super::attrs::{jaeger_kind, parse_attrs, status_name};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use strata_storage::model::Span;

/// A Jaeger tag from an attribute: strings, bools, int64 and float64 keep their type;
/// arrays and maps are sent as their JSON text.
pub fn tag(key: &str, v: &Value) -> Value {
    let (typ, value) = match v {
        Value::String(s) => ("string", Value::String(s.clone())),
        Value::Bool(b) => ("bool", Value::Bool(*b)),
        Value::Number(n) if n.is_i64() || n.is_u64() => ("int64", Value::Number(n.clone())),
        Value::Number(n) => ("float64", Value::Number(n.clone())),
        Value::Null => ("string", Value::String(String::new())),
        other => ("string", Value::String(other.to_string())),
    };
    json!({"key": key, "type": typ, "value": value})
}

fn tags_of(map: &Map<String, Value>, skip: &str) -> Vec<Value> {
    map.iter()
        .filter(|(k, _)| k.as_str() != skip)
        .map(|(k, v)| tag(k, v))
        .collect()
}

/// Assigns Jaeger process ids (`p1`, `p2`, ...) to distinct resources as spans are seen.
#[derive(Default)]
pub struct Processes {
    ids: HashMap<(String, String), String>,
    order: Vec<(String, Value)>,
}

impl Processes {
    fn id_for(&mut self, span: &Span) -> String {
        let key = (
            span.origin.service_name.clone(),
            span.origin.resource_attributes.clone(),
        );
        if let Some(id) = self.ids.get(&key) {
            return id.clone();
        }
        let id = format!("p{}", self.order.len() + 1);
        let tags = tags_of(
            &parse_attrs(&span.origin.resource_attributes),
            "service.name",
        );
        self.order.push((
            id.clone(),
            json!({"serviceName": span.origin.service_name, "tags": tags}),
        ));
        self.ids.insert(key, id.clone());
        id
    }

    /// The `processes` object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.order.iter().cloned().collect())
    }
}

fn micros(ns: i64) -> i64 {
    ns.div_euclid(1000)
}

/// One span in Jaeger's model; its process is registered in `processes`.
pub fn span_json(span: &Span, processes: &mut Processes) -> Value {
    let mut references = Vec::new();
    if !span.parent_span_id.is_empty() {
        references.push(json!({
            "refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id
        }));
    }
    for l in &span.links {
        references.push(json!({
            "refType": "FOLLOWS_FROM", "traceID": l.trace_id, "spanID": l.span_id
        }));
    }
    let attrs = parse_attrs(&span.attributes);
    let mut tags = tags_of(&attrs, "");
    let kind = jaeger_kind(span.kind);
    if !kind.is_empty() {
        tags.push(tag("span.kind", &Value::from(kind)));
    }
    if span.status_code != 0 {
        tags.push(tag(
            "otel.status_code",
            &Value::from(status_name(span.status_code)),
        ));
    }
    if span.status_code == 2 {
        tags.push(tag("error", &Value::Bool(true)));
    }
    if !span.status_message.is_empty() {
        tags.push(tag(
            "otel.status_description",
            &Value::from(span.status_message.as_str()),
        ));
    }
    if !span.origin.scope_name.is_empty() {
        tags.push(tag(
            "otel.scope.name",
            &Value::from(span.origin.scope_name.as_str()),
        ));
    }
    if !span.origin.scope_version.is_empty() {
        tags.push(tag(
            "otel.scope.version",
            &Value::from(span.origin.scope_version.as_str()),
        ));
    }
    if !span.trace_state.is_empty() {
        tags.push(tag(
            "w3c.tracestate",
            &Value::from(span.trace_state.as_str()),
        ));
    }
    let logs: Vec<Value> = span
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![tag("event", &Value::from(e.name.as_str()))];
            if let Value::Object(m) = &e.attributes {
                fields.extend(tags_of(m, ""));
            }
            json!({"timestamp": micros(e.time_ns), "fields": fields})
        })
        .collect();
    json!({
        "traceID": span.trace_id,
        "spanID": span.span_id,
        "flags": span.flags,
        "operationName": span.name,
        "references": references,
        "startTime": micros(span.start_time_ns),
        "duration": micros(span.end_time_ns.saturating_sub(span.start_time_ns)),
        "tags": tags,
        "logs": logs,
        "processID": processes.id_for(span),
        "warnings": null,
    })
}

/// A whole trace as a Jaeger `data` element.
pub fn trace_json(trace_id: &str, spans: &[Span]) -> Value {
    let mut processes = Processes::default();
    let spans: Vec<Value> = spans.iter().map(|s| span_json(s, &mut processes)).collect();
    json!({
        "traceID": trace_id,
        "spans": spans,
        "processes": processes.to_json(),
        "warnings": null,
    })
}

/// Jaeger's envelope around `data`.
pub fn envelope(data: Value, total: usize) -> Value {
    json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null})
}

/// Jaeger's error envelope.
pub fn error_envelope(code: u16, msg: &str) -> Value {
    json!({"data": null, "total": 0, "limit": 0, "offset": 0,
           "errors": [{"code": code, "msg": msg}]})
}
