//! Quantile and fraction estimation over native histograms, classic `le`
//! buckets, and plain value lists (ported from Prometheus's `promql/quantile.go`).

use super::FloatHistogram;

/// Relative tolerance under which bucket count differences are ignored.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// Result flags of a native-histogram estimation that become annotations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NativeFlags {
    /// The quantile result is NaN because of NaN observations.
    pub nan_result: bool,
    /// NaN observations may skew the result.
    pub nan_skew: bool,
}

/// Estimates quantile `q` of a native histogram.
pub fn histogram_quantile(q: f64, h: &FloatHistogram) -> (f64, NativeFlags) {
    let mut flags = NativeFlags::default();
    if q < 0.0 {
        return (f64::NEG_INFINITY, flags);
    }
    if q > 1.0 {
        return (f64::INFINITY, flags);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, flags);
    }
    let all = h.all_buckets();
    let forward = h.sum.is_nan() || q < 0.5;
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let iter: Box<dyn Iterator<Item = &super::Bucket>> = if forward {
        Box::new(all.iter())
    } else {
        Box::new(all.iter().rev())
    };
    let mut iter = iter;
    let mut count = 0.0;
    let mut bucket = super::Bucket {
        lower: 0.0,
        upper: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        count: 0.0,
    };
    for b in iter.by_ref() {
        bucket = *b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    let has_neg = !h.negative_buckets.is_empty();
    let has_pos = !h.positive_buckets.is_empty();
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if !has_neg && has_pos {
            bucket.lower = 0.0;
        } else if !has_pos && has_neg {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, flags);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, flags);
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            flags.nan_result = true;
            return (f64::NAN, flags);
        }
        return (bucket.upper, flags);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        for b in iter {
            count += b.count;
        }
        if count < h.count {
            flags.nan_skew = true;
        }
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (
            bucket.lower + (bucket.upper - bucket.lower) * fraction,
            flags,
        );
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (
            (log_lower + (log_upper - log_lower) * fraction).exp2(),
            flags,
        );
    }
    (
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(),
        flags,
    )
}

/// Estimates the fraction of observations in `[lower, upper]`; the flag is
/// set when NaN observations were left out.
pub fn histogram_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> (f64, bool) {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, false);
    }
    if lower >= upper {
        return (0.0, false);
    }
    let all = h.all_buckets();
    let has_neg = !h.negative_buckets.is_empty();
    let has_pos = !h.positive_buckets.is_empty();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut consumed = 0;
    for b in &all {
        consumed += 1;
        let mut b = *b;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if !has_neg && has_pos {
                b.lower = 0.0;
            } else if !has_pos && has_neg {
                b.upper = 0.0;
            }
        }
        let linear = |v: f64| {
            if b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * b.fraction_below(v, true)
        };
        let expo = |v: f64| rank + b.count * b.fraction_below(v, false);
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = if h.uses_custom_buckets() || zero_bucket {
                linear(lower)
            } else {
                expo(lower)
            };
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = if h.uses_custom_buckets() || zero_bucket {
                linear(upper)
            } else {
                expo(upper)
            };
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    let mut nan_info = false;
    if h.sum.is_nan() {
        for b in all.iter().skip(consumed) {
            count += b.count;
        }
        if count < h.count {
            nan_info = true;
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, nan_info)
}

/// A classic histogram bucket: cumulative count up to `upper_bound`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassicBucket {
    /// The `le` bound.
    pub upper_bound: f64,
    /// Cumulative count.
    pub count: f64,
}

/// Outcome of [`bucket_quantile`] beyond the value itself.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassicFlags {
    /// Monotonicity had to be forced.
    pub forced_monotonic: bool,
    /// Small precision differences were ignored.
    pub fixed_precision: bool,
}

fn sort_and_coalesce(buckets: &mut Vec<ClassicBucket>) {
    buckets.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    let mut out: Vec<ClassicBucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

fn ensure_monotonic(buckets: &mut [ClassicBucket]) -> ClassicFlags {
    let mut flags = ClassicFlags::default();
    let Some(first) = buckets.first() else {
        return flags;
    };
    let mut prev = first.count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if crate::almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
            b.count = prev;
            flags.fixed_precision = true;
            continue;
        }
        if curr < prev {
            b.count = prev;
            flags.forced_monotonic = true;
            continue;
        }
        prev = curr;
    }
    flags
}

/// Quantile `q` over classic cumulative buckets.
pub fn bucket_quantile(q: f64, mut buckets: Vec<ClassicBucket>) -> (f64, ClassicFlags) {
    if q.is_nan() {
        return (f64::NAN, ClassicFlags::default());
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, ClassicFlags::default());
    }
    if q > 1.0 {
        return (f64::INFINITY, ClassicFlags::default());
    }
    buckets.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    match buckets.last() {
        Some(b) if b.upper_bound == f64::INFINITY => {}
        _ => return (f64::NAN, ClassicFlags::default()),
    }
    sort_and_coalesce(&mut buckets);
    let flags = ensure_monotonic(&mut buckets);
    if buckets.len() < 2 {
        return (f64::NAN, flags);
    }
    let n = buckets.len();
    let observations = buckets[n - 1].count;
    if observations == 0.0 {
        return (f64::NAN, flags);
    }
    let mut rank = q * observations;
    let b = buckets[..n - 1].partition_point(|x| x.count < rank);
    let v = if b == n - 1 {
        buckets[n - 2].upper_bound
    } else if b == 0 && buckets[0].upper_bound <= 0.0 {
        buckets[0].upper_bound
    } else {
        let mut start = 0.0;
        let end = buckets[b].upper_bound;
        let mut count = buckets[b].count;
        if b > 0 {
            start = buckets[b - 1].upper_bound;
            count -= buckets[b - 1].count;
            rank -= buckets[b - 1].count;
        }
        start + (end - start) * (rank / count)
    };
    (v, flags)
}

/// Fraction of observations between `lower` and `upper` over classic buckets.
pub fn bucket_fraction(lower: f64, upper: f64, mut buckets: Vec<ClassicBucket>) -> f64 {
    buckets.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    match buckets.last() {
        Some(b) if b.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    sort_and_coalesce(&mut buckets);
    let count = buckets.last().map(|b| b.count).unwrap_or(0.0);
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].upper_bound <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper_bound;
        }
        let upper_bound = b.upper_bound;
        let interp = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                return b.count;
            }
            rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Quantile `q` of plain values (weighted average between neighbours).
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| {
        // Prometheus sorts NaN first (vectorByValueHeap uses "a < b || isNaN(a)").
        match (a.is_nan(), b.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            _ => a.total_cmp(b),
        }
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let lo = values.get(lower as usize).copied().unwrap_or(f64::NAN);
    let hi = values.get(upper as usize).copied().unwrap_or(f64::NAN);
    lo * (1.0 - weight) + hi * weight
}
