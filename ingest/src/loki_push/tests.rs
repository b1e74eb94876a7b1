use super::*;

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

#[test]
fn the_wire_walk_agrees_with_prost() {
    let raw = mixed_request();
    let walked = wire::streams(&raw).expect("plain request");
    let req = pb::PushRequest::decode(raw.as_slice()).expect("prost");
    assert_eq!(walked.len(), req.streams.len());
    for (w, p) in walked.iter().zip(&req.streams) {
        assert_eq!(w.labels, p.labels);
        assert_eq!(w.entries.len(), p.entries.len());
        for (we, pe) in w.entries.iter().zip(&p.entries) {
            assert_eq!(we.timestamp, pe.timestamp.map(|t| (t.seconds, t.nanos)));
            assert_eq!(we.line, pe.line);
            let md: Vec<(&str, &str)> = pe
                .structured_metadata
                .iter()
                .map(|m| (m.name.as_str(), m.value.as_str()))
                .collect();
            assert_eq!(we.metadata, md);
        }
    }
    // A stream whose labels field comes twice: prost keeps the last; the walk declines
    // and the prost path decodes it, so the push still takes the last labels.
    let mut twice = Vec::new();
    let inner = {
        let mut s = Vec::new();
        for l in [r#"{a="1"}"#, r#"{a="2"}"#] {
            s.push(1 << 3 | 2);
            s.push(l.len() as u8);
            s.extend_from_slice(l.as_bytes());
        }
        let e = pb::EntryAdapter {
            timestamp: None,
            line: "x".into(),
            structured_metadata: vec![],
        }
        .encode_to_vec();
        s.push(2 << 3 | 2);
        s.push(e.len() as u8);
        s.extend_from_slice(&e);
        s
    };
    twice.push(1 << 3 | 2);
    twice.push(inner.len() as u8);
    twice.extend_from_slice(&inner);
    assert!(wire::streams(&twice).is_none());
    let recs = decode(PushFormat::SnappyProtobuf, &snappy(&twice), &limits(), 1).expect("decode");
    assert_eq!(recs[0].stream, Labels::from_pairs([("a", "2")]));
    // Invalid UTF-8 in a line: the walk declines, prost names the error.
    let bad = pb::PushRequest {
        streams: vec![pb::StreamAdapter {
            labels: r#"{a="1"}"#.into(),
            entries: vec![pb::EntryAdapter {
                timestamp: None,
                line: "\u{e9}".into(),
                structured_metadata: vec![],
            }],
            hash: 0,
        }],
    }
    .encode_to_vec();
    let at = bad.iter().position(|&b| b == 0xc3).expect("é");
    let mut bad = bad;
    bad[at] = 0xff;
    assert!(wire::streams(&bad).is_none());
    let err = decode_batch(PushFormat::SnappyProtobuf, &snappy(&bad), &limits(), 1)
        .expect_err("invalid UTF-8");
    assert!(err.to_string().contains("invalid protobuf"), "{err}");
    // Truncated: refused the same way.
    let raw = mixed_request();
    let err = decode_batch(
        PushFormat::SnappyProtobuf,
        &snappy(&raw[..raw.len() / 2]),
        &limits(),
        1,
    )
    .expect_err("truncated");
    assert!(err.to_string().contains("invalid protobuf"), "{err}");
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
