//! Executes log pipeline stages on one entry at a time.

use std::sync::OnceLock;

use regex::Regex;

use crate::ast::*;
use crate::matcher::MatchOp;
use crate::template::Scope;

pub(crate) const ERROR_LABEL: &str = "__error__";
pub(crate) const ERROR_DETAILS_LABEL: &str = "__error_details__";
const DUPLICATE_SUFFIX: &str = "_extracted";

/// Where a label came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cat {
    Stream,
    Meta,
    Parsed,
}

#[derive(Debug, Clone)]
pub(crate) struct Lbl {
    pub name: String,
    pub value: String,
    pub cat: Cat,
}

/// The labels of one entry while it flows through the pipeline.
#[derive(Debug, Default)]
pub(crate) struct LabelSet {
    pub items: Vec<Lbl>,
    /// Number of leading items that are the stream's own labels (`BaseHas`).
    base: usize,
}

impl LabelSet {
    pub fn reset(&mut self, stream: &[(String, String)], meta: &[(String, String)]) {
        self.items.clear();
        for (n, v) in stream {
            self.items.push(Lbl {
                name: n.clone(),
                value: v.clone(),
                cat: Cat::Stream,
            });
        }
        self.base = self.items.len();
        for (n, v) in meta {
            let name = if self.base_has(n) {
                format!("{n}{DUPLICATE_SUFFIX}")
            } else {
                n.clone()
            };
            self.set(name, v.clone(), Cat::Meta);
        }
    }

    fn base_has(&self, name: &str) -> bool {
        self.items[..self.base.min(self.items.len())]
            .iter()
            .any(|l| l.name == name && l.cat == Cat::Stream)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    pub fn set(&mut self, name: String, value: String, cat: Cat) {
        if let Some(l) = self.items.iter_mut().find(|l| l.name == name) {
            l.value = value;
            if l.cat != Cat::Stream {
                l.cat = cat;
            }
        } else {
            self.items.push(Lbl { name, value, cat });
        }
    }

    /// Adds a parsed label, renaming it `<name>_extracted` if the stream
    /// already has a label of that name.
    pub fn set_parsed(&mut self, name: String, value: String) {
        let name = if self.base_has(&name) {
            format!("{name}{DUPLICATE_SUFFIX}")
        } else {
            name
        };
        self.set(name, value, Cat::Parsed);
    }

    pub fn del(&mut self, name: &str) {
        if let Some(i) = self.items.iter().position(|l| l.name == name) {
            self.items.remove(i);
            if i < self.base {
                self.base -= 1;
            }
        }
    }

    pub fn has_err(&self) -> bool {
        self.get(ERROR_LABEL).is_some_and(|v| !v.is_empty())
    }

    pub fn set_err(&mut self, err: &str, details: String) {
        if self.has_err() {
            return;
        }
        self.set(ERROR_LABEL.into(), err.into(), Cat::Parsed);
        if !details.is_empty() {
            self.set(ERROR_DETAILS_LABEL.into(), details, Cat::Parsed);
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Lbl) -> bool) {
        let mut i = 0;
        while i < self.items.len() {
            if keep(&self.items[i]) {
                i += 1;
            } else {
                self.items.remove(i);
                if i < self.base {
                    self.base -= 1;
                }
            }
        }
    }

    /// Sorted `(name, value)` pairs of all labels.
    pub fn sorted(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .items
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        v.sort();
        v
    }
}

struct TScope<'a> {
    lbls: &'a LabelSet,
    line: &'a str,
    ts: i64,
}

impl Scope for TScope<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.lbls.get(name)
    }
    fn line(&self) -> &str {
        self.line
    }
    fn ts_ns(&self) -> i64 {
        self.ts
    }
}

/// Runs line filter alternatives on a line.
pub(crate) fn line_filter_matches(f: &LineFilterStage, line: &str) -> bool {
    let any = f.compiled.iter().any(|c| match c {
        CompiledLineFilter::Contains(s) => line.contains(s.as_str()),
        CompiledLineFilter::ContainsCi(s) => line.to_lowercase().contains(s.as_str()),
        CompiledLineFilter::Regex(r) => r.is_match(line),
        CompiledLineFilter::Pattern(p) => p.test(line),
    });
    if f.filter.op.is_negative() { !any } else { any }
}

/// Runs `stages` on an entry. Returns false if the entry is filtered out;
/// `line` may be replaced (`line_format`, `unpack`, `decolorize`).
pub(crate) fn run_stages(
    stages: &[Stage],
    ts: i64,
    line: &mut String,
    lbls: &mut LabelSet,
) -> bool {
    for st in stages {
        match st {
            Stage::LineFilter(f) => {
                if !line_filter_matches(f, line) {
                    return false;
                }
            }
            Stage::Json(params) => {
                if params.is_empty() {
                    json_parse(line, lbls);
                } else {
                    json_params(line, params, lbls);
                }
            }
            Stage::Logfmt {
                strict,
                keep_empty,
                params,
            } => logfmt_parse(line, *strict, *keep_empty, params, lbls),
            Stage::Regexp(rp) => {
                if let Some(caps) = rp.regex.captures(line) {
                    for (i, name) in rp.names.iter().enumerate() {
                        if let (Some(n), Some(m)) = (name, caps.get(i)) {
                            lbls.set_parsed(n.clone(), m.as_str().to_string());
                        }
                    }
                }
            }
            Stage::Pattern(p) => {
                let mut found: Vec<(String, String)> = Vec::new();
                p.captures(line, |n, v| found.push((n.to_string(), v.to_string())));
                for (n, v) in found {
                    lbls.set_parsed(n, v);
                }
            }
            Stage::Unpack => unpack(line, lbls),
            Stage::LabelFilter(f) => {
                if !label_filter(f, lbls) {
                    return false;
                }
            }
            Stage::LineFormat(t) => {
                let mut out = String::with_capacity(line.len());
                let res = t.render(&TScope { lbls, line, ts }, &mut out);
                match res {
                    Ok(()) => *line = out,
                    Err(e) => lbls.set_err("TemplateFormatErr", e),
                }
            }
            Stage::LabelFormat(fmts) => label_format(fmts, ts, line, lbls),
            Stage::Drop(sels) => lbls.retain(|l| !sels.iter().any(|s| sel_matches(s, l))),
            Stage::Keep(sels) => lbls.retain(|l| sels.iter().any(|s| sel_matches(s, l))),
            Stage::Decolorize => {
                if let Some(re) = ansi_regex()
                    && re.is_match(line)
                {
                    *line = re.replace_all(line, "").into_owned();
                }
            }
        }
    }
    true
}

fn ansi_regex() -> Option<&'static Regex> {
    static ANSI: OnceLock<Option<Regex>> = OnceLock::new();
    ANSI.get_or_init(|| Regex::new(r"\x1b\[[0-9;]*[a-zA-Z]").ok())
        .as_ref()
}

fn sel_matches(s: &LabelSel, l: &Lbl) -> bool {
    match s {
        LabelSel::Name(n) => *n == l.name,
        LabelSel::Matcher(m) => m.name == l.name && m.matches(&l.value),
    }
}

fn label_format(fmts: &[LabelFmt], ts: i64, line: &str, lbls: &mut LabelSet) {
    // Templates see the labels as they were before this stage.
    let mut results: Vec<(String, Result<String, String>)> = Vec::new();
    for f in fmts {
        if let LabelFmt::Template { dst, tmpl } = f {
            let mut out = String::new();
            let r = tmpl
                .render(&TScope { lbls, line, ts }, &mut out)
                .map(|_| out);
            results.push((dst.clone(), r));
        }
    }
    for f in fmts {
        if let LabelFmt::Rename { dst, src } = f {
            let v = lbls.get(src).map(str::to_string);
            if let Some(v) = v {
                if src != dst {
                    lbls.del(src);
                }
                lbls.set(dst.clone(), v, Cat::Parsed);
            }
        }
    }
    for (dst, r) in results {
        match r {
            Ok(v) => lbls.set(dst, v, Cat::Parsed),
            Err(e) => lbls.set_err("TemplateFormatErr", e),
        }
    }
}

pub(crate) fn label_filter(f: &LabelFilter, lbls: &mut LabelSet) -> bool {
    match f {
        LabelFilter::And(a, b) => label_filter(a, lbls) && label_filter(b, lbls),
        LabelFilter::Or(a, b) => label_filter(a, lbls) || label_filter(b, lbls),
        LabelFilter::Matcher(m) => {
            let v = lbls.get(&m.name).unwrap_or("");
            m.matches(v)
        }
        LabelFilter::Number { name, op, value } => numeric(lbls, name, *op, *value, |s| {
            s.trim()
                .parse::<f64>()
                .map_err(|e| format!("strconv.ParseFloat: parsing {s:?}: {e}"))
        }),
        LabelFilter::Duration { name, op, value_ns } => {
            numeric(lbls, name, *op, *value_ns as f64, |s| {
                parse_go_duration(s)
                    .map(|d| d as f64)
                    .ok_or_else(|| format!("time: invalid duration {s:?}"))
            })
        }
        LabelFilter::Bytes { name, op, value } => numeric(lbls, name, *op, *value as f64, |s| {
            crate::lexer::parse_bytes(s)
                .map(|b| b as f64)
                .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
        }),
    }
}

fn numeric(
    lbls: &mut LabelSet,
    name: &str,
    op: CmpOp,
    want: f64,
    conv: impl Fn(&str) -> Result<f64, String>,
) -> bool {
    // If there is already an error only string matchers can filter it out.
    if lbls.has_err() {
        return true;
    }
    let Some(v) = lbls.get(name) else {
        return false;
    };
    match conv(v) {
        Ok(x) => op.cmp(x, want),
        Err(e) => {
            lbls.set_err("LabelFilterErr", e);
            true
        }
    }
}

/// Go's `time.ParseDuration` (units ns, us, µs, ms, s, m, h) in nanoseconds.
pub(crate) fn parse_go_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body == "0" {
        return Some(0);
    }
    if body.ends_with(['d', 'w', 'y']) {
        return None;
    }
    crate::lexer::parse_duration(body).map(|d| if neg { -d } else { d })
}

// ---- parsers ----

/// Loki's label-name sanitising: characters outside `[a-zA-Z0-9_]` become
/// `_`, and a leading digit is prefixed with `_`.
pub(crate) fn sanitize_key(key: &str, is_prefix: bool) -> String {
    let key = key.trim();
    let mut out = String::with_capacity(key.len() + 1);
    if is_prefix && key.as_bytes().first().is_some_and(|c| c.is_ascii_digit()) {
        out.push('_');
    }
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

fn json_parse(line: &str, lbls: &mut LabelSet) {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                flatten(&sanitize_key(&k, true), v, lbls);
            }
        }
        Ok(_) => lbls.set_err(
            "JSONParserErr",
            "Value looks like object, but can't find closing '}' symbol".into(),
        ),
        Err(e) => lbls.set_err("JSONParserErr", e.to_string()),
    }
}

fn flatten(prefix: &str, v: serde_json::Value, lbls: &mut LabelSet) {
    use serde_json::Value;
    if prefix.is_empty() {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = format!("{prefix}_{}", sanitize_key(&k, false));
                flatten(&key, v, lbls);
            }
        }
        Value::Array(_) => {}
        Value::String(s) => lbls.set_parsed(prefix.to_string(), s),
        Value::Null => lbls.set_parsed(prefix.to_string(), String::new()),
        Value::Bool(b) => lbls.set_parsed(prefix.to_string(), b.to_string()),
        Value::Number(n) => lbls.set_parsed(prefix.to_string(), n.to_string()),
    }
}

fn json_params(line: &str, params: &[ExtractParam], lbls: &mut LabelSet) {
    let v = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => v,
        Err(e) => {
            lbls.set_err("JSONParserErr", e.to_string());
            return;
        }
    };
    for p in params {
        let val = json_path(&v, &p.path)
            .map(|x| match x {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        lbls.set_parsed(p.label.clone(), val);
    }
}

/// Evaluates `a.b[0]["c d"]` against a JSON value.
fn json_path<'v>(v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut cur = v;
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => i += 1,
            b'[' => {
                let close = path[i..].find(']')? + i;
                let inner = path[i + 1..close].trim();
                if let Some(q) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    cur = cur.get(q)?;
                } else {
                    let idx: usize = inner.parse().ok()?;
                    cur = cur.get(idx)?;
                }
                i = close + 1;
            }
            _ => {
                let end = path[i..]
                    .find(['.', '['])
                    .map(|e| e + i)
                    .unwrap_or(path.len());
                cur = cur.get(&path[i..end])?;
                i = end;
            }
        }
    }
    Some(cur)
}

fn unpack(line: &mut String, lbls: &mut LabelSet) {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) {
        Ok(map) => {
            let mut entry = None;
            for (k, v) in map {
                if let serde_json::Value::String(s) = v {
                    if k == "_entry" {
                        entry = Some(s);
                    } else {
                        lbls.set_parsed(sanitize_key(&k, true), s);
                    }
                }
            }
            if let Some(e) = entry {
                *line = e;
            }
        }
        Err(e) => lbls.set_err("JSONParserErr", e.to_string()),
    }
}

/// logfmt like go-logfmt as Loki uses it.
fn logfmt_parse(
    line: &str,
    strict: bool,
    keep_empty: bool,
    params: &[ExtractParam],
    lbls: &mut LabelSet,
) {
    let b = line.as_bytes();
    let mut i = 0;
    let mut found: Vec<(String, String)> = Vec::new();
    let mut err: Option<String> = None;
    while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        // key
        let ks = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if key.is_empty() {
            err = Some(format!(
                "logfmt syntax error at pos {}: unexpected '{}'",
                i + 1,
                b[i] as char
            ));
            if strict {
                break;
            }
            // skip the bad token
            while i < b.len() && b[i] > b' ' {
                i += 1;
            }
            continue;
        }
        if i >= b.len() || b[i] != b'=' {
            if i < b.len() && b[i] == b'"' {
                err = Some(format!(
                    "logfmt syntax error at pos {}: unexpected '\"'",
                    i + 1
                ));
                if strict {
                    break;
                }
                while i < b.len() && b[i] > b' ' {
                    i += 1;
                }
                continue;
            }
            // standalone key
            if keep_empty {
                found.push((key.to_string(), String::new()));
            }
            continue;
        }
        i += 1; // '='
        let value;
        if i < b.len() && b[i] == b'"' {
            let mut v = String::new();
            let mut j = i + 1;
            let mut closed = false;
            let mut chars = line[j..].char_indices();
            while let Some((k, c)) = chars.next() {
                match c {
                    '"' => {
                        j += k + 1;
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next().map(|x| x.1) {
                        Some('n') => v.push('\n'),
                        Some('t') => v.push('\t'),
                        Some('r') => v.push('\r'),
                        Some('"') => v.push('"'),
                        Some('\\') => v.push('\\'),
                        Some('/') => v.push('/'),
                        Some(o) => {
                            v.push('\\');
                            v.push(o);
                        }
                        None => {}
                    },
                    c => v.push(c),
                }
            }
            if !closed {
                err = Some(format!(
                    "logfmt syntax error at pos {}: unterminated quoted value",
                    b.len() + 1
                ));
                if strict {
                    break;
                }
                i = b.len();
                continue;
            }
            i = j;
            if i < b.len() && b[i] > b' ' {
                err = Some(format!(
                    "logfmt syntax error at pos {}: unexpected '{}'",
                    i + 1,
                    b[i] as char
                ));
                if strict {
                    break;
                }
                while i < b.len() && b[i] > b' ' {
                    i += 1;
                }
                continue;
            }
            value = v;
        } else {
            let vs = i;
            while i < b.len() && b[i] > b' ' {
                if b[i] == b'"' || b[i] == b'=' {
                    err = Some(format!(
                        "logfmt syntax error at pos {}: unexpected '{}'",
                        i + 1,
                        b[i] as char
                    ));
                }
                i += 1;
            }
            if err.is_some() && strict {
                break;
            }
            value = line[vs..i].to_string();
        }
        if value.is_empty() && !keep_empty {
            continue;
        }
        found.push((key.to_string(), value));
    }
    if params.is_empty() {
        for (k, v) in found {
            lbls.set_parsed(sanitize_key(&k, true), v);
        }
    } else {
        for p in params {
            if let Some((_, v)) = found.iter().rev().find(|(k, _)| *k == p.path) {
                lbls.set_parsed(p.label.clone(), v.clone());
            }
        }
    }
    if strict && let Some(e) = err {
        lbls.set_err("LogfmtParserErr", e);
    }
}

/// Whether any matcher in a label selector uses equality (for absent_over_time labels).
pub(crate) fn equality_labels(ms: &[crate::matcher::Matcher]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for m in ms {
        if m.op == MatchOp::Eq && !out.iter().any(|(n, _)| *n == m.name) {
            out.push((m.name.clone(), m.value.clone()));
        }
    }
    out.sort();
    out
}
