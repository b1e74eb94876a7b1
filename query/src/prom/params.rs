//! Request parameters the way Prometheus reads them: URL query and form body merged (body
//! values first, as Go's `Request.FormValue`), times as Unix float seconds or RFC 3339,
//! durations as float seconds or Prometheus durations, and Prometheus's error texts.

use super::response::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use promql_parser::parser::Expr;
use strata_promql::{MatchKind, Matcher};
use strata_storage::TenantId;
use strata_storage::tenant::TENANT_HEADER;

/// Lowest timestamp (ms) a request can name: Prometheus's `MinTime`.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974;
/// Highest timestamp (ms) a request can name: Prometheus's `MaxTime`.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974;
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// The decoded parameters of one request.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// A request's tenant and merged URL/form parameters, extracted as Prometheus and Loki
/// (both Go servers) read them: the body counts as a form for POST, PUT and PATCH, as
/// Go's `Request.ParseForm` does.
pub(crate) struct Req {
    pub tenant: TenantId,
    pub params: Params,
}

/// Why a request could not be read: a bad tenant header or an unreadable body. Each API
/// turns it into its own error shape (handlers take `Result<Req, BadRequest>`).
#[derive(Debug)]
pub(crate) struct BadRequest(pub String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.0).into_response()
    }
}

const FORM_METHODS: [Method; 3] = [Method::POST, Method::PUT, Method::PATCH];

impl<S: Send + Sync> FromRequest<S> for Req {
    type Rejection = BadRequest;

    async fn from_request(req: Request, state: &S) -> Result<Self, BadRequest> {
        let tenant = TenantId::from_header(req.headers().get(TENANT_HEADER).map(|v| v.as_bytes()))
            .map_err(|e| BadRequest(e.to_string()))?;
        let (method, headers, uri) = (
            req.method().clone(),
            req.headers().clone(),
            req.uri().clone(),
        );
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| BadRequest(e.body_text()))?;
        Ok(Req {
            tenant,
            params: Params::from_request(&method, &headers, &uri, &body, &FORM_METHODS),
        })
    }
}

impl Params {
    /// The parameters of an HTTP request: the URL query, plus the body when it is a form
    /// (`application/x-www-form-urlencoded`) sent with one of `form_methods`.
    pub fn from_request(
        method: &Method,
        headers: &axum::http::HeaderMap,
        uri: &axum::http::Uri,
        body: &[u8],
        form_methods: &[Method],
    ) -> Self {
        let is_form = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let form = (is_form && form_methods.contains(method)).then_some(body);
        Params::new(uri.query(), form)
    }

    /// Merges form-body pairs (first) and URL query pairs.
    pub fn new(query: Option<&str>, form_body: Option<&[u8]>) -> Self {
        let mut pairs = Vec::new();
        if let Some(body) = form_body {
            pairs.extend(decode_form(&String::from_utf8_lossy(body)));
        }
        if let Some(q) = query {
            pairs.extend(decode_form(q));
        }
        Params { pairs }
    }

    /// The first value of `name`, empty when absent (Go's `FormValue`).
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = bytes
                    .get(i + 1)
                    .and_then(|a| hex(*a))
                    .zip(bytes.get(i + 2).and_then(|b| hex(*b)));
                if let Some((hi, lo)) = pair {
                    out.push(hi << 4 | lo);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes `application/x-www-form-urlencoded` text (also URL query strings).
pub fn decode_form(s: &str) -> Vec<(String, String)> {
    s.split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (unescape(k), unescape(v)),
            None => (unescape(p), String::new()),
        })
        .collect()
}

/// `invalid parameter "<name>": <err>`.
pub fn invalid_param(name: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::bad_data(format!("invalid parameter {name:?}: {err}"))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses RFC 3339 (with optional fractional seconds) into Unix milliseconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let (secs, nanos) = rfc3339_parts(s)?;
    Some(secs * 1000 + nanos / 1_000_000)
}

/// Parses RFC 3339 (with optional fractional seconds) into Unix nanoseconds.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let (secs, nanos) = rfc3339_parts(s)?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// RFC 3339 as Unix seconds and the nanoseconds past them.
fn rfc3339_parts(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start || end - start > 9 {
            return None;
        }
        let digits = num(start..end)?;
        nanos = digits * 10i64.pow(9 - (end - start) as u32);
        i = end;
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some((secs, nanos))
}

/// Go's `strconv.ParseFloat` for the forms clients send (no hex floats, no underscores).
fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Parses a timestamp parameter into Unix milliseconds (Prometheus's `parseTime`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Some(t) = parse_go_float(s) {
        if t.is_finite() {
            let secs = t.trunc();
            let frac = ((t - secs) * 1000.0).round();
            let ms = secs * 1000.0 + frac;
            if ms >= MIN_TIME_MS as f64 && ms <= MAX_TIME_MS as f64 {
                return Ok(ms as i64);
            }
        }
    } else if let Some(ms) = parse_rfc3339(s) {
        return Ok(ms);
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
    }
}

/// Reads an optional time parameter (Prometheus's `parseTimeParam`), `default` when absent.
pub fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    let v = p.get(name);
    if v.is_empty() {
        return Ok(default);
    }
    parse_time(v).map_err(|e| invalid_param(name, format!("Invalid time value for '{name}': {e}")))
}

/// Parses a duration parameter into milliseconds (Prometheus's `parseDuration`).
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    if let Some(d) = parse_go_float(s) {
        let ns = d * 1e9;
        if !ns.is_finite() || ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok((ns as i64) / 1_000_000);
    }
    if s == "0" {
        return Ok(0);
    }
    promql_parser::util::parse_duration(s)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

/// Parses the `limit` parameter: 0 (no limit) when absent.
pub fn limit_param(p: &Params) -> Result<usize, ApiError> {
    let v = p.get("limit");
    if v.is_empty() {
        return Ok(0);
    }
    let n: i64 = v.parse().map_err(|_| {
        invalid_param(
            "limit",
            format!("strconv.Atoi: parsing {v:?}: invalid syntax"),
        )
    })?;
    if n < 0 {
        return Err(invalid_param("limit", "limit must be non-negative"));
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Engine matcher sets of a parsed selector, one per `or` alternative.
pub fn selector_sets(
    vs: &promql_parser::parser::VectorSelector,
) -> Result<Vec<Vec<Matcher>>, String> {
    let conv = |m: &promql_parser::label::Matcher| -> Result<Matcher, String> {
        use promql_parser::label::MatchOp;
        let kind = match m.op {
            MatchOp::Equal => MatchKind::Equal,
            MatchOp::NotEqual => MatchKind::NotEqual,
            MatchOp::Re(_) => MatchKind::Regex,
            MatchOp::NotRe(_) => MatchKind::NotRegex,
        };
        Matcher::new(kind, &m.name, &m.value).map_err(|e| e.to_string())
    };
    let mut base = Vec::new();
    if let Some(name) = &vs.name {
        base.push(Matcher::new(MatchKind::Equal, "__name__", name).map_err(|e| e.to_string())?);
    }
    for m in &vs.matchers.matchers {
        base.push(conv(m)?);
    }
    if vs.matchers.or_matchers.is_empty() {
        return Ok(vec![base]);
    }
    vs.matchers
        .or_matchers
        .iter()
        .map(|alt| {
            let mut set = base.clone();
            for m in alt {
                set.push(conv(m)?);
            }
            Ok(set)
        })
        .collect()
}

/// Parses `match[]` values (Prometheus's `parseMatchersParam`).
pub fn match_param(values: &[&str]) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for v in values {
        let expr = promql_parser::parser::parse(v).map_err(|e| invalid_param("match[]", e))?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(invalid_param(
                "match[]",
                format!("{v:?} is not a series selector"),
            ));
        };
        sets.extend(selector_sets(&vs).map_err(|e| invalid_param("match[]", e))?);
    }
    for set in &sets {
        if !set.iter().any(|m| !m.matches("")) {
            return Err(invalid_param(
                "match[]",
                "match[] must contain at least one non-empty matcher",
            ));
        }
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.1234"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(MAX_TIME_MS));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration_ms("15"), Ok(15_000));
        assert_eq!(parse_duration_ms("0.5"), Ok(500));
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert!(parse_duration_ms("1e300").is_err());
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn form_values_merge_body_first() {
        let p = Params::new(Some("a=1&b=x%20y&m%5B%5D=q"), Some(b"a=2&m[]=r+s"));
        assert_eq!(p.get("a"), "2");
        assert_eq!(p.get("b"), "x y");
        assert_eq!(p.all("m[]"), vec!["r s", "q"]);
        assert_eq!(p.get("zzz"), "");
    }
}
