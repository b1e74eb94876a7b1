//! Native histograms (`FloatHistogram`) and the arithmetic PromQL needs on
//! them: addition/subtraction across schemas and zero thresholds, scaling,
//! counter-reset detection, bucket iteration with bounds, and trimming
//! (`</`, `>/`).
//!
//! The layout mirrors Prometheus's `model/histogram.FloatHistogram`: spans
//! (offset, length) plus absolute bucket counts. Arithmetic works on a sparse
//! `(index, count)` form internally and always returns compacted histograms
//! (no empty buckets), which is what Prometheus's `Compact(0)` produces.

mod bounds;
mod kahan;
pub mod quantile;
mod trim;

use std::fmt;

use bounds::EXPONENTIAL_BOUNDS;
pub use kahan::KahanHistogram;
pub(crate) use kahan::kahan_inc;
pub use trim::TrimSide;

/// The schema used by native histograms with custom bucket bounds (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A run of consecutive buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Gap to the previous span's end (or the absolute start index for the first span).
    pub offset: i32,
    /// Number of consecutive buckets.
    pub length: u32,
}

/// What the histogram says about counter resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    /// Unknown whether a reset happened.
    #[default]
    Unknown,
    /// A counter reset happened before this sample.
    CounterReset,
    /// No counter reset happened.
    NotCounterReset,
    /// The histogram is a gauge histogram.
    Gauge,
}

/// Errors from histogram arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    /// Exponential and custom-bucket histograms cannot be combined.
    #[error(
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    )]
    IncompatibleSchema,
}

/// A native histogram with float counts.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FloatHistogram {
    /// Counter reset hint.
    pub counter_reset_hint: CounterResetHint,
    /// Resolution; -4..=8 exponential, or [`CUSTOM_BUCKETS_SCHEMA`].
    pub schema: i32,
    /// Width of the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// Total observations.
    pub count: f64,
    /// Sum of observations.
    pub sum: f64,
    /// Positive bucket layout.
    pub positive_spans: Vec<Span>,
    /// Negative bucket layout.
    pub negative_spans: Vec<Span>,
    /// Absolute counts of the positive buckets.
    pub positive_buckets: Vec<f64>,
    /// Absolute counts of the negative buckets.
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of custom buckets (schema -53 only), +Inf implied.
    pub custom_values: Vec<f64>,
}

/// A bucket with bounds, as iterated for quantiles and JSON output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Whether `lower` is inclusive.
    pub lower_inclusive: bool,
    /// Whether `upper` is inclusive.
    pub upper_inclusive: bool,
    /// Observations in the bucket.
    pub count: f64,
}

impl Bucket {
    /// Fraction of this bucket's width at or below `v` (linear or log scale).
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = self.lower.abs().log2();
        let log_upper = self.upper.abs().log2();
        let log_v = v.abs().log2();
        if v > 0.0 {
            (log_v - log_lower) / (log_upper - log_lower)
        } else {
            1.0 - ((log_v - log_upper) / (log_lower - log_upper))
        }
    }
}

/// Sparse bucket list: (absolute index, count), sorted by index.
pub(crate) type Sparse = Vec<(i32, f64)>;

/// Expands spans and counts into absolute indexes.
pub(crate) fn to_sparse(spans: &[Span], buckets: &[f64]) -> Sparse {
    let mut out = Vec::with_capacity(buckets.len());
    let mut idx: i32 = 0;
    let mut bi = 0usize;
    for (si, s) in spans.iter().enumerate() {
        if si == 0 {
            idx = s.offset;
        } else {
            idx = idx.saturating_add(s.offset);
        }
        for _ in 0..s.length {
            if let Some(c) = buckets.get(bi) {
                out.push((idx, *c));
            }
            bi += 1;
            idx = idx.saturating_add(1);
        }
    }
    out
}

/// Builds compact spans and counts from a sparse list, dropping empty buckets.
pub(crate) fn from_sparse(sparse: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::new();
    let mut next: Option<i32> = None;
    for &(idx, c) in sparse {
        if c == 0.0 {
            continue;
        }
        match (next, spans.last_mut()) {
            (Some(n), Some(last)) if n == idx => last.length += 1,
            (Some(n), _) => spans.push(Span {
                offset: idx - n,
                length: 1,
            }),
            (None, _) => spans.push(Span {
                offset: idx,
                length: 1,
            }),
        }
        buckets.push(c);
        next = Some(idx + 1);
    }
    (spans, buckets)
}

/// Merges two sparse lists, adding (or subtracting) counts of equal indexes.
fn merge_sparse(a: &[(i32, f64)], b: &[(i32, f64)], negate_b: bool) -> Sparse {
    let sign = if negate_b { -1.0 } else { 1.0 };
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1 + sign * y.1));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                out.push((y.0, sign * y.1));
                j += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Bucket index in `to` schema for index `idx` in `from` schema (`to <= from`).
fn target_idx(idx: i32, from: i32, to: i32) -> i32 {
    let shift = (from - to).clamp(0, 31) as u32;
    (idx.wrapping_sub(1) >> shift).wrapping_add(1)
}

/// Reduces a sparse list to a lower schema.
fn reduce_sparse(sparse: &[(i32, f64)], from: i32, to: i32) -> Sparse {
    let mut out: Sparse = Vec::with_capacity(sparse.len());
    for &(idx, c) in sparse {
        let t = target_idx(idx, from, to);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Upper bound of exponential bucket `idx` in `schema`.
pub(crate) fn bound_exponential(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = (idx as i64)
            .checked_shl((-schema).min(62) as u32)
            .unwrap_or(i64::MAX);
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let s = schema.min(8) as usize;
    let frac_idx = (idx & ((1 << s) - 1)) as usize;
    let frac = EXPONENTIAL_BOUNDS
        .get(s)
        .and_then(|t| t.get(frac_idx))
        .copied()
        .unwrap_or(0.5);
    let exp = ((idx as i64) >> s) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

fn ldexp(frac: f64, exp: i64) -> f64 {
    // Split the exponent so intermediate powers never overflow early.
    let exp = exp.clamp(-2200, 2200) as i32;
    if exp > 1000 {
        frac * 2f64.powi(1000) * 2f64.powi(exp - 1000)
    } else if exp < -1000 {
        frac * 2f64.powi(-1000) * 2f64.powi(exp + 1000)
    } else {
        frac * 2f64.powi(exp)
    }
}

impl FloatHistogram {
    /// Whether this histogram uses custom bucket bounds.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Upper bound of bucket `idx` in this histogram's schema.
    pub fn bound(&self, idx: i32) -> f64 {
        if self.uses_custom_buckets() {
            let len = self.custom_values.len() as i32;
            if idx >= len {
                return f64::INFINITY;
            }
            if idx < 0 {
                return f64::NEG_INFINITY;
            }
            return self
                .custom_values
                .get(idx as usize)
                .copied()
                .unwrap_or(f64::INFINITY);
        }
        bound_exponential(idx, self.schema)
    }

    pub(crate) fn pos_sparse(&self) -> Sparse {
        to_sparse(&self.positive_spans, &self.positive_buckets)
    }

    pub(crate) fn neg_sparse(&self) -> Sparse {
        to_sparse(&self.negative_spans, &self.negative_buckets)
    }

    pub(crate) fn set_pos(&mut self, s: &[(i32, f64)]) {
        let (sp, b) = from_sparse(s);
        self.positive_spans = sp;
        self.positive_buckets = b;
    }

    pub(crate) fn set_neg(&mut self, s: &[(i32, f64)]) {
        let (sp, b) = from_sparse(s);
        self.negative_spans = sp;
        self.negative_buckets = b;
    }

    /// Removes empty buckets and merges adjacent spans.
    pub fn compact(mut self) -> Self {
        let p = self.pos_sparse();
        let n = self.neg_sparse();
        self.set_pos(&p);
        self.set_neg(&n);
        self
    }

    /// Scales all counts and the sum by `factor`.
    pub fn scale(mut self, factor: f64) -> Self {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        for b in self
            .positive_buckets
            .iter_mut()
            .chain(self.negative_buckets.iter_mut())
        {
            *b *= factor;
        }
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides all counts and the sum by `scalar`; division by zero drops all buckets.
    pub fn div_by(mut self, scalar: f64) -> Self {
        self.zero_count /= scalar;
        self.count /= scalar;
        self.sum /= scalar;
        if scalar == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return self;
        }
        for b in self
            .positive_buckets
            .iter_mut()
            .chain(self.negative_buckets.iter_mut())
        {
            *b /= scalar;
        }
        if scalar < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        let (h, o) = (self.counter_reset_hint, other.counter_reset_hint);
        if h == o || h == Gauge {
            return false;
        }
        if o == Gauge {
            self.counter_reset_hint = Gauge;
            return false;
        }
        if h == Unknown {
            return false;
        }
        self.counter_reset_hint = Unknown;
        o != Unknown
    }

    /// Zero count this histogram would have with a (larger) zero threshold,
    /// and the threshold actually usable (moved up to a bucket boundary if
    /// it falls into a populated bucket).
    fn zero_count_for_larger_threshold(&self, mut larger: f64) -> (f64, f64) {
        if larger == self.zero_threshold {
            return (self.zero_count, larger);
        }
        let pos = self.pos_sparse();
        let neg = self.neg_sparse();
        'outer: loop {
            let mut zc = self.zero_count;
            for &(idx, c) in &pos {
                let lower = self.bound(idx - 1);
                let upper = self.bound(idx);
                if lower >= larger {
                    break;
                }
                zc += c;
                if upper > larger {
                    if c != 0.0 {
                        larger = upper;
                    }
                    break;
                }
            }
            for &(idx, c) in &neg {
                let upper_abs = self.bound(idx - 1);
                let lower_abs = self.bound(idx);
                if upper_abs >= larger {
                    break;
                }
                zc += c;
                if lower_abs > larger {
                    if c != 0.0 {
                        larger = lower_abs;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zc, larger);
        }
    }

    fn trim_buckets_in_zero_bucket(&mut self) {
        let zt = self.zero_threshold;
        let pos: Sparse = self
            .pos_sparse()
            .into_iter()
            .filter(|(idx, _)| self.bound(idx - 1) >= zt)
            .collect();
        let neg: Sparse = self
            .neg_sparse()
            .into_iter()
            .filter(|(idx, _)| self.bound(idx - 1) >= zt)
            .collect();
        self.set_pos(&pos);
        self.set_neg(&neg);
    }

    /// Makes the zero buckets of both histograms compatible; returns the zero
    /// count `other` would have with the reconciled threshold.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_zc = other.zero_count;
        let mut other_zt = other.zero_threshold;
        let mut guard = 0;
        while other_zt != self.zero_threshold && guard < 64 {
            guard += 1;
            if self.zero_threshold > other_zt {
                let (zc, zt) = other.zero_count_for_larger_threshold(self.zero_threshold);
                other_zc = zc;
                other_zt = zt;
            }
            if other_zt > self.zero_threshold {
                let (zc, zt) = self.zero_count_for_larger_threshold(other_zt);
                self.zero_count = zc;
                self.zero_threshold = zt;
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_zc
    }

    /// Adds (or with `negate`, subtracts) `other`. Returns whether counter
    /// reset hints collided and whether custom bounds had to be reconciled.
    fn add_impl(
        &mut self,
        other: &FloatHistogram,
        negate: bool,
    ) -> Result<(bool, bool), HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        let collision = self.adjust_counter_reset(other);
        let sign = if negate { -1.0 } else { 1.0 };
        if !self.uses_custom_buckets() {
            let other_zc = self.reconcile_zero_buckets(other);
            self.zero_count += sign * other_zc;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        if self.uses_custom_buckets() {
            if custom_bounds_match(&self.custom_values, &other.custom_values) {
                let merged = merge_sparse(&self.pos_sparse(), &other.pos_sparse(), negate);
                self.set_pos(&merged);
                return Ok((collision, false));
            }
            let bounds = intersect_bounds(&self.custom_values, &other.custom_values);
            let a = map_custom(&self.pos_sparse(), &self.custom_values, &bounds);
            let b = map_custom(&other.pos_sparse(), &other.custom_values, &bounds);
            let merged = merge_sparse(&a, &b, negate);
            self.custom_values = bounds;
            self.set_pos(&merged);
            return Ok((collision, true));
        }
        let (mut sp, mut sn) = (self.pos_sparse(), self.neg_sparse());
        let (mut op, mut on) = (other.pos_sparse(), other.neg_sparse());
        if other.schema < self.schema {
            sp = reduce_sparse(&sp, self.schema, other.schema);
            sn = reduce_sparse(&sn, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            op = reduce_sparse(&op, other.schema, self.schema);
            on = reduce_sparse(&on, other.schema, self.schema);
        }
        // Buckets of `other` whose upper bound is inside the zero bucket were
        // already counted in its reconciled zero count.
        let zt = self.zero_threshold;
        let schema = self.schema;
        let outside = |v: Sparse| -> Sparse {
            v.into_iter()
                .filter(|(idx, _)| bound_exponential(*idx, schema) > zt)
                .collect()
        };
        let (op, on) = (outside(op), outside(on));
        self.set_pos(&merge_sparse(&sp, &op, negate));
        self.set_neg(&merge_sparse(&sn, &on, negate));
        Ok((collision, false))
    }

    /// `self + other`; see [`FloatHistogram::add_impl`].
    pub fn add(&mut self, other: &FloatHistogram) -> Result<(bool, bool), HistogramError> {
        self.add_impl(other, false)
    }

    /// `self - other`; see [`FloatHistogram::add_impl`].
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<(bool, bool), HistogramError> {
        self.add_impl(other, true)
    }

    /// Exact data equality (bit patterns of floats), on compact layouts.
    pub fn equals(&self, o: &FloatHistogram) -> bool {
        if self.schema != o.schema
            || self.count.to_bits() != o.count.to_bits()
            || self.sum.to_bits() != o.sum.to_bits()
        {
            return false;
        }
        if self.uses_custom_buckets() && !custom_bounds_match(&self.custom_values, &o.custom_values)
        {
            return false;
        }
        if self.zero_threshold != o.zero_threshold
            || self.zero_count.to_bits() != o.zero_count.to_bits()
        {
            return false;
        }
        let eq = |a: Sparse, b: Sparse| {
            let a: Vec<_> = a.into_iter().filter(|x| x.1 != 0.0).collect();
            let b: Vec<_> = b.into_iter().filter(|x| x.1 != 0.0).collect();
            a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
        };
        eq(self.pos_sparse(), o.pos_sparse()) && eq(self.neg_sparse(), o.neg_sparse())
    }

    /// Whether `self` (the later sample) shows a counter reset against `previous`.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !custom_bounds_match(&self.custom_values, &previous.custom_values) {
                let bounds = intersect_bounds(&self.custom_values, &previous.custom_values);
                let cur = map_custom(&self.pos_sparse(), &self.custom_values, &bounds);
                let prev = map_custom(&previous.pos_sparse(), &previous.custom_values, &bounds);
                return sparse_decreased(&cur, &prev);
            }
        } else if previous.uses_custom_buckets() {
            return true;
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zc, new_threshold) =
            previous.zero_count_for_larger_threshold(self.zero_threshold);
        if new_threshold != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zc {
            return true;
        }
        let zt = self.zero_threshold;
        let keep = |v: Sparse, schema: i32| -> Sparse {
            v.into_iter()
                .filter(|(idx, _)| {
                    schema == CUSTOM_BUCKETS_SCHEMA || bound_exponential(*idx, schema) > zt
                })
                .collect()
        };
        let reduce = |v: Sparse| {
            if previous.schema > self.schema {
                reduce_sparse(&v, previous.schema, self.schema)
            } else {
                v
            }
        };
        let cur_p = keep(self.pos_sparse(), self.schema);
        let prev_p = keep(reduce(previous.pos_sparse()), self.schema);
        if sparse_decreased(&cur_p, &prev_p) {
            return true;
        }
        let cur_n = keep(self.neg_sparse(), self.schema);
        let prev_n = keep(reduce(previous.neg_sparse()), self.schema);
        sparse_decreased(&cur_n, &prev_n)
    }

    /// Converts to a lower (or equal) exponential schema.
    pub fn copy_to_schema(&self, target: i32) -> FloatHistogram {
        if target >= self.schema || self.uses_custom_buckets() {
            return self.clone();
        }
        let mut h = self.clone();
        let p = reduce_sparse(&self.pos_sparse(), self.schema, target);
        let n = reduce_sparse(&self.neg_sparse(), self.schema, target);
        h.schema = target;
        h.set_pos(&p);
        h.set_neg(&n);
        h
    }

    /// The zero bucket.
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
        }
    }

    fn bucket_at(&self, idx: i32, count: f64, positive: bool) -> Bucket {
        let (lower, upper) = if positive {
            (self.bound(idx - 1), self.bound(idx))
        } else {
            (-self.bound(idx), -self.bound(idx - 1))
        };
        let (li, ui) = if self.uses_custom_buckets() {
            (idx == 0, true)
        } else {
            (lower < 0.0, upper > 0.0)
        };
        Bucket {
            lower,
            upper,
            lower_inclusive: li,
            upper_inclusive: ui,
            count,
        }
    }

    /// All buckets in ascending order: negative, zero (if populated), positive.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let zt = self.zero_threshold;
        let mut out = Vec::new();
        for &(idx, c) in self.neg_sparse().iter().rev() {
            let mut b = self.bucket_at(idx, c, false);
            if b.upper < 0.0 && b.upper > -zt {
                b.upper = -zt;
            }
            out.push(b);
        }
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        for &(idx, c) in &self.pos_sparse() {
            let mut b = self.bucket_at(idx, c, true);
            if b.lower > 0.0 && b.lower < zt {
                b.lower = zt;
            }
            out.push(b);
        }
        out
    }

    /// Number of 16-byte units this histogram occupies, for sample limits
    /// (Prometheus counts a histogram as its size / 16).
    pub fn size_units(&self) -> usize {
        let bytes = 8 * (self.positive_buckets.len() + self.negative_buckets.len())
            + 8 * (self.positive_spans.len() + self.negative_spans.len())
            + 8 * self.custom_values.len()
            + 200;
        bytes / 16
    }
}

fn sparse_decreased(cur: &[(i32, f64)], prev: &[(i32, f64)]) -> bool {
    let mut j = 0;
    for &(idx, pc) in prev {
        while j < cur.len() && cur[j].0 < idx {
            j += 1;
        }
        let cc = match cur.get(j) {
            Some(&(ci, cc)) if ci == idx => cc,
            _ => 0.0,
        };
        if cc < pc {
            return true;
        }
    }
    false
}

/// Whether two custom bound lists are identical.
pub fn custom_bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Maps custom buckets onto a coarser set of bounds (a subset of `bounds`).
fn map_custom(sparse: &[(i32, f64)], bounds: &[f64], target: &[f64]) -> Sparse {
    let mut out: Sparse = Vec::new();
    for &(idx, c) in sparse {
        let ti = match bounds.get(idx.max(0) as usize) {
            Some(b) => target.iter().position(|t| t >= b).unwrap_or(target.len()),
            None => target.len(),
        } as i32;
        match out.last_mut() {
            Some(last) if last.0 == ti => last.1 += c,
            _ => out.push((ti, c)),
        }
    }
    out
}

impl FloatHistogram {
    /// Prometheus's `FloatHistogram.String()` form, e.g.
    /// `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2, (0.5,1]:1}`.
    pub fn go_string(&self) -> String {
        use crate::annotations::go_g;
        let fmt_b = |b: &Bucket| {
            format!(
                "{}{},{}{}:{}",
                if b.lower_inclusive { '[' } else { '(' },
                go_g(b.lower),
                go_g(b.upper),
                if b.upper_inclusive { ']' } else { ')' },
                go_g(b.count)
            )
        };
        let mut s = format!("{{count:{}, sum:{}", go_g(self.count), go_g(self.sum));
        for &(idx, c) in self.neg_sparse().iter().rev() {
            if c != 0.0 {
                s.push_str(", ");
                s.push_str(&fmt_b(&self.bucket_at(idx, c, false)));
            }
        }
        if self.zero_count != 0.0 {
            s.push_str(", ");
            s.push_str(&fmt_b(&self.zero_bucket()));
        }
        for &(idx, c) in &self.pos_sparse() {
            if c != 0.0 {
                s.push_str(", ");
                s.push_str(&fmt_b(&self.bucket_at(idx, c, true)));
            }
        }
        s.push('}');
        s
    }
}

impl fmt::Display for FloatHistogram {
    /// The test-expression form, e.g. `{{schema:1 count:3 sum:2 buckets:[1 2]}}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{")?;
        if self.schema != 0 {
            write!(f, "schema:{} ", self.schema)?;
        }
        write!(f, "count:{} sum:{}", self.count, self.sum)?;
        if self.zero_threshold != 0.0 {
            write!(f, " z_bucket_w:{}", self.zero_threshold)?;
        }
        if self.zero_count != 0.0 {
            write!(f, " z_bucket:{}", self.zero_count)?;
        }
        if !self.custom_values.is_empty() {
            write!(f, " custom_values:{:?}", self.custom_values)?;
        }
        let hint = match self.counter_reset_hint {
            CounterResetHint::Unknown => "",
            CounterResetHint::CounterReset => " counter_reset_hint:reset",
            CounterResetHint::NotCounterReset => " counter_reset_hint:not_reset",
            CounterResetHint::Gauge => " counter_reset_hint:gauge",
        };
        write!(f, "{hint}")?;
        let p = self.pos_sparse();
        if !p.is_empty() {
            write!(f, " buckets:{:?}", p)?;
        }
        let n = self.neg_sparse();
        if !n.is_empty() {
            write!(f, " n_buckets:{:?}", n)?;
        }
        write!(f, "}}}}")
    }
}

#[cfg(test)]
mod tests;
