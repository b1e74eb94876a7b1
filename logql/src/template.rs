//! A subset of Go's text/template as used by Loki's `line_format` and
//! `label_format`: text, `{{ pipeline }}` actions with `{{-`/`-}}` trimming,
//! field access `.label`, function calls and `|` pipelines, parentheses,
//! `if`/`else if`/`else`/`end`, and Loki's common functions. Missing labels
//! render as the empty string (Loki uses `missingkey=zero`).

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Template {
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
        let mut p = TParser { src, pos: 0 };
        let (nodes, end) = p.nodes()?;
        if let Some(e) = end {
            return Err(format!("unexpected {}", e.name()));
        }
        let plain = match nodes.as_slice() {
            [] => Some(String::new()),
            [Node::Text(t)] => Some(t.clone()),
            _ => None,
        };
        Ok(Template { nodes, plain })
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

fn want(args: &[Val], n: usize, name: &str) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn call(name: &str, a: &[Val], re: Option<&Regex>, scope: &dyn Scope) -> Result<Val, String> {
    let s = |i: usize| a[i].to_s();
    Ok(match name {
        "__line__" => Val::Str(scope.line().to_string()),
        "__timestamp__" => Val::Time(scope.ts_ns()),
        "lower" | "ToLower" => {
            want(a, 1, name)?;
            Val::Str(s(0).to_lowercase())
        }
        "upper" | "ToUpper" => {
            want(a, 1, name)?;
            Val::Str(s(0).to_uppercase())
        }
        "title" => {
            want(a, 1, name)?;
            let mut out = String::new();
            let mut prev_letter = false;
            for ch in s(0).chars() {
                if !prev_letter {
                    out.extend(ch.to_uppercase());
                } else {
                    out.push(ch);
                }
                prev_letter = ch.is_alphanumeric() || ch == '_' || ch == '\'';
            }
            Val::Str(out)
        }
        "trim" | "TrimSpace" => {
            want(a, 1, name)?;
            Val::Str(s(0).trim().to_string())
        }
        "trimAll" => {
            want(a, 2, name)?;
            let cut: Vec<char> = s(0).chars().collect();
            Val::Str(s(1).trim_matches(|c| cut.contains(&c)).to_string())
        }
        "Trim" | "TrimLeft" | "TrimRight" => {
            want(a, 2, name)?;
            let cut: Vec<char> = s(1).chars().collect();
            let v = s(0);
            Val::Str(match name {
                "Trim" => v.trim_matches(|c| cut.contains(&c)).to_string(),
                "TrimLeft" => v.trim_start_matches(|c| cut.contains(&c)).to_string(),
                _ => v.trim_end_matches(|c| cut.contains(&c)).to_string(),
            })
        }
        "trimPrefix" | "trimSuffix" | "TrimPrefix" | "TrimSuffix" => {
            want(a, 2, name)?;
            let (affix, v) = if name.starts_with('t') {
                (s(0), s(1))
            } else {
                (s(1), s(0))
            };
            Val::Str(if name.ends_with("Prefix") {
                v.strip_prefix(affix.as_str()).unwrap_or(&v).to_string()
            } else {
                v.strip_suffix(affix.as_str()).unwrap_or(&v).to_string()
            })
        }
        "replace" => {
            want(a, 3, name)?;
            Val::Str(s(2).replace(&s(0), &s(1)))
        }
        "Replace" => {
            want(a, 4, name)?;
            let n = a[3].to_i();
            let v = s(0);
            Val::Str(if n < 0 {
                v.replace(&s(1), &s(2))
            } else {
                v.replacen(&s(1), &s(2), n as usize)
            })
        }
        "trunc" => {
            want(a, 2, name)?;
            let n = a[0].to_i();
            let v = s(1);
            let len = v.len() as i64;
            Val::Str(if n < 0 && -n < len {
                safe_slice(&v, (len + n) as usize, v.len())
            } else if n >= 0 && n < len {
                safe_slice(&v, 0, n as usize)
            } else {
                v
            })
        }
        "substr" => {
            want(a, 3, name)?;
            let (start, end) = (a[0].to_i(), a[1].to_i());
            let v = s(2);
            let len = v.len() as i64;
            Val::Str(if start < 0 {
                safe_slice(&v, 0, end.clamp(0, len) as usize)
            } else if end < 0 || end > len {
                safe_slice(&v, start.min(len) as usize, v.len())
            } else {
                safe_slice(&v, start.min(end) as usize, end as usize)
            })
        }
        "contains" => {
            want(a, 2, name)?;
            Val::Bool(s(1).contains(&s(0)))
        }
        "hasPrefix" => {
            want(a, 2, name)?;
            Val::Bool(s(1).starts_with(&s(0)))
        }
        "hasSuffix" => {
            want(a, 2, name)?;
            Val::Bool(s(1).ends_with(&s(0)))
        }
        "repeat" => {
            want(a, 2, name)?;
            let v = s(1);
            let max = MAX_OUTPUT / v.len().max(1);
            Val::Str(v.repeat((a[0].to_i().max(0) as usize).min(max)))
        }
        "indent" | "nindent" => {
            want(a, 2, name)?;
            let pad = " ".repeat(a[0].to_i().clamp(0, 1000) as usize);
            if pad.len() * (s(1).matches('\n').count() + 1) > MAX_OUTPUT {
                return Err(format!("{name}: result too large"));
            }
            let body = format!("{pad}{}", s(1).replace('\n', &format!("\n{pad}")));
            Val::Str(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            want(a, 3, name)?;
            let owned;
            let r = match re {
                Some(r) => r,
                None => {
                    owned = compile(&s(0)).map_err(|e| format!("{name}: {e}"))?;
                    &owned
                }
            };
            let v = s(1);
            let rep = s(2);
            Val::Str(if name == "regexReplaceAll" {
                r.replace_all(&v, rep.as_str()).into_owned()
            } else {
                r.replace_all(&v, regex::NoExpand(&rep)).into_owned()
            })
        }
        "count" => {
            want(a, 2, name)?;
            let owned;
            let r = match re {
                Some(r) => r,
                None => {
                    owned = compile(&s(0)).map_err(|e| format!("{name}: {e}"))?;
                    &owned
                }
            };
            Val::Int(r.find_iter(&s(1)).count() as i64)
        }
        "default" => {
            if a.len() == 1 {
                return Ok(a[0].clone());
            }
            want(a, 2, name)?;
            if a[1].truthy() {
                a[1].clone()
            } else {
                a[0].clone()
            }
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            if name == "eq" && a.len() >= 2 {
                return Ok(Val::Bool(
                    a[1..]
                        .iter()
                        .any(|x| vals_cmp(&a[0], x) == Some(std::cmp::Ordering::Equal)),
                ));
            }
            want(a, 2, name)?;
            let o = vals_cmp(&a[0], &a[1])
                .ok_or_else(|| format!("{name}: incompatible types for comparison"))?;
            use std::cmp::Ordering::*;
            Val::Bool(match name {
                "eq" => o == Equal,
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "and" => {
            let mut last = Val::Bool(true);
            for v in a {
                if !v.truthy() {
                    return Ok(v.clone());
                }
                last = v.clone();
            }
            last
        }
        "or" => {
            let mut last = Val::Bool(false);
            for v in a {
                if v.truthy() {
                    return Ok(v.clone());
                }
                last = v.clone();
            }
            last
        }
        "not" => {
            want(a, 1, name)?;
            Val::Bool(!a[0].truthy())
        }
        "len" => {
            want(a, 1, name)?;
            Val::Int(s(0).len() as i64)
        }
        "printf" => {
            if a.is_empty() {
                return Err("printf: missing format".into());
            }
            Val::Str(sprintf(&s(0), &a[1..]))
        }
        "print" => {
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                if i > 0 && !matches!(v, Val::Str(_)) && !matches!(a[i - 1], Val::Str(_)) {
                    out.push(' ');
                }
                v.render(&mut out);
            }
            Val::Str(out)
        }
        "add" | "sub" | "mul" | "div" | "mod" | "max" | "min" => {
            if a.is_empty() {
                return Err(format!("{name}: missing arguments"));
            }
            let mut acc = a[0].to_i();
            for v in &a[1..] {
                let x = v.to_i();
                acc = match name {
                    "add" => acc.wrapping_add(x),
                    "sub" => acc.wrapping_sub(x),
                    "mul" => acc.wrapping_mul(x),
                    "div" => {
                        if x == 0 {
                            return Err("div: integer divide by zero".into());
                        }
                        acc.wrapping_div(x)
                    }
                    "mod" => {
                        if x == 0 {
                            return Err("mod: integer divide by zero".into());
                        }
                        acc.wrapping_rem(x)
                    }
                    "max" => acc.max(x),
                    _ => acc.min(x),
                };
            }
            Val::Int(acc)
        }
        "addf" | "subf" | "mulf" | "divf" | "maxf" | "minf" => {
            if a.is_empty() {
                return Err(format!("{name}: missing arguments"));
            }
            let mut acc = a[0].to_f();
            for v in &a[1..] {
                let x = v.to_f();
                acc = match name {
                    "addf" => acc + x,
                    "subf" => acc - x,
                    "mulf" => acc * x,
                    "divf" => acc / x,
                    "maxf" => acc.max(x),
                    _ => acc.min(x),
                };
            }
            Val::Float(acc)
        }
        "ceil" | "floor" => {
            want(a, 1, name)?;
            let f = a[0].to_f();
            Val::Float(if name == "ceil" { f.ceil() } else { f.floor() })
        }
        "round" => {
            if a.is_empty() || a.len() > 3 {
                return Err("round: wrong number of args".into());
            }
            let f = a[0].to_f();
            let p = if a.len() > 1 { a[1].to_i() } else { 0 };
            let m = 10f64.powi(p.clamp(0, 15) as i32);
            Val::Float((f * m).round() / m)
        }
        "int" => {
            want(a, 1, name)?;
            Val::Int(a[0].to_i())
        }
        "float64" => {
            want(a, 1, name)?;
            Val::Float(a[0].to_f())
        }
        "unixEpoch" => {
            want(a, 1, name)?;
            match a[0] {
                Val::Time(ns) => Val::Str(ns.div_euclid(1_000_000_000).to_string()),
                _ => return Err("unixEpoch: expects a time".into()),
            }
        }
        "alignLeft" | "alignRight" => {
            want(a, 2, name)?;
            let n = a[0].to_i().clamp(0, 10_000) as usize;
            let v = s(1);
            let count = v.chars().count();
            Val::Str(if count >= n {
                if name == "alignLeft" {
                    v.chars().take(n).collect()
                } else {
                    v.chars().skip(count - n).collect()
                }
            } else if name == "alignLeft" {
                format!("{v}{}", " ".repeat(n - count))
            } else {
                format!("{}{v}", " ".repeat(n - count))
            })
        }
        "toJson" => {
            want(a, 1, name)?;
            Val::Str(match &a[0] {
                Val::Str(x) => serde_json::Value::String(x.clone()).to_string(),
                other => other.to_s(),
            })
        }
        _ => return Err(format!("function {name:?} not defined")),
    })
}

/// Largest string a template function may build (`repeat`).
const MAX_OUTPUT: usize = 1 << 20;

fn compile(re: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(re).size_limit(1 << 22).build()
}

fn safe_slice(s: &str, mut a: usize, mut b: usize) -> String {
    b = b.min(s.len());
    a = a.min(b);
    while a > 0 && !s.is_char_boundary(a) {
        a -= 1;
    }
    while b < s.len() && !s.is_char_boundary(b) {
        b += 1;
    }
    s[a..b].to_string()
}

fn vals_cmp(x: &Val, y: &Val) -> Option<std::cmp::Ordering> {
    match (x, y) {
        (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
        (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
        (Val::Time(a), Val::Time(b)) => Some(a.cmp(b)),
        (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
        (Val::Str(_), _) | (_, Val::Str(_)) => None,
        (a, b) => a.to_f().partial_cmp(&b.to_f()),
    }
}

/// A small `fmt.Sprintf`: verbs `%s %v %d %f %g %e %q %x %t %%` with flags,
/// width and precision.
fn sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut ai = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = it.peek() {
            if "-+ 0#".contains(f) {
                flags.push(f);
                it.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = it.peek() {
            if d.is_ascii_digit() {
                width.push(d);
                it.next();
            } else {
                break;
            }
        }
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&d) = it.peek() {
                if d.is_ascii_digit() {
                    p.push(d);
                    it.next();
                } else {
                    break;
                }
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(ai) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        ai += 1;
        let body = match verb {
            's' | 'v' => {
                let s = arg.to_s();
                match prec {
                    Some(p) if verb == 's' => s.chars().take(p).collect(),
                    _ => s,
                }
            }
            'd' => match arg {
                Val::Str(s) => format!("%!d(string={s})"),
                other => {
                    let v = other.to_i();
                    if flags.contains('+') && v >= 0 {
                        format!("+{v}")
                    } else {
                        v.to_string()
                    }
                }
            },
            'f' | 'F' => {
                let v = arg.to_f();
                let p = prec.unwrap_or(6).min(100);
                if flags.contains('+') && v >= 0.0 {
                    format!("+{v:.p$}")
                } else {
                    format!("{v:.p$}")
                }
            }
            'g' => go_float(arg.to_f()),
            'e' => {
                let p = prec.unwrap_or(6).min(100);
                let s = format!("{:.p$e}", arg.to_f());
                match s.split_once('e') {
                    Some((m, e)) => {
                        let (sign, d) = match e.strip_prefix('-') {
                            Some(d) => ('-', d),
                            None => ('+', e),
                        };
                        format!("{m}e{sign}{d:0>2}")
                    }
                    None => s,
                }
            }
            'q' => serde_json::Value::String(arg.to_s()).to_string(),
            'x' => match arg {
                Val::Str(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                other => format!("{:x}", other.to_i()),
            },
            't' => arg.truthy().to_string(),
            other => format!("%!{other}(unsupported)"),
        };
        let w: usize = width.parse::<usize>().unwrap_or(0).min(10_000);
        let n = body.chars().count();
        if n < w {
            let pad = w - n;
            if flags.contains('-') {
                out.push_str(&body);
                out.push_str(&" ".repeat(pad));
            } else if flags.contains('0') && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g') {
                let (sign, digits) = match body.strip_prefix('-') {
                    Some(d) => ("-", d),
                    None => ("", body.as_str()),
                };
                out.push_str(sign);
                out.push_str(&"0".repeat(pad));
                out.push_str(digits);
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if ai < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[ai..].iter().map(|v| v.to_s()).collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

// ---- template parsing ----

struct TParser<'a> {
    src: &'a str,
    pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum ATok {
    Field(String),
    Dot,
    Ident(String),
    Str(String),
    Num(f64),
    Int(i64),
    Pipe,
    LParen,
    RParen,
}

impl<'a> TParser<'a> {
    /// Parses nodes until EOF or a closing keyword (`else ...`, `end`),
    /// returned as the second element.
    fn nodes(&mut self) -> Result<(Vec<Node>, Option<End>), String> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let Some(open) = rest.find("{{") else {
                if !rest.is_empty() {
                    nodes.push(Node::Text(rest.to_string()));
                }
                self.pos = self.src.len();
                return Ok((nodes, None));
            };
            let mut text = &rest[..open];
            let mut inner_start = self.pos + open + 2;
            if self.src[inner_start..].starts_with("- ")
                || self.src[inner_start..].starts_with("-\t")
                || self.src[inner_start..].starts_with("-\n")
            {
                text = text.trim_end();
                inner_start += 1;
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_string()));
            }
            let (toks, after, trim_right) = self.action(inner_start)?;
            self.pos = after;
            if trim_right {
                let r = &self.src[self.pos..];
                self.pos += r.len() - r.trim_start().len();
            }
            // Keywords.
            match toks.first() {
                Some(ATok::Ident(k)) if k == "end" => {
                    if toks.len() != 1 {
                        return Err("unexpected tokens after end".into());
                    }
                    return Ok((nodes, Some(End::Close)));
                }
                Some(ATok::Ident(k)) if k == "else" => {
                    if toks.len() == 1 {
                        return Ok((nodes, Some(End::Else)));
                    }
                    if toks.get(1) == Some(&ATok::Ident("if".into())) {
                        let p = parse_pipeline(&toks[2..])?;
                        return Ok((nodes, Some(End::ElseIf(p))));
                    }
                    return Err("unexpected tokens after else".into());
                }
                Some(ATok::Ident(k)) if k == "if" => {
                    let cond = parse_pipeline(&toks[1..])?;
                    let mut branches = Vec::new();
                    let mut otherwise = Vec::new();
                    let mut cur_cond = cond;
                    loop {
                        let (body, end) = self.nodes()?;
                        match end {
                            Some(End::Close) => {
                                branches.push((cur_cond, body));
                                break;
                            }
                            Some(End::Else) => {
                                branches.push((cur_cond, body));
                                let (body2, end2) = self.nodes()?;
                                if !matches!(end2, Some(End::Close)) {
                                    return Err("missing {{end}} after {{else}}".into());
                                }
                                otherwise = body2;
                                break;
                            }
                            Some(End::ElseIf(p)) => {
                                branches.push((cur_cond, body));
                                cur_cond = p;
                            }
                            _ => return Err("unexpected EOF: missing {{end}}".into()),
                        }
                    }
                    nodes.push(Node::If {
                        branches,
                        otherwise,
                    });
                }
                Some(ATok::Ident(k))
                    if matches!(
                        k.as_str(),
                        "range" | "with" | "define" | "template" | "block"
                    ) =>
                {
                    return Err(format!("{k} is not supported"));
                }
                _ => nodes.push(Node::Action(parse_pipeline(&toks)?)),
            }
        }
    }

    /// Lexes an action starting at `start` (just after `{{`); returns tokens,
    /// the offset after `}}` and whether `-}}` asked to trim.
    fn action(&self, start: usize) -> Result<(Vec<ATok>, usize, bool), String> {
        let b = self.src.as_bytes();
        let mut i = start;
        let mut toks = Vec::new();
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= b.len() {
                return Err("unclosed action".into());
            }
            if self.src[i..].starts_with("}}") {
                return Ok((toks, i + 2, false));
            }
            if self.src[i..].starts_with("-}}") {
                return Ok((toks, i + 3, true));
            }
            let c = b[i];
            match c {
                b'|' => {
                    toks.push(ATok::Pipe);
                    i += 1;
                }
                b'(' => {
                    toks.push(ATok::LParen);
                    i += 1;
                }
                b')' => {
                    toks.push(ATok::RParen);
                    i += 1;
                }
                b'"' | b'`' => {
                    let (s, n) = go_unquote(&self.src[i..])?;
                    toks.push(ATok::Str(s));
                    i += n;
                }
                b'.' => {
                    let mut j = i + 1;
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                        j += 1;
                    }
                    if j == i + 1 {
                        toks.push(ATok::Dot);
                    } else {
                        toks.push(ATok::Field(self.src[i + 1..j].to_string()));
                    }
                    i = j;
                }
                b'-' | b'+' | b'0'..=b'9' => {
                    let mut j = i + 1;
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'.') {
                        j += 1;
                    }
                    let t = &self.src[i..j];
                    if let Ok(v) = t.parse::<i64>() {
                        toks.push(ATok::Int(v));
                    } else if let Ok(v) = t.parse::<f64>() {
                        toks.push(ATok::Num(v));
                    } else {
                        return Err(format!("bad number syntax: {t:?}"));
                    }
                    i = j;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let mut j = i;
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                        j += 1;
                    }
                    toks.push(ATok::Ident(self.src[i..j].to_string()));
                    i = j;
                }
                _ => {
                    let ch = self.src[i..].chars().next().unwrap_or('?');
                    return Err(format!("unexpected {ch:?} in command"));
                }
            }
        }
    }
}

enum End {
    Close,
    Else,
    ElseIf(Pipeline),
}

impl End {
    fn name(&self) -> &'static str {
        match self {
            End::Close => "{{end}}",
            End::Else | End::ElseIf(_) => "{{else}}",
        }
    }
}

fn parse_pipeline(toks: &[ATok]) -> Result<Pipeline, String> {
    if toks.is_empty() {
        return Err("missing value for command".into());
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    loop {
        let (cmd, next) = parse_command(toks, i)?;
        cmds.push(cmd);
        i = next;
        if i >= toks.len() {
            break;
        }
        if toks[i] == ATok::Pipe {
            i += 1;
            continue;
        }
        return Err("unexpected token in pipeline".into());
    }
    Ok(Pipeline(cmds))
}

fn parse_command(toks: &[ATok], mut i: usize) -> Result<(Command, usize), String> {
    let mut args = Vec::new();
    while i < toks.len() {
        let a = match &toks[i] {
            ATok::Pipe => break,
            ATok::RParen => return Err("unexpected right paren".into()),
            ATok::LParen => {
                // find matching paren
                let mut depth = 0;
                let mut j = i;
                loop {
                    if j >= toks.len() {
                        return Err("unclosed left paren".into());
                    }
                    match toks[j] {
                        ATok::LParen => depth += 1,
                        ATok::RParen => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let p = parse_pipeline(&toks[i + 1..j])?;
                i = j;
                Arg::Sub(p)
            }
            ATok::Field(f) => Arg::Field(f.clone()),
            ATok::Dot => Arg::Dot,
            ATok::Str(s) => Arg::Str(s.clone()),
            ATok::Num(n) => Arg::Num(*n),
            ATok::Int(n) => Arg::Int(*n),
            ATok::Ident(id) => match id.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Str(String::new()),
                _ => {
                    if !FUNCS.contains(&id.as_str()) {
                        return Err(format!("function {id:?} not defined"));
                    }
                    Arg::Func(id.clone())
                }
            },
        };
        args.push(a);
        i += 1;
    }
    if args.is_empty() {
        return Err("missing value for command".into());
    }
    // Precompile literal regexes of regexReplaceAll*/count.
    if let Some(Arg::Func(f)) = args.first()
        && matches!(
            f.as_str(),
            "regexReplaceAll" | "regexReplaceAllLiteral" | "count"
        )
        && let Some(Arg::Str(r)) = args.get(1)
    {
        let re = compile(r).map_err(|e| format!("{f}: {e}"))?;
        args[1] = Arg::Regex(re);
    }
    Ok((Command(args), i))
}

/// Go string literal at the start of `s`; returns value and bytes consumed.
fn go_unquote(s: &str) -> Result<(String, usize), String> {
    let quote = s.as_bytes()[0];
    let mut out = String::new();
    let mut it = s[1..].char_indices();
    if quote == b'`' {
        for (k, c) in it {
            if c == '`' {
                return Ok((out, k + 2));
            }
            out.push(c);
        }
        return Err("unterminated raw quoted string".into());
    }
    while let Some((k, c)) = it.next() {
        match c {
            '"' => return Ok((out, k + 2)),
            '\\' => match it.next().map(|x| x.1) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('\'') => out.push('\''),
                Some(o) => return Err(format!("invalid syntax: unknown escape \\{o}")),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}
