//! Printing a parsed query back as LogQL (normalised spacing and quoting,
//! parentheses around nested binary operations). `parse(&e.to_string())`
//! gives back the same query.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::*;

/// A LogQL string literal for `s` (Go-style escapes).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A duration the way Prometheus prints one (`1h30m`, `250ms`, `2d`).
pub(crate) fn duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ns;
    if rest < 0 {
        out.push('-');
        rest = -rest;
    }
    if rest % 1_000_000 != 0 {
        // Below milliseconds: plain nanoseconds.
        let _ = write!(out, "{rest}ns");
        return out;
    }
    let mut ms = rest / 1_000_000;
    for (unit, size) in [
        ("y", 365 * 86_400_000i64),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn labels(names: &[String]) -> String {
    names.join(", ")
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kw = if self.without { "without" } else { "by" };
        write!(f, "{kw} ({})", labels(&self.labels))
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_char('}')?;
        for s in &self.stages {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

fn cmp_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Neq => "!=",
        CmpOp::Gt => ">",
        CmpOp::Gte => ">=",
        CmpOp::Lt => "<",
        CmpOp::Lte => "<=",
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::And(a, b) => write!(f, "({a} and {b})"),
            LabelFilter::Or(a, b) => write!(f, "({a} or {b})"),
            LabelFilter::Matcher(m) => write!(f, "{m}"),
            LabelFilter::Ip {
                name,
                negate,
                pattern,
            } => {
                let op = if *negate { "!=" } else { "=" };
                write!(f, "{name}{op}ip({})", quote(pattern.as_str()))
            }
            LabelFilter::Number { name, op, value } => {
                write!(f, "{name}{}{}", cmp_op(*op), number(*value))
            }
            LabelFilter::Duration { name, op, value_ns } => {
                write!(f, "{name}{}{}", cmp_op(*op), duration(*value_ns))
            }
            LabelFilter::Bytes { name, op, value } => write!(f, "{name}{}{value}B", cmp_op(*op)),
        }
    }
}

fn extract_params(f: &mut Formatter<'_>, params: &[ExtractParam]) -> fmt::Result {
    for (i, p) in params.iter().enumerate() {
        f.write_str(if i == 0 { " " } else { ", " })?;
        write!(f, "{}={}", p.label, quote(&p.path))?;
    }
    Ok(())
}

fn label_sels(f: &mut Formatter<'_>, sels: &[LabelSel]) -> fmt::Result {
    for (i, s) in sels.iter().enumerate() {
        f.write_str(if i == 0 { " " } else { ", " })?;
        match s {
            LabelSel::Name(n) => f.write_str(n)?,
            LabelSel::Matcher(m) => write!(f, "{m}")?,
        }
    }
    Ok(())
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(l) => {
                let op = match l.filter.op {
                    LineFilterOp::Contains | LineFilterOp::ContainsCi | LineFilterOp::Ip => "|=",
                    LineFilterOp::NotContains | LineFilterOp::NotIp => "!=",
                    LineFilterOp::Regex => "|~",
                    LineFilterOp::NotRegex => "!~",
                    LineFilterOp::Pattern => "|>",
                    LineFilterOp::NotPattern => "!>",
                };
                if matches!(l.filter.op, LineFilterOp::Ip | LineFilterOp::NotIp) {
                    return write!(f, "{op} ip({})", quote(&l.filter.pattern));
                }
                write!(f, "{op} {}", quote(&l.filter.pattern))?;
                for alt in &l.or {
                    write!(f, " or {}", quote(alt))?;
                }
                Ok(())
            }
            Stage::Json(params) => {
                f.write_str("| json")?;
                extract_params(f, params)
            }
            Stage::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                f.write_str("| logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                extract_params(f, params)
            }
            Stage::Regexp(r) => write!(f, "| regexp {}", quote(r.regex.as_str())),
            Stage::Pattern(p) => write!(f, "| pattern {}", quote(p.as_str())),
            Stage::Unpack => f.write_str("| unpack"),
            Stage::LabelFilter(l) => write!(f, "| {l}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", quote(t.as_str())),
            Stage::LabelFormat(items) => {
                f.write_str("| label_format")?;
                for (i, it) in items.iter().enumerate() {
                    f.write_str(if i == 0 { " " } else { ", " })?;
                    match it {
                        LabelFmt::Rename { dst, src } => write!(f, "{dst}={src}")?,
                        LabelFmt::Template { dst, tmpl } => {
                            write!(f, "{dst}={}", quote(tmpl.as_str()))?
                        }
                    }
                }
                Ok(())
            }
            Stage::Drop(s) => {
                f.write_str("| drop")?;
                label_sels(f, s)
            }
            Stage::Keep(s) => {
                f.write_str("| keep")?;
                label_sels(f, s)
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

fn vector_op(op: VectorOp) -> &'static str {
    match op {
        VectorOp::Sum => "sum",
        VectorOp::Avg => "avg",
        VectorOp::Min => "min",
        VectorOp::Max => "max",
        VectorOp::Count => "count",
        VectorOp::Stddev => "stddev",
        VectorOp::Stdvar => "stdvar",
        VectorOp::Topk => "topk",
        VectorOp::Bottomk => "bottomk",
        VectorOp::Sort => "sort",
        VectorOp::SortDesc => "sort_desc",
    }
}

fn bin_op(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Pow => "^",
        BinOp::Eq => "==",
        BinOp::Neq => "!=",
        BinOp::Gt => ">",
        BinOp::Gte => ">=",
        BinOp::Lt => "<",
        BinOp::Lte => "<=",
        BinOp::And => "and",
        BinOp::Or => "or",
        BinOp::Unless => "unless",
    }
}

/// Operands that are binary operations get parentheses.
fn operand(f: &mut Formatter<'_>, e: &Expr) -> fmt::Result {
    match e {
        Expr::Binary(_) => write!(f, "({e})"),
        _ => write!(f, "{e}"),
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => write!(f, "{l}"),
            Expr::Literal(v) => f.write_str(&number(*v)),
            Expr::Vector(v) => write!(f, "vector({})", number(*v)),
            Expr::RangeAgg(r) => {
                write!(f, "{}(", r.op.name())?;
                if let Some(p) = r.param {
                    write!(f, "{}, ", number(p))?;
                }
                write!(f, "{}", r.log)?;
                if let Some(u) = &r.unwrap {
                    f.write_str(" | unwrap ")?;
                    match u.conv {
                        UnwrapConv::Float => f.write_str(&u.label)?,
                        UnwrapConv::Duration => write!(f, "duration({})", u.label)?,
                        UnwrapConv::Bytes => write!(f, "bytes({})", u.label)?,
                    }
                    for p in &u.post_filters {
                        write!(f, " | {p}")?;
                    }
                }
                write!(f, " [{}]", duration(r.range_ns))?;
                if r.offset_ns != 0 {
                    write!(f, " offset {}", duration(r.offset_ns))?;
                }
                f.write_char(')')?;
                if let Some(g) = &r.grouping {
                    write!(f, " {g}")?;
                }
                Ok(())
            }
            Expr::VectorAgg(a) => {
                f.write_str(vector_op(a.op))?;
                if let Some(g) = &a.grouping {
                    write!(f, " {g} ")?;
                }
                f.write_char('(')?;
                if let Some(k) = a.param {
                    write!(f, "{k}, ")?;
                }
                write!(f, "{})", a.inner)
            }
            Expr::Binary(b) => {
                operand(f, &b.lhs)?;
                write!(f, " {}", bin_op(b.op))?;
                if b.return_bool {
                    f.write_str(" bool")?;
                }
                if let Some((on, names)) = &b.matching {
                    let kw = if *on { "on" } else { "ignoring" };
                    write!(f, " {kw} ({})", labels(names))?;
                }
                match b.group {
                    GroupSide::None => {}
                    GroupSide::Left => write!(f, " group_left ({})", labels(&b.include))?,
                    GroupSide::Right => write!(f, " group_right ({})", labels(&b.include))?,
                }
                f.write_char(' ')?;
                operand(f, &b.rhs)
            }
            Expr::LabelReplace(l) => write!(
                f,
                "label_replace({}, {}, {}, {}, {})",
                l.inner,
                quote(&l.dst),
                quote(&l.replacement),
                quote(&l.src),
                quote(&l.regex_src)
            ),
        }
    }
}
