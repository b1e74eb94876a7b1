//! Vector aggregations and binary operators with vector matching.

use std::collections::HashMap;
use std::rc::Rc;

use super::range::{group_labels, variance};
use super::{Ctx, Labels, Smp, Steps, Val, eval};
use crate::ast::*;
use crate::error::{Error, Result};
use crate::model::{LabelPairs, labels_string};

pub(super) fn vector_agg(a: &VectorAgg, v: Vec<Smp>) -> Vec<Smp> {
    match a.op {
        VectorOp::Sort | VectorOp::SortDesc => {
            let mut v = v;
            v.sort_by(|x, y| {
                let o = if a.op == VectorOp::Sort {
                    x.v.total_cmp(&y.v)
                } else {
                    y.v.total_cmp(&x.v)
                };
                o.then_with(|| x.labels.cmp(&y.labels))
            });
            return v;
        }
        VectorOp::Topk | VectorOp::Bottomk => {
            let k = a.param.unwrap_or(1).max(0) as usize;
            let mut groups: Vec<(LabelPairs, Vec<Smp>)> = Vec::new();
            let mut idx: HashMap<Vec<(String, String)>, usize> = HashMap::new();
            for s in v {
                let key = match &a.grouping {
                    Some(g) => group_labels(&s.labels, g),
                    None => Vec::new(),
                };
                let i = *idx.entry(key.clone()).or_insert_with(|| {
                    groups.push((key, Vec::new()));
                    groups.len() - 1
                });
                groups[i].1.push(s);
            }
            let mut out = Vec::new();
            for (_, mut g) in groups {
                g.sort_by(|x, y| {
                    let o = if a.op == VectorOp::Topk {
                        // NaN sorts last.
                        match (x.v.is_nan(), y.v.is_nan()) {
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ => y.v.total_cmp(&x.v),
                        }
                    } else {
                        match (x.v.is_nan(), y.v.is_nan()) {
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ => x.v.total_cmp(&y.v),
                        }
                    };
                    o.then_with(|| x.labels.cmp(&y.labels))
                });
                g.truncate(k);
                out.extend(g);
            }
            return out;
        }
        _ => {}
    }
    let mut groups: Vec<(Labels, Vec<f64>)> = Vec::new();
    let mut idx: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    for s in v {
        let key = match &a.grouping {
            Some(g) => group_labels(&s.labels, g),
            None => Vec::new(),
        };
        let i = match idx.get(&key) {
            Some(i) => *i,
            None => {
                idx.insert(key.clone(), groups.len());
                groups.push((Rc::new(key), Vec::new()));
                groups.len() - 1
            }
        };
        groups[i].1.push(s.v);
    }
    groups
        .into_iter()
        .map(|(labels, vals)| {
            let n = vals.len() as f64;
            let sum: f64 = vals.iter().sum();
            let v = match a.op {
                VectorOp::Sum => sum,
                VectorOp::Avg => {
                    // Loki's vector `avg`: mean += (v - mean) / n.
                    let mut m = 0.0;
                    for (i, v) in vals.iter().enumerate() {
                        m += (v - m) / (i + 1) as f64;
                    }
                    m
                }
                VectorOp::Count => n,
                VectorOp::Min => vals
                    .iter()
                    .copied()
                    .fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a }),
                VectorOp::Max => vals
                    .iter()
                    .copied()
                    .fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a }),
                VectorOp::Stdvar => variance(vals.iter().copied()),
                VectorOp::Stddev => variance(vals.iter().copied()).sqrt(),
                _ => f64::NAN,
            };
            Smp { labels, v }
        })
        .collect()
}

fn arith(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Gte => (l, l >= r),
        BinOp::Lt => (l, l < r),
        BinOp::Lte => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
    }
}

pub(super) fn binary(ctx: &mut Ctx<'_>, b: &BinaryExpr, steps: &Steps) -> Result<Val> {
    let lhs = eval(ctx, &b.lhs, steps)?;
    let rhs = eval(ctx, &b.rhs, steps)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.into_iter()
                .zip(r)
                .map(|(l, r)| {
                    let (v, keep) = arith(b.op, l, r);
                    if b.op.is_comparison() {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(l), Val::Scalar(r)) => Ok(Val::Vector(
            l.into_iter()
                .zip(r)
                .map(|(v, s)| vec_scalar(b, v, s, false))
                .collect(),
        )),
        (Val::Scalar(l), Val::Vector(r)) => Ok(Val::Vector(
            r.into_iter()
                .zip(l)
                .map(|(v, s)| vec_scalar(b, v, s, true))
                .collect(),
        )),
        (Val::Vector(l), Val::Vector(r)) => {
            let mut out = Vec::with_capacity(l.len());
            for (lv, rv) in l.into_iter().zip(r) {
                out.push(vec_vec(b, lv, rv)?);
            }
            Ok(Val::Vector(out))
        }
    }
}

fn vec_scalar(b: &BinaryExpr, v: Vec<Smp>, s: f64, swap: bool) -> Vec<Smp> {
    let mut out = Vec::with_capacity(v.len());
    for smp in v {
        let (l, r) = if swap { (s, smp.v) } else { (smp.v, s) };
        let (mut value, keep) = arith(b.op, l, r);
        if b.op.is_comparison() && swap {
            value = r;
        }
        if b.return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        out.push(Smp {
            labels: smp.labels,
            v: value,
        });
    }
    out
}

fn signature(
    labels: &[(String, String)],
    matching: &Option<(bool, Vec<String>)>,
) -> Vec<(String, String)> {
    match matching {
        None => labels.to_vec(),
        Some((true, on)) => labels
            .iter()
            .filter(|(n, _)| on.contains(n))
            .cloned()
            .collect(),
        Some((false, ign)) => labels
            .iter()
            .filter(|(n, _)| !ign.contains(n))
            .cloned()
            .collect(),
    }
}

fn vec_vec(b: &BinaryExpr, l: Vec<Smp>, r: Vec<Smp>) -> Result<Vec<Smp>> {
    match b.op {
        BinOp::And | BinOp::Or | BinOp::Unless => {
            let rsigs: std::collections::HashSet<Vec<(String, String)>> = r
                .iter()
                .map(|s| signature(&s.labels, &b.matching))
                .collect();
            return Ok(match b.op {
                BinOp::And => l
                    .into_iter()
                    .filter(|s| rsigs.contains(&signature(&s.labels, &b.matching)))
                    .collect(),
                BinOp::Unless => l
                    .into_iter()
                    .filter(|s| !rsigs.contains(&signature(&s.labels, &b.matching)))
                    .collect(),
                _ => {
                    let lsigs: std::collections::HashSet<Vec<(String, String)>> = l
                        .iter()
                        .map(|s| signature(&s.labels, &b.matching))
                        .collect();
                    let mut out = l;
                    out.extend(
                        r.into_iter()
                            .filter(|s| !lsigs.contains(&signature(&s.labels, &b.matching))),
                    );
                    out
                }
            });
        }
        _ => {}
    }
    // The "one" side is indexed by signature.
    let (many, one, swapped) = match b.group {
        GroupSide::Right => (r, l, true),
        _ => (l, r, false),
    };
    let mut index: HashMap<Vec<(String, String)>, Smp> = HashMap::new();
    for s in one {
        let sig = signature(&s.labels, &b.matching);
        if index.insert(sig.clone(), s).is_some() {
            let side = if swapped { "left" } else { "right" };
            return Err(Error::Invalid(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
                labels_string(&sig)
            )));
        }
    }
    let mut out = Vec::new();
    let mut seen: HashMap<Vec<(String, String)>, ()> = HashMap::new();
    for s in many {
        let sig = signature(&s.labels, &b.matching);
        let Some(o) = index.get(&sig) else { continue };
        let (lv, rv) = if swapped { (o.v, s.v) } else { (s.v, o.v) };
        let (mut value, keep) = arith(b.op, lv, rv);
        if b.return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let labels = result_labels(b, &s.labels, &o.labels);
        if b.group == GroupSide::None && seen.insert(labels.clone(), ()).is_some() {
            return Err(Error::Invalid(format!(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right) for {}",
                labels_string(&labels)
            )));
        }
        out.push(Smp {
            labels: Rc::new(labels),
            v: value,
        });
    }
    Ok(out)
}

fn result_labels(
    b: &BinaryExpr,
    many: &[(String, String)],
    one: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = if b.group == GroupSide::None {
        signature(many, &b.matching)
    } else {
        many.to_vec()
    };
    if b.group == GroupSide::None && b.matching.is_none() {
        out = many.to_vec();
    }
    for inc in &b.include {
        out.retain(|(n, _)| n != inc);
        if let Some(p) = one.iter().find(|(n, _)| n == inc) {
            out.push(p.clone());
        }
    }
    out.sort();
    out
}
