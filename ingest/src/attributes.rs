//! OTLP attribute values as JSON: the form attributes are stored and queried in.

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use serde_json::{Map, Value as Json};

/// Converts an OTLP value to JSON: ints stay integers, doubles floats (non-finite ones as
/// the strings "NaN", "Infinity", "-Infinity"), bytes become base64 strings, arrays arrays
/// and kvlists objects.
pub fn any_to_json(v: &AnyValue) -> Json {
    match &v.value {
        None => Json::Null,
        Some(Value::StringValue(s)) => Json::String(s.clone()),
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::IntValue(i)) => Json::from(*i),
        Some(Value::DoubleValue(d)) => double_json(*d),
        Some(Value::BytesValue(b)) => Json::String(bytes_text(b)),
        Some(Value::ArrayValue(a)) => Json::Array(a.values.iter().map(any_to_json).collect()),
        Some(Value::KvlistValue(kv)) => Json::Object(kvs_to_map(&kv.values)),
        // An index into a profile's string table: meaningless outside it.
        Some(Value::StringValueStrindex(i)) => Json::from(*i),
    }
}

/// A double as JSON: a number, or one of the strings "NaN", "Infinity", "-Infinity".
pub(crate) fn double_json(d: f64) -> Json {
    serde_json::Number::from_f64(d)
        .map(Json::Number)
        .unwrap_or_else(|| {
            Json::String(
                if d.is_nan() {
                    "NaN"
                } else if d > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
                .into(),
            )
        })
}

/// A bytes value as text: base64.
pub(crate) fn bytes_text(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The OTLP kind name of a value (`string`, `int`, `double`, `bool`, `bytes`, `array`,
/// `kvlist`, `empty`).
pub fn any_kind(v: Option<&AnyValue>) -> &'static str {
    match v.and_then(|v| v.value.as_ref()) {
        None => "empty",
        Some(Value::StringValue(_)) | Some(Value::StringValueStrindex(_)) => "string",
        Some(Value::BoolValue(_)) => "bool",
        Some(Value::IntValue(_)) => "int",
        Some(Value::DoubleValue(_)) => "double",
        Some(Value::BytesValue(_)) => "bytes",
        Some(Value::ArrayValue(_)) => "array",
        Some(Value::KvlistValue(_)) => "kvlist",
    }
}

/// A value as text: strings as they are, anything else as JSON.
pub fn any_to_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(_) => v
            .map(any_to_json)
            .map(|j| j.to_string())
            .unwrap_or_default(),
    }
}

fn kvs_to_map(kvs: &[KeyValue]) -> Map<String, Json> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(any_to_json).unwrap_or(Json::Null),
            )
        })
        .collect()
}

/// Attributes as a JSON object value.
pub fn attributes_value(kvs: &[KeyValue]) -> Json {
    Json::Object(kvs_to_map(kvs))
}

/// Attributes as JSON object text: the text of [`attributes_value`] (keys sorted, the
/// last of repeated keys kept), written directly, without building a JSON value first:
/// this runs for every span and log record ingested.
pub fn attributes_json(kvs: &[KeyValue]) -> String {
    let mut sorted: Vec<(&str, &KeyValue)> = kvs.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    let mut out = String::with_capacity(2 + kvs.len() * 32);
    write_attributes_json(&mut out, &mut sorted, |out, kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => push_json_str(out, s),
            Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
            Some(Value::IntValue(n)) => push_int(out, *n),
            None => out.push_str("null"),
            Some(_) => out.push_str(
                &kv.value
                    .as_ref()
                    .map(any_to_json)
                    .unwrap_or(Json::Null)
                    .to_string(),
            ),
        }
    });
    out
}

/// Appends the JSON object of `(key, value)` members to `out`: keys sorted (stably, so of
/// repeated keys the last one sent is kept), values written by `value`. The one writer of
/// attribute JSON, for model attributes and for the protobuf receiver's borrowed ones.
pub(crate) fn write_attributes_json<V>(
    out: &mut String,
    members: &mut [(&str, V)],
    mut value: impl FnMut(&mut String, &V),
) {
    // Stable: of equal keys, the last one sent stays last.
    members.sort_by(|a, b| a.0.cmp(b.0));
    let start = out.len();
    out.push('{');
    for (i, (key, v)) in members.iter().enumerate() {
        if members.get(i + 1).is_some_and(|next| next.0 == *key) {
            continue;
        }
        if out.len() > start + 1 {
            out.push(',');
        }
        push_json_str(out, key);
        out.push(':');
        value(out, v);
    }
    out.push('}');
}

/// Appends an integer as JSON.
pub(crate) fn push_int(out: &mut String, n: i64) {
    use std::fmt::Write as _;
    let _ = write!(out, "{n}");
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(&Json::String(s.to_owned()).to_string());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// The string form of one attribute, if present (strings as they are, others as JSON).
pub fn attribute_text(kvs: &[KeyValue], key: &str) -> Option<String> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .map(|kv| any_to_text(kv.value.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    #[test]
    fn attributes_json_is_the_text_of_attributes_value() {
        let cases = vec![
            vec![],
            vec![
                kv("z", Value::StringValue("last".into())),
                kv("a", Value::IntValue(-7)),
                kv("m", Value::BoolValue(false)),
                kv("a", Value::IntValue(8)),
            ],
            vec![
                kv(
                    "q\"uote\\",
                    Value::StringValue("line\nbreak \u{1} \"x\" é/".into()),
                ),
                kv("d", Value::DoubleValue(f64::NAN)),
                kv("e", Value::DoubleValue(0.25)),
                kv("b", Value::BytesValue(vec![0, 255])),
                KeyValue {
                    key: "none".into(),
                    key_strindex: 0,
                    value: None,
                },
                kv("empty", Value::StringValue(String::new())),
                kv(
                    "arr",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::StringValue("a".into())),
                        }],
                    }),
                ),
            ],
        ];
        for kvs in cases {
            assert_eq!(attributes_json(&kvs), attributes_value(&kvs).to_string());
        }
    }

    #[test]
    fn every_kind_keeps_its_type() {
        let attrs = vec![
            kv("s", Value::StringValue("x".into())),
            kv("i", Value::IntValue(i64::MAX)),
            kv("d", Value::DoubleValue(1.5)),
            kv("b", Value::BoolValue(true)),
            kv("bytes", Value::BytesValue(vec![1, 2, 3])),
            kv(
                "a",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::IntValue(1)),
                    }],
                }),
            ),
            kv(
                "kv",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("n", Value::StringValue("v".into()))],
                }),
            ),
            kv("nan", Value::DoubleValue(f64::NAN)),
        ];
        let j: Json = serde_json::from_str(&attributes_json(&attrs)).expect("json");
        assert_eq!(j["s"], "x");
        assert_eq!(j["i"].as_i64(), Some(i64::MAX));
        assert_eq!(j["d"].as_f64(), Some(1.5));
        assert_eq!(j["b"], true);
        assert_eq!(j["bytes"], "AQID");
        assert_eq!(j["a"][0], 1);
        assert_eq!(j["kv"]["n"], "v");
        assert_eq!(j["nan"], "NaN");
    }
}
