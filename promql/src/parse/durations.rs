//! Duration expressions (Prometheus 3's `promql-duration-expr`): arithmetic where a
//! duration goes, in range and subquery brackets (`rate(x[5m+1m])`, `x[1h/2:step()]`)
//! and after `offset` (`x offset (2 * 1m)`, `x offset -step()`).
//!
//! `promql-parser` only knows duration literals, so [`rewrite`] evaluates every such
//! expression in the query text and writes the result back as a literal in
//! milliseconds before parsing. Numbers are seconds; `+ - * / % ^`, parentheses,
//! `step()`, `range()`, `min_of(a, b)` and `max_of(a, b)` are allowed (names in any
//! case). `step()` and `range()` are the query's step and `end - start` (both 0 for
//! an instant query), so a query using them can only be parsed for an evaluation.
//!
//! After `offset`, as in Prometheus, an optional sign and one operand form the
//! duration: a parenthesised expression or a function call. `x offset 1m * 2`
//! multiplies the offset vector, it does not double the offset.

use super::Scanner;

/// The times a duration expression can refer to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryTimes {
    /// First evaluation time, in milliseconds.
    pub start_ms: i64,
    /// Last evaluation time, in milliseconds.
    pub end_ms: i64,
    /// Step in milliseconds; 0 for an instant query.
    pub step_ms: i64,
}

impl QueryTimes {
    /// The times of an instant query at `t_ms`.
    pub fn instant(t_ms: i64) -> Self {
        QueryTimes {
            start_ms: t_ms,
            end_ms: t_ms,
            step_ms: 0,
        }
    }
}

/// Replaces each duration expression in `q` by its value as a literal.
pub(crate) fn rewrite(q: &str, times: Option<QueryTimes>) -> Result<String, String> {
    let sc = Scanner { s: q.as_bytes() };
    let s = sc.s;
    let mut out = String::with_capacity(q.len());
    let mut copied = 0;
    let mut braces = 0usize;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' | b'\'' | b'`' => i = sc.string_end(i),
            b'#' => i = sc.comment_end(i),
            b'{' => {
                braces += 1;
                i += 1;
            }
            b'}' => {
                braces = braces.saturating_sub(1);
                i += 1;
            }
            b'[' if braces == 0 => {
                let Some(close) = q[i..].find(']').map(|p| i + p) else {
                    break; // unterminated: the parser reports it
                };
                let inner = &q[i + 1..close];
                let raw = split_top_level(inner, b':');
                let mut values = Vec::with_capacity(raw.len());
                for part in &raw {
                    values.push(literal_or_value(part, times)?);
                }
                if values.iter().any(Option::is_some) {
                    out.push_str(&q[copied..=i]);
                    let texts: Vec<String> = values
                        .into_iter()
                        .zip(raw)
                        .map(|(v, raw)| v.unwrap_or_else(|| raw.to_owned()))
                        .collect();
                    out.push_str(&texts.join(":"));
                    copied = close;
                }
                i = close + 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let word = sc.ident(i);
                let after = i + word.len();
                if braces == 0
                    && word.eq_ignore_ascii_case("offset")
                    && let Some((end, ms)) = offset_operand(q, &sc, after, times)?
                {
                    if ms == 0 {
                        // The parser refuses a zero duration; no offset is the same.
                        out.push_str(&q[copied..i]);
                    } else {
                        out.push_str(&q[copied..after]);
                        out.push(' ');
                        out.push_str(&format_ms(ms));
                    }
                    copied = end;
                    i = end;
                } else {
                    i = after.max(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&q[copied..]);
    Ok(out)
}

/// `text` split at `sep` outside parentheses.
fn split_top_level(text: &str, sep: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut from = 0;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if b == sep && depth == 0 => {
                parts.push(&text[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[from..]);
    parts
}

/// `None` when `part` is empty or a plain literal the parser reads itself; else the
/// value of the expression as a literal.
fn literal_or_value(part: &str, times: Option<QueryTimes>) -> Result<Option<String>, String> {
    let t = part.trim();
    if t.is_empty() || is_plain_literal(t) {
        return Ok(None);
    }
    let ms = evaluate(t, times)?;
    Ok(Some(format_ms(ms)))
}

/// A number of seconds or a duration literal such as `1h30m`.
fn is_plain_literal(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        && t.as_bytes()[0].is_ascii_digit()
        && !t.contains("e")
}

/// The operand after `offset` at `from`, when it is an expression: its end and value.
fn offset_operand(
    q: &str,
    sc: &Scanner<'_>,
    from: usize,
    times: Option<QueryTimes>,
) -> Result<Option<(usize, i64)>, String> {
    let s = sc.s;
    let mut j = sc.skip_blank(from);
    let sign_at = j;
    if matches!(s.get(j), Some(b'+' | b'-')) {
        j = sc.skip_blank(j + 1);
    }
    let end = match s.get(j) {
        Some(b'(') => paren_close(s, j),
        Some(c) if c.is_ascii_alphabetic() => {
            let name = sc.ident(j);
            let open = sc.skip_blank(j + name.len());
            if s.get(open) != Some(&b'(') {
                return Ok(None);
            }
            paren_close(s, open)
        }
        _ => return Ok(None),
    };
    let Some(end) = end else {
        return Ok(None);
    };
    let ms = evaluate(&q[sign_at..end], times)?;
    Ok(Some((end, ms)))
}

/// Position after the `)` matching the `(` at `open`.
fn paren_close(s: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, b) in s.iter().enumerate().skip(open) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn format_ms(ms: i64) -> String {
    if ms < 0 {
        format!("-{}ms", ms.unsigned_abs())
    } else {
        format!("{ms}ms")
    }
}

/// Evaluates a duration expression into milliseconds.
fn evaluate(text: &str, times: Option<QueryTimes>) -> Result<i64, String> {
    let mut p = Expr {
        s: text.as_bytes(),
        text,
        i: 0,
        times,
        depth: 0,
    };
    let secs = p.sum()?;
    p.blank();
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected {:?} in duration expression {text:?}",
            &text[p.i..]
        ));
    }
    let ms = (secs * 1000.0).round();
    if !ms.is_finite() || ms.abs() > i64::MAX as f64 / 2.0 {
        return Err(format!("duration expression {text:?} is out of range"));
    }
    Ok(ms as i64)
}

/// A recursive-descent evaluator over seconds.
struct Expr<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    times: Option<QueryTimes>,
    /// Nesting so far: hostile input (`((((…` or `----…`) must not overflow the stack.
    depth: usize,
}

/// Deepest nesting of parentheses and signs a duration expression may have.
const MAX_DEPTH: usize = 64;

impl Expr<'_> {
    fn blank(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.blank();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        loop {
            if self.eat(b'+') {
                v += self.product()?;
            } else if self.eat(b'-') {
                v -= self.product()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        loop {
            if self.eat(b'*') {
                v *= self.unary()?;
            } else if self.eat(b'/') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err(format!(
                        "division by zero in duration expression {:?}",
                        self.text
                    ));
                }
                v /= d;
            } else if self.eat(b'%') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err(format!(
                        "modulo by zero in duration expression {:?}",
                        self.text
                    ));
                }
                v %= d;
            } else {
                return Ok(v);
            }
        }
    }

    /// Signs bind looser than `^`: `-2 ^ 2` is -4.
    /// Every recursive path (parentheses, calls, signs) passes through here, so the
    /// nesting limit is kept here.
    fn unary(&mut self) -> Result<f64, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "duration expression {:?} is nested too deeply",
                self.text
            ));
        }
        self.depth += 1;
        let v = if self.eat(b'-') {
            self.unary().map(|v| -v)
        } else if self.eat(b'+') {
            self.unary()
        } else {
            self.power()
        };
        self.depth -= 1;
        v
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.atom()?;
        if self.eat(b'^') {
            return Ok(base.powf(self.unary()?));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<f64, String> {
        self.blank();
        match self.s.get(self.i) {
            Some(b'(') => {
                self.i += 1;
                let v = self.sum()?;
                if !self.eat(b')') {
                    return Err(format!(
                        "missing ')' in duration expression {:?}",
                        self.text
                    ));
                }
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || *c == b'.' => self.literal(),
            Some(c) if c.is_ascii_alphabetic() => self.call(),
            _ => Err(format!(
                "expected a number, a duration or ( in duration expression {:?}",
                self.text
            )),
        }
    }

    /// A number of seconds, or a duration literal such as `1h30m` or `250ms`.
    fn literal(&mut self) -> Result<f64, String> {
        let start = self.i;
        let mut total = 0.0;
        let mut any_unit = false;
        loop {
            let from = self.i;
            while self
                .s
                .get(self.i)
                .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
            {
                self.i += 1;
            }
            if from == self.i {
                break;
            }
            let n: f64 = self.text[from..self.i]
                .parse()
                .map_err(|_| format!("bad number {:?}", &self.text[from..self.i]))?;
            let unit_from = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_alphabetic) {
                self.i += 1;
            }
            let scale = match &self.text[unit_from..self.i] {
                "" if !any_unit => {
                    return Ok(n);
                }
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                "w" => 7.0 * 86_400.0,
                "y" => 365.0 * 86_400.0,
                _ => {
                    return Err(format!(
                        "bad duration {:?} in duration expression {:?}",
                        &self.text[start..self.i],
                        self.text
                    ));
                }
            };
            any_unit = true;
            total += n * scale;
        }
        Ok(total)
    }

    fn call(&mut self) -> Result<f64, String> {
        let from = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.i += 1;
        }
        let name = self.text[from..self.i].to_ascii_lowercase();
        if !self.eat(b'(') {
            return Err(format!(
                "unexpected {name:?} in duration expression {:?}",
                self.text
            ));
        }
        let need_times = |what: &str| {
            format!("{what} in a duration needs the query's time range (use it in a query)")
        };
        let v = match name.as_str() {
            "step" => self.times.ok_or_else(|| need_times("step()"))?.step_ms as f64 / 1000.0,
            "range" => {
                let t = self.times.ok_or_else(|| need_times("range()"))?;
                (t.end_ms - t.start_ms) as f64 / 1000.0
            }
            "min_of" | "max_of" => {
                let a = self.sum()?;
                if !self.eat(b',') {
                    return Err(format!("{name}() takes two durations"));
                }
                let b = self.sum()?;
                if name == "min_of" { a.min(b) } else { a.max(b) }
            }
            _ => {
                return Err(format!(
                    "unknown function {name}() in duration expression {:?}",
                    self.text
                ));
            }
        };
        if !self.eat(b')') {
            return Err(format!(
                "missing ')' after {name}( in duration expression {:?}",
                self.text
            ));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(q: &str) -> String {
        let times = QueryTimes {
            start_ms: 50_000,
            end_ms: 60_000,
            step_ms: 5_000,
        };
        rewrite(q, Some(times)).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    #[test]
    fn brackets_and_offsets_become_literals() {
        assert_eq!(rw("rate(x[5m])"), "rate(x[5m])");
        assert_eq!(rw("rate(x[26m+4m])"), "rate(x[1800000ms])");
        assert_eq!(rw("x[1h/2:step()]"), "x[1800000ms:5000ms]");
        assert_eq!(rw("x[29s+1s:]"), "x[30000ms:]");
        assert_eq!(rw("x[30m1s-30m1s % 1m]"), "x[1800000ms]");
        assert_eq!(rw("x offset (2 * 2)"), "x offset 4000ms");
        assert_eq!(rw("x offset -step()*2"), "x offset -5000ms*2");
        assert_eq!(rw("x offset (-2 ^ 2)"), "x offset -4000ms");
        assert_eq!(rw("x OFFSET min_of(range(), 8s)"), "x OFFSET 8000ms");
        assert_eq!(rw("x offset 5m"), "x offset 5m");
        assert_eq!(rw("x offset step()*0 + 1"), "x offset 5000ms*0 + 1");
        assert_eq!(rw("x offset (step()*0) + 1"), "x  + 1");
        assert_eq!(
            rw(r#"x{offset="(1+1)", a="[1+1]"} offset 1m"#),
            r#"x{offset="(1+1)", a="[1+1]"} offset 1m"#
        );
        assert_eq!(rw("sum by (offset) (x)"), "sum by (offset) (x)");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(rewrite("x[step()]", None).is_err_and(|e| e.contains("step()")));
        assert!(rewrite("x[1m/0]", None).is_err_and(|e| e.contains("division by zero")));
        assert!(rewrite("x[1m+]", None).is_err());
        assert!(rewrite("x[foo()]", None).is_err_and(|e| e.contains("unknown function")));
        let deep = format!("x[{}1m{}]", "(".repeat(100_000), ")".repeat(100_000));
        assert!(rewrite(&deep, None).is_err_and(|e| e.contains("nested too deeply")));
        let signs = format!("x[{}1m]", "-".repeat(100_000));
        assert!(rewrite(&signs, None).is_err_and(|e| e.contains("nested too deeply")));
    }
}
