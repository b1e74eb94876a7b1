use super::*;
use crate::protowire::test_encode::{field, varint_field};
use prost::Message;
use strata_proto::loki as pb;

fn limits() -> Limits {
    Limits::default()
}

fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("compress")
}

#[test]
fn json_push_keeps_labels_lines_and_metadata() {
    let body = br#"{"streams":[{"stream":{"app":"api","env":"prod"},"values":[
        ["1700000000000000001","first line"],
        ["1700000000000000002","second","{\"x\":1}" ],
        ["1700000000000000003","third",{"trace_id":"abc","user":"u1"}]]}]}"#;
    // The middle value's metadata is a string, not an object: the whole push is refused.
    let err = decode(PushFormat::Json, body, &limits(), 5).expect_err("bad metadata");
    assert!(err.to_string().contains("entry 1"), "{err}");
    let body = br#"{"streams":[{"stream":{"app":"api","env":"prod"},"values":[
        ["1700000000000000001","first line"],
        ["1700000000000000003","third",{"trace_id":"abc","user":"u1"}]]}]}"#;
    let recs = decode(PushFormat::Json, body, &limits(), 5).expect("decode");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].timestamp_ns, 1_700_000_000_000_000_001);
    assert_eq!(recs[0].observed_timestamp_ns, 5);
    assert_eq!(recs[0].body, "first line");
    assert_eq!(
        recs[0].stream,
        Labels::from_pairs([("app", "api"), ("env", "prod")])
    );
    assert_eq!(recs[0].attributes, "{}");
    let attrs: serde_json::Value = serde_json::from_str(&recs[1].attributes).expect("json");
    assert_eq!(attrs, serde_json::json!({"trace_id": "abc", "user": "u1"}));
}

#[test]
fn protobuf_push_parses_selector_labels() {
    let req = pb::PushRequest {
        streams: vec![pb::StreamAdapter {
            labels: r#"{job="varlogs", path="/var/log/a \"b\".log"}"#.into(),
            entries: vec![pb::EntryAdapter {
                timestamp: Some(pb::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 42,
                }),
                line: "hello".into(),
                structured_metadata: vec![pb::LabelPairAdapter {
                    name: "pod".into(),
                    value: "p-1".into(),
                }],
            }],
            hash: 0,
        }],
    };
    let body = snappy(&req.encode_to_vec());
    let recs = decode(PushFormat::SnappyProtobuf, &body, &limits(), 1).expect("decode");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].timestamp_ns, 1_700_000_000_000_000_042);
    assert_eq!(recs[0].stream.get("path"), Some("/var/log/a \"b\".log"));
    assert_eq!(recs[0].stream.get("job"), Some("varlogs"));
    assert_eq!(recs[0].attributes, r#"{"pod":"p-1"}"#);
}

#[test]
fn bad_inputs_say_what_was_wrong() {
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "invalid JSON"),
        (br#"{"streams":{}}"#, "\"streams\" array"),
        (
            br#"{"streams":[{"stream":{},"values":[]}]}"#,
            "at least one label",
        ),
        (
            br#"{"streams":[{"stream":{"1a":"x"},"values":[]}]}"#,
            "invalid label name",
        ),
        (
            br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
            "not a string",
        ),
        (
            br#"{"streams":[{"stream":{"a":"b"},"values":[["x","l"]]}]}"#,
            "not an integer",
        ),
        (
            br#"{"streams":[{"stream":{"a":"b"},"values":[[1,"l"]]}]}"#,
            "must be a string",
        ),
        (
            br#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#,
            "each value must be",
        ),
        (
            br#"{"streams":[{"stream":{"a":"b"}}]}"#,
            "\"values\" must be",
        ),
    ];
    for (body, want) in cases {
        let err = decode(PushFormat::Json, body, &limits(), 0).expect_err("must fail");
        assert!(err.to_string().contains(want), "{err} lacks {want}");
        assert!(!err.is_too_large());
    }
    let err =
        decode(PushFormat::SnappyProtobuf, b"\xff\xff\xff", &limits(), 0).expect_err("bad snappy");
    assert!(err.to_string().contains("snappy"), "{err}");
    let err = decode(
        PushFormat::SnappyProtobuf,
        &snappy(b"\xff\x01"),
        &limits(),
        0,
    )
    .expect_err("bad protobuf");
    assert!(err.to_string().contains("protobuf"), "{err}");
    let small = Limits {
        max_request_bytes: 10,
        ..Limits::default()
    };
    let err =
        decode(PushFormat::SnappyProtobuf, &snappy(&[0u8; 100]), &small, 0).expect_err("too large");
    assert!(err.is_too_large());
    let long = Limits {
        max_log_body_bytes: 3,
        ..Limits::default()
    };
    let err = decode(
        PushFormat::Json,
        br#"{"streams":[{"stream":{"a":"b"},"values":[["1","long line"]]}]}"#,
        &long,
        0,
    )
    .expect_err("long line");
    assert!(err.to_string().contains("longer than the limit"), "{err}");
}

#[test]
fn selector_parser() {
    assert_eq!(
        parse_labels(r#"{ a = "1" ,b="x\ny\\" }"#).expect("ok"),
        vec![("a".into(), "1".into()), ("b".into(), "x\ny\\".into())]
    );
    assert_eq!(parse_labels("{}").expect("ok"), vec![]);
    for bad in [
        "a=\"1\"",
        "{a=1}",
        "{a=\"1\"",
        "{a=\"1\" b=\"2\"}",
        "{=\"x\"}",
        r#"{a="\q"}"#,
    ] {
        assert!(parse_labels(bad).is_err(), "{bad}");
    }
}

/// A `PushRequest` with two streams, metadata on some entries, one entry without a
/// timestamp, and an unknown field in an entry (prost skips it, so must the walk).
fn mixed_request() -> Vec<u8> {
    let req = pb::PushRequest {
        streams: vec![
            pb::StreamAdapter {
                labels: r#"{service_name="api", level="info"}"#.into(),
                entries: vec![
                    pb::EntryAdapter {
                        timestamp: Some(pb::Timestamp {
                            seconds: 1_700_000_000,
                            nanos: 7,
                        }),
                        line: "GET /x 200".into(),
                        structured_metadata: vec![],
                    },
                    pb::EntryAdapter {
                        timestamp: None,
                        line: "no time".into(),
                        structured_metadata: vec![
                            pb::LabelPairAdapter {
                                name: "z".into(),
                                value: "1".into(),
                            },
                            pb::LabelPairAdapter {
                                name: "a".into(),
                                value: "\"q\"".into(),
                            },
                        ],
                    },
                ],
                hash: 99,
            },
            pb::StreamAdapter {
                labels: r#"{job="w"}"#.into(),
                entries: vec![pb::EntryAdapter {
                    timestamp: Some(pb::Timestamp {
                        seconds: 1,
                        nanos: 0,
                    }),
                    line: "héllo".into(),
                    structured_metadata: vec![],
                }],
                hash: 0,
            },
        ],
    };
    let mut bytes = req.encode_to_vec();
    // Field 9 (varint 5) appended to the request: unknown, skipped.
    bytes.extend_from_slice(&[9 << 3, 5]);
    bytes
}

#[test]
fn batch_decode_matches_the_records() {
    let proto = snappy(&mixed_request());
    let json = br#"{"streams":[{"stream":{"service_name":"api","level":"warn"},"values":[
        ["1700000000000000001","first"],["0","now",{"b":"2","a":"1"}]]},
        {"stream":{"x":"y"},"values":[["5","other"]]}]}"#;
    for (format, body) in [
        (PushFormat::SnappyProtobuf, &proto[..]),
        (PushFormat::Json, &json[..]),
    ] {
        let recs = decode(format, body, &limits(), 77).expect("decode");
        let want = strata_storage::schema::logs_batch(&recs).expect("batch");
        let got = decode_batch(format, body, &limits(), 77)
            .expect("decode batch")
            .finish()
            .expect("finish");
        assert_eq!(got, want, "{format:?}");
        assert_eq!(got.num_rows(), 3);
    }
    let recs = decode(PushFormat::SnappyProtobuf, &proto, &limits(), 77).expect("decode");
    assert_eq!(recs[0].timestamp_ns, 1_700_000_000_000_000_007);
    assert_eq!(recs[0].origin.service_name, "api");
    assert_eq!(
        recs[1].timestamp_ns, 77,
        "an entry without a time gets the push time"
    );
    assert_eq!(recs[1].attributes, r#"{"a":"\"q\"","z":"1"}"#);
    assert_eq!(recs[2].body, "héllo");
    assert_eq!(recs[2].stream, Labels::from_pairs([("job", "w")]));
}

type Flat = Vec<(
    String,
    Vec<(Option<(i64, i32)>, String, Vec<(String, String)>)>,
)>;

/// A request as the wire walk sees it.
fn walked(raw: &[u8]) -> Result<Flat, crate::protowire::WireError> {
    let mut out = Vec::new();
    let mut streams = wire::Streams::new(raw);
    let mut metadata = Vec::new();
    while let Some(s) = streams.next()? {
        let mut entries = Vec::new();
        let mut it = s.entries();
        while let Some(e) = it.next(&mut metadata, usize::MAX)? {
            assert_eq!(e.metadata_count, metadata.len());
            let md = metadata
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            entries.push((e.timestamp, e.line.to_owned(), md));
        }
        out.push((s.labels.to_owned(), entries));
    }
    Ok(out)
}

/// A request as prost decodes it.
fn prost_view(raw: &[u8]) -> Result<Flat, prost::DecodeError> {
    let req = pb::PushRequest::decode(raw)?;
    Ok(req
        .streams
        .into_iter()
        .map(|s| {
            let entries = s
                .entries
                .into_iter()
                .map(|e| {
                    let md = e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect();
                    (e.timestamp.map(|t| (t.seconds, t.nanos)), e.line, md)
                })
                .collect();
            (s.labels, entries)
        })
        .collect())
}

/// Valid requests in the forms a plain encoder does not write: singular fields given
/// twice (the last string wins, timestamps merge), unknown fields of every wire type
/// (groups included), an empty request.
fn unusual_requests() -> Vec<(&'static str, Vec<u8>)> {
    let entry = |parts: &[Vec<u8>]| field(2, &parts.concat());
    let ts = |s: u64, n: u64| [varint_field(1, s), varint_field(2, n)].concat();
    vec![
        ("empty", vec![]),
        (
            "labels twice",
            field(
                1,
                &[
                    field(1, br#"{a="1"}"#),
                    entry(&[field(2, b"x")]),
                    field(1, br#"{a="2"}"#),
                ]
                .concat(),
            ),
        ),
        (
            "line, pair name and timestamp twice",
            field(
                1,
                &[
                    field(1, br#"{a="1"}"#),
                    entry(&[
                        field(1, &ts(5, 6)),
                        field(2, b"first"),
                        field(
                            3,
                            &[field(1, b"n1"), field(2, b"v"), field(1, b"n2")].concat(),
                        ),
                        field(1, &varint_field(2, 9)),
                        field(2, b"second"),
                    ]),
                ]
                .concat(),
            ),
        ),
        (
            "unknown fields of every wire type, a group among them",
            [
                field(
                    1,
                    &[
                        field(1, br#"{a="1"}"#),
                        varint_field(3, 7),
                        // Field 9: a group holding a varint; field 10 fixed64, 11 fixed32.
                        vec![9 << 3 | 3, 1 << 3, 1, 9 << 3 | 4],
                        vec![10 << 3 | 1, 1, 2, 3, 4, 5, 6, 7, 8],
                        vec![11 << 3 | 5, 1, 2, 3, 4],
                        entry(&[field(2, b"x"), field(7, b"unknown")]),
                    ]
                    .concat(),
                ),
                varint_field(5, 1),
            ]
            .concat(),
        ),
    ]
}

#[test]
fn the_wire_walk_agrees_with_prost() {
    let mut cases = unusual_requests();
    cases.push(("mixed", mixed_request()));
    for (what, raw) in &cases {
        let walked = walked(raw).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(walked, prost_view(raw).expect("prost"), "{what}");
    }
    // Protobuf's rules: the last labels, the merged timestamp, the last line.
    let recs = decode(
        PushFormat::SnappyProtobuf,
        &snappy(&cases[1].1),
        &limits(),
        1,
    )
    .expect("decode");
    assert_eq!(recs[0].stream, Labels::from_pairs([("a", "2")]));
    let flat = walked(&cases[2].1).expect("walk");
    assert_eq!(
        flat[0].1,
        vec![(
            Some((5, 9)),
            "second".to_owned(),
            vec![("n2".to_owned(), "v".to_owned())]
        )]
    );
}

/// Malformed requests are refused by the walk with prost's own description of what was
/// wrong and where, without prost decoding them.
#[test]
fn malformed_requests_are_refused_naming_the_field() {
    let good = mixed_request();
    let mut bad_utf8 = good.clone();
    let at = bad_utf8.iter().position(|&b| b == 0xc3).expect("é");
    bad_utf8[at] = 0xff;
    let mut cases = vec![
        ("bad UTF-8 in a line", bad_utf8),
        ("truncated", good[..good.len() / 2].to_vec()),
        (
            "a malformed tail",
            [good.clone(), vec![0x0a, 0x7f]].concat(),
        ),
        ("field number 0", [good.clone(), vec![0x02, 0x00]].concat()),
        ("an end group without a start", vec![0x0c]),
        (
            "a stream that is a varint",
            [good.clone(), varint_field(1, 3)].concat(),
        ),
        (
            "a timestamp of the wrong type",
            field(1, &field(2, &field(1, &field(1, b"x")))),
        ),
        ("a 64-bit overflowing varint", {
            let mut v = vec![0x08];
            v.extend_from_slice(&[0xff; 9]);
            v.push(0x02);
            v
        }),
    ];
    // Labels twice, the second not UTF-8.
    cases.push((
        "bad UTF-8 in the second labels",
        field(1, &[field(1, b"{a=\"1\"}"), field(1, b"\xff")].concat()),
    ));
    for (what, raw) in cases {
        let ours = walked(&raw).expect_err(what).to_string();
        let theirs = prost_view(&raw).expect_err(what).to_string();
        assert_eq!(
            format!("failed to decode Protobuf message: {ours}"),
            theirs,
            "{what}"
        );
        let err =
            decode_batch(PushFormat::SnappyProtobuf, &snappy(&raw), &limits(), 1).expect_err(what);
        assert_eq!(
            err.to_string(),
            format!("invalid protobuf PushRequest: {ours}")
        );
        assert!(!err.is_too_large());
    }
}

/// An entry of many metadata pairs is refused for them without a list of them, and
/// requests walk without a list of their entries.
#[test]
fn metadata_past_the_limit_is_counted_not_collected() {
    let pairs: Vec<u8> = (0..10_000)
        .flat_map(|_| field(3, &field(1, b"k")))
        .collect();
    let raw = field(1, &[field(1, br#"{a="1"}"#), field(2, &pairs)].concat());
    let mut streams = wire::Streams::new(&raw);
    let s = streams.next().expect("walk").expect("a stream");
    let mut metadata = Vec::new();
    let e = s
        .entries()
        .next(&mut metadata, 256)
        .expect("walk")
        .expect("an entry");
    assert_eq!((e.metadata_count, metadata.len()), (10_000, 256));
    let err = decode_batch(PushFormat::SnappyProtobuf, &snappy(&raw), &limits(), 1)
        .expect_err("over the limit");
    assert!(
        err.to_string()
            .contains("10000 attributes, more than the limit of 256"),
        "{err}"
    );
}

#[test]
fn too_much_text_for_a_batch_is_a_413_and_other_sink_errors_name_the_entry() {
    let bad = |reason: String| PushError::Entry {
        stream: 0,
        labels: "{a=\"b\"}".into(),
        entry: 3,
        reason,
    };
    let e = sink_error(strata_storage::Error::TooLarge("too much text".into()), bad);
    assert!(e.is_too_large(), "{e}");
    assert_eq!(e.to_string(), "too much text");
    let e = sink_error(strata_storage::Error::Corrupt("x".into()), bad);
    assert!(!e.is_too_large(), "{e}");
    assert!(e.to_string().contains("entry 3"), "{e}");
}

#[test]
fn label_errors_show_at_most_128_characters_of_the_selector() {
    let long = format!("{{a=\"{}\"", "x".repeat(100_000));
    let e = PushError::Labels {
        stream: 0,
        labels: clipped(&long),
        reason: "unterminated".into(),
    };
    let msg = e.to_string();
    assert!(msg.len() < 300, "{}", msg.len());
    assert!(msg.contains("{a=\\\"xxx"), "{msg}");
    assert!(msg.contains('…'), "{msg}");
    assert_eq!(clipped("{a=\"b\"}"), "{a=\"b\"}");
}

/// One walk builds and checks at once; a malformed body is still refused as malformed,
/// whatever was refused before the fault, and nothing of it is kept.
#[test]
fn a_malformed_body_is_refused_as_malformed_past_an_earlier_refusal() {
    let ts = |seconds: u64| field(1, &varint_field(1, seconds));
    let entry = |seconds: u64, line: &[u8]| field(2, &[ts(seconds), field(2, line)].concat());
    let good = field(1, &[field(1, br#"{a="1"}"#), entry(1, b"x")].concat());
    let bad_labels = field(1, &[field(1, b"{a="), entry(1, b"x")].concat());
    let bad_entry = field(
        1,
        &[field(1, br#"{a="1"}"#), entry(u64::MAX / 2, b"x")].concat(),
    );
    let tail = [0x0a, 0x7f];
    for (what, raw, refusal) in [
        (
            "bad labels",
            [good.clone(), bad_labels.clone()].concat(),
            "error parsing labels",
        ),
        (
            "a bad entry",
            [good.clone(), bad_entry.clone()].concat(),
            "timestamp out of range",
        ),
    ] {
        let err =
            decode_batch(PushFormat::SnappyProtobuf, &snappy(&raw), &limits(), 1).expect_err(what);
        assert!(err.to_string().contains(refusal), "{what}: {err}");
        let raw = [raw, good.clone(), tail.to_vec()].concat();
        let err =
            decode_batch(PushFormat::SnappyProtobuf, &snappy(&raw), &limits(), 1).expect_err(what);
        assert_eq!(
            err.to_string(),
            "invalid protobuf PushRequest: PushRequest.streams: buffer underflow",
            "{what}"
        );
    }
    // Model records: the same answers (the sink only sees what a walk builds).
    let raw = [good.clone(), good, tail.to_vec()].concat();
    assert!(decode(PushFormat::SnappyProtobuf, &snappy(&raw), &limits(), 1).is_err());
}

/// A push of many near-empty entries would take far more memory than its size: it is
/// refused with 413 before its batch grows past the body's budget, counting every entry;
/// real lines of the same count pass.
#[test]
fn entries_that_would_take_too_much_memory_refuse_the_push() {
    let n = 1_000_000;
    let raw = field(
        1,
        &[field(1, br#"{app="ok"}"#), field(2, b"").repeat(n)].concat(),
    );
    let err = decode_batch(PushFormat::SnappyProtobuf, &snappy(&raw), &limits(), 1)
        .expect_err("too much memory");
    assert!(err.is_too_large(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("the {}-byte request would take about", raw.len())),
        "{msg}"
    );
    assert!(msg.contains("it holds 1000000 entries"), "{msg}");
    // Real lines with times, as many: about 6 times their size.
    let line = field(
        2,
        &[
            field(
                1,
                &[varint_field(1, 1_700_000_000), varint_field(2, 5)].concat(),
            ),
            field(2, b"GET /api/cart/42 200 13ms user=u1"),
        ]
        .concat(),
    );
    let raw = field(
        1,
        &[field(1, br#"{app="ok"}"#), line.repeat(200_000)].concat(),
    );
    assert!(raw.len() > decoded_size::MIN_DECODED_BUDGET);
    let batch = decode_batch(PushFormat::SnappyProtobuf, &snappy(&raw), &limits(), 1)
        .expect("real lines")
        .finish()
        .expect("batch");
    assert_eq!(batch.num_rows(), 200_000);
}
