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
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| {
                Json::String(
                    if d.is_nan() {
                        "NaN"
                    } else if *d > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    }
                    .into(),
                )
            }),
        Some(Value::BytesValue(b)) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Value::ArrayValue(a)) => Json::Array(a.values.iter().map(any_to_json).collect()),
        Some(Value::KvlistValue(kv)) => Json::Object(kvs_to_map(&kv.values)),
        // An index into a profile's string table: meaningless outside it.
        Some(Value::StringValueStrindex(i)) => Json::from(*i),
    }
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

/// Attributes as JSON object text.
pub fn attributes_json(kvs: &[KeyValue]) -> String {
    attributes_value(kvs).to_string()
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
