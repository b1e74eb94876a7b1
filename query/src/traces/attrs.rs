//! Stored attribute maps (JSON objects as text) and the enum names the trace APIs use.

use serde_json::{Map, Value};

/// A stored attribute map; empty (not an error) when the text is not a JSON object.
pub fn parse_attrs(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The value of one top-level key of a stored attribute map, without building the map:
/// other keys' values are skipped unparsed into values (`None` when the key is absent or
/// the text is not a JSON object). Of repeated keys the last counts, as in
/// [`parse_attrs`].
pub fn attr_value(text: &str, key: &str) -> Option<Value> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    use std::borrow::Cow;
    struct Find<'k>(&'k str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if k == self.0 {
                    found = Some(map.next_value::<Value>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Find(key)).ok().flatten()
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

    #[test]
    fn attr_value_finds_top_level_keys_only() {
        let text = r#"{"a":{"k":"nested"},"k":"top","n":3,"s":"x\"k\":1","k2":[1,{"k":2}]}"#;
        assert_eq!(attr_value(text, "k"), Some(Value::from("top")));
        assert_eq!(attr_value(text, "n"), Some(Value::from(3)));
        assert_eq!(attr_value(text, "s"), Some(Value::from("x\"k\":1")));
        assert_eq!(attr_value(text, "missing"), None);
        assert_eq!(
            attr_value(r#"{"k":1,"k":2}"#, "k"),
            parse_attrs(r#"{"k":1,"k":2}"#).get("k").cloned()
        );
        assert_eq!(attr_value("not json", "k"), None);
        assert_eq!(
            attr_value(r#"{"esc\u0061pe":1}"#, "escape"),
            Some(Value::from(1))
        );
        for text in [r#"{}"#, r#"{"k":null}"#, r#"[1]"#] {
            assert_eq!(attr_value(text, "k"), parse_attrs(text).get("k").cloned());
        }
    }
}
