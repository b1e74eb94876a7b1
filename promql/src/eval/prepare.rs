//! Query preparation before evaluation:
//! - step invariance: which subtrees can be evaluated once and repeated
//!   (Prometheus's `PreprocessExpr`, recorded by node address);
//! - series selection: the time range each selector needs over the whole
//!   query (offsets, `@`, ranges, subqueries, lookback), selected once (or
//!   deferred to an aggregation that reads it chunk by chunk, see [`chunked_selector`]).

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{AggregateExpr, Expr, VectorSelector};

use super::{addr, offset_ms, unwrap_parens};
use crate::error::Result;
use crate::model::RawSeries;
use crate::source::{Matcher, SeriesSource};

/// Functions whose result depends on the evaluation time itself: a query using them
/// cannot be evaluated once and reused across steps (nor rewritten with `@`).
pub const AT_MODIFIER_UNSAFE: [&str; 15] = [
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

/// Returns (is step invariant, should wrap) and records wrapped children.
pub(crate) fn step_invariant(expr: &Expr, wrap: &mut HashSet<usize>) -> (bool, bool) {
    match expr {
        Expr::VectorSelector(vs) => (vs.at.is_some(), vs.at.is_some()),
        Expr::Aggregate(a) => step_invariant(unwrap_parens(&a.expr), wrap),
        Expr::Binary(b) => {
            let (li, lw) = step_invariant(&b.lhs, wrap);
            let (ri, rw) = step_invariant(&b.rhs, wrap);
            if li && ri {
                return (true, true);
            }
            if lw {
                wrap.insert(addr(b.lhs.as_ref()));
            }
            if rw {
                wrap.insert(addr(b.rhs.as_ref()));
            }
            (false, false)
        }
        Expr::Call(c) => {
            let name = c.func.name;
            let mut inv = !AT_MODIFIER_UNSAFE.contains(&name);
            let mut ts_safe = name == "timestamp";
            let mut should = Vec::new();
            for a in &c.args.args {
                let a = unwrap_parens(a);
                let (ai, aw) = step_invariant(a, wrap);
                inv = inv && ai;
                if !ai || !matches!(a, Expr::VectorSelector(_)) {
                    ts_safe = false;
                }
                should.push((addr(a), aw));
            }
            if inv || ts_safe {
                return (true, true);
            }
            for (a, w) in should {
                if w {
                    wrap.insert(a);
                }
            }
            (false, false)
        }
        Expr::MatrixSelector(ms) => (ms.vs.at.is_some(), false),
        Expr::Subquery(sq) => {
            let (inner, _) = step_invariant(&sq.expr, wrap);
            if inner {
                wrap.insert(addr(sq.expr.as_ref()));
            }
            (sq.at.is_some(), false)
        }
        Expr::Paren(p) => step_invariant(&p.expr, wrap),
        Expr::Unary(u) => step_invariant(&u.expr, wrap),
        Expr::StringLiteral(_) | Expr::NumberLiteral(_) => (true, false),
        Expr::Extension(_) => (false, false),
    }
}

/// Time context of the subqueries enclosing a selector.
#[derive(Clone, Copy, Default)]
struct SubqCtx {
    offset: i64,
    range: i64,
    at: Option<i64>,
}

/// Query-wide parameters for selection.
pub(crate) struct SelectParams {
    pub start: i64,
    pub end: i64,
    pub lookback: i64,
    pub query_start: i64,
    pub query_end: i64,
}

impl SelectParams {
    fn at(&self, at: &Option<promql_parser::parser::AtModifier>) -> Option<i64> {
        use promql_parser::parser::AtModifier;
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(super::system_time_ms(t)),
        }
    }
}

/// The parser's matchers of a selector as engine matchers, one set per
/// `or` alternative.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Vec<Vec<Matcher>> {
    let mut base: Vec<Matcher> = Vec::new();
    if let Some(name) = &vs.name
        && let Ok(m) = Matcher::new(crate::source::MatchKind::Equal, "__name__", name)
    {
        base.push(m);
    }
    if vs.matchers.or_matchers.is_empty() {
        let mut set = base;
        set.extend(user_matchers(&vs.matchers.matchers));
        return vec![set];
    }
    vs.matchers
        .or_matchers
        .iter()
        .map(|alt| {
            let mut set = base.clone();
            set.extend(user_matchers(&vs.matchers.matchers));
            set.extend(user_matchers(alt));
            set
        })
        .collect()
}

/// What the selection pre-pass found.
#[derive(Default)]
pub(crate) struct Selections {
    /// Selected series per selector (keyed by the selector's address).
    pub series: HashMap<usize, Vec<RawSeries>>,
    /// Selectors read chunk by chunk by their aggregation (see [`chunked_selector`]).
    pub deferred: HashMap<usize, Deferred>,
}

/// A selection left for its aggregation to read chunk by chunk.
pub(crate) struct Deferred {
    pub matchers: Vec<Matcher>,
    pub start: i64,
    pub end: i64,
    /// Histogram reset hints as the stats iterator gives them (see [`stats_selectors`]).
    pub stats: bool,
}

/// Aggregations that fold their input series one at a time into per-group state.
const CHUNKED_AGGREGATIONS: [&str; 8] = [
    "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
];

/// Functions of a range vector computed for each series on its own (so a chunk of series
/// can be evaluated without the others).
const PER_SERIES_RANGE_FUNCTIONS: [&str; 22] = [
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "quantile_over_time",
    "mad_over_time",
    "double_exponential_smoothing",
];

/// The selector of an aggregation whose input can be evaluated a chunk of series at a
/// time: `agg (sel)` or `agg (f(sel[r], scalars...))` for a per-series range function
/// `f`, with one matcher set (no `or` alternatives). Also the matrix selector's range
/// (0 for an instant selector).
pub(crate) fn chunked_selector(a: &AggregateExpr) -> Option<(&VectorSelector, i64)> {
    if !CHUNKED_AGGREGATIONS.contains(&a.op.to_string().as_str()) {
        return None;
    }
    // One matcher set, and no `anchored`/`smoothed` modifier (those read around the range's
    // ends and are evaluated over the whole selection).
    let one_set = |vs: &VectorSelector| {
        vs.matchers.or_matchers.is_empty() && crate::parse::modifier_of(vs).is_none()
    };
    match unwrap_parens(&a.expr) {
        Expr::VectorSelector(vs) => one_set(vs).then_some((vs, 0)),
        Expr::Call(c) if PER_SERIES_RANGE_FUNCTIONS.contains(&c.func.name) => {
            let mut sel = None;
            for arg in &c.args.args {
                match unwrap_parens(arg) {
                    Expr::MatrixSelector(ms) if sel.is_none() => {
                        sel = Some((&ms.vs, ms.range.as_millis() as i64));
                    }
                    Expr::NumberLiteral(_) => {}
                    _ => return None,
                }
            }
            sel.filter(|(vs, _)| one_set(vs))
        }
        _ => None,
    }
}

/// The matchers the query gave (without the `anchored`/`smoothed` mark).
fn user_matchers(ms: &[promql_parser::label::Matcher]) -> impl Iterator<Item = Matcher> + '_ {
    ms.iter()
        .filter(|m| !crate::parse::is_modifier_mark(&m.name))
        .map(Matcher::from_parser)
}

/// Selects the series of every selector in `expr` once.
pub(crate) fn select_all(
    expr: &Expr,
    p: &SelectParams,
    source: &dyn SeriesSource,
    out: &mut Selections,
) -> Result<()> {
    walk(expr, p, SubqCtx::default(), 0, source, out)
}

fn walk(
    expr: &Expr,
    p: &SelectParams,
    sq: SubqCtx,
    eval_range: i64,
    source: &dyn SeriesSource,
    out: &mut Selections,
) -> Result<()> {
    match expr {
        Expr::VectorSelector(vs) => select_one(vs, p, sq, eval_range, source, out),
        Expr::MatrixSelector(ms) => {
            walk_vs(&ms.vs, p, sq, ms.range.as_millis() as i64, source, out)
        }
        Expr::Subquery(s) => {
            let mut inner = sq;
            let off = offset_ms(&s.offset);
            let range = s.range.as_millis() as i64;
            match p.at(&s.at) {
                Some(at) => {
                    inner.offset = off;
                    inner.range = range;
                    inner.at = Some(at);
                }
                None => {
                    inner.offset += off;
                    inner.range += range;
                }
            }
            walk(&s.expr, p, inner, 0, source, out)
        }
        Expr::Aggregate(a) => {
            if let Some(param) = &a.param {
                walk(param, p, sq, 0, source, out)?;
            }
            if let Some((vs, range)) = chunked_selector(a) {
                // Read when the aggregation is evaluated, chunk by chunk.
                let (start, end) = selection_range(vs, p, sq, range);
                if let Some(matchers) = selector_matchers(vs).pop() {
                    out.deferred.insert(
                        addr(vs),
                        Deferred {
                            matchers,
                            start,
                            end,
                            stats: false,
                        },
                    );
                }
                return Ok(());
            }
            walk(&a.expr, p, sq, 0, source, out)
        }
        Expr::Unary(u) => walk(&u.expr, p, sq, 0, source, out),
        Expr::Binary(b) => {
            walk(&b.lhs, p, sq, 0, source, out)?;
            walk(&b.rhs, p, sq, 0, source, out)
        }
        Expr::Paren(x) => walk(&x.expr, p, sq, 0, source, out),
        Expr::Call(c) if c.func.name == "info" => {
            if let Some(a) = c.args.args.first() {
                walk(a, p, sq, 0, source, out)?;
            }
            select_info(c, p, sq, source, out)
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, p, sq, 0, source, out)?;
            }
            Ok(())
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Ok(()),
    }
}

/// Selects the info series of an `info()` call over every time its argument's samples
/// can come from (its label selector is not a selector of its own).
fn select_info(
    c: &promql_parser::parser::Call,
    p: &SelectParams,
    sq: SubqCtx,
    source: &dyn SeriesSource,
    out: &mut Selections,
) -> Result<()> {
    use crate::functions::info::{InfoSelector, reference_time};
    let sel = InfoSelector::of(c)?;
    let (at, offset) = c
        .args
        .args
        .first()
        .and_then(|a| reference_time(a, &|m| p.at(m)))
        .unwrap_or((None, 0));
    let (mut start, mut end) = match sq.at {
        Some(at) => (at, at),
        None => (p.start - sq.offset - sq.range, p.end - sq.offset),
    };
    if let Some(at) = at {
        (start, end) = (at, at);
    }
    start -= offset + p.lookback - 1;
    end -= offset;
    let mut series = source.select(&sel.names, start, end)?;
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    out.series.insert(sel.key, series);
    Ok(())
}

fn walk_vs(
    vs: &VectorSelector,
    p: &SelectParams,
    sq: SubqCtx,
    eval_range: i64,
    source: &dyn SeriesSource,
    out: &mut Selections,
) -> Result<()> {
    select_one(vs, p, sq, eval_range, source, out)
}

fn select_one(
    vs: &VectorSelector,
    p: &SelectParams,
    sq: SubqCtx,
    eval_range: i64,
    source: &dyn SeriesSource,
    out: &mut Selections,
) -> Result<()> {
    let (start, end) = selection_range(vs, p, sq, eval_range);
    let sets = selector_matchers(vs);
    let mut series: Vec<RawSeries> = Vec::new();
    for set in &sets {
        series.extend(source.select(set, start, end)?);
    }
    // Stable: of series selected by several matcher sets, the first one's copy stays.
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    if sets.len() > 1 {
        series.dedup_by(|later, first| later.labels == first.labels);
    }
    out.series.insert(addr(vs), series);
    Ok(())
}

/// The time range `[start, end]` a selector needs over the whole query (`eval_range` is
/// its matrix selector's range, 0 for an instant selector).
fn selection_range(
    vs: &VectorSelector,
    p: &SelectParams,
    sq: SubqCtx,
    eval_range: i64,
) -> (i64, i64) {
    let (mut start, mut end) = (p.start, p.end);
    if let Some(at) = sq.at {
        start = at;
        end = at;
    }
    if let Some(at) = p.at(&vs.at) {
        start = at;
        end = at;
    } else {
        start = start - sq.offset - sq.range;
        end -= sq.offset;
    }
    if eval_range == 0 {
        start -= p.lookback - 1;
    } else {
        start -= eval_range - 1;
    }
    super::extended::widen(vs, eval_range, p.lookback, &mut start, &mut end);
    let off = offset_ms(&vs.offset);
    start -= off;
    end -= off;
    (start, end)
}

/// Selectors whose histograms only feed `histogram_count`/`_sum`/`_avg`:
/// Prometheus reads them with its stats iterator, which detects counter
/// resets on the fly (and so can report "reset" hints).
pub(crate) fn stats_selectors(expr: &Expr, out: &mut HashSet<usize>) {
    fn walk(e: &Expr, path: &mut Vec<PathNode>, out: &mut HashSet<usize>) {
        match e {
            Expr::VectorSelector(vs) => mark(vs, path, out),
            Expr::MatrixSelector(ms) => mark(&ms.vs, path, out),
            Expr::Subquery(s) => {
                path.push(PathNode::Subquery);
                walk(&s.expr, path, out);
                path.pop();
            }
            Expr::Call(c) => {
                path.push(PathNode::Call(c.func.name));
                for a in &c.args.args {
                    walk(a, path, out);
                }
                path.pop();
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    walk(p, path, out);
                }
                walk(&a.expr, path, out);
            }
            Expr::Binary(b) => {
                // Trimming needs the buckets.
                let trim = crate::parse::trim_of(b).is_some();
                if trim {
                    path.push(PathNode::Trim);
                }
                walk(&b.lhs, path, out);
                walk(&b.rhs, path, out);
                if trim {
                    path.pop();
                }
            }
            Expr::Unary(u) => walk(&u.expr, path, out),
            Expr::Paren(p) => walk(&p.expr, path, out),
            _ => {}
        }
    }
    fn mark(vs: &VectorSelector, path: &[PathNode], out: &mut HashSet<usize>) {
        let mut skip = false;
        for p in path.iter().rev() {
            match p {
                PathNode::Subquery | PathNode::Trim => {
                    skip = false;
                    break;
                }
                PathNode::Call("histogram_count" | "histogram_sum" | "histogram_avg") => {
                    skip = true
                }
                PathNode::Call(
                    "histogram_quantile" | "histogram_quantiles" | "histogram_fraction",
                ) => {
                    skip = false;
                    break;
                }
                PathNode::Call(_) => {}
            }
        }
        if skip {
            out.insert(addr(vs));
        }
    }
    walk(expr, &mut Vec::new(), out);
}

enum PathNode {
    Subquery,
    Trim,
    Call(&'static str),
}

/// Re-derives histogram counter reset hints the way the stats iterator does.
pub(crate) fn with_stats_hints(raw: &RawSeries) -> RawSeries {
    use crate::histogram::CounterResetHint as H;
    use crate::model::is_stale_nan;
    let mut out = raw.clone();
    let mut last: Option<std::sync::Arc<crate::histogram::FloatHistogram>> = None;
    for p in &mut out.histograms {
        if is_stale_nan(p.h.sum) {
            continue;
        }
        let cur = p.h.clone();
        if p.h.counter_reset_hint == H::Unknown
            && let Some(prev) = &last
        {
            let mut nh = (*p.h).clone();
            nh.counter_reset_hint = if p.h.detect_reset(prev) {
                H::CounterReset
            } else {
                H::NotCounterReset
            };
            p.h = std::sync::Arc::new(nh);
        }
        last = Some(cur);
    }
    out
}
