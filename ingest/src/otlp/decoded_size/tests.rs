#![allow(clippy::unwrap_used)]

use super::*;
use crate::protowire::test_encode::{field, varint_field};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use prost::Message;

fn example(name: &str) -> String {
    let path = format!(
        "{}/../../shared/otlp-examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("example")
}

fn ratio(signal: Signal, body: &[u8]) -> f64 {
    estimate(signal, body).expect("well-formed").bytes as f64 / body.len() as f64
}

/// `n` copies of `item` as field `num`, nested in the fields `path` (innermost first).
fn nest(item: &[u8], num: u32, n: usize, path: &[u32]) -> Vec<u8> {
    let mut body = field(num, item).repeat(n);
    for &p in path {
        body = field(p, &body);
    }
    body
}

fn expands(signal: Signal, body: &[u8]) -> Expands {
    match check_protobuf(signal, body) {
        Err(Refusal::Expands(e)) => e,
        Err(Refusal::Malformed(e)) => panic!("malformed: {e}"),
        Ok(()) => panic!("accepted"),
    }
}

#[test]
fn real_requests_take_a_few_times_their_size() {
    let logs: ExportLogsServiceRequest = serde_json::from_str(&example("logs.json")).expect("logs");
    let metrics: ExportMetricsServiceRequest =
        serde_json::from_str(&example("metrics.json")).expect("metrics");
    let (logs, metrics) = (logs.encode_to_vec(), metrics.encode_to_vec());
    assert!(
        ratio(Signal::Logs, &logs) < 4.0,
        "{}",
        ratio(Signal::Logs, &logs)
    );
    assert!(ratio(Signal::Metrics, &metrics) < 4.0);
    // A large body of small but real records (a time, a severity, a short body) and of
    // points with one attribute passes well past the floor.
    let record = LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        severity_number: SeverityNumber::Info as i32,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("ok".into())),
        }),
        ..Default::default()
    };
    let body = nest(&record.encode_to_vec(), 2, 400_000, &[2, 1]);
    assert!(body.len() > MIN_DECODED_BUDGET);
    assert!(check_protobuf(Signal::Logs, &body).is_ok());
    assert!(
        ratio(Signal::Logs, &body) < 10.0,
        "{}",
        ratio(Signal::Logs, &body)
    );
    let point = NumberDataPoint {
        attributes: vec![KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(1)),
            }),
            ..Default::default()
        }],
        time_unix_nano: 1_700_000_000_000_000_000,
        value: Some(Value::AsInt(1)),
        ..Default::default()
    };
    let body = nest(&point.encode_to_vec(), 1, 400_000, &[5, 2, 2, 1]);
    assert!(body.len() > MIN_DECODED_BUDGET);
    assert!(check_protobuf(Signal::Metrics, &body).is_ok());
    // The JSON examples too.
    assert!(check_json(Signal::Logs, example("logs.json").as_bytes()).is_ok());
    assert!(check_json(Signal::Metrics, example("metrics.json").as_bytes()).is_ok());
    assert!(check_json(Signal::Traces, example("trace.json").as_bytes()).is_ok());
}

/// The estimate adds up what prost builds: each struct, each string's bytes.
#[test]
fn the_estimate_counts_structs_and_strings() {
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        severity_text: "INFO".into(),
                        attributes: vec![KeyValue {
                            key: "key".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    };
                    3
                ],
                ..Default::default()
            }],
            schema_url: "0123456789".into(),
            ..Default::default()
        }],
    };
    let tally = estimate(Signal::Logs, &req.encode_to_vec()).expect("ok");
    let structs = size_of::<ExportLogsServiceRequest>()
        + size_of::<ResourceLogs>()
        + size_of::<ScopeLogs>()
        + 3 * (size_of::<LogRecord>() + size_of::<KeyValue>());
    assert_eq!(tally.bytes, structs + 10 + 3 * (4 + 3));
    let (largest, count) = tally.largest().expect("some");
    assert_eq!((largest.name, count), ("LogRecord", 3));
}

#[test]
fn runs_of_empty_items_are_refused_naming_them() {
    let body = nest(b"", 2, 2_000_000, &[2, 1]);
    let e = expands(Signal::Logs, &body);
    assert_eq!((e.body_bytes, e.limit), (body.len(), 16 * body.len()));
    let msg = e.to_string();
    assert!(
        msg.contains("2000000 LogRecord messages of 184 bytes each"),
        "{msg}"
    );
    assert!(
        msg.contains("the 4000010-byte request would take about"),
        "{msg}"
    );
    // Empty attributes of one record, of a resource, deep in a body's array.
    let e = expands(Signal::Logs, &nest(b"", 6, 2_000_000, &[2, 2, 1]));
    assert!(e.holds.starts_with("2000000 KeyValue"), "{}", e.holds);
    let e = expands(Signal::Logs, &nest(b"", 1, 2_000_000, &[1, 1]));
    assert!(e.holds.starts_with("2000000 KeyValue"), "{}", e.holds);
    let e = expands(Signal::Logs, &nest(b"", 1, 2_000_000, &[5, 5, 2, 2, 1]));
    assert!(e.holds.starts_with("2000000 AnyValue"), "{}", e.holds);
    // Metrics: points of each kind, exemplars, quantiles, metrics.
    for (data, item) in [
        (5, "NumberDataPoint"),
        (7, "NumberDataPoint"),
        (9, "HistogramDataPoint"),
        (10, "ExponentialHistogramDataPoint"),
        (11, "SummaryDataPoint"),
    ] {
        let e = expands(Signal::Metrics, &nest(b"", 1, 2_000_000, &[data, 2, 2, 1]));
        assert!(
            e.holds.starts_with(&format!("2000000 {item} ")),
            "{}",
            e.holds
        );
    }
    let e = expands(Signal::Metrics, &nest(b"", 5, 2_000_000, &[1, 5, 2, 2, 1]));
    assert!(e.holds.starts_with("2000000 Exemplar "), "{}", e.holds);
    let e = expands(Signal::Metrics, &nest(b"", 2, 2_000_000, &[2, 1]));
    assert!(e.holds.starts_with("2000000 Metric "), "{}", e.holds);
    // Packed varint bucket counts: 1 byte each on the wire, 8 in memory; a few million
    // make no more than 8 times the body (under the limit), as prost builds them.
    let buckets = field(2, &vec![1u8; 4_000_000]);
    let body = nest(&field(8, &buckets), 1, 1, &[10, 2, 2, 1]);
    let r = ratio(Signal::Metrics, &body);
    assert!((7.9..8.1).contains(&r), "{r}");
    // A small body is never refused, however empty its items.
    assert!(check_protobuf(Signal::Logs, &nest(b"", 2, 10_000, &[2, 1])).is_ok());
}

#[test]
fn unknown_fields_cost_nothing_and_strings_their_length() {
    // A record of unknown fields only, and a record of a long unknown string.
    let unknown = [varint_field(99, 1), field(98, &[0; 100])].concat();
    let body = nest(&unknown, 2, 1, &[2, 1]);
    let tally = estimate(Signal::Logs, &body).expect("ok");
    let structs = size_of::<ExportLogsServiceRequest>()
        + size_of::<ResourceLogs>()
        + size_of::<ScopeLogs>()
        + size_of::<LogRecord>();
    assert_eq!(tally.bytes, structs);
    let text = nest(&field(3, &[b'x'; 100]), 2, 1, &[2, 1]);
    assert_eq!(
        estimate(Signal::Logs, &text).expect("ok").bytes,
        structs + 100
    );
}

/// A malformed body is refused as prost refuses it, by the walk (framing) or by prost
/// after it (what the walk leaves to it), never accepted.
#[test]
fn malformed_bodies_are_refused_as_prost_refuses_them() {
    fn pipeline(signal: Signal, body: &[u8]) -> Result<(), String> {
        match check_protobuf(signal, body) {
            Err(Refusal::Malformed(e)) => {
                return Err(format!("failed to decode Protobuf message: {e}"));
            }
            Err(Refusal::Expands(e)) => panic!("{e}"),
            Ok(()) => {}
        }
        let decoded = match signal {
            Signal::Logs => ExportLogsServiceRequest::decode(body).map(|_| ()),
            _ => ExportMetricsServiceRequest::decode(body).map(|_| ()),
        };
        decoded.map_err(|e| e.to_string())
    }
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); 3],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default(); 2],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let in_record = |extra: &[u8]| nest(extra, 2, 1, &[2, 1]);
    let cases: Vec<(&str, Signal, Vec<u8>)> = vec![
        ("truncated", Signal::Logs, logs[..logs.len() - 1].to_vec()),
        (
            "a malformed tail",
            Signal::Logs,
            [logs.clone(), vec![0x0a, 0x7f]].concat(),
        ),
        (
            "a truncated metric",
            Signal::Metrics,
            metrics[..metrics.len() - 2].to_vec(),
        ),
        (
            "a field number 0",
            Signal::Metrics,
            [metrics.clone(), vec![0x02, 0x00]].concat(),
        ),
        (
            "a body that is a varint",
            Signal::Logs,
            in_record(&field(5, &varint_field(1, 1))),
        ),
        (
            "a bad UTF-8 severity text",
            Signal::Logs,
            in_record(&field(3, &[0xff])),
        ),
        (
            "a time of the wrong wire type",
            Signal::Logs,
            in_record(&field(1, &[0; 100])[..10]),
        ),
        ("a wire type 7", Signal::Logs, in_record(&[0x0f])),
    ];
    for (what, signal, body) in cases {
        let theirs = match signal {
            Signal::Logs => ExportLogsServiceRequest::decode(body.as_slice()).map(|_| ()),
            _ => ExportMetricsServiceRequest::decode(body.as_slice()).map(|_| ()),
        }
        .expect_err(what)
        .to_string();
        assert_eq!(pipeline(signal, &body), Err(theirs), "{what}");
    }
}

#[test]
fn json_objects_are_counted_outside_strings() {
    let empties = vec!["{}"; 1_500_000].join(",");
    let body = format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{empties}]}}]}}]}}"#);
    let e = match check_json(Signal::Logs, body.as_bytes()) {
        Err(Refusal::Expands(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(
        e.holds
            .starts_with("1500003 JSON objects of up to 184 bytes each"),
        "{}",
        e.holds
    );
    assert_eq!((e.times, e.limit), (MAX_JSON_EXPANSION, 32 * body.len()));
    // Spans of many small attributes (two objects each) pass, well past the floor.
    let attribute = r#"{"key":"a","value":{"intValue":1}}"#;
    let attributes = vec![attribute; 40].join(",");
    let span = format!(r#"{{"name":"op","attributes":[{attributes}]}}"#);
    let spans = vec![span.as_str(); 7000].join(",");
    let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    assert!(body.len() > 2 * MIN_DECODED_BUDGET);
    assert!(check_json(Signal::Traces, body.as_bytes()).is_ok());
    // Braces inside strings (escaped quotes too) are text.
    let text = "{\\\"{".repeat(1_500_000);
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{text}"}}}}]}}]}}]}}"#
    );
    assert!(check_json(Signal::Logs, body.as_bytes()).is_ok());
}

/// Every message type a walk can reach is in `ALL` (whose ids are checked when compiled),
/// so no two types share a count.
#[test]
fn every_reachable_schema_is_counted_by_its_own_id() {
    let mut seen: Vec<&'static Schema> = Vec::new();
    let mut todo = vec![&LOGS_REQUEST, &METRICS_REQUEST];
    while let Some(s) = todo.pop() {
        if seen.iter().any(|x| std::ptr::eq(*x, s)) {
            continue;
        }
        seen.push(s);
        assert!(
            ALL.get(s.id).is_some_and(|a| std::ptr::eq(*a, s)),
            "{} is not ALL[{}]",
            s.name,
            s.id
        );
        for (_, c) in s.children {
            if let Child::Repeated(c) | Child::Inline(c) = c {
                todo.push(c);
            }
        }
    }
    assert_eq!(seen.len(), SCHEMAS, "every schema in ALL is reachable");
}
