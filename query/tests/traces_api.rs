//! Integration tests of the trace APIs (`strata_query::traces::router`) over a real
//! `Storage` in a tempdir, with spans both flushed to Parquet and still in memtables:
//! Jaeger's and Tempo's trace by id (JSON and protobuf), Jaeger search, services,
//! operations and dependencies, the logs of a trace, limits and bad input, and a trace of
//! 100,000 spans.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use prost::Message;
use serde_json::{Value, json};
use strata_proto::opentelemetry_proto::tonic::trace::v1::TracesData;
use strata_query::traces::{TraceApiConfig, router};
use strata_storage::model::{LogRecord, Origin, Span, SpanEvent, SpanLink};
use strata_storage::{Storage, StorageConfig, TenantId};
use tower::ServiceExt;

const TRACE_A: &str = "0af7651916cd43dd8448eb211c80319c";
const TRACE_B: &str = "1bf7651916cd43dd8448eb211c80319d";
const OTHER_TRACE: &str = "2cf7651916cd43dd8448eb211c80319e";
/// 2023-11-14T22:13:20Z in ns: all test spans start shortly after.
const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;

fn origin(service: &str) -> Origin {
    Origin {
        service_name: service.into(),
        resource_attributes: json!({"service.name": service, "host.name": "h1"}).to_string(),
        scope_name: "test-scope".into(),
        scope_version: "1.2".into(),
        scope_attributes: "{}".into(),
        ..Origin::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: &str,
    service: &str,
    name: &str,
    kind: i32,
    start_ms: i64,
    dur_ms: i64,
    attrs: Value,
) -> Span {
    Span {
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        flags: 1,
        name: name.into(),
        kind,
        start_time_ns: T0 + start_ms * MS,
        end_time_ns: T0 + (start_ms + dur_ms) * MS,
        attributes: attrs.to_string(),
        origin: origin(service),
        ..Span::default()
    }
}

/// Trace A: frontend (server) -> frontend client call -> cart (server, error) -> cart
/// internal with an event and a link. Trace B: one checkout span.
fn trace_a() -> Vec<Span> {
    let root = span(
        TRACE_A,
        "00f067aa0ba902b7",
        "",
        "frontend",
        "GET /cart",
        2,
        0,
        900,
        json!({"http.method": "GET", "http.status_code": 500, "ratio": 0.5, "cached": false}),
    );
    let call = span(
        TRACE_A,
        "10f067aa0ba902b7",
        "00f067aa0ba902b7",
        "frontend",
        "HTTP GET cart",
        3,
        10,
        800,
        json!({"peer.service": "cart"}),
    );
    let mut cart = span(
        TRACE_A,
        "20f067aa0ba902b7",
        "10f067aa0ba902b7",
        "cart",
        "GetCart",
        2,
        20,
        700,
        json!({"rpc.method": "GetCart", "tags": ["a", "b"]}),
    );
    cart.status_code = 2;
    cart.status_message = "cart unavailable".into();
    let mut inner = span(
        TRACE_A,
        "30f067aa0ba902b7",
        "20f067aa0ba902b7",
        "cart",
        "load",
        1,
        30,
        50,
        json!({}),
    );
    inner.events = vec![SpanEvent {
        time_ns: T0 + 40 * MS,
        name: "cache miss".into(),
        attributes: json!({"key": "user:1"}),
        dropped_attributes_count: 0,
    }];
    inner.links = vec![SpanLink {
        trace_id: OTHER_TRACE.into(),
        span_id: "40f067aa0ba902b7".into(),
        trace_state: String::new(),
        attributes: json!({}),
        dropped_attributes_count: 0,
        flags: 0,
    }];
    vec![root, call, cart, inner]
}

fn trace_b() -> Vec<Span> {
    vec![span(
        TRACE_B,
        "50f067aa0ba902b7",
        "",
        "checkout",
        "PlaceOrder",
        2,
        2000,
        30,
        json!({"http.method": "POST"}),
    )]
}

struct Env {
    _dir: tempfile::TempDir,
    storage: Storage,
    app: Router,
}

fn open(config: TraceApiConfig) -> (tempfile::TempDir, Storage, Router) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .unwrap();
    let app = router(storage.clone(), config);
    (dir, storage, app)
}

/// Trace A's first two spans and trace B in Parquet, the rest of A in memtables.
async fn env_with(config: TraceApiConfig) -> Env {
    let (dir, storage, app) = open(config);
    let t = TenantId::default_tenant();
    let a = trace_a();
    let mut first: Vec<Span> = a[..2].to_vec();
    first.extend(trace_b());
    storage.write_spans(&t, first).await.unwrap();
    storage.flush().await.unwrap();
    storage.write_spans(&t, a[2..].to_vec()).await.unwrap();
    Env {
        _dir: dir,
        storage,
        app,
    }
}

async fn env() -> Env {
    env_with(TraceApiConfig {
        max_search_range: std::time::Duration::from_secs(3650 * 86_400),
        ..TraceApiConfig::default()
    })
    .await
}

async fn get_raw(app: &Router, uri: &str, accept: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::get(uri);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, ct, body.to_vec())
}

async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = get_raw(app, uri, None).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, v)
}

fn tag<'a>(tags: &'a Value, key: &str) -> Option<&'a Value> {
    tags.as_array()?.iter().find(|t| t["key"] == key)
}

fn jaeger_span<'a>(trace: &'a Value, id: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["spanID"] == id)
        .unwrap_or_else(|| panic!("span {id} missing"))
}

#[tokio::test]
async fn jaeger_trace_by_id_across_files_and_memtables() {
    let e = env().await;
    let (status, v) = get_json(&e.app, &format!("/jaeger/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["errors"], Value::Null);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    let trace = &data[0];
    assert_eq!(trace["traceID"], TRACE_A);
    assert_eq!(trace["spans"].as_array().unwrap().len(), 4);

    let root = jaeger_span(trace, "00f067aa0ba902b7");
    assert_eq!(root["operationName"], "GET /cart");
    assert_eq!(root["references"], json!([]));
    assert_eq!(root["startTime"], T0 / 1000);
    assert_eq!(root["duration"], 900_000);
    assert_eq!(
        tag(&root["tags"], "http.method").unwrap(),
        &json!({"key": "http.method", "type": "string", "value": "GET"})
    );
    assert_eq!(
        tag(&root["tags"], "http.status_code").unwrap(),
        &json!({"key": "http.status_code", "type": "int64", "value": 500})
    );
    assert_eq!(tag(&root["tags"], "ratio").unwrap()["type"], "float64");
    assert_eq!(tag(&root["tags"], "cached").unwrap()["type"], "bool");
    assert_eq!(tag(&root["tags"], "span.kind").unwrap()["value"], "server");
    assert_eq!(
        tag(&root["tags"], "otel.scope.name").unwrap()["value"],
        "test-scope"
    );

    let cart = jaeger_span(trace, "20f067aa0ba902b7");
    assert_eq!(
        cart["references"],
        json!([{"refType": "CHILD_OF", "traceID": TRACE_A, "spanID": "10f067aa0ba902b7"}])
    );
    assert_eq!(tag(&cart["tags"], "error").unwrap()["value"], true);
    assert_eq!(
        tag(&cart["tags"], "otel.status_code").unwrap()["value"],
        "ERROR"
    );
    assert_eq!(
        tag(&cart["tags"], "otel.status_description").unwrap()["value"],
        "cart unavailable"
    );

    let inner = jaeger_span(trace, "30f067aa0ba902b7");
    let refs = inner["references"].as_array().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(
        refs[1],
        json!({"refType": "FOLLOWS_FROM", "traceID": OTHER_TRACE, "spanID": "40f067aa0ba902b7"})
    );
    let logs = inner["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["timestamp"], (T0 + 40 * MS) / 1000);
    assert_eq!(
        tag(&logs[0]["fields"], "event").unwrap()["value"],
        "cache miss"
    );
    assert_eq!(tag(&logs[0]["fields"], "key").unwrap()["value"], "user:1");

    // Two processes, one per service, with the resource's other attributes as tags.
    let procs = trace["processes"].as_object().unwrap();
    assert_eq!(procs.len(), 2);
    let p = &procs[root["processID"].as_str().unwrap()];
    assert_eq!(p["serviceName"], "frontend");
    assert_eq!(
        p["tags"],
        json!([{"key": "host.name", "type": "string", "value": "h1"}])
    );
    assert_eq!(
        procs[cart["processID"].as_str().unwrap()]["serviceName"],
        "cart"
    );
}

#[tokio::test]
async fn trace_by_id_errors() {
    let e = env().await;
    let (status, v) = get_json(
        &e.app,
        "/jaeger/api/traces/ffffffffffffffffffffffffffffffff",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["data"], Value::Null);
    assert_eq!(v["errors"][0]["code"], 404);
    let (status, v) = get_json(&e.app, "/jaeger/api/traces/not-hex").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("invalid trace id")
    );
    let (status, _, body) =
        get_raw(&e.app, "/api/traces/ffffffffffffffffffffffffffffffff", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("not found"));
    let (status, _, _) = get_raw(&e.app, "/api/v2/traces/zz", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Leading zeros may be dropped by clients: a short id is padded.
    let short = TRACE_A.trim_start_matches('0');
    let (status, v) = get_json(&e.app, &format!("/jaeger/api/traces/{short}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 4);
    // Another tenant sees nothing.
    let resp = e
        .app
        .clone()
        .oneshot(
            Request::get(format!("/api/traces/{TRACE_A}"))
                .header("X-Scope-OrgID", "other")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

fn otlp_spans(
    data: &TracesData,
) -> Vec<(
    String,
    &strata_proto::opentelemetry_proto::tonic::trace::v1::Span,
)> {
    let mut out = Vec::new();
    for rs in &data.resource_spans {
        let svc = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            assert_eq!(ss.scope.as_ref().unwrap().name, "test-scope");
            for s in &ss.spans {
                out.push((svc.clone(), s));
            }
        }
    }
    out
}

#[tokio::test]
async fn tempo_trace_by_id_json_and_protobuf() {
    let e = env().await;
    // v1 JSON: {"batches": [ResourceSpans]}
    let (status, v) = get_json(&e.app, &format!("/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK);
    let batches = v["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2, "one ResourceSpans per service: {v}");
    let spans: Vec<&Value> = batches
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().unwrap())
        .flat_map(|s| s["spans"].as_array().unwrap())
        .collect();
    assert_eq!(spans.len(), 4);
    let cart = spans
        .iter()
        .find(|s| s["spanId"] == "20f067aa0ba902b7")
        .unwrap();
    assert_eq!(cart["traceId"], TRACE_A);
    assert_eq!(cart["parentSpanId"], "10f067aa0ba902b7");
    assert_eq!(cart["status"]["code"], 2);
    assert_eq!(cart["status"]["message"], "cart unavailable");
    assert_eq!(cart["kind"], 2);
    assert_eq!(cart["startTimeUnixNano"], (T0 + 20 * MS).to_string());
    let arr = cart["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "tags")
        .unwrap();
    assert_eq!(arr["value"]["arrayValue"]["values"][0]["stringValue"], "a");

    // v2 JSON
    let (status, v) = get_json(&e.app, &format!("/api/v2/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "COMPLETE");
    assert_eq!(v["trace"]["resourceSpans"].as_array().unwrap().len(), 2);

    // v1 protobuf: tempopb.Trace == TracesData on the wire.
    let (status, ct, body) = get_raw(
        &e.app,
        &format!("/api/traces/{TRACE_A}"),
        Some("application/protobuf"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "application/protobuf");
    let data = TracesData::decode(body.as_slice()).unwrap();
    let spans = otlp_spans(&data);
    assert_eq!(spans.len(), 4);
    let inner = spans
        .iter()
        .find(|(_, s)| hex::encode(&s.span_id) == "30f067aa0ba902b7")
        .unwrap();
    assert!(inner.0.contains("cart"));
    assert_eq!(inner.1.events[0].name, "cache miss");
    assert_eq!(hex::encode(&inner.1.links[0].trace_id), OTHER_TRACE);
    assert_eq!(hex::encode(&inner.1.trace_id), TRACE_A);

    // v2 protobuf: TraceByIDResponse { trace = 1: Trace { resourceSpans = 1 } }
    let (status, _, body) = get_raw(
        &e.app,
        &format!("/api/v2/traces/{TRACE_A}"),
        Some("application/protobuf"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut buf = body.as_slice();
    let (tag, wire) = prost::encoding::decode_key(&mut buf).unwrap();
    assert_eq!((tag, wire), (1, prost::encoding::WireType::LengthDelimited));
    let len = prost::encoding::decode_varint(&mut buf).unwrap() as usize;
    assert_eq!(len, buf.len());
    let data = TracesData::decode(buf).unwrap();
    assert_eq!(otlp_spans(&data).len(), 4);
}

#[tokio::test]
async fn jaeger_services_operations_and_search() {
    let e = env().await;
    let (_, v) = get_json(&e.app, "/jaeger/api/services").await;
    assert_eq!(v["data"], json!(["cart", "checkout", "frontend"]));
    assert_eq!(v["total"], 3);
    let (_, v) = get_json(&e.app, "/jaeger/api/services/frontend/operations").await;
    assert_eq!(v["data"], json!(["GET /cart", "HTTP GET cart"]));
    let (_, v) = get_json(
        &e.app,
        "/jaeger/api/operations?service=frontend&spanKind=client",
    )
    .await;
    assert_eq!(
        v["data"],
        json!([{"name": "HTTP GET cart", "spanKind": "client"}])
    );
    let (status, v) = get_json(
        &e.app,
        "/jaeger/api/operations?service=frontend&spanKind=bogus",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["errors"][0]["msg"].as_str().unwrap().contains("spanKind"));

    let start = T0 / 1000 - 1_000_000;
    let end = T0 / 1000 + 10_000_000;
    let base = format!("/jaeger/api/traces?start={start}&end={end}");
    // By service: both traces of frontend? only A has frontend.
    let (status, v) = get_json(&e.app, &format!("{base}&service=frontend")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![TRACE_A]);
    assert_eq!(
        v["data"][0]["spans"].as_array().unwrap().len(),
        4,
        "whole trace"
    );
    // Tags as JSON and logfmt, error tag, duration bounds.
    for (q, want) in [
        (
            "&service=cart&tags=%7B%22error%22%3A%22true%22%7D",
            vec![TRACE_A],
        ),
        ("&service=cart&tags=rpc.method%3DGetCart", vec![TRACE_A]),
        ("&service=cart&tags=rpc.method%3DOther", vec![]),
        (
            "&service=frontend&tags=http.status_code%3D500",
            vec![TRACE_A],
        ),
        ("&service=frontend&tags=host.name%3Dh1", vec![TRACE_A]),
        (
            "&service=frontend&operation=GET%20%2Fcart&minDuration=850ms",
            vec![TRACE_A],
        ),
        (
            "&service=frontend&operation=GET%20%2Fcart&minDuration=1s",
            vec![],
        ),
        ("&service=frontend&maxDuration=100ms", vec![]),
        ("&service=checkout&maxDuration=100ms", vec![TRACE_B]),
        ("&service=cart&tag=error:true", vec![TRACE_A]),
    ] {
        let (status, v) = get_json(&e.app, &format!("{base}{q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap())
            .collect();
        assert_eq!(ids, want, "{q}");
    }
    // Outside the time range: nothing.
    let (_, v) = get_json(
        &e.app,
        &format!(
            "/jaeger/api/traces?service=frontend&start={}&end={}",
            end + 1,
            end + 2
        ),
    )
    .await;
    assert_eq!(v["data"], json!([]));
    // Bad input.
    for (q, needle) in [
        ("", "service"),
        ("&service=x&minDuration=abc", "minDuration"),
        ("&service=x&tags=%7Bbad", "tags"),
        ("&service=x&limit=5000", "max_result_traces"),
        ("&service=x&limit=x", "limit"),
        ("&service=x&minDuration=2s&maxDuration=1s", "maxDuration"),
    ] {
        let (status, v) = get_json(&e.app, &format!("{base}{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {v}");
        let msg = v["errors"][0]["msg"].as_str().unwrap();
        assert!(msg.contains(needle), "{q}: {msg}");
    }
    // traceID lookups through the search endpoint.
    let (_, v) = get_json(
        &e.app,
        &format!("/jaeger/api/traces?traceID={TRACE_A}&traceID={TRACE_B}"),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn jaeger_dependencies() {
    let e = env().await;
    let end_ms = T0 / MS + 10_000;
    let (status, v) = get_json(
        &e.app,
        &format!("/jaeger/api/dependencies?endTs={end_ms}&lookback=60000"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        json!([{"parent": "frontend", "child": "cart", "callCount": 1}])
    );
    let (status, _) = get_json(&e.app, "/jaeger/api/dependencies?endTs=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn limits_answer_clear_errors() {
    let e = env_with(TraceApiConfig {
        max_spans_scanned: 2,
        max_search_range: std::time::Duration::from_secs(3600),
        ..TraceApiConfig::default()
    })
    .await;
    let start = T0 / 1000;
    let (status, v) = get_json(
        &e.app,
        &format!(
            "/jaeger/api/traces?service=cart&start={start}&end={}",
            start + 2 * 3_600_000_000
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("max_search_range")
    );
    let (status, v) = get_json(
        &e.app,
        &format!(
            "/jaeger/api/traces?service=cart&start={start}&end={}",
            start + 60_000_000
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("max_spans_scanned")
    );
    // A whole trace larger than the budget is refused the same way.
    let (status, v) = get_json(&e.app, &format!("/jaeger/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[tokio::test]
async fn logs_of_a_trace() {
    let e = env().await;
    let t = TenantId::default_tenant();
    let log = |trace: &str, span: &str, body: &str, ms: i64| LogRecord {
        timestamp_ns: T0 + ms * MS,
        observed_timestamp_ns: T0 + ms * MS,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: body.into(),
        body_type: "string".into(),
        attributes: json!({"user": "u1"}).to_string(),
        trace_id: trace.into(),
        span_id: span.into(),
        origin: origin("cart"),
        ..LogRecord::default()
    };
    e.storage
        .write_logs(
            &t,
            vec![
                log(TRACE_A, "20f067aa0ba902b7", "cart failed", 25),
                log(TRACE_B, "50f067aa0ba902b7", "order placed", 2001),
                log(TRACE_A, "30f067aa0ba902b7", "cache miss", 35),
            ],
        )
        .await
        .unwrap();
    let start = T0 / 1_000_000_000 - 10;
    let (status, v) = get_json(
        &e.app,
        &format!(
            "/api/traces/{TRACE_A}/logs?start={start}&end={}",
            start + 100
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 2);
    assert_eq!(v["logs"][0]["body"], "cart failed");
    assert_eq!(v["logs"][0]["spanID"], "20f067aa0ba902b7");
    assert_eq!(v["logs"][0]["severityText"], "ERROR");
    assert_eq!(v["logs"][0]["timestamp"], (T0 + 25 * MS).to_string());
    assert_eq!(v["logs"][0]["attributes"], json!({"user": "u1"}));
    assert_eq!(v["logs"][1]["body"], "cache miss");
    let (status, _) = get_json(&e.app, "/api/traces/xyz/logs").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_trace_of_100k_spans_comes_back_whole() {
    let (_dir, storage, app) = open(TraceApiConfig::default());
    let t = TenantId::default_tenant();
    let big = "3df7651916cd43dd8448eb211c80319f";
    const N: usize = 100_000;
    for chunk in 0..10 {
        let spans: Vec<Span> = (0..N / 10)
            .map(|i| {
                let n = chunk * (N / 10) + i;
                span(
                    big,
                    &format!("{:016x}", n + 1),
                    if n == 0 { "" } else { "0000000000000001" },
                    &format!("svc{}", n % 7),
                    "work",
                    1,
                    n as i64,
                    1,
                    json!({"i": n, "http.url": "https://example.com/some/long/path"}),
                )
            })
            .collect();
        storage.write_spans(&t, spans).await.unwrap();
        if chunk == 6 {
            storage.flush().await.unwrap();
        }
    }
    // Some noise in other traces.
    storage.write_spans(&t, trace_a()).await.unwrap();
    let started = std::time::Instant::now();
    let (status, v) = get_json(&app, &format!("/jaeger/api/traces/{big}")).await;
    assert_eq!(status, StatusCode::OK);
    let spans = v["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), N);
    let mut ids: Vec<&str> = spans
        .iter()
        .map(|s| s["spanID"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N);
    assert_eq!(v["data"][0]["processes"].as_object().unwrap().len(), 7);
    let (status, _, body) = get_raw(
        &app,
        &format!("/api/traces/{big}"),
        Some("application/protobuf"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let data = TracesData::decode(body.as_slice()).unwrap();
    let n: usize = data
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(n, N);
    eprintln!("100k-span trace fetched twice in {:?}", started.elapsed());
}

async fn tempo_search(app: &Router, q: &str, extra: &str) -> (StatusCode, Value) {
    let start = T0 / 1_000_000_000 - 60;
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    get_json(
        app,
        &format!(
            "/api/search?q={enc}&start={start}&end={}{extra}",
            start + 3600
        ),
    )
    .await
}

fn trace_ids(v: &Value) -> Vec<&str> {
    v["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn tempo_traceql_search() {
    let e = env().await;
    let (status, v) = tempo_search(
        &e.app,
        r#"{ resource.service.name = "cart" && status = error }"#,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(trace_ids(&v), vec![TRACE_A]);
    let t = &v["traces"][0];
    assert_eq!(t["rootServiceName"], "frontend");
    assert_eq!(t["rootTraceName"], "GET /cart");
    assert_eq!(t["startTimeUnixNano"], T0.to_string());
    assert_eq!(t["durationMs"], 900);
    assert_eq!(t["spanSets"][0]["spans"][0]["spanID"], "20f067aa0ba902b7");
    assert_eq!(v["metrics"]["inspectedTraces"], 1);
    for (q, want) in [
        (
            r#"{ span.http.method = "GET" } >> { span.rpc.method = "GetCart" }"#,
            vec![TRACE_A],
        ),
        (r#"{ .http.method = "POST" }"#, vec![TRACE_B]),
        (r#"{ duration > 850ms }"#, vec![TRACE_A]),
        (r#"{ duration > 2s }"#, vec![]),
        (
            r#"{ resource.host.name = "h1" && kind = server }"#,
            vec![TRACE_B, TRACE_A],
        ),
        (r#"{ event:name = "cache miss" }"#, vec![TRACE_A]),
        (r#"{ span.tags = "b" }"#, vec![TRACE_A]),
        ("{}", vec![TRACE_B, TRACE_A]),
    ] {
        let (status, v) = tempo_search(&e.app, q, "").await;
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
        assert_eq!(trace_ids(&v), want, "{q}");
    }
    let (_, v) = tempo_search(&e.app, "{}", "&limit=1").await;
    assert_eq!(trace_ids(&v), vec![TRACE_B]);
    let (_, v) = tempo_search(&e.app, "{}", "&minDuration=100ms").await;
    assert_eq!(trace_ids(&v), vec![TRACE_A]);
    // Legacy logfmt tags.
    let (status, v) = get_json(
        &e.app,
        &format!(
            "/api/search?tags=service.name%3Dcheckout&start={}&end={}",
            T0 / 1_000_000_000 - 60,
            T0 / 1_000_000_000 + 3600
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(trace_ids(&v), vec![TRACE_B]);
    // A syntax error names its position.
    let (status, v) = tempo_search(&e.app, "{ .a = }", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v.as_str().unwrap().contains("line 1, col"), "{v}");
}

#[tokio::test]
async fn tempo_tags_and_values() {
    let e = env().await;
    let range = format!(
        "start={}&end={}",
        T0 / 1_000_000_000 - 60,
        T0 / 1_000_000_000 + 3600
    );
    let (_, v) = get_json(&e.app, &format!("/api/search/tags?{range}")).await;
    let names: Vec<&str> = v["tagNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for k in ["http.method", "rpc.method", "service.name", "host.name"] {
        assert!(names.contains(&k), "{k}: {names:?}");
    }
    let (_, v) = get_json(
        &e.app,
        &format!("/api/v2/search/tags?scope=resource&{range}"),
    )
    .await;
    assert_eq!(
        v["scopes"],
        json!([{"name": "resource", "tags": ["host.name", "service.name"]}])
    );
    let (_, v) = get_json(
        &e.app,
        &format!("/api/search/tag/service.name/values?{range}"),
    )
    .await;
    assert_eq!(v["tagValues"], json!(["cart", "checkout", "frontend"]));
    let (_, v) = get_json(
        &e.app,
        &format!("/api/v2/search/tag/span.http.status_code/values?{range}"),
    )
    .await;
    assert_eq!(v["tagValues"], json!([{"type": "int", "value": "500"}]));
    let (_, v) = get_json(
        &e.app,
        &format!("/api/v2/search/tag/rootServiceName/values?{range}"),
    )
    .await;
    assert_eq!(
        v["tagValues"],
        json!([{"type": "string", "value": "checkout"}, {"type": "string", "value": "frontend"}])
    );
    let (_, v) = get_json(&e.app, &format!("/api/v2/search/tag/status/values?{range}")).await;
    assert_eq!(v["tagValues"].as_array().unwrap().len(), 3);
    let (status, _) = get_json(&e.app, "/api/v2/search/tags?scope=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// 120 one-span traces of service `shop` flushed into one file, where `http.route`,
/// `http.status_code` and `n` get dedicated columns; a few spans carry a key with another
/// type or only in their resource. Searches, trace by id and SQL give what was written.
#[tokio::test]
async fn dedicated_attribute_columns_answer_like_json() {
    let (_dir, storage, app) = open(TraceApiConfig {
        max_search_range: std::time::Duration::from_secs(3650 * 86_400),
        ..TraceApiConfig::default()
    });
    let routes = ["/a", "/b", "/checkout", "/d"];
    let mut spans = Vec::new();
    for i in 0..120i64 {
        let trace = format!("{:032x}", 0xabc000 + i);
        let mut attrs = json!({
            "http.route": routes[(i % 4) as usize],
            "http.status_code": if i % 10 == 9 { 500 } else { 200 },
            "n": i,
        });
        let mut s = span(
            &trace,
            &format!("{:016x}", 0x5000 + i),
            "",
            "shop",
            "op",
            2,
            i,
            5,
            json!({}),
        );
        match i {
            // The status as a string; no route in the span but one in the resource; a
            // span route differing from the resource's.
            5 => attrs["http.status_code"] = json!("500"),
            6 | 7 => {
                if i == 6 {
                    attrs.as_object_mut().unwrap().remove("http.route");
                }
                s.origin.resource_attributes =
                    json!({"service.name": "shop", "http.route": "/checkout"}).to_string();
            }
            _ => {}
        }
        s.attributes = attrs.to_string();
        spans.push(s);
    }
    let t = TenantId::default_tenant();
    storage.write_spans(&t, spans.clone()).await.unwrap();
    storage.flush().await.unwrap();
    let names: Vec<String> = {
        let snap = storage.snapshot(
            &t,
            strata_storage::model::Signal::Traces,
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(snap.files.len(), 1);
        let file = std::fs::File::open(snap.files_root.join(&snap.files[0].path)).unwrap();
        let meta = datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata::load(
            &file,
            Default::default(),
        )
        .unwrap();
        meta.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    for col in [
        "attr:str:http.route",
        "attr:int:http.status_code",
        "attr:int:n",
    ] {
        assert!(names.iter().any(|n| n == col), "{col} in {names:?}");
    }

    let attr = |s: &Span, k: &str| serde_json::from_str::<Value>(&s.attributes).unwrap()[k].clone();
    let res = |s: &Span, k: &str| {
        serde_json::from_str::<Value>(&s.origin.resource_attributes).unwrap()[k].clone()
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let ids_of = |f: &dyn Fn(&Span) -> bool| {
        let mut ids: Vec<String> = spans
            .iter()
            .filter(|s| f(s))
            .map(|s| s.trace_id.clone())
            .collect();
        ids.sort();
        ids
    };
    // Jaeger: span attributes first, the resource's when the span has no such key.
    let jaeger_oracle = |key: &str, want: &str| {
        ids_of(&|s: &Span| {
            let v = attr(s, key);
            let v = if v.is_null() { res(s, key) } else { v };
            !v.is_null() && text(&v) == want
        })
    };
    let start = T0 / 1000 - 1_000_000;
    let end = T0 / 1000 + 10_000_000;
    for (key, value) in [
        ("http.route", "/checkout"),
        ("http.status_code", "500"),
        ("n", "17"),
        ("n", "017"),
    ] {
        let tags = serde_json::to_string(&json!({ key: value })).unwrap();
        let enc: String = tags.bytes().map(|b| format!("%{b:02X}")).collect();
        let (status, v) = get_json(
            &app,
            &format!(
                "/jaeger/api/traces?service=shop&tags={enc}&start={start}&end={end}&limit=1000"
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let mut got: Vec<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        let want = jaeger_oracle(key, value);
        assert_eq!(got, want, "{key}={value}");
    }
    // TraceQL on span attributes: only values of the literal's type match.
    for (q, f) in [
        (
            r#"{ span.http.route = "/checkout" }"#,
            Box::new(|s: &Span| attr(s, "http.route") == json!("/checkout"))
                as Box<dyn Fn(&Span) -> bool>,
        ),
        (
            r#"{ span.http.status_code = 500 }"#,
            Box::new(|s: &Span| attr(s, "http.status_code") == json!(500)),
        ),
    ] {
        let (status, v) = tempo_search(&app, q, "&limit=1000").await;
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
        let mut got: Vec<String> = trace_ids(&v).into_iter().map(str::to_owned).collect();
        got.sort();
        assert_eq!(got, ids_of(&*f), "{q}");
    }
    // Trace by id and SQL give the attributes text as written.
    for s in [&spans[5], &spans[6], &spans[42]] {
        let (_, v) = get_json(&app, &format!("/jaeger/api/traces/{}", s.trace_id)).await;
        let tags = &v["data"][0]["spans"][0]["tags"];
        for (k, want) in
            serde_json::from_str::<serde_json::Map<String, Value>>(&s.attributes).unwrap()
        {
            let got = &tag(tags, &k).unwrap_or_else(|| panic!("{k} in {tags}"))["value"];
            assert_eq!(got, &want, "{k}");
        }
        let answer = strata_query::sql::run(
            &storage,
            &t,
            &format!(
                "SELECT attributes FROM spans WHERE trace_id = '{}'",
                s.trace_id
            ),
            &Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(answer.rows, vec![vec![Value::String(s.attributes.clone())]]);
    }
    // A second file with other dedicated keys: SQL reads each file's columns (the other
    // file's as nulls) and every span's attributes come back as written.
    let more: Vec<Span> = (0..30i64)
        .map(|i| {
            let trace = format!("{:032x}", 0xdef000 + i);
            span(
                &trace,
                &format!("{:016x}", 0x9000 + i),
                "",
                "shop",
                "op",
                2,
                i,
                5,
                json!({"other": format!("v{i}")}),
            )
        })
        .collect();
    storage.write_spans(&t, more.clone()).await.unwrap();
    storage.flush().await.unwrap();
    let answer = strata_query::sql::run(
        &storage,
        &t,
        "SELECT trace_id, attributes FROM spans ORDER BY trace_id",
        &Default::default(),
    )
    .await
    .unwrap();
    let mut want: Vec<(String, String)> = spans
        .iter()
        .chain(&more)
        .map(|s| (s.trace_id.clone(), s.attributes.clone()))
        .collect();
    want.sort();
    let got: Vec<(String, String)> = answer
        .rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
}

/// A Jaeger search with a limit reads newest data first and stops early; its answer must
/// be the newest traces across every file and memtable, each at its latest matching start.
#[tokio::test]
async fn limited_search_takes_the_newest_traces_across_files() {
    let (_dir, storage, app) = open(TraceApiConfig {
        max_search_range: std::time::Duration::from_secs(3650 * 86_400),
        ..TraceApiConfig::default()
    });
    let t = TenantId::default_tenant();
    let id = |i: i64| format!("{:032x}", 0xfeed00 + i);
    // Four flushed files an hour apart, then a memtable: trace i starts at hour i. The
    // oldest trace also has a matching span in the newest file, so it must rank first.
    for hour in 0..5i64 {
        let mut spans = vec![span(
            &id(hour),
            &format!("{:016x}", 0x100 + hour),
            "",
            "shop",
            "buy",
            2,
            hour * 3_600_000,
            50,
            json!({"tier": "gold"}),
        )];
        if hour == 3 {
            spans.push(span(
                &id(0),
                &format!("{:016x}", 0x900),
                "",
                "shop",
                "buy",
                2,
                hour * 3_600_000 + 1_000,
                50,
                json!({"tier": "gold"}),
            ));
        }
        storage.write_spans(&t, spans).await.unwrap();
        if hour < 4 {
            storage.flush().await.unwrap();
        }
    }
    let start = T0 / 1000 - 1;
    let end = T0 / 1000 + 6 * 3_600_000_000;
    for (limit, want) in [
        (1, vec![id(4)]),
        (2, vec![id(4), id(0)]),
        (3, vec![id(4), id(0), id(3)]),
        (10, vec![id(4), id(0), id(3), id(2), id(1)]),
    ] {
        let uri = format!(
            "/jaeger/api/traces?service=shop&tags=%7B%22tier%22%3A%22gold%22%7D&start={start}&end={end}&limit={limit}"
        );
        let (status, v) = get_json(&app, &uri).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let got: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "limit {limit}");
    }
}
