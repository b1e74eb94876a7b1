//! Parsing of series descriptions in test scripts:
//! `metric{label="value"} 1 2+3x4 _ _x2 stale {{schema:1 sum:3 count:2 buckets:[1 2]}}x3`.

use strata_promql::Labels;
use strata_promql::histogram::{CounterResetHint, FloatHistogram, Span};
use strata_promql::model::stale_nan;

/// One value of a sequence.
#[derive(Clone, Debug)]
pub enum SeqVal {
    Omitted,
    Float(f64),
    /// A histogram and whether its counter reset hint was given explicitly.
    Hist(FloatHistogram, bool),
}

/// Parses a Prometheus duration (`1h30m`, `5m`, `0`, `1.5`-less).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    let b = s.as_bytes();
    let mut i = 0;
    if b.is_empty() {
        return Err("empty duration".into());
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: i64 = s[st..i]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[us..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return Err(format!("invalid duration {s:?}")),
        };
        total += n * mult;
    }
    Ok(total)
}

fn unquote(s: &str) -> Result<(String, usize), String> {
    let b = s.as_bytes();
    let q = *b.first().ok_or("expected string")?;
    if q != b'"' && q != b'\'' && q != b'`' {
        return Err(format!("expected quoted string at {s:?}"));
    }
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c as u32 == q as u32 {
            return Ok((out, i + 1));
        }
        if c == '\\' && q != b'`' {
            let (_, e) = chars.next().ok_or("bad escape")?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'u' => {
                    let hex: String = (0..4).filter_map(|_| chars.next().map(|x| x.1)).collect();
                    let v = u32::from_str_radix(&hex, 16).map_err(|_| "bad \\u escape")?;
                    out.push(char::from_u32(v).ok_or("bad \\u escape")?);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated string".into())
}

/// Unquotes a whole string literal (Go `strconv.Unquote`).
pub fn unquote_all(s: &str) -> Result<String, String> {
    let (v, n) = unquote(s.trim())?;
    if n != s.trim().len() {
        return Err("trailing characters after string".into());
    }
    Ok(v)
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

/// Parses `name{...}` at the start of `s`; returns labels and the rest.
pub fn parse_metric(s: &str) -> Result<(Labels, &str), String> {
    let s = s.trim_start();
    let mut labels = Labels::empty();
    let mut i = 0;
    for (j, c) in s.char_indices() {
        if !is_name_char(c, j == 0) {
            break;
        }
        i = j + c.len_utf8();
    }
    if i > 0 {
        labels.set("__name__", &s[..i]);
    }
    let mut rest = &s[i..];
    let braces = rest.starts_with('{');
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            // Label name: identifier or quoted.
            let name;
            if rest.starts_with(['"', '\'', '`']) {
                let (n, len) = unquote(rest)?;
                rest = rest[len..].trim_start();
                if !rest.starts_with('=') {
                    // A quoted metric name.
                    labels.set("__name__", &n);
                    rest = rest.trim_start_matches(',');
                    continue;
                }
                name = n;
            } else {
                let mut k = 0;
                for (j, c) in rest.char_indices() {
                    if !is_name_char(c, j == 0) {
                        break;
                    }
                    k = j + c.len_utf8();
                }
                if k == 0 {
                    return Err(format!("bad label name at {rest:?}"));
                }
                name = rest[..k].to_string();
                rest = rest[k..].trim_start();
            }
            rest = rest
                .strip_prefix('=')
                .ok_or_else(|| format!("expected '=' at {rest:?}"))?
                .trim_start();
            let (v, len) = unquote(rest)?;
            labels.set(&name, &v);
            rest = rest[len..].trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    if labels.is_empty() && i == 0 && !braces {
        return Err(format!("expected metric at {s:?}"));
    }
    Ok((labels, rest))
}

/// Parses a number like Prometheus (ints incl. hex, floats, Inf, NaN).
pub fn parse_number(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).map_err(|e| e.to_string())? as f64
    } else {
        match body.to_ascii_lowercase().as_str() {
            "inf" | "infinity" => f64::INFINITY,
            "nan" => f64::NAN,
            _ => body.parse::<f64>().map_err(|e| format!("{e}: {s:?}"))?,
        }
    };
    Ok(if neg { -v } else { v })
}

fn parse_hist(body: &str) -> Result<(FloatHistogram, bool), String> {
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let (mut pos, mut neg): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let (mut off, mut noff) = (0i32, 0i32);
    let mut rest = body.trim();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("bad histogram {body:?}"))?;
        let key = rest[..colon].trim();
        rest = rest[colon + 1..].trim_start();
        let (val, r) = if rest.starts_with('[') {
            let end = rest.find(']').ok_or("missing ]")?;
            (&rest[..=end], &rest[end + 1..])
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        rest = r.trim_start();
        let list = || -> Result<Vec<f64>, String> {
            val.trim_start_matches('[')
                .trim_end_matches(']')
                .split_whitespace()
                .map(parse_number)
                .collect()
        };
        match key {
            "schema" => h.schema = val.parse().map_err(|_| "bad schema")?,
            "sum" => h.sum = parse_number(val)?,
            "count" => h.count = parse_number(val)?,
            "z_bucket" => h.zero_count = parse_number(val)?,
            "z_bucket_w" => h.zero_threshold = parse_number(val)?,
            "custom_values" => h.custom_values = list()?,
            "buckets" => pos = list()?,
            "n_buckets" => neg = list()?,
            "offset" => off = val.parse().map_err(|_| "bad offset")?,
            "n_offset" => noff = val.parse().map_err(|_| "bad n_offset")?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match val {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => return Err(format!("bad counter_reset_hint {val}")),
                }
            }
            _ => return Err(format!("unknown histogram key {key}")),
        }
    }
    if !pos.is_empty() {
        h.positive_spans = vec![Span {
            offset: off,
            length: pos.len() as u32,
        }];
        h.positive_buckets = pos;
    }
    if !neg.is_empty() {
        h.negative_spans = vec![Span {
            offset: noff,
            length: neg.len() as u32,
        }];
        h.negative_buckets = neg;
    }
    Ok((h, hint_set))
}

/// Splits a values string into items, keeping `{{...}}` together.
fn items(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' && chars.get(i + 1) == Some(&'{') {
            depth += 1;
            cur.push_str("{{");
            i += 2;
            continue;
        }
        if c == '}' && chars.get(i + 1) == Some(&'}') && depth > 0 {
            depth -= 1;
            cur.push_str("}}");
            i += 2;
            continue;
        }
        if c.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_item(item: &str, out: &mut Vec<SeqVal>) -> Result<(), String> {
    if item == "_" {
        out.push(SeqVal::Omitted);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
        out.extend(std::iter::repeat_n(SeqVal::Omitted, n));
        return Ok(());
    }
    if item == "stale" {
        out.push(SeqVal::Float(stale_nan()));
        return Ok(());
    }
    if item.starts_with("{{") {
        let close = item.find("}}").ok_or("unterminated histogram")?;
        let (base, base_set) = parse_hist(&item[2..close])?;
        let rest = &item[close + 2..];
        if rest.is_empty() {
            out.push(SeqVal::Hist(base, base_set));
            return Ok(());
        }
        if let Some(n) = rest.strip_prefix('x') {
            let n: usize = n.parse().map_err(|_| format!("bad repeat {item}"))?;
            for _ in 0..=n {
                out.push(SeqVal::Hist(base.clone(), base_set));
            }
            return Ok(());
        }
        let sub = rest.starts_with('-');
        let rest = &rest[1..];
        let close2 = rest.find("}}").ok_or("unterminated histogram")?;
        let (inc, inc_set) = parse_hist(&rest[2..close2])?;
        let n: usize = rest[close2 + 2..]
            .strip_prefix('x')
            .ok_or("expected x")?
            .parse()
            .map_err(|_| format!("bad repeat {item}"))?;
        let mut cur = base.clone();
        out.push(SeqVal::Hist(base, inc_set));
        for _ in 0..n {
            let mut next = cur.clone();
            let r = if sub { next.sub(&inc) } else { next.add(&inc) };
            r.map_err(|e| e.to_string())?;
            out.push(SeqVal::Hist(next.clone(), inc_set));
            cur = next;
        }
        return Ok(());
    }
    // a, axN, a+bxN, a-bxN
    if let Some(xpos) = item.rfind('x') {
        let (head, n) = (&item[..xpos], &item[xpos + 1..]);
        if let Ok(n) = n.parse::<usize>() {
            // Find the operator separating base and increment (not a leading sign / exponent sign).
            let bytes = head.as_bytes();
            let mut split = None;
            for k in (1..bytes.len()).rev() {
                if (bytes[k] == b'+' || bytes[k] == b'-') && !matches!(bytes[k - 1], b'e' | b'E') {
                    split = Some(k);
                    break;
                }
            }
            let (base, inc) = match split {
                Some(k) => (parse_number(&head[..k])?, parse_number(&head[k..])?),
                None => (parse_number(head)?, 0.0),
            };
            let mut v = base;
            for _ in 0..=n {
                out.push(SeqVal::Float(v));
                v += inc;
            }
            return Ok(());
        }
    }
    out.push(SeqVal::Float(parse_number(item)?));
    Ok(())
}

/// Parses a values string.
pub fn parse_values(s: &str) -> Result<Vec<SeqVal>, String> {
    let mut out = Vec::new();
    for it in items(s) {
        parse_item(&it, &mut out)?;
    }
    Ok(out)
}

/// Parses a full series line: metric then values.
pub fn parse_series(line: &str) -> Result<(Labels, Vec<SeqVal>), String> {
    let (labels, rest) = parse_metric(line)?;
    Ok((labels, parse_values(rest)?))
}
