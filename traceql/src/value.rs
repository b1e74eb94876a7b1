//! Values that TraceQL compares: attribute values, literals and intrinsics.

use std::cmp::Ordering;
use std::fmt;

/// OTLP span status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    /// The OTLP numeric code (0 unset, 1 ok, 2 error); anything else is unset.
    pub fn from_otlp(code: i32) -> Self {
        match code {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// OTLP span kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// The OTLP numeric kind (0 unspecified .. 5 consumer); anything else is unspecified.
    pub fn from_otlp(kind: i32) -> Self {
        match kind {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// A TraceQL value: attribute values, literals, intrinsics and aggregate results.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(StatusCode),
    Kind(SpanKind),
    /// OTLP array attribute; a comparison with a scalar holds when it holds for any
    /// element (`!=` and `!~`: for every element), as in Tempo.
    Array(Vec<Value>),
    Nil,
}

impl Value {
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Duration(_) => "duration",
            Value::Status(_) => "status",
            Value::Kind(_) => "kind",
            Value::Array(_) => "array",
            Value::Nil => "nil",
        }
    }

    /// Tempo's OTLP `AnyValue` JSON encoding of this value (durations, statuses and
    /// kinds become strings, 64-bit ints are strings as protobuf JSON requires).
    pub fn to_any_value_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Value::Str(s) => json!({ "stringValue": s }),
            Value::Int(i) => json!({ "intValue": i.to_string() }),
            Value::Float(f) => {
                if f.is_finite() {
                    json!({ "doubleValue": f })
                } else {
                    json!({ "doubleValue": f.to_string() })
                }
            }
            Value::Bool(b) => json!({ "boolValue": b }),
            Value::Duration(ns) => json!({ "stringValue": format_go_duration(*ns) }),
            Value::Status(s) => json!({ "stringValue": s.as_str() }),
            Value::Kind(k) => json!({ "stringValue": k.as_str() }),
            Value::Array(vals) => {
                let values: Vec<serde_json::Value> =
                    vals.iter().map(Value::to_any_value_json).collect();
                json!({ "arrayValue": { "values": values } })
            }
            Value::Nil => json!({ "stringValue": "nil" }),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Duration(ns) => f.write_str(&format_go_duration(*ns)),
            Value::Status(s) => f.write_str(s.as_str()),
            Value::Kind(k) => f.write_str(k.as_str()),
            Value::Array(vals) => {
                f.write_str("[")?;
                for (i, v) in vals.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Nil => f.write_str("nil"),
        }
    }
}

/// Formats nanoseconds the way Go's `time.Duration.String` does (`1.5s`, `100ms`,
/// `1h2m3s`, `0s`), which is how Tempo prints durations in search results.
pub fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // sub-second: ns, µs or ms with a fraction
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&format_frac(u, div));
        out.push_str(unit);
        return out;
    }
    let h = u / 3_600_000_000_000;
    let rem = u % 3_600_000_000_000;
    let m = rem / 60_000_000_000;
    let s_ns = rem % 60_000_000_000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format_frac(s_ns, 1_000_000_000));
    out.push('s');
    out
}

/// `value / div` with the fraction's trailing zeros removed.
fn format_frac(value: u64, div: u64) -> String {
    let whole = value / div;
    let frac = value % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A value borrowed from the query or the trace during evaluation: no allocation per
/// span for strings.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ev<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Duration(i64),
    Str(&'a str),
    Status(StatusCode),
    Kind(SpanKind),
    Array(&'a [Value]),
}

impl<'a> Ev<'a> {
    pub(crate) fn from_value(v: &'a Value) -> Ev<'a> {
        match v {
            Value::Str(s) => Ev::Str(s),
            Value::Int(i) => Ev::Int(*i),
            Value::Float(f) => Ev::Float(*f),
            Value::Bool(b) => Ev::Bool(*b),
            Value::Duration(d) => Ev::Duration(*d),
            Value::Status(s) => Ev::Status(*s),
            Value::Kind(k) => Ev::Kind(*k),
            Value::Array(a) => Ev::Array(a),
            Value::Nil => Ev::Nil,
        }
    }

    pub(crate) fn to_value(self) -> Value {
        match self {
            Ev::Nil => Value::Nil,
            Ev::Bool(b) => Value::Bool(b),
            Ev::Int(i) => Value::Int(i),
            Ev::Float(f) => Value::Float(f),
            Ev::Duration(d) => Value::Duration(d),
            Ev::Str(s) => Value::Str(s.to_string()),
            Ev::Status(s) => Value::Status(s),
            Ev::Kind(k) => Value::Kind(k),
            Ev::Array(a) => Value::Array(a.to_vec()),
        }
    }

    pub(crate) fn is_nil(self) -> bool {
        matches!(self, Ev::Nil)
    }

    pub(crate) fn is_true(self) -> bool {
        matches!(self, Ev::Bool(true))
    }

    /// The numeric value as f64 (durations in nanoseconds), for numeric types only.
    pub(crate) fn as_f64(self) -> Option<f64> {
        match self {
            Ev::Int(i) | Ev::Duration(i) => Some(i as f64),
            Ev::Float(f) => Some(f),
            _ => None,
        }
    }

    /// Numeric ordering of two numeric values; ints and durations compare exactly.
    pub(crate) fn num_cmp(self, other: Ev<'_>) -> Option<Ordering> {
        match (self, other) {
            (Ev::Int(a) | Ev::Duration(a), Ev::Int(b) | Ev::Duration(b)) => Some(a.cmp(&b)),
            _ => self.as_f64()?.partial_cmp(&other.as_f64()?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_format() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(10), "10ns");
        assert_eq!(format_go_duration(1_500), "1.5µs");
        assert_eq!(format_go_duration(100_000_000), "100ms");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(90_000_000_000), "1m30s");
        assert_eq!(format_go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_go_duration(-2_000_000), "-2ms");
    }
}
