//! PromQL functions. [`eval_call`] dispatches: functions over range vectors
//! (matrix selector or subquery argument) evaluate one window per series per
//! step ([`range`]); all others work on the instant vectors of each step
//! ([`instant`], [`histograms`]); label functions rewrite series labels.

pub(crate) mod extended;
mod histograms;
pub(crate) mod info;
mod instant;
mod range;

use promql_parser::parser::{Call, Expr};
use regex::Regex;

use crate::error::{Error, Result, exec_err};
use crate::eval::selectors::{RangeInput, RangeSeriesSet, WindowPos};
use crate::eval::{Evaluator, unwrap_parens};
use crate::model::{FPoint, HPoint, Labels, METRIC_NAME, Matrix, Sample, Series};
use crate::source::MatchKind;

/// The string literal argument `i`.
pub(crate) fn string_arg(c: &Call, i: usize) -> Result<String> {
    match c.args.args.get(i).map(|a| unwrap_parens(a)) {
        Some(Expr::StringLiteral(s)) => Ok(s.val.clone()),
        _ => Err(Error::BadData(format!(
            "expected string literal as argument {} of {}",
            i + 1,
            c.func.name
        ))),
    }
}

use crate::parse::{display_raw, valid_label_name};

/// Labels for `absent`/`absent_over_time`: equality matchers of the selector.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unwrap_parens(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut out = Labels::empty();
    let mut has = std::collections::HashSet::new();
    for set in crate::eval::prepare::selector_matchers(vs)
        .into_iter()
        .take(1)
    {
        for m in set {
            if m.name == METRIC_NAME {
                continue;
            }
            if m.kind == MatchKind::Equal && !has.contains(&m.name) {
                out.set(&m.name, &m.value);
                has.insert(m.name.clone());
            } else {
                out.del(&m.name);
            }
        }
    }
    out
}

/// Evaluates a function call.
pub(crate) fn eval_call(ev: &Evaluator<'_>, c: &Call) -> Result<Matrix> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| unwrap_parens(a)).collect();
    if matches!(name, "timestamp")
        && let Some(Expr::VectorSelector(vs)) = args.first()
    {
        return timestamp_of_selector(ev, vs);
    }
    match name {
        "label_replace" => return label_replace(ev, c),
        "label_join" => return label_join(ev, c),
        "info" => return info::info(ev, c),
        "start" | "end" | "range" | "step" => {
            let ctx = ev.ctx;
            let v = match name {
                "start" => ctx.query_start as f64 / 1000.0,
                "end" => ctx.query_end as f64 / 1000.0,
                "range" => (ctx.query_end - ctx.query_start) as f64 / 1000.0,
                _ => {
                    if ctx.query_start == ctx.query_end {
                        0.0
                    } else {
                        ctx.query_step as f64 / 1000.0
                    }
                }
            };
            return Ok(vec![ev.scalar_series(|_| v)]);
        }
        _ => {}
    }
    if matches!(
        name,
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
    ) && ev.start != ev.end
    {
        ev.ctx.warn(
            "sort is ineffective for range queries since results are always ordered by labels",
        );
    }
    // A range-vector argument?
    let matrix_arg = args
        .iter()
        .position(|a| matches!(a, Expr::MatrixSelector(_) | Expr::Subquery(_)));
    let Some(mi) = matrix_arg else {
        return instant::eval_instant(ev, c, &args);
    };
    let input = match args[mi] {
        Expr::MatrixSelector(ms) => ev.range_input_selector(ms)?,
        Expr::Subquery(sq) => ev.range_input_subquery(sq)?,
        _ => return Err(exec_err!("expected range vector argument")),
    };
    if let Some(m) = input.modifier
        && !m.functions().contains(&name)
    {
        return Err(exec_err!(
            "{} modifier can only be used with: {} - not with {name}",
            m.as_str(),
            m.functions().join(", ")
        ));
    }
    // Scalar arguments, one value per step.
    let mut scalars: Vec<Vec<f64>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i == mi {
            continue;
        }
        let m = ev.eval(a)?.into_matrix()?;
        let vals = m
            .first()
            .map(|s| s.floats.iter().map(|p| p.f).collect())
            .unwrap_or_default();
        scalars.push(vals);
    }
    eval_range_call(ev, name, &args, mi, input, &scalars)
}

fn eval_range_call(
    ev: &Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    mi: usize,
    input: RangeInput,
    scalars: &[Vec<f64>],
) -> Result<Matrix> {
    let drop_name = !matches!(name, "last_over_time" | "first_over_time");
    let mut out: Matrix = Vec::new();
    let mut total = 0usize;
    let mut params = vec![0.0; scalars.len()];
    input.for_each_series(|s| {
        ev.ctx.check_deadline()?;
        let mut series = Series {
            metric: s.metric.clone(),
            // A float series usually has a point at every step: no regrowing (up to a
            // bound, so that series alive for a few steps of a long grid stay small).
            floats: if s.floats.is_empty() {
                Vec::new()
            } else {
                Vec::with_capacity(ev.num_steps().min(256))
            },
            histograms: Vec::new(),
            drop_name: drop_name || s.drop_name,
        };
        let mut pos = WindowPos::default();
        // Checked once per series instead of in each overlapping window of a range query
        // (the negation of the window loop's reset test, so NaNs count as they count there).
        let no_float_resets = matches!(name, "rate" | "increase")
            && input.modifier.is_none()
            && ev.num_steps() > 1
            && s.floats.windows(2).all(|w| w[1].f.partial_cmp(&w[0].f) != Some(std::cmp::Ordering::Less));
        for (step, ts) in ev.steps().enumerate() {
            for (j, sc) in scalars.iter().enumerate() {
                params[j] = sc.get(step).copied().unwrap_or(f64::NAN);
            }
            let maxt = input.maxt(ts);
            let mint = maxt - input.range;
            let (f, h) = match input.modifier {
                None => s.window_after(&mut pos, mint, maxt),
                Some(m) => {
                    let (lo, hi) = extended::window_bounds(m, mint, maxt, ev.ctx.lookback);
                    s.window(lo, hi)
                }
            };
            if f.is_empty() && h.is_empty() {
                continue;
            }
            let rc = range::RangeCtx {
                ev,
                name,
                ts,
                range_start: mint,
                range_end: maxt,
                range_ms: input.range,
                metric: &s.metric,
                params: &params,
                no_float_resets,
            };
            let res = match input.modifier {
                None => range::call(&rc, f, h)?,
                Some(m) => extended::call(&rc, m, f, h)?,
            };
            match res {
                Some(range::Out::F(v)) => series.floats.push(FPoint { t: ts, f: v }),
                Some(range::Out::H(hist)) => series.histograms.push(HPoint {
                    t: ts,
                    h: std::sync::Arc::new(hist),
                }),
                None => {}
            }
        }
        if series.floats.is_empty() && series.histograms.is_empty() {
            return Ok(());
        }
        total += series.floats.len() + series.histograms.len();
        ev.ctx.check_samples(total)?;
        if matches!(name, "rate" | "increase") {
            let metric_name = s.metric.get(METRIC_NAME);
            if !metric_name.is_empty()
                && !series.floats.is_empty()
                && !["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|suf| metric_name.ends_with(suf))
            {
                ev.ctx.info(format!(
                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {:?}",
                    metric_name
                ));
            }
        }
        out.push(series);
        Ok(())
    })?;
    let held = input.owned_points();
    if let RangeSeriesSet::Owned(series) = input.series {
        crate::eval::free_later(series, held);
    }
    if name == "absent_over_time" {
        let steps = ev.num_steps();
        let mut found = std::collections::HashSet::new();
        for s in &out {
            if s.floats.len() + s.histograms.len() == steps {
                return Ok(Vec::new());
            }
            found.extend(s.floats.iter().map(|p| p.t));
            found.extend(s.histograms.iter().map(|p| p.t));
        }
        let floats: Vec<FPoint> = ev
            .steps()
            .filter(|t| !found.contains(t))
            .map(|t| FPoint { t, f: 1.0 })
            .collect();
        if floats.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(vec![Series {
            metric: absent_labels(args[mi]),
            floats,
            histograms: Vec::new(),
            drop_name: true,
        }]);
    }
    Ok(out)
}

/// `timestamp(selector)`: the timestamps of the samples themselves.
fn timestamp_of_selector(
    ev: &Evaluator<'_>,
    vs: &promql_parser::parser::VectorSelector,
) -> Result<Matrix> {
    let offset = crate::eval::offset_ms(&vs.offset);
    let at = ev.ctx.at_ms(&vs.at);
    let raws = ev.selected(vs);
    let mats: Vec<Matrix> = Vec::new();
    let mut f = |_: &[Vec<Sample>], ts: i64| -> Result<Vec<Sample>> {
        let mut out = Vec::new();
        for raw in raws {
            let ref_t = at.unwrap_or(ts) - offset;
            if let Some((t, _)) = ev.lookup(raw, ref_t) {
                out.push(Sample {
                    metric: raw.labels.clone(),
                    t,
                    f: t as f64 / 1000.0,
                    h: None,
                    drop_name: true,
                });
            }
        }
        Ok(out)
    };
    ev.range_eval_matrices(&mats, &mut f)
}

fn label_replace(ev: &Evaluator<'_>, c: &Call) -> Result<Matrix> {
    let dst = string_arg(c, 1)?;
    let repl = string_arg(c, 2)?;
    let src = string_arg(c, 3)?;
    let re_str = string_arg(c, 4)?;
    let re = Regex::new(&format!("^(?s:{re_str})$"))
        .map_err(|_| exec_err!("invalid regular expression in label_replace(): {re_str}"))?;
    if !valid_label_name(&dst) {
        return Err(exec_err!(
            "invalid destination label name in label_replace(): {}",
            display_raw(&dst)
        ));
    }
    let arg = c
        .args
        .args
        .first()
        .ok_or_else(|| exec_err!("label_replace: missing argument"))?;
    let mut m = ev.eval(arg)?.into_matrix()?;
    for s in &mut m {
        let v = s.metric.get(&src).to_string();
        if let Some(caps) = re.captures(&v) {
            let mut res = String::new();
            caps.expand(&go_template(&repl), &mut res);
            s.metric.set(&dst, &res);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
    }
    merge_same_labelset(m)
}

/// Converts Go's `$1`/`${name}` template to the regex crate's syntax.
/// Both use `$name`/`${name}`; Go treats `$1x` as the group named `1x`,
/// which the regex crate does as well, so the template passes through.
fn go_template(s: &str) -> String {
    s.to_string()
}

fn label_join(ev: &Evaluator<'_>, c: &Call) -> Result<Matrix> {
    let dst = string_arg(c, 1)?;
    let sep = string_arg(c, 2)?;
    let mut srcs = Vec::new();
    for i in 3..c.args.args.len() {
        let s = string_arg(c, i)?;
        if !valid_label_name(&s) {
            return Err(exec_err!(
                "invalid source label name in label_join(): {}",
                display_raw(&s)
            ));
        }
        srcs.push(s);
    }
    if !valid_label_name(&dst) {
        return Err(exec_err!(
            "invalid destination label name in label_join(): {}",
            display_raw(&dst)
        ));
    }
    let arg = c
        .args
        .args
        .first()
        .ok_or_else(|| exec_err!("label_join: missing argument"))?;
    let mut m = ev.eval(arg)?.into_matrix()?;
    for s in &mut m {
        let joined = srcs
            .iter()
            .map(|l| s.metric.get(l))
            .collect::<Vec<_>>()
            .join(&sep);
        s.metric.set(&dst, &joined);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    merge_same_labelset(m)
}

/// Merges series that ended up with the same labels; overlapping
/// timestamps are an error.
pub(crate) fn merge_same_labelset(m: Matrix) -> Result<Matrix> {
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut out: Matrix = Vec::with_capacity(m.len());
    for s in m {
        match index.get(&s.metric) {
            Some(&i) => {
                let base = &mut out[i];
                base.floats.extend(s.floats);
                base.histograms.extend(s.histograms);
                base.floats.sort_by_key(|p| p.t);
                base.histograms.sort_by_key(|p| p.t);
                if base.floats.windows(2).any(|w| w[0].t == w[1].t)
                    || base.histograms.windows(2).any(|w| w[0].t == w[1].t)
                {
                    return Err(exec_err!(
                        "vector cannot contain metrics with the same labelset"
                    ));
                }
            }
            None => {
                index.insert(s.metric.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}
