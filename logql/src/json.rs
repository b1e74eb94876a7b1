//! A small JSON scanner for the `json` parser: walks an object without
//! building a tree, borrowing keys and values from the line (allocating
//! only for strings with escapes). Errors use the messages of the
//! `jsonparser` library Loki uses.

use std::borrow::Cow;

const MALFORMED_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";
const MALFORMED_STRING: &str = "Value is string, but can't find closing '\"' symbol";
const MALFORMED_ARRAY: &str = "Value is array, but can't find closing ']' symbol";
const UNKNOWN_VALUE: &str = "Unknown value type";
const MAX_DEPTH: usize = 128;

/// Calls `f(key, value)` for every string, number and boolean in the
/// top-level object of `line`; nested object keys are joined with `_`,
/// arrays and nulls are skipped. Key parts are sanitised into label names.
pub(crate) fn flatten(
    line: &str,
    f: &mut dyn FnMut(&str, Cow<'_, str>),
) -> Result<(), &'static str> {
    let mut s = Scanner {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(MALFORMED_OBJECT);
    }
    let mut prefix = String::new();
    s.object(&mut prefix, f, 0)
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string starting at the current `"`.
    fn string(&mut self) -> Result<Cow<'a, str>, &'static str> {
        let start = self.i;
        let mut j = start + 1;
        let mut esc = false;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' => {
                    esc = true;
                    j += 2;
                    continue;
                }
                b'"' => {
                    self.i = j + 1;
                    if !esc {
                        return Ok(Cow::Borrowed(&self.s[start + 1..j]));
                    }
                    return serde_json::from_str::<String>(&self.s[start..=j])
                        .map(Cow::Owned)
                        .map_err(|_| MALFORMED_STRING);
                }
                _ => j += 1,
            }
        }
        Err(MALFORMED_STRING)
    }

    fn literal(&mut self, lit: &'static str) -> Result<&'static str, &'static str> {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(lit)
        } else {
            Err(UNKNOWN_VALUE)
        }
    }

    fn number(&mut self) -> Result<&'a str, &'static str> {
        let start = self.i;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.i += 1;
        }
        if self.i == start {
            return Err(UNKNOWN_VALUE);
        }
        Ok(&self.s[start..self.i])
    }

    /// Walks the members of the object or array whose opening bracket is at the cursor,
    /// calling `member` at each value: with its key for objects, `None` for arrays.
    fn members(
        &mut self,
        object: bool,
        mut member: impl FnMut(&mut Self, Option<Cow<'a, str>>) -> Result<(), &'static str>,
    ) -> Result<(), &'static str> {
        let (close, malformed) = if object {
            (b'}', MALFORMED_OBJECT)
        } else {
            (b']', MALFORMED_ARRAY)
        };
        self.i += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = if object {
                if self.peek() != Some(b'"') {
                    return Err(malformed);
                }
                let key = self.string()?;
                self.ws();
                if self.peek() != Some(b':') {
                    return Err(malformed);
                }
                self.i += 1;
                self.ws();
                Some(key)
            } else {
                None
            };
            member(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(malformed),
            }
        }
    }

    /// Skips any value.
    fn skip(&mut self, depth: usize) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err(UNKNOWN_VALUE);
        }
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(c @ (b'{' | b'[')) => self.members(c == b'{', |s, _| s.skip(depth + 1)),
            Some(b't') => self.literal("true").map(|_| ()),
            Some(b'f') => self.literal("false").map(|_| ()),
            Some(b'n') => self.literal("null").map(|_| ()),
            _ => self.number().map(|_| ()),
        }
    }

    /// Reports the scalars of the object at the cursor, keys joined under `prefix`.
    fn object(
        &mut self,
        prefix: &mut String,
        f: &mut dyn FnMut(&str, Cow<'_, str>),
        depth: usize,
    ) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err(UNKNOWN_VALUE);
        }
        self.members(true, |s, key| {
            let plen = prefix.len();
            if plen > 0 {
                prefix.push('_');
            }
            append_sanitized(prefix, key.as_deref().unwrap_or_default(), plen == 0);
            let res = match s.peek() {
                Some(b'{') => s.object(prefix, f, depth + 1),
                Some(b'[') => s.skip(depth + 1),
                Some(b'"') => s.string().map(|v| f(prefix, v)),
                Some(b't') => s.literal("true").map(|v| f(prefix, Cow::Borrowed(v))),
                Some(b'f') => s.literal("false").map(|v| f(prefix, Cow::Borrowed(v))),
                Some(b'n') => s.literal("null").map(|_| ()),
                _ => s.number().map(|v| f(prefix, Cow::Borrowed(v))),
            };
            prefix.truncate(plen);
            res
        })
    }
}

/// Appends `key` as a label-name fragment: characters outside
/// `[a-zA-Z0-9_]` become `_`; a leading digit of a top-level key gets a `_`
/// prefix.
pub(crate) fn append_sanitized(out: &mut String, key: &str, top_level: bool) {
    let key = key.trim();
    if top_level && key.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
}
