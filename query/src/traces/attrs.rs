//! Stored attribute maps (JSON objects as text) and the enum names the trace APIs use.

use serde_json::{Map, Value};

/// A stored attribute map; empty (not an error) when the text is not a JSON object.
pub fn parse_attrs(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A JSON attribute value as the text a tag filter compares against.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Jaeger's lower-case span kind (`""` for unspecified).
pub fn jaeger_kind(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "",
    }
}

/// The OTLP kind number of a Jaeger kind name (`None` when unknown).
pub fn kind_from_jaeger(name: &str) -> Option<i32> {
    Some(match name {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        "unspecified" => 0,
        _ => return None,
    })
}

/// OpenTelemetry's status code name (`UNSET`, `OK`, `ERROR`).
pub fn status_name(code: i32) -> &'static str {
    match code {
        1 => "OK",
        2 => "ERROR",
        _ => "UNSET",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_and_names() {
        let m = parse_attrs(r#"{"a":1,"b":"x"}"#);
        assert_eq!(value_text(&m["a"]), "1");
        assert_eq!(value_text(&m["b"]), "x");
        assert!(parse_attrs("not json").is_empty());
        assert_eq!(jaeger_kind(2), "server");
        assert_eq!(kind_from_jaeger("client"), Some(3));
        assert_eq!(kind_from_jaeger("bogus"), None);
        assert_eq!(status_name(2), "ERROR");
    }
}
