//! Metric query evaluation: range aggregations over log samples, vector
//! aggregations, binary operators, `vector()`, `label_replace()`.

use std::collections::HashMap;
use std::rc::Rc;

use crate::ast::*;
use crate::engine::Ctx;
use crate::error::{Error, Result};
use crate::result::{QueryResult, Sample, Series};

type Labels = Rc<Vec<(String, String)>>;

#[derive(Debug, Clone)]
struct Smp {
    labels: Labels,
    v: f64,
}

/// A value at every step.
enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<Vec<Smp>>),
}

struct Steps {
    times: Vec<i64>,
}

pub(crate) fn eval_range(
    ctx: &mut Ctx<'_>,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
) -> Result<QueryResult> {
    let mut times = Vec::new();
    let mut t = start;
    while t <= end {
        times.push(t);
        match t.checked_add(step) {
            Some(n) => t = n,
            None => break,
        }
    }
    let steps = Steps { times };
    let v = eval(ctx, expr, &steps)?;
    let mut map: HashMap<Labels, usize> = HashMap::new();
    let mut series: Vec<Series> = Vec::new();
    match v {
        Val::Scalar(vals) => {
            series.push(Series {
                labels: Vec::new(),
                points: steps.times.iter().copied().zip(vals).collect(),
            });
        }
        Val::Vector(per_step) => {
            for (i, vec) in per_step.into_iter().enumerate() {
                for s in vec {
                    let idx = *map.entry(s.labels.clone()).or_insert_with(|| {
                        series.push(Series {
                            labels: s.labels.as_ref().clone(),
                            points: Vec::new(),
                        });
                        series.len() - 1
                    });
                    series[idx].points.push((steps.times[i], s.v));
                }
            }
            if series.len() > ctx.limits.max_series {
                return Err(series_limit(ctx.limits.max_series));
            }
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
    }
    Ok(QueryResult::Matrix(series))
}

fn series_limit(n: usize) -> Error {
    Error::Limit(format!(
        "maximum of series ({n}) reached for a single query"
    ))
}

pub(crate) fn eval_instant(ctx: &mut Ctx<'_>, expr: &Expr, t: i64) -> Result<QueryResult> {
    let steps = Steps { times: vec![t] };
    match eval(ctx, expr, &steps)? {
        Val::Scalar(v) => Ok(QueryResult::Scalar {
            ts_ns: t,
            value: v.first().copied().unwrap_or(f64::NAN),
        }),
        Val::Vector(mut per_step) => {
            let vec = per_step.pop().unwrap_or_default();
            if vec.len() > ctx.limits.max_series {
                return Err(series_limit(ctx.limits.max_series));
            }
            let mut out: Vec<Sample> = vec
                .into_iter()
                .map(|s| Sample {
                    labels: s.labels.as_ref().clone(),
                    ts_ns: t,
                    value: s.v,
                })
                .collect();
            if !keeps_order(expr) {
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
            Ok(QueryResult::Vector(out))
        }
    }
}

/// Like Loki's `Sortable`: instant results keep the evaluation order only
/// when the query contains `sort` or `sort_desc`; otherwise they are sorted
/// by labels.
fn keeps_order(e: &Expr) -> bool {
    match e {
        Expr::VectorAgg(v) => {
            matches!(v.op, VectorOp::Sort | VectorOp::SortDesc) || keeps_order(&v.inner)
        }
        Expr::Binary(b) => keeps_order(&b.lhs) || keeps_order(&b.rhs),
        Expr::LabelReplace(l) => keeps_order(&l.inner),
        _ => false,
    }
}

fn eval(ctx: &mut Ctx<'_>, expr: &Expr, steps: &Steps) -> Result<Val> {
    ctx.check_deadline()?;
    match expr {
        Expr::Log(_) => Err(Error::Invalid(
            "log queries cannot be used as metric queries".into(),
        )),
        Expr::Literal(v) => Ok(Val::Scalar(vec![*v; steps.times.len()])),
        Expr::Vector(v) => {
            let l: Labels = Rc::new(Vec::new());
            Ok(Val::Vector(
                steps
                    .times
                    .iter()
                    .map(|_| {
                        vec![Smp {
                            labels: l.clone(),
                            v: *v,
                        }]
                    })
                    .collect(),
            ))
        }
        Expr::RangeAgg(r) => range_agg(ctx, r, steps, None, None),
        Expr::VectorAgg(a) => {
            let inner = match &*a.inner {
                Expr::RangeAgg(r) => {
                    let all = || Grouping {
                        without: false,
                        labels: Vec::new(),
                    };
                    // count/bytes sums are exact: merge series while reading.
                    let push = (a.op == VectorOp::Sum
                        && r.grouping.is_none()
                        && matches!(r.op, RangeOp::Count | RangeOp::Bytes))
                    .then(|| a.grouping.clone().unwrap_or_else(all));
                    // Aggregations that keep only the `by` labels need no others.
                    let reducing = !matches!(
                        a.op,
                        VectorOp::Topk | VectorOp::Bottomk | VectorOp::Sort | VectorOp::SortDesc
                    );
                    let hint = match &a.grouping {
                        _ if !reducing => None,
                        None => Some(all()),
                        Some(g) if !g.without => Some(g.clone()),
                        Some(_) => None,
                    };
                    range_agg(ctx, r, steps, push.as_ref(), hint.as_ref())?
                }
                inner => eval(ctx, inner, steps)?,
            };
            let Val::Vector(per_step) = inner else {
                return Err(Error::Invalid(
                    "vector aggregation expects a vector, got a scalar".into(),
                ));
            };
            Ok(Val::Vector(
                per_step.into_iter().map(|v| vector_agg(a, v)).collect(),
            ))
        }
        Expr::Binary(b) => binary(ctx, b, steps),
        Expr::LabelReplace(l) => {
            let inner = eval(ctx, &l.inner, steps)?;
            let Val::Vector(per_step) = inner else {
                return Err(Error::Invalid("label_replace expects a vector".into()));
            };
            let mut cache: HashMap<Labels, Labels> = HashMap::new();
            Ok(Val::Vector(
                per_step
                    .into_iter()
                    .map(|v| {
                        v.into_iter()
                            .map(|s| {
                                let labels = cache
                                    .entry(s.labels.clone())
                                    .or_insert_with(|| Rc::new(label_replace(l, &s.labels)))
                                    .clone();
                                Smp { labels, v: s.v }
                            })
                            .collect()
                    })
                    .collect(),
            ))
        }
    }
}

fn label_replace(l: &LabelReplace, labels: &[(String, String)]) -> Vec<(String, String)> {
    let src = labels
        .iter()
        .find(|(n, _)| *n == l.src)
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let Some(caps) = l.regex.captures(src) else {
        return labels.to_vec();
    };
    let mut val = String::new();
    caps.expand(&l.replacement, &mut val);
    let mut out: Vec<(String, String)> = labels
        .iter()
        .filter(|(n, _)| *n != l.dst)
        .cloned()
        .collect();
    if !val.is_empty() {
        out.push((l.dst.clone(), val));
        out.sort();
    }
    out
}

mod ops;
mod range;

use ops::{binary, vector_agg};
use range::range_agg;
