//! A subset of Go's text/template as used by Loki's `line_format` and
//! `label_format`: text, `{{ pipeline }}` actions with `{{-`/`-}}` trimming,
//! field access `.label`, function calls and `|` pipelines, parentheses,
//! `if`/`else if`/`else`/`end`, and Loki's common functions. Missing labels
//! render as the empty string (Loki uses `missingkey=zero`).

use regex::Regex;

mod call;
mod funcs;
mod parse;

use call::call;

#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    nodes: Vec<Node>,
    /// True if the template is constant text (fast path).
    plain: Option<String>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline(Vec<Command>);

#[derive(Debug, Clone)]
struct Command(Vec<Arg>);

#[derive(Debug, Clone)]
enum Arg {
    Field(String),
    Dot,
    Func(String),
    Str(String),
    Num(f64),
    Int(i64),
    Bool(bool),
    Regex(Regex),
    Sub(Pipeline),
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Time(i64),
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Str(s) => !s.is_empty(),
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Bool(b) => *b,
            Val::Time(_) => true,
        }
    }
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Val::Str(s) => out.push_str(s),
            Val::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Float(f) => out.push_str(&go_float(*f)),
            Val::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Val::Time(ns) => out.push_str(&go_time(*ns)),
        }
    }
    fn to_s(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }
    fn to_i(&self) -> i64 {
        match self {
            Val::Str(s) => s
                .trim()
                .parse::<i64>()
                .ok()
                .or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64))
                .unwrap_or(0),
            Val::Int(i) => *i,
            Val::Float(f) => *f as i64,
            Val::Bool(b) => *b as i64,
            Val::Time(ns) => *ns,
        }
    }
    fn to_f(&self) -> f64 {
        match self {
            Val::Str(s) => s.trim().parse::<f64>().unwrap_or(0.0),
            Val::Int(i) => *i as f64,
            Val::Float(f) => *f,
            Val::Bool(b) => *b as i64 as f64,
            Val::Time(ns) => *ns as f64,
        }
    }
}

fn go_float(f: f64) -> String {
    // Go's %v for float64 is %g with the shortest representation.
    let a = f.abs();
    if f.is_finite() && a != 0.0 && !(1e-4..1e21).contains(&a) {
        let s = format!("{f:e}");
        if let Some((m, e)) = s.split_once('e') {
            let (sign, d) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{d:0>2}");
        }
        return s;
    }
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    format!("{f}")
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub(crate) fn go_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// What a template can see while rendering.
pub(crate) trait Scope {
    fn label(&self, name: &str) -> Option<&str>;
    fn line(&self) -> &str;
    fn ts_ns(&self) -> i64;
}

const FUNCS: &[&str] = &[
    "unixEpochMillis",
    "unixEpochNanos",
    "unixToTime",
    "now",
    "date",
    "b64enc",
    "b64dec",
    "urlencode",
    "urldecode",
    "__line__",
    "__timestamp__",
    "lower",
    "upper",
    "ToLower",
    "ToUpper",
    "title",
    "trim",
    "TrimSpace",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "TrimPrefix",
    "TrimSuffix",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "replace",
    "Replace",
    "trunc",
    "substr",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "repeat",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "default",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "len",
    "printf",
    "print",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "addf",
    "subf",
    "mulf",
    "divf",
    "max",
    "min",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "int",
    "float64",
    "unixEpoch",
    "count",
    "alignLeft",
    "alignRight",
    "toJson",
    "indent",
    "nindent",
];

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        let nodes = parse::parse_nodes(src)?;
        let plain = match nodes.as_slice() {
            [] => Some(String::new()),
            [Node::Text(t)] => Some(t.clone()),
            _ => None,
        };
        Ok(Template {
            src: src.to_string(),
            nodes,
            plain,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.src
    }

    pub(crate) fn render(&self, scope: &dyn Scope, out: &mut String) -> Result<(), String> {
        if let Some(p) = &self.plain {
            out.push_str(p);
            return Ok(());
        }
        render_nodes(&self.nodes, scope, out)
    }
}

fn render_nodes(nodes: &[Node], scope: &dyn Scope, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => eval_pipeline(p, scope)?.render(out),
            Node::If {
                branches,
                otherwise,
            } => {
                let mut done = false;
                for (cond, body) in branches {
                    if eval_pipeline(cond, scope)?.truthy() {
                        render_nodes(body, scope, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    render_nodes(otherwise, scope, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, scope: &dyn Scope) -> Result<Val, String> {
    let mut prev: Option<Val> = None;
    for c in &p.0 {
        prev = Some(eval_command(c, prev.take(), scope)?);
    }
    prev.ok_or_else(|| "empty pipeline".to_string())
}

fn eval_arg(a: &Arg, scope: &dyn Scope) -> Result<Val, String> {
    Ok(match a {
        Arg::Field(f) => Val::Str(scope.label(f).unwrap_or("").to_string()),
        Arg::Dot => Val::Str(String::new()),
        Arg::Str(s) => Val::Str(s.clone()),
        Arg::Num(n) => Val::Float(*n),
        Arg::Int(i) => Val::Int(*i),
        Arg::Bool(b) => Val::Bool(*b),
        Arg::Regex(r) => Val::Str(r.as_str().to_string()),
        Arg::Sub(p) => eval_pipeline(p, scope)?,
        Arg::Func(f) => call(f, &[], None, scope)?,
    })
}

fn eval_command(c: &Command, piped: Option<Val>, scope: &dyn Scope) -> Result<Val, String> {
    let Some(first) = c.0.first() else {
        return Err("empty command".into());
    };
    match first {
        Arg::Func(name) => {
            let mut args = Vec::with_capacity(c.0.len());
            let mut regex = None;
            for a in &c.0[1..] {
                if let Arg::Regex(r) = a {
                    regex = Some(r);
                }
                args.push(eval_arg(a, scope)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            call(name, &args, regex, scope)
        }
        other => {
            if c.0.len() > 1 {
                return Err("can't give argument to non-function".into());
            }
            if piped.is_some() {
                return Err("can't give argument to non-function".into());
            }
            eval_arg(other, scope)
        }
    }
}

#[cfg(test)]
mod tests;
