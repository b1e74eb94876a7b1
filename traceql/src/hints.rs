//! Conditions a query implies about every trace it can match, so that storage can skip
//! traces (or files) before evaluating the query on them.

use crate::ast::*;
use crate::lexer::AttrScope;
use crate::value::{StatusCode, Value};

/// What a trace must contain to possibly match a query. Every condition must be met by
/// at least one span of the trace (trace-level fields such as `RootServiceName` are the
/// same on every span). The list may be empty: hints are conservative, never exact, and
/// the query must still be evaluated on the traces that pass them.
///
/// Comparisons follow TraceQL: numbers compare across int/float/duration, and a condition
/// on an array attribute holds when it holds for any element.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hints {
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub field: HintField,
    pub predicate: Predicate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HintField {
    /// `resource.service.name` (also `SpanData::service_name`).
    ServiceName,
    SpanName,
    Status,
    StatusMessage,
    Kind,
    /// Span duration (`Value::Duration`).
    Duration,
    SpanAttribute(String),
    ResourceAttribute(String),
    /// Unscoped `.name`: a span attribute, or a resource attribute when the span has none.
    Attribute(String),
    RootServiceName,
    RootName,
    TraceDuration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    Eq(Value),
    /// Equal to one of the values.
    In(Vec<Value>),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    /// Fully anchored regex (the pattern as written in the query; match it as
    /// `^(?:pattern)$`).
    Regex(String),
    /// The attribute is present.
    Exists,
}

impl Hints {
    /// Service names one of which some span must have, if the query says so.
    pub fn service_names(&self) -> Option<Vec<&str>> {
        self.strings_for(&HintField::ServiceName)
    }

    /// Span names one of which some span must have, if the query says so.
    pub fn span_names(&self) -> Option<Vec<&str>> {
        self.strings_for(&HintField::SpanName)
    }

    /// A lower bound (exclusive for `>`, inclusive for `>=`, reported as inclusive
    /// nanoseconds) on the duration of some span.
    pub fn min_span_duration_ns(&self) -> Option<i64> {
        self.conditions
            .iter()
            .filter(|c| c.field == HintField::Duration)
            .filter_map(|c| match &c.predicate {
                Predicate::Gt(v) => duration_ns(v).map(|d| d.saturating_add(1)),
                Predicate::Gte(v) => duration_ns(v),
                Predicate::Eq(v) => duration_ns(v),
                _ => None,
            })
            .max()
    }

    /// Does some span have to have status error?
    pub fn requires_error(&self) -> bool {
        self.conditions.iter().any(|c| {
            c.field == HintField::Status
                && c.predicate == Predicate::Eq(Value::Status(StatusCode::Error))
        })
    }

    fn strings_for(&self, field: &HintField) -> Option<Vec<&str>> {
        self.conditions
            .iter()
            .filter(|c| c.field == *field)
            .find_map(|c| match &c.predicate {
                Predicate::Eq(Value::Str(s)) => Some(vec![s.as_str()]),
                Predicate::In(vs) => vs
                    .iter()
                    .map(|v| match v {
                        Value::Str(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            })
    }
}

fn duration_ns(v: &Value) -> Option<i64> {
    match v {
        Value::Duration(d) | Value::Int(d) => Some(*d),
        Value::Float(f) => Some(f.ceil() as i64),
        _ => None,
    }
}

impl Query {
    /// Conditions every trace this query matches must satisfy (see [`Hints`]).
    pub fn hints(&self) -> Hints {
        Hints {
            conditions: pipeline(&self.pipeline),
        }
    }

    /// Whether every condition of [`Query::hints`] must hold on one and the same span
    /// of a matching trace: the query is a pipeline of plain spanset filters and stages
    /// that only narrow, group, select or aggregate the spans those filters let through.
    /// Storage may then look only at spans that could meet them all (e.g. only those of
    /// the service an equality condition names) when it looks for candidate traces.
    pub fn hints_hold_on_one_span(&self) -> bool {
        self.pipeline.stages.iter().all(|s| match s {
            Stage::Spanset(e) => matches!(e, SpansetExpr::Filter(_)),
            Stage::ScalarFilter(_) | Stage::By(_) | Stage::Coalesce | Stage::Select(_) => true,
        })
    }
}

fn pipeline(p: &Pipeline) -> Vec<Condition> {
    let mut out = Vec::new();
    for s in &p.stages {
        if let Stage::Spanset(e) = s {
            for c in set(e) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    out
}

fn set(e: &SpansetExpr) -> Vec<Condition> {
    match e {
        SpansetExpr::Filter(f) => field(&f.expr),
        SpansetExpr::Pipeline(p) => pipeline(p),
        SpansetExpr::Op(op, l, r) => match op {
            SpansetOp::Or => either(set(l), set(r)),
            // the result only holds spans of the right side, and the left may be empty
            o if o.is_negated() => set(r),
            // `&&`, the structural operators and their union forms need both sides
            _ => {
                let mut c = set(l);
                for x in set(r) {
                    if !c.contains(&x) {
                        c.push(x);
                    }
                }
                c
            }
        },
    }
}

/// Conditions implied by `a || b`: those common to both, and equality on the same field
/// merged into one `In`.
fn either(a: Vec<Condition>, b: Vec<Condition>) -> Vec<Condition> {
    let mut out = Vec::new();
    for x in &a {
        for y in &b {
            if x == y {
                out.push(x.clone());
            } else if x.field == y.field
                && let (Some(mut xs), Some(ys)) = (eq_values(&x.predicate), eq_values(&y.predicate))
            {
                for v in ys {
                    if !xs.contains(&v) {
                        xs.push(v);
                    }
                }
                out.push(Condition {
                    field: x.field.clone(),
                    predicate: Predicate::In(xs),
                });
            }
        }
    }
    out
}

fn eq_values(p: &Predicate) -> Option<Vec<Value>> {
    match p {
        Predicate::Eq(v) => Some(vec![v.clone()]),
        Predicate::In(vs) => Some(vs.clone()),
        _ => None,
    }
}

fn field(f: &Field) -> Vec<Condition> {
    match f {
        Field::Binary { op, lhs, rhs, .. } => match op {
            BinOp::And => {
                let mut c = field(lhs);
                for x in field(rhs) {
                    if !c.contains(&x) {
                        c.push(x);
                    }
                }
                c
            }
            BinOp::Or => either(field(lhs), field(rhs)),
            _ => comparison(*op, lhs, rhs).into_iter().collect(),
        },
        Field::Exists(e, true) => hint_field(e)
            .map(|field| Condition {
                field,
                predicate: Predicate::Exists,
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn comparison(op: BinOp, lhs: &Field, rhs: &Field) -> Option<Condition> {
    let (f, v, op) = match (lhs, rhs) {
        (f, Field::Lit(v)) => (f, v, op),
        (Field::Lit(v), f) => (f, v, flip(op)?),
        _ => return None,
    };
    let field = hint_field(f)?;
    let predicate = match op {
        BinOp::Eq => Predicate::Eq(v.clone()),
        BinOp::Gt => Predicate::Gt(v.clone()),
        BinOp::Gte => Predicate::Gte(v.clone()),
        BinOp::Lt => Predicate::Lt(v.clone()),
        BinOp::Lte => Predicate::Lte(v.clone()),
        BinOp::Re => match (v, lhs) {
            (Value::Str(p), l) if !matches!(l, Field::Lit(_)) => Predicate::Regex(p.clone()),
            _ => return None,
        },
        _ => return None,
    };
    Some(Condition { field, predicate })
}

fn flip(op: BinOp) -> Option<BinOp> {
    Some(match op {
        BinOp::Eq => BinOp::Eq,
        BinOp::Lt => BinOp::Gt,
        BinOp::Lte => BinOp::Gte,
        BinOp::Gt => BinOp::Lt,
        BinOp::Gte => BinOp::Lte,
        _ => return None,
    })
}

fn hint_field(f: &Field) -> Option<HintField> {
    match f {
        Field::Intrinsic(i) => Some(match i {
            Intrinsic::Name => HintField::SpanName,
            Intrinsic::Status => HintField::Status,
            Intrinsic::StatusMessage => HintField::StatusMessage,
            Intrinsic::Kind => HintField::Kind,
            Intrinsic::Duration => HintField::Duration,
            Intrinsic::RootName => HintField::RootName,
            Intrinsic::RootServiceName => HintField::RootServiceName,
            Intrinsic::TraceDuration => HintField::TraceDuration,
            _ => return None,
        }),
        Field::Attr(a) if !a.parent => match a.scope {
            AttrScope::Resource if a.name == "service.name" => Some(HintField::ServiceName),
            AttrScope::Resource => Some(HintField::ResourceAttribute(a.name.clone())),
            AttrScope::Span => Some(HintField::SpanAttribute(a.name.clone())),
            AttrScope::Any => Some(HintField::Attribute(a.name.clone())),
            _ => None,
        },
        _ => None,
    }
}
