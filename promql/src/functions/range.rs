//! Functions over one series' window of a range vector: `rate`, `increase`,
//! `delta`, `irate`, `idelta`, `deriv`, `predict_linear`, `resets`,
//! `changes`, `*_over_time`, `double_exponential_smoothing`.

use crate::error::{Result, exec_err};
use crate::eval::Evaluator;
use crate::eval::aggregate_kahan as kahan_inc;
use crate::histogram::quantile::quantile;
use crate::histogram::{CounterResetHint, FloatHistogram, KahanHistogram};
use crate::model::{FPoint, HPoint, Labels, METRIC_NAME};

/// Context of one window evaluation.
pub(crate) struct RangeCtx<'a, 'c> {
    pub ev: &'a Evaluator<'c>,
    pub name: &'a str,
    pub ts: i64,
    pub range_start: i64,
    pub range_end: i64,
    pub range_ms: i64,
    pub metric: &'a Labels,
    pub params: &'a [f64],
    /// No float point of the series is below its predecessor: windows of it (slices of
    /// the series) hold no counter reset, so `rate`/`increase` skip looking for one.
    pub no_float_resets: bool,
}

/// A window function's output.
pub(crate) enum Out {
    F(f64),
    H(FloatHistogram),
}

impl RangeCtx<'_, '_> {
    fn metric_name(&self) -> &str {
        self.metric.get(METRIC_NAME)
    }
    fn warn(&self, m: String) {
        self.ev.ctx.warn(m);
    }
    fn info(&self, m: String) {
        self.ev.ctx.info(m);
    }
    fn mixed_warn(&self) {
        self.warn(format!(
            "encountered a mix of histograms and floats for metric name {:?}",
            self.metric_name()
        ));
    }
    fn ignored_in_mixed(&self) {
        self.info(format!(
            "ignored histograms in a range containing both floats and histograms for metric name {:?}",
            self.metric_name()
        ));
    }
    fn mixed_schema_warn(&self) {
        self.warn(format!(
            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {:?}",
            self.metric_name()
        ));
    }
    fn not_counter(&self) {
        self.warn(format!(
            "this native histogram metric is not a counter: {:?}",
            self.metric_name()
        ));
    }
    fn not_gauge(&self) {
        self.warn(format!(
            "this native histogram metric is not a gauge: {:?}",
            self.metric_name()
        ));
    }
}

/// Dispatches a range function.
pub(crate) fn call(rc: &RangeCtx<'_, '_>, f: &[FPoint], h: &[HPoint]) -> Result<Option<Out>> {
    let out = match rc.name {
        "rate" => extrapolated_rate(rc, f, h, true, true),
        "increase" => extrapolated_rate(rc, f, h, true, false),
        "delta" => extrapolated_rate(rc, f, h, false, false),
        "irate" => instant_value(rc, f, h, true),
        "idelta" => instant_value(rc, f, h, false),
        "deriv" => {
            if f.len() < 2 {
                if f.len() == 1 && !h.is_empty() {
                    rc.ignored_in_mixed();
                }
                return Ok(None);
            }
            if !h.is_empty() {
                rc.ignored_in_mixed();
            }
            let (slope, _) = linear_regression(f, f[0].t);
            Some(Out::F(slope))
        }
        "predict_linear" => {
            let d = rc.params.first().copied().unwrap_or(f64::NAN);
            if f.len() < 2 {
                if f.len() == 1 && !h.is_empty() {
                    rc.ignored_in_mixed();
                }
                return Ok(None);
            }
            if !h.is_empty() {
                rc.ignored_in_mixed();
            }
            let (slope, intercept) = linear_regression(f, rc.ts);
            Some(Out::F(slope * d + intercept))
        }
        "double_exponential_smoothing" | "holt_winters" => {
            let sf = rc.params.first().copied().unwrap_or(f64::NAN);
            let tf = rc.params.get(1).copied().unwrap_or(f64::NAN);
            if !(sf > 0.0 && sf < 1.0) {
                return Err(exec_err!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {:.6}",
                    sf
                ));
            }
            if !(tf > 0.0 && tf < 1.0) {
                return Err(exec_err!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {:.6}",
                    tf
                ));
            }
            if f.len() < 2 {
                if f.len() == 1 && !h.is_empty() {
                    rc.ignored_in_mixed();
                }
                return Ok(None);
            }
            let (mut s0, mut s1) = (0.0, f[0].f);
            let mut b = f[1].f - f[0].f;
            for (i, p) in f.iter().enumerate().skip(1) {
                let x = sf * p.f;
                b = if i - 1 == 0 {
                    b
                } else {
                    tf * (s1 - s0) + (1.0 - tf) * b
                };
                let y = (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            if !h.is_empty() {
                rc.ignored_in_mixed();
            }
            Some(Out::F(s1))
        }
        "resets" => Some(Out::F(resets(f, h) as f64)),
        "changes" => Some(Out::F(changes(f, h) as f64)),
        "count_over_time" => Some(Out::F((f.len() + h.len()) as f64)),
        "present_over_time" => Some(Out::F(1.0)),
        "absent_over_time" => Some(Out::F(1.0)),
        "last_over_time" => match (f.last(), h.last()) {
            (Some(fp), Some(hp)) if hp.t < fp.t => Some(Out::F(fp.f)),
            (_, Some(hp)) => Some(Out::H((*hp.h).clone())),
            (Some(fp), None) => Some(Out::F(fp.f)),
            (None, None) => None,
        },
        "first_over_time" => match (f.first(), h.first()) {
            (Some(fp), Some(hp)) if fp.t < hp.t => Some(Out::F(fp.f)),
            (_, Some(hp)) => Some(Out::H((*hp.h).clone())),
            (Some(fp), None) => Some(Out::F(fp.f)),
            (None, None) => None,
        },
        "ts_of_first_over_time" => {
            let tf = f.first().map(|p| p.t).unwrap_or(i64::MAX);
            let th = h.first().map(|p| p.t).unwrap_or(i64::MAX);
            Some(Out::F(tf.min(th) as f64 / 1000.0))
        }
        "ts_of_last_over_time" => {
            let tf = f.last().map(|p| p.t).unwrap_or(0);
            let th = h.last().map(|p| p.t).unwrap_or(0);
            Some(Out::F(tf.max(th) as f64 / 1000.0))
        }
        "max_over_time" => compare_over_time(rc, f, h, |c, m| c > m || m.is_nan(), false),
        "min_over_time" => compare_over_time(rc, f, h, |c, m| c < m || m.is_nan(), false),
        "ts_of_max_over_time" => compare_over_time(rc, f, h, |c, m| c >= m || m.is_nan(), true),
        "ts_of_min_over_time" => compare_over_time(rc, f, h, |c, m| c <= m || m.is_nan(), true),
        "sum_over_time" => sum_over_time(rc, f, h),
        "avg_over_time" => avg_over_time(rc, f, h),
        "quantile_over_time" => {
            let q = rc.params.first().copied().unwrap_or(f64::NAN);
            if f.is_empty() {
                return Ok(None);
            }
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                rc.warn(format!(
                    "quantile value should be between 0 and 1, got {}",
                    crate::annotations::go_g(q)
                ));
            }
            if !h.is_empty() {
                rc.ignored_in_mixed();
            }
            let mut v: Vec<f64> = f.iter().map(|p| p.f).collect();
            Some(Out::F(quantile(q, &mut v)))
        }
        "mad_over_time" => {
            if f.is_empty() {
                return Ok(None);
            }
            if !h.is_empty() {
                rc.ignored_in_mixed();
            }
            if f.iter().any(|p| p.f.is_nan()) {
                return Ok(Some(Out::F(f64::NAN)));
            }
            let mut v: Vec<f64> = f.iter().map(|p| p.f).collect();
            let median = quantile(0.5, &mut v);
            let mut d: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
            Some(Out::F(quantile(0.5, &mut d)))
        }
        "stddev_over_time" | "stdvar_over_time" => {
            if f.is_empty() {
                return Ok(None);
            }
            if !h.is_empty() {
                rc.ignored_in_mixed();
            }
            let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for p in f {
                count += 1.0;
                let delta = p.f - (mean + c_mean);
                (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
                (aux, c_aux) = kahan_inc(delta * (p.f - (mean + c_mean)), aux, c_aux);
            }
            let var = (aux + c_aux) / count;
            Some(Out::F(if rc.name == "stddev_over_time" {
                var.sqrt()
            } else {
                var
            }))
        }
        other => return Err(exec_err!("function {other} does not take a range vector")),
    };
    Ok(out)
}

fn compare_over_time(
    rc: &RangeCtx<'_, '_>,
    f: &[FPoint],
    h: &[HPoint],
    better: impl Fn(f64, f64) -> bool,
    ts: bool,
) -> Option<Out> {
    let first = f.first()?;
    if !h.is_empty() {
        rc.ignored_in_mixed();
    }
    let (mut best, mut best_t) = (first.f, first.t);
    for p in f {
        if better(p.f, best) {
            best = p.f;
            best_t = p.t;
        }
    }
    Some(Out::F(if ts { best_t as f64 / 1000.0 } else { best }))
}

/// Compensated sum (`avg`: mean) of the histograms, like Prometheus's
/// `sum_over_time` / `avg_over_time`; None (with a warning) when exponential
/// and custom buckets mix.
fn sum_hist(rc: &RangeCtx<'_, '_>, h: &[HPoint], avg: bool) -> Option<FloatHistogram> {
    let mut reset = false;
    let mut not_reset = false;
    let mut track = |x: &FloatHistogram| match x.counter_reset_hint {
        CounterResetHint::CounterReset => reset = true,
        CounterResetHint::NotCounterReset => not_reset = true,
        _ => {}
    };
    let first = h.first()?;
    track(&first.h);
    let mut acc = KahanHistogram::from(&*first.h);
    let mut incremental = false;
    let mut reconciled = false;
    for (i, p) in h.iter().enumerate().skip(1) {
        track(&p.h);
        let added = if avg {
            acc.add_for_mean(&mut incremental, (i + 1) as f64, &p.h)
        } else {
            acc.add(&p.h)
        };
        match added {
            Ok((_, r)) => reconciled |= r,
            Err(_) => {
                rc.mixed_schema_warn();
                return None;
            }
        }
    }
    if reset && not_reset {
        rc.warn("conflicting counter resets during histogram aggregation".into());
    }
    if reconciled {
        rc.info("mismatched custom buckets were reconciled during aggregation".into());
    }
    Some(if avg && !incremental {
        acc.finish_mean(h.len() as f64)
    } else {
        acc.finish()
    })
}

fn sum_over_time(rc: &RangeCtx<'_, '_>, f: &[FPoint], h: &[HPoint]) -> Option<Out> {
    if !f.is_empty() && !h.is_empty() {
        rc.mixed_warn();
        return None;
    }
    if f.is_empty() {
        return Some(Out::H(sum_hist(rc, h, false)?));
    }
    let (mut sum, mut c) = (0.0, 0.0);
    for p in f {
        (sum, c) = kahan_inc(p.f, sum, c);
    }
    Some(Out::F(if sum.is_infinite() { sum } else { sum + c }))
}

fn avg_over_time(rc: &RangeCtx<'_, '_>, f: &[FPoint], h: &[HPoint]) -> Option<Out> {
    if !f.is_empty() && !h.is_empty() {
        rc.mixed_warn();
        return None;
    }
    if f.is_empty() {
        return Some(Out::H(sum_hist(rc, h, true)?));
    }
    let (mut sum, mut count) = (f[0].f, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, p) in f.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(p.f, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(p.f / count, q * mean, q * c);
    }
    Some(Out::F(if incremental {
        mean + c
    } else {
        sum / count + c / count
    }))
}

/// Least-squares regression; returns (slope, intercept at `intercept_time`).
fn linear_regression(samples: &[FPoint], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = samples.first().map(|p| p.f).unwrap_or(f64::NAN);
    let mut const_y = true;
    for (i, p) in samples.iter().enumerate() {
        if const_y && i > 0 && p.f != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_time) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(p.f, sy, cy);
        (sxy, cxy) = kahan_inc(x * p.f, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

enum Pt<'a> {
    F(f64),
    H(&'a FloatHistogram),
}

fn merged<'a>(f: &'a [FPoint], h: &'a [HPoint]) -> Vec<Pt<'a>> {
    let mut out = Vec::with_capacity(f.len() + h.len());
    let (mut i, mut j) = (0, 0);
    while i < f.len() || j < h.len() {
        if j >= h.len() || (i < f.len() && f[i].t < h[j].t) {
            out.push(Pt::F(f[i].f));
            i += 1;
        } else {
            out.push(Pt::H(&h[j].h));
            j += 1;
        }
    }
    out
}

fn resets(f: &[FPoint], h: &[HPoint]) -> usize {
    let pts = merged(f, h);
    pts.windows(2)
        .filter(|w| match (&w[0], &w[1]) {
            (Pt::F(a), Pt::F(b)) => b < a,
            (Pt::H(a), Pt::H(b)) => b.detect_reset(a),
            _ => true,
        })
        .count()
}

fn changes(f: &[FPoint], h: &[HPoint]) -> usize {
    let pts = merged(f, h);
    pts.windows(2)
        .filter(|w| match (&w[0], &w[1]) {
            (Pt::F(a), Pt::F(b)) => a != b && !(a.is_nan() && b.is_nan()),
            (Pt::H(a), Pt::H(b)) => !b.equals(a),
            _ => true,
        })
        .count()
}

fn extrapolated_rate(
    rc: &RangeCtx<'_, '_>,
    f: &[FPoint],
    h: &[HPoint],
    is_counter: bool,
    is_rate: bool,
) -> Option<Out> {
    if !f.is_empty() && !h.is_empty() {
        rc.mixed_warn();
        return None;
    }
    let (first_t, last_t, n_minus_one);
    let mut result_f = 0.0;
    let mut result_h: Option<FloatHistogram> = None;
    if !h.is_empty() {
        n_minus_one = h.len() - 1;
        first_t = h[0].t;
        last_t = h[n_minus_one].t;
        if h.len() < 2 {
            return None;
        }
        result_h = Some(histogram_rate(rc, h, is_counter)?);
    } else if !f.is_empty() {
        n_minus_one = f.len() - 1;
        first_t = f[0].t;
        last_t = f[n_minus_one].t;
        result_f = f[n_minus_one].f - f[0].f;
        if is_counter && !rc.no_float_resets {
            for w in f.windows(2) {
                if w[1].f < w[0].f {
                    result_f += w[0].f;
                }
            }
        }
    } else {
        return None;
    }
    if n_minus_one == 0 {
        return None;
    }
    let mut to_start = (first_t - rc.range_start) as f64 / 1000.0;
    let mut to_end = (rc.range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / n_minus_one as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter {
        let mut to_zero = to_start;
        if result_f > 0.0 && !f.is_empty() && f[0].f >= 0.0 {
            to_zero = sampled * (f[0].f / result_f);
        } else if let Some(rh) = &result_h
            && rh.count > 0.0
            && !h.is_empty()
            && h[0].h.count >= 0.0
        {
            to_zero = sampled * (h[0].h.count / rh.count);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= rc.range_ms as f64 / 1000.0;
    }
    match result_h {
        Some(rh) => Some(Out::H(rh.scale(factor))),
        None => Some(Out::F(result_f * factor)),
    }
}

fn histogram_rate(
    rc: &RangeCtx<'_, '_>,
    pts: &[HPoint],
    is_counter: bool,
) -> Option<FloatHistogram> {
    let mut prev: FloatHistogram = (*pts[0].h).clone();
    let last = &pts[pts.len() - 1].h;
    let mut using_custom = prev.uses_custom_buckets();
    if is_counter
        && (prev.counter_reset_hint == CounterResetHint::Gauge
            || last.counter_reset_hint == CounterResetHint::Gauge)
    {
        rc.not_counter();
    }
    if is_counter {
        let second = &pts[1].h;
        if second.detect_reset(&prev) {
            prev = FloatHistogram {
                schema: second.schema,
                custom_values: second.custom_values.clone(),
                ..Default::default()
            };
            using_custom = second.uses_custom_buckets();
        }
    }
    if last.uses_custom_buckets() != using_custom {
        rc.mixed_schema_warn();
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for p in &pts[1..pts.len() - 1] {
        if !is_counter {
            continue;
        }
        if p.h.counter_reset_hint == CounterResetHint::Gauge {
            rc.not_counter();
        }
        if p.h.schema < min_schema {
            min_schema = p.h.schema;
        }
        if p.h.uses_custom_buckets() != using_custom {
            rc.mixed_schema_warn();
            return None;
        }
    }
    let mut res = last.copy_to_schema(min_schema);
    match res.sub(&prev) {
        Err(_) => {
            rc.mixed_schema_warn();
            return None;
        }
        Ok((_, reconciled)) => {
            if reconciled {
                rc.info("mismatched custom buckets were reconciled during subtraction".into());
            }
        }
    }
    if is_counter {
        let mut prev_h: &FloatHistogram = &prev;
        for p in &pts[1..] {
            if p.h.detect_reset(prev_h) {
                match res.add(prev_h) {
                    Err(_) => {
                        rc.mixed_schema_warn();
                        return None;
                    }
                    Ok((_, reconciled)) => {
                        if reconciled {
                            rc.info(
                                "mismatched custom buckets were reconciled during addition".into(),
                            );
                        }
                    }
                }
            }
            prev_h = &p.h;
        }
    } else if pts[0].h.counter_reset_hint != CounterResetHint::Gauge
        || last.counter_reset_hint != CounterResetHint::Gauge
    {
        rc.not_gauge();
    }
    res.counter_reset_hint = CounterResetHint::Gauge;
    Some(res.compact())
}

fn instant_value(rc: &RangeCtx<'_, '_>, f: &[FPoint], h: &[HPoint], is_rate: bool) -> Option<Out> {
    if f.len() + h.len() < 2 {
        return None;
    }
    // The last two samples of either kind, in time order.
    #[derive(Clone)]
    struct S<'a> {
        t: i64,
        f: f64,
        h: Option<&'a FloatHistogram>,
    }
    let mut ss: Vec<S<'_>> = f[f.len().saturating_sub(2)..]
        .iter()
        .map(|p| S {
            t: p.t,
            f: p.f,
            h: None,
        })
        .collect();
    for p in &h[h.len().saturating_sub(2)..] {
        let s = S {
            t: p.t,
            f: 0.0,
            h: Some(&p.h),
        };
        match ss.len() {
            0 => ss.push(s),
            1 => {
                if s.t < ss[0].t {
                    ss.insert(0, s);
                } else {
                    ss.push(s);
                }
            }
            _ => {
                if s.t < ss[0].t {
                } else if s.t > ss[1].t {
                    ss[0] = ss[1].clone();
                    ss[1] = s;
                } else {
                    ss[0] = s;
                }
            }
        }
    }
    let (a, b) = (ss.first()?.clone(), ss.get(1)?.clone());
    let interval = b.t - a.t;
    if interval == 0 {
        return None;
    }
    let out = match (a.h, b.h) {
        (None, None) => {
            let mut v = if !is_rate || b.f >= a.f || b.f.is_nan() || a.f.is_nan() {
                b.f - a.f
            } else {
                b.f
            };
            if is_rate {
                v /= interval as f64 / 1000.0;
            }
            Out::F(v)
        }
        (Some(ha), Some(hb)) => {
            let mut res = hb.clone();
            if is_rate
                && (hb.counter_reset_hint == CounterResetHint::Gauge
                    || ha.counter_reset_hint == CounterResetHint::Gauge)
            {
                rc.not_counter();
            }
            if !is_rate
                && (hb.counter_reset_hint != CounterResetHint::Gauge
                    || ha.counter_reset_hint != CounterResetHint::Gauge)
            {
                rc.not_gauge();
            }
            if !is_rate || !hb.detect_reset(ha) {
                match res.sub(ha) {
                    Err(_) => {
                        rc.mixed_schema_warn();
                        return None;
                    }
                    Ok((_, reconciled)) => {
                        if reconciled {
                            rc.info(
                                "mismatched custom buckets were reconciled during subtraction"
                                    .into(),
                            );
                        }
                    }
                }
            }
            res.counter_reset_hint = CounterResetHint::Gauge;
            let mut res = res.compact();
            if is_rate {
                res = res.div_by(interval as f64 / 1000.0);
            }
            Out::H(res)
        }
        _ => {
            rc.mixed_warn();
            return None;
        }
    };
    Some(out)
}
