//! The parsed form of a query.

use std::fmt;

use regex::Regex;

use crate::lexer::AttrScope;
use crate::value::Value;

/// A parsed, validated TraceQL search query. Regexes are compiled once here.
#[derive(Clone, Debug)]
pub struct Query {
    pub(crate) pipeline: Pipeline,
    /// Attributes and intrinsics the query mentions, reported on each matched span
    /// (Tempo returns the attributes it fetched for conditions and `select()`).
    pub(crate) reported: Vec<Field>,
    /// `with(key = value, ...)` query hints, kept but not acted on.
    pub(crate) query_hints: Vec<(String, Value)>,
}

impl Query {
    /// The query hints given with `with(...)`, e.g. `most_recent = true`.
    pub fn query_hints(&self) -> &[(String, Value)] {
        &self.query_hints
    }

    /// Does the query read span events (`event.*`, `event:*`)? If not, storage may
    /// leave `SpanData::events` empty.
    pub fn reads_events(&self) -> bool {
        self.any_field(&|f| match f {
            Field::Attr(a) => a.scope == AttrScope::Event,
            Field::Intrinsic(i) => {
                matches!(i, Intrinsic::EventName | Intrinsic::EventTimeSinceStart)
            }
            _ => false,
        })
    }

    /// Does the query read span links (`link.*`, `link:*`)? If not, storage may leave
    /// `SpanData::links` empty.
    pub fn reads_links(&self) -> bool {
        self.any_field(&|f| match f {
            Field::Attr(a) => a.scope == AttrScope::Link,
            Field::Intrinsic(i) => matches!(i, Intrinsic::LinkTraceId | Intrinsic::LinkSpanId),
            _ => false,
        })
    }

    fn any_field(&self, pred: &dyn Fn(&Field) -> bool) -> bool {
        let mut found = false;
        self.pipeline.visit_fields(&mut |f| found |= pred(f));
        found
    }
}

impl Pipeline {
    /// Calls `f` on every attribute and intrinsic any stage reads.
    pub(crate) fn visit_fields<'a>(&'a self, f: &mut impl FnMut(&'a Field)) {
        fn scalar<'a>(s: &'a Scalar, f: &mut impl FnMut(&'a Field)) {
            match s {
                Scalar::Agg(_, Some(e)) => e.visit_refs(f),
                Scalar::Agg(_, None) | Scalar::Lit(_) => {}
                Scalar::Arith(_, l, r) => {
                    scalar(l, f);
                    scalar(r, f);
                }
                Scalar::Neg(e) => scalar(e, f),
            }
        }
        fn set<'a>(e: &'a SpansetExpr, f: &mut impl FnMut(&'a Field)) {
            match e {
                SpansetExpr::Filter(flt) => flt.expr.visit_refs(f),
                SpansetExpr::Op(_, l, r) => {
                    set(l, f);
                    set(r, f);
                }
                SpansetExpr::Pipeline(p) => p.visit_fields(f),
            }
        }
        for stage in &self.stages {
            match stage {
                Stage::Spanset(e) => set(e, f),
                Stage::ScalarFilter(sf) => {
                    scalar(&sf.lhs, f);
                    scalar(&sf.rhs, f);
                }
                Stage::By(e) => e.visit_refs(f),
                Stage::Coalesce => {}
                Stage::Select(fields) => fields.iter().for_each(|x| x.visit_refs(f)),
            }
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub stages: Vec<Stage>,
}

#[derive(Clone, Debug)]
pub(crate) enum Stage {
    Spanset(SpansetExpr),
    ScalarFilter(ScalarFilter),
    By(Field),
    Coalesce,
    Select(Vec<Field>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpansetOp {
    And,
    Or,
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
    NotChild,
    NotParent,
    NotDescendant,
    NotAncestor,
    NotSibling,
    UnionChild,
    UnionParent,
    UnionDescendant,
    UnionAncestor,
    UnionSibling,
}

impl SpansetOp {
    pub(crate) fn is_structural(self) -> bool {
        !matches!(self, SpansetOp::And | SpansetOp::Or)
    }

    pub(crate) fn is_negated(self) -> bool {
        matches!(
            self,
            SpansetOp::NotChild
                | SpansetOp::NotParent
                | SpansetOp::NotDescendant
                | SpansetOp::NotAncestor
                | SpansetOp::NotSibling
        )
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Filter {
    pub expr: Field,
    /// The expression reads `event.*`/`event:*`: a span matches when some event does.
    pub uses_events: bool,
    /// The expression reads `link.*`/`link:*`: a span matches when some link does.
    pub uses_links: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum SpansetExpr {
    Filter(Filter),
    Op(SpansetOp, Box<SpansetExpr>, Box<SpansetExpr>),
    /// A parenthesised pipeline, e.g. `({ a } | count() > 1)`.
    Pipeline(Box<Pipeline>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Clone, Debug)]
pub(crate) struct ScalarFilter {
    pub op: CmpOp,
    pub lhs: Scalar,
    pub rhs: Scalar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggOp {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

#[derive(Clone, Debug)]
pub(crate) enum Scalar {
    Agg(AggOp, Option<Field>),
    Lit(Value),
    Arith(BinOp, Box<Scalar>, Box<Scalar>),
    Neg(Box<Scalar>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    RootName,
    RootServiceName,
    TraceDuration,
    TraceId,
    SpanId,
    ParentId,
    ChildCount,
    EventName,
    EventTimeSinceStart,
    LinkTraceId,
    LinkSpanId,
    InstrumentationName,
    InstrumentationVersion,
}

impl Intrinsic {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::Duration => "duration",
            Intrinsic::RootName => "rootName",
            Intrinsic::RootServiceName => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::ChildCount => "span:childCount",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttrRef {
    pub scope: AttrScope,
    pub parent: bool,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    And,
    Or,
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Re,
    Nre,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl BinOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Eq => "=",
            BinOp::Neq => "!=",
            BinOp::Lt => "<",
            BinOp::Lte => "<=",
            BinOp::Gt => ">",
            BinOp::Gte => ">=",
            BinOp::Re => "=~",
            BinOp::Nre => "!~",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
        }
    }

    pub(crate) fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Neq | BinOp::Lt | BinOp::Lte | BinOp::Gt | BinOp::Gte
        )
    }

    pub(crate) fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow
        )
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Field {
    Lit(Value),
    Attr(AttrRef),
    Intrinsic(Intrinsic),
    /// `regex` is set for `=~`/`!~`, compiled fully anchored.
    Binary {
        op: BinOp,
        lhs: Box<Field>,
        rhs: Box<Field>,
        regex: Option<Regex>,
    },
    Not(Box<Field>),
    Neg(Box<Field>),
    /// `x != nil` (true) or `x = nil` (false).
    Exists(Box<Field>, bool),
}

impl Field {
    /// Calls `f` on every attribute and intrinsic the expression reads.
    pub(crate) fn visit_refs<'a>(&'a self, f: &mut impl FnMut(&'a Field)) {
        match self {
            Field::Lit(_) => {}
            Field::Attr(_) | Field::Intrinsic(_) => f(self),
            Field::Binary { lhs, rhs, .. } => {
                lhs.visit_refs(f);
                rhs.visit_refs(f);
            }
            Field::Not(e) | Field::Neg(e) | Field::Exists(e, _) => e.visit_refs(f),
        }
    }

    /// Does the expression read anything from the span (as opposed to literals only)?
    pub(crate) fn references_span(&self) -> bool {
        let mut any = false;
        self.visit_refs(&mut |_| any = true);
        any
    }
}

fn write_attr_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let plain = !name.is_empty()
        && name.chars().all(|c| {
            !c.is_whitespace()
                && !matches!(
                    c,
                    '{' | '}'
                        | '('
                        | ')'
                        | '='
                        | '~'
                        | '!'
                        | '<'
                        | '>'
                        | '&'
                        | '|'
                        | '^'
                        | ','
                        | '"'
                )
        });
    if plain {
        f.write_str(name)
    } else {
        write!(f, "\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

impl fmt::Display for AttrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parent {
            f.write_str("parent.")?;
        }
        match self.scope {
            AttrScope::Any => {
                if !self.parent {
                    f.write_str(".")?;
                }
            }
            AttrScope::Span => f.write_str("span.")?,
            AttrScope::Resource => f.write_str("resource.")?,
            AttrScope::Event => f.write_str("event.")?,
            AttrScope::Link => f.write_str("link.")?,
            AttrScope::Instrumentation => f.write_str("instrumentation.")?,
        }
        write_attr_name(f, &self.name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Lit(v) => write!(f, "{v}"),
            Field::Attr(a) => write!(f, "{a}"),
            Field::Intrinsic(i) => f.write_str(i.as_str()),
            Field::Binary { op, lhs, rhs, .. } => {
                write_operand(f, lhs)?;
                write!(f, " {} ", op.as_str())?;
                write_operand(f, rhs)
            }
            Field::Not(e) => {
                f.write_str("!")?;
                write_operand(f, e)
            }
            Field::Neg(e) => {
                f.write_str("-")?;
                write_operand(f, e)
            }
            Field::Exists(e, exists) => {
                write_operand(f, e)?;
                f.write_str(if *exists { " != nil" } else { " = nil" })
            }
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, e: &Field) -> fmt::Result {
    match e {
        Field::Binary { .. } | Field::Exists(..) | Field::Not(_) | Field::Neg(_) => {
            write!(f, "({e})")
        }
        _ => write!(f, "{e}"),
    }
}

impl fmt::Display for AggOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AggOp::Count => "count",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Sum => "sum",
        })
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Agg(op, None) => write!(f, "{op}()"),
            Scalar::Agg(op, Some(e)) => write!(f, "{op}({e})"),
            Scalar::Lit(v) => write!(f, "{v}"),
            Scalar::Arith(op, l, r) => write!(f, "({l} {} {r})", op.as_str()),
            Scalar::Neg(e) => write!(f, "-{e}"),
        }
    }
}
