//! Range aggregations: sample extraction from log lines (unwrap, grouping,
//! parser hints) and the `*_over_time` functions over `(t - range, t]`.

use std::rc::Rc;

use super::{Labels, Smp, Steps, Val, series_limit};
use crate::ast::*;
use crate::engine::Ctx;
use crate::error::{Error, Result};
use crate::labels::{KeyIndex, LabelSet};
use crate::model::{Entry, LabelPairs, Stream, labels_string};
use crate::pipeline::{
    Cat, ERROR_DETAILS_LABEL, ERROR_LABEL, equality_labels, hint_names, label_filter,
    parse_go_duration, run_stages,
};

/// Evaluates a range aggregation. `push` is the grouping of an enclosing
/// `sum` pushed down into sample extraction (for `count_over_time` and
/// `bytes_over_time`, whose sums are exact): series are then merged while
/// reading instead of being materialised one per label set. `hint` is the
/// `by` grouping of an enclosing aggregation: parsers then extract only the
/// labels it and the pipeline's filters use, as Loki's parser hints do.
pub(super) fn range_agg(
    ctx: &mut Ctx<'_>,
    r: &RangeAgg,
    steps: &Steps,
    push: Option<&Grouping>,
    hint: Option<&Grouping>,
) -> Result<Val> {
    let (Some(&first), Some(&last)) = (steps.times.first(), steps.times.last()) else {
        return Ok(Val::Vector(Vec::new()));
    };
    // Windows are (t - offset - range, t - offset].
    let sel_start = first
        .saturating_sub(r.offset_ns)
        .saturating_sub(r.range_ns)
        .saturating_add(1);
    let sel_end = last.saturating_sub(r.offset_ns).saturating_add(1);
    let streams = ctx.select(&r.log, sel_start, sel_end, None)?;
    let grouping = r.grouping.as_ref().or(push);
    let keep_label = |n: &str| match grouping {
        None => true,
        Some(g) => g.labels.iter().any(|l| l == n) != g.without,
    };
    let is_bytes = matches!(r.op, RangeOp::Bytes | RangeOp::BytesRate);
    let hint_group = match &r.grouping {
        Some(g) if !g.without => Some(g),
        Some(_) => None,
        None => hint,
    };
    let needed = hint_group.and_then(|g| hint_names(&r.log.stages, r.unwrap.as_ref(), &g.labels));
    let mut keys = KeyIndex::default();
    let mut samples: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut buf = Vec::new();
    let mut refs = Vec::new();
    for s in streams {
        let Stream { labels, entries } = s;
        let mut lbls = LabelSet::new(&labels, std::mem::take(&mut buf)).with_hints(needed.as_ref());
        let mut base_idx: Option<usize> = None;
        for e in entries {
            ctx.tick()?;
            let Entry {
                ts_ns: ts,
                mut line,
                metadata,
                ..
            } = e;
            lbls.reset();
            if !metadata.is_empty() {
                lbls.add_metadata(metadata);
            }
            if !r.log.stages.is_empty() && !run_stages(&r.log.stages, ts, &mut line, &mut lbls) {
                continue;
            }
            let mut value = if is_bytes { line.len() as f64 } else { 1.0 };
            if let Some(u) = &r.unwrap {
                value = unwrap_value(u, &mut lbls);
                if !u.post_filters.iter().all(|f| label_filter(f, &mut lbls)) {
                    continue;
                }
            }
            // Grouping must not hide an error (Loki's `GroupedLabels` keeps
            // every label of a sample with an error): fail like Loki does.
            if lbls.has_err() {
                return Err(pipeline_error(&lbls.sorted()));
            }
            let idx = match base_idx {
                Some(i) if lbls.is_base() => i,
                _ => {
                    lbls.sorted_refs(&mut refs, keep_label);
                    let (i, _) = keys.get_or_insert(|| lbls.pairs(&refs));
                    if lbls.is_base() {
                        base_idx = Some(i);
                    }
                    i
                }
            };
            ctx.stats.post_filter_lines += 1;
            if idx == samples.len() {
                samples.push(Vec::new());
            }
            samples[idx].push((ts, value));
        }
        buf = lbls.into_buf();
    }
    // Errors are not allowed in metrics unless filtered out.
    for k in &keys.keys {
        if k.iter().any(|(n, _)| n == ERROR_LABEL) {
            return Err(pipeline_error(k));
        }
    }
    let series: Vec<(LabelPairs, Vec<(i64, f64)>)> = keys.keys.into_iter().zip(samples).collect();
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
    // Counts and byte sums are exact integers: answer each window in O(1)
    // from prefix sums instead of walking it at every step.
    let integral = r.unwrap.is_none()
        && matches!(
            r.op,
            RangeOp::Count | RangeOp::Rate | RangeOp::Bytes | RangeOp::BytesRate
        );
    let mut prefix: Vec<f64> = Vec::new();
    for (labels, pts) in &all {
        ctx.tick()?;
        if integral {
            prefix.clear();
            prefix.push(0.0);
            let mut acc = 0.0;
            for p in pts {
                acc += p.1;
                prefix.push(acc);
            }
        }
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
            let value = if integral {
                let sum = prefix[b] - prefix[a];
                Some(match r.op {
                    RangeOp::Rate | RangeOp::BytesRate => sum / range_s,
                    _ => sum,
                })
            } else {
                range_fn(r.op, r.param, w, r.range_ns, range_s)
            };
            if let Some(v) = value {
                per_step[i].push(Smp {
                    labels: labels.clone(),
                    v,
                });
            }
        }
    }
    Ok(Val::Vector(per_step))
}

fn pipeline_error(labels: &[(String, String)]) -> Error {
    let err = labels
        .iter()
        .find(|(n, _)| n == ERROR_LABEL)
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    Error::Pipeline(format!(
        "pipeline error: '{err}' for series: '{}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n",
        labels_string(labels)
    ))
}

fn unwrap_value(u: &Unwrap, lbls: &mut LabelSet<'_>) -> f64 {
    let raw = lbls.get(&u.label).map(str::to_string);
    lbls.del(&u.label);
    if lbls.has_err() {
        return 0.0;
    }
    let raw = raw.unwrap_or_default();
    let res: std::result::Result<f64, String> = match u.conv {
        UnwrapConv::Float => raw
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {raw:?}: invalid syntax")),
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
    range_ns: i64,
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
        RangeOp::Avg => mean(w.iter().map(|p| p.1)),
        RangeOp::Min => w
            .iter()
            .map(|p| p.1)
            .fold(f64::NAN, |a, b| if b < a || a.is_nan() { b } else { a }),
        RangeOp::Max => w
            .iter()
            .map(|p| p.1)
            .fold(f64::NAN, |a, b| if b > a || a.is_nan() { b } else { a }),
        RangeOp::Stdvar => variance(w.iter().map(|p| p.1)),
        RangeOp::Stddev => variance(w.iter().map(|p| p.1)).sqrt(),
        RangeOp::Quantile => {
            let mut vals: Vec<f64> = w.iter().map(|p| p.1).collect();
            quantile(param.unwrap_or(0.5), &mut vals)
        }
        RangeOp::First => w.first()?.1,
        RangeOp::Last => w.last()?.1,
        RangeOp::RateCounter => extrapolated_rate(w, range_ns),
        RangeOp::Absent => 1.0,
    })
}

/// Incremental mean as Loki computes it (robust to infinities).
pub(super) fn mean(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut count) = (0.0f64, 0.0f64);
    for v in vals {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

/// Population variance with Welford's algorithm, as Loki computes it.
pub(super) fn variance(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut aux, mut count, mut mean) = (0.0f64, 0.0f64, 0.0f64);
    for v in vals {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        aux += delta * (v - mean);
    }
    aux / count
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

/// `rate_counter` as Loki computes it: Prometheus's extrapolated counter
/// rate, but with the window taken as `(first - range, last]` in
/// milliseconds and 0 for fewer than two samples.
fn extrapolated_rate(w: &[(i64, f64)], range_ns: i64) -> f64 {
    if w.len() < 2 {
        return 0.0;
    }
    let ms = |ns: i64| ns.div_euclid(1_000_000);
    let (first, last) = (w[0], w[w.len() - 1]);
    let range_ms = ms(range_ns);
    let range_start = ms(first.0) - range_ms;
    let range_end = ms(last.0);
    let mut result = last.1 - first.1;
    let mut last_value = 0.0;
    for p in w {
        if p.1 < last_value {
            result += last_value;
        }
        last_value = p.1;
    }
    let mut to_start = (ms(first.0) - range_start) as f64 / 1000.0;
    let to_end = (range_end - ms(last.0)) as f64 / 1000.0;
    let sampled = (ms(last.0) - ms(first.0)) as f64 / 1000.0;
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
    result * (interval / sampled) / (range_ns as f64 / 1e9)
}

pub(super) fn group_labels(labels: &[(String, String)], g: &Grouping) -> Vec<(String, String)> {
    labels
        .iter()
        .filter(|(n, _)| {
            let listed = g.labels.iter().any(|l| l == n);
            if g.without { !listed } else { listed }
        })
        .cloned()
        .collect()
}
