//! Log pipeline stages: line filters, parsers, label filters, formats,
//! `drop`/`keep` and `unwrap`.

use super::{Parser, is_label_name};
use crate::ast::*;
use crate::error::ParseError;
use crate::ip::IpPattern;
use crate::lexer::Tok;
use crate::matcher::{MatchOp, Matcher};
use crate::pattern::Pattern;
use crate::template::Template;

impl Parser<'_> {
    pub(super) fn pipeline(
        &mut self,
        allow_unwrap: bool,
    ) -> Result<(Vec<Stage>, Option<Unwrap>), ParseError> {
        let mut stages = Vec::new();
        let mut unwrap: Option<Unwrap> = None;
        loop {
            let op = match self.peek() {
                Tok::PipeExact => Some(LineFilterOp::Contains),
                Tok::Neq => Some(LineFilterOp::NotContains),
                Tok::PipeMatch => Some(LineFilterOp::Regex),
                Tok::Nre => Some(LineFilterOp::NotRegex),
                Tok::PipePattern => Some(LineFilterOp::Pattern),
                Tok::NotPattern => Some(LineFilterOp::NotPattern),
                Tok::Pipe => None,
                _ => break,
            };
            if let Some(op) = op {
                if unwrap.is_some() {
                    return Err(self.unexpected("PIPE"));
                }
                self.next();
                stages.push(Stage::LineFilter(self.line_filter(op)?));
                continue;
            }
            self.next(); // `|`
            if let Some(u) = &mut unwrap {
                let f = self.label_filter()?;
                u.post_filters.push(f);
                continue;
            }
            let kw_pos = self.pos();
            let kw = match self.peek() {
                Tok::Ident(s) => s.clone(),
                Tok::LParen => String::new(),
                _ => return Err(self.unexpected("IDENTIFIER")),
            };
            // A keyword followed by a comparison is a label filter on a label
            // of that name (`| level="x"`).
            let next_is_cmp = matches!(
                self.peek_at(1),
                Tok::Eq
                    | Tok::Neq
                    | Tok::Re
                    | Tok::Nre
                    | Tok::Gt
                    | Tok::Gte
                    | Tok::Lt
                    | Tok::Lte
                    | Tok::CmpEq
            );
            if next_is_cmp || kw.is_empty() {
                stages.push(Stage::LabelFilter(self.label_filter()?));
                continue;
            }
            match kw.as_str() {
                "json" => {
                    self.next();
                    stages.push(Stage::Json(self.extract_params()?));
                }
                "logfmt" => {
                    self.next();
                    let mut strict = false;
                    let mut keep_empty = false;
                    while let Tok::Flag(f) = self.peek().clone() {
                        match f.as_str() {
                            "strict" => strict = true,
                            "keep-empty" => keep_empty = true,
                            _ => {
                                return Err(self.err_at(
                                    self.pos(),
                                    format!("syntax error: invalid logfmt flag --{f}"),
                                ));
                            }
                        }
                        self.next();
                    }
                    let params = self.extract_params()?;
                    stages.push(Stage::Logfmt {
                        strict,
                        keep_empty,
                        params,
                    });
                }
                "regexp" => {
                    self.next();
                    let (s, pos) = self.string("STRING")?;
                    stages.push(Stage::Regexp(self.regexp_parser(&s, pos)?));
                }
                "pattern" => {
                    self.next();
                    let (s, pos) = self.string("STRING")?;
                    let p = Pattern::parse(&s, true).map_err(|e| self.err_at(pos, e))?;
                    stages.push(Stage::Pattern(p));
                }
                "unpack" => {
                    self.next();
                    stages.push(Stage::Unpack);
                }
                "decolorize" => {
                    self.next();
                    stages.push(Stage::Decolorize);
                }
                "line_format" => {
                    self.next();
                    let (s, pos) = self.string("STRING")?;
                    let t = Template::parse(&s)
                        .map_err(|e| self.err_at(pos, format!("invalid line template: {e}")))?;
                    stages.push(Stage::LineFormat(t));
                }
                "label_format" => {
                    self.next();
                    stages.push(Stage::LabelFormat(self.label_format()?));
                }
                "drop" | "keep" => {
                    self.next();
                    let sels = self.label_sels()?;
                    stages.push(if kw == "drop" {
                        Stage::Drop(sels)
                    } else {
                        Stage::Keep(sels)
                    });
                }
                "unwrap" => {
                    if !allow_unwrap {
                        return Err(self.err_at(kw_pos, "syntax error: unexpected unwrap: unwrap is only allowed in range aggregations"));
                    }
                    self.next();
                    unwrap = Some(self.unwrap()?);
                }
                _ => stages.push(Stage::LabelFilter(self.label_filter()?)),
            }
        }
        Ok((stages, unwrap))
    }

    /// `ip("pattern")` after `|=`, `!=` or a label name and `=`/`!=`.
    fn is_ip_call(&self) -> bool {
        self.is_ident("ip") && *self.peek_at(1) == Tok::LParen
    }

    fn ip_call(&mut self) -> Result<IpPattern, ParseError> {
        self.next();
        self.expect(Tok::LParen, "OPEN_PARENTHESIS")?;
        let (s, pos) = self.string("STRING")?;
        self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
        IpPattern::parse(&s).map_err(|e| self.err_at(pos, e))
    }

    fn line_filter(&mut self, op: LineFilterOp) -> Result<LineFilterStage, ParseError> {
        if matches!(op, LineFilterOp::Contains | LineFilterOp::NotContains) && self.is_ip_call() {
            let p = self.ip_call()?;
            let op = if op == LineFilterOp::Contains {
                LineFilterOp::Ip
            } else {
                LineFilterOp::NotIp
            };
            return Ok(LineFilterStage {
                filter: LineFilter {
                    op,
                    pattern: p.as_str().to_string(),
                },
                or: Vec::new(),
                compiled: vec![CompiledLineFilter::Ip(p)],
            });
        }
        let (first, pos) = self.string("STRING")?;
        let mut pats = vec![(first, pos)];
        while self.is_ident("or") && matches!(self.peek_at(1), Tok::Str(_)) {
            self.next();
            pats.push(self.string("STRING")?);
        }
        let mut compiled = Vec::new();
        for (p, pos) in &pats {
            compiled.push(match op {
                LineFilterOp::Contains | LineFilterOp::NotContains => {
                    CompiledLineFilter::Contains(p.clone())
                }
                LineFilterOp::ContainsCi => CompiledLineFilter::ContainsCi(p.to_lowercase()),
                LineFilterOp::Regex | LineFilterOp::NotRegex => {
                    let re = regex::RegexBuilder::new(p)
                        .size_limit(1 << 22)
                        .build()
                        .map_err(|e| self.err_at(*pos, format!("invalid regex {p:?}: {e}")))?;
                    // `|~ "literal"` without metacharacters is a plain substring test.
                    if regex::escape(p) == *p {
                        CompiledLineFilter::Contains(p.clone())
                    } else {
                        CompiledLineFilter::Regex(re)
                    }
                }
                LineFilterOp::Pattern | LineFilterOp::NotPattern => CompiledLineFilter::Pattern(
                    Pattern::parse(p, false).map_err(|e| self.err_at(*pos, e))?,
                ),
                LineFilterOp::Ip | LineFilterOp::NotIp => {
                    CompiledLineFilter::Ip(IpPattern::parse(p).map_err(|e| self.err_at(*pos, e))?)
                }
            });
        }
        let mut it = pats.into_iter().map(|(s, _)| s);
        let pattern = it.next().unwrap_or_default();
        Ok(LineFilterStage {
            filter: LineFilter { op, pattern },
            or: it.collect(),
            compiled,
        })
    }

    fn regexp_parser(&self, s: &str, pos: usize) -> Result<RegexpParser, ParseError> {
        let regex = regex::RegexBuilder::new(s)
            .size_limit(1 << 22)
            .build()
            .map_err(|e| self.err_at(pos, format!("invalid regex {s:?}: {e}")))?;
        let names: Vec<Option<String>> =
            regex.capture_names().map(|n| n.map(String::from)).collect();
        if names.iter().all(|n| n.is_none()) {
            return Err(self.err_at(pos, "at least one named capture must be supplied"));
        }
        for n in names.iter().flatten() {
            if !is_label_name(n) {
                return Err(self.err_at(pos, format!("invalid extracted label name '{n}'")));
            }
        }
        Ok(RegexpParser { regex, names })
    }

    fn extract_params(&mut self) -> Result<Vec<ExtractParam>, ParseError> {
        let mut out = Vec::new();
        if !matches!(self.peek(), Tok::Ident(_)) {
            return Ok(out);
        }
        loop {
            let label = self.ident("IDENTIFIER")?;
            let path = if *self.peek() == Tok::Eq {
                self.next();
                self.string("STRING")?.0
            } else {
                label.clone()
            };
            out.push(ExtractParam { label, path });
            if *self.peek() == Tok::Comma {
                self.next();
            } else {
                return Ok(out);
            }
        }
    }

    fn label_format(&mut self) -> Result<Vec<LabelFmt>, ParseError> {
        let mut out: Vec<LabelFmt> = Vec::new();
        loop {
            let dpos = self.pos();
            let dst = self.ident("IDENTIFIER")?;
            self.expect(Tok::Eq, "EQ")?;
            let item = match self.next() {
                Tok::Ident(src) => LabelFmt::Rename {
                    dst: dst.clone(),
                    src,
                },
                Tok::Str(s) => {
                    let pos = self.toks[self.i - 1].pos;
                    let tmpl = Template::parse(&s)
                        .map_err(|e| self.err_at(pos, format!("invalid label template: {e}")))?;
                    LabelFmt::Template {
                        dst: dst.clone(),
                        tmpl,
                    }
                }
                _ => {
                    self.unread();
                    return Err(self.unexpected("IDENTIFIER or STRING"));
                }
            };
            let dup = out.iter().any(|f| match f {
                LabelFmt::Rename { dst: d, .. } | LabelFmt::Template { dst: d, .. } => *d == dst,
            });
            if dst == "__error__" {
                return Err(self.err_at(dpos, "__error__ cannot be formatted"));
            }
            if dup {
                return Err(self.err_at(
                    dpos,
                    format!("multiple label name '{dst}' not allowed in a single format operation"),
                ));
            }
            out.push(item);
            if *self.peek() == Tok::Comma {
                self.next();
            } else {
                return Ok(out);
            }
        }
    }

    fn label_sels(&mut self) -> Result<Vec<LabelSel>, ParseError> {
        let mut out = Vec::new();
        loop {
            let name = self.ident("IDENTIFIER")?;
            if let Some(op) = self.match_op() {
                let (v, vpos) = self.string("STRING")?;
                out.push(LabelSel::Matcher(
                    Matcher::new(name, op, v).map_err(|e| self.err_at(vpos, e))?,
                ));
            } else {
                out.push(LabelSel::Name(name));
            }
            if *self.peek() == Tok::Comma {
                self.next();
            } else {
                return Ok(out);
            }
        }
    }

    fn unwrap(&mut self) -> Result<Unwrap, ParseError> {
        let name = self.ident("IDENTIFIER")?;
        let conv = match name.as_str() {
            "duration" | "duration_seconds" if *self.peek() == Tok::LParen => {
                Some(UnwrapConv::Duration)
            }
            "bytes" if *self.peek() == Tok::LParen => Some(UnwrapConv::Bytes),
            _ => None,
        };
        let (label, conv) = match conv {
            Some(c) => {
                self.next();
                let l = self.ident("IDENTIFIER")?;
                self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
                (l, c)
            }
            None => (name, UnwrapConv::Float),
        };
        Ok(Unwrap {
            label,
            conv,
            post_filters: Vec::new(),
        })
    }

    // ---- label filters: or < and ----

    pub(super) fn label_filter(&mut self) -> Result<LabelFilter, ParseError> {
        let outer = self.depth;
        self.enter()?;
        let f = self.label_filter_or();
        // `and`/`or` chains deepen the tree too (they call `enter`).
        self.depth = outer;
        f
    }

    fn label_filter_or(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_and()?;
        while self.is_ident("or") {
            self.enter()?;
            self.next();
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_unit()?;
        while self.is_ident("and") {
            self.enter()?;
            self.next();
            let rhs = self.label_filter_unit()?;
            lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    /// A filter optionally followed by `,` or juxtaposition. Loki's grammar
    /// gives those no precedence, so yacc shifts: everything after them,
    /// `or` included, is the right operand (`a, b or c` is `a and (b or c)`).
    fn label_filter_unit(&mut self) -> Result<LabelFilter, ParseError> {
        let lhs = self.label_filter_primary()?;
        let juxtaposed = *self.peek() == Tok::LParen
            || (matches!(self.peek(), Tok::Ident(s) if s != "or" && s != "and" && s != "offset")
                && matches!(
                    self.peek_at(1),
                    Tok::Eq
                        | Tok::Neq
                        | Tok::Re
                        | Tok::Nre
                        | Tok::Gt
                        | Tok::Gte
                        | Tok::Lt
                        | Tok::Lte
                        | Tok::CmpEq
                ));
        if *self.peek() == Tok::Comma {
            self.next();
        } else if !juxtaposed {
            return Ok(lhs);
        }
        let rhs = self.label_filter()?;
        Ok(LabelFilter::And(Box::new(lhs), Box::new(rhs)))
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, ParseError> {
        if *self.peek() == Tok::LParen {
            self.next();
            let f = self.label_filter()?;
            self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
            return Ok(f);
        }
        let name = self.ident("IDENTIFIER")?;
        let op_idx = self.i;
        let op_tok = self.next();
        if matches!(op_tok, Tok::Eq | Tok::Neq) && self.is_ip_call() {
            let pattern = self.ip_call()?;
            return Ok(LabelFilter::Ip {
                name,
                negate: op_tok == Tok::Neq,
                pattern,
            });
        }
        let v_idx = self.i;
        let vpos = self.pos();
        let neg = if *self.peek() == Tok::Sub {
            self.next();
            true
        } else {
            false
        };
        let value = self.next();
        let cmp = match op_tok {
            Tok::Eq | Tok::CmpEq => CmpOp::Eq,
            Tok::Neq => CmpOp::Neq,
            Tok::Gt => CmpOp::Gt,
            Tok::Gte => CmpOp::Gte,
            Tok::Lt => CmpOp::Lt,
            Tok::Lte => CmpOp::Lte,
            Tok::Re | Tok::Nre => CmpOp::Eq,
            _ => {
                self.i = op_idx;
                return Err(self.unexpected("EQ, NEQ, RE, NRE, CMP_EQ, GT, GTE, LT or LTE"));
            }
        };
        let is_re = matches!(op_tok, Tok::Re | Tok::Nre);
        match value {
            Tok::Str(s) if !neg => {
                let op = match op_tok {
                    Tok::Eq | Tok::CmpEq => MatchOp::Eq,
                    Tok::Neq => MatchOp::Neq,
                    Tok::Re => MatchOp::Re,
                    Tok::Nre => MatchOp::Nre,
                    _ => {
                        return Err(self.err_at(
                            vpos,
                            "syntax error: unexpected STRING, expecting NUMBER, DURATION or BYTES",
                        ));
                    }
                };
                Ok(LabelFilter::Matcher(
                    Matcher::new(name, op, s).map_err(|e| self.err_at(vpos, e))?,
                ))
            }
            Tok::Num(n) if !is_re => Ok(LabelFilter::Number {
                name,
                op: cmp,
                value: if neg { -n } else { n },
            }),
            Tok::Duration(d) if !is_re => Ok(LabelFilter::Duration {
                name,
                op: cmp,
                value_ns: if neg { -d } else { d },
            }),
            Tok::Bytes(b) if !is_re && !neg => Ok(LabelFilter::Bytes {
                name,
                op: cmp,
                value: b,
            }),
            _ => {
                self.i = v_idx;
                Err(self.unexpected(if is_re {
                    "STRING"
                } else {
                    "STRING, NUMBER, DURATION or BYTES"
                }))
            }
        }
    }
}
