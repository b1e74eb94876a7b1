//! Tokenizer. Attribute names follow Tempo's lexer: after a scope (`span.`, `.` ...) every
//! character up to whitespace or one of `{}()=~!<>&|^,` belongs to the name, and `"..."`
//! parts are taken literally (`span."http status"`).

use crate::error::ParseError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrScope {
    /// `.x`: span attribute, else resource attribute.
    Any,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Pipe,
    Eq,
    Neq,
    Re,
    Nre,
    Gt,
    Gte,
    Lt,
    Lte,
    Desc,
    Ance,
    Sibl,
    NotChild,
    NotParent,
    NotDesc,
    NotAnce,
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnce,
    UnionSibl,
    And,
    Or,
    Not,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Str(String),
    Int(i64),
    Float(f64),
    Duration(i64),
    /// A bare word: keyword, intrinsic or function name.
    Ident(String),
    /// `scope:name`, e.g. `span:duration`.
    Scoped(String, String),
    Attr {
        scope: AttrScope,
        parent: bool,
        name: String,
    },
    Eof,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::LBrace => "\"{\"".into(),
            Tok::RBrace => "\"}\"".into(),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Pipe => "\"|\"".into(),
            Tok::Eq => "\"=\"".into(),
            Tok::Neq => "\"!=\"".into(),
            Tok::Re => "\"=~\"".into(),
            Tok::Nre => "\"!~\"".into(),
            Tok::Gt => "\">\"".into(),
            Tok::Gte => "\">=\"".into(),
            Tok::Lt => "\"<\"".into(),
            Tok::Lte => "\"<=\"".into(),
            Tok::Desc => "\">>\"".into(),
            Tok::Ance => "\"<<\"".into(),
            Tok::Sibl => "\"~\"".into(),
            Tok::NotChild => "\"!>\"".into(),
            Tok::NotParent => "\"!<\"".into(),
            Tok::NotDesc => "\"!>>\"".into(),
            Tok::NotAnce => "\"!<<\"".into(),
            Tok::UnionChild => "\"&>\"".into(),
            Tok::UnionParent => "\"&<\"".into(),
            Tok::UnionDesc => "\"&>>\"".into(),
            Tok::UnionAnce => "\"&<<\"".into(),
            Tok::UnionSibl => "\"&~\"".into(),
            Tok::And => "\"&&\"".into(),
            Tok::Or => "\"||\"".into(),
            Tok::Not => "\"!\"".into(),
            Tok::Add => "\"+\"".into(),
            Tok::Sub => "\"-\"".into(),
            Tok::Mul => "\"*\"".into(),
            Tok::Div => "\"/\"".into(),
            Tok::Mod => "\"%\"".into(),
            Tok::Pow => "\"^\"".into(),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Duration(_) => "duration".into(),
            Tok::Ident(s) => format!("{s:?}"),
            Tok::Scoped(a, b) => format!("\"{a}:{b}\""),
            Tok::Attr { name, .. } => format!("attribute {name:?}"),
            Tok::Eof => "end of query".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character.
    pub offset: usize,
}

/// Characters that end an unquoted attribute name (besides whitespace), as in Tempo.
fn is_attr_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        )
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_ws();
        let offset = lx.pos;
        let Some(c) = lx.peek() else {
            out.push(Token {
                tok: Tok::Eof,
                offset,
            });
            return Ok(out);
        };
        let tok = lx.next_token(c, offset)?;
        out.push(Token { tok, offset });
    }
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn next_token(&mut self, c: char, offset: usize) -> Result<Tok, ParseError> {
        // multi-character operators first, longest match
        const OPS: &[(&str, Tok)] = &[
            ("!>>", Tok::NotDesc),
            ("!<<", Tok::NotAnce),
            ("&>>", Tok::UnionDesc),
            ("&<<", Tok::UnionAnce),
            ("&&", Tok::And),
            ("||", Tok::Or),
            ("!=", Tok::Neq),
            ("!~", Tok::Nre),
            ("!>", Tok::NotChild),
            ("!<", Tok::NotParent),
            ("&>", Tok::UnionChild),
            ("&<", Tok::UnionParent),
            ("&~", Tok::UnionSibl),
            ("=~", Tok::Re),
            (">>", Tok::Desc),
            ("<<", Tok::Ance),
            (">=", Tok::Gte),
            ("<=", Tok::Lte),
            ("{", Tok::LBrace),
            ("}", Tok::RBrace),
            ("(", Tok::LParen),
            (")", Tok::RParen),
            (",", Tok::Comma),
            ("|", Tok::Pipe),
            ("=", Tok::Eq),
            (">", Tok::Gt),
            ("<", Tok::Lt),
            ("~", Tok::Sibl),
            ("!", Tok::Not),
            ("+", Tok::Add),
            ("-", Tok::Sub),
            ("*", Tok::Mul),
            ("/", Tok::Div),
            ("%", Tok::Mod),
            ("^", Tok::Pow),
        ];
        if c == '"' || c == '`' {
            return self.string(c, offset).map(Tok::Str);
        }
        if c.is_ascii_digit() {
            return self.number(offset);
        }
        if c == '.' {
            // `.5` is a number; otherwise an unscoped attribute
            if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
                return self.number(offset);
            }
            self.bump();
            return self.attribute(AttrScope::Any, false, offset);
        }
        for (text, tok) in OPS {
            if self.eat(text) {
                return Ok(tok.clone());
            }
        }
        if is_word_char(c) {
            let start = self.pos;
            while self.peek().is_some_and(is_word_char) {
                self.bump();
            }
            let word = &self.src[start..self.pos];
            if self.peek() == Some('.') {
                let scope = match word {
                    "span" => Some(AttrScope::Span),
                    "resource" => Some(AttrScope::Resource),
                    "event" => Some(AttrScope::Event),
                    "link" => Some(AttrScope::Link),
                    "instrumentation" => Some(AttrScope::Instrumentation),
                    "parent" => Some(AttrScope::Any),
                    _ => None,
                };
                if let Some(scope) = scope {
                    self.bump();
                    if word == "parent" {
                        // parent.span.x / parent.resource.x / parent.x
                        let scope = if self.eat("span.") {
                            AttrScope::Span
                        } else if self.eat("resource.") {
                            AttrScope::Resource
                        } else {
                            AttrScope::Any
                        };
                        return self.attribute(scope, true, offset);
                    }
                    return self.attribute(scope, false, offset);
                }
            }
            if self.peek() == Some(':')
                && matches!(
                    word,
                    "span" | "trace" | "event" | "link" | "instrumentation" | "resource"
                )
            {
                self.bump();
                let start = self.pos;
                while self.peek().is_some_and(is_word_char) {
                    self.bump();
                }
                let name = &self.src[start..self.pos];
                if name.is_empty() {
                    return Err(ParseError::at(
                        self.src,
                        offset,
                        format!("expected an intrinsic name after \"{word}:\""),
                    ));
                }
                return Ok(Tok::Scoped(word.to_string(), name.to_string()));
            }
            return Ok(Tok::Ident(word.to_string()));
        }
        Err(ParseError::at(
            self.src,
            offset,
            format!("unexpected character {c:?}"),
        ))
    }

    fn attribute(
        &mut self,
        scope: AttrScope,
        parent: bool,
        offset: usize,
    ) -> Result<Tok, ParseError> {
        let mut name = String::new();
        loop {
            match self.peek() {
                Some('"') => {
                    let q = self.pos;
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(ParseError::at(
                                    self.src,
                                    q,
                                    "unterminated quoted attribute name",
                                ));
                            }
                            Some('"') => break,
                            Some('\\') => match self.bump() {
                                Some(e @ ('"' | '\\')) => name.push(e),
                                _ => {
                                    return Err(ParseError::at(
                                        self.src,
                                        self.pos.saturating_sub(1),
                                        "invalid escape sequence in attribute name",
                                    ));
                                }
                            },
                            Some(ch) => name.push(ch),
                        }
                    }
                }
                Some(ch) if is_attr_char(ch) => {
                    name.push(ch);
                    self.bump();
                }
                _ => break,
            }
        }
        if name.is_empty() {
            return Err(ParseError::at(
                self.src,
                offset,
                "expected an attribute name",
            ));
        }
        Ok(Tok::Attr {
            scope,
            parent,
            name,
        })
    }

    fn string(&mut self, quote: char, offset: usize) -> Result<String, ParseError> {
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(ParseError::at(self.src, offset, "unterminated string"));
            };
            if c == quote {
                return Ok(out);
            }
            if c != '\\' || quote == '`' {
                out.push(c);
                continue;
            }
            let esc_at = self.pos - 1;
            let bad =
                |lx: &Self| ParseError::at(lx.src, esc_at, "invalid escape sequence in string");
            match self.bump() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('\'') => out.push('\''),
                Some('a') => out.push('\u{7}'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some('v') => out.push('\u{b}'),
                Some('u') => {
                    let start = self.pos;
                    for _ in 0..4 {
                        if !self.bump().is_some_and(|h| h.is_ascii_hexdigit()) {
                            return Err(bad(self));
                        }
                    }
                    let ch = u32::from_str_radix(&self.src[start..self.pos], 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| bad(self))?;
                    out.push(ch);
                }
                _ => return Err(bad(self)),
            }
        }
    }

    /// An int, a float or a duration (`1ms`, `1.5s`, `1h30m`, `100us`, `2d`).
    fn number(&mut self, offset: usize) -> Result<Tok, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.pos;
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            } else {
                self.pos = save;
            }
        }
        if self.peek().is_some_and(|c| c.is_alphabetic()) {
            // a duration: the number is followed by a unit (and maybe more number+unit pairs)
            while self
                .peek()
                .is_some_and(|c| c.is_alphanumeric() || c == '.' || c == 'µ')
            {
                self.bump();
            }
            let text = &self.src[start..self.pos];
            return parse_duration(text).map(Tok::Duration).ok_or_else(|| {
                ParseError::at(self.src, offset, format!("invalid duration {text:?}"))
            });
        }
        let text = &self.src[start..self.pos];
        if is_float {
            text.parse::<f64>()
                .map(Tok::Float)
                .map_err(|_| ParseError::at(self.src, offset, format!("invalid number {text:?}")))
        } else {
            text.parse::<i64>().map(Tok::Int).map_err(|_| {
                ParseError::at(self.src, offset, format!("integer {text} is out of range"))
            })
        }
    }
}

/// Parses `1h30m`, `1.5s`, `100ms`, `10us`, `10µs`, `5ns`, `2d`, `1w`, `1y` into nanoseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut rest = text;
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
        let num: f64 = rest[..num_len].parse().ok()?;
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
            "d" => 86_400e9,
            "w" => 7.0 * 86_400e9,
            "y" => 365.0 * 86_400e9,
            _ => return None,
        };
        total += num * mult;
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return None;
    }
    Some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1ms"), Some(1_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("100us"), Some(100_000));
        assert_eq!(parse_duration("100µs"), Some(100_000));
        assert_eq!(parse_duration("10ns"), Some(10));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("ms"), None);
    }

    #[test]
    fn attribute_names() {
        let toks = tokenize(r#"{ span.http.status_code=200 && resource."service name" != .a-b }"#)
            .expect("tokens");
        let attrs: Vec<_> = toks
            .iter()
            .filter_map(|t| match &t.tok {
                Tok::Attr { scope, name, .. } => Some((*scope, name.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            attrs,
            vec![
                (AttrScope::Span, "http.status_code".to_string()),
                (AttrScope::Resource, "service name".to_string()),
                (AttrScope::Any, "a-b".to_string()),
            ]
        );
    }
}
