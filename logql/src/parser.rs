//! Recursive-descent LogQL parser producing [`Expr`].

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{Tok, Token, lex};
use crate::matcher::{MatchOp, Matcher};
use crate::pattern::Pattern;
use crate::template::Template;

/// Parses a LogQL query.
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    let toks = lex(query)?;
    let mut p = Parser {
        src: query,
        toks,
        i: 0,
        last: 0,
    };
    let e = p.expr(0)?;
    p.expect_eof()?;
    Ok(e)
}

/// Parses a bare stream selector `{a="b", c=~"d"}` (for `/series` `match[]`
/// and `/labels` `query`). A log pipeline after it is rejected.
pub fn parse_selector(query: &str) -> Result<Vec<Matcher>, ParseError> {
    let toks = lex(query)?;
    let mut p = Parser {
        src: query,
        toks,
        i: 0,
        last: 0,
    };
    let m = p.selector()?;
    p.expect_eof()?;
    Ok(m)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    /// Index of the token last returned by `next()`.
    last: usize,
}

const RANGE_EXPECT: &str = "RANGE";

impl<'a> Parser<'a> {
    /// Steps back to the token the last `next()` returned.
    fn unread(&mut self) {
        self.i = self.last;
    }
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }
    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
    }
    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].pos
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.last = self.i.min(self.toks.len() - 1);
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn err_at(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, pos, msg)
    }
    fn unexpected(&self, expecting: &str) -> ParseError {
        let t = self.peek();
        let what = match t {
            Tok::Ident(s) => format!("IDENTIFIER {s:?}"),
            other => other.name(),
        };
        let msg = if expecting.is_empty() {
            format!("syntax error: unexpected {what}")
        } else {
            format!("syntax error: unexpected {what}, expecting {expecting}")
        };
        self.err_at(self.pos(), msg)
    }
    fn expect(&mut self, t: Tok, name: &str) -> Result<(), ParseError> {
        if *self.peek() == t {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(name))
        }
    }
    fn expect_eof(&self) -> Result<(), ParseError> {
        if *self.peek() == Tok::Eof {
            Ok(())
        } else {
            Err(self.unexpected(""))
        }
    }
    fn ident(&mut self, expecting: &str) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.next();
                Ok(s)
            }
            _ => Err(self.unexpected(expecting)),
        }
    }
    fn string(&mut self, expecting: &str) -> Result<(String, usize), ParseError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Str(s) => {
                self.next();
                Ok((s, pos))
            }
            _ => Err(self.unexpected(expecting)),
        }
    }
    fn is_ident(&self, name: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == name)
    }

    // ---- expressions ----

    fn binop(&self) -> Option<(BinOp, u8)> {
        Some(match self.peek() {
            Tok::Ident(s) if s == "or" => (BinOp::Or, 1),
            Tok::Ident(s) if s == "and" => (BinOp::And, 2),
            Tok::Ident(s) if s == "unless" => (BinOp::Unless, 2),
            Tok::CmpEq => (BinOp::Eq, 3),
            Tok::Neq => (BinOp::Neq, 3),
            Tok::Gt => (BinOp::Gt, 3),
            Tok::Gte => (BinOp::Gte, 3),
            Tok::Lt => (BinOp::Lt, 3),
            Tok::Lte => (BinOp::Lte, 3),
            Tok::Add => (BinOp::Add, 4),
            Tok::Sub => (BinOp::Sub, 4),
            Tok::Mul => (BinOp::Mul, 5),
            Tok::Div => (BinOp::Div, 5),
            Tok::Mod => (BinOp::Mod, 5),
            Tok::Pow => (BinOp::Pow, 6),
            _ => return None,
        })
    }

    fn expr(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let lhs_pos = self.pos();
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec < min_prec {
                break;
            }
            let op_pos = self.pos();
            self.next();
            if lhs.is_log_query() {
                return Err(self.err_at(lhs_pos, "syntax error: unexpected binary operation on a log query: log queries cannot be combined with binary operators"));
            }
            let mut b = BinaryExpr {
                op,
                lhs: Expr::Literal(0.0),
                rhs: Expr::Literal(0.0),
                return_bool: false,
                matching: None,
                group: GroupSide::None,
                include: Vec::new(),
            };
            if self.is_ident("bool") {
                if !op.is_comparison() {
                    return Err(self.err_at(
                        self.pos(),
                        "bool modifier can only be used on comparison operators",
                    ));
                }
                self.next();
                b.return_bool = true;
            }
            if self.is_ident("on") || self.is_ident("ignoring") {
                let on = self.is_ident("on");
                self.next();
                b.matching = Some((on, self.label_list()?));
                if self.is_ident("group_left") || self.is_ident("group_right") {
                    b.group = if self.is_ident("group_left") {
                        GroupSide::Left
                    } else {
                        GroupSide::Right
                    };
                    self.next();
                    if *self.peek() == Tok::LParen {
                        b.include = self.label_list()?;
                    }
                    if op.is_set() {
                        return Err(self.err_at(
                            op_pos,
                            "no grouping allowed for set operations (and, or, unless)",
                        ));
                    }
                }
            }
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs_pos = self.pos();
            let rhs = self.expr(next_min)?;
            if rhs.is_log_query() {
                return Err(self.err_at(rhs_pos, "syntax error: unexpected log query in binary operation: log queries cannot be combined with binary operators"));
            }
            let lhs_scalar = matches!(lhs, Expr::Literal(_));
            let rhs_scalar = matches!(rhs, Expr::Literal(_));
            if op.is_set() && (lhs_scalar || rhs_scalar) {
                return Err(self.err_at(
                    op_pos,
                    format!(
                        "unexpected literal for right leg of logical/set binary operation ({})",
                        op_name(op)
                    ),
                ));
            }
            if op.is_comparison() && lhs_scalar && rhs_scalar && !b.return_bool {
                return Err(
                    self.err_at(op_pos, "comparisons between scalars must use BOOL modifier")
                );
            }
            b.lhs = lhs;
            b.rhs = rhs;
            lhs = Expr::Binary(Box::new(b));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().clone() {
            Tok::Sub | Tok::Add => {
                let neg = *self.peek() == Tok::Sub;
                self.next();
                match self.next() {
                    Tok::Num(n) => Ok(Expr::Literal(if neg { -n } else { n })),
                    _ => {
                        self.unread();
                        Err(self.unexpected("NUMBER"))
                    }
                }
            }
            Tok::Num(n) => {
                self.next();
                Ok(Expr::Literal(n))
            }
            Tok::LParen => {
                self.next();
                let e = self.expr(0)?;
                self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
                Ok(e)
            }
            Tok::LBrace => Ok(Expr::Log(self.log_expr(false)?.0)),
            Tok::Ident(name) => {
                if let Some(op) = RangeOp::from_name(&name) {
                    self.range_agg(op)
                } else if let Some(op) = VectorOp::from_name(&name) {
                    self.vector_agg(op)
                } else if name == "vector" {
                    self.next();
                    self.expect(Tok::LParen, "OPEN_PARENTHESIS")?;
                    let v = self.number_literal()?;
                    self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
                    Ok(Expr::Vector(v))
                } else if name == "label_replace" {
                    self.label_replace()
                } else {
                    Err(self.unexpected(""))
                }
            }
            _ => Err(self.unexpected("")),
        }
    }

    fn number_literal(&mut self) -> Result<f64, ParseError> {
        let neg = match self.peek() {
            Tok::Sub => {
                self.next();
                true
            }
            Tok::Add => {
                self.next();
                false
            }
            _ => false,
        };
        match self.peek().clone() {
            Tok::Num(n) => {
                self.next();
                Ok(if neg { -n } else { n })
            }
            _ => Err(self.unexpected("NUMBER")),
        }
    }

    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(Tok::LParen, "OPEN_PARENTHESIS")?;
        let mut out = Vec::new();
        if *self.peek() == Tok::RParen {
            self.next();
            return Ok(out);
        }
        loop {
            out.push(self.ident("IDENTIFIER")?);
            match self.next() {
                Tok::Comma => continue,
                Tok::RParen => return Ok(out),
                _ => {
                    self.unread();
                    return Err(self.unexpected("COMMA or CLOSE_PARENTHESIS"));
                }
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        if self.is_ident("by") || self.is_ident("without") {
            let without = self.is_ident("without");
            self.next();
            let labels = self.label_list()?;
            Ok(Some(Grouping { without, labels }))
        } else {
            Ok(None)
        }
    }

    fn vector_agg(&mut self, op: VectorOp) -> Result<Expr, ParseError> {
        let op_pos = self.pos();
        self.next();
        let mut grouping = self.grouping()?;
        self.expect(Tok::LParen, "OPEN_PARENTHESIS")?;
        let mut param = None;
        if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
            let ppos = self.pos();
            let k = self.number_literal()?;
            if k.fract() != 0.0 || k < 1.0 {
                return Err(self.err_at(
                    ppos,
                    format!("invalid parameter (must be a positive integer): {k}"),
                ));
            }
            param = Some(k as i64);
            self.expect(Tok::Comma, "COMMA")?;
        }
        let inner_pos = self.pos();
        let inner = self.expr(0)?;
        if inner.is_log_query() {
            return Err(self.err_at(inner_pos, "syntax error: unexpected log query in vector aggregation, expecting a metric query"));
        }
        self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
        if let Some(g) = self.grouping()? {
            if grouping.is_some() {
                return Err(self.err_at(op_pos, "syntax error: grouping given twice"));
            }
            grouping = Some(g);
        }
        if matches!(op, VectorOp::Sort | VectorOp::SortDesc) && grouping.is_some() {
            return Err(self.err_at(op_pos, "grouping not allowed for sort and sort_desc"));
        }
        Ok(Expr::VectorAgg(VectorAgg {
            op,
            param,
            grouping,
            inner: Box::new(inner),
        }))
    }

    fn label_replace(&mut self) -> Result<Expr, ParseError> {
        self.next();
        self.expect(Tok::LParen, "OPEN_PARENTHESIS")?;
        let inner = self.expr(0)?;
        let mut args = Vec::new();
        for _ in 0..4 {
            self.expect(Tok::Comma, "COMMA")?;
            args.push(self.string("STRING")?);
        }
        self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
        let (regex_s, rpos) = args[3].clone();
        let regex = regex::RegexBuilder::new(&format!("^(?s:{regex_s})$"))
            .size_limit(1 << 22)
            .build()
            .map_err(|e| {
                self.err_at(
                    rpos,
                    format!("invalid regular expression in label_replace(): {e}"),
                )
            })?;
        let dst = args[0].0.clone();
        if !is_label_name(&dst) {
            return Err(self.err_at(
                args[0].1,
                format!("invalid destination label name in label_replace(): {dst}"),
            ));
        }
        Ok(Expr::LabelReplace(Box::new(LabelReplace {
            inner,
            dst,
            replacement: args[1].0.clone(),
            src: args[2].0.clone(),
            regex,
        })))
    }

    fn range_agg(&mut self, op: RangeOp) -> Result<Expr, ParseError> {
        let op_pos = self.pos();
        self.next();
        self.expect(Tok::LParen, "OPEN_PARENTHESIS")?;
        let mut param = None;
        if matches!(self.peek(), Tok::Num(_) | Tok::Sub) {
            param = Some(self.number_literal()?);
            self.expect(Tok::Comma, "COMMA")?;
        }
        let paren = *self.peek() == Tok::LParen;
        if paren {
            self.next();
        }
        if *self.peek() != Tok::LBrace {
            return Err(self.unexpected("OPEN_BRACE"));
        }
        let (log, mut unwrap, mut range) = self.log_expr(true)?;
        if paren {
            self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
            if range.is_none()
                && let Tok::Range(d) = *self.peek()
            {
                self.next();
                range = Some(d);
            }
        }
        let Some(range_ns) = range else {
            return Err(self.unexpected(RANGE_EXPECT));
        };
        // A pipeline may also follow the range: `{a="b"}[5m] | json`.
        let mut log = log;
        if !paren && log.stages.is_empty() && unwrap.is_none() {
            let (stages, u) = self.pipeline(true)?;
            log.stages = stages;
            unwrap = u;
        }
        let mut offset_ns = 0;
        if self.is_ident("offset") {
            self.next();
            match self.next() {
                Tok::Duration(d) => offset_ns = d,
                Tok::Num(0.0) => offset_ns = 0,
                _ => {
                    self.unread();
                    return Err(self.unexpected("DURATION"));
                }
            }
        }
        self.expect(Tok::RParen, "CLOSE_PARENTHESIS")?;
        let grouping = self.grouping()?;
        // Validation as Loki's RangeAggregationExpr.validate.
        let name = op.name();
        if grouping.is_some() && matches!(op, RangeOp::Count | RangeOp::Bytes | RangeOp::BytesRate)
        {
            return Err(self.err_at(
                op_pos,
                format!("grouping not allowed for {name} aggregation"),
            ));
        }
        let unwrapped_ok = matches!(
            op,
            RangeOp::Avg
                | RangeOp::Sum
                | RangeOp::Max
                | RangeOp::Min
                | RangeOp::Stddev
                | RangeOp::Stdvar
                | RangeOp::Quantile
                | RangeOp::Rate
                | RangeOp::RateCounter
                | RangeOp::Absent
                | RangeOp::First
                | RangeOp::Last
        );
        if unwrap.is_some() && !unwrapped_ok {
            return Err(self.err_at(op_pos, format!("invalid aggregation {name} with unwrap")));
        }
        if unwrap.is_none()
            && !matches!(
                op,
                RangeOp::Count
                    | RangeOp::Rate
                    | RangeOp::Bytes
                    | RangeOp::BytesRate
                    | RangeOp::Absent
            )
        {
            return Err(self.err_at(op_pos, format!("invalid aggregation {name} without unwrap")));
        }
        if op == RangeOp::Quantile && param.is_none() {
            return Err(self.err_at(
                op_pos,
                "parameter required for operation quantile_over_time",
            ));
        }
        if op != RangeOp::Quantile && param.is_some() {
            return Err(self.err_at(
                op_pos,
                format!("parameter not supported for operation {name}"),
            ));
        }
        Ok(Expr::RangeAgg(RangeAgg {
            op,
            param,
            log,
            unwrap,
            range_ns,
            offset_ns,
            grouping,
        }))
    }

    // ---- log expressions ----

    fn selector(&mut self) -> Result<Vec<Matcher>, ParseError> {
        let open = self.pos();
        self.expect(Tok::LBrace, "OPEN_BRACE")?;
        let mut ms = Vec::new();
        if *self.peek() != Tok::RBrace {
            loop {
                ms.push(self.matcher()?);
                match self.peek() {
                    Tok::Comma => {
                        self.next();
                    }
                    Tok::RBrace => break,
                    _ => return Err(self.unexpected("COMMA or CLOSE_BRACE")),
                }
            }
        }
        self.expect(Tok::RBrace, "CLOSE_BRACE")?;
        if !ms.iter().any(|m| !m.matches_empty()) {
            return Err(self.err_at(open, "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"));
        }
        Ok(ms)
    }

    fn match_op(&mut self) -> Option<MatchOp> {
        let op = match self.peek() {
            Tok::Eq => MatchOp::Eq,
            Tok::Neq => MatchOp::Neq,
            Tok::Re => MatchOp::Re,
            Tok::Nre => MatchOp::Nre,
            _ => return None,
        };
        self.next();
        Some(op)
    }

    fn matcher(&mut self) -> Result<Matcher, ParseError> {
        let name = self.ident("IDENTIFIER")?;
        let Some(op) = self.match_op() else {
            return Err(self.unexpected("EQ, NEQ, RE or NRE"));
        };
        let (value, vpos) = self.string("STRING")?;
        Matcher::new(name, op, value).map_err(|e| self.err_at(vpos, e))
    }

    /// Parses `{selector} stages...`; in a range aggregation also the
    /// `| unwrap` stage and a range right after the pipeline.
    fn log_expr(
        &mut self,
        in_range: bool,
    ) -> Result<(LogExpr, Option<Unwrap>, Option<i64>), ParseError> {
        let matchers = self.selector()?;
        let mut range = None;
        if in_range && let Tok::Range(d) = *self.peek() {
            self.next();
            range = Some(d);
            return Ok((
                LogExpr {
                    matchers,
                    stages: Vec::new(),
                },
                None,
                range,
            ));
        }
        let (stages, unwrap) = self.pipeline(in_range)?;
        if in_range && let Tok::Range(d) = *self.peek() {
            self.next();
            range = Some(d);
        }
        Ok((LogExpr { matchers, stages }, unwrap, range))
    }

    fn pipeline(&mut self, allow_unwrap: bool) -> Result<(Vec<Stage>, Option<Unwrap>), ParseError> {
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

    fn line_filter(&mut self, op: LineFilterOp) -> Result<LineFilterStage, ParseError> {
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

    fn label_filter(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_and()?;
        while self.is_ident("or") {
            self.next();
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_primary()?;
        loop {
            if self.is_ident("and") || *self.peek() == Tok::Comma {
                self.next();
            } else if matches!(self.peek(), Tok::Ident(s) if s != "or" && s != "offset")
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
                )
            {
                // juxtaposition means `and`
            } else {
                return Ok(lhs);
            }
            let rhs = self.label_filter_primary()?;
            lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        }
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

fn op_name(op: BinOp) -> &'static str {
    match op {
        BinOp::And => "and",
        BinOp::Or => "or",
        BinOp::Unless => "unless",
        _ => "",
    }
}

pub(crate) fn is_label_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && it.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
