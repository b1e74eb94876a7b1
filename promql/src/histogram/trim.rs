//! The histogram trim operators `h </ x` and `h >/ x`: keep only the
//! observations below (upper trim) or above (lower trim) `x`.
//!
//! Follows Prometheus's `FloatHistogram.TrimBuckets`: a bucket that straddles
//! the cut keeps the share of its count on the kept side (interpolated on a
//! log scale for exponential buckets, linearly for custom buckets and the
//! zero bucket); the zero bucket is taken to lie only on the side that has
//! populated buckets when just one side has them; infinite custom buckets are
//! kept or dropped whole except for the first bucket of a custom layout whose
//! finite upper bound is positive, which is taken to start at 0. When any
//! bucket changes, count and sum are recomputed from the kept buckets, each
//! contributing its count times the midpoint (geometric for exponential
//! buckets) of its kept interval.

use super::{Bucket, FloatHistogram};

/// Which observations a trim keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimSide {
    /// `</`: the observations below the cut.
    KeepBelow,
    /// `>/`: the observations above the cut.
    KeepAbove,
}

impl FloatHistogram {
    /// Trims this histogram at `cut` (see the module documentation).
    pub fn trim(mut self, cut: f64, side: TrimSide) -> FloatHistogram {
        let upper = side == TrimSide::KeepBelow;
        let linear = self.uses_custom_buckets();
        let mut count = 0.0;
        let mut sum = 0.0;
        let mut changed = false;
        let mut has = [false, false]; // [negative, positive]
        for positive in [true, false] {
            let sparse = if positive {
                self.pos_sparse()
            } else {
                self.neg_sparse()
            };
            for (i, &(idx, c)) in sparse.iter().enumerate() {
                if c == 0.0 {
                    continue;
                }
                has[usize::from(positive)] = true;
                let b = self.bucket_at(idx, c, positive);
                let inside = if upper {
                    b.upper <= cut
                } else {
                    b.lower >= cut
                };
                let straddles = if upper { b.lower < cut } else { b.upper > cut };
                let keep = if inside {
                    count += c;
                    sum += midpoint(b.lower, b.upper, positive, linear) * c;
                    continue;
                } else if straddles {
                    let (keep, mid) = bucket_trim(&b, cut, upper, positive, linear);
                    count += keep;
                    sum += mid * keep;
                    keep
                } else {
                    0.0
                };
                let slot = if positive {
                    self.positive_buckets.get_mut(i)
                } else {
                    self.negative_buckets.get_mut(i)
                };
                if let Some(slot) = slot
                    && *slot != keep
                {
                    *slot = keep;
                    changed = true;
                }
            }
        }
        if self.zero_count > 0.0 {
            let (keep, mid) = zero_bucket_trim(&self.zero_bucket(), cut, has, upper);
            if self.zero_count != keep {
                self.zero_count = keep;
                changed = true;
            }
            sum += mid * keep;
            count += keep;
        }
        if !changed {
            return self;
        }
        self.count = count;
        self.sum = sum;
        self.compact()
    }
}

/// Kept count and its midpoint for a bucket that contains the cut.
fn bucket_trim(b: &Bucket, cut: f64, upper: bool, positive: bool, linear: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return infinite_bucket_trim(b, cut, upper);
    }
    let below = if cut <= b.lower {
        0.0
    } else if cut >= b.upper {
        b.count
    } else {
        b.count * b.fraction_below(cut, linear)
    };
    if upper {
        (below, midpoint(b.lower, cut, positive, linear))
    } else {
        (b.count - below, midpoint(cut, b.upper, positive, linear))
    }
}

/// Buckets with an infinite bound (custom layouts only): the distribution
/// inside is unknown, so they are kept or dropped whole, except that a first
/// bucket with a positive finite upper bound is taken to start at 0.
fn infinite_bucket_trim(b: &Bucket, cut: f64, upper: bool) -> (f64, f64) {
    let finite_or_zero = |x: f64| if x.is_infinite() { 0.0 } else { x };
    if b.lower == f64::NEG_INFINITY {
        if upper {
            if cut >= b.upper {
                return (b.count, 0.0);
            }
            if cut > 0.0 && b.upper > 0.0 && b.upper.is_finite() {
                return (b.count * cut / b.upper, cut / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, cut);
            }
            return (0.0, finite_or_zero(b.upper));
        }
        if cut <= b.lower {
            return (b.count, 0.0);
        }
        if cut >= 0.0 && b.upper > cut && b.upper.is_finite() {
            return (b.count * (1.0 - cut / b.upper), (cut + b.upper) / 2.0);
        }
        return (0.0, finite_or_zero(b.upper));
    }
    // Upper bound +Inf.
    if !upper && cut >= b.lower {
        return (b.count, cut);
    }
    (0.0, finite_or_zero(b.lower))
}

/// Kept count and midpoint of the zero bucket; `has` is whether negative
/// and positive buckets are populated.
fn zero_bucket_trim(z: &Bucket, cut: f64, has: [bool; 2], upper: bool) -> (f64, f64) {
    let [neg, pos] = has;
    let (mut lower, mut upper_b) = (z.lower, z.upper);
    if neg && !pos {
        upper_b = 0.0;
    }
    if pos && !neg {
        lower = 0.0;
    }
    let width = upper_b - lower;
    if upper {
        if cut <= lower {
            return (0.0, 0.0);
        }
        if cut >= upper_b {
            return (z.count, (lower + upper_b) / 2.0);
        }
        (z.count * (cut - lower) / width, (lower + cut) / 2.0)
    } else {
        if cut <= lower {
            return (z.count, (lower + upper_b) / 2.0);
        }
        if cut >= upper_b {
            return (0.0, 0.0);
        }
        (z.count * (upper_b - cut) / width, (cut + upper_b) / 2.0)
    }
}

/// Representative value of the interval `lower..upper`: the arithmetic mean
/// for linear (custom) buckets, the signed geometric mean for exponential
/// ones; half-infinite intervals use their finite end.
fn midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    if lower.is_infinite() {
        if upper.is_infinite() {
            return 0.0;
        }
        return if upper > 0.0 { upper / 2.0 } else { upper };
    }
    if upper.is_infinite() {
        return lower;
    }
    if linear {
        return (lower + upper) / 2.0;
    }
    let geo = (lower * upper).abs().sqrt();
    if positive { geo } else { -geo }
}
