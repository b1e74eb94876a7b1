//! Compensated (Kahan-Neumaier) summation of native histograms, as
//! Prometheus 3 does it for `sum`, `avg`, `sum_over_time` and
//! `avg_over_time` (its `FloatHistogram.KahanAdd` with a compensation
//! histogram): every count, the sum and every bucket carry their own
//! compensation term, which follows the buckets through schema reduction,
//! zero-bucket widening and custom-bound reconciliation, and is added back
//! once at the end.

use super::{
    CounterResetHint, FloatHistogram, HistogramError, Span, bound_exponential, custom_bounds_match,
    from_sparse, intersect_bounds, target_idx, to_sparse,
};

/// Kahan-compensated increment: returns (sum, compensation).
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// A value with its compensation term.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Comp {
    v: f64,
    c: f64,
}

impl Comp {
    fn plain(v: f64) -> Comp {
        Comp { v, c: 0.0 }
    }

    fn inc(&mut self, x: f64) {
        (self.v, self.c) = kahan_inc(x, self.v, self.c);
    }

    /// Adds another compensated value: its value, then its compensation.
    fn inc_comp(&mut self, x: Comp) {
        self.inc(x.v);
        self.inc(x.c);
    }
}

/// Buckets by absolute index, ascending; empty buckets may stay.
type Buckets = Vec<(i32, Comp)>;

fn buckets_of(spans: &[Span], counts: &[f64]) -> Buckets {
    to_sparse(spans, counts)
        .into_iter()
        .map(|(i, v)| (i, Comp::plain(v)))
        .collect()
}

/// A running compensated sum (or mean) of histograms.
#[derive(Clone, Debug, PartialEq)]
pub struct KahanHistogram {
    hint: CounterResetHint,
    schema: i32,
    zero_threshold: f64,
    custom_values: Vec<f64>,
    zero_count: Comp,
    count: Comp,
    sum: Comp,
    pos: Buckets,
    neg: Buckets,
}

impl From<&FloatHistogram> for KahanHistogram {
    fn from(h: &FloatHistogram) -> Self {
        KahanHistogram {
            hint: h.counter_reset_hint,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            custom_values: h.custom_values.clone(),
            zero_count: Comp::plain(h.zero_count),
            count: Comp::plain(h.count),
            sum: Comp::plain(h.sum),
            pos: buckets_of(&h.positive_spans, &h.positive_buckets),
            neg: buckets_of(&h.negative_spans, &h.negative_buckets),
        }
    }
}

impl KahanHistogram {
    fn uses_custom_buckets(&self) -> bool {
        self.schema == super::CUSTOM_BUCKETS_SCHEMA
    }

    fn comps_mut(&mut self) -> impl Iterator<Item = &mut Comp> {
        [&mut self.zero_count, &mut self.count, &mut self.sum]
            .into_iter()
            .chain(self.pos.iter_mut().map(|(_, b)| b))
            .chain(self.neg.iter_mut().map(|(_, b)| b))
    }

    /// Multiplies values and compensations by `factor`.
    pub fn scale(&mut self, factor: f64) {
        for x in self.comps_mut() {
            x.v *= factor;
            x.c *= factor;
        }
        if factor < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
    }

    /// Divides values and compensations by `d` (non-zero).
    pub fn div(&mut self, d: f64) {
        for x in self.comps_mut() {
            x.v /= d;
            x.c /= d;
        }
        if d < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
    }

    /// Whether a count, the sum or a bucket has overflowed to infinity.
    pub fn has_overflow(&self) -> bool {
        [self.zero_count, self.count, self.sum]
            .iter()
            .chain(self.pos.iter().map(|(_, b)| b))
            .chain(self.neg.iter().map(|(_, b)| b))
            .any(|x| x.v.is_infinite())
            || self.custom_values.iter().any(|v| v.is_infinite())
    }

    /// The result: each value plus its compensation, compacted.
    pub fn finish(self) -> FloatHistogram {
        let zt = self.zero_threshold;
        let exponential = !self.uses_custom_buckets();
        let schema = self.schema;
        // Like Prometheus's final plain `Add` of the compensation histogram,
        // compensations of buckets inside the zero bucket are not added.
        let fold = |b: Buckets| -> Vec<(i32, f64)> {
            b.into_iter()
                .map(|(i, x)| {
                    if exponential && bound_exponential(i, schema) <= zt {
                        (i, x.v)
                    } else {
                        (i, x.v + x.c)
                    }
                })
                .collect()
        };
        let mut h = FloatHistogram {
            counter_reset_hint: self.hint,
            schema: self.schema,
            zero_threshold: zt,
            zero_count: if exponential {
                self.zero_count.v + self.zero_count.c
            } else {
                self.zero_count.v
            },
            count: self.count.v + self.count.c,
            sum: self.sum.v + self.sum.c,
            custom_values: self.custom_values,
            ..Default::default()
        };
        let (ps, pb) = from_sparse(&fold(self.pos));
        let (ns, nb) = from_sparse(&fold(self.neg));
        h.positive_spans = ps;
        h.positive_buckets = pb;
        h.negative_spans = ns;
        h.negative_buckets = nb;
        h
    }

    /// The mean of `n` summed histograms: each value and its compensation
    /// divided by `n`, then added.
    pub fn finish_mean(mut self, n: f64) -> FloatHistogram {
        self.div(n);
        self.finish()
    }

    fn adjust_counter_reset(&mut self, other: CounterResetHint) -> bool {
        use CounterResetHint::*;
        let h = self.hint;
        if h == other || h == Gauge {
            return false;
        }
        if other == Gauge {
            self.hint = Gauge;
            return false;
        }
        if h == Unknown {
            return false;
        }
        self.hint = Unknown;
        other != Unknown
    }

    /// Adds `other` with compensation. Returns whether counter reset hints
    /// collided and whether custom bounds had to be reconciled.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<(bool, bool), HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        let collision = self.adjust_counter_reset(other.counter_reset_hint);
        let mut op = buckets_of(&other.positive_spans, &other.positive_buckets);
        let mut on = buckets_of(&other.negative_spans, &other.negative_buckets);
        if !self.uses_custom_buckets() {
            let other_zero = self.reconcile_zero_buckets(other, &op, &on);
            self.zero_count.inc(other_zero.v);
            self.zero_count.inc(other_zero.c);
        }
        self.count.inc(other.count);
        self.sum.inc(other.sum);
        if self.uses_custom_buckets() {
            if custom_bounds_match(&self.custom_values, &other.custom_values) {
                add_buckets(&mut self.pos, &op, None);
                return Ok((collision, false));
            }
            let bounds = intersect_bounds(&self.custom_values, &other.custom_values);
            let mut target = vec![Comp::default(); bounds.len() + 1];
            map_custom(&self.pos, &self.custom_values, &bounds, &mut target, true);
            map_custom(&op, &other.custom_values, &bounds, &mut target, false);
            self.pos = target
                .into_iter()
                .enumerate()
                .filter(|(_, x)| x.v != 0.0 || x.c != 0.0)
                .map(|(i, x)| (i as i32, x))
                .collect();
            self.custom_values = bounds;
            return Ok((collision, true));
        }
        if other.schema < self.schema {
            self.pos = reduce(&self.pos, self.schema, other.schema);
            self.neg = reduce(&self.neg, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            op = reduce(&op, other.schema, self.schema);
            on = reduce(&on, other.schema, self.schema);
        }
        let threshold = Some((self.schema, self.zero_threshold));
        add_buckets(&mut self.pos, &op, threshold);
        add_buckets(&mut self.neg, &on, threshold);
        Ok((collision, false))
    }

    /// Adds `h`, the `n`th histogram, to a running average (`avg`,
    /// `avg_over_time`): a compensated sum while that stays finite, then
    /// (with `incremental` set) an incremental mean, as Prometheus does.
    /// Returns what [`KahanHistogram::add`] returns.
    pub fn add_for_mean(
        &mut self,
        incremental: &mut bool,
        n: f64,
        h: &FloatHistogram,
    ) -> Result<(bool, bool), HistogramError> {
        if !*incremental {
            let mut next = self.clone();
            let res = next.add(h)?;
            if !next.has_overflow() {
                *self = next;
                return Ok(res);
            }
            *incremental = true;
            self.div(n - 1.0);
        }
        self.scale((n - 1.0) / n);
        self.add(&h.clone().div_by(n))
    }

    /// Widens the zero buckets of `self` and `other` to a common threshold
    /// (moving covered buckets of `self` into its zero count); returns the
    /// compensated zero count `other` has with that threshold.
    fn reconcile_zero_buckets(
        &mut self,
        other: &FloatHistogram,
        other_pos: &Buckets,
        other_neg: &Buckets,
    ) -> Comp {
        let mut other_zero = Comp::plain(other.zero_count);
        let mut other_zt = other.zero_threshold;
        let mut guard = 0;
        while other_zt != self.zero_threshold && guard < 64 {
            guard += 1;
            if self.zero_threshold > other_zt {
                (other_zero, other_zt) = zero_count_for_larger_threshold(
                    other.schema,
                    other.zero_threshold,
                    Comp::plain(other.zero_count),
                    other_pos,
                    other_neg,
                    self.zero_threshold,
                );
            }
            if other_zt > self.zero_threshold {
                let (zero, zt) = zero_count_for_larger_threshold(
                    self.schema,
                    self.zero_threshold,
                    self.zero_count,
                    &self.pos,
                    &self.neg,
                    other_zt,
                );
                self.zero_count = zero;
                self.zero_threshold = zt;
                let schema = self.schema;
                let outside = |b: &(i32, Comp)| bound_exponential(b.0 - 1, schema) >= zt;
                self.pos.retain(outside);
                self.neg.retain(outside);
            }
        }
        other_zero
    }
}

/// Zero count (compensated) with a larger threshold, and the threshold
/// actually usable (moved to a bucket boundary if it falls into a populated
/// bucket). Like Prometheus, the compensation is not reset when a negative
/// bucket forces a restart.
fn zero_count_for_larger_threshold(
    schema: i32,
    zero_threshold: f64,
    zero_count: Comp,
    pos: &Buckets,
    neg: &Buckets,
    mut larger: f64,
) -> (Comp, f64) {
    if larger == zero_threshold {
        return (zero_count, larger);
    }
    let mut comp = zero_count.c;
    'outer: loop {
        let mut zc = Comp {
            v: zero_count.v,
            c: comp,
        };
        for &(idx, b) in pos {
            let lower = bound_exponential(idx - 1, schema);
            let upper = bound_exponential(idx, schema);
            if lower >= larger {
                break;
            }
            zc.inc_comp(b);
            if upper > larger {
                if b.v != 0.0 {
                    larger = upper;
                }
                break;
            }
        }
        for &(idx, b) in neg {
            let upper_abs = bound_exponential(idx - 1, schema);
            let lower_abs = bound_exponential(idx, schema);
            if upper_abs >= larger {
                break;
            }
            zc.inc_comp(b);
            if lower_abs > larger {
                if b.v != 0.0 {
                    larger = lower_abs;
                    comp = zc.c;
                    continue 'outer;
                }
                break;
            }
        }
        return (zc, larger);
    }
}

/// Adds `other` into `acc` (both sorted by index). With a threshold
/// (exponential schemas), buckets of `other` whose upper bound is inside the
/// zero bucket are skipped: they are already in its zero count.
fn add_buckets(acc: &mut Buckets, other: &Buckets, threshold: Option<(i32, f64)>) {
    let mut out: Buckets = Vec::with_capacity(acc.len() + other.len());
    let mut a = acc.iter().peekable();
    for &(idx, b) in other {
        if let Some((schema, zt)) = threshold
            && bound_exponential(idx, schema) <= zt
        {
            continue;
        }
        while let Some(&&x) = a.peek() {
            if x.0 >= idx {
                break;
            }
            out.push(x);
            a.next();
        }
        match a.peek() {
            Some(&&(i, mut x)) if i == idx => {
                x.inc(b.v);
                if b.c != 0.0 {
                    x.inc(b.c);
                }
                out.push((i, x));
                a.next();
            }
            _ => out.push((idx, b)),
        }
    }
    out.extend(a.copied());
    *acc = out;
}

/// Reduces buckets to a lower schema, merging values and compensations.
fn reduce(b: &Buckets, from: i32, to: i32) -> Buckets {
    let mut out: Buckets = Vec::with_capacity(b.len());
    for &(idx, x) in b {
        let t = target_idx(idx, from, to);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1.inc_comp(x),
            _ => out.push((t, x)),
        }
    }
    out
}

/// Maps custom buckets onto the (coarser) `target` bounds, adding with
/// compensation; `with_comp` also adds the buckets' own compensations.
fn map_custom(b: &Buckets, bounds: &[f64], target: &[f64], out: &mut [Comp], with_comp: bool) {
    let last = out.len().saturating_sub(1);
    for &(idx, x) in b {
        let ti = match bounds.get(idx.max(0) as usize) {
            Some(bound) => target.iter().position(|t| t >= bound).unwrap_or(last),
            None => last,
        };
        if let Some(slot) = out.get_mut(ti) {
            slot.inc(x.v);
            if with_comp {
                slot.inc(x.c);
            }
        }
    }
}
