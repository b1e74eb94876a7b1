use super::*;
use crate::otlp::traces::convert;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use strata_storage::schema::spans_batch;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn attrs(i: u64) -> Vec<KeyValue> {
    use any_value::Value as V;
    let mut a = vec![
        kv("http.route", V::StringValue(format!("/r{}", i % 3))),
        kv("http.status_code", V::IntValue(200 + (i % 2) as i64 * 300)),
        kv("a.bool", V::BoolValue(i.is_multiple_of(2))),
        kv("q\"uote", V::StringValue("line\nbreak é \u{1}".into())),
        kv(
            "d",
            V::DoubleValue(if i == 3 { f64::NAN } else { 0.5 + i as f64 }),
        ),
        kv("b", V::BytesValue(vec![0, 255, i as u8])),
        kv(
            "arr",
            V::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(V::IntValue(-1)),
                }],
            }),
        ),
        kv(
            "kv",
            V::KvlistValue(KeyValueList {
                values: vec![kv("n", V::StringValue("v".into()))],
            }),
        ),
        KeyValue {
            key: "none".into(),
            value: None,
            ..Default::default()
        },
        KeyValue {
            key: "empty".into(),
            value: Some(AnyValue { value: None }),
            ..Default::default()
        },
    ];
    if i.is_multiple_of(4) {
        // A repeated key: the last one is kept.
        a.push(kv("http.route", V::StringValue("/last".into())));
    }
    a
}

fn request() -> ExportTraceServiceRequest {
    let mut resource_spans = Vec::new();
    for r in 0..3u64 {
        let mut scope_spans = Vec::new();
        for sc in 0..2u64 {
            let mut spans = Vec::new();
            for i in 0..20u64 {
                let n = r * 100 + sc * 20 + i;
                let mut s = Span {
                    trace_id: (0..16).map(|b| (n as u8).wrapping_add(b)).collect(),
                    span_id: (0..8)
                        .map(|b| (n as u8).wrapping_mul(3).wrapping_add(b))
                        .collect(),
                    parent_span_id: if i % 3 == 0 { vec![] } else { vec![7; 8] },
                    trace_state: if i == 1 { "k=v".into() } else { String::new() },
                    flags: (i % 2) as u32 * 257,
                    name: format!("op {i}"),
                    kind: (i % 6) as i32,
                    start_time_unix_nano: 1_700_000_000_000_000_000 + n * 1000,
                    end_time_unix_nano: if i == 5 {
                        0
                    } else {
                        1_700_000_000_000_000_000 + n * 1000 + 77
                    },
                    attributes: attrs(n),
                    dropped_attributes_count: (i % 3) as u32,
                    dropped_events_count: 1,
                    dropped_links_count: 2,
                    ..Default::default()
                };
                if i % 2 == 0 {
                    s.events
                        .push(opentelemetry_proto::tonic::trace::v1::span::Event {
                            time_unix_nano: 5,
                            name: "ev".into(),
                            attributes: attrs(n + 1),
                            dropped_attributes_count: 1,
                        });
                }
                if i % 5 == 0 {
                    s.links
                        .push(opentelemetry_proto::tonic::trace::v1::span::Link {
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            trace_state: "x=y".into(),
                            attributes: attrs(n + 2),
                            dropped_attributes_count: 3,
                            flags: 1,
                        });
                }
                if i % 7 == 0 {
                    s.status = Some(Status {
                        message: "boom".into(),
                        code: 2,
                    });
                }
                match i {
                    // Spans to reject: bad ids, too many attributes.
                    11 => s.trace_id.truncate(3),
                    12 => s.span_id.clear(),
                    13 => s.parent_span_id = vec![1; 5],
                    14 => {
                        s.attributes = (0..300)
                            .map(|k| kv(&format!("k{k}"), any_value::Value::IntValue(k)))
                            .collect()
                    }
                    _ => {}
                }
                spans.push(s);
            }
            scope_spans.push(ScopeSpans {
                scope: (sc == 0).then(|| InstrumentationScope {
                    name: "scope".into(),
                    version: "1".into(),
                    attributes: attrs(9),
                    dropped_attributes_count: 4,
                }),
                spans,
                schema_url: format!("https://scope/{sc}"),
            });
        }
        resource_spans.push(ResourceSpans {
            resource: (r != 1).then(|| Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue(format!("svc{r}")),
                )],
                dropped_attributes_count: 2,
                ..Default::default()
            }),
            scope_spans,
            schema_url: format!("https://resource/{r}"),
        });
    }
    ExportTraceServiceRequest { resource_spans }
}

#[test]
fn the_wire_walk_gives_the_generic_paths_batch() {
    let req = request();
    let limits = Limits::default();
    let body = req.encode_to_vec();
    let wire = decode(&body, &limits, &mut |_, _| {}).expect("plain protobuf takes the wire path");
    let conv = convert(&req, &limits);
    assert_eq!(wire.rejected, conv.rejected);
    assert_eq!(wire.rejected, 4 * 6);
    assert_eq!(wire.errors, conv.errors);
    let batch = wire.builder.finish().expect("batch");
    assert_eq!(batch.num_rows(), conv.spans.len());
    assert_eq!(batch, spans_batch(&conv.spans).expect("generic batch"));
}

#[test]
fn input_the_walk_does_not_take_goes_to_the_generic_path() {
    let limits = Limits::default();
    let body = request().encode_to_vec();
    // Truncated, a group wire type, a bad UTF-8 name.
    assert!(decode(&body[..body.len() - 3], &limits, &mut |_, _| {}).is_none());
    assert!(decode(&[0x0b], &limits, &mut |_, _| {}).is_none());
    let bad_name = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![1; 8],
                    name: "\u{e9}".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut body = bad_name.encode_to_vec();
    let at = body.iter().rposition(|&b| b == 0xa9).expect("name byte");
    body[at] = 0xff;
    assert!(decode(&body, &limits, &mut |_, _| {}).is_none());
    assert!(ExportTraceServiceRequest::decode(body.as_slice()).is_err());
    // An empty body is an empty request.
    let empty = decode(&[], &limits, &mut |_, _| {}).expect("empty");
    assert!(empty.builder.is_empty());
}
