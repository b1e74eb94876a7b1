//! The evaluator: walks the parsed AST over a grid of steps
//! (`start..=end` by `interval`) and produces, for every vector-typed node, a
//! matrix holding one point per step per output series (Prometheus's
//! "range evaluation" model; an instant query is a one-step grid).
//!
//! Key pieces: [`Evaluator::eval`] dispatches on the node type;
//! [`Evaluator::range_eval`] gathers per-step input vectors and collects the
//! per-step outputs of a closure into series. Series data comes from the
//! selection pre-pass in [`prepare`], which selects each selector once, or leaves
//! it to its aggregation to read chunk by chunk (`aggregate::aggregate_chunked`).

mod aggregate;
mod binary;
mod extended;
pub(crate) mod prepare;
pub(crate) mod selectors;

pub(crate) use aggregate::kahan_inc as aggregate_kahan;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use promql_parser::parser::{AtModifier, Expr, Offset};

use crate::annotations::Annotations;
use crate::error::{Error, Result, exec_err};
use crate::model::{FPoint, HPoint, Labels, Matrix, RawSeries, Sample, Series, Vector};

/// Labels that describe the metric rather than the series (dropped with the name).
pub(crate) const METADATA_LABELS: [&str; 3] = ["__name__", "__type__", "__unit__"];

/// Drops the metric name and metadata labels.
pub(crate) fn drop_metric_name(l: &Labels) -> Labels {
    let mut out = l.clone();
    for n in METADATA_LABELS {
        out.del(n);
    }
    out
}

/// State shared by all evaluators of one query.
pub(crate) struct QueryCtx {
    /// Selected series per selector (keyed by the selector's address).
    pub series: HashMap<usize, Vec<RawSeries>>,
    /// Selectors their aggregation reads chunk by chunk (keyed the same way).
    pub deferred: HashMap<usize, prepare::Deferred>,
    /// Expressions to evaluate once and repeat (step invariant).
    pub wrap: HashSet<usize>,
    pub max_samples: usize,
    pub deadline: Option<Instant>,
    pub query_start: i64,
    pub query_end: i64,
    pub query_step: i64,
    pub lookback: i64,
    pub annos: RefCell<Annotations>,
    pub samples: Cell<usize>,
}

impl QueryCtx {
    pub(crate) fn check_deadline(&self) -> Result<()> {
        if let Some(d) = self.deadline
            && Instant::now() > d
        {
            return Err(Error::Timeout("expression evaluation"));
        }
        Ok(())
    }

    pub(crate) fn warn(&self, msg: impl AsRef<str>) {
        self.annos.borrow_mut().warn(msg);
    }

    pub(crate) fn info(&self, msg: impl AsRef<str>) {
        self.annos.borrow_mut().info(msg);
    }

    /// Accounts `n` samples as held in memory right now.
    pub(crate) fn check_samples(&self, n: usize) -> Result<()> {
        if n > self.max_samples {
            return Err(Error::TooManySamples("expression evaluation"));
        }
        self.samples.set(self.samples.get().max(n));
        Ok(())
    }

    /// Resolves an `@` modifier to milliseconds.
    pub(crate) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }
}

/// Milliseconds since the epoch of a `SystemTime` (negative before it).
pub(crate) fn system_time_ms(t: &std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Offset in milliseconds (positive looks back in time).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Address of an AST node, used as a key into per-query maps.
pub(crate) fn addr<T>(e: &T) -> usize {
    e as *const T as usize
}

/// Strips parentheses.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Values holding at least this many samples are freed off the request's path.
const FREE_LATER_SAMPLES: usize = 100_000;

/// Drops `value` (holding about `samples` samples) on a short-lived thread when it is
/// large, as a garbage-collected server would: freeing tens of thousands of sample vectors
/// takes milliseconds the client should not wait for. Small values are dropped here.
pub(crate) fn free_later<T: Send + 'static>(value: T, samples: usize) {
    if samples < FREE_LATER_SAMPLES {
        return;
    }
    // If no thread can be started the closure, and with it the value, is dropped here.
    let _ = std::thread::Builder::new()
        .name("promql-free".into())
        .spawn(move || drop(value));
}

/// The result of evaluating a node.
pub(crate) enum Val {
    Matrix(Matrix),
    String(String),
}

impl Val {
    pub(crate) fn into_matrix(self) -> Result<Matrix> {
        match self {
            Val::Matrix(m) => Ok(m),
            Val::String(_) => Err(exec_err!("unexpected string value")),
        }
    }
}

/// One evaluator per step grid (subqueries get their own).
#[derive(Clone, Copy)]
pub(crate) struct Evaluator<'c> {
    pub ctx: &'c QueryCtx,
    /// Where deferred selections are read from.
    pub source: &'c dyn crate::source::SeriesSource,
    /// A chunk of a deferred selector's series (keyed by the selector's address) that
    /// this evaluator sees instead of its selection.
    pub chunk: Option<(usize, &'c [RawSeries])>,
    pub start: i64,
    pub end: i64,
    pub interval: i64,
}

/// Per-series cursor to pick the point at a step from an evaluated series.
#[derive(Default, Clone, Copy)]
pub(crate) struct Cursor {
    f: usize,
    h: usize,
}

impl Cursor {
    /// The value of `s` at `ts`, advancing past it.
    pub(crate) fn next(&mut self, s: &Series, ts: i64) -> Option<Sample> {
        if let Some(p) = s.floats.get(self.f)
            && p.t == ts
        {
            self.f += 1;
            return Some(Sample {
                metric: s.metric.clone(),
                t: ts,
                f: p.f,
                h: None,
                drop_name: s.drop_name,
            });
        }
        if let Some(p) = s.histograms.get(self.h)
            && p.t == ts
        {
            self.h += 1;
            return Some(Sample {
                metric: s.metric.clone(),
                t: ts,
                f: 0.0,
                h: Some(p.h.clone()),
                drop_name: s.drop_name,
            });
        }
        None
    }
}

/// Collects per-step output vectors into series.
pub(crate) struct SeriesCollector {
    instant: bool,
    index: HashMap<Labels, (usize, i64)>,
    out: Matrix,
}

impl SeriesCollector {
    pub(crate) fn new(instant: bool) -> Self {
        SeriesCollector {
            instant,
            index: HashMap::new(),
            out: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, ts: i64, s: Sample) -> Result<()> {
        let i = match self.index.get_mut(&s.metric) {
            Some((i, last)) => {
                if *last == ts {
                    return Err(exec_err!(
                        "vector cannot contain metrics with the same labelset"
                    ));
                }
                *last = ts;
                *i
            }
            None => {
                if self.instant {
                    // Instant results keep their order, duplicates are
                    // checked after the name cleanup.
                    self.out.push(Series {
                        metric: s.metric,
                        floats: Vec::new(),
                        histograms: Vec::new(),
                        drop_name: s.drop_name,
                    });
                    let i = self.out.len() - 1;
                    push_point(&mut self.out[i], ts, s.f, s.h);
                    return Ok(());
                }
                self.out.push(Series {
                    metric: s.metric.clone(),
                    floats: Vec::new(),
                    histograms: Vec::new(),
                    drop_name: s.drop_name,
                });
                let i = self.out.len() - 1;
                self.index.insert(s.metric, (i, ts));
                i
            }
        };
        if let Some(series) = self.out.get_mut(i) {
            push_point(series, ts, s.f, s.h);
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Matrix {
        self.out
    }
}

fn push_point(
    s: &mut Series,
    ts: i64,
    f: f64,
    h: Option<std::sync::Arc<crate::histogram::FloatHistogram>>,
) {
    match h {
        Some(h) => s.histograms.push(HPoint { t: ts, h }),
        None => s.floats.push(FPoint { t: ts, f }),
    }
}

/// Total points of a matrix.
pub(crate) fn total_points(m: &Matrix) -> usize {
    m.iter()
        .map(|s| {
            s.floats.len()
                + s.histograms
                    .iter()
                    .map(|p| p.h.size_units().max(1))
                    .sum::<usize>()
        })
        .sum()
}

impl<'c> Evaluator<'c> {
    pub(crate) fn steps(&self) -> impl Iterator<Item = i64> + use<> {
        let (start, end, interval) = (self.start, self.end, self.interval.max(1));
        (0..)
            .map(move |i: i64| start + i * interval)
            .take_while(move |t| *t <= end)
    }

    pub(crate) fn num_steps(&self) -> usize {
        if self.end < self.start {
            return 0;
        }
        ((self.end - self.start) / self.interval.max(1) + 1) as usize
    }

    fn child(&self, start: i64, end: i64, interval: i64) -> Evaluator<'c> {
        Evaluator {
            start,
            end,
            interval,
            ..*self
        }
    }

    /// Evaluates `expr` over this evaluator's grid.
    pub(crate) fn eval(&self, expr: &Expr) -> Result<Val> {
        self.ctx.check_deadline()?;
        if self.end < self.start {
            return Ok(Val::Matrix(Vec::new()));
        }
        if self.start != self.end && self.ctx.wrap.contains(&addr(expr)) {
            return self.eval_step_invariant(expr);
        }
        self.eval_inner(expr)
    }

    fn eval_step_invariant(&self, expr: &Expr) -> Result<Val> {
        let one = self.child(self.start, self.start, self.interval);
        let v = one.eval_inner(expr)?;
        if matches!(
            unwrap_parens(expr),
            Expr::MatrixSelector(_) | Expr::Subquery(_)
        ) {
            return Ok(v);
        }
        let Val::Matrix(mut m) = v else {
            return Ok(v);
        };
        for s in &mut m {
            if let Some(p) = s.floats.first().copied() {
                s.floats = self.steps().map(|t| FPoint { t, f: p.f }).collect();
            } else if let Some(p) = s.histograms.first().cloned() {
                s.histograms = self.steps().map(|t| HPoint { t, h: p.h.clone() }).collect();
            }
        }
        self.ctx.check_samples(total_points(&m))?;
        Ok(Val::Matrix(m))
    }

    fn eval_inner(&self, expr: &Expr) -> Result<Val> {
        match expr {
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::NumberLiteral(n) => {
                let v = n.val;
                Ok(Val::Matrix(vec![self.scalar_series(|_| v)]))
            }
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Unary(u) => {
                let mut m = self.eval(&u.expr)?.into_matrix()?;
                for s in &mut m {
                    s.drop_name = true;
                    for p in &mut s.floats {
                        p.f = -p.f;
                    }
                    for p in &mut s.histograms {
                        p.h = std::sync::Arc::new((*p.h).clone().scale(-1.0));
                    }
                }
                Ok(Val::Matrix(m))
            }
            Expr::VectorSelector(vs) => Ok(Val::Matrix(self.vector_selector(vs)?)),
            Expr::MatrixSelector(ms) => {
                if self.start != self.end {
                    return Err(exec_err!("cannot do range evaluation of matrix selector"));
                }
                Ok(Val::Matrix(self.matrix_selector(ms)?))
            }
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq)?)),
            Expr::Binary(b) => Ok(Val::Matrix(self.binary(b)?)),
            Expr::Aggregate(a) => Ok(Val::Matrix(self.aggregate(a)?)),
            Expr::Call(c) => Ok(Val::Matrix(crate::functions::eval_call(self, c)?)),
            Expr::Extension(_) => Err(Error::BadData("unsupported expression extension".into())),
        }
    }

    /// A scalar as a one-series matrix with a point per step.
    pub(crate) fn scalar_series(&self, f: impl Fn(i64) -> f64) -> Series {
        Series {
            metric: Labels::empty(),
            floats: self.steps().map(|t| FPoint { t, f: f(t) }).collect(),
            histograms: Vec::new(),
            drop_name: false,
        }
    }

    /// Evaluates `exprs` (string-typed ones are skipped) and calls `f` once
    /// per step with the input vectors at that step; collects the outputs.
    pub(crate) fn range_eval<F>(&self, exprs: &[&Expr], mut f: F) -> Result<Matrix>
    where
        F: FnMut(&[Vector], i64) -> Result<Vector>,
    {
        let mut mats = Vec::with_capacity(exprs.len());
        for e in exprs {
            if e.value_type() == promql_parser::parser::value::ValueType::String {
                mats.push(Vec::new());
                continue;
            }
            mats.push(self.eval(e)?.into_matrix()?);
        }
        self.range_eval_matrices(&mats, &mut f)
    }

    pub(crate) fn range_eval_matrices<F>(&self, mats: &[Matrix], f: &mut F) -> Result<Matrix>
    where
        F: FnMut(&[Vector], i64) -> Result<Vector>,
    {
        let mut cursors: Vec<Vec<Cursor>> = mats
            .iter()
            .map(|m| vec![Cursor::default(); m.len()])
            .collect();
        let held: usize = mats.iter().map(total_points).sum();
        let mut collector = SeriesCollector::new(self.start == self.end);
        let mut produced = 0usize;
        let mut vectors: Vec<Vector> = vec![Vec::new(); mats.len()];
        for ts in self.steps() {
            self.ctx.check_deadline()?;
            for (i, m) in mats.iter().enumerate() {
                let v = &mut vectors[i];
                v.clear();
                for (j, s) in m.iter().enumerate() {
                    if let Some(sample) = cursors[i][j].next(s, ts) {
                        v.push(sample);
                    }
                }
            }
            let out = f(&vectors, ts)?;
            produced += out.len();
            self.ctx.check_samples(held + produced)?;
            for s in out {
                collector.push(ts, s)?;
            }
        }
        Ok(collector.finish())
    }
}
