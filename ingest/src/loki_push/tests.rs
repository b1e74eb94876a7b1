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
