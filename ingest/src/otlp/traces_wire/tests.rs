use super::*;
use crate::otlp::traces::convert;
use crate::protowire::test_encode::{field, varint_field};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use strata_storage::schema::spans_batch;

thread_local! {
    /// How many scope origins the wire walk built on this thread.
    pub(super) static ORIGINS_MADE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

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

fn many_attrs(n: i64) -> Vec<KeyValue> {
    (0..n)
        .map(|k| kv(&format!("k{k}"), any_value::Value::IntValue(k)))
        .collect()
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
                    // One event and one link over the limits of 128.
                    15 => s.events = vec![Default::default(); 129],
                    16 => s.links = vec![Default::default(); 129],
                    // Exactly at the limits: stored.
                    17 => {
                        s.events = vec![Default::default(); 128];
                        s.links = vec![Default::default(); 128];
                    }
                    // An event and a link over the attribute limit.
                    18 => s.events[0].attributes = many_attrs(257),
                    19 => {
                        s.links = vec![opentelemetry_proto::tonic::trace::v1::span::Link {
                            attributes: many_attrs(300),
                            ..Default::default()
                        }]
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
            // A scope without spans: nothing stored from it.
            scope_spans.push(ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "empty".into(),
                    ..Default::default()
                }),
                spans: vec![],
                schema_url: String::new(),
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
    let conv = convert(&req, &limits).expect("generic path");
    assert_eq!(wire.rejected, conv.rejected);
    assert_eq!(wire.rejected, 8 * 6);
    assert!(
        wire.errors
            .iter()
            .any(|e| e.ends_with("an event has 257 attributes, more than the limit of 256")),
        "{:?}",
        wire.errors
    );
    assert_eq!(wire.errors, conv.errors);
    let batch = wire.builder.finish().expect("batch");
    assert_eq!(batch.num_rows(), conv.spans.len());
    assert_eq!(batch, spans_batch(&conv.spans).expect("generic batch"));
}

/// An unknown group (field 19) holding a varint and a nested group.
fn unknown_group() -> Vec<u8> {
    use prost::encoding::{WireType, encode_key};
    let mut out = Vec::new();
    encode_key(19, WireType::StartGroup, &mut out);
    out.extend(varint_field(1, 5));
    encode_key(20, WireType::StartGroup, &mut out);
    encode_key(20, WireType::EndGroup, &mut out);
    encode_key(19, WireType::EndGroup, &mut out);
    out
}

fn any(v: any_value::Value) -> Vec<u8> {
    AnyValue { value: Some(v) }.encode_to_vec()
}

fn int_array(values: &[i64]) -> any_value::Value {
    any_value::Value::ArrayValue(ArrayValue {
        values: values
            .iter()
            .map(|v| AnyValue {
                value: Some(any_value::Value::IntValue(*v)),
            })
            .collect(),
    })
}

/// An array nested `depth` times around an int.
fn nested_array(depth: usize) -> Vec<u8> {
    let mut v = any(any_value::Value::IntValue(1));
    for _ in 0..depth {
        v = field(5, &field(1, &v));
    }
    v
}

fn request_of(rs: &[u8]) -> Vec<u8> {
    field(1, rs)
}

/// Valid requests in forms a plain encoder does not write, each as resource-spans bytes:
/// singular messages given more than once (protobuf merges them), singular scalars and
/// strings given twice (the last wins), oneof values switched and merged, unknown fields
/// of every wire type (groups too), deep nesting within prost's limit.
fn unusual_requests() -> Vec<(&'static str, Vec<u8>)> {
    use any_value::Value as V;
    let span = good_span().encode_to_vec();
    let scope_spans = |span: &[u8]| field(2, &field(2, span));
    let kv = |parts: &[Vec<u8>]| field(9, &parts.concat());
    let resource = |k: &str, v: &str| {
        Resource {
            attributes: vec![kv_pair(k, V::StringValue(v.into()))],
            dropped_attributes_count: 3,
            ..Default::default()
        }
        .encode_to_vec()
    };
    let scope = InstrumentationScope {
        name: "lib".into(),
        version: "1".into(),
        attributes: vec![kv_pair("s", V::IntValue(1))],
        dropped_attributes_count: 2,
    }
    .encode_to_vec();
    vec![
        (
            "resource given three times: attributes appended, the first service.name kept",
            [
                field(1, &resource("service.name", "a")),
                scope_spans(&span),
                field(1, &resource("service.name", "b")),
                field(1, &varint_field(2, 9)),
            ]
            .concat(),
        ),
        (
            "service.name's value given twice: the merged string is the service",
            [
                field(
                    1,
                    &field(
                        1,
                        &[
                            field(1, b"service.name"),
                            field(2, &field(1, b"a")),
                            field(2, &field(1, b"b")),
                        ]
                        .concat(),
                    ),
                ),
                scope_spans(&span),
            ]
            .concat(),
        ),
        (
            "service.name's value given twice, both empty: no service",
            [
                field(
                    1,
                    &field(
                        1,
                        &[field(1, b"service.name"), field(2, b""), field(2, b"")].concat(),
                    ),
                ),
                scope_spans(&span),
            ]
            .concat(),
        ),
        (
            "scope given twice, schema URLs twice",
            [
                field(
                    2,
                    &[
                        field(1, &scope),
                        field(2, &span),
                        field(3, b"u1"),
                        field(1, &field(1, b"lib2")),
                        field(3, b"u2"),
                    ]
                    .concat(),
                ),
                field(3, b"r1"),
                field(3, b"r2"),
            ]
            .concat(),
        ),
        (
            "status given twice, name twice, an unknown group",
            scope_spans(
                &[
                    span.clone(),
                    field(15, &field(2, b"first")),
                    field(15, &varint_field(3, 2)),
                    field(5, b"second name"),
                    unknown_group(),
                ]
                .concat(),
            ),
        ),
        (
            "attribute values given twice, oneofs switched and merged",
            scope_spans(
                &[
                    span.clone(),
                    // Two arrays: merged.
                    kv(&[
                        field(1, b"arr"),
                        field(2, &any(int_array(&[1]))),
                        field(2, &any(int_array(&[2, 3]))),
                    ]),
                    // A string then an int in one value: the int.
                    kv(&[
                        field(1, b"switched"),
                        field(2, &[field(1, b"s"), varint_field(3, 7)].concat()),
                    ]),
                    // An array, a string, then two kvlists: the kvlists merged.
                    kv(&[
                        field(1, b"kvl"),
                        field(2, &any(int_array(&[9]))),
                        field(2, &field(1, b"gone")),
                        field(
                            2,
                            &any(V::KvlistValue(KeyValueList {
                                values: vec![kv_pair("x", V::IntValue(1))],
                            })),
                        ),
                        field(
                            2,
                            &any(V::KvlistValue(KeyValueList {
                                values: vec![kv_pair("y", V::BoolValue(true))],
                            })),
                        ),
                    ]),
                    // A key given twice; a double, bytes and a string index.
                    kv(&[
                        field(1, b"old"),
                        field(1, b"key"),
                        field(2, &any(V::DoubleValue(2.5))),
                    ]),
                    kv(&[
                        field(1, b"bytes"),
                        field(2, &any(V::BytesValue(vec![1, 2]))),
                    ]),
                    kv(&[
                        field(1, b"idx"),
                        field(2, &any(V::StringValueStrindex(-4))),
                        varint_field(3, 1),
                    ]),
                    kv(&[field(1, b"deep"), field(2, &nested_array(40))]),
                    kv(&[field(1, b"empty"), field(2, &[])]),
                    kv(&[
                        field(1, b"unknown"),
                        field(2, &[unknown_group(), varint_field(9, 1)].concat()),
                    ]),
                ]
                .concat(),
            ),
        ),
        (
            "events and links with fields given twice",
            scope_spans(
                &[
                    span.clone(),
                    field(
                        11,
                        &[
                            field(2, b"e1"),
                            field(2, b"e2"),
                            vec![1 << 3 | 1, 1, 0, 0, 0, 0, 0, 0, 0],
                            field(
                                3,
                                &[field(1, b"a"), field(2, &any(int_array(&[5])))].concat(),
                            ),
                            unknown_group(),
                        ]
                        .concat(),
                    ),
                    field(
                        13,
                        &[
                            field(1, &[7; 16]),
                            field(1, &[8; 3]),
                            field(3, b"ts"),
                            vec![6 << 3 | 5, 1, 0, 0, 0],
                            varint_field(5, 4),
                        ]
                        .concat(),
                    ),
                    field(11, &[]),
                ]
                .concat(),
            ),
        ),
    ]
}

fn kv_pair(key: &str, v: any_value::Value) -> KeyValue {
    kv(key, v)
}

#[test]
fn unusual_but_valid_requests_give_the_generic_paths_batch() {
    let limits = Limits::default();
    for (what, rs) in unusual_requests() {
        let body = request_of(&rs);
        let req = ExportTraceServiceRequest::decode(body.as_slice())
            .unwrap_or_else(|e| panic!("{what}: prost: {e}"));
        let wire = decode(&body, &limits, &mut |_, _| {}).unwrap_or_else(|e| panic!("{what}: {e}"));
        let conv = convert(&req, &limits).expect("generic path");
        assert_eq!(
            (wire.rejected, &wire.errors),
            (conv.rejected, &conv.errors),
            "{what}"
        );
        let batch = wire.builder.finish().expect("batch");
        assert_eq!(batch.num_rows(), 1, "{what}");
        assert_eq!(
            batch,
            spans_batch(&conv.spans).expect("generic batch"),
            "{what}"
        );
    }
}

/// Malformed requests are refused by the walk itself with prost's description of what
/// was wrong and where (prost is run here only to compare).
#[test]
fn malformed_requests_are_refused_naming_the_field() {
    let limits = Limits::default();
    let body = request().encode_to_vec();
    let span = good_span().encode_to_vec();
    let in_span = |extra: &[u8]| {
        request_of(&field(
            2,
            &field(2, &[span.clone(), extra.to_vec()].concat()),
        ))
    };
    let mut bad_name = in_span(&field(5, "é".as_bytes()));
    let at = bad_name.iter().rposition(|&b| b == 0xa9).expect("é");
    bad_name[at] = 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", body[..body.len() - 3].to_vec()),
        (
            "a malformed tail",
            [body.clone(), vec![0x0a, 0x7f]].concat(),
        ),
        ("an end group without a start", vec![0x0c]),
        ("a bad UTF-8 name", bad_name),
        ("a name that is a varint", in_span(&varint_field(5, 1))),
        (
            "a start time of the wrong size",
            in_span(&varint_field(7, 1)),
        ),
        (
            "a status code that is a string",
            in_span(&field(15, &field(3, b"x"))),
        ),
        (
            "a bad UTF-8 string deep in an attribute",
            in_span(&field(
                9,
                &field(2, &field(5, &field(1, &field(1, &[0xff])))),
            )),
        ),
        (
            "an array nested past prost's limit",
            in_span(&field(9, &field(2, &nested_array(60)))),
        ),
        (
            "a second resource that is malformed",
            request_of(&[field(1, &[]), field(1, &[0x08])].concat()),
        ),
        (
            "an event's attribute of the wrong type",
            in_span(&field(11, &varint_field(3, 1))),
        ),
        (
            "a field number 0",
            [body.clone(), vec![0x02, 0x00]].concat(),
        ),
        ("a wire type 7", in_span(&[0x0f])),
    ];
    for (what, body) in cases {
        let theirs = ExportTraceServiceRequest::decode(body.as_slice())
            .expect_err(what)
            .to_string();
        let ours = match decode(&body, &limits, &mut |_, _| {}) {
            Ok(_) => panic!("{what}: accepted; prost says {theirs}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            format!("failed to decode Protobuf message: {ours}"),
            theirs,
            "{what}"
        );
    }
    // An array nested as deep as prost allows is taken.
    let ok = in_span(&field(9, &field(2, &nested_array(47))));
    assert!(ExportTraceServiceRequest::decode(ok.as_slice()).is_ok());
    assert!(decode(&ok, &limits, &mut |_, _| {}).is_ok());
    // An empty body is an empty request.
    let empty = decode(&[], &limits, &mut |_, _| {}).expect("empty");
    assert!(empty.builder.is_empty());
}

/// The body of a one-span request, with `marker` (a string in the span) made invalid
/// UTF-8 in place: what prost refuses wherever it sits.
fn corrupted(span: Span, marker: &str) -> Vec<u8> {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut body = req.encode_to_vec();
    let at = body
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("marker in body");
    body[at] = 0xff;
    body
}

fn array_of(text: &str) -> any_value::Value {
    any_value::Value::ArrayValue(ArrayValue {
        values: vec![AnyValue {
            value: Some(any_value::Value::StringValue(text.into())),
        }],
    })
}

fn good_span() -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "s".into(),
        ..Default::default()
    }
}

/// A span rejected for its ids or its counts may still hold malformed protobuf: prost
/// refuses the request (400), and the wire walk must not answer 200 with a rejection.
#[test]
fn malformed_content_of_rejected_spans_is_refused_on_both_paths() {
    let limits = Limits::default();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // A bad trace id, and a malformed array value among its attributes.
    let mut s = good_span();
    s.trace_id.truncate(3);
    s.attributes = vec![kv("arr", array_of("MALFORMED"))];
    cases.push((
        "array value of a span with a bad id",
        corrupted(s, "MALFORMED"),
    ));
    // Over the attribute limit, the malformed value within it and past it.
    for at in [5usize, 290] {
        let mut s = good_span();
        s.attributes = (0..300)
            .map(|k| kv(&format!("k{k}"), any_value::Value::IntValue(k)))
            .collect();
        s.attributes[at] = kv("arr", array_of("MALFORMED"));
        cases.push((
            "array value of a span over the attribute limit",
            corrupted(s, "MALFORMED"),
        ));
    }
    // Over the event limit, a malformed event within it and past it.
    for at in [0usize, 200] {
        let mut s = good_span();
        s.events = vec![Default::default(); 201];
        s.events[at].name = "MALFORMED".into();
        cases.push((
            "event of a span over the event limit",
            corrupted(s, "MALFORMED"),
        ));
    }
    // Over the link limit, a malformed link attribute past it; a bad id and a bad link.
    let mut s = good_span();
    s.links = vec![Default::default(); 200];
    s.links[150].attributes = vec![kv("a", array_of("MALFORMED"))];
    cases.push((
        "link of a span over the link limit",
        corrupted(s, "MALFORMED"),
    ));
    let mut s = good_span();
    s.span_id.clear();
    s.links = vec![Default::default(); 2];
    s.links[1].trace_state = "MALFORMED".into();
    cases.push(("link of a span with a bad id", corrupted(s, "MALFORMED")));
    for (what, body) in cases {
        assert!(
            ExportTraceServiceRequest::decode(body.as_slice()).is_err(),
            "{what}: prost refuses it"
        );
        assert!(
            decode(&body, &limits, &mut |_, _| {}).is_err(),
            "{what}: the wire walk refuses it"
        );
    }
}

#[test]
fn spans_over_the_event_or_link_limits_are_rejected_alone_on_both_paths() {
    let limits = Limits {
        max_events_per_span: 3,
        max_links_per_span: 2,
        ..Limits::default()
    };
    let mut spans = Vec::new();
    for (events, links) in [(3, 2), (4, 0), (0, 3), (0, 0)] {
        let mut s = good_span();
        s.name = format!("e{events} l{links}");
        s.events = vec![Default::default(); events];
        s.links = vec![Default::default(); links];
        spans.push(s);
    }
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let body = req.encode_to_vec();
    let wire = decode(&body, &limits, &mut |_, _| {}).expect("wire path");
    let conv = convert(&req, &limits).expect("generic path");
    assert_eq!(
        wire.errors,
        vec![
            "span \"e4 l0\" rejected: 4 events, more than the limit of 3".to_owned(),
            "span \"e0 l3\" rejected: 3 links, more than the limit of 2".to_owned(),
        ]
    );
    assert_eq!(wire.errors, conv.errors);
    assert_eq!((wire.rejected, conv.rejected), (2, 2));
    let batch = wire.builder.finish().expect("batch");
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(batch, spans_batch(&conv.spans).expect("generic batch"));
}

/// Walks one span on its own, with an empty origin.
fn one_span_alone<'a>(
    b: Fields<'a>,
    limits: &Limits,
    out: &mut WireSpans,
    scratch: &mut Scratch<'a>,
) {
    let (mut built, mut make) = (None, || Ok(crate::otlp::common::origin(None, "", None, "")));
    let origin = OriginOnce {
        built: &mut built,
        make: &mut make,
    };
    one_span(b, origin, None, limits, out, scratch, &mut |_, _| {}).expect("well-formed");
}

/// Attributes, events and links past their limits are counted, not collected: a span of
/// hundreds of thousands of empty links costs no list of them.
#[test]
fn items_past_the_limits_are_not_collected() {
    let limits = Limits::default();
    let mut s = good_span();
    s.attributes = (0..10_000)
        .map(|k| kv("k", any_value::Value::IntValue(k)))
        .collect();
    s.events = vec![Default::default(); 10_000];
    s.links = vec![Default::default(); 300_000];
    let b = s.encode_to_vec();
    let b = Fields::new(&b);
    let mut out = WireSpans {
        builder: SpansBuilder::with_capacity(0),
        rejected: 0,
        errors: Vec::new(),
        too_large: None,
    };
    let mut scratch = Scratch::default();
    one_span_alone(b, &limits, &mut out, &mut scratch);
    assert_eq!(out.rejected, 1);
    assert_eq!(
        out.errors,
        vec!["span \"s\" rejected: 10000 attributes, more than the limit of 256".to_owned()]
    );
    assert_eq!(scratch.attrs.len(), limits.max_attributes_per_item);
    assert_eq!(
        scratch.events_json.matches("time_ns").count(),
        limits.max_events_per_span
    );
    assert_eq!(
        scratch.links_json.matches("trace_id").count(),
        limits.max_links_per_span
    );

    // An event of 200,000 attributes: counted, never decoded into a list.
    let mut s = good_span();
    s.events = vec![opentelemetry_proto::tonic::trace::v1::span::Event {
        attributes: vec![KeyValue::default(); 200_000],
        ..Default::default()
    }];
    let b = s.encode_to_vec();
    let b = Fields::new(&b);
    one_span_alone(b, &limits, &mut out, &mut scratch);
    assert_eq!(out.rejected, 2);
    assert_eq!(
        out.errors[1],
        "span \"s\" rejected: an event has 200000 attributes, more than the limit of 256"
    );
}

/// One large resource and many scopes without spans: the resource's JSON is written once
/// (it was written for every scope, 20 GB of JSON here), and nothing is stored from the
/// empty scopes. The request takes milliseconds; the bound leaves room for a loaded
/// machine.
#[test]
fn empty_scopes_do_not_rebuild_a_large_resource() {
    let limits = Limits::default();
    let resource = Resource {
        attributes: vec![kv(
            "big",
            any_value::Value::StringValue("x".repeat(1 << 20)),
        )],
        ..Default::default()
    };
    let mut scope_spans = vec![ScopeSpans::default(); 20_000];
    scope_spans[10_000].spans.push(good_span());
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans,
            ..Default::default()
        }],
    };
    let body = req.encode_to_vec();
    let t = std::time::Instant::now();
    let wire = decode(&body, &limits, &mut |_, _| {}).expect("wire path");
    let conv = convert(&req, &limits).expect("generic path");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    let batch = wire.builder.finish().expect("batch");
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch, spans_batch(&conv.spans).expect("generic batch"));
}

/// Spans that would make more text than a batch may hold (here a resource of 100 KB on
/// 20 spans, against the 1 MiB that a 64 KiB request limit allows) refuse the request
/// with the same error on both paths, never an Arrow offset overflow.
#[test]
fn spans_expanding_past_the_text_limit_refuse_the_request_on_both_paths() {
    let limits = Limits {
        max_request_bytes: 64 * 1024,
        ..Limits::default()
    };
    assert_eq!(limits.max_text_bytes(), 1 << 20);
    let make = |spans: usize| ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "big",
                    any_value::Value::StringValue("x".repeat(100_000)),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![good_span(); spans],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let fits = make(9);
    let wire = decode(&fits.encode_to_vec(), &limits, &mut |_, _| {}).expect("wire");
    assert!(wire.too_large.is_none());
    assert_eq!(wire.builder.len(), 9);
    let req = make(20);
    let body = req.encode_to_vec();
    let wire = decode(&body, &limits, &mut |_, _| {}).expect("well-formed");
    let err = wire.too_large.expect("refused").to_string();
    assert!(err.contains("more than 1048576 bytes of text"), "{err}");
    assert!(wire.builder.is_empty());
    let generic = convert(&req, &limits).expect_err("refused").to_string();
    assert_eq!(generic, err);
}

/// Spans of a resource or scope over its attribute limit are rejected, with the same
/// answer on both paths; a resource given in pieces counts all of them (they merge).
#[test]
fn spans_of_resources_or_scopes_over_the_attribute_limits_are_rejected_on_both_paths() {
    let limits = Limits {
        max_resource_attributes: 3,
        max_scope_attributes: 2,
        ..Limits::default()
    };
    let named = |name: &str| Span {
        name: name.into(),
        ..good_span()
    };
    let resource = |n: i64| Resource {
        attributes: many_attrs(n),
        ..Default::default()
    };
    let block = |r: Option<Resource>, scope_attrs: i64, names: &[&str]| ResourceSpans {
        resource: r,
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                attributes: many_attrs(scope_attrs),
                ..Default::default()
            }),
            spans: names.iter().map(|n| named(n)).collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![
            block(Some(resource(3)), 2, &["fits"]),
            block(Some(resource(4)), 0, &["big resource", "big resource 2"]),
            block(None, 3, &["big scope"]),
        ],
    };
    let body = req.encode_to_vec();
    let wire = decode(&body, &limits, &mut |_, _| {}).expect("wire path");
    let conv = convert(&req, &limits).expect("generic path");
    assert_eq!(
        wire.errors,
        vec![
            "span \"big resource\" rejected: its resource has 4 attributes, more than the limit of 3"
                .to_owned(),
            "span \"big resource 2\" rejected: its resource has 4 attributes, more than the limit of 3"
                .to_owned(),
            "span \"big scope\" rejected: its instrumentation scope has 3 attributes, more than the limit of 2"
                .to_owned(),
        ]
    );
    assert_eq!((&wire.errors, wire.rejected), (&conv.errors, conv.rejected));
    let batch = wire.builder.finish().expect("batch");
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch, spans_batch(&conv.spans).expect("generic batch"));

    // Two pieces of 2 attributes each: one resource of 4.
    let rs = [
        field(1, &resource(2).encode_to_vec()),
        field(2, &field(2, &named("merged").encode_to_vec())),
        field(1, &resource(2).encode_to_vec()),
    ]
    .concat();
    let body = request_of(&rs);
    let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("prost");
    assert_eq!(
        req.resource_spans[0]
            .resource
            .as_ref()
            .map(|r| r.attributes.len()),
        Some(4)
    );
    let wire = decode(&body, &limits, &mut |_, _| {}).expect("wire path");
    let conv = convert(&req, &limits).expect("generic path");
    assert_eq!((wire.rejected, conv.rejected), (1, 1));
    assert_eq!(wire.errors, conv.errors);
}

#[test]
fn scope_blocks_without_a_stored_span_copy_no_origin() {
    // A large resource and many tiny scope blocks whose spans are all rejected: copying the
    // resource into an origin per block would cost blocks x resource bytes.
    let big = "r".repeat(64 * 1024);
    let valid = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "kept".into(),
        ..Default::default()
    };
    let mut scope_spans = vec![
        ScopeSpans {
            spans: vec![Span::default()],
            ..Default::default()
        };
        2_000
    ];
    scope_spans.push(ScopeSpans {
        spans: vec![valid.clone(), valid],
        ..Default::default()
    });
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("big", any_value::Value::StringValue(big.clone()))],
                ..Default::default()
            }),
            scope_spans,
            ..Default::default()
        }],
    }
    .encode_to_vec();
    ORIGINS_MADE.with(|n| n.set(0));
    let mut seen = Vec::new();
    let out = decode(&body, &Limits::default(), &mut |row, origin| {
        seen.push((
            row.name.to_owned(),
            origin.resource_attributes.contains(&big),
        ));
    })
    .expect("well-formed");
    assert_eq!(out.rejected, 2_000);
    assert_eq!(
        seen,
        vec![("kept".to_owned(), true), ("kept".to_owned(), true)]
    );
    assert_eq!(
        ORIGINS_MADE.with(|n| n.get()),
        1,
        "one origin, for the block with spans stored"
    );
}
