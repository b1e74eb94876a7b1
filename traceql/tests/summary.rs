//! trace_summary_json(): Tempo's /api/search entry for a matched trace.

use serde_json::json;
use strata_traceql::{SpanData, StatusCode, TraceData, Value, evaluate, parse, trace_summary_json};

fn trace() -> TraceData {
    TraceData {
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        spans: vec![
            SpanData {
                span_id: "b7ad6b7169203331".into(),
                parent_span_id: None,
                name: "GET /".into(),
                service_name: "api".into(),
                start_ns: 1_000_000_000,
                end_ns: 1_025_000_000,
                attributes: vec![("http.method".into(), Value::Str("GET".into()))],
                ..Default::default()
            },
            SpanData {
                span_id: "00f067aa0ba902b7".into(),
                parent_span_id: Some("b7ad6b7169203331".into()),
                name: "db".into(),
                service_name: "db".into(),
                status: StatusCode::Error,
                start_ns: 1_005_000_000,
                end_ns: 1_015_000_000,
                attributes: vec![
                    ("db.system".into(), Value::Str("pg".into())),
                    ("db.rows".into(), Value::Int(42)),
                ],
                ..Default::default()
            },
        ],
    }
}

fn summary(q: &str, spss: usize) -> serde_json::Value {
    let t = trace();
    let sets = evaluate(&parse(q).expect("parses"), &t);
    assert!(!sets.is_empty(), "{q} must match");
    trace_summary_json(&t, &sets, spss)
}

#[test]
fn filter_with_select() {
    let got = summary(
        "{ status = error } | select(span.db.system, span.db.rows)",
        3,
    );
    let set = json!({
        "spans": [{
            "spanID": "00f067aa0ba902b7",
            "name": "db",
            "startTimeUnixNano": "1005000000",
            "durationNanos": "10000000",
            "attributes": [
                {"key": "status", "value": {"stringValue": "error"}},
                {"key": "db.system", "value": {"stringValue": "pg"}},
                {"key": "db.rows", "value": {"intValue": "42"}},
            ],
        }],
        "matched": 1,
    });
    assert_eq!(
        got,
        json!({
            "traceID": "0af7651916cd43dd8448eb211c80319c",
            "rootServiceName": "api",
            "rootTraceName": "GET /",
            "startTimeUnixNano": "1000000000",
            "durationMs": 25,
            "serviceStats": {
                "api": {"spanCount": 1},
                "db": {"spanCount": 1, "errorCount": 1},
            },
            "spanSet": set.clone(),
            "spanSets": [set],
        })
    );
}

#[test]
fn aggregates_and_spans_per_spanset() {
    let got = summary("{ } | count() > 1 | avg(duration) > 1ms", 1);
    assert_eq!(
        got["spanSets"],
        json!([{
            "spans": [{
                "spanID": "b7ad6b7169203331",
                "name": "GET /",
                "startTimeUnixNano": "1000000000",
                "durationNanos": "25000000",
            }],
            "matched": 2,
            "attributes": [
                {"key": "count()", "value": {"intValue": "2"}},
                {"key": "avg(duration)", "value": {"stringValue": "17.5ms"}},
            ],
        }])
    );
}

#[test]
fn one_spanset_per_group() {
    let got = summary("{ } | by(resource.service.name)", 3);
    let sets = got["spanSets"].as_array().expect("array");
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[1]["attributes"],
        json!([{"key": "by(resource.service.name)", "value": {"stringValue": "db"}}])
    );
    assert_eq!(got["spanSet"], sets[0]);
}

#[test]
fn missing_root() {
    let mut t = trace();
    t.spans.remove(0);
    let sets = evaluate(&parse("{ }").expect("parses"), &t);
    let got = trace_summary_json(&t, &sets, 3);
    assert_eq!(got["rootServiceName"], "<root span not yet received>");
    assert!(got.get("rootTraceName").is_none());
    assert_eq!(got["durationMs"], 10);
}
