//! Range aggregations: sample extraction from log lines (unwrap, grouping,
//! parser hints) and the `*_over_time` functions over `(t - range, t]`.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::{Labels, Smp, Steps, Val, series_limit};
use crate::ast::*;
use crate::engine::{Ctx, Needs};
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
    // Counts and byte sums are exact integers: they are summed per elementary interval
    // between window bounds as lines are read (never kept per line), and each window is
    // then answered in O(1) from prefix sums. `absent_over_time` only needs presence.
    let integral = r.unwrap.is_none()
        && matches!(
            r.op,
            RangeOp::Count | RangeOp::Rate | RangeOp::Bytes | RangeOp::BytesRate
        );
    let absent = r.op == RangeOp::Absent;
    let bounds = (integral || absent).then(|| Bounds::new(steps, r));
    let mut keys = KeyIndex::default();
    // Per series: (elementary interval, samples, sum) runs, or every sample with the
    // ordinal of the stream it came from (ties in time keep the source's stream order).
    let mut buckets: Vec<Vec<Bucket>> = Vec::new();
    let mut samples: Vec<Vec<Point>> = Vec::new();
    let mut stream_ords: HashMap<LabelPairs, u32> = HashMap::new();
    // Past the series limit (which fails the query once reading is done, unless a
    // pipeline error comes first) values are no longer kept.
    let max_series = if absent {
        usize::MAX
    } else {
        ctx.limits.max_series
    };
    let mut buf = Vec::new();
    let mut refs = Vec::new();
    let mut last_bucket = 0usize;
    // With no pipeline, `count_over_time`, `rate` and `absent_over_time` use no line, and
    // a `by` grouping names every label they use.
    let plain = r.log.stages.is_empty() && r.unwrap.is_none();
    let names: Option<HashSet<String>> = match grouping {
        Some(g) if plain && !g.without => Some(g.labels.iter().cloned().collect()),
        _ => None,
    };
    let needs = Needs {
        lines: !plain || is_bytes,
        label_names: names.as_ref(),
    };
    ctx.select_each(&r.log, sel_start, sel_end, None, needs, &mut |ctx, s| {
        let Stream { labels, entries } = s;
        let next = stream_ords.len() as u32;
        let ord = match stream_ords.get(&labels) {
            Some(o) => *o,
            None if bounds.is_none() => *stream_ords.entry(labels.clone()).or_insert(next),
            None => 0,
        };
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
            if keys.len() > max_series {
                continue;
            }
            match &bounds {
                Some(b) => {
                    let Some(k) = b.bucket(ts, &mut last_bucket) else {
                        continue;
                    };
                    // absent_over_time: presence over all series together.
                    let idx = if absent { 0 } else { idx };
                    if idx >= buckets.len() {
                        buckets.resize_with(idx + 1, Vec::new);
                    }
                    let runs = &mut buckets[idx];
                    match runs.last_mut() {
                        Some(run) if run.k == k => {
                            run.n += 1;
                            run.sum += value;
                        }
                        _ => runs.push(Bucket {
                            k,
                            n: 1,
                            sum: value,
                        }),
                    }
                }
                None => {
                    if idx >= samples.len() {
                        samples.resize_with(idx + 1, Vec::new);
                    }
                    samples[idx].push((ts, value, ord));
                }
            }
        }
        buf = lbls.into_buf();
        Ok(())
    })?;
    // Errors are not allowed in metrics unless filtered out.
    for k in &keys.keys {
        if k.iter().any(|(n, _)| n == ERROR_LABEL) {
            return Err(pipeline_error(k));
        }
    }
    if keys.len() > max_series {
        return Err(series_limit(ctx.limits.max_series));
    }
    let range_s = r.range_ns as f64 / 1e9;
    let mut per_step: Vec<Vec<Smp>> = vec![Vec::new(); steps.times.len()];
    if let Some(b) = &bounds {
        let mut counts: Vec<u64> = Vec::new();
        let mut sums: Vec<f64> = Vec::new();
        if absent {
            let runs = buckets.first().map(Vec::as_slice).unwrap_or_default();
            b.prefix(runs, &mut counts, &mut sums);
            let labels: Labels = Rc::new(equality_labels(&r.log.matchers));
            for (i, (ia, ib)) in b.windows.iter().enumerate() {
                if counts[ib + 1] == counts[ia + 1] {
                    per_step[i].push(Smp {
                        labels: labels.clone(),
                        v: 1.0,
                    });
                }
            }
            return Ok(Val::Vector(per_step));
        }
        let mut all: Vec<(Labels, Vec<Bucket>)> = keys
            .keys
            .into_iter()
            .zip(buckets.into_iter().chain(std::iter::repeat_with(Vec::new)))
            .map(|(k, v)| (Rc::new(k), v))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, mut runs) in all {
            ctx.tick()?;
            runs.sort_by_key(|r| r.k);
            b.prefix(&runs, &mut counts, &mut sums);
            for (i, (ia, ib)) in b.windows.iter().enumerate() {
                if counts[ib + 1] == counts[ia + 1] {
                    continue;
                }
                let sum = sums[ib + 1] - sums[ia + 1];
                let v = match r.op {
                    RangeOp::Rate | RangeOp::BytesRate => sum / range_s,
                    _ => sum,
                };
                per_step[i].push(Smp {
                    labels: labels.clone(),
                    v,
                });
            }
        }
        return Ok(Val::Vector(per_step));
    }
    let mut all: Vec<(Labels, Vec<Point>)> = keys
        .keys
        .into_iter()
        .zip(samples.into_iter().chain(std::iter::repeat_with(Vec::new)))
        .map(|(k, mut v)| {
            v.sort_by_key(|p| (p.0, p.2));
            (Rc::new(k), v)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut w: Vec<(i64, f64)> = Vec::new();
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
            w.clear();
            w.extend(pts[a..b].iter().map(|p| (p.0, p.1)));
            if let Some(v) = range_fn(r.op, r.param, &w, r.range_ns, range_s) {
                per_step[i].push(Smp {
                    labels: labels.clone(),
                    v,
                });
            }
        }
    }
    Ok(Val::Vector(per_step))
}

/// A sample: time, value and the ordinal of the stream it came from.
type Point = (i64, f64, u32);

/// A run of samples of one series in one elementary interval.
struct Bucket {
    k: u32,
    n: u64,
    sum: f64,
}

/// The elementary intervals cut by every window bound `(t - offset - range, t - offset]`:
/// `bounds` sorted and distinct; interval `k` is `(bounds[k-1], bounds[k]]`, so window
/// `(bounds[a], bounds[b]]` is intervals `a+1 ..= b`.
struct Bounds {
    bounds: Vec<i64>,
    /// Per step: the positions of its window's low and high bound in `bounds`.
    windows: Vec<(usize, usize)>,
}

impl Bounds {
    fn new(steps: &Steps, r: &RangeAgg) -> Self {
        let his: Vec<i64> = steps
            .times
            .iter()
            .map(|t| t.saturating_sub(r.offset_ns))
            .collect();
        let los: Vec<i64> = his.iter().map(|h| h.saturating_sub(r.range_ns)).collect();
        let mut bounds: Vec<i64> = his.iter().chain(&los).copied().collect();
        bounds.sort_unstable();
        bounds.dedup();
        let pos = |v: i64| bounds.partition_point(|b| *b < v);
        let windows = los
            .iter()
            .zip(&his)
            .map(|(l, h)| (pos(*l), pos(*h)))
            .collect();
        Bounds { bounds, windows }
    }

    /// The interval holding `ts`, `None` outside every window; `hint` is the last answer.
    fn bucket(&self, ts: i64, hint: &mut usize) -> Option<u32> {
        let b = &self.bounds;
        let h = *hint;
        let k = if h > 0 && h < b.len() && b[h - 1] < ts && ts <= b[h] {
            h
        } else {
            b.partition_point(|x| *x < ts)
        };
        if k == 0 || k >= b.len() {
            return None;
        }
        *hint = k;
        Some(k as u32)
    }

    /// Prefix counts and sums over the intervals of `runs` (sorted by interval): entry
    /// `j` covers intervals below `j`.
    fn prefix(&self, runs: &[Bucket], counts: &mut Vec<u64>, sums: &mut Vec<f64>) {
        let n = self.bounds.len() + 1;
        counts.clear();
        counts.resize(n, 0);
        sums.clear();
        sums.resize(n, 0.0);
        for r in runs {
            counts[r.k as usize + 1] += r.n;
            sums[r.k as usize + 1] += r.sum;
        }
        for j in 1..n {
            counts[j] += counts[j - 1];
            sums[j] += sums[j - 1];
        }
    }
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
