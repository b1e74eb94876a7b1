//! Binary operators: scalar/scalar, vector/scalar, vector/vector with
//! `on`/`ignoring`, `group_left`/`group_right`, `bool`, fill modifiers, and
//! the set operators `and`/`or`/`unless`, and the histogram trim operators
//! `</` and `>/` (marked comparisons, see `crate::parse`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::{Evaluator, drop_metric_name};
use crate::annotations::go_q;
use crate::error::{Result, exec_err};
use crate::histogram::{CounterResetHint, FloatHistogram, TrimSide};
use crate::model::{Labels, Matrix, Sample, Vector};
use crate::parse::{TRIM_MARK, trim_of};

/// Binary operator kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    Atan2,
    And,
    Or,
    Unless,
    /// `</` (keeps the observations below) or `>/` (above).
    Trim(TrimSide),
}

impl Op {
    pub(crate) fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "==" => Op::Eql,
            "!=" => Op::Neq,
            ">" => Op::Gtr,
            "<" => Op::Lss,
            ">=" => Op::Gte,
            "<=" => Op::Lte,
            "atan2" => Op::Atan2,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            _ => return None,
        })
    }

    /// The operator of a binary node, trims included.
    fn of(b: &BinaryExpr) -> Option<Op> {
        match trim_of(b) {
            Some(side) => Some(Op::Trim(side)),
            None => Op::parse(&b.op.to_string()),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Mod => "%",
            Op::Pow => "^",
            Op::Eql => "==",
            Op::Neq => "!=",
            Op::Gtr => ">",
            Op::Lss => "<",
            Op::Gte => ">=",
            Op::Lte => "<=",
            Op::Atan2 => "atan2",
            Op::And => "and",
            Op::Or => "or",
            Op::Unless => "unless",
            Op::Trim(TrimSide::KeepBelow) => "</",
            Op::Trim(TrimSide::KeepAbove) => ">/",
        }
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            Op::Eql | Op::Neq | Op::Gtr | Op::Lss | Op::Gte | Op::Lte
        )
    }

    /// Whether the result no longer has the metric's meaning.
    fn changes_metric_schema(self) -> bool {
        matches!(
            self,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Mod | Op::Atan2
        )
    }
}

fn go_mod(a: f64, b: f64) -> f64 {
    // Go's math.Mod: result has the sign of a, like Rust's %.
    a % b
}

fn btos(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

pub(crate) fn scalar_binop(op: Op, l: f64, r: f64) -> f64 {
    match op {
        Op::Add => l + r,
        Op::Sub => l - r,
        Op::Mul => l * r,
        Op::Div => l / r,
        Op::Pow => l.powf(r),
        Op::Mod => go_mod(l, r),
        Op::Eql => btos(l == r),
        Op::Neq => btos(l != r),
        Op::Gtr => btos(l > r),
        Op::Lss => btos(l < r),
        Op::Gte => btos(l >= r),
        Op::Lte => btos(l <= r),
        Op::Atan2 => l.atan2(r),
        Op::And | Op::Or | Op::Unless | Op::Trim(_) => f64::NAN,
    }
}

/// Outcome of an element-wise operation.
struct ElemResult {
    f: f64,
    h: Option<Arc<FloatHistogram>>,
    keep: bool,
    /// The operand types do not combine; the pair yields no output at all.
    skip: bool,
}

/// Evaluates `l op r` for two elements (floats or histograms). Annotations
/// go to `ev`.
fn elem_binop(
    ev: &Evaluator<'_>,
    op: Op,
    l: f64,
    r: f64,
    hl: Option<&Arc<FloatHistogram>>,
    hr: Option<&Arc<FloatHistogram>>,
) -> ElemResult {
    let none = ElemResult {
        f: 0.0,
        h: None,
        keep: false,
        skip: true,
    };
    let incompatible = |lt: &str, rt: &str| {
        ev.ctx.info(format!(
            "incompatible sample types encountered for binary operator {}: {lt} {} {rt}",
            go_q(op.as_str()),
            op.as_str()
        ));
    };
    match (hl, hr) {
        (None, None) if matches!(op, Op::Trim(_)) => {
            incompatible("float", "float");
            none
        }
        (None, None) => {
            let (f, keep) = match op {
                Op::Eql => (l, l == r),
                Op::Neq => (l, l != r),
                Op::Gtr => (l, l > r),
                Op::Lss => (l, l < r),
                Op::Gte => (l, l >= r),
                Op::Lte => (l, l <= r),
                _ => (scalar_binop(op, l, r), true),
            };
            ElemResult {
                f,
                h: None,
                keep,
                skip: false,
            }
        }
        (None, Some(h)) => {
            if op == Op::Mul {
                return ElemResult {
                    f: 0.0,
                    h: Some(Arc::new((**h).clone().scale(l).compact())),
                    keep: true,
                    skip: false,
                };
            }
            incompatible("float", "histogram");
            none
        }
        (Some(h), None) => match op {
            Op::Mul => ElemResult {
                f: 0.0,
                h: Some(Arc::new((**h).clone().scale(r).compact())),
                keep: true,
                skip: false,
            },
            Op::Div => ElemResult {
                f: 0.0,
                h: Some(Arc::new((**h).clone().div_by(r).compact())),
                keep: true,
                skip: false,
            },
            Op::Trim(side) => ElemResult {
                f: 0.0,
                h: Some(Arc::new((**h).clone().trim(r, side))),
                keep: true,
                skip: false,
            },
            _ => {
                incompatible("histogram", "float");
                none
            }
        },
        (Some(a), Some(b)) => match op {
            Op::Add | Op::Sub => {
                let mut res = (**a).clone();
                let out = if op == Op::Add {
                    res.add(b)
                } else {
                    res.sub(b)
                };
                match out {
                    Err(_) => {
                        ev.ctx.warn(
                            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name \"\"",
                        );
                        none
                    }
                    Ok((collision, reconciled)) => {
                        let opname = if op == Op::Add {
                            "addition"
                        } else {
                            "subtraction"
                        };
                        if op == Op::Sub {
                            res.counter_reset_hint = CounterResetHint::Gauge;
                        }
                        if collision {
                            ev.ctx.warn(format!(
                                "conflicting counter resets during histogram {opname}"
                            ));
                        }
                        if reconciled {
                            ev.ctx.info(format!(
                                "mismatched custom buckets were reconciled during {opname}"
                            ));
                        }
                        ElemResult {
                            f: 0.0,
                            h: Some(Arc::new(res.compact())),
                            keep: true,
                            skip: false,
                        }
                    }
                }
            }
            Op::Eql | Op::Neq => {
                let eq = a.equals(b);
                ElemResult {
                    f: 0.0,
                    h: Some(a.clone()),
                    keep: if op == Op::Eql { eq } else { !eq },
                    skip: false,
                }
            }
            _ => {
                incompatible("histogram", "histogram");
                none
            }
        },
    }
}

/// Vector matching parameters derived from the AST.
struct Matching {
    card: VectorMatchCardinality,
    on: bool,
    labels: Vec<String>,
    include: Vec<String>,
    fill_lhs: Option<f64>,
    fill_rhs: Option<f64>,
}

fn matching_of(b: &BinaryExpr, set_op: bool) -> Matching {
    let mut m = Matching {
        card: if set_op {
            VectorMatchCardinality::ManyToMany
        } else {
            VectorMatchCardinality::OneToOne
        },
        on: false,
        labels: Vec::new(),
        include: Vec::new(),
        fill_lhs: None,
        fill_rhs: None,
    };
    if let Some(md) = &b.modifier {
        m.card = md.card.clone();
        if set_op {
            m.card = VectorMatchCardinality::ManyToMany;
        }
        if let Some(lm) = &md.matching {
            if let LabelModifier::Include(_) = lm {
                m.on = true;
            }
            // The trim marker names no real label; leave it out.
            m.labels = lm
                .labels()
                .labels
                .iter()
                .filter(|l| *l != TRIM_MARK)
                .cloned()
                .collect();
        }
        if let Some(l) = md.card.labels() {
            m.include = l.labels.clone();
        }
        m.fill_lhs = md.fill_values.lhs;
        m.fill_rhs = md.fill_values.rhs;
    }
    m
}

fn signature(l: &Labels, m: &Matching) -> Labels {
    l.match_labels(m.on, &m.labels)
}

impl Evaluator<'_> {
    pub(crate) fn binary(&self, b: &BinaryExpr) -> Result<Matrix> {
        let op = Op::of(b).ok_or_else(|| exec_err!("unsupported binary operator {}", b.op))?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let (lt, rt) = (b.lhs.value_type(), b.rhs.value_type());
        match (lt, rt) {
            (ValueType::Scalar, ValueType::Scalar) if matches!(op, Op::Trim(_)) => Err(exec_err!(
                "operator {} not allowed for Scalar operations",
                go_q(op.as_str())
            )),
            (ValueType::Scalar, ValueType::Scalar) => self.range_eval(&[&b.lhs, &b.rhs], |v, _| {
                let l = v[0].first().map(|s| s.f).unwrap_or(f64::NAN);
                let r = v[1].first().map(|s| s.f).unwrap_or(f64::NAN);
                Ok(vec![Sample::float(Labels::empty(), scalar_binop(op, l, r))])
            }),
            (ValueType::Vector, ValueType::Vector) => {
                let set_op = matches!(op, Op::And | Op::Or | Op::Unless);
                let m = matching_of(b, set_op);
                self.range_eval(&[&b.lhs, &b.rhs], |v, _| match op {
                    Op::And => Ok(vector_and(&v[0], &v[1], &m)),
                    Op::Or => Ok(vector_or(&v[0], &v[1], &m)),
                    Op::Unless => Ok(vector_unless(&v[0], &v[1], &m)),
                    _ => self.vector_binop(op, &v[0], &v[1], &m, return_bool),
                })
            }
            (ValueType::Vector, ValueType::Scalar) => self.range_eval(&[&b.lhs, &b.rhs], |v, _| {
                let r = v[1].first().map(|s| s.f).unwrap_or(f64::NAN);
                Ok(self.vector_scalar_binop(op, &v[0], r, false, return_bool))
            }),
            (ValueType::Scalar, ValueType::Vector) => self.range_eval(&[&b.lhs, &b.rhs], |v, _| {
                let l = v[0].first().map(|s| s.f).unwrap_or(f64::NAN);
                Ok(self.vector_scalar_binop(op, &v[1], l, true, return_bool))
            }),
            _ => Err(exec_err!(
                "binary expression must contain only scalar and instant vector types"
            )),
        }
    }

    fn vector_scalar_binop(
        &self,
        op: Op,
        lhs: &Vector,
        scalar: f64,
        swap: bool,
        return_bool: bool,
    ) -> Vector {
        let mut out = Vec::with_capacity(lhs.len());
        for s in lhs {
            let (mut lf, mut rf) = (s.f, scalar);
            let (mut lh, mut rh) = (s.h.as_ref(), None);
            if swap {
                std::mem::swap(&mut lf, &mut rf);
                std::mem::swap(&mut lh, &mut rh);
            }
            let mut res = elem_binop(self, op, lf, rf, lh, rh);
            if res.skip {
                continue;
            }
            if op.is_comparison() && swap {
                res.f = rf;
                res.h = rh.cloned();
            }
            if return_bool {
                res.f = btos(res.keep);
                res.h = None;
                res.keep = true;
            }
            if res.keep {
                let mut o = s.clone();
                o.f = res.f;
                o.h = res.h;
                if op.changes_metric_schema() || return_bool {
                    o.drop_name = true;
                }
                out.push(o);
            }
        }
        out
    }

    fn vector_binop(
        &self,
        op: Op,
        lhs: &Vector,
        rhs: &Vector,
        m: &Matching,
        return_bool: bool,
    ) -> Result<Vector> {
        let no_fill = m.fill_lhs.is_none() && m.fill_rhs.is_none();
        if (lhs.is_empty() && rhs.is_empty()) || ((lhs.is_empty() || rhs.is_empty()) && no_fill) {
            return Ok(Vec::new());
        }
        let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
        let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
        let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
        // Like Prometheus, fill values are not swapped for group_right.
        let (fill_for_rhs, fill_for_lhs) = (m.fill_rhs, m.fill_lhs);
        // The "one" side, by signature.
        let mut right: HashMap<Labels, &Sample> = HashMap::new();
        for rs in rhs {
            let sig = signature(&rs.metric, m);
            if let Some(dup) = right.get(&sig) {
                let side = if one_to_many { "left" } else { "right" };
                let (mut a, mut b) = (rs.metric.to_string(), dup.metric.to_string());
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                return Err(exec_err!(
                    "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    sig,
                    side,
                    a,
                    b
                ));
            }
            right.insert(sig, rs);
        }
        let mut matched_one: HashSet<Labels> = HashSet::new();
        let mut matched_many: HashMap<Labels, HashSet<Labels>> = HashMap::new();
        let mut out = Vec::new();
        let do_op = |ls: &Sample,
                     rs: &Sample,
                     sig: Labels,
                     out: &mut Vector,
                     matched_one: &mut HashSet<Labels>,
                     matched_many: &mut HashMap<Labels, HashSet<Labels>>|
         -> Result<()> {
            let (mut fl, mut fr) = (ls.f, rs.f);
            let (mut hl, mut hr) = (ls.h.as_ref(), rs.h.as_ref());
            if one_to_many {
                std::mem::swap(&mut fl, &mut fr);
                std::mem::swap(&mut hl, &mut hr);
            }
            let mut res = elem_binop(self, op, fl, fr, hl, hr);
            if res.skip {
                return Ok(());
            }
            if return_bool {
                res.h = None;
                res.f = btos(res.keep);
            }
            let metric = result_metric(&ls.metric, &rs.metric, op, m, return_bool);
            if one_to_one {
                if !matched_one.insert(sig) {
                    return Err(exec_err!(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                    ));
                }
            } else {
                let set = matched_many.entry(sig).or_default();
                if !set.insert(metric.clone()) {
                    return Err(exec_err!(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                    ));
                }
            }
            if !res.keep && !return_bool {
                return Ok(());
            }
            out.push(Sample {
                metric,
                t: ls.t,
                f: res.f,
                h: res.h,
                drop_name: return_bool,
            });
            Ok(())
        };
        for ls in lhs {
            let sig = signature(&ls.metric, m);
            match right.get(&sig) {
                Some(rs) => do_op(ls, rs, sig, &mut out, &mut matched_one, &mut matched_many)?,
                None => {
                    let Some(fill) = fill_for_rhs else { continue };
                    let rs = Sample::float(ls.metric.match_labels(m.on, &m.labels), fill);
                    do_op(ls, &rs, sig, &mut out, &mut matched_one, &mut matched_many)?
                }
            }
        }
        if let Some(fill) = fill_for_lhs {
            for rs in rhs {
                let sig = signature(&rs.metric, m);
                let done = if one_to_one {
                    matched_one.contains(&sig)
                } else {
                    matched_many.get(&sig).is_some_and(|s| !s.is_empty())
                };
                if done {
                    continue;
                }
                let ls = Sample::float(rs.metric.match_labels(m.on, &m.labels), fill);
                do_op(&ls, rs, sig, &mut out, &mut matched_one, &mut matched_many)?;
            }
        }
        Ok(out)
    }
}

fn result_metric(lhs: &Labels, rhs: &Labels, op: Op, m: &Matching, _return_bool: bool) -> Labels {
    // Arithmetic drops the name and metadata labels right away; `bool`
    // comparisons keep them until the final cleanup (delayed name removal).
    let mut l = if op.changes_metric_schema() {
        drop_metric_name(lhs)
    } else {
        lhs.clone()
    };
    if matches!(m.card, VectorMatchCardinality::OneToOne) {
        l = if m.on {
            l.keep(&m.labels)
        } else {
            l.drop_names(&m.labels)
        };
    }
    for name in &m.include {
        let v = rhs.get(name);
        if v.is_empty() {
            l.del(name);
        } else {
            l.set(name, v);
        }
    }
    l
}

fn sig_set(v: &Vector, m: &Matching) -> HashSet<Labels> {
    v.iter().map(|s| signature(&s.metric, m)).collect()
}

fn vector_and(lhs: &Vector, rhs: &Vector, m: &Matching) -> Vector {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let r = sig_set(rhs, m);
    lhs.iter()
        .filter(|s| r.contains(&signature(&s.metric, m)))
        .cloned()
        .collect()
}

fn vector_or(lhs: &Vector, rhs: &Vector, m: &Matching) -> Vector {
    let l = sig_set(lhs, m);
    let mut out = lhs.clone();
    out.extend(
        rhs.iter()
            .filter(|s| !l.contains(&signature(&s.metric, m)))
            .cloned(),
    );
    out
}

fn vector_unless(lhs: &Vector, rhs: &Vector, m: &Matching) -> Vector {
    if lhs.is_empty() || rhs.is_empty() {
        return lhs.clone();
    }
    let r = sig_set(rhs, m);
    lhs.iter()
        .filter(|s| !r.contains(&signature(&s.metric, m)))
        .cloned()
        .collect()
}
