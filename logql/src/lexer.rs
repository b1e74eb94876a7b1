//! Tokenizer for LogQL with byte offsets for error positions.

use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
    /// `|=`
    PipeExact,
    /// `|~`
    PipeMatch,
    /// `|>`
    PipePattern,
    /// `!>`
    NotPattern,
    Pipe,
    Gt,
    Gte,
    Lt,
    Lte,
    /// `==`
    CmpEq,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Str(String),
    Num(f64),
    Duration(i64),
    Bytes(u64),
    /// `[5m]`
    Range(i64),
    Ident(String),
    /// `--strict`
    Flag(String),
    Eof,
}

impl Tok {
    /// Names as Loki's grammar calls its tokens (used in error messages).
    pub(crate) fn name(&self) -> String {
        match self {
            Tok::LBrace => "OPEN_BRACE".into(),
            Tok::RBrace => "CLOSE_BRACE".into(),
            Tok::LParen => "OPEN_PARENTHESIS".into(),
            Tok::RParen => "CLOSE_PARENTHESIS".into(),
            Tok::Comma => "COMMA".into(),
            Tok::Eq => "EQ".into(),
            Tok::Neq => "NEQ".into(),
            Tok::Re => "RE".into(),
            Tok::Nre => "NRE".into(),
            Tok::PipeExact => "PIPE_EXACT".into(),
            Tok::PipeMatch => "PIPE_MATCH".into(),
            Tok::PipePattern => "PIPE_PATTERN".into(),
            Tok::NotPattern => "NPA".into(),
            Tok::Pipe => "PIPE".into(),
            Tok::Gt => "GT".into(),
            Tok::Gte => "GTE".into(),
            Tok::Lt => "LT".into(),
            Tok::Lte => "LTE".into(),
            Tok::CmpEq => "CMP_EQ".into(),
            Tok::Add => "ADD".into(),
            Tok::Sub => "SUB".into(),
            Tok::Mul => "MUL".into(),
            Tok::Div => "DIV".into(),
            Tok::Mod => "MOD".into(),
            Tok::Pow => "POW".into(),
            Tok::Str(_) => "STRING".into(),
            Tok::Num(_) => "NUMBER".into(),
            Tok::Duration(_) => "DURATION".into(),
            Tok::Bytes(_) => "BYTES".into(),
            Tok::Range(_) => "RANGE".into(),
            Tok::Ident(_) => "IDENTIFIER".into(),
            Tok::Flag(_) => "PARSER_FLAG".into(),
            Tok::Eof => "$end".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character.
    pub pos: usize,
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let err = |pos: usize, m: String| ParseError::at(src, pos, m);
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let two = if i + 1 < b.len() { b[i + 1] } else { 0 };
        let (tok, len) = match c {
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b',' => (Tok::Comma, 1),
            b'+' => (Tok::Add, 1),
            b'*' => (Tok::Mul, 1),
            b'/' => (Tok::Div, 1),
            b'%' => (Tok::Mod, 1),
            b'^' => (Tok::Pow, 1),
            b'=' => match two {
                b'~' => (Tok::Re, 2),
                b'=' => (Tok::CmpEq, 2),
                _ => (Tok::Eq, 1),
            },
            b'!' => match two {
                b'=' => (Tok::Neq, 2),
                b'~' => (Tok::Nre, 2),
                b'>' => (Tok::NotPattern, 2),
                _ => return Err(err(i, "syntax error: unexpected character '!'".into())),
            },
            b'|' => match two {
                b'=' => (Tok::PipeExact, 2),
                b'~' => (Tok::PipeMatch, 2),
                b'>' => (Tok::PipePattern, 2),
                _ => (Tok::Pipe, 1),
            },
            b'>' => match two {
                b'=' => (Tok::Gte, 2),
                _ => (Tok::Gt, 1),
            },
            b'<' => match two {
                b'=' => (Tok::Lte, 2),
                _ => (Tok::Lt, 1),
            },
            b'-' => {
                if two == b'-' && i + 2 < b.len() && b[i + 2].is_ascii_alphabetic() {
                    let mut j = i + 2;
                    while j < b.len()
                        && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b'_')
                    {
                        j += 1;
                    }
                    (Tok::Flag(src[i + 2..j].to_string()), j - i)
                } else {
                    (Tok::Sub, 1)
                }
            }
            b'"' | b'`' => {
                let (s, n) = lex_string(src, i)?;
                (Tok::Str(s), n)
            }
            b'[' => {
                let close = src[i..]
                    .find(']')
                    .ok_or_else(|| err(i, "syntax error: unclosed range '['".into()))?;
                let inner = src[i + 1..i + close].trim();
                let d = parse_duration(inner).ok_or_else(|| {
                    err(
                        i + 1,
                        format!("syntax error: invalid duration in range: {inner:?}"),
                    )
                })?;
                (Tok::Range(d), close + 1)
            }
            b'0'..=b'9' | b'.' => {
                let mut j = i;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric()
                        || b[j] == b'.'
                        || src[j..].starts_with('µ')
                        || src[j..].starts_with('μ'))
                {
                    if !b[j].is_ascii() {
                        // µs / μs: step over the whole character.
                        j += src[j..].chars().next().map_or(1, char::len_utf8) - 1;
                    }
                    // exponent sign: 1e-3
                    j += 1;
                    if j < b.len()
                        && (b[j] == b'-' || b[j] == b'+')
                        && (b[j - 1] == b'e' || b[j - 1] == b'E')
                        && src[i..j - 1]
                            .bytes()
                            .all(|c| c.is_ascii_digit() || c == b'.')
                    {
                        j += 1;
                    }
                }
                let text = &src[i..j];
                let tok = if let Some(n) = parse_number(text) {
                    Tok::Num(n)
                } else if let Some(d) = parse_duration(text) {
                    Tok::Duration(d)
                } else if let Some(bytes) = parse_bytes(text) {
                    Tok::Bytes(bytes)
                } else {
                    return Err(err(
                        i,
                        format!(
                            "syntax error: unexpected {text:?}: not a number, duration or size"
                        ),
                    ));
                };
                (tok, j - i)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':')
                {
                    j += 1;
                }
                (Tok::Ident(src[i..j].to_string()), j - i)
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(i, format!("syntax error: unexpected character {ch:?}")));
            }
        };
        i += len;
        out.push(Token { tok, pos: start });
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}

fn parse_number(s: &str) -> Option<f64> {
    if s.starts_with("0x") || s.starts_with("0X") {
        return i64::from_str_radix(&s[2..], 16).ok().map(|v| v as f64);
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Go's `strconv.Unquote` for `"..."` and `` `...` `` strings; returns the
/// value and the byte length consumed.
fn lex_string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let bytes = src.as_bytes();
    let quote = bytes[start];
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    if quote == b'`' {
        for (k, c) in chars {
            if c == '`' {
                return Ok((out, k + 2));
            }
            out.push(c);
        }
        return Err(ParseError::at(
            src,
            start,
            "syntax error: literal not terminated",
        ));
    }
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((out, k + 2)),
            '\n' => break,
            '\\' => {
                let Some((k2, e)) = chars.next() else { break };
                let at = start + 1 + k2;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v = 0u32;
                        for _ in 0..n {
                            let d = chars.next().and_then(|(_, h)| h.to_digit(16)).ok_or_else(
                                || {
                                    ParseError::at(
                                        src,
                                        at,
                                        "syntax error: invalid escape in string",
                                    )
                                },
                            )?;
                            v = v * 16 + d;
                        }
                        let ch = char::from_u32(v).ok_or_else(|| {
                            ParseError::at(src, at, "syntax error: invalid escape in string")
                        })?;
                        out.push(ch);
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let d =
                                chars
                                    .next()
                                    .and_then(|(_, h)| h.to_digit(8))
                                    .ok_or_else(|| {
                                        ParseError::at(
                                            src,
                                            at,
                                            "syntax error: invalid escape in string",
                                        )
                                    })?;
                            v = v * 8 + d;
                        }
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    other => {
                        return Err(ParseError::at(
                            src,
                            at - 1,
                            format!(
                                "syntax error: invalid escape sequence \\{other} in string (use \\\\{other} or a `raw string`)"
                            ),
                        ));
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(ParseError::at(
        src,
        start,
        "syntax error: literal not terminated",
    ))
}

/// Durations like Prometheus/Loki: `1h30m`, `250ms`, `1.5s`, `2d`, `1w`, `1y`.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    let neg = if let Some(r) = rest.strip_prefix('-') {
        rest = r;
        true
    } else {
        false
    };
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            "y" => 365.0 * 86400e9,
            _ => return None,
        };
        total += n * mult;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let v = total.round() as i64;
    Some(if neg { -v } else { v })
}

/// Sizes like go-humanize's `ParseBytes`: `20MB`, `1KiB`, `512b`, `1.5 GB`.
pub(crate) fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024.0f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024.0f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024.0f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024.0f64.powi(6),
        _ => return None,
    };
    let v = n * mult;
    if !(0.0..1.8e19).contains(&v) {
        return None;
    }
    Some(v as u64)
}
