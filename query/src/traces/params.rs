//! Parameters of the trace APIs: Go durations (`1.5s`, `100ms`, `1h30m`), Jaeger's
//! microsecond times and lookbacks, Tempo's Unix-second times, and tag filters given as a
//! JSON object or logfmt (`key=value key2="with space"`).

use crate::error::{Error, Result};
use crate::prom::params::Params;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn bad(name: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::BadQuery(format!("invalid {name} {value:?}: {why}"))
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A Go duration (`300ms`, `1.5h`, `2h45m`, `10us`, `10µs`) or, as Jaeger's lookback
/// also allows, days (`2d`) and weeks (`1w`), in nanoseconds: TraceQL's duration syntax.
/// A bare number is seconds.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let ns = match s.parse::<f64>() {
        Ok(secs) => secs * 1e9,
        Err(_) => strata_traceql::parse_duration(s).ok_or_else(|| {
            format!("invalid duration {s:?}: use seconds or a duration such as 300ms or 1h30m")
        })? as f64,
    };
    if !ns.is_finite() || ns < 0.0 || ns > i64::MAX as f64 {
        return Err("duration out of range".into());
    }
    Ok(ns as i64)
}

/// An optional duration parameter in nanoseconds.
pub fn duration_param(p: &Params, name: &str) -> Result<Option<i64>> {
    let v = p.get(name);
    if v.is_empty() {
        return Ok(None);
    }
    parse_go_duration(v).map(Some).map_err(|e| bad(name, v, e))
}

/// `minDuration` and `maxDuration` in nanoseconds; the maximum may not be below the minimum.
pub fn duration_bounds(p: &Params) -> Result<(Option<i64>, Option<i64>)> {
    let min = duration_param(p, "minDuration")?;
    let max = duration_param(p, "maxDuration")?;
    if let (Some(lo), Some(hi)) = (min, max)
        && hi < lo
    {
        return Err(Error::BadQuery(
            "maxDuration must be greater than minDuration".into(),
        ));
    }
    Ok((min, max))
}

/// An optional integer parameter.
pub fn int_param(p: &Params, name: &str) -> Result<Option<i64>> {
    let v = p.get(name);
    if v.is_empty() {
        return Ok(None);
    }
    v.trim()
        .parse::<i64>()
        .map(Some)
        .map_err(|_| bad(name, v, "expected an integer"))
}

/// One tag condition: `key` must have this value (compared as text).
#[derive(Debug, Clone, PartialEq)]
pub struct TagFilter {
    pub key: String,
    pub value: String,
}

/// Tag filters from a JSON object (`{"k":"v"}`, Jaeger) or logfmt (`k=v k2="a b"`).
pub fn parse_tags(s: &str) -> Result<Vec<TagFilter>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    if t.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(t).map_err(|e| format!("not a JSON object of tags: {e}"))?;
        return Ok(map
            .into_iter()
            .map(|(key, v)| TagFilter {
                key,
                value: match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                },
            })
            .collect());
    }
    parse_logfmt(t)
}

/// logfmt pairs: `key=value`, values optionally double-quoted with `\"` escapes.
pub fn parse_logfmt(s: &str) -> Result<Vec<TagFilter>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("expected key=value, found {key:?} without a value"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for {key:?}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if key.is_empty() {
            return Err("empty tag name".into());
        }
        out.push(TagFilter { key, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("10us"), Ok(10_000));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert_eq!(parse_go_duration("2d"), Ok(172_800_000_000_000));
        assert_eq!(parse_go_duration("3"), Ok(3_000_000_000));
        assert!(parse_go_duration("abc").is_err());
        assert!(parse_go_duration("5x").is_err());
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn tags_json_and_logfmt() {
        let t = parse_tags(r#"{"http.status_code":"500","error":true}"#).expect("json");
        assert_eq!(t.len(), 2);
        assert!(t.contains(&TagFilter {
            key: "error".into(),
            value: "true".into()
        }));
        let t = parse_tags(r#"service.name=cart  msg="a \"b\" c" x=1"#).expect("logfmt");
        assert_eq!(
            t,
            vec![
                TagFilter {
                    key: "service.name".into(),
                    value: "cart".into()
                },
                TagFilter {
                    key: "msg".into(),
                    value: "a \"b\" c".into()
                },
                TagFilter {
                    key: "x".into(),
                    value: "1".into()
                },
            ]
        );
        assert!(parse_tags("novalue").is_err());
        assert!(parse_tags("k=\"open").is_err());
        assert!(parse_tags("{bad json").is_err());
    }
}
