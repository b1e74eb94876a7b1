//! Selectors with the `anchored` / `smoothed` modifiers (see `parse::extended`):
//! how far their selection reaches, `x smoothed` (an instant selector interpolated at each
//! step) and `x[5m] anchored` evaluated on its own. Range functions over them are in
//! `functions::extended`.

use std::sync::Arc;

use promql_parser::parser::{MatrixSelector, VectorSelector};

use super::selectors::RangeSeries;
use super::{Evaluator, offset_ms, total_points};
use crate::error::{Result, exec_err};
use crate::functions::extended::{
    extend_floats, interpolate, interpolate_histograms, window_bounds,
};
use crate::histogram::CounterResetHint;
use crate::model::{FPoint, HPoint, METRIC_NAME, Matrix, Series};
use crate::parse::{RangeModifier, modifier_of};

/// Widens the selection `[start, end]` of a selector (already reaching back by its range,
/// or by the lookback delta for an instant selector) for its modifier: an anchored range
/// needs the samples one lookback delta before the range too, a smoothed one also those
/// one lookback delta after its end; a smoothed instant selector needs the next sample.
pub(crate) fn widen(
    vs: &VectorSelector,
    eval_range: i64,
    lookback: i64,
    start: &mut i64,
    end: &mut i64,
) {
    match (modifier_of(vs), eval_range) {
        (None, _) | (Some(RangeModifier::Anchored), 0) => {}
        (Some(RangeModifier::Smoothed), 0) => *end += lookback,
        (Some(RangeModifier::Anchored), _) => *start -= lookback,
        (Some(RangeModifier::Smoothed), _) => {
            *start -= lookback;
            *end += lookback;
        }
    }
}

impl Evaluator<'_> {
    /// `x smoothed`: at each step, the value at exactly the step's time, interpolated
    /// between the samples before and after it (within the lookback delta either way); the
    /// last sample's value when none follows yet; nothing before the first sample.
    /// Histograms interpolate as counters unless both samples are gauges.
    pub(crate) fn smoothed_vector_selector(&self, vs: &VectorSelector) -> Result<Matrix> {
        let offset = offset_ms(&vs.offset);
        let at = self.ctx.at_ms(&vs.at);
        let lookback = self.ctx.lookback;
        let mut out = Vec::new();
        let mut total = 0usize;
        for raw in self.selected(vs) {
            self.ctx.check_deadline()?;
            let rs = RangeSeries::from_raw(raw);
            let name = raw.labels.get(METRIC_NAME);
            let mut s = Series {
                metric: raw.labels.clone(),
                ..Default::default()
            };
            for ts in self.steps() {
                let t = at.unwrap_or(ts) - offset;
                let (f, h) = rs.window(t - lookback, t + lookback);
                if !f.is_empty() && !h.is_empty() {
                    self.ctx.warn(format!(
                        "encountered a mix of histograms and floats for metric name {name:?}"
                    ));
                    continue;
                }
                if !h.is_empty() {
                    if let Some(p) = self.smoothed_histogram(h, t, name) {
                        total += p.size_units().saturating_sub(1);
                        s.histograms.push(HPoint { t: ts, h: p });
                    }
                    continue;
                }
                let i = f.partition_point(|p| p.t < t);
                let v = match (f.get(i), i.checked_sub(1).and_then(|j| f.get(j))) {
                    (Some(next), _) if next.t == t => next.f,
                    (Some(next), Some(prev)) => interpolate(prev, next, t, false),
                    (None, Some(prev)) => prev.f,
                    _ => continue,
                };
                s.floats.push(FPoint { t: ts, f: v });
            }
            total += s.floats.len() + s.histograms.len();
            self.ctx.check_samples(total)?;
            if !s.floats.is_empty() || !s.histograms.is_empty() {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The smoothed histogram at `t` from the window's histograms `h`.
    fn smoothed_histogram(
        &self,
        h: &[HPoint],
        t: i64,
        name: &str,
    ) -> Option<Arc<crate::histogram::FloatHistogram>> {
        let i = h.partition_point(|p| p.t < t);
        match (h.get(i), i.checked_sub(1).and_then(|j| h.get(j))) {
            (Some(next), _) if next.t == t => Some(next.h.clone()),
            (Some(next), Some(prev)) => {
                let mixed = || {
                    self.ctx.warn(format!(
                        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"
                    ))
                };
                if prev.h.uses_custom_buckets() != next.h.uses_custom_buckets() {
                    mixed();
                    return None;
                }
                let is_counter = prev.h.counter_reset_hint != CounterResetHint::Gauge
                    || next.h.counter_reset_hint != CounterResetHint::Gauge;
                match interpolate_histograms(
                    self.ctx,
                    (prev.t, &prev.h),
                    (next.t, &next.h),
                    t,
                    is_counter,
                ) {
                    Ok(v) => Some(Arc::new(v)),
                    Err(_) => {
                        mixed();
                        None
                    }
                }
            }
            (None, Some(prev)) => {
                // The hint describes the step from the sample before, not the value.
                let mut v = (*prev.h).clone();
                v.counter_reset_hint = CounterResetHint::Unknown;
                Some(Arc::new(v))
            }
            _ => None,
        }
    }

    /// `x[5m] anchored` / `x[5m] smoothed` evaluated on its own (an instant query): each
    /// series' points over the range with its ends placed at exactly the range's start and
    /// end. Floats only, as in Prometheus.
    pub(crate) fn extended_matrix_selector(
        &self,
        ms: &MatrixSelector,
        m: RangeModifier,
    ) -> Result<Matrix> {
        let input = self.range_input_selector(ms)?;
        let maxt = input.maxt(self.start);
        let mint = maxt - input.range;
        let (lo, hi) = window_bounds(m, mint, maxt, self.ctx.lookback);
        let mut out = Vec::new();
        input.for_each_series(|s| {
            let (f, h) = s.window(lo, hi);
            if !h.is_empty() {
                return Err(exec_err!(
                    "{} modifier is not supported with histograms",
                    m.as_str()
                ));
            }
            let floats = extend_floats(f, mint, maxt, m == RangeModifier::Smoothed);
            if !floats.is_empty() {
                out.push(Series {
                    metric: s.metric.clone(),
                    floats,
                    histograms: Vec::new(),
                    drop_name: false,
                });
            }
            Ok(())
        })?;
        self.ctx.check_samples(total_points(&out))?;
        Ok(out)
    }
}
