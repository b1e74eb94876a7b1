//! Evaluation of a query against one trace.
//!
//! As in Tempo, the pipeline starts with one spanset holding every span of the trace;
//! each stage maps every input spanset to zero or more output spansets, and a trace
//! matches when the last stage leaves at least one.

mod ops;
mod tree;

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::ast::*;
use crate::data::TraceData;
use crate::lexer::AttrScope;
use crate::value::{Ev, Value};
use ops::{Acc, GroupKey, arith, compare};
use tree::{FxHasher, Rel, Tree};

/// One result of a query on a trace: a set of matched spans.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spanset {
    /// Indexes into `TraceData::spans`, ascending.
    pub spans: Vec<usize>,
    /// Spanset-level results: aggregates (`count()`, `avg(duration)` ...) and `by(...)`
    /// group keys, named as Tempo names them.
    pub attributes: Vec<(String, Value)>,
    /// For each entry of `spans`, the attributes and intrinsics the query reads (its
    /// conditions and `select()`), as Tempo reports them on matched spans. Keys are bare
    /// attribute names (`http.method`, `service.name`) or intrinsic names (`status`).
    /// Empty (not one empty list per span) when the query reads no such field.
    pub span_attributes: Vec<Vec<(String, Value)>>,
}

/// Evaluates `q` on one trace. An empty result means the trace does not match.
pub fn evaluate(q: &Query, trace: &TraceData) -> Vec<Spanset> {
    let ctx = Ctx::new(trace);
    let all = Set {
        spans: (0..trace.spans.len() as u32).collect(),
        attrs: Vec::new(),
    };
    if trace.spans.is_empty() {
        return Vec::new();
    }
    let out = ctx.pipeline(&q.pipeline, vec![all]);
    out.into_iter()
        .map(|s| {
            let span_attributes = if q.reported.is_empty() {
                Vec::new()
            } else {
                s.spans
                    .iter()
                    .map(|&i| ctx.reported(&q.reported, i as usize))
                    .collect()
            };
            Spanset {
                spans: s.spans.iter().map(|&i| i as usize).collect(),
                attributes: s.attrs,
                span_attributes,
            }
        })
        .collect()
}

/// Internal spanset: sorted unique span indexes plus spanset attributes.
#[derive(Clone, Debug)]
struct Set {
    spans: Vec<u32>,
    attrs: Vec<(String, Value)>,
}

impl Set {
    fn with_spans(&self, spans: Vec<u32>) -> Set {
        Set {
            spans,
            attrs: self.attrs.clone(),
        }
    }

    fn add_attr(&mut self, name: String, v: Value) {
        if let Some(slot) = self.attrs.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = v;
        } else {
            self.attrs.push((name, v));
        }
    }
}

struct Ctx<'a> {
    trace: &'a TraceData,
    tree: OnceCell<Tree>,
    root: Option<usize>,
    trace_start: i64,
    trace_end: i64,
}

/// Which event and link of the span a field expression reads, if any.
#[derive(Clone, Copy)]
struct At {
    span: usize,
    event: Option<usize>,
    link: Option<usize>,
}

impl<'a> Ctx<'a> {
    fn new(trace: &'a TraceData) -> Self {
        let root = trace.spans.iter().position(|s| s.parent_id().is_none());
        let trace_start = trace.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let trace_end = trace.spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
        Ctx {
            trace,
            tree: OnceCell::new(),
            root,
            trace_start,
            trace_end,
        }
    }

    fn tree(&self) -> &Tree {
        self.tree.get_or_init(|| Tree::build(self.trace))
    }

    // ------------------------------------------------------------------ pipeline

    fn pipeline(&self, p: &'a Pipeline, mut input: Vec<Set>) -> Vec<Set> {
        for stage in &p.stages {
            if input.is_empty() {
                break;
            }
            input = self.stage(stage, input);
        }
        input
    }

    fn stage(&self, stage: &'a Stage, input: Vec<Set>) -> Vec<Set> {
        match stage {
            Stage::Spanset(e) => input.iter().flat_map(|s| self.set_expr(e, s)).collect(),
            Stage::ScalarFilter(f) => input
                .into_iter()
                .filter_map(|s| self.scalar_filter(f, s))
                .collect(),
            Stage::By(e) => {
                let mut out = Vec::new();
                let name = format!("by({e})");
                for s in &input {
                    let mut index: HashMap<GroupKey, usize, BuildHasherDefault<FxHasher>> =
                        HashMap::default();
                    let mut groups: Vec<(Value, Vec<u32>)> = Vec::new();
                    for &i in &s.spans {
                        let v = self.field(e, self.at(i as usize));
                        let g = *index.entry(GroupKey::of(v)).or_insert_with(|| {
                            groups.push((v.to_value(), Vec::new()));
                            groups.len() - 1
                        });
                        groups[g].1.push(i);
                    }
                    for (k, spans) in groups {
                        let mut g = s.with_spans(spans);
                        g.add_attr(name.clone(), k);
                        out.push(g);
                    }
                }
                out
            }
            Stage::Coalesce => {
                let mut spans: Vec<u32> =
                    input.iter().flat_map(|s| s.spans.iter().copied()).collect();
                spans.sort_unstable();
                spans.dedup();
                vec![Set {
                    spans,
                    attrs: Vec::new(),
                }]
            }
            // selected attributes are reported for every matched span at the end
            Stage::Select(_) => input,
        }
    }

    fn set_expr(&self, e: &'a SpansetExpr, input: &Set) -> Vec<Set> {
        match e {
            SpansetExpr::Filter(f) => {
                let spans: Vec<u32> = input
                    .spans
                    .iter()
                    .copied()
                    .filter(|&i| self.matches(f, i as usize))
                    .collect();
                if spans.is_empty() {
                    Vec::new()
                } else {
                    vec![input.with_spans(spans)]
                }
            }
            SpansetExpr::Pipeline(p) => self.pipeline(p, vec![input.clone()]),
            SpansetExpr::Op(op, l, r) => {
                let lhs = self.set_expr(l, input);
                // `&&` needs both sides: skip the right side when the left is empty
                if *op == SpansetOp::And && lhs.is_empty() {
                    return Vec::new();
                }
                let rhs = self.set_expr(r, input);
                let spans = match op {
                    SpansetOp::And => {
                        if rhs.is_empty() {
                            return Vec::new();
                        }
                        union(&lhs, &rhs)
                    }
                    SpansetOp::Or => union(&lhs, &rhs),
                    _ => {
                        if rhs.is_empty() {
                            return Vec::new();
                        }
                        self.structural(*op, &union(&lhs, &[]), &union(&rhs, &[]))
                    }
                };
                if spans.is_empty() {
                    Vec::new()
                } else {
                    vec![input.with_spans(spans)]
                }
            }
        }
    }

    /// Spans of `r` (and of `l` for the union forms) in the given relation.
    fn structural(&self, op: SpansetOp, l: &[u32], r: &[u32]) -> Vec<u32> {
        let tree = self.tree();
        let n = self.trace.spans.len();
        let mut in_l = vec![false; n];
        for &i in l {
            in_l[i as usize] = true;
        }
        let mut in_r = vec![false; n];
        for &i in r {
            in_r[i as usize] = true;
        }
        // relation(x, set): does x stand in the relation to some span of `set`?
        let rel = |kind: Rel, set: &[bool]| -> Vec<bool> { tree.relation(kind, set) };
        let (kind, negated, union_form) = match op {
            SpansetOp::Child => (Rel::ParentIn, false, false),
            SpansetOp::Parent => (Rel::ChildIn, false, false),
            SpansetOp::Descendant => (Rel::AncestorIn, false, false),
            SpansetOp::Ancestor => (Rel::DescendantIn, false, false),
            SpansetOp::Sibling => (Rel::SiblingIn, false, false),
            SpansetOp::NotChild => (Rel::ParentIn, true, false),
            SpansetOp::NotParent => (Rel::ChildIn, true, false),
            SpansetOp::NotDescendant => (Rel::AncestorIn, true, false),
            SpansetOp::NotAncestor => (Rel::DescendantIn, true, false),
            SpansetOp::NotSibling => (Rel::SiblingIn, true, false),
            SpansetOp::UnionChild => (Rel::ParentIn, false, true),
            SpansetOp::UnionParent => (Rel::ChildIn, false, true),
            SpansetOp::UnionDescendant => (Rel::AncestorIn, false, true),
            SpansetOp::UnionAncestor => (Rel::DescendantIn, false, true),
            SpansetOp::UnionSibling => (Rel::SiblingIn, false, true),
            SpansetOp::And | SpansetOp::Or => return Vec::new(),
        };
        let r_ok = rel(kind, &in_l);
        let mut out: Vec<u32> = r
            .iter()
            .copied()
            .filter(|&i| r_ok[i as usize] != negated)
            .collect();
        if union_form {
            let l_ok = rel(kind.converse(), &in_r);
            out.extend(l.iter().copied().filter(|&i| l_ok[i as usize]));
            out.sort_unstable();
            out.dedup();
        }
        out
    }

    // ------------------------------------------------------------------ scalar filters

    fn scalar_filter(&self, f: &'a ScalarFilter, mut s: Set) -> Option<Set> {
        let mut attrs = Vec::new();
        let l = self.scalar(&f.lhs, &s, &mut attrs)?;
        let r = self.scalar(&f.rhs, &s, &mut attrs)?;
        let ord = Ev::from_value(&l).num_cmp(Ev::from_value(&r))?;
        let keep = match f.op {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Neq => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Lte => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Gte => ord != Ordering::Less,
        };
        if !keep {
            return None;
        }
        for (k, v) in attrs {
            s.add_attr(k, v);
        }
        Some(s)
    }

    /// Value of a scalar expression on a spanset; `None` when an aggregate has no value
    /// (no span has a numeric value for it), which drops the spanset as in Tempo.
    fn scalar(&self, e: &'a Scalar, s: &Set, attrs: &mut Vec<(String, Value)>) -> Option<Value> {
        match e {
            Scalar::Lit(v) => Some(v.clone()),
            Scalar::Neg(inner) => match self.scalar(inner, s, attrs)? {
                Value::Int(i) => Some(Value::Int(i.wrapping_neg())),
                Value::Float(f) => Some(Value::Float(-f)),
                Value::Duration(d) => Some(Value::Duration(d.wrapping_neg())),
                _ => None,
            },
            Scalar::Arith(op, l, r) => {
                let l = self.scalar(l, s, attrs)?;
                let r = self.scalar(r, s, attrs)?;
                let v = arith(*op, Ev::from_value(&l), Ev::from_value(&r));
                if v.is_nil() { None } else { Some(v.to_value()) }
            }
            Scalar::Agg(op, field) => {
                let v = self.aggregate(*op, field.as_ref(), s)?;
                attrs.push((e.to_string(), v.clone()));
                Some(v)
            }
        }
    }

    fn aggregate(&self, op: AggOp, field: Option<&'a Field>, s: &Set) -> Option<Value> {
        let Some(field) = field else {
            return Some(Value::Int(s.spans.len() as i64));
        };
        let values = s
            .spans
            .iter()
            .map(|&i| self.field(field, self.at(i as usize)))
            .filter(|v| v.as_f64().is_some());
        match op {
            AggOp::Count => Some(Value::Int(s.spans.len() as i64)),
            AggOp::Min | AggOp::Max => {
                let want = if op == AggOp::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                let mut best: Option<Ev<'a>> = None;
                for v in values {
                    if best.is_none_or(|b| v.num_cmp(b) == Some(want)) {
                        best = Some(v);
                    }
                }
                best.map(Ev::to_value)
            }
            AggOp::Sum | AggOp::Avg => {
                let mut acc = Acc::default();
                for v in values {
                    acc.add(v);
                }
                if acc.n == 0 {
                    return None;
                }
                Some(if op == AggOp::Sum {
                    acc.sum()
                } else {
                    acc.avg()
                })
            }
        }
    }

    // ------------------------------------------------------------------ fields

    fn at(&self, span: usize) -> At {
        At {
            span,
            event: None,
            link: None,
        }
    }

    fn matches(&self, f: &'a Filter, span: usize) -> bool {
        if !f.uses_events && !f.uses_links {
            return self.field(&f.expr, self.at(span)).is_true();
        }
        // the span matches when the expression holds for some event (and/or link); a
        // span without events is evaluated once with event fields nil
        let s = &self.trace.spans[span];
        let n_events = if f.uses_events { s.events.len() } else { 0 };
        let n_links = if f.uses_links { s.links.len() } else { 0 };
        let pick = |i: usize, n: usize| (n > 0).then_some(i);
        (0..n_events.max(1)).any(|e| {
            (0..n_links.max(1)).any(|l| {
                let at = At {
                    span,
                    event: pick(e, n_events),
                    link: pick(l, n_links),
                };
                self.field(&f.expr, at).is_true()
            })
        })
    }

    pub(crate) fn field(&self, f: &'a Field, at: At) -> Ev<'a> {
        match f {
            Field::Lit(v) => Ev::from_value(v),
            Field::Attr(a) => self.attr(a, at),
            Field::Intrinsic(i) => self.intrinsic(*i, at),
            Field::Not(e) => match self.field(e, at) {
                Ev::Bool(b) => Ev::Bool(!b),
                _ => Ev::Nil,
            },
            Field::Neg(e) => match self.field(e, at) {
                Ev::Int(i) => Ev::Int(i.wrapping_neg()),
                Ev::Float(x) => Ev::Float(-x),
                Ev::Duration(d) => Ev::Duration(d.wrapping_neg()),
                _ => Ev::Nil,
            },
            Field::Exists(e, want) => Ev::Bool(self.field(e, at).is_nil() != *want),
            Field::Binary {
                op,
                lhs,
                rhs,
                regex,
            } => {
                let l = self.field(lhs, at);
                match op {
                    BinOp::And => {
                        if matches!(l, Ev::Bool(false)) {
                            return Ev::Bool(false);
                        }
                        let r = self.field(rhs, at);
                        Ev::Bool(l.is_true() && r.is_true())
                    }
                    BinOp::Or => {
                        if l.is_true() {
                            return Ev::Bool(true);
                        }
                        let r = self.field(rhs, at);
                        Ev::Bool(matches!(l, Ev::Bool(_)) && r.is_true())
                    }
                    _ if op.is_arithmetic() => arith(*op, l, self.field(rhs, at)),
                    _ => Ev::Bool(compare(*op, l, self.field(rhs, at), regex.as_ref())),
                }
            }
        }
    }

    fn attr(&self, a: &'a AttrRef, at: At) -> Ev<'a> {
        let mut span_idx = at.span;
        if a.parent {
            match self.tree().parent[span_idx] {
                Some(p) => span_idx = p as usize,
                None => return Ev::Nil,
            }
        }
        let s = &self.trace.spans[span_idx];
        let find = |attrs: &'a [(String, Value)]| -> Option<Ev<'a>> {
            attrs
                .iter()
                .find(|(k, _)| *k == a.name)
                .map(|(_, v)| Ev::from_value(v))
        };
        let resource = || -> Option<Ev<'a>> {
            // `service_name` is the resource's service.name and is one pointer away,
            // where the attribute list is three
            if a.name == "service.name" && !s.service_name.is_empty() {
                return Some(Ev::Str(s.service_name.as_str()));
            }
            find(&s.resource_attributes)
        };
        let found = match a.scope {
            AttrScope::Span => find(&s.attributes),
            AttrScope::Resource => resource(),
            AttrScope::Any => find(&s.attributes).or_else(resource),
            AttrScope::Event => at
                .event
                .and_then(|e| s.events.get(e))
                .and_then(|e| find(&e.attributes)),
            AttrScope::Link => at
                .link
                .and_then(|l| s.links.get(l))
                .and_then(|l| find(&l.attributes)),
            // rejected by the parser: the trace model has no scope attributes
            AttrScope::Instrumentation => None,
        };
        found.unwrap_or(Ev::Nil)
    }

    fn intrinsic(&self, i: Intrinsic, at: At) -> Ev<'a> {
        let s = &self.trace.spans[at.span];
        match i {
            Intrinsic::Name => Ev::Str(&s.name),
            Intrinsic::Status => Ev::Status(s.status),
            Intrinsic::StatusMessage => Ev::Str(&s.status_message),
            Intrinsic::Kind => Ev::Kind(s.kind),
            Intrinsic::Duration => Ev::Duration(s.duration_ns()),
            Intrinsic::RootName => self
                .root
                .map_or(Ev::Nil, |r| Ev::Str(&self.trace.spans[r].name)),
            Intrinsic::RootServiceName => self
                .root
                .map_or(Ev::Nil, |r| Ev::Str(&self.trace.spans[r].service_name)),
            Intrinsic::TraceDuration => {
                Ev::Duration(self.trace_end.saturating_sub(self.trace_start))
            }
            Intrinsic::TraceId => Ev::Str(&self.trace.trace_id),
            Intrinsic::SpanId => Ev::Str(&s.span_id),
            Intrinsic::ParentId => s.parent_id().map_or(Ev::Nil, Ev::Str),
            Intrinsic::ChildCount => Ev::Int(i64::from(self.tree().child_count[at.span])),
            Intrinsic::EventName => at
                .event
                .and_then(|e| s.events.get(e))
                .map_or(Ev::Nil, |e| Ev::Str(&e.name)),
            Intrinsic::EventTimeSinceStart => {
                at.event.and_then(|e| s.events.get(e)).map_or(Ev::Nil, |e| {
                    Ev::Duration(e.time_ns.saturating_sub(s.start_ns))
                })
            }
            Intrinsic::LinkTraceId => at
                .link
                .and_then(|l| s.links.get(l))
                .map_or(Ev::Nil, |l| Ev::Str(&l.trace_id)),
            Intrinsic::LinkSpanId => at
                .link
                .and_then(|l| s.links.get(l))
                .map_or(Ev::Nil, |l| Ev::Str(&l.span_id)),
            Intrinsic::InstrumentationName => Ev::Str(&s.scope_name),
            Intrinsic::InstrumentationVersion => Ev::Str(&s.scope_version),
        }
    }

    /// The query's reported attributes that `span` has.
    fn reported(&self, fields: &'a [Field], span: usize) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for f in fields {
            let v = self.field(f, self.at(span));
            if v.is_nil() {
                continue;
            }
            let key = match f {
                Field::Attr(a) => a.name.clone(),
                Field::Intrinsic(i) => i.as_str().to_string(),
                _ => continue,
            };
            out.push((key, v.to_value()));
        }
        out
    }
}

/// Sorted union of the spans of all spansets in `a` and `b`.
fn union(a: &[Set], b: &[Set]) -> Vec<u32> {
    let mut spans: Vec<u32> = a
        .iter()
        .chain(b)
        .flat_map(|s| s.spans.iter().copied())
        .collect();
    spans.sort_unstable();
    spans.dedup();
    spans
}
