//! Aggregation operators (`sum`, `avg`, `min`, `max`, `count`, `group`,
//! `stddev`, `stdvar`, `quantile`, `count_values`, `topk`, `bottomk`,
//! `limitk`, `limit_ratio`) with `by`/`without`.
//!
//! Groups are assigned per input series in input order, so instant results
//! come out in Prometheus's order (which `topk`/`bottomk` rely on).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier, VectorSelector};

use super::prepare::{Deferred, chunked_selector, with_stats_hints};
use super::{Cursor, Evaluator, SeriesCollector, addr, free_later, total_points};
use crate::annotations::go_g;
use crate::error::{Error, Result, exec_err};
use crate::histogram::{CounterResetHint, FloatHistogram, KahanHistogram};
use crate::model::{Labels, METRIC_NAME, Matrix, RawSeries, Sample, Series};

pub(crate) use crate::histogram::kahan_inc;

#[derive(Default)]
struct Group {
    seen: bool,
    f: f64,
    mean: f64,
    kahan_c: f64,
    /// Histogram sum (or, with `hist_incremental_mean`, mean) so far.
    h: Option<KahanHistogram>,
    hist_incremental_mean: bool,
    count: f64,
    has_float: bool,
    has_hist: bool,
    incompatible: bool,
    incremental_mean: bool,
    drop_name: bool,
    reset_seen: bool,
    not_reset_seen: bool,
    values: Vec<f64>,
    heap: Vec<Sample>,
}

fn grouping(a: &AggregateExpr) -> (bool, Vec<String>) {
    match &a.modifier {
        Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
        None => (false, Vec::new()),
    }
}

fn group_labels(m: &Labels, without: bool, names: &[String]) -> Labels {
    if without {
        let mut l = m.drop_names(names);
        l.del(METRIC_NAME);
        l
    } else if names.is_empty() {
        Labels::empty()
    } else {
        m.keep(names)
    }
}

/// Deterministic offset in [0, 1) from a label set, for `limit_ratio`.
fn ratio_offset(l: &Labels) -> f64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    l.hash(&mut h);
    h.finish() as f64 / u64::MAX as f64
}

fn ratio_keep(r: f64, off: f64) -> bool {
    (r >= 0.0 && off < r) || (r < 0.0 && off >= 1.0 + r)
}

/// Go's `vectorByValueHeap` less: NaN sorts first.
fn nan_first_less(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

impl Evaluator<'_> {
    pub(crate) fn aggregate(&self, a: &AggregateExpr) -> Result<Matrix> {
        let op = a.op.to_string();
        let (without, mut names) = grouping(a);
        names.sort();
        if op == "count_values" {
            return self.count_values(a, without, names);
        }
        let params = match &a.param {
            Some(p) if op != "count_values" => {
                let m = self.eval(super::unwrap_parens(p))?.into_matrix()?;
                let mut per_step = vec![f64::NAN; self.num_steps()];
                if let Some(s) = m.first() {
                    for p in &s.floats {
                        let i = ((p.t - self.start) / self.interval.max(1)) as usize;
                        if let Some(x) = per_step.get_mut(i) {
                            *x = p.f;
                        }
                    }
                }
                Some(per_step)
            }
            _ => None,
        };
        let input = match chunked_selector(a)
            .and_then(|(vs, _)| Some((vs, self.ctx.deferred.get(&addr(vs))?)))
        {
            Some((vs, d)) => match self.aggregate_chunked(a, &op, without, &names, vs, d)? {
                Chunked::Done(m) => return Ok(m),
                Chunked::Input(m) => m,
            },
            None => self.eval(&a.expr)?.into_matrix()?,
        };
        let held = total_points(&input);
        let is_k = matches!(op.as_str(), "topk" | "bottomk" | "limitk" | "limit_ratio");
        // Assign groups in input order.
        let mut index = GroupIndex::default();
        let series_group: Vec<usize> = input
            .iter()
            .map(|s| index.group_of(&s.metric, without, &names))
            .collect();
        let group_metric = index.metrics;
        let p = params.unwrap_or_default();
        let pmax = p.iter().copied().fold(f64::MIN, f64::max);
        let pmin = p.iter().copied().fold(f64::MAX, f64::min);
        let pnan = p.iter().any(|x| x.is_nan());
        match op.as_str() {
            "topk" | "bottomk" | "limitk" => {
                if pmax < 1.0 && !pnan {
                    return Ok(Vec::new());
                }
                if pnan {
                    return Err(exec_err!("Parameter value is NaN"));
                }
                if pmin <= i64::MIN as f64 {
                    return Err(exec_err!("Scalar value {} underflows int64", go_g(pmin)));
                }
                if pmax >= i64::MAX as f64 {
                    return Err(exec_err!("Scalar value {} overflows int64", go_g(pmax)));
                }
            }
            "limit_ratio" => {
                if pmax == 0.0 && pmin == 0.0 {
                    return Ok(Vec::new());
                }
                if pnan {
                    return Err(exec_err!("Ratio value is NaN"));
                }
                if pmax > 1.0 {
                    self.ctx.warn(format!(
                        "ratio value should be between -1 and 1, got {}, capping to 1",
                        go_g(pmax)
                    ));
                }
                if pmin < -1.0 {
                    self.ctx.warn(format!(
                        "ratio value should be between -1 and 1, got {}, capping to -1",
                        go_g(pmin)
                    ));
                }
            }
            "quantile" => {
                if pnan {
                    self.ctx
                        .warn("quantile value should be between 0 and 1, got NaN");
                }
                if pmax > 1.0 {
                    self.ctx.warn(format!(
                        "quantile value should be between 0 and 1, got {}",
                        go_g(pmax)
                    ));
                }
                if pmin < 0.0 {
                    self.ctx.warn(format!(
                        "quantile value should be between 0 and 1, got {}",
                        go_g(pmin)
                    ));
                }
            }
            _ => {}
        }
        let mut cursors = vec![Cursor::default(); input.len()];
        let mut collector = SeriesCollector::new(self.start == self.end);
        let mut produced = 0usize;
        for (step, ts) in self.steps().enumerate() {
            self.ctx.check_deadline()?;
            let param = p.get(step).copied().unwrap_or(f64::NAN);
            let mut groups: Vec<Group> =
                (0..group_metric.len()).map(|_| Group::default()).collect();
            let mut vec_at: Vec<(usize, Sample)> = Vec::new();
            for (si, s) in input.iter().enumerate() {
                if let Some(sample) = cursors[si].next(s, ts) {
                    vec_at.push((series_group[si], sample));
                }
            }
            let out = if is_k {
                self.aggregate_k(&op, param, &vec_at, &mut groups, input.len())
            } else {
                self.aggregate_step(&op, param, &vec_at, &mut groups, &group_metric)
            };
            produced += out.len();
            self.ctx.check_samples(held + produced)?;
            for s in out {
                collector.push(ts, s)?;
            }
        }
        Ok(collector.finish())
    }

    fn aggregate_step(
        &self,
        op: &str,
        q: f64,
        vec_at: &[(usize, Sample)],
        groups: &mut [Group],
        metrics: &[Labels],
    ) -> Vec<Sample> {
        self.accumulate(op, vec_at, groups);
        self.finish_groups(op, q, groups, metrics)
    }

    /// Folds one step's samples (with their group) into the groups' state, in order.
    fn accumulate(&self, op: &str, vec_at: &[(usize, Sample)], groups: &mut [Group]) {
        for (gi, s) in vec_at {
            if let Some(g) = groups.get_mut(*gi) {
                self.accumulate_one(op, g, s.f, s.h.as_ref(), s.drop_name, &s.metric);
            }
        }
    }

    /// Folds one sample of a series labelled `metric` into its group's state.
    fn accumulate_one(
        &self,
        op: &str,
        g: &mut Group,
        f: f64,
        h: Option<&Arc<FloatHistogram>>,
        drop_name: bool,
        metric: &Labels,
    ) {
        let ignored = |name: &str| {
            self.ctx
                .info(format!("ignored histogram in {name} aggregation"));
        };
        if !g.seen {
            *g = Group {
                seen: true,
                f,
                mean: f,
                count: 1.0,
                drop_name,
                ..Default::default()
            };
            match op {
                "avg" | "sum" => match h {
                    None => g.has_float = true,
                    Some(h) => {
                        g.h = Some(KahanHistogram::from(&**h));
                        g.has_hist = true;
                        match h.counter_reset_hint {
                            CounterResetHint::CounterReset => g.reset_seen = true,
                            CounterResetHint::NotCounterReset => g.not_reset_seen = true,
                            _ => {}
                        }
                    }
                },
                "stdvar" | "stddev" => {
                    if h.is_some() {
                        g.seen = false;
                        ignored(op);
                    } else if f.is_nan() || f.is_infinite() {
                        g.f = f64::NAN;
                    } else {
                        g.f = 0.0;
                    }
                }
                "quantile" => {
                    if h.is_some() {
                        g.seen = false;
                        ignored(op);
                    }
                    g.values = vec![f];
                }
                "group" => g.f = 1.0,
                "min" | "max" if h.is_some() => {
                    g.seen = false;
                    ignored(op);
                }
                _ => {}
            }
            return;
        }
        if g.incompatible {
            return;
        }
        if drop_name {
            g.drop_name = true;
        }
        match op {
            "sum" | "avg" => {
                if op == "avg" {
                    g.count += 1.0;
                }
                match h {
                    Some(h) => {
                        g.has_hist = true;
                        match h.counter_reset_hint {
                            CounterResetHint::CounterReset => g.reset_seen = true,
                            CounterResetHint::NotCounterReset => g.not_reset_seen = true,
                            _ => {}
                        }
                        let Some(acc) = g.h.as_mut() else {
                            // Floats came first: the group is invalid anyway.
                            return;
                        };
                        let added = if op == "sum" {
                            acc.add(h)
                        } else {
                            acc.add_for_mean(&mut g.hist_incremental_mean, g.count, h)
                        };
                        match added {
                            Err(_) => {
                                self.ctx.warn(format!(
                                    "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {:?}",
                                    metric.get(METRIC_NAME)
                                ));
                                g.incompatible = true;
                            }
                            Ok((_, reconciled)) => {
                                if reconciled {
                                    self.ctx.info(
                                        "mismatched custom buckets were reconciled during aggregation",
                                    );
                                }
                            }
                        }
                    }
                    None => {
                        g.has_float = true;
                        if op == "sum" {
                            (g.f, g.kahan_c) = kahan_inc(f, g.f, g.kahan_c);
                        } else {
                            if !g.incremental_mean {
                                let (nv, nc) = kahan_inc(f, g.f, g.kahan_c);
                                if !nv.is_infinite() {
                                    g.f = nv;
                                    g.kahan_c = nc;
                                    return;
                                }
                                g.incremental_mean = true;
                                g.mean = g.f / (g.count - 1.0);
                                g.kahan_c /= g.count - 1.0;
                            }
                            let q = (g.count - 1.0) / g.count;
                            (g.mean, g.kahan_c) = kahan_inc(f / g.count, q * g.mean, q * g.kahan_c);
                        }
                    }
                }
            }
            "group" => {}
            "max" => {
                if h.is_some() {
                    ignored(op);
                    return;
                }
                if g.f < f || g.f.is_nan() {
                    g.f = f;
                }
            }
            "min" => {
                if h.is_some() {
                    ignored(op);
                    return;
                }
                if g.f > f || g.f.is_nan() {
                    g.f = f;
                }
            }
            "count" => g.count += 1.0,
            "stdvar" | "stddev" => {
                if h.is_none() {
                    g.count += 1.0;
                    let delta = f - g.mean;
                    g.mean += delta / g.count;
                    g.f += delta * (f - g.mean);
                } else {
                    ignored(op);
                }
            }
            "quantile" => {
                if h.is_some() {
                    ignored(op);
                    return;
                }
                g.values.push(f);
            }
            _ => {}
        }
    }

    /// One step's output: a sample per group that saw any input.
    fn finish_groups(
        &self,
        op: &str,
        q: f64,
        groups: &mut [Group],
        metrics: &[Labels],
    ) -> Vec<Sample> {
        let mut out = Vec::new();
        for (gi, g) in groups.iter_mut().enumerate() {
            if !g.seen {
                continue;
            }
            let mut hist: Option<FloatHistogram> = None;
            match op {
                "avg" | "sum" => {
                    if g.has_float && g.has_hist {
                        self.ctx
                            .warn("encountered a mix of histograms and floats for aggregation");
                        continue;
                    }
                    if g.incompatible {
                        continue;
                    }
                    if g.has_hist {
                        let h = g.h.take().map(|acc| {
                            if op == "avg" && !g.hist_incremental_mean {
                                acc.finish_mean(g.count)
                            } else {
                                acc.finish()
                            }
                        });
                        hist = Some(h.unwrap_or_default());
                    } else if op == "sum" {
                        g.f += g.kahan_c;
                    } else if g.incremental_mean {
                        g.f = g.mean + g.kahan_c;
                    } else {
                        g.f = g.f / g.count + g.kahan_c / g.count;
                    }
                }
                "count" => g.f = g.count,
                "stdvar" => g.f /= g.count,
                "stddev" => g.f = (g.f / g.count).sqrt(),
                "quantile" => {
                    g.f = crate::histogram::quantile::quantile(q, &mut g.values);
                }
                _ => {}
            }
            if g.reset_seen && g.not_reset_seen {
                self.ctx
                    .warn("conflicting counter resets during histogram aggregation");
            }
            let metric = metrics.get(gi).cloned().unwrap_or_default();
            out.push(Sample {
                metric,
                t: 0,
                f: g.f,
                h: hist.map(Arc::new),
                drop_name: g.drop_name,
            });
        }
        out
    }

    fn aggregate_k(
        &self,
        op: &str,
        param: f64,
        vec_at: &[(usize, Sample)],
        groups: &mut [Group],
        input_len: usize,
    ) -> Vec<Sample> {
        let mut k: i64 = 0;
        let mut r = 0.0;
        match op {
            "limit_ratio" => {
                if param == 0.0 {
                    return Vec::new();
                }
                r = param.clamp(-1.0, 1.0);
            }
            _ => {
                k = (param as i64).min(input_len as i64);
                if k < 1 {
                    return Vec::new();
                }
            }
        }
        let ku = k.max(0) as usize;
        for (gi, s) in vec_at {
            let Some(g) = groups.get_mut(*gi) else {
                continue;
            };
            if !g.seen {
                g.seen = true;
                g.heap.clear();
            }
            match op {
                "topk" | "bottomk" => {
                    if s.h.is_some() {
                        self.ctx
                            .info(format!("ignored histogram in {op} aggregation"));
                        continue;
                    }
                    if g.heap.len() < ku {
                        g.heap.push(s.clone());
                        continue;
                    }
                    // Replace the current worst element if `s` is better.
                    let top = op == "topk";
                    let worst = g
                        .heap
                        .iter()
                        .enumerate()
                        .min_by(|(_, a), (_, b)| {
                            let (x, y) = if top { (a.f, b.f) } else { (b.f, a.f) };
                            if nan_first_less(x, y) {
                                std::cmp::Ordering::Less
                            } else if nan_first_less(y, x) {
                                std::cmp::Ordering::Greater
                            } else {
                                std::cmp::Ordering::Equal
                            }
                        })
                        .map(|(i, _)| i);
                    if let Some(wi) = worst {
                        let w = g.heap[wi].f;
                        let better = if top {
                            w < s.f || (w.is_nan() && !s.f.is_nan())
                        } else {
                            w > s.f || (w.is_nan() && !s.f.is_nan())
                        };
                        if better {
                            g.heap[wi] = s.clone();
                        }
                    }
                }
                "limitk" => {
                    if g.heap.len() < ku {
                        g.heap.push(s.clone());
                    }
                }
                _ => {
                    if ratio_keep(r, ratio_offset(&s.metric)) {
                        g.heap.push(s.clone());
                    }
                }
            }
        }
        let mut out = Vec::new();
        for g in groups.iter_mut() {
            if !g.seen {
                continue;
            }
            let mut items = std::mem::take(&mut g.heap);
            match op {
                "topk" => items.sort_by(|a, b| desc_nan_last(a.f, b.f)),
                "bottomk" => items.sort_by(|a, b| asc_nan_last(a.f, b.f)),
                _ => {}
            }
            out.extend(items);
        }
        out
    }

    /// Evaluates an aggregation whose selector was left to it (see
    /// [`chunked_selector`]): reads the selection chunk by chunk, evaluates the
    /// aggregation's argument on each chunk and folds the result into per-step group
    /// state before the next chunk is read, so only one chunk's samples are held. Series
    /// arrive in the order a whole selection would give them, so every group adds its
    /// samples in the same order (Kahan sums come out bit for bit the same). When the
    /// groups would be nearly as many as the series, the per-step state would outweigh
    /// the input: then the argument is evaluated over the whole selection and returned
    /// for the usual step-by-step aggregation.
    fn aggregate_chunked(
        &self,
        a: &AggregateExpr,
        op: &str,
        without: bool,
        names: &[String],
        vs: &VectorSelector,
        d: &Deferred,
    ) -> Result<Chunked> {
        let mut chunks = self.source.select_chunked(&d.matchers, d.start, d.end)?;
        let key = addr(vs);
        let with_hints = |c: Vec<RawSeries>| -> Vec<RawSeries> {
            if d.stats {
                c.iter().map(with_stats_hints).collect()
            } else {
                c
            }
        };
        let labels = chunks.labels();
        let groups_bound = {
            let mut distinct = HashSet::new();
            for l in labels {
                distinct.insert(group_hash(l, without, names));
            }
            distinct.len()
        };
        let state = groups_bound.saturating_mul(std::mem::size_of::<Group>());
        if state > labels.len().saturating_mul(CHUNKED_STATE_PER_SERIES) {
            let mut all: Vec<RawSeries> = Vec::new();
            while let Some(c) = chunks.next_chunk()? {
                self.ctx.check_deadline()?;
                all.extend(with_hints(c));
            }
            let sub = Evaluator {
                chunk: Some((key, all.as_slice())),
                ..*self
            };
            let m = sub.eval(&a.expr)?.into_matrix()?;
            let samples = all.iter().map(RawSeries::len).sum();
            free_later(all, samples);
            return Ok(Chunked::Input(m));
        }
        let mut index = GroupIndex::default();
        let mut groups: Vec<Vec<Group>> = (0..self.num_steps()).map(|_| Vec::new()).collect();
        while let Some(c) = chunks.next_chunk()? {
            self.ctx.check_deadline()?;
            let c = with_hints(c);
            let sub = Evaluator {
                chunk: Some((key, c.as_slice())),
                ..*self
            };
            let input = sub.eval(&a.expr)?.into_matrix()?;
            drop(c);
            self.ctx.check_samples(total_points(&input))?;
            let series_group: Vec<usize> = input
                .iter()
                .map(|s| index.group_of(&s.metric, without, names))
                .collect();
            let groups_now = index.metrics.len();
            for g in &mut groups {
                if g.len() < groups_now {
                    g.resize_with(groups_now, Group::default);
                }
            }
            // Series by series: a group's state at a step still takes its samples in
            // series order, as the step-by-step aggregation adds them.
            let interval = self.interval.max(1);
            let step_of = |t: i64| {
                let d = t - self.start;
                (d >= 0 && d % interval == 0)
                    .then(|| usize::try_from(d / interval).ok())
                    .flatten()
            };
            for (s, &gi) in input.iter().zip(&series_group) {
                for p in &s.floats {
                    if let Some(g) = step_of(p.t)
                        .and_then(|i| groups.get_mut(i))
                        .and_then(|g| g.get_mut(gi))
                    {
                        self.accumulate_one(op, g, p.f, None, s.drop_name, &s.metric);
                    }
                }
                for p in &s.histograms {
                    if let Some(g) = step_of(p.t)
                        .and_then(|i| groups.get_mut(i))
                        .and_then(|g| g.get_mut(gi))
                    {
                        self.accumulate_one(op, g, 0.0, Some(&p.h), s.drop_name, &s.metric);
                    }
                }
            }
        }
        let mut collector = SeriesCollector::new(self.start == self.end);
        let mut produced = 0usize;
        for (g, ts) in groups.iter_mut().zip(self.steps()) {
            self.ctx.check_deadline()?;
            let out = self.finish_groups(op, f64::NAN, g, &index.metrics);
            produced += out.len();
            self.ctx.check_samples(produced)?;
            for s in out {
                collector.push(ts, s)?;
            }
        }
        Ok(Chunked::Done(collector.finish()))
    }

    fn count_values(
        &self,
        a: &AggregateExpr,
        without: bool,
        mut names: Vec<String>,
    ) -> Result<Matrix> {
        let label = match a.param.as_deref().map(super::unwrap_parens) {
            Some(Expr::StringLiteral(s)) => s.val.clone(),
            _ => {
                return Err(Error::BadData(
                    "count_values: expected string parameter".into(),
                ));
            }
        };
        if !crate::parse::valid_label_name(&label) {
            return Err(exec_err!(
                "invalid label name {}",
                crate::parse::quote_raw(&label)
            ));
        }
        if !without {
            names.push(label.clone());
            names.sort();
        }
        self.range_eval(&[&a.expr], |v, _| {
            let mut order: Vec<Labels> = Vec::new();
            let mut counts: HashMap<Labels, f64> = HashMap::new();
            for s in &v[0] {
                let mut m = s.metric.clone();
                let value = match &s.h {
                    Some(h) => h.go_string(),
                    None => crate::json::format_float(s.f),
                };
                m.set(&label, &value);
                let g = group_labels(&m, without, &names);
                let g = if without {
                    let mut g = g;
                    g.set(&label, &value);
                    g
                } else {
                    g
                };
                match counts.get_mut(&g) {
                    Some(c) => *c += 1.0,
                    None => {
                        counts.insert(g.clone(), 1.0);
                        order.push(g);
                    }
                }
            }
            Ok(order
                .into_iter()
                .map(|g| {
                    let c = counts.get(&g).copied().unwrap_or(0.0);
                    Sample::float(g, c)
                })
                .collect())
        })
    }
}

/// What [`Evaluator::aggregate_chunked`] gives back.
enum Chunked {
    /// The aggregation's result.
    Done(Matrix),
    /// The argument evaluated over the whole selection, still to be aggregated.
    Input(Matrix),
}

/// Bytes of per-step group state per selected series up to which a chunked aggregation
/// keeps state per group (the evaluated argument alone takes 16 bytes per series and step).
const CHUNKED_STATE_PER_SERIES: usize = 32;

/// Groups in order of appearance, found by a hash of the grouping labels: a series of a
/// known group costs no label set of its own.
#[derive(Default)]
struct GroupIndex {
    by_hash: HashMap<u64, Vec<usize>>,
    /// Each group's labels.
    metrics: Vec<Labels>,
}

impl GroupIndex {
    /// The group of a series labelled `m` (created if new).
    fn group_of(&mut self, m: &Labels, without: bool, names: &[String]) -> usize {
        let h = group_hash(m, without, names);
        let keep = |k: &str| {
            if without {
                k != METRIC_NAME && !names.iter().any(|n| n == k)
            } else {
                names.iter().any(|n| n == k)
            }
        };
        let candidates = self.by_hash.entry(h).or_default();
        for &gi in candidates.iter() {
            if let Some(g) = self.metrics.get(gi)
                && m.iter().filter(|(k, _)| keep(k)).eq(g.iter())
            {
                return gi;
            }
        }
        let gi = self.metrics.len();
        self.metrics.push(group_labels(m, without, names));
        candidates.push(gi);
        gi
    }
}

/// A hash of the group labels of `m` (as [`group_labels`] gives them), without building them.
fn group_hash(m: &Labels, without: bool, names: &[String]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if without {
        for (n, v) in m.iter() {
            if n != METRIC_NAME && !names.iter().any(|x| x == n) {
                (n, v).hash(&mut h);
            }
        }
    } else {
        for n in names {
            m.get(n).hash(&mut h);
        }
    }
    h.finish()
}

/// Descending with NaN last (reverse of the NaN-first ascending heap order).
fn desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => b.partial_cmp(&a).unwrap_or(Equal),
    }
}

fn asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => a.partial_cmp(&b).unwrap_or(Equal),
    }
}

impl Series {
    /// Whether the series has no points.
    pub fn is_empty(&self) -> bool {
        self.floats.is_empty() && self.histograms.is_empty()
    }
}
