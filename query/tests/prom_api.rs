//! Integration tests of the query crate's HTTP APIs against a real `Storage` in a tempdir:
//! the Prometheus API (`strata_query::prom::router`) with data both flushed to Parquet and
//! still in memtables, and (in `compare`) a side-by-side comparison with a real
//! Prometheus when one is installed.

#[path = "prom_api/compare.rs"]
mod compare;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use strata_query::prom::{PromApiConfig, SampleCache, router, router_with_cache};
use strata_storage::model::{
    BucketSpan, Exemplar, Labels, MetricMetadata, MetricType, MetricsWrite, NativeHistogram,
    Sample, SampleValue, Signal, stale_marker,
};
use strata_storage::{Storage, StorageConfig, TenantId};
use tower::ServiceExt;

/// Start of the test data (Unix ms); samples every 15 s for 10 minutes (i = 0..=40).
const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 15_000;
/// Samples with i <= FLUSHED are written to Parquet; later ones stay in memtables.
const FLUSHED: i64 = 20;

fn secs(i: i64) -> i64 {
    (T0 + i * STEP) / 1000
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn float(l: &Labels, i: i64, v: f64) -> Sample {
    Sample {
        labels: l.clone(),
        timestamp_ms: T0 + i * STEP,
        value: SampleValue::Float(v),
        exemplars: Vec::new(),
    }
}

fn native(i: i64) -> NativeHistogram {
    let n = 2.0 * i as f64;
    NativeHistogram {
        schema: 0,
        zero_threshold: 1e-128,
        zero_count: 0.0,
        count: 2.0 * n,
        sum: 3.0 * i as f64,
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_buckets: vec![n, n],
        negative_spans: Vec::new(),
        negative_buckets: Vec::new(),
        counter_reset_hint: 0,
        custom_values: Vec::new(),
    }
}

/// The samples of step `i` of every test series.
fn samples_at(i: i64) -> Vec<Sample> {
    let f = i as f64;
    let mut out = vec![
        float(
            &labels(&[("__name__", "temp"), ("job", "a"), ("instance", "x")]),
            i,
            f,
        ),
        float(
            &labels(&[("__name__", "temp"), ("job", "a"), ("instance", "z")]),
            i,
            2.0 * f,
        ),
        float(
            &labels(&[("__name__", "temp"), ("job", "b"), ("instance", "y")]),
            i,
            100.0 + f,
        ),
        float(
            &labels(&[("__name__", "http_requests_total"), ("job", "a")]),
            i,
            15.0 * f,
        ),
    ];
    if i == 30 {
        out[3].exemplars.push(Exemplar {
            labels: labels(&[("trace_id", "abc123")]),
            value: 450.0,
            timestamp_ms: T0 + i * STEP,
        });
    }
    for (le, per_step) in [("0.1", 1.0), ("1", 3.0), ("+Inf", 4.0)] {
        out.push(float(
            &labels(&[
                ("__name__", "latency_seconds_bucket"),
                ("le", le),
                ("job", "a"),
            ]),
            i,
            per_step * f,
        ));
    }
    let up = labels(&[("__name__", "up"), ("job", "a")]);
    if i < FLUSHED {
        out.push(float(&up, i, 1.0));
    } else if i == FLUSHED {
        // The staleness marker lands in a Parquet file.
        out.push(float(&up, i, stale_marker()));
    }
    out.push(Sample {
        labels: labels(&[("__name__", "rpc_duration_seconds"), ("job", "a")]),
        timestamp_ms: T0 + i * STEP,
        value: SampleValue::Histogram(Box::new(native(i))),
        exemplars: Vec::new(),
    });
    out
}

async fn setup() -> (tempfile::TempDir, Storage, Router) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .expect("open storage");
    let tenant = TenantId::default_tenant();
    let meta = vec![MetricMetadata {
        metric_family_name: "http_requests_total".into(),
        metric_type: MetricType::Counter,
        unit: String::new(),
        help: "Requests served.".into(),
    }];
    for i in 0..=40 {
        let write = MetricsWrite {
            samples: samples_at(i),
            metadata: if i == 0 { meta.clone() } else { Vec::new() },
        };
        storage.write_metrics(&tenant, write).await.expect("write");
        if i == FLUSHED {
            storage.flush().await.expect("flush");
        }
    }
    let app = router(storage.clone(), PromApiConfig::default());
    (dir, storage, app)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn qs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, v)
}

async fn get(app: &Router, path: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let uri = format!("{path}?{}", qs(params));
    send(app, Request::get(uri).body(Body::empty()).expect("request")).await
}

async fn post_form(app: &Router, path: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(qs(params)))
        .expect("request");
    send(app, req).await
}

fn ok(data: Value) -> Value {
    json!({ "status": "success", "data": data })
}

/// The single float value of a one-element instant vector.
fn single_value(v: &Value) -> f64 {
    let result = v["data"]["result"].as_array().expect("result array");
    assert_eq!(result.len(), 1, "{v}");
    result[0]["value"][1]
        .as_str()
        .expect("value string")
        .parse()
        .expect("float")
}

#[tokio::test]
async fn instant_and_range_queries_read_files_and_memtables() {
    let (_dir, _storage, app) = setup().await;
    let t = secs(40).to_string();
    let (status, v) = get(&app, "/api/v1/query", &[("query", "temp"), ("time", &t)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        ok(json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "temp", "instance": "x", "job": "a"}, "value": [secs(40), "40"]},
            {"metric": {"__name__": "temp", "instance": "y", "job": "b"}, "value": [secs(40), "140"]},
            {"metric": {"__name__": "temp", "instance": "z", "job": "a"}, "value": [secs(40), "80"]},
        ]}))
    );

    // Across the flush boundary (i = 20): i = 16 and 20 come from Parquet, 24 from memory.
    let (start, end) = (secs(16).to_string(), secs(24).to_string());
    let (status, v) = get(
        &app,
        "/api/v1/query_range",
        &[
            ("query", "temp{instance=\"x\"}"),
            ("start", &start),
            ("end", &end),
            ("step", "1m"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        ok(json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "temp", "instance": "x", "job": "a"},
             "values": [[secs(16), "16"], [secs(20), "20"], [secs(24), "24"]]},
        ]}))
    );

    // The same as a form POST with RFC 3339 times and a float-seconds step.
    let (status, v2) = post_form(
        &app,
        "/api/v1/query_range",
        &[
            ("query", "temp{instance=\"x\"}"),
            ("start", "2023-11-14T22:17:20Z"),
            ("end", "2023-11-14T22:19:20Z"),
            ("step", "60"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2, v);

    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[("query", "sum by (job) (temp)"), ("time", &t)],
    )
    .await;
    assert_eq!(
        v,
        ok(json!({"resultType": "vector", "result": [
            {"metric": {"job": "a"}, "value": [secs(40), "120"]},
            {"metric": {"job": "b"}, "value": [secs(40), "140"]},
        ]}))
    );

    let (_, v) = get(&app, "/api/v1/query", &[("query", "1 + 2"), ("time", &t)]).await;
    assert_eq!(
        v,
        ok(json!({"resultType": "scalar", "result": [secs(40), "3"]}))
    );
}

#[tokio::test]
async fn duration_expressions_use_the_query_times() {
    let (_dir, _storage, app) = setup().await;
    let (start, end) = (secs(16).to_string(), secs(24).to_string());
    let range = |query| {
        vec![
            ("query", query),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("step", "2m"),
        ]
    };
    // step() is the range query's step; arithmetic works in brackets and offsets.
    let (status, literal) = get(
        &app,
        "/api/v1/query_range",
        &range("count_over_time(temp[4m] offset 2m)"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{literal}");
    assert!(
        !literal["data"]["result"]
            .as_array()
            .expect("result")
            .is_empty()
    );
    for q in [
        "count_over_time(temp[step()*2] offset step())",
        "count_over_time(temp[3m+60s] offset (240s / 2))",
    ] {
        let (status, v) = get(&app, "/api/v1/query_range", &range(q)).await;
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
        assert_eq!(v, literal, "{q}");
    }
    // Outside an evaluation step() has no value: a clear 400.
    let (status, v) = get(
        &app,
        "/api/v1/format_query",
        &[("query", "rate(temp[step()])")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = v["error"].as_str().expect("error");
    assert!(msg.contains("step()"), "{msg}");
}

#[tokio::test]
async fn rate_and_histogram_quantiles() {
    let (_dir, _storage, app) = setup().await;
    let t = secs(40).to_string();
    // The counter grows by 15 every 15 s.
    let (status, v) = get(
        &app,
        "/api/v1/query",
        &[("query", "rate(http_requests_total[5m])"), ("time", &t)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["result"][0]["metric"], json!({"job": "a"}));
    assert!((single_value(&v) - 1.0).abs() < 1e-9, "{v}");

    // Classic buckets: per step +1 (le 0.1), +3 (le 1), +4 (+Inf); the median lies halfway
    // through the (0.1, 1] bucket.
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[
            (
                "query",
                "histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[5m])))",
            ),
            ("time", &t),
        ],
    )
    .await;
    assert_eq!(v["data"]["result"][0]["metric"], json!({}));
    assert!((single_value(&v) - 0.55).abs() < 1e-9, "{v}");

    // Native histogram: buckets (0.5, 1] and (1, 2] hold half of the observations each.
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[
            ("query", "histogram_quantile(0.5, rpc_duration_seconds)"),
            ("time", &t),
        ],
    )
    .await;
    assert!((single_value(&v) - 1.0).abs() < 1e-9, "{v}");
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[
            (
                "query",
                "histogram_quantile(0.5, rate(rpc_duration_seconds[5m]))",
            ),
            ("time", &t),
        ],
    )
    .await;
    assert!((single_value(&v) - 1.0).abs() < 1e-9, "{v}");

    // The histogram itself, as Prometheus renders it.
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[("query", "rpc_duration_seconds"), ("time", &t)],
    )
    .await;
    assert_eq!(
        v,
        ok(json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "rpc_duration_seconds", "job": "a"},
             "histogram": [secs(40), {"count": "160", "sum": "120",
                 "buckets": [[0, "0.5", "1", "80"], [0, "1", "2", "80"]]}]},
        ]}))
    );
}

#[tokio::test]
async fn staleness_marker_read_from_parquet_ends_the_series() {
    let (_dir, _storage, app) = setup().await;
    let (start, end) = (secs(17).to_string(), secs(22).to_string());
    let (_, v) = get(
        &app,
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", &start),
            ("end", &end),
            ("step", "15s"),
        ],
    )
    .await;
    assert_eq!(
        v,
        ok(json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "up", "job": "a"},
             "values": [[secs(17), "1"], [secs(18), "1"], [secs(19), "1"]]},
        ]}))
    );
    let t = secs(21).to_string();
    let (_, v) = get(&app, "/api/v1/query", &[("query", "up"), ("time", &t)]).await;
    assert_eq!(v, ok(json!({"resultType": "vector", "result": []})));
}

#[tokio::test]
async fn series_labels_and_values() {
    let (_dir, _storage, app) = setup().await;
    let (start, end) = (secs(0).to_string(), secs(40).to_string());
    let (status, v) = get(
        &app,
        "/api/v1/series",
        &[
            ("match[]", "temp"),
            ("match[]", "up"),
            ("start", &start),
            ("end", &end),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        ok(json!([
            {"__name__": "temp", "instance": "x", "job": "a"},
            {"__name__": "temp", "instance": "y", "job": "b"},
            {"__name__": "temp", "instance": "z", "job": "a"},
            {"__name__": "up", "job": "a"},
        ]))
    );
    // `up` has no samples after its staleness marker; `temp` does.
    let late = secs(30).to_string();
    let (_, v) = get(
        &app,
        "/api/v1/series",
        &[
            ("match[]", "{job=\"a\",__name__=~\"up|temp\"}"),
            ("start", &late),
        ],
    )
    .await;
    assert_eq!(
        v,
        ok(json!([
            {"__name__": "temp", "instance": "x", "job": "a"},
            {"__name__": "temp", "instance": "z", "job": "a"},
        ]))
    );
    let (_, v) = get(
        &app,
        "/api/v1/series",
        &[("match[]", "temp"), ("limit", "1")],
    )
    .await;
    assert_eq!(
        v,
        json!({"status": "success", "data": [{"__name__": "temp", "instance": "x", "job": "a"}],
               "warnings": ["results truncated due to limit"]})
    );

    let (_, v) = get(&app, "/api/v1/labels", &[]).await;
    assert_eq!(v, ok(json!(["__name__", "instance", "job", "le"])));
    let (_, v) = post_form(&app, "/api/v1/labels", &[("match[]", "up")]).await;
    assert_eq!(v, ok(json!(["__name__", "job"])));

    let (_, v) = get(&app, "/api/v1/label/__name__/values", &[]).await;
    assert_eq!(
        v,
        ok(json!([
            "http_requests_total",
            "latency_seconds_bucket",
            "rpc_duration_seconds",
            "temp",
            "up"
        ]))
    );
    let (_, v) = get(
        &app,
        "/api/v1/label/instance/values",
        &[("match[]", "temp{job=\"a\"}")],
    )
    .await;
    assert_eq!(v, ok(json!(["x", "z"])));
    // Prometheus 3 names: any UTF-8 name, `U__` escaping in the path.
    let (_, v) = get(
        &app,
        "/api/v1/label/U__inst_61_nce/values",
        &[("match[]", "temp{job=\"a\"}")],
    )
    .await;
    assert_eq!(v, ok(json!(["x", "z"])));
    let (status, v) = get(&app, "/api/v1/label/0bad.name/values", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, ok(json!([])));

    let (status, v) = get(&app, "/api/v1/series", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"status": "error", "errorType": "bad_data", "error": "no match[] parameter provided"})
    );
    let (status, v) = get(&app, "/api/v1/series", &[("match[]", "{job=~\".*\"}")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"],
        json!(
            "invalid parameter \"match[]\": vector selector must contain at least one non-empty matcher"
        )
    );

    // Another tenant sees nothing.
    let req = Request::get("/api/v1/label/__name__/values")
        .header("X-Scope-OrgID", "other")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, req).await.1, ok(json!([])));
}

#[tokio::test]
async fn metadata_exemplars_format_and_status() {
    let (_dir, _storage, app) = setup().await;
    let (_, v) = get(&app, "/api/v1/metadata", &[]).await;
    assert_eq!(
        v,
        ok(
            json!({"http_requests_total": [{"type": "counter", "help": "Requests served.", "unit": ""}]})
        )
    );
    let (start, end) = (secs(0).to_string(), secs(40).to_string());
    let (_, v) = get(
        &app,
        "/api/v1/query_exemplars",
        &[
            ("query", "rate(http_requests_total[5m])"),
            ("start", &start),
            ("end", &end),
        ],
    )
    .await;
    assert_eq!(
        v,
        ok(json!([{
            "seriesLabels": {"__name__": "http_requests_total", "job": "a"},
            "exemplars": [{"labels": {"trace_id": "abc123"}, "value": "450", "timestamp": secs(30)}],
        }]))
    );
    let (_, v) = get(
        &app,
        "/api/v1/format_query",
        &[("query", "sum by(job)(rate(x[5m]))")],
    )
    .await;
    assert_eq!(v, ok(json!("sum by (job) (rate(x[5m]))")));

    let (_, v) = get(&app, "/api/v1/status/buildinfo", &[]).await;
    assert_eq!(v["data"]["version"], json!("3.0.0"));
    let (_, v) = get(&app, "/api/v1/status/runtimeinfo", &[]).await;
    assert_eq!(v["data"]["storageRetention"], json!("30d"));
    let (_, v) = get(&app, "/api/v1/status/tsdb", &[]).await;
    assert_eq!(v["data"]["headStats"]["numSeries"], json!(9));
    assert_eq!(v["data"]["headStats"]["minTime"], json!(T0));
    assert_eq!(v["data"]["headStats"]["maxTime"], json!(T0 + 40 * STEP));
    assert_eq!(
        v["data"]["seriesCountByMetricName"][0],
        json!({"name": "latency_seconds_bucket", "value": 3})
    );
}

#[tokio::test]
async fn errors_use_prometheus_types_and_codes() {
    let (_dir, _storage, app) = setup().await;
    let (status, v) = get(&app, "/api/v1/query", &[("query", "sum(")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["status"], json!("error"));
    assert_eq!(v["errorType"], json!("bad_data"));
    let msg = v["error"].as_str().expect("error text");
    assert!(msg.starts_with("invalid parameter \"query\": "), "{msg}");
    assert!(msg.len() > "invalid parameter \"query\": ".len(), "{msg}");

    // Bad parameters: 400 bad_data with Prometheus's exact texts.
    let range = |query, step| {
        vec![
            ("query", query),
            ("start", "0"),
            ("end", "100000"),
            ("step", step),
        ]
    };
    type Params<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Params, &str)> = vec![
        (
            "/api/v1/query_range",
            range("temp", "1"),
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        (
            "/api/v1/query",
            vec![("query", "temp"), ("time", "yesterday")],
            "invalid parameter \"time\": Invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp",
        ),
        (
            "/api/v1/query_range",
            range("temp", "0"),
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            "/api/v1/query_range",
            range("temp[5m]", "50"),
            "invalid parameter \"query\": invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
        ),
        (
            "/api/v1/query",
            vec![("query", "temp"), ("limit", "-1")],
            "invalid parameter \"limit\": limit must be non-negative",
        ),
    ];
    for (path, params, error) in cases {
        let (status, v) = get(&app, path, &params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {params:?}");
        assert_eq!(
            v,
            json!({"status": "error", "errorType": "bad_data", "error": error}),
            "{path} {params:?}"
        );
    }

    // A zero timeout cannot be met: 503 timeout.
    let (status, v) = get(
        &app,
        "/api/v1/query",
        &[("query", "temp"), ("timeout", "0")],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["errorType"], json!("timeout"));

    // Many-to-many matching fails at evaluation: 422 execution.
    let t = secs(40).to_string();
    let (status, v) = get(
        &app,
        "/api/v1/query",
        &[("query", "temp + on(job) temp"), ("time", &t)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errorType"], json!("execution"));

    let req = Request::get("/api/v1/query?query=up")
        .header("X-Scope-OrgID", "../etc")
        .body(Body::empty())
        .expect("request");
    let (status, v) = send(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["errorType"], json!("bad_data"));

    // Limits: too many series for one selector, too many samples.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .expect("open");
    let write = MetricsWrite {
        samples: (0..40).flat_map(samples_at).collect(),
        metadata: Vec::new(),
    };
    storage
        .write_metrics(&TenantId::default_tenant(), write)
        .await
        .expect("write");
    let small = router(
        storage,
        PromApiConfig {
            max_series: 2,
            max_samples: 30,
            ..PromApiConfig::default()
        },
    );
    let (status, v) = get(&small, "/api/v1/query", &[("query", "temp"), ("time", &t)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errorType"], json!("execution"));
    let (status, v) = get(
        &small,
        "/api/v1/query",
        &[
            ("query", "sum_over_time(http_requests_total[10m])"),
            ("time", &t),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["error"],
        json!("query processing would load too many samples into memory in query execution")
    );
    // The same limits when an aggregation reads its selector chunk by chunk.
    let (status, v) = get(
        &small,
        "/api/v1/query",
        &[("query", "sum by (job) (temp)"), ("time", &t)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errorType"], json!("execution"));
    let (status, v) = get(
        &small,
        "/api/v1/query",
        &[
            ("query", "sum(sum_over_time(http_requests_total[10m]))"),
            ("time", &t),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["error"],
        json!("query processing would load too many samples into memory in query execution")
    );
}

#[tokio::test]
async fn page_pruned_parquet_reads_return_exactly_the_selected_series() {
    // 3,000 series x 20 samples = 60,000 rows: several `series_id` pages in one file, so
    // page-level pruning must select the right rows and skip the rest.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .expect("open");
    let tenant = TenantId::default_tenant();
    let mut samples = Vec::new();
    for k in 0..3000i64 {
        let l = labels(&[("__name__", "pg"), ("k", &k.to_string())]);
        for i in 0..20 {
            samples.push(float(&l, i, (k * 1000 + i) as f64));
        }
    }
    storage
        .write_metrics(
            &tenant,
            MetricsWrite {
                samples,
                metadata: Vec::new(),
            },
        )
        .await
        .expect("write");
    storage.flush().await.expect("flush");
    let app = router(storage, PromApiConfig::default());
    let t = secs(19).to_string();
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[("query", "pg{k=~\"7|1500|2999\"}"), ("time", &t)],
    )
    .await;
    assert_eq!(
        v,
        ok(json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "pg", "k": "1500"}, "value": [secs(19), "1500019"]},
            {"metric": {"__name__": "pg", "k": "2999"}, "value": [secs(19), "2999019"]},
            {"metric": {"__name__": "pg", "k": "7"}, "value": [secs(19), "7019"]},
        ]}))
    );
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[
            ("query", "count(count_over_time(pg[10m]) == 20)"),
            ("time", &t),
        ],
    )
    .await;
    assert_eq!(
        v,
        ok(
            json!({"resultType": "vector", "result": [{"metric": {}, "value": [secs(19), "3000"]}]})
        )
    );
}

#[tokio::test]
async fn parse_query_returns_the_syntax_tree_as_prometheus_does() {
    let (_dir, _storage, app) = setup().await;
    let q = r#"sum by (job) (rate(http_requests_total{code=~"5.."}[5m] offset 1m)) / on(job) group_left(env) up @ end()"#;
    for (status, v) in [
        get(&app, "/api/v1/parse_query", &[("query", q)]).await,
        post_form(&app, "/api/v1/parse_query", &[("query", q)]).await,
    ] {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v,
            ok(json!({
                "type": "binaryExpr",
                "op": "/",
                "bool": false,
                "matching": {"card": "many-to-one", "labels": ["job"], "on": true, "include": ["env"]},
                "lhs": {
                    "type": "aggregation",
                    "op": "sum",
                    "grouping": ["job"],
                    "without": false,
                    "param": null,
                    "expr": {
                        "type": "call",
                        "func": {"name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"},
                        "args": [{
                            "type": "matrixSelector",
                            "name": "http_requests_total",
                            "range": 300_000,
                            "offset": 60_000,
                            "matchers": [
                                {"name": "code", "value": "5..", "type": "=~"},
                                {"name": "__name__", "value": "http_requests_total", "type": "="},
                            ],
                            "timestamp": null,
                            "startOrEnd": null,
                            "anchored": false,
                            "smoothed": false,
                        }],
                    },
                },
                "rhs": {
                    "type": "vectorSelector",
                    "name": "up",
                    "offset": 0,
                    "matchers": [{"name": "__name__", "value": "up", "type": "="}],
                    "timestamp": null,
                    "startOrEnd": "end",
                    "anchored": false,
                    "smoothed": false,
                },
            }))
        );
    }

    let (_, v) = get(
        &app,
        "/api/v1/parse_query",
        &[("query", "topk(3, -max_over_time(x[10m:30s] @ 1700000000))")],
    )
    .await;
    let agg = &v["data"];
    assert_eq!(agg["op"], json!("topk"));
    assert_eq!(agg["param"], json!({"type": "numberLiteral", "val": "3"}));
    let unary = &agg["expr"];
    assert_eq!(unary["type"], json!("unaryExpr"));
    assert_eq!(unary["op"], json!("-"));
    let sub = &unary["expr"]["args"][0];
    assert_eq!(sub["type"], json!("subquery"));
    assert_eq!(sub["range"], json!(600_000));
    assert_eq!(sub["step"], json!(30_000));
    assert_eq!(sub["timestamp"], json!(1_700_000_000_000i64));
    assert_eq!(sub["expr"]["type"], json!("vectorSelector"));

    let (status, v) = get(&app, "/api/v1/parse_query", &[("query", "sum(rate(x[5m])")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["errorType"], json!("bad_data"));
    let msg = v["error"].as_str().expect("error text");
    assert!(msg.starts_with("invalid parameter \"query\": "), "{msg}");
}

#[tokio::test]
async fn chunked_aggregations_agree_with_whole_selections() {
    // 3,000 counters (more than one chunk of a chunked selection) in two files whose time
    // ranges overlap, the second rewriting ten steps of the first, plus a memtable.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .expect("open");
    let tenant = TenantId::default_tenant();
    let series: Vec<Labels> = (0..3000i64)
        .map(|k| {
            labels(&[
                ("__name__", "chunked_total"),
                ("k", &k.to_string()),
                ("g", &(k % 7).to_string()),
            ])
        })
        .collect();
    let value = |k: usize, i: i64, rewrite: bool| {
        let v = (k as f64 + 1.0) * i as f64 + 0.1 * (k % 13) as f64;
        if rewrite { v + 0.5 } else { v }
    };
    for (steps, rewrite, flush) in [
        (0..20, false, true),
        (10..30, true, true),
        (30..41, false, false),
    ] {
        let mut samples = Vec::new();
        for (k, l) in series.iter().enumerate() {
            for i in steps.clone() {
                samples.push(float(l, i, value(k, i, rewrite)));
            }
        }
        storage
            .write_metrics(
                &tenant,
                MetricsWrite {
                    samples,
                    metadata: Vec::new(),
                },
            )
            .await
            .expect("write");
        if flush {
            storage.flush().await.expect("flush");
        }
    }
    let app = router(storage, PromApiConfig::default());
    // Ten hours before the data as well: over a long range the first chunk is small (256
    // series), so the 3,000 series arrive in several chunks.
    let (start, end) = ((secs(1) - 36_000).to_string(), secs(40).to_string());
    let range = |q: &str| {
        [
            ("query", q.to_string()),
            ("start", start.clone()),
            ("end", end.clone()),
            ("step", "30".to_string()),
        ]
    };
    // `* 1` keeps every value but makes the argument a binary operation, which the engine
    // evaluates over the whole selection.
    for (chunked, whole) in [
        (
            "sum by (g) (rate(chunked_total[2m]))",
            "sum by (g) (rate(chunked_total[2m]) * 1)",
        ),
        (
            "avg without (k) (chunked_total)",
            "avg without (k) (chunked_total * 1)",
        ),
        (
            "max by (g) (increase(chunked_total[1m]))",
            "max by (g) (increase(chunked_total[1m]) * 1)",
        ),
        ("count(chunked_total)", "count(chunked_total * 1)"),
        // As many groups as series: evaluated over the whole selection, then aggregated.
        (
            "sum by (k) (irate(chunked_total[1m]))",
            "sum by (k) (irate(chunked_total[1m]) * 1)",
        ),
    ] {
        let p = range(chunked);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, a) = get(&app, "/api/v1/query_range", &p).await;
        assert_eq!(status, StatusCode::OK, "{chunked}: {a}");
        let p = range(whole);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, b) = get(&app, "/api/v1/query_range", &p).await;
        let result = a["data"]["result"].as_array().expect("result");
        assert!(!result.is_empty(), "{chunked}: {a}");
        assert_eq!(a, b, "{chunked} against {whole}");
    }
    // The later file's rewrite wins; every series counts at every step.
    let t = secs(15).to_string();
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[
            ("query", "sum by (k) (chunked_total{k=\"5\"})"),
            ("time", &t),
        ],
    )
    .await;
    assert_eq!(single_value(&v), value(5, 15, true));
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[("query", "count(chunked_total)"), ("time", &t)],
    )
    .await;
    assert_eq!(single_value(&v), 3000.0);
}

/// `anchored` / `smoothed` range selectors (Prometheus's experimental extended range
/// selectors, on by default): they read the samples around the range's ends, here across
/// the flush boundary (i = 20 in Parquet, i = 21 in a memtable).
#[tokio::test]
async fn anchored_and_smoothed_range_selectors_over_http() {
    let (_dir, _storage, app) = setup().await;
    // 5 s after sample 20; http_requests_total grows by 15 per 15 s sample (1/s).
    let t = (secs(20) + 5).to_string();
    let at = |q: &'static str| [("query", q), ("time", t.as_str())];
    let values = |v: &Value| -> Vec<f64> {
        v["data"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|s| {
                s["value"][1]
                    .as_str()
                    .expect("value")
                    .parse()
                    .expect("float")
            })
            .collect()
    };

    // The 20 s range (285 s, 305 s] holds one sample (i = 20 at 300 s): plain increase has
    // nothing to go by.
    let (status, v) = get(
        &app,
        "/api/v1/query",
        &at("increase(http_requests_total[20s])"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(values(&v), Vec::<f64>::new(), "{v}");
    // Anchored: from the sample at the range's start (i = 19, 285) to the last (300).
    for (q, want) in [
        ("increase(http_requests_total[20s] anchored)", 15.0),
        ("rate(http_requests_total[20s] anchored)", 0.75),
        ("delta(http_requests_total[20s] anchored)", 15.0),
        // Smoothed: 285 at the start, 305 interpolated at the end from i = 20 and the
        // sample after the range (i = 21, still in memory).
        ("increase(http_requests_total[20s] smoothed)", 20.0),
        ("rate(http_requests_total[20s] smoothed)", 1.0),
        // Over a minute, anchored counts one change more than the plain range holds.
        ("changes(http_requests_total[1m])", 3.0),
        ("changes(http_requests_total[1m] anchored)", 4.0),
    ] {
        let (status, v) = get(&app, "/api/v1/query", &at(q)).await;
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
        assert_eq!(values(&v), vec![want], "{q}: {v}");
        assert_eq!(v["data"]["result"][0]["metric"], json!({"job": "a"}), "{q}");
    }

    // Aggregated, the modifier still applies (such selections are not read chunk by chunk).
    for (q, want) in [
        ("sum(increase(http_requests_total[20s] anchored))", 15.0),
        (
            "sum by (job) (rate(http_requests_total[20s] smoothed))",
            1.0,
        ),
        ("max(changes(http_requests_total[1m] anchored))", 4.0),
    ] {
        let (status, v) = get(&app, "/api/v1/query", &at(q)).await;
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
        assert_eq!(values(&v), vec![want], "{q}: {v}");
    }

    // An instant selector, smoothed: the value at exactly the evaluation time.
    let (_, v) = get(&app, "/api/v1/query", &at("http_requests_total smoothed")).await;
    assert_eq!(values(&v), vec![305.0], "{v}");
    let (_, v) = get(&app, "/api/v1/query", &at("http_requests_total")).await;
    assert_eq!(values(&v), vec![300.0], "{v}");

    // A range selector on its own: the range's ends placed at exactly its start and end.
    let (status, v) = get(
        &app,
        "/api/v1/query",
        &at("http_requests_total[20s] anchored"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["result"][0]["values"],
        json!([[secs(19), "285"], [secs(20), "300"], [secs(20) + 5, "300"],]),
        "{v}"
    );

    // A range query: every step interpolated, the last one carried past the last sample.
    let (start, end) = ((secs(39) + 5).to_string(), (secs(40) + 10).to_string());
    let (status, v) = get(
        &app,
        "/api/v1/query_range",
        &[
            ("query", "http_requests_total smoothed"),
            ("start", &start),
            ("end", &end),
            ("step", "5"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["result"][0]["values"],
        json!([
            [secs(39) + 5, "590"],
            [secs(39) + 10, "595"],
            [secs(40), "600"],
            [secs(40) + 5, "600"],
            [secs(40) + 10, "600"],
        ]),
        "{v}"
    );

    // parse_query shows the modifier as Prometheus does, and no trace of how it is kept.
    let (status, v) = get(
        &app,
        "/api/v1/parse_query",
        &[(
            "query",
            r#"rate(http_requests_total{job="a"}[5m] anchored)"#,
        )],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let sel = &v["data"]["args"][0];
    assert_eq!(sel["type"], json!("matrixSelector"));
    assert_eq!(sel["anchored"], json!(true));
    assert_eq!(sel["smoothed"], json!(false));
    assert_eq!(
        sel["matchers"],
        json!([
            {"name": "job", "value": "a", "type": "="},
            {"name": "__name__", "value": "http_requests_total", "type": "="},
        ])
    );
    let (status, v) = get(
        &app,
        "/api/v1/format_query",
        &[("query", "sum(rate(x[5m]   SMOOTHED offset 1m))")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"], json!("sum(rate(x[5m] smoothed offset 1m))"));

    // Misuse: Prometheus's messages, parse errors with the expression's position.
    let (status, v) = get(
        &app,
        "/api/v1/query",
        &at("max_over_time(http_requests_total[1m] anchored)"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v,
        json!({
            "status": "error",
            "errorType": "execution",
            "error": "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with max_over_time",
        })
    );
    let (status, v) = get(&app, "/api/v1/query", &at("rate(x[5m:1m] smoothed)")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["errorType"], json!("bad_data"));
    assert_eq!(
        v["error"],
        json!(
            "invalid parameter \"query\": 1:6: parse error: smoothed modifier is not supported for subqueries"
        )
    );
}

/// A series spread over files whose time ranges interleave (blocks and single samples),
/// with rewrites of timestamps: the merged samples are in time order, each timestamp once
/// with the value written last, and a window cuts the files' runs at both ends.
#[tokio::test]
async fn interleaved_files_merge_with_the_last_write_winning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .expect("open");
    let tenant = TenantId::default_tenant();
    let a = labels(&[("__name__", "merged"), ("s", "a")]);
    let b = labels(&[("__name__", "merged"), ("s", "b")]);
    // (steps, value offset, flushed): three files, then a memtable.
    let writes: [(Vec<i64>, f64, bool); 4] = [
        ((0..10).chain(20..30).collect(), 0.0, true),
        ((10..20).chain(25..35).collect(), 100.0, true),
        (vec![1, 3, 5, 12, 27], 1000.0, true),
        (vec![33, 36, 37], 5000.0, false),
    ];
    let mut want: std::collections::BTreeMap<i64, f64> = Default::default();
    for (steps, offset, flush) in &writes {
        let mut samples = Vec::new();
        for &i in steps {
            samples.push(float(&a, i, offset + i as f64));
            samples.push(float(&b, i, -(offset + i as f64)));
            want.insert(i, offset + i as f64);
        }
        storage
            .write_metrics(
                &tenant,
                MetricsWrite {
                    samples,
                    metadata: Vec::new(),
                },
            )
            .await
            .expect("write");
        if *flush {
            storage.flush().await.expect("flush");
        }
    }
    let app = router(storage, PromApiConfig::default());
    // (from, to]: cuts file 1's run at its start, file 2's at its end, leaves out file 3's
    // first samples and the memtable's last ones; then the whole series.
    for (from, to) in [(5, 33), (-1, 37)] {
        let range = format!("merged{{s=\"a\"}}[{}s]", (to - from) * STEP / 1000);
        let t = secs(to).to_string();
        let (status, v) = get(&app, "/api/v1/query", &[("query", &range), ("time", &t)]).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let got: Vec<(f64, f64)> = v["data"]["result"][0]["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                let v: f64 = p[1].as_str().expect("value").parse().expect("float");
                (p[0].as_f64().expect("time"), v)
            })
            .collect();
        let expect: Vec<(f64, f64)> = want
            .range(from + 1..=to)
            .map(|(&i, &v)| (secs(i) as f64, v))
            .collect();
        assert_eq!(got, expect, "({from}, {to}]");
    }
    // The other series' runs interleave the same way.
    let t = secs(37).to_string();
    let (_, v) = get(
        &app,
        "/api/v1/query",
        &[
            ("query", "sum_over_time(merged{s=\"b\"}[10m])"),
            ("time", &t),
        ],
    )
    .await;
    let total: f64 = want.range(-1..=37).map(|(_, v)| -v).sum();
    assert_eq!(single_value(&v), total);
}

/// Instant and range queries over metrics files laid out in time slabs (row groups per
/// 15-minute window, cut to the query's time range when read) give the samples a plain
/// model gives: across slab and file boundaries, with files overlapping in time,
/// rewritten timestamps (the later write wins), samples written out of order after newer
/// ones were flushed, a memtable on top, and again after compaction merged the files.
#[tokio::test]
async fn time_slabbed_files_answer_like_the_samples_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, before, after) = files_answer_like_the_samples_written(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        compaction_min_files: 2,
        metric_slab_rows: 128 * 1024,
        ..StorageConfig::default()
    })
    .await;
    // Merged (one 1-hour window).
    assert_eq!((before, after), (4, 1));
}

/// The same with 15-minute time windows (`metric_block_duration`) and a row cap that
/// splits each window's merge into files of distinct series: a selection of one series
/// skips the files of others, an instant query reads one window, and runs of a series
/// across windows are concatenated, late writes and rewrites merged into their window.
#[tokio::test]
async fn time_windowed_files_split_by_series_answer_like_the_samples_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (storage, ..) = files_answer_like_the_samples_written(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        compaction_min_files: 2,
        compaction_max_rows: 50_000,
        metric_block_duration: std::time::Duration::from_secs(15 * 60),
        ..StorageConfig::default()
    })
    .await;
    // 50 minutes of 30 series at 5 samples a second: every 15-minute window with data
    // past the cap is split in series ranges, each file naming its first and last series.
    let files = storage
        .snapshot(
            &TenantId::default_tenant(),
            Signal::Metrics,
            i64::MIN,
            i64::MAX,
        )
        .files;
    let mut per_window: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &files {
        assert!(f.series.is_some(), "{f:?}");
        assert!(f.rows <= 50_000, "{f:?}");
        *per_window.entry(f.partition.as_str()).or_default() += 1;
    }
    assert_eq!(per_window.len(), 4, "{per_window:?}");
    assert!(
        per_window.values().filter(|&&n| n >= 2).count() >= 3,
        "{per_window:?}"
    );
}

/// Writes samples over files and a memtable, checks queries against a model of them, then
/// compacts and checks again; returns the storage and its files before and after.
async fn files_answer_like_the_samples_written(config: StorageConfig) -> (Storage, usize, usize) {
    let storage = Storage::open(config).expect("open");
    let tenant = TenantId::default_tenant();
    // 30 series, a sample every 200 ms: 135,000 rows per 15-minute window, enough for a
    // window to be a slab of its own.
    let base = 1_700_006_400_000; // a UTC midnight, so windows start at base + k * 15 min
    let series: Vec<Labels> = (0..30)
        .map(|k| labels(&[("__name__", "slabbed"), ("s", &format!("{k:02}"))]))
        .collect();
    let minute = 60_000;
    // (first ms, last ms, step ms, value offset, which series, flushed)
    let writes: [(i64, i64, i64, f64, usize, bool); 5] = [
        // 35 minutes: slabs of windows 0, 1 and 2.
        (0, 35 * minute - 1, 200, 0.0, 1, true),
        // 20 minutes overlapping the first file's last 5 with new values.
        (30 * minute, 50 * minute - 1, 200, 1_000_000.0, 1, true),
        // Out of order: every 3rd series, between and on earlier samples, after newer
        // files were written.
        (5 * minute + 100, 22 * minute, 300, 2_000_000.0, 3, true),
        // A handful of rewrites of window 0 only, in a file of its own.
        (7 * minute, 7 * minute + 10_000, 2_000, 3_000_000.0, 1, true),
        // Memtable: new samples and rewrites of the second file's last minute.
        (49 * minute, 52 * minute, 500, 4_000_000.0, 2, false),
    ];
    let mut want: Vec<std::collections::BTreeMap<i64, f64>> = vec![Default::default(); 30];
    for &(first, last, step, offset, every, flush) in &writes {
        let mut samples = Vec::new();
        for t in (first..=last).step_by(step as usize) {
            for (k, l) in series.iter().enumerate().step_by(every) {
                let v = offset + ((t - first) / step) as f64 + k as f64;
                samples.push(Sample {
                    labels: l.clone(),
                    timestamp_ms: base + t,
                    value: SampleValue::Float(v),
                    exemplars: Vec::new(),
                });
                want[k].insert(base + t, v);
            }
            if samples.len() >= 50_000 {
                let batch = MetricsWrite {
                    samples: std::mem::take(&mut samples),
                    metadata: Vec::new(),
                };
                storage.write_metrics(&tenant, batch).await.expect("write");
            }
        }
        let batch = MetricsWrite {
            samples,
            metadata: Vec::new(),
        };
        storage.write_metrics(&tenant, batch).await.expect("write");
        if flush {
            storage.flush().await.expect("flush");
        }
    }
    let cache = Arc::new(SampleCache::new(
        PromApiConfig::default().sample_cache_bytes,
    ));
    let app = router_with_cache(storage.clone(), PromApiConfig::default(), cache.clone());
    // Evaluation times off every sample (samples sit on multiples of 100 ms) and windows
    // from 1 minute to an hour, so a window starts and ends within and across slabs.
    let check = |app: Router| {
        let want = want.clone();
        async move {
            for at_min in [3, 14, 15, 16, 29, 31, 34, 36, 44, 46, 50, 51, 53] {
                for range_min in [1, 5, 16, 60] {
                    let at = base + at_min * minute + 37;
                    let from = at - range_min * minute;
                    let t = format!("{}.{:03}", at / 1000, at % 1000);
                    for (f, agg) in [("count_over_time", 0), ("sum_over_time", 1)] {
                        let q = format!("{f}(slabbed[{range_min}m])");
                        let (status, v) =
                            get(&app, "/api/v1/query", &[("query", &q), ("time", &t)]).await;
                        assert_eq!(status, StatusCode::OK, "{v}");
                        let mut got = std::collections::BTreeMap::new();
                        for r in v["data"]["result"].as_array().expect("result") {
                            let s = r["metric"]["s"].as_str().expect("s").to_string();
                            let x: f64 = r["value"][1].as_str().expect("v").parse().expect("f");
                            got.insert(s, x);
                        }
                        let mut expect = std::collections::BTreeMap::new();
                        for (k, m) in want.iter().enumerate() {
                            let win: Vec<f64> = m.range(from + 1..=at).map(|(_, &v)| v).collect();
                            if !win.is_empty() {
                                let x = if agg == 0 {
                                    win.len() as f64
                                } else {
                                    win.iter().sum()
                                };
                                expect.insert(format!("{k:02}"), x);
                            }
                        }
                        assert_eq!(got, expect, "{q} at minute {at_min}");
                    }
                }
            }
            // A range query over everything, at a step that lands in every slab.
            let (start, end) = (base / 1000 + 1, base / 1000 + 52 * 60 + 1);
            let (status, v) = get(
                &app,
                "/api/v1/query_range",
                &[
                    ("query", "last_over_time(slabbed{s=\"03\"}[1m])"),
                    ("start", &start.to_string()),
                    ("end", &end.to_string()),
                    ("step", "97"),
                ],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{v}");
            let values = v["data"]["result"][0]["values"].as_array().expect("values");
            assert!(values.len() > 30, "{v}");
            for p in values {
                let at = (p[0].as_f64().expect("t") * 1000.0).round() as i64;
                let x: f64 = p[1].as_str().expect("v").parse().expect("f");
                let last = want[3]
                    .range(at - minute + 1..=at)
                    .next_back()
                    .map(|(_, &v)| v);
                assert_eq!(Some(x), last, "at {at}");
            }
        }
    };
    check(app.clone()).await;
    // Again: small selections now read the row ranges they decoded from the sample cache,
    // and answer the same.
    let (hits, misses) = cache.hits_and_misses();
    assert!(misses > 0, "the first pass decodes");
    check(app.clone()).await;
    let (hits_again, misses_again) = cache.hits_and_misses();
    assert!(
        hits_again - hits > 100 && hits_again - hits > misses_again - misses,
        "the second pass reads from the cache: {hits} -> {hits_again} hits, {misses} -> {misses_again} misses"
    );
    // Compaction merges the files (re-sorting them into slabs); answers stay the same.
    let before = storage
        .snapshot(&tenant, Signal::Metrics, i64::MIN, i64::MAX)
        .files
        .len();
    assert!(storage.compact().await.expect("compact") > 0);
    let after = storage
        .snapshot(&tenant, Signal::Metrics, i64::MIN, i64::MAX)
        .files
        .len();
    assert_ne!(after, before);
    check(app).await;
    (storage, before, after)
}

/// The sample limit counts the samples a query loads the same whether they come from
/// memtables or from several Parquet files (whose runs are trimmed to the range and
/// merged): every limit passes or fails alike on both layouts.
#[tokio::test]
async fn sample_limits_count_the_same_samples_from_files_and_memtables() {
    let tenant = TenantId::default_tenant();
    let mut stores = Vec::new();
    for flushed in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(StorageConfig {
            data_dir: dir.path().to_path_buf(),
            ..StorageConfig::default()
        })
        .expect("open");
        // Five series, samples 0..=40, written in three parts (three files when flushed).
        for part in [0..13i64, 13..27, 27..41] {
            let samples = part
                .flat_map(|i| {
                    (0..5).map(move |k| {
                        let l = labels(&[("__name__", "lim"), ("k", &k.to_string())]);
                        float(&l, i, (i * 10 + k) as f64)
                    })
                })
                .collect();
            let write = MetricsWrite {
                samples,
                metadata: Vec::new(),
            };
            storage.write_metrics(&tenant, write).await.expect("write");
            if flushed {
                storage.flush().await.expect("flush");
            }
        }
        let files = storage
            .snapshot(&tenant, Signal::Metrics, i64::MIN, i64::MAX)
            .files
            .len();
        assert_eq!(files, if flushed { 3 } else { 0 });
        stores.push((dir, storage));
    }
    let t = (secs(40) + 1).to_string();
    let (start, end) = (secs(10).to_string(), secs(40).to_string());
    let queries: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "/api/v1/query",
            vec![("query", "sum_over_time(lim[4m])"), ("time", &t)],
        ),
        ("/api/v1/query", vec![("query", "sum(lim)"), ("time", &t)]),
        (
            "/api/v1/query_range",
            vec![
                ("query", "max_over_time(lim[2m])"),
                ("start", &start),
                ("end", &end),
                ("step", "60"),
            ],
        ),
    ];
    for (path, params) in &queries {
        let mut passed_at = Vec::new();
        for (_, storage) in &stores {
            let mut first_pass = None;
            for max_samples in 1..=250 {
                let app = router(
                    storage.clone(),
                    PromApiConfig {
                        max_samples,
                        ..PromApiConfig::default()
                    },
                );
                let (status, v) = get(&app, path, params).await;
                if status == StatusCode::OK {
                    first_pass = Some((max_samples, v["data"].clone()));
                    break;
                }
                assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
            }
            passed_at.push(first_pass.expect("passes under 250 samples"));
        }
        assert!(passed_at[0].0 > 1, "{path} {params:?}: the limit never bit");
        assert_eq!(passed_at[0], passed_at[1], "{path} {params:?}");
    }
}

/// Clients that accept gzip (Grafana's do) get gzipped answers with the same JSON, as
/// Prometheus gives them; others, and answers too small to gain, go out plain.
#[tokio::test]
async fn answers_are_gzipped_for_clients_that_accept_gzip() {
    use std::io::Read;
    let (_dir, _storage, app) = setup().await;
    let uri = format!(
        "/api/v1/query_range?{}",
        qs(&[
            ("query", "{__name__=~\".+\"}"),
            ("start", &secs(0).to_string()),
            ("end", &secs(40).to_string()),
            ("step", "15"),
        ])
    );
    let fetch = |accept: Option<&'static str>, uri: String| {
        let app = app.clone();
        async move {
            let mut req = Request::get(uri);
            if let Some(a) = accept {
                req = req.header("accept-encoding", a);
            }
            let resp = app
                .oneshot(req.body(Body::empty()).expect("request"))
                .await
                .expect("response");
            assert_eq!(resp.status(), StatusCode::OK);
            let encoding = resp
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().expect("ascii").to_string());
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            (encoding, body.to_vec())
        }
    };
    let (plain_enc, plain) = fetch(None, uri.clone()).await;
    assert_eq!(plain_enc, None);
    assert!(plain.len() > 1024, "a range answer worth compressing");
    for accept in ["gzip", "deflate, gzip;q=0.8", "*"] {
        let (enc, packed) = fetch(Some(accept), uri.clone()).await;
        assert_eq!(enc.as_deref(), Some("gzip"), "{accept}");
        assert!(
            packed.len() < plain.len() / 2,
            "{} vs {}",
            packed.len(),
            plain.len()
        );
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .expect("gunzip");
        assert_eq!(unpacked, plain, "{accept}");
    }
    for accept in ["gzip;q=0", "identity", "br"] {
        let (enc, body) = fetch(Some(accept), uri.clone()).await;
        assert_eq!(enc, None, "{accept}");
        assert_eq!(body, plain, "{accept}");
    }
    // A small answer is not worth a gzip frame.
    let small = format!("/api/v1/query?{}", qs(&[("query", "1"), ("time", "100")]));
    let (enc, body) = fetch(Some("gzip"), small).await;
    assert_eq!(enc, None);
    assert!(body.starts_with(b"{\"status\":\"success\""));
}
