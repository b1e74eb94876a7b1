//! The template functions (Loki's function map) and a small `Sprintf`.

use regex::Regex;

use super::{Scope, Val, funcs, go_float};

fn want(args: &[Val], n: usize, name: &str) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

pub(super) fn call(
    name: &str,
    a: &[Val],
    re: Option<&Regex>,
    scope: &dyn Scope,
) -> Result<Val, String> {
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
            // Counts characters, like Loki's rune-based trunc.
            let n = a[0].to_i();
            let v = s(1);
            let len = v.chars().count() as i64;
            Val::Str(if n < 0 && len + n > 0 {
                v.chars().skip((len + n) as usize).collect()
            } else if n >= 0 && len > n {
                v.chars().take(n as usize).collect()
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
        "unixEpoch" | "unixEpochMillis" | "unixEpochNanos" => {
            want(a, 1, name)?;
            let ns = match a[0] {
                Val::Time(ns) => ns,
                _ => return Err(format!("{name}: expects a time")),
            };
            Val::Str(
                match name {
                    "unixEpoch" => ns.div_euclid(1_000_000_000),
                    "unixEpochMillis" => ns.div_euclid(1_000_000),
                    _ => ns,
                }
                .to_string(),
            )
        }
        "unixToTime" => {
            want(a, 1, name)?;
            Val::Time(funcs::unix_to_time(&s(0))?)
        }
        "now" => {
            let ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            Val::Time(ns)
        }
        "date" => {
            want(a, 2, name)?;
            // sprig's date takes a time or Unix seconds.
            let ns = match &a[1] {
                Val::Time(ns) => *ns,
                other => other.to_i().saturating_mul(1_000_000_000),
            };
            Val::Str(funcs::go_format(&s(0), ns))
        }
        "b64enc" => {
            want(a, 1, name)?;
            Val::Str(funcs::b64enc(&s(0)))
        }
        "b64dec" => {
            want(a, 1, name)?;
            Val::Str(funcs::b64dec(&s(0)))
        }
        "urlencode" => {
            want(a, 1, name)?;
            Val::Str(funcs::urlencode(&s(0)))
        }
        "urldecode" => {
            want(a, 1, name)?;
            Val::Str(funcs::urldecode(&s(0)))
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

pub(super) fn compile(re: &str) -> Result<Regex, regex::Error> {
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
