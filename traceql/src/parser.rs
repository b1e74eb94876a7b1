//! Recursive-descent parser with Tempo's operator precedence, plus Tempo's static type
//! checks (`{ name = 1 }` is an error; attributes have no static type).
//!
//! Spanset level, lowest first: `|`; `&&` `||` (same level, left to right); structural
//! operators (`>>` `>` `<<` `<` `~` and the `!`/`&` forms). Inside `{ }`: `&&` `||` (same
//! level, as in Tempo's grammar); comparisons; `+ -`; `* / %`; `^` (right associative).

use regex::{Regex, RegexBuilder};

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{AttrScope, Tok, Token, tokenize};
use crate::value::{SpanKind, StatusCode, Value};
use types::{Ty, scoped_intrinsic};

mod types;

/// Regexes in queries are bounded so one query cannot take a lot of memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Parses and validates a TraceQL search query.
pub fn parse(q: &str) -> Result<Query, ParseError> {
    let tokens = tokenize(q)?;
    let mut p = Parser {
        src: q,
        toks: tokens,
        pos: 0,
        depth: 0,
        operators: 0,
    };
    let pipeline = p.pipeline()?;
    let query_hints = p.with_hints()?;
    p.expect_eof()?;
    let mut reported: Vec<Field> = Vec::new();
    collect_reported(&pipeline, &mut reported);
    Ok(Query {
        pipeline,
        reported,
        query_hints,
    })
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    /// Current nesting of recursive rules, bounded by `MAX_NESTING`.
    depth: usize,
    /// Operators seen so far, bounded by `MAX_OPERATORS` (evaluation recurses on them).
    operators: usize,
}

/// Bounds that keep parsing and evaluation recursion far from the stack limit.
const MAX_NESTING: usize = 64;
const MAX_OPERATORS: usize = 512;

fn set_op(t: &Tok) -> Option<(SpansetOp, u8)> {
    Some(match t {
        Tok::And => (SpansetOp::And, 1),
        Tok::Or => (SpansetOp::Or, 1),
        Tok::Gt => (SpansetOp::Child, 2),
        Tok::Lt => (SpansetOp::Parent, 2),
        Tok::Desc => (SpansetOp::Descendant, 2),
        Tok::Ance => (SpansetOp::Ancestor, 2),
        Tok::Sibl => (SpansetOp::Sibling, 2),
        Tok::NotChild => (SpansetOp::NotChild, 2),
        Tok::NotParent => (SpansetOp::NotParent, 2),
        Tok::NotDesc => (SpansetOp::NotDescendant, 2),
        Tok::NotAnce => (SpansetOp::NotAncestor, 2),
        Tok::Nre => (SpansetOp::NotSibling, 2),
        Tok::UnionChild => (SpansetOp::UnionChild, 2),
        Tok::UnionParent => (SpansetOp::UnionParent, 2),
        Tok::UnionDesc => (SpansetOp::UnionDescendant, 2),
        Tok::UnionAnce => (SpansetOp::UnionAncestor, 2),
        Tok::UnionSibl => (SpansetOp::UnionSibling, 2),
        _ => return None,
    })
}

/// Binary operators inside `{ }` with their precedence (higher binds tighter).
fn field_op(t: &Tok) -> Option<(BinOp, u8)> {
    Some(match t {
        Tok::And => (BinOp::And, 1),
        Tok::Or => (BinOp::Or, 1),
        Tok::Eq => (BinOp::Eq, 2),
        Tok::Neq => (BinOp::Neq, 2),
        Tok::Lt => (BinOp::Lt, 2),
        Tok::Lte => (BinOp::Lte, 2),
        Tok::Gt => (BinOp::Gt, 2),
        Tok::Gte => (BinOp::Gte, 2),
        Tok::Re => (BinOp::Re, 2),
        Tok::Nre => (BinOp::Nre, 2),
        Tok::Add => (BinOp::Add, 3),
        Tok::Sub => (BinOp::Sub, 3),
        Tok::Mul => (BinOp::Mul, 5),
        Tok::Div => (BinOp::Div, 5),
        Tok::Mod => (BinOp::Mod, 5),
        Tok::Pow => (BinOp::Pow, 6),
        _ => return None,
    })
}

/// Precedence at which the operand of unary `!` and `-` is parsed (Tempo: above `+`,
/// below `*`).
const UNARY_OPERAND_PREC: u8 = 4;

const METRICS_FUNCTIONS: &[&str] = &[
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
];

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    fn offset(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].offset
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn err(&self, offset: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, offset, msg)
    }

    fn unexpected(&self, expecting: &str) -> ParseError {
        self.err(
            self.offset(),
            format!(
                "unexpected {}, expecting {expecting}",
                self.peek().describe()
            ),
        )
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), ParseError> {
        if *self.peek() == t {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// Runs one level of recursive descent, refusing more than `MAX_NESTING` levels.
    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth >= MAX_NESTING {
            return Err(self.err(
                self.offset(),
                format!("query is nested too deeply (more than {MAX_NESTING} levels)"),
            ));
        }
        self.depth += 1;
        let r = parse(self);
        self.depth -= 1;
        r
    }

    fn count_operator(&mut self, at: usize) -> Result<(), ParseError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(self.err(
                at,
                format!("query has too many operators (more than {MAX_OPERATORS})"),
            ));
        }
        Ok(())
    }

    fn expect_eof(&self) -> Result<(), ParseError> {
        match self.peek() {
            Tok::Eof => Ok(()),
            Tok::Pipe => Err(self.unexpected("end of query")),
            _ => Err(self.unexpected("\"|\" or end of query")),
        }
    }

    fn is_ident(&self, name: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == name)
    }

    // ---------------------------------------------------------------- pipelines

    fn pipeline(&mut self) -> Result<Pipeline, ParseError> {
        self.nested(|p| p.pipeline_inner())
    }

    fn pipeline_inner(&mut self) -> Result<Pipeline, ParseError> {
        if self.is_ident("coalesce") {
            return Err(self.err(
                self.offset(),
                "coalesce() must follow another pipeline stage, as in \"{ } | by(name) | coalesce()\"",
            ));
        }
        let mut stages = vec![self.stage()?];
        while *self.peek() == Tok::Pipe {
            self.bump();
            stages.push(self.stage()?);
        }
        Ok(Pipeline { stages })
    }

    fn with_hints(&mut self) -> Result<Vec<(String, Value)>, ParseError> {
        if !self.is_ident("with") || *self.peek_at(1) != Tok::LParen {
            return Ok(Vec::new());
        }
        self.bump();
        self.bump();
        let mut hints = Vec::new();
        loop {
            let name = match self.bump() {
                Tok::Ident(n) => n,
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("a hint name"));
                }
            };
            self.expect(Tok::Eq, "\"=\"")?;
            let at = self.offset();
            let value = match self.field_primary()? {
                Field::Lit(v) => v,
                _ => return Err(self.err(at, "hint values must be literals")),
            };
            hints.push((name, value));
            match self.bump() {
                Tok::Comma => continue,
                Tok::RParen => break,
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("\",\" or \")\""));
                }
            }
        }
        Ok(hints)
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        let at = self.offset();
        match self.peek().clone() {
            Tok::LBrace => Ok(Stage::Spanset(self.set_expr(0)?)),
            Tok::LParen => {
                // `(` starts either a spanset expression or a scalar expression
                let mut n = 0;
                while *self.peek_at(n) == Tok::LParen {
                    n += 1;
                }
                if *self.peek_at(n) == Tok::LBrace {
                    Ok(Stage::Spanset(self.set_expr(0)?))
                } else {
                    Ok(Stage::ScalarFilter(self.scalar_filter()?))
                }
            }
            Tok::Ident(name) => match name.as_str() {
                "by" => {
                    self.bump();
                    self.expect(Tok::LParen, "\"(\"")?;
                    let at = self.offset();
                    let e = self.field_expr(0)?;
                    if !e.references_span() {
                        return Err(self.err(
                            at,
                            format!("grouping field expressions must reference the span: {e}"),
                        ));
                    }
                    self.expect(Tok::RParen, "\")\"")?;
                    Ok(Stage::By(e))
                }
                "coalesce" => {
                    self.bump();
                    self.expect(Tok::LParen, "\"(\"")?;
                    self.expect(Tok::RParen, "\")\"")?;
                    Ok(Stage::Coalesce)
                }
                "select" => {
                    self.bump();
                    self.expect(Tok::LParen, "\"(\"")?;
                    let mut fields = Vec::new();
                    loop {
                        let at = self.offset();
                        let f = self.field_primary()?;
                        if !matches!(f, Field::Attr(_) | Field::Intrinsic(_)) {
                            return Err(self.err(at, "select() takes attributes and intrinsics"));
                        }
                        fields.push(f);
                        match self.bump() {
                            Tok::Comma => continue,
                            Tok::RParen => break,
                            _ => {
                                self.pos -= 1;
                                return Err(self.unexpected("\",\" or \")\""));
                            }
                        }
                    }
                    Ok(Stage::Select(fields))
                }
                "count" | "avg" | "min" | "max" | "sum" => {
                    Ok(Stage::ScalarFilter(self.scalar_filter()?))
                }
                n if METRICS_FUNCTIONS.contains(&n) => Err(self.err(
                    at,
                    format!("metrics function {n}() is not supported in search queries"),
                )),
                _ => Err(self.unexpected(
                    "a spanset filter \"{\", \"(\", an aggregate, by(), select() or coalesce()",
                )),
            },
            Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Sub => {
                Ok(Stage::ScalarFilter(self.scalar_filter()?))
            }
            _ => Err(self.unexpected(
                "a spanset filter \"{\", \"(\", an aggregate, by(), select() or coalesce()",
            )),
        }
    }

    // ---------------------------------------------------------------- spanset expressions

    fn set_expr(&mut self, min_prec: u8) -> Result<SpansetExpr, ParseError> {
        self.nested(|p| p.set_expr_inner(min_prec))
    }

    fn set_expr_inner(&mut self, min_prec: u8) -> Result<SpansetExpr, ParseError> {
        let mut lhs = self.set_operand()?;
        while let Some((op, prec)) = set_op(self.peek()) {
            if prec < min_prec {
                break;
            }
            let at = self.offset();
            self.bump();
            let rhs = self.set_expr(prec + 1)?;
            if op.is_structural() {
                for side in [&lhs, &rhs] {
                    if may_yield_many(side) {
                        return Err(self.err(
                            at,
                            "spanset operators are not supported for multiple spansets per \
                             trace. consider using coalesce()",
                        ));
                    }
                }
            }
            self.count_operator(at)?;
            lhs = SpansetExpr::Op(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn set_operand(&mut self) -> Result<SpansetExpr, ParseError> {
        match self.peek() {
            Tok::LBrace => {
                self.bump();
                if *self.peek() == Tok::RBrace {
                    self.bump();
                    return Ok(SpansetExpr::Filter(Filter {
                        expr: Field::Lit(Value::Bool(true)),
                        uses_events: false,
                        uses_links: false,
                    }));
                }
                let at = self.offset();
                let expr = self.field_expr(0)?;
                let ty = self.type_of(&expr, at)?;
                if !matches!(ty, Ty::Bool | Ty::Unknown) {
                    return Err(self.err(
                        at,
                        format!("span filter field expressions must resolve to a boolean: {expr}"),
                    ));
                }
                self.expect(Tok::RBrace, "\"}\" or an operator")?;
                let (mut uses_events, mut uses_links) = (false, false);
                expr.visit_refs(&mut |f| match f {
                    Field::Attr(a) if a.scope == AttrScope::Event => uses_events = true,
                    Field::Attr(a) if a.scope == AttrScope::Link => uses_links = true,
                    Field::Intrinsic(Intrinsic::EventName | Intrinsic::EventTimeSinceStart) => {
                        uses_events = true
                    }
                    Field::Intrinsic(Intrinsic::LinkSpanId | Intrinsic::LinkTraceId) => {
                        uses_links = true
                    }
                    _ => {}
                });
                Ok(SpansetExpr::Filter(Filter {
                    expr,
                    uses_events,
                    uses_links,
                }))
            }
            Tok::LParen => {
                self.bump();
                let p = self.pipeline()?;
                self.expect(Tok::RParen, "\")\" or \"|\"")?;
                let mut stages = p.stages;
                if stages.len() == 1
                    && matches!(stages[0], Stage::Spanset(_))
                    && let Some(Stage::Spanset(e)) = stages.pop()
                {
                    return Ok(e);
                }
                Ok(SpansetExpr::Pipeline(Box::new(Pipeline { stages })))
            }
            _ => Err(self.unexpected("\"{\" or \"(\"")),
        }
    }

    // ---------------------------------------------------------------- scalar filters

    fn scalar_filter(&mut self) -> Result<ScalarFilter, ParseError> {
        let at = self.offset();
        let lhs = self.scalar(0)?;
        let op = match self.peek() {
            Tok::Eq => CmpOp::Eq,
            Tok::Neq => CmpOp::Neq,
            Tok::Lt => CmpOp::Lt,
            Tok::Lte => CmpOp::Lte,
            Tok::Gt => CmpOp::Gt,
            Tok::Gte => CmpOp::Gte,
            _ => {
                return Err(self.unexpected(
                    "a comparison (=, !=, <, <=, >, >=) after the aggregate; \
                     aggregates are only supported in filters such as count() > 1",
                ));
            }
        };
        self.bump();
        let rhs = self.scalar(0)?;
        if !has_aggregate(&lhs) && !has_aggregate(&rhs) {
            return Err(self.err(
                at,
                "scalar filters must contain an aggregate such as count() or avg(duration)",
            ));
        }
        Ok(ScalarFilter { op, lhs, rhs })
    }

    fn scalar(&mut self, min_prec: u8) -> Result<Scalar, ParseError> {
        self.nested(|p| p.scalar_inner(min_prec))
    }

    fn scalar_inner(&mut self, min_prec: u8) -> Result<Scalar, ParseError> {
        let mut lhs = self.scalar_unary()?;
        loop {
            let (op, prec) = match self.peek() {
                Tok::Add => (BinOp::Add, 1),
                Tok::Sub => (BinOp::Sub, 1),
                Tok::Mul => (BinOp::Mul, 2),
                Tok::Div => (BinOp::Div, 2),
                Tok::Mod => (BinOp::Mod, 2),
                Tok::Pow => (BinOp::Pow, 3),
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            let op_at = self.offset();
            self.bump();
            self.count_operator(op_at)?;
            let next = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.scalar(next)?;
            lhs = Scalar::Arith(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn scalar_unary(&mut self) -> Result<Scalar, ParseError> {
        let at = self.offset();
        match self.bump() {
            Tok::Sub => Ok(Scalar::Neg(Box::new(self.scalar(3)?))),
            Tok::Int(i) => Ok(Scalar::Lit(Value::Int(i))),
            Tok::Float(f) => Ok(Scalar::Lit(Value::Float(f))),
            Tok::Duration(d) => Ok(Scalar::Lit(Value::Duration(d))),
            Tok::LParen => {
                let s = self.scalar(0)?;
                self.expect(Tok::RParen, "\")\"")?;
                Ok(s)
            }
            Tok::Ident(name) => {
                let op = match name.as_str() {
                    "count" => AggOp::Count,
                    "avg" => AggOp::Avg,
                    "min" => AggOp::Min,
                    "max" => AggOp::Max,
                    "sum" => AggOp::Sum,
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("an aggregate or a number"));
                    }
                };
                self.expect(Tok::LParen, "\"(\"")?;
                if op == AggOp::Count {
                    self.expect(Tok::RParen, "\")\": count() takes no argument")?;
                    return Ok(Scalar::Agg(op, None));
                }
                let eat = self.offset();
                let e = self.field_expr(0)?;
                let ty = self.type_of(&e, eat)?;
                if !(ty.numeric() || ty == Ty::Unknown) {
                    return Err(self.err(
                        eat,
                        format!(
                            "aggregate field expressions must resolve to a number type: {op}({e})"
                        ),
                    ));
                }
                if !e.references_span() {
                    return Err(self.err(
                        eat,
                        format!("aggregate field expressions must reference the span: {op}({e})"),
                    ));
                }
                self.expect(Tok::RParen, "\")\"")?;
                Ok(Scalar::Agg(op, Some(e)))
            }
            _ => {
                self.pos -= 1;
                let _ = at;
                Err(self.unexpected("an aggregate or a number"))
            }
        }
    }

    // ---------------------------------------------------------------- field expressions

    fn field_expr(&mut self, min_prec: u8) -> Result<Field, ParseError> {
        self.nested(|p| p.field_expr_inner(min_prec))
    }

    fn field_expr_inner(&mut self, min_prec: u8) -> Result<Field, ParseError> {
        let mut lhs = self.field_unary()?;
        while let Some((op, prec)) = field_op(self.peek()) {
            if prec < min_prec {
                break;
            }
            let op_at = self.offset();
            self.bump();
            let next = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs_at = self.offset();
            let rhs = self.field_expr(next)?;
            self.count_operator(op_at)?;
            lhs = self.binary(op, lhs, rhs, op_at, rhs_at)?;
        }
        Ok(lhs)
    }

    /// Static type of `e`; an operand-type error is reported at `at`.
    fn type_of(&self, e: &Field, at: usize) -> Result<Ty, ParseError> {
        types::type_of(e).map_err(|m| self.err(at, m))
    }

    fn binary(
        &self,
        op: BinOp,
        lhs: Field,
        rhs: Field,
        op_at: usize,
        rhs_at: usize,
    ) -> Result<Field, ParseError> {
        let l_nil = matches!(lhs, Field::Lit(Value::Nil));
        let r_nil = matches!(rhs, Field::Lit(Value::Nil));
        if l_nil || r_nil {
            return match op {
                BinOp::Eq | BinOp::Neq if l_nil && r_nil => Ok(Field::Lit(Value::Bool(false))),
                BinOp::Eq | BinOp::Neq => {
                    let other = if l_nil { rhs } else { lhs };
                    if !matches!(other, Field::Attr(_) | Field::Intrinsic(_)) {
                        return Err(self.err(
                            op_at,
                            "nil can only be compared with an attribute or an intrinsic",
                        ));
                    }
                    if op == BinOp::Eq
                        && let Field::Attr(a) = &other
                        && a.scope == AttrScope::Resource
                        && !a.parent
                        && a.name == "service.name"
                    {
                        return Err(self.err(
                            op_at,
                            "resource.service.name = nil is not valid because \
                             resource.service.name cannot be nil",
                        ));
                    }
                    if op == BinOp::Eq
                        && let Field::Intrinsic(i) = &other
                        && !matches!(
                            i,
                            Intrinsic::ParentId
                                | Intrinsic::RootName
                                | Intrinsic::RootServiceName
                                | Intrinsic::EventName
                                | Intrinsic::EventTimeSinceStart
                                | Intrinsic::LinkTraceId
                                | Intrinsic::LinkSpanId
                        )
                    {
                        return Err(self.err(
                            op_at,
                            format!("{other} = nil is not valid because intrinsics cannot be nil"),
                        ));
                    }
                    Ok(Field::Exists(Box::new(other), op == BinOp::Neq))
                }
                _ => Err(self.err(
                    op_at,
                    format!("nil can only be compared with = or !=, not {}", op.as_str()),
                )),
            };
        }
        let regex = if matches!(op, BinOp::Re | BinOp::Nre) {
            let Field::Lit(Value::Str(pattern)) = &rhs else {
                return Err(self.err(
                    rhs_at,
                    format!("the right side of {} must be a string literal", op.as_str()),
                ));
            };
            Some(compile_regex(pattern).map_err(|e| self.err(rhs_at, e))?)
        } else {
            None
        };
        let e = Field::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            regex,
        };
        // operands are already checked: an error here is about this operator
        self.type_of(&e, op_at)?;
        Ok(e)
    }

    fn field_unary(&mut self) -> Result<Field, ParseError> {
        match self.peek() {
            Tok::Not => {
                let at = self.offset();
                self.bump();
                let e = self.field_expr(UNARY_OPERAND_PREC)?;
                let ty = self.type_of(&e, at)?;
                if !matches!(ty, Ty::Bool | Ty::Unknown) {
                    return Err(self.err(at, format!("illegal operation for the given type: !{e}")));
                }
                Ok(Field::Not(Box::new(e)))
            }
            Tok::Sub => {
                let at = self.offset();
                self.bump();
                let e = self.field_expr(UNARY_OPERAND_PREC)?;
                match e {
                    Field::Lit(Value::Int(i)) => Ok(Field::Lit(Value::Int(i.wrapping_neg()))),
                    Field::Lit(Value::Float(f)) => Ok(Field::Lit(Value::Float(-f))),
                    Field::Lit(Value::Duration(d)) => Ok(Field::Lit(Value::Duration(-d))),
                    e => {
                        let ty = self.type_of(&e, at)?;
                        if !(ty.numeric() || ty == Ty::Unknown) {
                            return Err(
                                self.err(at, format!("illegal operation for the given type: -{e}"))
                            );
                        }
                        Ok(Field::Neg(Box::new(e)))
                    }
                }
            }
            _ => self.field_primary(),
        }
    }

    fn field_primary(&mut self) -> Result<Field, ParseError> {
        let at = self.offset();
        match self.bump() {
            Tok::LParen => {
                let e = self.field_expr(0)?;
                self.expect(Tok::RParen, "\")\" or an operator")?;
                Ok(e)
            }
            Tok::Str(s) => Ok(Field::Lit(Value::Str(s))),
            Tok::Int(i) => Ok(Field::Lit(Value::Int(i))),
            Tok::Float(f) => Ok(Field::Lit(Value::Float(f))),
            Tok::Duration(d) => Ok(Field::Lit(Value::Duration(d))),
            Tok::Attr {
                scope: AttrScope::Instrumentation,
                ..
            } => Err(self.err(
                at,
                "instrumentation scope attributes are not supported \
                 (instrumentation:name and instrumentation:version are)",
            )),
            Tok::Attr {
                scope,
                parent,
                name,
            } => Ok(Field::Attr(AttrRef {
                scope,
                parent,
                name,
            })),
            Tok::Scoped(scope, name) => scoped_intrinsic(&scope, &name)
                .map(Field::Intrinsic)
                .ok_or_else(|| self.err(at, format!("unknown intrinsic \"{scope}:{name}\""))),
            Tok::Ident(word) => {
                let v = match word.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "nil" => Value::Nil,
                    "ok" => Value::Status(StatusCode::Ok),
                    "error" => Value::Status(StatusCode::Error),
                    "unset" => Value::Status(StatusCode::Unset),
                    "unspecified" => Value::Kind(SpanKind::Unspecified),
                    "internal" => Value::Kind(SpanKind::Internal),
                    "server" => Value::Kind(SpanKind::Server),
                    "client" => Value::Kind(SpanKind::Client),
                    "producer" => Value::Kind(SpanKind::Producer),
                    "consumer" => Value::Kind(SpanKind::Consumer),
                    "minInt" => Value::Int(i64::MIN),
                    "maxInt" => Value::Int(i64::MAX),
                    other => {
                        let i = match other {
                            "name" => Intrinsic::Name,
                            "status" => Intrinsic::Status,
                            "statusMessage" => Intrinsic::StatusMessage,
                            "kind" => Intrinsic::Kind,
                            "duration" => Intrinsic::Duration,
                            "rootName" => Intrinsic::RootName,
                            "rootServiceName" => Intrinsic::RootServiceName,
                            "traceDuration" => Intrinsic::TraceDuration,
                            "parent" | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent" => {
                                return Err(
                                    self.err(at, format!("intrinsic {other} is not supported"))
                                );
                            }
                            _ => {
                                return Err(self.err(at, format!("unknown identifier: {other}")));
                            }
                        };
                        return Ok(Field::Intrinsic(i));
                    }
                };
                Ok(Field::Lit(v))
            }
            t => {
                self.pos -= 1;
                let _ = t;
                Err(self.unexpected("a value, an attribute or an intrinsic"))
            }
        }
    }
}

/// Compiles a TraceQL regex: fully anchored, as Tempo (Prometheus' matcher) does.
fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

fn has_aggregate(s: &Scalar) -> bool {
    match s {
        Scalar::Agg(..) => true,
        Scalar::Lit(_) => false,
        Scalar::Arith(_, l, r) => has_aggregate(l) || has_aggregate(r),
        Scalar::Neg(e) => has_aggregate(e),
    }
}

/// Can this operand of a structural operator produce more than one spanset (a `by()`
/// not undone by `coalesce()`)?
fn may_yield_many(e: &SpansetExpr) -> bool {
    match e {
        SpansetExpr::Filter(_) => false,
        SpansetExpr::Op(..) => false,
        SpansetExpr::Pipeline(p) => {
            let mut many = false;
            for s in &p.stages {
                match s {
                    Stage::By(_) => many = true,
                    Stage::Coalesce => many = false,
                    _ => {}
                }
            }
            many
        }
    }
}

/// The attributes and intrinsics reported on matched spans: everything the query reads,
/// except span name and duration (reported separately), trace-level intrinsics, and
/// fields of events, links and parents.
fn collect_reported(p: &Pipeline, out: &mut Vec<Field>) {
    p.visit_fields(&mut |f| {
        let keep = match f {
            Field::Attr(a) => !a.parent && !matches!(a.scope, AttrScope::Event | AttrScope::Link),
            Field::Intrinsic(i) => matches!(
                i,
                Intrinsic::Status
                    | Intrinsic::StatusMessage
                    | Intrinsic::Kind
                    | Intrinsic::ParentId
                    | Intrinsic::ChildCount
                    | Intrinsic::InstrumentationName
                    | Intrinsic::InstrumentationVersion
            ),
            _ => false,
        };
        let dup = out.iter().any(|o| match (o, f) {
            (Field::Attr(a), Field::Attr(b)) => a == b,
            (Field::Intrinsic(a), Field::Intrinsic(b)) => a == b,
            _ => false,
        });
        if keep && !dup {
            out.push(f.clone());
        }
    });
}

#[cfg(test)]
mod tests;
