//! Metric query evaluation: range aggregations over log samples, vector
//! aggregations, binary operators, `vector()`, `label_replace()`.

use std::collections::HashMap;
use std::rc::Rc;

use crate::ast::*;
use crate::engine::{Ctx, needs_labels};
use crate::error::{Error, Result};
use crate::model::{LabelPairs, labels_string};
use crate::pipeline::{
    Cat, ERROR_DETAILS_LABEL, ERROR_LABEL, LabelSet, equality_labels, label_filter,
    parse_go_duration, run_stages,
};
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
        Expr::RangeAgg(r) => range_agg(ctx, r, steps),
        Expr::VectorAgg(a) => {
            let inner = eval(ctx, &a.inner, steps)?;
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

// ---- range aggregations ----

fn range_agg(ctx: &mut Ctx<'_>, r: &RangeAgg, steps: &Steps) -> Result<Val> {
    let (Some(&first), Some(&last)) = (steps.times.first(), steps.times.last()) else {
        return Ok(Val::Vector(Vec::new()));
    };
    // Windows are (t - offset - range, t - offset].
    let sel_start = first
        .saturating_sub(r.offset_ns)
        .saturating_sub(r.range_ns)
        .saturating_add(1);
    let sel_end = last.saturating_sub(r.offset_ns).saturating_add(1);
    let streams = ctx.select(&r.log, sel_start, sel_end)?;
    let with_labels = needs_labels(&r.log.stages) || r.unwrap.is_some() || r.grouping.is_some();
    let mut series: HashMap<LabelPairs, Vec<(i64, f64)>> = HashMap::new();
    let mut lbls = LabelSet::default();
    for s in streams {
        for e in s.entries {
            ctx.tick()?;
            let ts = e.ts_ns;
            let mut line = e.line;
            let key = if with_labels || !e.metadata.is_empty() {
                lbls.reset(&s.labels, &e.metadata);
                if !run_stages(&r.log.stages, ts, &mut line, &mut lbls) {
                    continue;
                }
                let mut value = 1.0;
                if let Some(u) = &r.unwrap {
                    value = unwrap_value(u, &mut lbls);
                    let mut keep = true;
                    for f in &u.post_filters {
                        if !label_filter(f, &mut lbls) {
                            keep = false;
                            break;
                        }
                    }
                    if !keep {
                        continue;
                    }
                }
                if matches!(r.op, RangeOp::Bytes | RangeOp::BytesRate) {
                    value = line.len() as f64;
                }
                let mut key = lbls.sorted();
                if let Some(g) = &r.grouping {
                    key = group_labels(&key, g);
                }
                series.entry(key).or_default().push((ts, value));
                continue;
            } else {
                if !r.log.stages.is_empty() && !run_stages(&r.log.stages, ts, &mut line, &mut lbls)
                {
                    continue;
                }
                s.labels.clone()
            };
            let value = if matches!(r.op, RangeOp::Bytes | RangeOp::BytesRate) {
                line.len() as f64
            } else {
                1.0
            };
            series.entry(key).or_default().push((ts, value));
        }
    }
    // Errors are not allowed in metrics unless filtered out.
    for k in series.keys() {
        if let Some((_, err)) = k.iter().find(|(n, _)| n == ERROR_LABEL) {
            return Err(Error::Pipeline(format!(
                "pipeline error: '{err}' for series: '{}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n",
                labels_string(k)
            )));
        }
    }
    if series.len() > ctx.limits.max_series && r.op != RangeOp::Absent {
        return Err(series_limit(ctx.limits.max_series));
    }
    let range_s = r.range_ns as f64 / 1e9;
    let mut per_step: Vec<Vec<Smp>> = vec![Vec::new(); steps.times.len()];
    let mut all: Vec<(Labels, Vec<(i64, f64)>)> = series
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|p| p.0);
            (Rc::new(k), v)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if r.op == RangeOp::Absent {
        let labels: Labels = Rc::new(equality_labels(&r.log.matchers));
        for (i, &t) in steps.times.iter().enumerate() {
            let hi = t.saturating_sub(r.offset_ns);
            let lo = hi.saturating_sub(r.range_ns);
            let present = all.iter().any(|(_, pts)| {
                let a = pts.partition_point(|p| p.0 <= lo);
                let b = pts.partition_point(|p| p.0 <= hi);
                b > a
            });
            if !present {
                per_step[i].push(Smp {
                    labels: labels.clone(),
                    v: 1.0,
                });
            }
        }
        return Ok(Val::Vector(per_step));
    }
    for (labels, pts) in &all {
        ctx.tick()?;
        let mut a = 0usize;
        let mut b = 0usize;
        for (i, &t) in steps.times.iter().enumerate() {
            let hi = t.saturating_sub(r.offset_ns);
            let lo = hi.saturating_sub(r.range_ns);
            while a < pts.len() && pts[a].0 <= lo {
                a += 1;
            }
            if b < a {
                b = a;
            }
            while b < pts.len() && pts[b].0 <= hi {
                b += 1;
            }
            if b <= a {
                continue;
            }
            let w = &pts[a..b];
            if let Some(v) = range_fn(r.op, r.param, w, lo, hi, range_s) {
                per_step[i].push(Smp {
                    labels: labels.clone(),
                    v,
                });
            }
        }
    }
    Ok(Val::Vector(per_step))
}

fn unwrap_value(u: &Unwrap, lbls: &mut LabelSet) -> f64 {
    let raw = lbls.get(&u.label).map(str::to_string);
    lbls.del(&u.label);
    if lbls.has_err() {
        return 0.0;
    }
    let raw = raw.unwrap_or_default();
    let res: std::result::Result<f64, String> = match u.conv {
        UnwrapConv::Float => raw
            .trim()
            .parse::<f64>()
            .map_err(|e| format!("strconv.ParseFloat: parsing {raw:?}: {e}")),
        UnwrapConv::Duration => parse_go_duration(&raw)
            .map(|d| d as f64 / 1e9)
            .ok_or_else(|| format!("time: invalid duration {raw:?}")),
        UnwrapConv::Bytes => crate::lexer::parse_bytes(&raw)
            .map(|b| b as f64)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {raw:?}: invalid syntax")),
    };
    match res {
        Ok(v) => v,
        Err(e) => {
            lbls.set(
                ERROR_LABEL.into(),
                "SampleExtractionErr".into(),
                Cat::Parsed,
            );
            lbls.set(ERROR_DETAILS_LABEL.into(), e, Cat::Parsed);
            0.0
        }
    }
}

fn range_fn(
    op: RangeOp,
    param: Option<f64>,
    w: &[(i64, f64)],
    lo: i64,
    hi: i64,
    range_s: f64,
) -> Option<f64> {
    let n = w.len() as f64;
    let sum = || w.iter().map(|p| p.1).sum::<f64>();
    Some(match op {
        RangeOp::Count => n,
        RangeOp::Rate => {
            // Without unwrap every value is 1: count / range; with unwrap: sum / range.
            sum() / range_s
        }
        RangeOp::Bytes | RangeOp::Sum => sum(),
        RangeOp::BytesRate => sum() / range_s,
        RangeOp::Avg => sum() / n,
        RangeOp::Min => {
            w.iter().map(|p| p.1).fold(
                f64::INFINITY,
                |a, b| if b < a || a.is_nan() { b } else { a },
            )
        }
        RangeOp::Max => {
            w.iter().map(|p| p.1).fold(
                f64::NEG_INFINITY,
                |a, b| if b > a || a.is_nan() { b } else { a },
            )
        }
        RangeOp::Stdvar | RangeOp::Stddev => {
            let mean = sum() / n;
            let var = w.iter().map(|p| (p.1 - mean) * (p.1 - mean)).sum::<f64>() / n;
            if op == RangeOp::Stddev {
                var.sqrt()
            } else {
                var
            }
        }
        RangeOp::Quantile => {
            let mut vals: Vec<f64> = w.iter().map(|p| p.1).collect();
            quantile(param.unwrap_or(0.5), &mut vals)
        }
        RangeOp::First => w.first()?.1,
        RangeOp::Last => w.last()?.1,
        RangeOp::RateCounter => extrapolated_rate(w, lo, hi, range_s)?,
        RangeOp::Absent => 1.0,
    })
}

/// Prometheus's `quantile` (linear interpolation between closest ranks).
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| a.total_cmp(b));
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(vals.len() - 1);
    let weight = rank - rank.floor();
    vals[lower] * (1.0 - weight) + vals[upper] * weight
}

/// Prometheus's counter `rate` with extrapolation to the window edges.
fn extrapolated_rate(w: &[(i64, f64)], lo: i64, hi: i64, range_s: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    for p in w.windows(2) {
        if p[1].1 < p[0].1 {
            result += p[0].1;
        }
    }
    let mut to_start = (first.0 - lo) as f64 / 1e9;
    let to_end = (hi - last.0) as f64 / 1e9;
    let sampled = (last.0 - first.0) as f64 / 1e9;
    let avg = sampled / (w.len() - 1) as f64;
    if result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    Some(result * (interval / sampled) / range_s)
}

fn group_labels(labels: &[(String, String)], g: &Grouping) -> Vec<(String, String)> {
    labels
        .iter()
        .filter(|(n, _)| {
            let listed = g.labels.iter().any(|l| l == n);
            if g.without { !listed } else { listed }
        })
        .cloned()
        .collect()
}

// ---- vector aggregations ----

fn vector_agg(a: &VectorAgg, v: Vec<Smp>) -> Vec<Smp> {
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
                VectorOp::Avg => sum / n,
                VectorOp::Count => n,
                VectorOp::Min => vals
                    .iter()
                    .copied()
                    .fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a }),
                VectorOp::Max => vals
                    .iter()
                    .copied()
                    .fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a }),
                VectorOp::Stddev | VectorOp::Stdvar => {
                    let mean = sum / n;
                    let var = vals.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
                    if a.op == VectorOp::Stddev {
                        var.sqrt()
                    } else {
                        var
                    }
                }
                _ => f64::NAN,
            };
            Smp { labels, v }
        })
        .collect()
}

// ---- binary operators ----

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

fn binary(ctx: &mut Ctx<'_>, b: &BinaryExpr, steps: &Steps) -> Result<Val> {
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
