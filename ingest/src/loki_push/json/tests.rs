use super::super::{PushFormat, decode, decode_batch};
use crate::limits::Limits;
use crate::loki_push::PushError;
use serde_json::Value;
use strata_storage::model::LogRecord;

/// A push as records, the way a test compares them: labels, time, line, metadata JSON.
type Rows = Vec<(String, i64, String, String)>;

/// What a push came to: its rows, or which refusal (variant, stream, entry).
#[derive(Debug, PartialEq)]
enum Answer {
    Rows(Rows),
    Json,
    Labels(usize),
    Entry(usize, usize),
    TooLarge,
}

fn answer(r: Result<Vec<LogRecord>, PushError>) -> Answer {
    match r {
        Ok(recs) => Answer::Rows(
            recs.into_iter()
                .map(|r| (r.stream.to_string(), r.timestamp_ns, r.body, r.attributes))
                .collect(),
        ),
        Err(PushError::Json(_)) => Answer::Json,
        Err(PushError::Labels { stream, .. }) => Answer::Labels(stream),
        Err(PushError::Entry { stream, entry, .. }) => Answer::Entry(stream, entry),
        Err(e) if e.is_too_large() => Answer::TooLarge,
        Err(e) => panic!("unexpected {e}"),
    }
}

fn walked(body: &str, limits: &Limits) -> Answer {
    answer(decode(PushFormat::Json, body.as_bytes(), limits, 9))
}

/// The push as a whole parsed document says it, checked in document order: the reading the
/// walk must agree with (this is how the push was read before it was walked).
fn parsed(body: &str, limits: &Limits) -> Answer {
    let Ok(doc) = serde_json::from_str::<Value>(body) else {
        return Answer::Json;
    };
    let Some(streams) = doc.get("streams").and_then(Value::as_array) else {
        return Answer::Json;
    };
    let mut rows = Vec::new();
    for (si, s) in streams.iter().enumerate() {
        let Some(map) = s.get("stream").and_then(Value::as_object) else {
            return Answer::Labels(si);
        };
        let mut pairs = Vec::new();
        for (k, v) in map {
            let Some(v) = v.as_str() else {
                return Answer::Labels(si);
            };
            pairs.push((k.clone(), v.to_owned()));
        }
        let Ok(labels) = super::super::stream_labels(pairs, limits) else {
            return Answer::Labels(si);
        };
        let Some(values) = s.get("values").and_then(Value::as_array) else {
            return Answer::Labels(si);
        };
        for (ei, v) in values.iter().enumerate() {
            let entry = v.as_array().filter(|a| a.len() == 2 || a.len() == 3);
            let Some(a) = entry else {
                return Answer::Entry(si, ei);
            };
            let ts = a[0].as_str().and_then(|t| t.parse::<i64>().ok());
            let (Some(ts), Some(line)) = (ts, a[1].as_str()) else {
                return Answer::Entry(si, ei);
            };
            let mut metadata = serde_json::Map::new();
            if let Some(m) = a.get(2) {
                let Some(obj) = m.as_object().filter(|o| o.values().all(Value::is_string)) else {
                    return Answer::Entry(si, ei);
                };
                metadata = obj.clone();
            }
            let ok = limits.check_log_body(line.len()).is_ok()
                && limits.check_attributes(metadata.len()).is_ok()
                && !metadata.keys().any(String::is_empty);
            if !ok {
                return Answer::Entry(si, ei);
            }
            rows.push((
                labels.to_string(),
                if ts == 0 { 9 } else { ts },
                line.to_owned(),
                Value::Object(metadata).to_string(),
            ));
        }
    }
    Answer::Rows(rows)
}

/// Pushes good and bad, each answered by the walk as by the parsed document.
#[test]
fn the_walk_answers_as_the_parsed_document() {
    let limits = Limits {
        max_log_body_bytes: 20,
        max_attributes_per_item: 2,
        ..Limits::default()
    };
    let cases = [
        // Good: metadata, escapes, unicode, repeated names, unknown keys, a time of 0.
        r#"{"streams":[{"stream":{"app":"api","env":"prod"},"values":[["1","a"],["2","b",{"k":"v"}]]}]}"#,
        r#"{"streams":[{"stream":{"app":"a\"p\\i\u00e9"},"values":[["3","l\ni\tne \u2603"]]}]}"#,
        r#"{"streams":[{"stream":{"app":"x","app":"y"},"values":[["1","dup label"]]}]}"#,
        r#"{"streams":[{"stream":{"app":"x"},"values":[["1","dup meta",{"k":"1","k":"2"}]]}]}"#,
        r#"{"other":[1,{"a":[]}],"streams":[{"hash":7,"stream":{"a":"b"},"values":[["0","now"]],"x":null}],"z":{}}"#,
        r#"{"streams":[{"values":[["1","values first",{"m":"n"}]],"stream":{"a":"b"}}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[]},{"stream":{"c":"d"},"values":[["5","2nd"]]}]}"#,
        r#"{"streams":[]}"#,
        // Bad JSON, or not a push.
        "",
        "not json",
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x"]]}]"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x"]]}]} trailing"#,
        r#"{"streams":{}}"#,
        r#"[]"#,
        r#"{}"#,
        r#"{"streams":[{"stream":{},"values":[]}],"bad":tru}"#,
        // Bad streams: labels, values.
        r#"{"streams":[{"stream":{"a":"b"},"values":[]},{"stream":{},"values":[]}]}"#,
        r#"{"streams":[{"stream":{"1a":"x"},"values":[["bad","x"]]}]}"#,
        r#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
        r#"{"streams":[{"stream":"{a=\"b\"}","values":[]}]}"#,
        r#"{"streams":[{"values":[]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"}}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":{}}]}"#,
        r#"{"streams":[{"values":{},"stream":{"a":"b"}}]}"#,
        r#"{"streams":[{"values":[["x","1"]],"stream":{"a":1}}]}"#,
        r#"{"streams":[7]}"#,
        // Bad entries, first in document order.
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","ok"],["x","l"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[[1,"l"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","l",{},4]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1",2]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":["1"]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","l","{\"x\":1}"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","l",{"x":1}]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","l",{"":"v"}]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","l",{"x":"1","y":"2","z":"3"}]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","a line longer than twenty"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["99999999999999999999","l"]]}]}"#,
        r#"{"streams":[{"values":[["1","ok"],[2,"l"]],"stream":{"a":"b"}}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","ok"]]},{"stream":{"c":"d"},"values":[["1","ok"],["1","l",[]]]}]}"#,
    ];
    for body in cases {
        assert_eq!(walked(body, &limits), parsed(body, &limits), "{body}");
    }
}

/// Refusals name what was wrong, as they did when the body was parsed whole.
#[test]
fn refusals_say_what_was_wrong() {
    let cases = [
        (
            r#"{"streams":[{"stream":"{a=\"b\"}","values":[]}]}"#,
            r#"stream 0: error parsing labels "\"{a=\\\"b\\\"}\"": "stream" must be an object"#,
        ),
        (
            r#"{"streams":[{"stream":{"a":"b","c":2},"values":[]}]}"#,
            r#"stream 0: error parsing labels "{\"a\":\"b\",\"c\":2}": the value of label "c" is not a string"#,
        ),
        (
            r#"{"streams":[{"stream":{"a":"b"},"values":[[1.5,"l"]]}]}"#,
            r#"stream 0 {a="b"}: entry 0: timestamp 1.5 must be a string of Unix nanoseconds"#,
        ),
        (
            r#"{"streams":[{"stream":{"a":"b"},"values":[["1","l",{"k":null}]]}]}"#,
            r#"stream 0 {a="b"}: entry 0: structured metadata "k" must be a string"#,
        ),
        (
            r#"{"streams":[{"stream":{"a":"b"},"values":7}]}"#,
            r#"stream 0: error parsing labels "{a=\"b\"}": "values" must be an array"#,
        ),
        (
            r#"{"streams":[9]}"#,
            r#"stream 0: error parsing labels "": each stream must be an object, not 9"#,
        ),
        (
            r#"{"streams":{}}"#,
            r#"invalid JSON push body: invalid type: map, expected a "streams" array at line 1"#,
        ),
        (
            r#"{"s":[]}"#,
            r#"invalid JSON push body: the body must be an object with a "streams" array"#,
        ),
    ];
    for (body, want) in cases {
        let err = decode(PushFormat::Json, body.as_bytes(), &Limits::default(), 1)
            .expect_err(body)
            .to_string();
        assert!(err.starts_with(want), "{body}: {err}");
    }
    // A stream of more labels than allowed is refused without collecting them all.
    let labels: Vec<String> = (0..1000).map(|i| format!("\"l{i}\":\"v\"")).collect();
    let body = format!(
        r#"{{"streams":[{{"stream":{{{}}},"values":[]}}]}}"#,
        labels.join(",")
    );
    let err = decode(PushFormat::Json, body.as_bytes(), &Limits::default(), 1).expect_err("labels");
    assert!(
        err.to_string()
            .contains("the stream has 1000 labels, more than the limit of 128"),
        "{err}"
    );
}

/// A malformed body is refused as malformed whatever was refused before the fault, and a
/// refusal builds nothing.
#[test]
fn invalid_json_past_an_earlier_refusal_is_refused_as_invalid_json() {
    let bad_entry = r#"{"streams":[{"stream":{"a":"b"},"values":[["x","l"]]}"#;
    for tail in ["]}", "], oops}", "]}]"] {
        let body = format!("{bad_entry}{tail}");
        let err = decode_batch(PushFormat::Json, body.as_bytes(), &Limits::default(), 1)
            .expect_err(&body);
        let invalid = matches!(err, PushError::Json(_));
        assert_eq!(invalid, tail != "]}", "{body}: {err}");
    }
}

/// Entries that would take far more memory than the body are refused with 413, every entry
/// counted; real lines of a larger body pass.
#[test]
fn tiny_entries_copying_a_long_label_refuse_the_push() {
    let n = 1_000_000;
    let body = format!(
        r#"{{"streams":[{{"stream":{{"app":"{}"}},"values":[{}]}}]}}"#,
        "x".repeat(300),
        vec![r#"["1",""]"#; n].join(",")
    );
    let err = decode_batch(PushFormat::Json, body.as_bytes(), &Limits::default(), 1)
        .expect_err("too much memory");
    assert!(err.is_too_large(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("the {}-byte request would take about", body.len())),
        "{msg}"
    );
    assert!(msg.contains("it holds 1000000 entries"), "{msg}");
    let lines: Vec<String> = (0..200_000)
        .map(|i| {
            format!(
                r#"["{}","GET /api/cart/{i} 200 13ms user=u1"]"#,
                1_700_000_000_000_000_000u64 + i
            )
        })
        .collect();
    let body = format!(
        r#"{{"streams":[{{"stream":{{"app":"api"}},"values":[{}]}}]}}"#,
        lines.join(",")
    );
    let batch = decode_batch(PushFormat::Json, body.as_bytes(), &Limits::default(), 1)
        .expect("real lines")
        .finish()
        .expect("batch");
    assert_eq!(batch.num_rows(), 200_000);
}

/// Lines without escapes are borrowed from the body; with escapes they are unescaped.
#[test]
fn lines_and_labels_are_unescaped() {
    let body = r#"{"streams":[{"stream":{"path":"C:\\logs\\a \"b\""},"values":[
        ["1","plain"],["2","tab\there \u00e9 \ud83d\ude00",{"k\"":"v\n"}]]}]}"#;
    let recs = decode(PushFormat::Json, body.as_bytes(), &Limits::default(), 1).expect("push");
    assert_eq!(recs[0].stream.get("path"), Some(r#"C:\logs\a "b""#));
    assert_eq!(recs[0].body, "plain");
    assert_eq!(recs[1].body, "tab\there é 😀");
    assert_eq!(recs[1].attributes, r#"{"k\"":"v\n"}"#);
}

/// Values kept until their stream's labels come are bounded as stored ones are: the same
/// refusal, counting the same entries, whichever comes first.
#[test]
fn values_before_labels_are_bounded_too() {
    let values = vec![r#"["1",""]"#; 1_000_000].join(",");
    let labels = format!(r#"{{"app":"{}"}}"#, "x".repeat(300));
    for body in [
        format!(r#"{{"streams":[{{"stream":{labels},"values":[{values}]}}]}}"#),
        format!(r#"{{"streams":[{{"values":[{values}],"stream":{labels}}}]}}"#),
    ] {
        let err = decode_batch(PushFormat::Json, body.as_bytes(), &Limits::default(), 1)
            .expect_err("too much memory");
        assert!(err.is_too_large(), "{err}");
        assert!(
            err.to_string().contains("it holds 1000000 entries"),
            "{err}"
        );
    }
}

/// An entry of a million metadata pairs is refused for them, counted without collecting.
#[test]
fn metadata_past_the_limit_is_counted_not_collected() {
    let pairs: Vec<String> = (0..1_000_000).map(|i| format!(r#""k{i}":"v""#)).collect();
    let body = format!(
        r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[["1","l",{{{}}}]]}}]}}"#,
        pairs.join(",")
    );
    let err = decode(PushFormat::Json, body.as_bytes(), &Limits::default(), 1).expect_err("pairs");
    assert!(
        err.to_string()
            .contains("entry 0: 1000000 attributes, more than the limit of 256"),
        "{err}"
    );
}
