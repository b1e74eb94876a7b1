//! Range functions over `anchored` / `smoothed` range selectors (Prometheus's
//! experimental extended range selectors; see `parse::extended` for the syntax).
//!
//! The window of a modified selector reaches one lookback delta further back (and, when
//! smoothed, one further ahead), so that the samples around the range's ends are at hand:
//!
//! - `anchored`: the range `(start, end]` plus the last sample at or before `start` (the
//!   anchor). `rate`/`increase`/`delta` are the difference between the last sample and the
//!   anchor (or the first sample if there is no anchor), corrected for counter resets,
//!   without extrapolation; `changes`/`resets` count from the anchor on.
//! - `smoothed`: the values at exactly `start` and `end` are interpolated linearly between
//!   the samples around them (a counter reset between them is taken as a restart from 0),
//!   and `rate`/`increase`/`delta` are their difference, corrected for resets in between.

use super::range::{Out, RangeCtx};
use crate::error::Result;
use crate::eval::QueryCtx;
use crate::histogram::{CounterResetHint, FloatHistogram};
use crate::model::{FPoint, HPoint, METRIC_NAME};
use crate::parse::RangeModifier;

/// The `(mint, maxt]` window a modified selector needs for the range `(start, end]`.
pub(crate) fn window_bounds(m: RangeModifier, start: i64, end: i64, lookback: i64) -> (i64, i64) {
    match m {
        RangeModifier::Anchored => (start - lookback, end),
        RangeModifier::Smoothed => (start - lookback, end + lookback),
    }
}

/// Evaluates `rc.name` on one window of a modified selector (`f`, `h`: its points in
/// [`window_bounds`]). The function is one the modifier allows (checked before).
pub(crate) fn call(
    rc: &RangeCtx<'_, '_>,
    m: RangeModifier,
    f: &[FPoint],
    h: &[HPoint],
) -> Result<Option<Out>> {
    let smoothed = m == RangeModifier::Smoothed;
    Ok(match rc.name {
        "rate" => rate(rc, f, h, smoothed, true, true),
        "increase" => rate(rc, f, h, smoothed, true, false),
        "delta" => rate(rc, f, h, smoothed, false, false),
        "changes" | "resets" => {
            let Some((f0, h0)) = anchor(f, h, rc.range_start) else {
                return Ok(None);
            };
            let n = transitions(&f[f0..], &h[h0..], rc.name == "resets");
            Some(Out::F(n as f64))
        }
        _ => None,
    })
}

fn metric_name<'a>(rc: &'a RangeCtx<'_, '_>) -> &'a str {
    rc.metric.get(METRIC_NAME)
}

fn warn_mixed_schemas(rc: &RangeCtx<'_, '_>) {
    rc.ev.ctx.warn(format!(
        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {:?}",
        metric_name(rc)
    ));
}

/// `rate`, `increase` (`is_counter`) and `delta` of a modified window.
fn rate(
    rc: &RangeCtx<'_, '_>,
    f: &[FPoint],
    h: &[HPoint],
    smoothed: bool,
    is_counter: bool,
    is_rate: bool,
) -> Option<Out> {
    if !f.is_empty() && !h.is_empty() {
        rc.ev.ctx.warn(format!(
            "encountered a mix of histograms and floats for metric name {:?}",
            metric_name(rc)
        ));
        return None;
    }
    let secs = rc.range_ms as f64 / 1000.0;
    if !h.is_empty() {
        let res = histogram_rate(rc, h, smoothed, is_counter)?;
        return Some(Out::H(if is_rate { res.div_by(secs) } else { res }));
    }
    let v = float_rate(f, rc.range_start, rc.range_end, smoothed, is_counter)?;
    Some(Out::F(if is_rate { v / secs } else { v }))
}

/// Indices of the samples standing for the range's ends among `ts` (the window's
/// timestamps, ascending, not empty): the first is the last at or before `start` (or the
/// first of all), the last is the last of all, or when smoothed the first at or after
/// `end` (or the last of all). None when no sample lies after `start`, or (smoothed) all
/// lie after `end`.
fn ends(
    ts: impl Fn(usize) -> i64,
    n: usize,
    start: i64,
    end: i64,
    smoothed: bool,
) -> Option<(usize, usize)> {
    let first = partition(n, |i| ts(i) <= start).saturating_sub(1);
    let last = if smoothed {
        partition(n - 1, |i| ts(i) < end)
    } else {
        n - 1
    };
    if ts(last) <= start || (smoothed && ts(first) > end) {
        return None;
    }
    Some((first, last))
}

/// Number of leading indices in `0..n` for which `pred` holds (`pred` is monotone).
fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The value at `t` on the line from `a` to `b`; a counter that dropped from `a` to `b`
/// restarted from 0.
pub(crate) fn interpolate(a: &FPoint, b: &FPoint, t: i64, is_counter: bool) -> f64 {
    let y1 = if is_counter && b.f < a.f { 0.0 } else { a.f };
    y1 + (b.f - y1) * (t - a.t) as f64 / (b.t - a.t) as f64
}

/// The float increase (`is_counter`) or delta over `(start, end]`.
pub(crate) fn float_rate(
    f: &[FPoint],
    start: i64,
    end: i64,
    smoothed: bool,
    is_counter: bool,
) -> Option<f64> {
    if f.is_empty() {
        return None;
    }
    let (first, last) = ends(|i| f[i].t, f.len(), start, end, smoothed)?;
    // `first < last` here: f[last] lies after `start`, f[first] does not (or is f[0]).
    let left = if smoothed && f[first].t < start {
        interpolate(&f[first], &f[first + 1], start, is_counter)
    } else {
        f[first].f
    };
    let right = if smoothed && last > 0 && f[last].t > end {
        interpolate(&f[last - 1], &f[last], end, is_counter)
    } else {
        f[last].f
    };
    let mut result = right - left;
    if is_counter {
        // Samples strictly inside the range; the ends already account for resets across
        // the boundaries.
        let lo = if f[first].t <= start {
            first + 1
        } else {
            first
        };
        let hi = if f[last].t >= end { last } else { last + 1 };
        let mut prev = left;
        for p in f.get(lo..hi).unwrap_or(&[]) {
            if p.f < prev {
                result += prev;
            }
            prev = p.f;
        }
        if right < prev {
            result += prev;
        }
    }
    Some(result)
}

/// The points of a modified range selector evaluated on its own (`x[5m] anchored` as a
/// query): the range's ends at `start` and `end` (the anchor's or first sample's value
/// and the last's, or interpolated when smoothed) with the samples strictly between them.
/// Empty when no sample lies after `start`.
pub(crate) fn extend_floats(f: &[FPoint], start: i64, end: i64, smoothed: bool) -> Vec<FPoint> {
    let n = f.len();
    if n == 0 {
        return Vec::new();
    }
    let first = f.partition_point(|p| p.t <= start).saturating_sub(1);
    let last = if smoothed {
        partition(n - 1, |i| f[i].t < end)
    } else {
        n - 1
    };
    if f[last].t <= start {
        return Vec::new();
    }
    let left = if smoothed && f[first].t < start {
        interpolate(&f[first], &f[first + 1], start, false)
    } else {
        f[first].f
    };
    let right = if smoothed && last > 0 && f[last].t > end {
        interpolate(&f[last - 1], &f[last], end, false)
    } else {
        f[last].f
    };
    let lo = if f[first].t <= start {
        first + 1
    } else {
        first
    };
    let hi = if f[last].t >= end { last } else { last + 1 };
    let inner = f.get(lo..hi).unwrap_or(&[]);
    let mut out = Vec::with_capacity(inner.len() + 2);
    out.push(FPoint { t: start, f: left });
    out.extend_from_slice(inner);
    out.push(FPoint { t: end, f: right });
    out
}

/// Histograms that cannot be combined (exponential and custom buckets).
pub(crate) struct Incompatible;

/// `a + b` or `a - b`, noting reconciled custom bounds.
fn combine(
    ctx: &QueryCtx,
    a: &mut FloatHistogram,
    b: &FloatHistogram,
    sub: bool,
) -> Result<(), Incompatible> {
    let r = if sub { a.sub(b) } else { a.add(b) };
    match r {
        Ok((_, reconciled)) => {
            if reconciled {
                let op = if sub { "subtraction" } else { "addition" };
                ctx.info(format!(
                    "mismatched custom buckets were reconciled during {op}"
                ));
            }
            Ok(())
        }
        Err(_) => Err(Incompatible),
    }
}

/// The histogram at `t` between `(t1, h1)` and `(t2, h2)`; a counter reset between them
/// is taken as a restart from zero.
pub(crate) fn interpolate_histograms(
    ctx: &QueryCtx,
    (t1, h1): (i64, &FloatHistogram),
    (t2, h2): (i64, &FloatHistogram),
    t: i64,
    is_counter: bool,
) -> Result<FloatHistogram, Incompatible> {
    if t == t1 {
        return Ok(h1.clone());
    }
    if t == t2 {
        return Ok(h2.clone());
    }
    let fraction = (t - t1) as f64 / (t2 - t1) as f64;
    if is_counter && h2.detect_reset(h1) {
        return Ok(h2.clone().scale(fraction));
    }
    let mut res = h2.clone();
    combine(ctx, &mut res, h1, true)?;
    let mut res = res.scale(fraction);
    combine(ctx, &mut res, h1, false)?;
    Ok(res)
}

fn histogram_rate(
    rc: &RangeCtx<'_, '_>,
    h: &[HPoint],
    smoothed: bool,
    is_counter: bool,
) -> Option<FloatHistogram> {
    let (start, end) = (rc.range_start, rc.range_end);
    let (first, last) = ends(|i| h[i].t, h.len(), start, end, smoothed)?;
    let custom = h[first].h.uses_custom_buckets();
    let mut not_counter = false;
    for p in &h[first..=last] {
        if p.h.uses_custom_buckets() != custom {
            warn_mixed_schemas(rc);
            return None;
        }
        not_counter |= is_counter && p.h.counter_reset_hint == CounterResetHint::Gauge;
    }
    if not_counter {
        rc.ev.ctx.warn(format!(
            "this native histogram metric is not a counter: {:?}",
            metric_name(rc)
        ));
    }
    let pt = |i: usize| (h[i].t, &*h[i].h);
    let left = if smoothed && h[first].t < start {
        interpolate_histograms(rc.ev.ctx, pt(first), pt(first + 1), start, is_counter)
    } else {
        Ok((*h[first].h).clone())
    };
    let right = if smoothed && last > 0 && h[last].t > end {
        interpolate_histograms(rc.ev.ctx, pt(last - 1), pt(last), end, is_counter)
    } else {
        Ok((*h[last].h).clone())
    };
    let (Ok(left), Ok(right)) = (left, right) else {
        warn_mixed_schemas(rc);
        return None;
    };
    if !is_counter
        && (left.counter_reset_hint != CounterResetHint::Gauge
            || right.counter_reset_hint != CounterResetHint::Gauge)
    {
        rc.ev.ctx.warn(format!(
            "this native histogram metric is not a gauge: {:?}",
            metric_name(rc)
        ));
    }
    let mut res = right.clone();
    if combine(rc.ev.ctx, &mut res, &left, true).is_err() {
        warn_mixed_schemas(rc);
        return None;
    }
    if is_counter {
        let Ok(correction) = histogram_correction(rc, h, first, last, &left, &right, smoothed)
        else {
            warn_mixed_schemas(rc);
            return None;
        };
        if let Some(c) = correction
            && combine(rc.ev.ctx, &mut res, &c, false).is_err()
        {
            warn_mixed_schemas(rc);
            return None;
        }
    }
    res.counter_reset_hint = CounterResetHint::Gauge;
    Some(res.compact())
}

/// What counter resets between the range's ends add to `right - left`: the value before
/// each reset among the samples between `first` and `last` (which `left` and `right`
/// stand for) and at `right`.
fn histogram_correction(
    rc: &RangeCtx<'_, '_>,
    h: &[HPoint],
    first: usize,
    last: usize,
    left: &FloatHistogram,
    right: &FloatHistogram,
    smoothed: bool,
) -> Result<Option<FloatHistogram>, Incompatible> {
    let mut from = first + 1;
    let mut prev = left;
    if smoothed && h[first].t < rc.range_start && h[first + 1].h.detect_reset(&h[first].h) {
        // The interpolated left end already restarted from zero across this reset; the
        // sample after it is the reference for a reset right behind.
        prev = &h[first + 1].h;
        from += 1;
    }
    // `right` is h[last] or interpolated towards it (with its reset hint): h[last] itself
    // is never compared, or its hint would count the same reset twice.
    if from > last {
        return Ok(None);
    }
    let mut correction: Option<FloatHistogram> = None;
    let add = |c: &mut Option<FloatHistogram>, x: &FloatHistogram| match c {
        None => {
            *c = Some(x.clone());
            Ok(())
        }
        Some(acc) => combine(rc.ev.ctx, acc, x, false),
    };
    for p in &h[from..last] {
        if p.h.detect_reset(prev) {
            add(&mut correction, prev)?;
        }
        prev = &p.h;
    }
    if right.detect_reset(prev) {
        add(&mut correction, prev)?;
    }
    Ok(correction)
}

/// Start indices into `f` and `h` for `changes`/`resets` over an anchored window: the
/// anchor (the latest sample of either kind at or before `start`) and everything after
/// `start`. None when no sample lies after `start`.
fn anchor(f: &[FPoint], h: &[HPoint], start: i64) -> Option<(usize, usize)> {
    let fl = f.partition_point(|p| p.t <= start);
    let hl = h.partition_point(|p| p.t <= start);
    if fl >= f.len() && hl >= h.len() {
        return None;
    }
    Some(match (fl.checked_sub(1), hl.checked_sub(1)) {
        (None, None) => (0, 0),
        (Some(fa), None) => (fa, hl),
        (Some(fa), Some(ha)) if f[fa].t >= h[ha].t => (fa, hl),
        (_, Some(ha)) => (fl, ha),
    })
}

/// Resets (`resets`) or changes between consecutive samples of both kinds in time order;
/// a switch between float and histogram counts as either.
fn transitions(f: &[FPoint], h: &[HPoint], resets: bool) -> usize {
    enum P<'a> {
        F(f64),
        H(&'a FloatHistogram),
    }
    let (mut i, mut j) = (0, 0);
    let mut prev: Option<P<'_>> = None;
    let mut n = 0;
    while i < f.len() || j < h.len() {
        let cur = if j >= h.len() || (i < f.len() && f[i].t < h[j].t) {
            i += 1;
            P::F(f[i - 1].f)
        } else {
            j += 1;
            P::H(&h[j - 1].h)
        };
        if let Some(p) = &prev {
            let counted = match (p, &cur) {
                (P::F(a), P::F(b)) if resets => b < a,
                (P::F(a), P::F(b)) => a != b && !(a.is_nan() && b.is_nan()),
                (P::H(a), P::H(b)) if resets => b.detect_reset(a),
                (P::H(a), P::H(b)) => !b.equals(a),
                _ => true,
            };
            n += usize::from(counted);
        }
        prev = Some(cur);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, f64)]) -> Vec<FPoint> {
        v.iter().map(|&(t, f)| FPoint { t, f }).collect()
    }

    #[test]
    fn anchored_increase_is_the_plain_difference_with_resets() {
        // 1 2 3 at 0s/15s/30s, then a reset to 1 at 45s and 2 at 60s: range (15s, 60s].
        let f = pts(&[
            (0, 1.0),
            (15_000, 2.0),
            (30_000, 3.0),
            (45_000, 1.0),
            (60_000, 2.0),
        ]);
        // Anchor 2 at 15s, last 2 at 60s, reset after 3 adds 3.
        assert_eq!(float_rate(&f, 15_000, 60_000, false, true), Some(3.0));
        // As a gauge: plain difference.
        assert_eq!(float_rate(&f, 15_000, 60_000, false, false), Some(0.0));
        // Nothing after the range start: no result.
        assert_eq!(float_rate(&f, 60_000, 70_000, false, true), None);
    }

    #[test]
    fn smoothed_increase_interpolates_both_ends() {
        let f = pts(&[(0, 0.0), (10_000, 10.0), (20_000, 20.0)]);
        // Range (5s, 15s]: 5 at the left end, 15 at the right.
        assert_eq!(float_rate(&f, 5_000, 15_000, true, true), Some(10.0));
        // Only data before the range: none.
        assert_eq!(float_rate(&f[..1], 5_000, 15_000, true, true), None);
        // Only data after it: none.
        assert_eq!(float_rate(&f[2..], 5_000, 15_000, true, true), None);
    }

    #[test]
    fn anchor_is_the_latest_sample_of_either_kind() {
        let f = pts(&[(0, 1.0), (60_000, 2.0), (120_000, 3.0)]);
        assert_eq!(anchor(&f, &[], 60_000), Some((1, 0)));
        assert_eq!(anchor(&f, &[], -1), Some((0, 0)));
        assert_eq!(anchor(&f, &[], 120_000), None);
        assert_eq!(transitions(&f[1..], &[], false), 1);
        assert_eq!(
            transitions(&pts(&[(0, 3.0), (1, 1.0), (2, 2.0)]), &[], true),
            1
        );
    }
}
