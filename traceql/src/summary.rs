//! Tempo `/api/search` result entries.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::data::TraceData;
use crate::eval::Spanset;
use crate::value::StatusCode;

/// Tempo's placeholder when a trace's root span is missing.
pub const ROOT_SPAN_NOT_YET_RECEIVED: &str = "<root span not yet received>";

/// One entry of Tempo's `/api/search` `traces` array for a matched trace: `traceID`,
/// `rootServiceName`, `rootTraceName`, `startTimeUnixNano` (string), `durationMs`,
/// `serviceStats`, `spanSet` (the first spanset) and `spanSets`. Each spanset lists at
/// most `spss` spans (`spanID`, `name`, `startTimeUnixNano`, `durationNanos`,
/// `attributes`), `matched` (its full span count) and its `attributes` (aggregates).
pub fn trace_summary_json(trace: &TraceData, spansets: &[Spanset], spss: usize) -> Json {
    let root = trace.spans.iter().find(|s| s.parent_id().is_none());
    let start = trace.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = trace.spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
    let duration_ms = (end.saturating_sub(start).max(0)) / 1_000_000;

    let mut stats: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for s in &trace.spans {
        let e = stats.entry(s.service_name.as_str()).or_default();
        e.0 += 1;
        if s.status == StatusCode::Error {
            e.1 += 1;
        }
    }
    let service_stats: Map<String, Json> = stats
        .into_iter()
        .map(|(svc, (count, errors))| {
            let mut m = Map::new();
            m.insert("spanCount".into(), json!(count));
            if errors > 0 {
                m.insert("errorCount".into(), json!(errors));
            }
            (svc.to_string(), Json::Object(m))
        })
        .collect();

    let sets: Vec<Json> = spansets
        .iter()
        .map(|ss| spanset_json(trace, ss, spss))
        .collect();

    let mut out = Map::new();
    out.insert("traceID".into(), json!(trace.trace_id));
    match root {
        Some(r) => {
            out.insert("rootServiceName".into(), json!(r.service_name));
            out.insert("rootTraceName".into(), json!(r.name));
        }
        None => {
            out.insert("rootServiceName".into(), json!(ROOT_SPAN_NOT_YET_RECEIVED));
        }
    }
    out.insert("startTimeUnixNano".into(), json!(start.to_string()));
    out.insert("durationMs".into(), json!(duration_ms));
    out.insert("serviceStats".into(), Json::Object(service_stats));
    if let Some(first) = sets.first() {
        out.insert("spanSet".into(), first.clone());
    }
    out.insert("spanSets".into(), Json::Array(sets));
    Json::Object(out)
}

fn spanset_json(trace: &TraceData, ss: &Spanset, spss: usize) -> Json {
    let spans: Vec<Json> = ss
        .spans
        .iter()
        .enumerate()
        .take(spss)
        .filter_map(|(k, &i)| {
            let s = trace.spans.get(i)?;
            let mut m = Map::new();
            m.insert("spanID".into(), json!(s.span_id));
            m.insert("name".into(), json!(s.name));
            m.insert("startTimeUnixNano".into(), json!(s.start_ns.to_string()));
            m.insert("durationNanos".into(), json!(s.duration_ns().to_string()));
            if let Some(attrs) = ss.span_attributes.get(k).filter(|a| !a.is_empty()) {
                m.insert("attributes".into(), key_values(attrs));
            }
            Some(Json::Object(m))
        })
        .collect();
    let mut m = Map::new();
    m.insert("spans".into(), Json::Array(spans));
    m.insert("matched".into(), json!(ss.spans.len()));
    if !ss.attributes.is_empty() {
        m.insert("attributes".into(), key_values(&ss.attributes));
    }
    Json::Object(m)
}

fn key_values(attrs: &[(String, crate::value::Value)]) -> Json {
    Json::Array(
        attrs
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v.to_any_value_json() }))
            .collect(),
    )
}
