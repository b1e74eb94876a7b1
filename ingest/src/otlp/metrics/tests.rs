use super::*;

use strata_proto::opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
use strata_proto::opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary,
    exponential_histogram_data_point::Buckets, summary_data_point::ValueAtQuantile,
};
use strata_proto::opentelemetry_proto::tonic::resource::v1::Resource;
use strata_storage::model::is_stale_marker;

const T0: u64 = 1_700_000_000_000_000_000; // ns
const T0_MS: i64 = 1_700_000_000_000;
const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

fn val(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: val(any_value::Value::StringValue(v.into())),
        ..Default::default()
    }
}

fn kv_any(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: val(v),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("help for {name}"),
        metadata: vec![],
        data: Some(data),
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![resource_metrics(resource, metrics)],
    }
}

fn resource_metrics(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            scope: None,
            metrics,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

fn number(t: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn gauge(points: Vec<NumberDataPoint>) -> metric::Data {
    metric::Data::Gauge(Gauge {
        data_points: points,
    })
}

fn sum(temporality: i32, monotonic: bool, points: Vec<NumberDataPoint>) -> metric::Data {
    metric::Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: temporality,
        is_monotonic: monotonic,
    })
}

fn svc() -> Vec<KeyValue> {
    vec![kv("service.name", "svc")]
}

fn translate(req: &ExportMetricsServiceRequest) -> Translation {
    MetricsTranslator::default().translate(req, &mut DeltaAccumulator::default())
}

fn find<'a>(w: &'a MetricsWrite, l: &Labels) -> &'a Sample {
    let found: Vec<&Sample> = w.samples.iter().filter(|s| &s.labels == l).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one sample for {l}, have {:#?}",
        w.samples
    );
    found[0]
}

fn float(s: &Sample) -> f64 {
    match s.value {
        SampleValue::Float(v) => v,
        SampleValue::Histogram(_) => panic!("{} is a histogram", s.labels),
    }
}

fn hist(s: &Sample) -> &NativeHistogram {
    match &s.value {
        SampleValue::Histogram(h) => h,
        SampleValue::Float(_) => panic!("{} is a float", s.labels),
    }
}

// ---------------------------------------------------------------------------------------------
// Naming
// ---------------------------------------------------------------------------------------------

#[test]
fn metric_names_with_suffixes_follow_prometheus() {
    use NameKind::*;
    let cases = [
        ("simple_metric", "", Gauge, "simple_metric"),
        (
            "metric@with#special$chars",
            "",
            Gauge,
            "metric_with_special_chars",
        ),
        ("123metric", "", Gauge, "_123metric"),
        ("metric@@##$$name", "", Gauge, "metric_name"),
        ("requests", "", MonotonicCounter, "requests_total"),
        ("cpu_usage", "1", Gauge, "cpu_usage_ratio"),
        ("items", "1", MonotonicCounter, "items_total"),
        ("queue.size", "1", NonMonotonicCounter, "queue_size"),
        ("response_time", "ms", Gauge, "response_time_milliseconds"),
        ("memory_usage", "By", Gauge, "memory_usage_bytes"),
        ("requests", "1/s", Gauge, "requests_per_second"),
        ("throughput", "By/s", Gauge, "throughput_bytes_per_second"),
        ("speed", "m/s", Gauge, "speed_meters_per_second"),
        ("transfer", "By/min", Gauge, "transfer_bytes_per_min"),
        (
            "custom_metric",
            "custom_unit",
            Gauge,
            "custom_metric_custom_unit",
        ),
        ("custom_metric", "{custom}", Gauge, "custom_metric"),
        ("custom_metric", "By/{custom}", Gauge, "custom_metric_bytes"),
        (
            "http.requests",
            "{request}",
            MonotonicCounter,
            "http_requests_total",
        ),
        ("requests_total", "", MonotonicCounter, "requests_total"),
        ("total.requests", "", MonotonicCounter, "requests_total"),
        ("cpu_usage_ratio", "1", Gauge, "cpu_usage_ratio"),
        ("response_time_seconds", "s", Gauge, "response_time_seconds"),
        (
            "cpu_seconds_total",
            "s",
            MonotonicCounter,
            "cpu_seconds_total",
        ),
        (
            "otelcol_process_cpu_seconds",
            "s",
            MonotonicCounter,
            "otelcol_process_cpu_seconds_total",
        ),
        (
            "http.server.duration",
            "s",
            Histogram,
            "http_server_duration_seconds",
        ),
        (
            "http.server.request.size",
            "By",
            ExponentialHistogram,
            "http_server_request_size_bytes",
        ),
        ("rpc.latency", "ms", Summary, "rpc_latency_milliseconds"),
        ("system.io", "By", MonotonicCounter, "system_io_bytes_total"),
        ("temperature", "Cel", Gauge, "temperature_celsius"),
        ("disk.usage", "%", Gauge, "disk_usage_percent"),
        ("a__b..c", "", Gauge, "a_b_c"),
        ("job:requests:rate5m", "", Gauge, "job:requests:rate5m"),
        ("éclair", "", Gauge, "clair"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(
            build_metric_name(name, unit, kind, true).as_deref(),
            Ok(want),
            "{name} [{unit}] {kind:?}"
        );
    }
    for bad in ["", "@#$%", "@_#_$_%", "..."] {
        assert!(build_metric_name(bad, "", Gauge, true).is_err(), "{bad:?}");
    }
}

#[test]
fn metric_names_without_suffixes_only_escape() {
    use NameKind::*;
    let cases = [
        (
            "metric@with#special$chars",
            "s",
            Gauge,
            "metric_with_special_chars",
        ),
        ("foo__bar.baz", "s", MonotonicCounter, "foo__bar_baz"),
        ("123metric", "1", Gauge, "_123metric"),
        ("requests", "By", MonotonicCounter, "requests"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(
            build_metric_name(name, unit, kind, false).as_deref(),
            Ok(want)
        );
    }
    assert!(build_metric_name("@#$", "", Gauge, false).is_err());
}

#[test]
fn units_in_metadata() {
    let cases = [
        ("s", "seconds"),
        ("By/s", "bytes_per_second"),
        ("1/s", "per_second"),
        ("1", ""),
        ("{request}", ""),
        ("", ""),
        ("custom_unit", "custom_unit"),
        ("By/{x}", "bytes"),
        ("m/s", "meters_per_second"),
    ];
    for (unit, want) in cases {
        assert_eq!(unit_name(unit), want, "{unit}");
    }
}

#[test]
fn label_names_follow_prometheus_defaults() {
    let cases = [
        ("http.method", "http_method"),
        ("foo..bar", "foo__bar"),
        ("_foo", "key_foo"),
        ("__foo", "__foo"),
        ("__name__", "__name__"),
        ("0abc", "key_0abc"),
        ("k8s.pod.name", "k8s_pod_name"),
        ("ä.b", "__b"),
        ("a:b", "a_b"),
        ("_", "key_"),
    ];
    for (name, want) in cases {
        assert_eq!(sanitize_label_name(name).as_deref(), Ok(want), "{name}");
    }
    for bad in ["", "..", "__"] {
        assert!(sanitize_label_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn attribute_values_render_like_pdata() {
    use any_value::Value;
    let cases = [
        (Value::StringValue("x".into()), "x"),
        (Value::IntValue(-42), "-42"),
        (Value::DoubleValue(1.5), "1.5"),
        (Value::DoubleValue(3.0), "3"),
        (Value::DoubleValue(1e21), "1e+21"),
        (Value::DoubleValue(1.5e-7), "1.5e-7"),
        (Value::BoolValue(true), "true"),
        (Value::BytesValue(b"hello".to_vec()), "aGVsbG8="),
        (Value::BytesValue(vec![0xff, 0xfe]), "//4="),
        (
            Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(Value::IntValue(1)),
                    },
                    AnyValue {
                        value: Some(Value::StringValue("a<b".into())),
                    },
                ],
            }),
            r#"[1,"a\u003cb"]"#,
        ),
        (
            Value::KvlistValue(KeyValueList {
                values: vec![kv("z", "1"), kv_any("a", Value::BoolValue(false))],
            }),
            r#"{"a":false,"z":"1"}"#,
        ),
    ];
    for (v, want) in cases {
        assert_eq!(any_value_string(Some(&AnyValue { value: Some(v) })), want);
    }
    assert_eq!(any_value_string(None), "");
}

// ---------------------------------------------------------------------------------------------
// The example payload
// ---------------------------------------------------------------------------------------------

#[test]
fn example_payload_translates_to_the_expected_series() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/otlp-examples/metrics.json"
    );
    let json = std::fs::read_to_string(path).expect("read metrics.json");
    let req: ExportMetricsServiceRequest = serde_json::from_str(&json).expect("parse");
    let t = translate(&req);
    assert_eq!(t.rejected_points, 0, "{:?}", t.errors);
    assert!(t.errors.is_empty(), "{:?}", t.errors);

    let ts = 1_544_712_660_300;
    let w = &t.write;
    let base = |name: &str, attr: &str| {
        labels(&[
            ("__name__", name),
            ("job", "my.service"),
            (attr, "some value"),
        ])
    };
    let s = find(w, &base("my_counter_total", "my_counter_attr"));
    assert_eq!((s.timestamp_ms, float(s)), (ts, 5.0));
    let s = find(w, &base("my_gauge_ratio", "my_gauge_attr"));
    assert_eq!((s.timestamp_ms, float(s)), (ts, 10.0));

    let h = |name: &str, le: Option<&str>| {
        let mut l = vec![
            ("__name__", name),
            ("job", "my.service"),
            ("my_histogram_attr", "some value"),
        ];
        if let Some(le) = le {
            l.push(("le", le));
        }
        labels(&l)
    };
    assert_eq!(float(find(w, &h("my_histogram_sum", None))), 2.0);
    assert_eq!(float(find(w, &h("my_histogram_count", None))), 2.0);
    assert_eq!(float(find(w, &h("my_histogram_bucket", Some("1")))), 1.0);
    assert_eq!(float(find(w, &h("my_histogram_bucket", Some("+Inf")))), 2.0);

    let e = find(
        w,
        &labels(&[
            ("__name__", "my_exponential_histogram"),
            ("job", "my.service"),
            ("my_exponential_histogram_attr", "some value"),
        ]),
    );
    assert_eq!(e.timestamp_ms, ts);
    assert_eq!(
        *hist(e),
        NativeHistogram {
            schema: 0,
            zero_threshold: DEFAULT_ZERO_THRESHOLD,
            zero_count: 1.0,
            count: 3.0,
            sum: 10.0,
            // OTLP offset 1, counts [0, 2]: OTLP bucket 2 = (4, 8] = Prometheus bucket 3.
            positive_spans: vec![BucketSpan {
                offset: 3,
                length: 1
            }],
            positive_buckets: vec![2.0],
            negative_spans: vec![],
            negative_buckets: vec![],
            counter_reset_hint: 0,
            custom_values: vec![],
        }
    );
    // Only service.name on the resource: no target_info.
    assert_eq!(w.samples.len(), 7);

    let md = |name: &str, t: MetricType, help: &str| MetricMetadata {
        metric_family_name: name.into(),
        metric_type: t,
        unit: String::new(),
        help: help.into(),
    };
    assert_eq!(
        w.metadata,
        vec![
            md("my_counter_total", MetricType::Counter, "I am a Counter"),
            md("my_gauge_ratio", MetricType::Gauge, "I am a Gauge"),
            md("my_histogram", MetricType::Histogram, "I am a Histogram"),
            md(
                "my_exponential_histogram",
                MetricType::Histogram,
                "I am an Exponential Histogram"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Metric kinds
// ---------------------------------------------------------------------------------------------

#[test]
fn gauges_and_sums() {
    let mut int_point = number(T0 + 1_500_000, 0.0, vec![kv("host", "a")]);
    int_point.value = Some(number_data_point::Value::AsInt(7));
    let req = request(
        svc(),
        vec![
            metric("mem.used", "By", gauge(vec![int_point])),
            metric(
                "http.requests",
                "{request}",
                sum(CUMULATIVE, true, vec![number(T0, 3.0, vec![])]),
            ),
            metric(
                "queue.length",
                "{item}",
                sum(CUMULATIVE, false, vec![number(T0, -2.0, vec![])]),
            ),
        ],
    );
    let t = translate(&req);
    assert_eq!(t.rejected_points, 0, "{:?}", t.errors);
    let w = &t.write;
    let s = find(
        w,
        &labels(&[
            ("__name__", "mem_used_bytes"),
            ("job", "svc"),
            ("host", "a"),
        ]),
    );
    assert_eq!((s.timestamp_ms, float(s)), (T0_MS + 1, 7.0));
    let s = find(
        w,
        &labels(&[("__name__", "http_requests_total"), ("job", "svc")]),
    );
    assert_eq!(float(s), 3.0);
    let s = find(w, &labels(&[("__name__", "queue_length"), ("job", "svc")]));
    assert_eq!(float(s), -2.0);

    let types: Vec<(&str, MetricType, &str)> = w
        .metadata
        .iter()
        .map(|m| {
            (
                m.metric_family_name.as_str(),
                m.metric_type,
                m.unit.as_str(),
            )
        })
        .collect();
    assert_eq!(
        types,
        vec![
            ("mem_used_bytes", MetricType::Gauge, "bytes"),
            ("http_requests_total", MetricType::Counter, ""),
            ("queue_length", MetricType::Gauge, ""),
        ]
    );
    assert_eq!(w.metadata[0].help, "help for mem.used");
}

fn histogram_point(
    t: u64,
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: Option<f64>,
) -> HistogramDataPoint {
    HistogramDataPoint {
        time_unix_nano: t,
        count: counts.iter().sum(),
        sum,
        bucket_counts: counts,
        explicit_bounds: bounds,
        ..Default::default()
    }
}

fn histogram(temporality: i32, points: Vec<HistogramDataPoint>) -> metric::Data {
    metric::Data::Histogram(Histogram {
        data_points: points,
        aggregation_temporality: temporality,
    })
}

fn otlp_exemplar(value: f64, trace: &[u8], span: &[u8], attrs: Vec<KeyValue>) -> OtlpExemplar {
    OtlpExemplar {
        filtered_attributes: attrs,
        time_unix_nano: T0 - 5_000_000,
        span_id: span.to_vec(),
        trace_id: trace.to_vec(),
        value: Some(exemplar::Value::AsDouble(value)),
    }
}

#[test]
fn explicit_histograms_become_classic_buckets() {
    let mut p = histogram_point(T0, vec![0.1, 0.5, 2.5], vec![1, 2, 0, 3], Some(7.5));
    p.exemplars = vec![
        otlp_exemplar(3.0, &[0xab; 16], &[0xcd; 8], vec![]),
        otlp_exemplar(0.05, &[0x01; 16], &[0x02; 8], vec![]),
        otlp_exemplar(0.3, &[0x03; 16], &[0x04; 8], vec![]),
    ];
    let no_sum = histogram_point(T0, vec![], vec![], None);
    let req = request(
        svc(),
        vec![
            metric("http.server.duration", "s", histogram(CUMULATIVE, vec![p])),
            metric("jobs", "", histogram(CUMULATIVE, vec![no_sum])),
        ],
    );
    let t = translate(&req);
    assert_eq!(t.rejected_points, 0, "{:?}", t.errors);
    let w = &t.write;
    let l = |name: &str, le: Option<&str>| {
        let mut v = vec![("__name__", name), ("job", "svc")];
        v.extend(le.map(|le| ("le", le)));
        labels(&v)
    };
    let f = "http_server_duration_seconds";
    assert_eq!(float(find(w, &l(&format!("{f}_sum"), None))), 7.5);
    assert_eq!(float(find(w, &l(&format!("{f}_count"), None))), 6.0);
    let bucket = format!("{f}_bucket");
    let expect = [("0.1", 1.0), ("0.5", 3.0), ("2.5", 3.0), ("+Inf", 6.0)];
    for (le, want) in expect {
        assert_eq!(float(find(w, &l(&bucket, Some(le)))), want, "le={le}");
    }
    // Exemplars land in the bucket their value falls in.
    let traces = |le: &str| -> Vec<String> {
        find(w, &l(&bucket, Some(le)))
            .exemplars
            .iter()
            .map(|e| e.labels.get("trace_id").unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(traces("0.1"), vec!["01".repeat(16)]);
    assert_eq!(traces("0.5"), vec!["03".repeat(16)]);
    assert!(traces("2.5").is_empty());
    assert_eq!(traces("+Inf"), vec!["ab".repeat(16)]);
    assert!(
        find(w, &l(&format!("{f}_count"), None))
            .exemplars
            .is_empty()
    );

    // No sum: no _sum series; no buckets: only +Inf.
    assert!(
        w.samples
            .iter()
            .all(|s| s.labels.metric_name() != "jobs_sum")
    );
    assert_eq!(float(find(w, &l("jobs_count", None))), 0.0);
    assert_eq!(float(find(w, &l("jobs_bucket", Some("+Inf")))), 0.0);
    assert_eq!(w.samples.len(), 8);
}

#[test]
fn malformed_histogram_points_are_rejected_alone() {
    let good = histogram_point(T0, vec![1.0], vec![1, 1], Some(1.0));
    let mut mismatched = histogram_point(T0, vec![1.0, 2.0], vec![1, 1], None);
    mismatched.attributes = vec![kv("case", "mismatch")];
    let mut unsorted = histogram_point(T0, vec![2.0, 1.0], vec![1, 1, 1], None);
    unsorted.attributes = vec![kv("case", "unsorted")];
    let mut infinite = histogram_point(T0, vec![f64::INFINITY], vec![1, 1], None);
    infinite.attributes = vec![kv("case", "inf")];
    let req = request(
        svc(),
        vec![metric(
            "h",
            "",
            histogram(CUMULATIVE, vec![mismatched, good, unsorted, infinite]),
        )],
    );
    let t = translate(&req);
    assert_eq!(t.rejected_points, 3);
    assert_eq!(t.errors.len(), 3);
    assert!(
        t.errors[0].contains("2 bucket counts do not match 2 explicit bounds"),
        "{:?}",
        t.errors
    );
    assert!(t.errors[0].contains("case=\"mismatch\""), "{:?}", t.errors);
    assert!(
        t.errors[1].contains("not strictly increasing"),
        "{:?}",
        t.errors
    );
    assert!(t.errors[2].contains("not finite"), "{:?}", t.errors);
    // The good point still landed: _sum, _count, two buckets.
    assert_eq!(t.write.samples.len(), 4);
    assert_eq!(t.write.metadata.len(), 1);
}

fn exp_point(scale: i32, offset: i32, counts: Vec<u64>) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        time_unix_nano: T0,
        count: counts.iter().sum(),
        sum: Some(12.5),
        scale,
        positive: Some(Buckets {
            offset,
            bucket_counts: counts,
        }),
        ..Default::default()
    }
}

fn exp_histogram(temporality: i32, points: Vec<ExponentialHistogramDataPoint>) -> metric::Data {
    metric::Data::ExponentialHistogram(ExponentialHistogram {
        data_points: points,
        aggregation_temporality: temporality,
    })
}

fn exp_sample(t: &Translation) -> &NativeHistogram {
    assert_eq!(t.write.samples.len(), 1, "{:?}", t.errors);
    hist(&t.write.samples[0])
}

#[test]
fn exponential_histograms_keep_their_buckets() {
    let mut p = exp_point(3, -2, vec![1, 0, 2, 0, 0, 0, 0, 4, 5]);
    p.zero_count = 3;
    p.count += 3;
    p.zero_threshold = 0.001;
    p.negative = Some(Buckets {
        offset: 0,
        bucket_counts: vec![6],
    });
    p.count += 6;
    p.exemplars = vec![otlp_exemplar(
        1.25,
        &[0x0f; 16],
        &[],
        vec![kv("user", "u1")],
    )];
    let req = request(
        svc(),
        vec![metric(
            "rpc.duration",
            "ms",
            exp_histogram(CUMULATIVE, vec![p]),
        )],
    );
    let t = translate(&req);
    let h = exp_sample(&t);
    assert_eq!(
        t.write.samples[0].labels,
        labels(&[("__name__", "rpc_duration_milliseconds"), ("job", "svc")])
    );
    assert_eq!(
        *h,
        NativeHistogram {
            schema: 3,
            zero_threshold: 0.001,
            zero_count: 3.0,
            count: 21.0,
            sum: 12.5,
            // OTLP indexes -2, 0 then 5, 6 -> Prometheus -1, 1 (gap 1 filled) then 6, 7.
            positive_spans: vec![
                BucketSpan {
                    offset: -1,
                    length: 3
                },
                BucketSpan {
                    offset: 4,
                    length: 2
                },
            ],
            positive_buckets: vec![1.0, 0.0, 2.0, 4.0, 5.0],
            negative_spans: vec![BucketSpan {
                offset: 1,
                length: 1
            }],
            negative_buckets: vec![6.0],
            counter_reset_hint: 0,
            custom_values: vec![],
        }
    );
    let ex = &t.write.samples[0].exemplars;
    assert_eq!(ex.len(), 1);
    assert_eq!(
        ex[0].labels,
        labels(&[("trace_id", &"0f".repeat(16)), ("user", "u1")])
    );
    assert_eq!(ex[0].timestamp_ms, T0_MS - 5);
    assert_eq!(t.write.metadata[0].metric_type, MetricType::Histogram);
    assert_eq!(t.write.metadata[0].unit, "milliseconds");
}

#[test]
fn exponential_scale_above_8_is_reduced_by_merging_buckets() {
    // Scale 10 -> 8: four OTLP buckets per Prometheus bucket.
    let mut counts = vec![0; 36];
    counts[0] = 1; // OTLP index 5 -> 5 >> 2 = 1 -> Prometheus 2
    counts[35] = 7; // OTLP index 40 -> 10 -> Prometheus 11
    let mut p = exp_point(10, -3, vec![1, 2, 3, 4, 5]);
    p.negative = Some(Buckets {
        offset: 5,
        bucket_counts: counts,
    });
    let t = translate(&request(
        svc(),
        vec![metric("x", "", exp_histogram(CUMULATIVE, vec![p]))],
    ));
    let h = exp_sample(&t);
    assert_eq!(h.schema, 8);
    // OTLP -3, -2, -1 -> -1 -> Prometheus 0; OTLP 0, 1 -> 0 -> Prometheus 1.
    assert_eq!(
        h.positive_spans,
        vec![BucketSpan {
            offset: 0,
            length: 2
        }]
    );
    assert_eq!(h.positive_buckets, vec![6.0, 9.0]);
    assert_eq!(
        h.negative_spans,
        vec![
            BucketSpan {
                offset: 2,
                length: 1
            },
            BucketSpan {
                offset: 8,
                length: 1
            }
        ]
    );
    assert_eq!(h.negative_buckets, vec![1.0, 7.0]);

    // Scale 9 -> 8 keeps bucket boundaries: (2^(i/512), 2^((i+1)/512)] pairs up exactly.
    let p = exp_point(9, 0, vec![1, 1, 1]);
    let t = translate(&request(
        svc(),
        vec![metric("y", "", exp_histogram(CUMULATIVE, vec![p]))],
    ));
    let h = exp_sample(&t);
    assert_eq!(h.schema, 8);
    assert_eq!(h.positive_buckets, vec![2.0, 1.0]);
    assert_eq!(h.positive_spans[0].offset, 1);
}

#[test]
fn extreme_scales_and_offsets_do_not_panic() {
    let p = exp_point(i32::MAX, i32::MIN, vec![1, 2]);
    let t = translate(&request(
        svc(),
        vec![metric("x", "", exp_histogram(CUMULATIVE, vec![p]))],
    ));
    assert_eq!(exp_sample(&t).schema, 8);
    let p = exp_point(0, i32::MAX, vec![1, 2]);
    let t = translate(&request(
        svc(),
        vec![metric("x", "", exp_histogram(CUMULATIVE, vec![p]))],
    ));
    assert_eq!(t.rejected_points, 1);
    assert!(t.errors[0].contains("out of range"), "{:?}", t.errors);
}

#[test]
fn exponential_scale_below_minus_4_is_rejected() {
    let p = exp_point(-5, 0, vec![1]);
    let t = translate(&request(
        svc(),
        vec![metric("x", "", exp_histogram(CUMULATIVE, vec![p]))],
    ));
    assert_eq!(t.rejected_points, 1);
    assert!(t.errors[0].contains("scale -5"), "{:?}", t.errors);
    assert!(t.write.samples.is_empty());
    assert!(t.write.metadata.is_empty());
}

#[test]
fn summaries() {
    let p = SummaryDataPoint {
        time_unix_nano: T0,
        count: 10,
        sum: 4.5,
        quantile_values: vec![
            ValueAtQuantile {
                quantile: 0.5,
                value: 0.3,
            },
            ValueAtQuantile {
                quantile: 0.99,
                value: 1.2,
            },
        ],
        attributes: vec![kv("route", "/a")],
        ..Default::default()
    };
    let req = request(
        svc(),
        vec![metric(
            "rpc.latency",
            "s",
            metric::Data::Summary(Summary {
                data_points: vec![p],
            }),
        )],
    );
    let t = translate(&req);
    let w = &t.write;
    let l = |name: &str, q: Option<&str>| {
        let mut v = vec![("__name__", name), ("job", "svc"), ("route", "/a")];
        v.extend(q.map(|q| ("quantile", q)));
        labels(&v)
    };
    assert_eq!(float(find(w, &l("rpc_latency_seconds_sum", None))), 4.5);
    assert_eq!(float(find(w, &l("rpc_latency_seconds_count", None))), 10.0);
    assert_eq!(float(find(w, &l("rpc_latency_seconds", Some("0.5")))), 0.3);
    assert_eq!(float(find(w, &l("rpc_latency_seconds", Some("0.99")))), 1.2);
    assert_eq!(w.samples.len(), 4);
    assert_eq!(w.metadata[0].metric_type, MetricType::Summary);
}

// ---------------------------------------------------------------------------------------------
// Stale markers
// ---------------------------------------------------------------------------------------------

#[test]
fn no_recorded_value_flag_is_a_stale_marker_on_every_series() {
    let flag = FLAG_NO_RECORDED_VALUE;
    let mut g = number(T0, 1.0, vec![]);
    g.flags = flag;
    g.value = None;
    let mut c = number(T0, 1.0, vec![]);
    c.flags = flag;
    let mut h = histogram_point(T0, vec![1.0, 2.0], vec![1, 2, 3], Some(3.0));
    h.flags = flag;
    let mut e = exp_point(0, 0, vec![1, 2]);
    e.flags = flag;
    let s = SummaryDataPoint {
        time_unix_nano: T0,
        count: 1,
        sum: 1.0,
        quantile_values: vec![ValueAtQuantile {
            quantile: 0.5,
            value: 1.0,
        }],
        flags: flag,
        ..Default::default()
    };
    let req = request(
        svc(),
        vec![
            metric("g", "", gauge(vec![g])),
            metric("c", "", sum(CUMULATIVE, true, vec![c])),
            metric("h", "", histogram(CUMULATIVE, vec![h])),
            metric("e", "", exp_histogram(CUMULATIVE, vec![e])),
            metric(
                "s",
                "",
                metric::Data::Summary(Summary {
                    data_points: vec![s],
                }),
            ),
        ],
    );
    let t = translate(&req);
    assert_eq!(t.rejected_points, 0, "{:?}", t.errors);
    let names: Vec<&str> = t
        .write
        .samples
        .iter()
        .map(|s| s.labels.metric_name())
        .collect();
    assert_eq!(
        names,
        vec![
            "g", "c_total", "h_sum", "h_count", "h_bucket", "h_bucket", "h_bucket", "e", "s_sum",
            "s_count", "s"
        ]
    );
    for s in &t.write.samples {
        match &s.value {
            SampleValue::Float(v) => assert!(is_stale_marker(*v), "{}", s.labels),
            SampleValue::Histogram(h) => {
                assert!(
                    is_stale_marker(h.sum) && is_stale_marker(h.count),
                    "{}",
                    s.labels
                );
            }
        }
        assert_eq!(s.timestamp_ms, T0_MS);
    }
}

// ---------------------------------------------------------------------------------------------
// Resource attributes, labels, target_info
// ---------------------------------------------------------------------------------------------

#[test]
fn resource_attributes_job_instance_promotion_and_target_info() {
    let resource = vec![
        kv("service.name", "checkout"),
        kv("service.namespace", "shop"),
        kv("service.instance.id", "pod-1"),
        kv("k8s.namespace.name", "prod"),
        kv("deployment.environment", "staging"),
        kv_any("host.cpus", any_value::Value::IntValue(8)),
    ];
    let points = vec![
        number(
            T0,
            1.0,
            vec![kv("job", "ignored"), kv("__name__", "ignored")],
        ),
        number(
            T0 + 400_000_000_000,
            2.0,
            vec![kv("deployment.environment", "from-point")],
        ),
    ];
    let translator = MetricsTranslator::new(TranslationConfig {
        promote_resource_attributes: vec![
            "k8s.namespace.name".into(),
            "deployment.environment".into(),
        ],
        add_metric_suffixes: true,
    });
    let t = translator.translate(
        &request(resource, vec![metric("g", "", gauge(points))]),
        &mut DeltaAccumulator::default(),
    );
    assert_eq!(t.rejected_points, 0, "{:?}", t.errors);
    let w = &t.write;
    let id = [("job", "shop/checkout"), ("instance", "pod-1")];
    let with = |extra: &[(&str, &str)]| {
        let mut v = id.to_vec();
        v.extend_from_slice(extra);
        labels(&v)
    };
    let first = find(
        w,
        &with(&[
            ("__name__", "g"),
            ("k8s_namespace_name", "prod"),
            ("deployment_environment", "staging"),
        ]),
    );
    assert_eq!(float(first), 1.0);
    // A data point attribute wins over a promoted resource attribute.
    let second = find(
        w,
        &with(&[
            ("__name__", "g"),
            ("k8s_namespace_name", "prod"),
            ("deployment_environment", "from-point"),
        ]),
    );
    assert_eq!(float(second), 2.0);

    // target_info: the non-identifying attributes, every 2.5 minutes over the points' span.
    let info = with(&[
        ("__name__", "target_info"),
        ("k8s_namespace_name", "prod"),
        ("deployment_environment", "staging"),
        ("host_cpus", "8"),
    ]);
    let times: Vec<i64> = w
        .samples
        .iter()
        .filter(|s| s.labels == info)
        .map(|s| {
            assert_eq!(float(s), 1.0);
            s.timestamp_ms
        })
        .collect();
    assert_eq!(
        times,
        vec![T0_MS, T0_MS + 150_000, T0_MS + 300_000, T0_MS + 400_000]
    );
    assert_eq!(w.samples.len(), 6);
    let info_md = w
        .metadata
        .iter()
        .find(|m| m.metric_family_name == "target_info")
        .map(|m| (m.metric_type, m.help.as_str()));
    assert_eq!(info_md, Some((MetricType::Gauge, "Target metadata")));
}

#[test]
fn target_info_is_deduplicated_and_needs_job_or_instance() {
    let res = vec![kv("service.name", "a"), kv("host.name", "h")];
    let m = || metric("g", "", gauge(vec![number(T0, 1.0, vec![])]));
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![
            resource_metrics(res.clone(), vec![m()]),
            resource_metrics(res, vec![m()]),
            // No service.name nor instance id: no target_info.
            resource_metrics(vec![kv("host.name", "h2")], vec![m()]),
        ],
    };
    let t = translate(&req);
    let infos: Vec<&Sample> = t
        .write
        .samples
        .iter()
        .filter(|s| s.labels.metric_name() == "target_info")
        .collect();
    assert_eq!(infos.len(), 1);
    assert_eq!(
        infos[0].labels,
        labels(&[
            ("__name__", "target_info"),
            ("job", "a"),
            ("host_name", "h")
        ])
    );
    // Metadata is one per family even though three resources sent "g".
    let families: Vec<&str> = t
        .write
        .metadata
        .iter()
        .map(|m| m.metric_family_name.as_str())
        .collect();
    assert_eq!(families, vec!["g", "target_info"]);
}

#[test]
fn colliding_attribute_names_are_joined_and_values_rendered() {
    let attrs = vec![
        kv("a_b", "2"),
        kv("a.b", "1"),
        kv_any("n", any_value::Value::DoubleValue(0.25)),
        kv_any("flag", any_value::Value::BoolValue(true)),
        kv("empty", ""),
    ];
    let t = translate(&request(
        svc(),
        vec![metric("g", "", gauge(vec![number(T0, 1.0, attrs)]))],
    ));
    assert_eq!(
        t.write.samples[0].labels,
        labels(&[
            ("__name__", "g"),
            ("job", "svc"),
            ("a_b", "1;2"),
            ("n", "0.25"),
            ("flag", "true"),
        ])
    );
}

#[test]
fn bad_points_and_metrics_are_rejected_individually() {
    let req = request(
        svc(),
        vec![
            metric(
                "",
                "",
                gauge(vec![number(T0, 1.0, vec![]), number(T0, 2.0, vec![])]),
            ),
            metric("@@@", "", gauge(vec![number(T0, 1.0, vec![])])),
            metric(
                "unspecified",
                "",
                sum(0, true, vec![number(T0, 1.0, vec![])]),
            ),
            metric(
                "g",
                "",
                gauge(vec![
                    number(T0, 1.0, vec![kv("..", "x")]),
                    number(T0, 2.0, vec![kv("ok", "y")]),
                ]),
            ),
            Metric {
                name: "nodata".into(),
                ..Default::default()
            },
        ],
    );
    let t = translate(&req);
    assert_eq!(t.rejected_points, 5, "{:?}", t.errors);
    assert_eq!(t.errors.len(), 5, "{:?}", t.errors);
    assert!(t.errors.iter().any(|e| e.contains("empty name")));
    assert!(t.errors.iter().any(|e| e.contains("\"@@@\"")));
    assert!(t.errors.iter().any(|e| e.contains("temporality")));
    assert!(t.errors.iter().any(|e| e.contains("\"..\"")));
    assert!(t.errors.iter().any(|e| e.contains("nodata")));
    assert_eq!(t.write.samples.len(), 1);
    assert_eq!(
        t.write.samples[0].labels,
        labels(&[("__name__", "g"), ("job", "svc"), ("ok", "y")])
    );
}

#[test]
fn exemplars_carry_hex_ids_and_size_limited_attributes() {
    let mut p = number(T0, 10.0, vec![]);
    let mut int_ex = otlp_exemplar(0.0, &[0xAB, 0x01], &[0x0C], vec![kv("user", "u1")]);
    int_ex.value = Some(exemplar::Value::AsInt(4));
    let long = "x".repeat(100);
    p.exemplars = vec![
        int_ex,
        otlp_exemplar(1.0, &[0x11; 16], &[0x22; 8], vec![kv("long", &long)]),
    ];
    let gauge_point = {
        let mut g = number(T0, 1.0, vec![]);
        g.exemplars = p.exemplars.clone();
        g
    };
    let req = request(
        svc(),
        vec![
            metric("c", "", sum(CUMULATIVE, true, vec![p])),
            metric("g", "", gauge(vec![gauge_point])),
        ],
    );
    let t = translate(&req);
    let c = find(
        &t.write,
        &labels(&[("__name__", "c_total"), ("job", "svc")]),
    );
    assert_eq!(c.exemplars.len(), 2);
    assert_eq!(
        c.exemplars[0],
        Exemplar {
            labels: labels(&[("trace_id", "ab01"), ("span_id", "0c"), ("user", "u1")]),
            value: 4.0,
            timestamp_ms: T0_MS - 5,
        }
    );
    // 8 + 32 + 7 + 16 + 4 + 100 runes > 128: only the ids are kept.
    assert_eq!(
        c.exemplars[1].labels,
        labels(&[("trace_id", &"11".repeat(16)), ("span_id", &"22".repeat(8))])
    );
    // Gauges carry no exemplars (as in Prometheus).
    let g = find(&t.write, &labels(&[("__name__", "g"), ("job", "svc")]));
    assert!(g.exemplars.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Delta temporality
// ---------------------------------------------------------------------------------------------

#[test]
fn delta_sums_accumulate_across_requests() {
    let translator = MetricsTranslator::default();
    let mut deltas = DeltaAccumulator::default();
    let send = |deltas: &mut DeltaAccumulator, points: Vec<NumberDataPoint>| {
        translator.translate(
            &request(
                svc(),
                vec![metric("requests", "", sum(DELTA, true, points))],
            ),
            deltas,
        )
    };
    let t = send(
        &mut deltas,
        vec![
            number(T0, 1.0, vec![kv("k", "a")]),
            number(T0, 10.0, vec![kv("k", "b")]),
            number(T0 + 1_000_000_000, 2.0, vec![kv("k", "a")]),
        ],
    );
    let values: Vec<f64> = t.write.samples.iter().map(float).collect();
    assert_eq!(values, vec![1.0, 10.0, 3.0]);
    assert_eq!(t.write.metadata[0].metric_type, MetricType::Counter);
    assert_eq!(t.write.metadata[0].metric_family_name, "requests_total");

    let t = send(
        &mut deltas,
        vec![number(T0 + 2_000_000_000, 3.0, vec![kv("k", "a")])],
    );
    assert_eq!(float(&t.write.samples[0]), 6.0);

    // A point not newer than the last one would be counted twice: rejected.
    let t = send(
        &mut deltas,
        vec![number(T0 + 2_000_000_000, 3.0, vec![kv("k", "a")])],
    );
    assert_eq!(t.rejected_points, 1);
    assert!(t.errors[0].contains("not newer"), "{:?}", t.errors);

    // A stale point leaves the total alone.
    let mut stale = number(T0 + 3_000_000_000, 100.0, vec![kv("k", "a")]);
    stale.flags = FLAG_NO_RECORDED_VALUE;
    let t = send(&mut deltas, vec![stale]);
    assert!(is_stale_marker(float(&t.write.samples[0])));
    let t = send(
        &mut deltas,
        vec![number(T0 + 4_000_000_000, 1.0, vec![kv("k", "a")])],
    );
    assert_eq!(float(&t.write.samples[0]), 7.0);
    assert_eq!(deltas.len(), 2);
}

#[test]
fn delta_accumulator_evicts_the_oldest_series() {
    let translator = MetricsTranslator::default();
    let mut deltas = DeltaAccumulator::new(2);
    let point = |k: &str, t: u64, v: f64| number(T0 + t, v, vec![kv("k", k)]);
    let send = |deltas: &mut DeltaAccumulator, points| {
        let t = translator.translate(
            &request(svc(), vec![metric("x", "", sum(DELTA, true, points))]),
            deltas,
        );
        t.write.samples.iter().map(float).collect::<Vec<_>>()
    };
    assert_eq!(
        send(&mut deltas, vec![point("a", 0, 1.0), point("b", 0, 1.0)]),
        vec![1.0, 1.0]
    );
    // Touch a, so b is the oldest; c evicts b.
    assert_eq!(
        send(&mut deltas, vec![point("a", 1, 1.0), point("c", 1, 5.0)]),
        vec![2.0, 5.0]
    );
    assert_eq!(deltas.len(), 2);
    let key = |k: &str| labels(&[("__name__", "x_total"), ("job", "svc"), ("k", k)]);
    assert!(deltas.contains(&key("a")) && deltas.contains(&key("c")));
    assert!(!deltas.contains(&key("b")));
    // b starts over.
    assert_eq!(send(&mut deltas, vec![point("b", 2, 1.0)]), vec![1.0]);
    assert!(!deltas.contains(&key("a")));
}

#[test]
fn delta_histograms_accumulate() {
    let translator = MetricsTranslator::default();
    let mut deltas = DeltaAccumulator::default();
    let req = |t: u64, counts: Vec<u64>| {
        request(
            svc(),
            vec![metric(
                "lat",
                "s",
                histogram(
                    DELTA,
                    vec![histogram_point(T0 + t, vec![1.0], counts, Some(1.0))],
                ),
            )],
        )
    };
    translator.translate(&req(0, vec![1, 2]), &mut deltas);
    let t = translator.translate(&req(1, vec![3, 0]), &mut deltas);
    let w = &t.write;
    let l = |name: &str, le: Option<&str>| {
        let mut v = vec![("__name__", name), ("job", "svc")];
        v.extend(le.map(|le| ("le", le)));
        labels(&v)
    };
    assert_eq!(float(find(w, &l("lat_seconds_bucket", Some("1")))), 4.0);
    assert_eq!(float(find(w, &l("lat_seconds_bucket", Some("+Inf")))), 6.0);
    assert_eq!(float(find(w, &l("lat_seconds_count", None))), 6.0);
    assert_eq!(float(find(w, &l("lat_seconds_sum", None))), 2.0);
    assert_eq!(w.metadata[0].metric_type, MetricType::Histogram);

    // Changed bounds start a new total.
    let changed = request(
        svc(),
        vec![metric(
            "lat",
            "s",
            histogram(
                DELTA,
                vec![histogram_point(T0 + 2, vec![2.0], vec![1, 1], Some(1.0))],
            ),
        )],
    );
    let t = translator.translate(&changed, &mut deltas);
    assert_eq!(float(find(&t.write, &l("lat_seconds_count", None))), 2.0);
}

#[test]
fn delta_exponential_histograms_accumulate_at_the_coarser_scale() {
    let translator = MetricsTranslator::default();
    let mut deltas = DeltaAccumulator::default();
    let send = |deltas: &mut DeltaAccumulator, mut p: ExponentialHistogramDataPoint, t: u64| {
        p.time_unix_nano = T0 + t;
        translator.translate(
            &request(svc(), vec![metric("e", "", exp_histogram(DELTA, vec![p]))]),
            deltas,
        )
    };
    let mut first = exp_point(1, 0, vec![1, 1]);
    first.zero_count = 1;
    first.count += 1;
    let t = send(&mut deltas, first, 0);
    let h = exp_sample(&t);
    assert_eq!((h.schema, h.count), (1, 3.0));
    assert_eq!(h.positive_buckets, vec![1.0, 1.0]);

    // Scale 1 buckets (1, 2^0.5] and (2^0.5, 2] merge into scale 0's (1, 2].
    let t = send(&mut deltas, exp_point(0, 0, vec![2]), 1);
    let h = exp_sample(&t);
    assert_eq!(h.schema, 0);
    assert_eq!(h.zero_count, 1.0);
    assert_eq!(h.count, 5.0);
    assert_eq!(h.sum, 25.0);
    assert_eq!(
        h.positive_spans,
        vec![BucketSpan {
            offset: 1,
            length: 1
        }]
    );
    assert_eq!(h.positive_buckets, vec![4.0]);
}

#[test]
fn wider_zero_bucket_absorbs_small_buckets_when_accumulating() {
    let mut a = ExpHistogram::from_otlp(&exp_point(0, -3, vec![1, 1, 1, 1])).expect("a");
    let mut wide = exp_point(0, 0, vec![]);
    wide.zero_threshold = 0.5;
    wide.zero_count = 2;
    wide.count = 2;
    a.add(ExpHistogram::from_otlp(&wide).expect("wide"));
    // Prometheus buckets -2 (.., 0.25], -1 (.., 0.5] fold into the zero bucket; 0 and 1 stay.
    assert_eq!(a.zero_threshold, 0.5);
    assert_eq!(a.zero_count, 4.0);
    assert_eq!(a.positive.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(a.count, 6.0);
}

#[test]
fn timestamps_are_truncated_to_milliseconds() {
    let t = translate(&request(
        svc(),
        vec![metric("g", "", gauge(vec![number(1_999_999, 1.0, vec![])]))],
    ));
    assert_eq!(t.write.samples[0].timestamp_ms, 1);
}

#[test]
fn points_of_resources_over_the_attribute_limit_are_rejected() {
    let limits = crate::limits::Limits {
        max_resource_attributes: 2,
        ..Default::default()
    };
    let big = vec![kv("service.name", "big"), kv("a", "1"), kv("b", "2")];
    let points = vec![number(T0, 1.0, vec![]), number(T0 + 1, 2.0, vec![])];
    let mut req = ExportMetricsServiceRequest {
        resource_metrics: vec![
            resource_metrics(big, vec![metric("g", "", gauge(points.clone()))]),
            resource_metrics(svc(), vec![metric("g", "", gauge(points))]),
        ],
    };
    let (rejected, errors) = reject_oversized_resources(&mut req, &limits);
    assert_eq!(rejected, 2);
    assert_eq!(
        errors,
        vec!["2 points rejected: its resource has 3 attributes, more than the limit of 2"]
    );
    assert_eq!(req.resource_metrics.len(), 1);
    let out = translate(&req);
    assert!(
        out.write
            .samples
            .iter()
            .all(|s| s.labels.get("job") == Some("svc"))
    );
}

/// Each bucket of a histogram point copies the point's labels: a point of large
/// attributes and many buckets (a few hundred KB) would make gigabytes of labels. Past
/// the text limit the request is refused before more samples are made.
#[test]
fn samples_copying_large_labels_past_the_text_limit_refuse_the_request() {
    use strata_proto::opentelemetry_proto::tonic::metrics::v1::{
        Histogram, HistogramDataPoint, ResourceMetrics, ScopeMetrics, metric,
    };
    let request = |buckets: usize| {
        let attributes = (0..50)
            .map(|i| KeyValue {
                key: format!("k{i}"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("v".repeat(2000))),
                }),
                ..Default::default()
            })
            .collect();
        let point = HistogramDataPoint {
            attributes,
            time_unix_nano: 1_700_000_000_000_000_000,
            count: buckets as u64,
            explicit_bounds: (1..buckets).map(|b| b as f64).collect(),
            bucket_counts: vec![1; buckets],
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "latency".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![point],
                            aggregation_temporality: 2,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    };
    let translator = MetricsTranslator::default();
    let mut acc = DeltaAccumulator::new(10);
    // About 100 KB of labels per sample: 100 buckets (and the count) fit in 16 MiB, 200 do not.
    let t = translator
        .translate_limited(&request(100), &mut acc, 16 << 20)
        .expect("fits");
    assert_eq!(t.write.samples.len(), 101, "100 buckets and the count");
    let err = translator
        .translate_limited(&request(200), &mut acc, 16 << 20)
        .expect_err("too much text");
    assert!(matches!(err, strata_storage::Error::TooLarge(_)), "{err}");
    assert!(
        err.to_string()
            .contains("more than 16777216 bytes of labels"),
        "{err}"
    );
}

/// A request refused for its label text after some of its delta points were accumulated
/// takes them back: the request after it totals as if the refused one never came, for
/// updated, added and (to make room) forgotten series alike.
#[test]
fn a_refused_request_leaves_the_delta_totals_untouched() {
    let translator = MetricsTranslator::default();
    let point = |k: &str, t: u64, v: f64| number(T0 + t, v, vec![kv("k", k)]);
    let counter = |points| metric("x", "", sum(DELTA, true, points));
    let buckets = |t: u64, counts: Vec<u64>| {
        metric(
            "latency",
            "",
            histogram(
                DELTA,
                vec![HistogramDataPoint {
                    attributes: vec![kv("k", "h")],
                    ..histogram_point(T0 + t, vec![1.0], counts, Some(1.0))
                }],
            ),
        )
    };
    let first = request(
        svc(),
        vec![
            counter(vec![point("a", 0, 1.0), point("b", 0, 10.0)]),
            buckets(0, vec![1, 2]),
        ],
    );
    // Updates a, the histogram and b, adds c and d (forgetting the oldest two: the
    // accumulator holds 4), then a metric of more label text than allowed.
    let huge = metric(
        "huge",
        "",
        sum(
            DELTA,
            true,
            vec![number(T0, 1.0, vec![kv("big", &"v".repeat(4096))])],
        ),
    );
    let refused = request(
        svc(),
        vec![
            counter(vec![point("a", 1, 100.0), point("b", 1, 100.0)]),
            buckets(1, vec![100, 100]),
            counter(vec![point("c", 1, 100.0), point("d", 1, 100.0)]),
            huge,
        ],
    );
    let next = request(
        svc(),
        vec![
            counter(vec![
                point("a", 2, 2.0),
                point("b", 2, 20.0),
                point("c", 2, 5.0),
            ]),
            buckets(2, vec![3, 4]),
        ],
    );
    let max_text = 2048;
    let totals = |refuse: bool| {
        let mut deltas = DeltaAccumulator::new(4);
        translator
            .translate_limited(&first, &mut deltas, max_text)
            .expect("first fits");
        if refuse {
            let err = translator
                .translate_limited(&refused, &mut deltas, max_text)
                .expect_err("too much label text");
            assert!(matches!(err, strata_storage::Error::TooLarge(_)), "{err}");
        }
        let t = translator
            .translate_limited(&next, &mut deltas, max_text)
            .expect("next fits");
        let key = |k: &str| labels(&[("__name__", "x_total"), ("job", "svc"), ("k", k)]);
        let tracked: Vec<bool> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| deltas.contains(&key(k)))
            .collect();
        let samples: Vec<(String, f64)> = t
            .write
            .samples
            .iter()
            .filter(|s| s.labels.get("__name__") != Some("target_info"))
            .map(|s| (s.labels.to_string(), float(s)))
            .collect();
        (samples, tracked, deltas.len())
    };
    let alone = totals(false);
    assert_eq!(totals(true), alone);
    let values: Vec<f64> = alone.0.iter().map(|(_, v)| *v).collect();
    // a 1+2, b 10+20, c 5 (new), the histogram's sum, count and buckets (1+3, 2+4).
    assert_eq!(&values[..3], &[3.0, 30.0, 5.0], "{alone:?}");
    assert!(
        alone
            .0
            .iter()
            .any(|(l, v)| l.contains("le=\"+Inf\"") && *v == 10.0)
    );
}

/// Rolled back in any order of updates, additions and evictions, the accumulator is as
/// it was: the same totals, times and eviction order.
#[test]
fn rolling_back_restores_totals_times_and_eviction_order() {
    let key = |k: u8| labels(&[("k", &k.to_string())]);
    let mut deltas = DeltaAccumulator::new(3);
    for (i, k) in [1u8, 2, 3].into_iter().enumerate() {
        deltas
            .accumulate(&key(k), 10 + i as u64, DeltaState::Sum(1.0))
            .expect("add");
    }
    let mark = deltas.begin();
    for (t, k) in [(20u64, 1u8), (21, 4), (22, 5), (23, 1), (24, 6), (25, 4)] {
        deltas
            .accumulate(&key(k), t, DeltaState::Sum(7.0))
            .expect("change");
    }
    deltas.roll_back(mark);
    assert_eq!(deltas.len(), 3);
    // Times are back: a point at 11 is not newer than 2's last (11), one at 12 is newer than 1's.
    assert!(
        deltas
            .accumulate(&key(2), 11, DeltaState::Sum(1.0))
            .is_err()
    );
    // Eviction order is back: 1 is the oldest, so a new series forgets it.
    deltas
        .accumulate(&key(9), 30, DeltaState::Sum(1.0))
        .expect("add");
    assert!(!deltas.contains(&key(1)));
    assert!(deltas.contains(&key(2)) && deltas.contains(&key(3)));
    let total = deltas
        .accumulate(&key(3), 31, DeltaState::Sum(1.0))
        .expect("update");
    assert_eq!(total, DeltaState::Sum(2.0), "3's total was kept");
}

/// `target_info` copies the resource's attributes as labels: when that crosses the text
/// limit, the request is refused, not answered as accepted with its samples dropped.
#[test]
fn target_info_past_the_text_limit_refuses_the_request() {
    let resource = vec![
        kv("service.name", "svc"),
        kv("host.description", &"d".repeat(4000)),
    ];
    let req = request(
        resource,
        vec![metric(
            "up",
            "",
            gauge(vec![number(1_700_000_000_000_000_000, 1.0, vec![])]),
        )],
    );
    let translator = MetricsTranslator::default();
    let mut acc = DeltaAccumulator::new(10);
    let fits = translator
        .translate_limited(&req, &mut acc, 1 << 20)
        .expect("fits");
    assert!(
        fits.write
            .samples
            .iter()
            .any(|s| s.labels.get("__name__") == Some("target_info")),
        "target_info written"
    );
    // Room for the gauge's sample but not for target_info's 4 KB of labels.
    let err = translator
        .translate_limited(&req, &mut acc, 1000)
        .expect_err("too much text");
    assert!(matches!(err, strata_storage::Error::TooLarge(_)), "{err}");
}
