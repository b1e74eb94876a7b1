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

    pub fn base_has(&self, name: &str) -> bool {
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

const JSON_NOT_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";

fn json_parse(line: &str, lbls: &mut LabelSet) {
    if !line.trim_start().starts_with('{') {
        lbls.set_err("JSONParserErr", JSON_NOT_OBJECT.into());
        return;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) {
        Ok(map) => {
            for (k, v) in map {
                flatten(&sanitize_key(&k, true), v, lbls);
            }
        }
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
        Value::Null => {}
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

/// `unpack`: a JSON object written by Promtail's `pack` stage; its string
/// fields become labels and `_entry` the line (only when `_entry` exists).
fn unpack(line: &mut String, lbls: &mut LabelSet) {
    if !line.starts_with('{') {
        lbls.set_err(
            "JSONParserErr",
            "expecting json object(6), but it is not".into(),
        );
        return;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) {
        Ok(map) => {
            let Some(serde_json::Value::String(entry)) = map.get("_entry").cloned() else {
                return;
            };
            for (k, v) in map {
                if let serde_json::Value::String(s) = v
                    && k != "_entry"
                {
                    lbls.set_parsed(sanitize_key(&k, true), s);
                }
            }
            *line = entry;
        }
        Err(e) => lbls.set_err("JSONParserErr", e.to_string()),
    }
}

/// Loki's logfmt decoder (adapted from go-logfmt): one key/value per call.
struct LogfmtDecoder<'a> {
    line: &'a str,
    pos: usize,
    err: Option<String>,
}

enum Scan<'a> {
    /// End of line.
    Eol,
    /// A malformed token was skipped.
    Bad,
    /// A key, with its value if it had one.
    Kv(&'a str, Option<std::borrow::Cow<'a, str>>),
}

impl<'a> LogfmtDecoder<'a> {
    fn unexpected(&mut self, c: u8) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : unexpected '{}'",
            self.pos + 1,
            c as char
        ));
    }

    fn skip_value(&mut self) -> Scan<'a> {
        let b = self.line.as_bytes();
        while self.pos < b.len() && b[self.pos] > b' ' {
            self.pos += 1;
        }
        Scan::Bad
    }

    fn scan(&mut self) -> Scan<'a> {
        let line = self.line;
        let b = line.as_bytes();
        while self.pos < b.len() && b[self.pos] <= b' ' {
            self.pos += 1;
        }
        if self.pos >= b.len() {
            return Scan::Eol;
        }
        let start = self.pos;
        let key;
        loop {
            if self.pos >= b.len() {
                return Scan::Kv(&line[start..], None);
            }
            let c = b[self.pos];
            if c == b'=' {
                if self.pos == start {
                    self.unexpected(c);
                    return self.skip_value();
                }
                key = &line[start..self.pos];
                break;
            } else if c == b'"' {
                self.unexpected(c);
                return self.skip_value();
            } else if c <= b' ' {
                return Scan::Kv(&line[start..self.pos], None);
            }
            self.pos += 1;
        }
        // equal sign
        self.pos += 1;
        if self.pos >= b.len() || b[self.pos] <= b' ' {
            return Scan::Kv(key, None);
        }
        if b[self.pos] == b'"' {
            let qstart = self.pos;
            let mut esc = false;
            let mut has_esc = false;
            let mut i = qstart + 1;
            while i < b.len() {
                let c = b[i];
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                    has_esc = true;
                } else if c == b'"' {
                    self.pos = i + 1;
                    let raw = &line[qstart + 1..i];
                    if !has_esc {
                        return Scan::Kv(
                            key,
                            (!raw.is_empty()).then_some(std::borrow::Cow::Borrowed(raw)),
                        );
                    }
                    return match serde_json::from_str::<String>(&line[qstart..=i]) {
                        Ok(v) => Scan::Kv(key, Some(std::borrow::Cow::Owned(v))),
                        Err(_) => {
                            self.err = Some(format!(
                                "logfmt syntax error at pos {} : invalid quoted value",
                                self.pos + 1
                            ));
                            Scan::Bad
                        }
                    };
                }
                i += 1;
            }
            self.pos = b.len();
            self.err = Some(format!(
                "logfmt syntax error at pos {} : unterminated quoted value",
                self.pos + 1
            ));
            return Scan::Bad;
        }
        let vstart = self.pos;
        while self.pos < b.len() {
            let c = b[self.pos];
            if c == b'=' || c == b'"' {
                self.unexpected(c);
                return self.skip_value();
            }
            if c <= b' ' {
                break;
            }
            self.pos += 1;
        }
        Scan::Kv(
            key,
            Some(std::borrow::Cow::Borrowed(&line[vstart..self.pos])),
        )
    }
}

/// The `logfmt` parser: without `--strict` malformed pairs are skipped;
/// with it parsing stops and `__error__=LogfmtParserErr` is set. Empty
/// values and standalone keys are dropped unless `--keep-empty`.
fn logfmt_parse(
    line: &str,
    strict: bool,
    keep_empty: bool,
    params: &[ExtractParam],
    lbls: &mut LabelSet,
) {
    let mut dec = LogfmtDecoder {
        line,
        pos: 0,
        err: None,
    };
    if !params.is_empty() {
        for p in params {
            if !lbls.base_has(&p.label) {
                lbls.set(p.label.clone(), String::new(), Cat::Parsed);
            }
        }
    }
    loop {
        match dec.scan() {
            Scan::Eol => break,
            Scan::Bad => {
                if strict {
                    break;
                }
            }
            Scan::Kv(key, val) => {
                let val = val.map(|v| v.into_owned()).unwrap_or_default();
                if params.is_empty() {
                    let k = sanitize_key(key, true);
                    if k.is_empty() || (!keep_empty && val.is_empty()) {
                        continue;
                    }
                    lbls.set_parsed(k, val);
                } else if let Some(p) = params.iter().find(|p| p.path == key) {
                    lbls.set_parsed(p.label.clone(), val);
                }
            }
        }
    }
    if strict && let Some(e) = dec.err {
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
