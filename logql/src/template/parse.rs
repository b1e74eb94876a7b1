//! Parsing templates: text, actions, pipelines, `if`/`else`/`end`.

use super::call::compile;

use super::{Arg, Command, FUNCS, Node, Pipeline};

/// Parses a whole template into nodes.
pub(super) fn parse_nodes(src: &str) -> Result<Vec<Node>, String> {
    let (nodes, end) = TParser::new(src).nodes()?;
    if let Some(e) = end {
        return Err(format!("unexpected {}", e.name()));
    }
    Ok(nodes)
}

/// Deepest nesting of `if` blocks and parentheses in a template.
const MAX_DEPTH: usize = 100;

struct TParser<'a> {
    depth: usize,
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
    fn new(src: &'a str) -> Self {
        TParser {
            depth: 0,
            src,
            pos: 0,
        }
    }

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
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err("template too deeply nested".into());
                    }
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
                    self.depth -= 1;
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
    parse_pipeline_at(toks, 0)
}

fn parse_pipeline_at(toks: &[ATok], depth: usize) -> Result<Pipeline, String> {
    if depth > MAX_DEPTH {
        return Err("template too deeply nested".into());
    }
    if toks.is_empty() {
        return Err("missing value for command".into());
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    loop {
        let (cmd, next) = parse_command(toks, i, depth)?;
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

fn parse_command(toks: &[ATok], mut i: usize, nest: usize) -> Result<(Command, usize), String> {
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
                let p = parse_pipeline_at(&toks[i + 1..j], nest + 1)?;
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
