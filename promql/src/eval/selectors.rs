//! Selectors and subqueries: instant lookups with lookback and staleness,
//! range windows `(t - range, t]`, and subquery evaluation on its own grid.

use std::borrow::Cow;
use std::sync::Arc;

use promql_parser::parser::{MatrixSelector, SubqueryExpr, VectorSelector};

use super::{Evaluator, addr, offset_ms, total_points};
use crate::error::Result;
use crate::model::{FPoint, HPoint, Labels, Matrix, RawSeries, SampleValue, Series, is_stale_nan};
use crate::parse::{RangeModifier, modifier_of};

/// One series' data prepared for range windows: stale markers removed. A stored series
/// without staleness markers (the usual case) is borrowed, not copied.
pub(crate) struct RangeSeries<'a> {
    pub metric: Labels,
    pub floats: Cow<'a, [FPoint]>,
    pub histograms: Cow<'a, [HPoint]>,
    pub drop_name: bool,
}

impl<'a> RangeSeries<'a> {
    pub(crate) fn from_raw(r: &'a RawSeries) -> Self {
        let floats = if r.floats.iter().any(|p| is_stale_nan(p.f)) {
            Cow::Owned(
                r.floats
                    .iter()
                    .filter(|p| !is_stale_nan(p.f))
                    .copied()
                    .collect(),
            )
        } else {
            Cow::Borrowed(r.floats.as_slice())
        };
        let histograms = if r.histograms.iter().any(|p| is_stale_nan(p.h.sum)) {
            Cow::Owned(
                r.histograms
                    .iter()
                    .filter(|p| !is_stale_nan(p.h.sum))
                    .cloned()
                    .collect(),
            )
        } else {
            Cow::Borrowed(r.histograms.as_slice())
        };
        RangeSeries {
            metric: r.labels.clone(),
            floats,
            histograms,
            drop_name: false,
        }
    }

    pub(crate) fn from_series(s: Series) -> Self {
        RangeSeries {
            metric: s.metric,
            floats: Cow::Owned(s.floats),
            histograms: Cow::Owned(s.histograms),
            drop_name: s.drop_name,
        }
    }

    /// Points with `mint < t <= maxt`, for windows that only move forward (a step grid):
    /// `pos` carries where the previous window of this series ended, so each bound
    /// advances over the points it passes instead of searching the whole series again.
    pub(crate) fn window_after(
        &self,
        pos: &mut WindowPos,
        mint: i64,
        maxt: i64,
    ) -> (&[FPoint], &[HPoint]) {
        if !pos.started || mint < pos.mint || maxt < pos.maxt {
            *pos = WindowPos::default();
            pos.f0 = self.floats.partition_point(|p| p.t <= mint);
            pos.f1 = self.floats.partition_point(|p| p.t <= maxt);
            pos.h0 = self.histograms.partition_point(|p| p.t <= mint);
            pos.h1 = self.histograms.partition_point(|p| p.t <= maxt);
            pos.started = true;
        } else {
            let f = &self.floats;
            while f.get(pos.f0).is_some_and(|p| p.t <= mint) {
                pos.f0 += 1;
            }
            while f.get(pos.f1).is_some_and(|p| p.t <= maxt) {
                pos.f1 += 1;
            }
            let h = &self.histograms;
            while h.get(pos.h0).is_some_and(|p| p.t <= mint) {
                pos.h0 += 1;
            }
            while h.get(pos.h1).is_some_and(|p| p.t <= maxt) {
                pos.h1 += 1;
            }
        }
        (pos.mint, pos.maxt) = (mint, maxt);
        (
            self.floats.get(pos.f0..pos.f1.max(pos.f0)).unwrap_or(&[]),
            self.histograms
                .get(pos.h0..pos.h1.max(pos.h0))
                .unwrap_or(&[]),
        )
    }

    /// Points with `mint < t <= maxt`.
    pub(crate) fn window(&self, mint: i64, maxt: i64) -> (&[FPoint], &[HPoint]) {
        let f0 = self.floats.partition_point(|p| p.t <= mint);
        let f1 = self.floats.partition_point(|p| p.t <= maxt);
        let h0 = self.histograms.partition_point(|p| p.t <= mint);
        let h1 = self.histograms.partition_point(|p| p.t <= maxt);
        (
            self.floats.get(f0..f1.max(f0)).unwrap_or(&[]),
            self.histograms.get(h0..h1.max(h0)).unwrap_or(&[]),
        )
    }
}

/// Where the last window of a series lay (see [`RangeSeries::window_after`]).
#[derive(Default, Clone, Copy)]
pub(crate) struct WindowPos {
    started: bool,
    mint: i64,
    maxt: i64,
    f0: usize,
    f1: usize,
    h0: usize,
    h1: usize,
}

/// The series of a range-vector argument.
pub(crate) enum RangeSeriesSet<'c> {
    /// A selector's stored series, converted one at a time as they are visited rather
    /// than all up front.
    Raw(&'c [RawSeries]),
    /// Evaluated series (subqueries).
    Owned(Vec<RangeSeries<'static>>),
}

/// A range-vector argument: its series and how to place windows.
pub(crate) struct RangeInput<'c> {
    pub series: RangeSeriesSet<'c>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
    /// The selector's `anchored`/`smoothed` modifier.
    pub modifier: Option<RangeModifier>,
}

impl RangeInput<'_> {
    /// Calls `f` with each series in order.
    pub(crate) fn for_each_series(
        &self,
        mut f: impl FnMut(&RangeSeries<'_>) -> Result<()>,
    ) -> Result<()> {
        match &self.series {
            RangeSeriesSet::Raw(raw) => raw.iter().try_for_each(|r| f(&RangeSeries::from_raw(r))),
            RangeSeriesSet::Owned(series) => series.iter().try_for_each(f),
        }
    }

    /// Points held by evaluated series (stored series belong to the query's selection).
    pub(crate) fn owned_points(&self) -> usize {
        match &self.series {
            RangeSeriesSet::Raw(_) => 0,
            RangeSeriesSet::Owned(series) => series
                .iter()
                .map(|s| s.floats.len() + s.histograms.len())
                .sum(),
        }
    }

    /// The window end for step `ts`.
    pub(crate) fn maxt(&self, ts: i64) -> i64 {
        self.at.unwrap_or(ts) - self.offset
    }
}

impl<'c> Evaluator<'c> {
    pub(crate) fn selected(&self, vs: &VectorSelector) -> &'c [RawSeries] {
        if let Some((key, chunk)) = self.chunk
            && key == addr(vs)
        {
            return chunk;
        }
        self.ctx
            .series
            .get(&addr(vs))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// The sample of `raw` visible at `ref_t` (lookback, staleness).
    pub(crate) fn lookup(&self, raw: &RawSeries, ref_t: i64) -> Option<(i64, SampleValue)> {
        let (t, v) = raw.last_at(ref_t)?;
        if t <= ref_t - self.ctx.lookback {
            return None;
        }
        match &v {
            SampleValue::Float(f) if is_stale_nan(*f) => None,
            SampleValue::Histogram(h) if is_stale_nan(h.sum) => None,
            _ => Some((t, v)),
        }
    }

    pub(crate) fn vector_selector(&self, vs: &VectorSelector) -> Result<Matrix> {
        if modifier_of(vs) == Some(RangeModifier::Smoothed) {
            return self.smoothed_vector_selector(vs);
        }
        let offset = offset_ms(&vs.offset);
        let at = self.ctx.at_ms(&vs.at);
        let mut out = Vec::new();
        let mut total = 0usize;
        for raw in self.selected(vs) {
            self.ctx.check_deadline()?;
            let mut s = Series {
                metric: raw.labels.clone(),
                ..Default::default()
            };
            if raw.histograms.is_empty() {
                // Floats only (the usual case): steps only move forward, so a cursor
                // replaces a search over the whole series per step.
                let floats = raw.floats.as_slice();
                let mut seen = 0usize; // samples at or before the step's reference time
                for ts in self.steps() {
                    let ref_t = at.unwrap_or(ts) - offset;
                    // A step passes a few samples: stepping over them beats a binary
                    // search of the rest of the series, and is linear overall.
                    while floats.get(seen).is_some_and(|p| p.t <= ref_t) {
                        seen += 1;
                    }
                    let Some(p) = seen.checked_sub(1).and_then(|i| floats.get(i)) else {
                        continue;
                    };
                    if p.t > ref_t - self.ctx.lookback && !is_stale_nan(p.f) {
                        s.floats.push(FPoint { t: ts, f: p.f });
                    }
                }
                total += s.floats.len();
                self.ctx.check_samples(total)?;
                if !s.floats.is_empty() {
                    out.push(s);
                }
                continue;
            }
            for ts in self.steps() {
                let ref_t = at.unwrap_or(ts) - offset;
                match self.lookup(raw, ref_t) {
                    Some((_, SampleValue::Float(f))) => s.floats.push(FPoint { t: ts, f }),
                    Some((_, SampleValue::Histogram(h))) => {
                        total += h.size_units().saturating_sub(1);
                        s.histograms.push(HPoint { t: ts, h })
                    }
                    None => {}
                }
            }
            total += s.floats.len() + s.histograms.len();
            self.ctx.check_samples(total)?;
            if !s.floats.is_empty() || !s.histograms.is_empty() {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// A matrix selector evaluated at the (single) evaluation time.
    pub(crate) fn matrix_selector(&self, ms: &MatrixSelector) -> Result<Matrix> {
        if let Some(m) = modifier_of(&ms.vs) {
            return self.extended_matrix_selector(ms, m);
        }
        let input = self.range_input_selector(ms)?;
        let maxt = input.maxt(self.start);
        let mint = maxt - input.range;
        let mut out = Vec::new();
        input.for_each_series(|s| {
            let (f, h) = s.window(mint, maxt);
            if !f.is_empty() || !h.is_empty() {
                out.push(Series {
                    metric: s.metric.clone(),
                    floats: f.to_vec(),
                    histograms: h.to_vec(),
                    drop_name: false,
                });
            }
            Ok(())
        })?;
        self.ctx.check_samples(total_points(&out))?;
        Ok(out)
    }

    pub(crate) fn range_input_selector(&self, ms: &MatrixSelector) -> Result<RangeInput<'c>> {
        Ok(RangeInput {
            series: RangeSeriesSet::Raw(self.selected(&ms.vs)),
            range: ms.range.as_millis() as i64,
            offset: offset_ms(&ms.vs.offset),
            at: self.ctx.at_ms(&ms.vs.at),
            modifier: modifier_of(&ms.vs),
        })
    }

    /// Evaluates a subquery as a range input for functions.
    pub(crate) fn range_input_subquery(&self, sq: &SubqueryExpr) -> Result<RangeInput<'c>> {
        let m = self.subquery(sq)?;
        let series = m
            .into_iter()
            .map(|mut s| {
                for p in &mut s.histograms {
                    use crate::histogram::CounterResetHint as H;
                    if matches!(p.h.counter_reset_hint, H::CounterReset | H::NotCounterReset) {
                        let mut h = (*p.h).clone();
                        h.counter_reset_hint = H::Unknown;
                        p.h = Arc::new(h);
                    }
                }
                RangeSeries::from_series(s)
            })
            .collect();
        Ok(RangeInput {
            series: RangeSeriesSet::Owned(series),
            range: sq.range.as_millis() as i64,
            offset: offset_ms(&sq.offset),
            at: self.ctx.at_ms(&sq.at),
            modifier: None,
        })
    }

    /// Evaluates the inner expression of a subquery on its own step grid;
    /// the result holds the points of every subquery step.
    pub(crate) fn subquery(&self, sq: &SubqueryExpr) -> Result<Matrix> {
        let offset = offset_ms(&sq.offset);
        let range = sq.range.as_millis() as i64;
        let (pstart, pend) = match self.ctx.at_ms(&sq.at) {
            Some(at) => (at, at),
            None => {
                let pend = if self.interval > 0 {
                    self.start + ((self.end - self.start) / self.interval) * self.interval
                } else {
                    self.end
                };
                (self.start, pend)
            }
        };
        let end = pend - offset;
        let interval = match sq.step {
            Some(s) if !s.is_zero() => s.as_millis() as i64,
            _ => self.ctx.query_step_for_subquery(),
        }
        .max(1);
        let lo = pstart - offset - range;
        // Go's integer division truncates toward zero; keep that for parity.
        let mut start = interval * (lo / interval);
        if start <= lo {
            start += interval;
        }
        let child = self.child(start, end, interval);
        child.eval(&sq.expr)?.into_matrix()
    }
}

impl super::QueryCtx {
    /// Default subquery step: the query's step, or 1m for instant queries
    /// (Prometheus's test engine uses a fixed 1m; the API uses the global
    /// evaluation interval, which defaults to 1m).
    pub(crate) fn query_step_for_subquery(&self) -> i64 {
        60_000
    }
}
