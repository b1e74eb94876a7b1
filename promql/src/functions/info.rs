//! `info(v, [data-label-selector])`: enriches each series of `v` with the data labels
//! of the info series (by default `target_info`, which is how OpenTelemetry resource
//! attributes arrive) that share its identifying labels `instance` and `job`.
//!
//! Semantics, following Prometheus 3's experimental function:
//! - The selector's `__name__` matchers pick the info metrics (default
//!   `__name__="target_info"`; exclusions alone apply to the `*_info` metrics); its
//!   other matchers filter the info series by their
//!   labels and name the data labels to copy (all data labels when there are none).
//! - An info series joins a series when every identifying label it has equals the
//!   series' value. Of several series of one info metric, the one with the latest
//!   sample wins; two info metrics giving one label different values is an error.
//! - Labels the series already has are kept. A series whose name matches the info
//!   metric matchers is itself an info series and passes through unchanged.
//! - When nothing joins, the sample passes through unchanged unless a data matcher
//!   rejects the empty value, in which case it is dropped.
//! - Info series are looked up (with lookback) at the time the argument's samples
//!   come from: an `@` or `offset` on the argument's selector or subquery moves it.

use promql_parser::parser::{AtModifier, Call, Expr};

use crate::error::{Error, Result, exec_err};
use crate::eval::{Evaluator, addr, offset_ms, unwrap_parens};
use crate::model::{Labels, METRIC_NAME, Matrix, RawSeries, Sample, SampleValue};
use crate::source::{MatchKind, Matcher};

/// The labels that tie an info series to the series it describes.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// The info series selection of one `info()` call.
pub(crate) struct InfoSelector {
    /// `__name__` matchers: which metrics are info metrics.
    pub names: Vec<Matcher>,
    /// The other matchers: which info series join, and which labels they give.
    pub data: Vec<Matcher>,
    /// Where the selected info series are kept in the query context.
    pub key: usize,
}

impl InfoSelector {
    pub(crate) fn of(c: &Call) -> Result<Self> {
        let Some(arg) = c.args.args.get(1) else {
            return Ok(InfoSelector {
                names: vec![name_matcher("target_info")?],
                data: Vec::new(),
                key: addr(c),
            });
        };
        let Expr::VectorSelector(vs) = unwrap_parens(arg) else {
            return Err(Error::BadData(
                "the second argument of info() must be a label selector such as {data=~\".+\"}"
                    .into(),
            ));
        };
        if !vs.matchers.or_matchers.is_empty() {
            return Err(Error::BadData(
                "info() does not support \"or\" in its label selector".into(),
            ));
        }
        let mut names = Vec::new();
        if let Some(n) = &vs.name {
            names.push(name_matcher(n)?);
        }
        let mut data = Vec::new();
        for m in vs.matchers.matchers.iter().map(Matcher::from_parser) {
            if m.name == METRIC_NAME {
                names.push(m);
            } else {
                data.push(m);
            }
        }
        if names.is_empty() {
            names.push(name_matcher("target_info")?);
        } else if !names.iter().any(is_positive) {
            // Only exclusions: the info metrics are the other `*_info` metrics.
            names.push(
                Matcher::new(MatchKind::Regex, METRIC_NAME, ".+_info")
                    .map_err(|e| Error::BadData(e.to_string()))?,
            );
        }
        Ok(InfoSelector {
            names,
            data,
            key: addr(vs),
        })
    }

    /// Whether a series of metric `name` is itself one of the info metrics.
    fn is_info_metric(&self, name: &str) -> bool {
        self.names.iter().all(|m| m.matches(name))
    }
}

fn is_positive(m: &Matcher) -> bool {
    matches!(m.kind, MatchKind::Equal | MatchKind::Regex)
}

fn name_matcher(name: &str) -> Result<Matcher> {
    Matcher::new(MatchKind::Equal, METRIC_NAME, name).map_err(|e| Error::BadData(e.to_string()))
}

/// When the samples of `e` come from, as `(at, offset)`: a sample evaluated at step `t`
/// comes from `at.unwrap_or(t) - offset`. Follows the first selector of `e` through
/// functions, aggregations and subqueries; `None` when `e` selects nothing.
pub(crate) fn reference_time(
    e: &Expr,
    at_of: &dyn Fn(&Option<AtModifier>) -> Option<i64>,
) -> Option<(Option<i64>, i64)> {
    match e {
        Expr::VectorSelector(vs) => Some((at_of(&vs.at), offset_ms(&vs.offset))),
        Expr::MatrixSelector(ms) => Some((at_of(&ms.vs.at), offset_ms(&ms.vs.offset))),
        Expr::Subquery(sq) => {
            let (outer_at, outer_off) = (at_of(&sq.at), offset_ms(&sq.offset));
            Some(match reference_time(&sq.expr, at_of) {
                Some((Some(at), off)) => (Some(at), off),
                Some((None, off)) => (outer_at, outer_off + off),
                None => (outer_at, outer_off),
            })
        }
        Expr::Paren(p) => reference_time(&p.expr, at_of),
        Expr::Unary(u) => reference_time(&u.expr, at_of),
        Expr::Aggregate(a) => reference_time(&a.expr, at_of),
        Expr::Binary(b) => reference_time(&b.lhs, at_of).or_else(|| reference_time(&b.rhs, at_of)),
        Expr::Call(c) => c.args.args.iter().find_map(|a| reference_time(a, at_of)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => None,
    }
}

/// An info series with a sample visible at the reference time.
struct Visible<'a> {
    series: &'a RawSeries,
    /// The visible sample's timestamp: of one info metric's series, the latest wins.
    t: i64,
}

/// Evaluates `info()`.
pub(crate) fn info(ev: &Evaluator<'_>, c: &Call) -> Result<Matrix> {
    let sel = InfoSelector::of(c)?;
    let Some(arg) = c.args.args.first() else {
        return Err(Error::BadData(
            "info() needs an instant vector argument".into(),
        ));
    };
    let (at, offset) = reference_time(arg, &|a| ev.ctx.at_ms(a)).unwrap_or((None, 0));
    let raw: &[RawSeries] = ev.ctx.series.get(&sel.key).map_or(&[], Vec::as_slice);
    let drop_unjoined = sel.data.iter().any(|m| !m.matches(""));
    let base = ev.eval(arg)?.into_matrix()?;
    ev.range_eval_matrices(&[base], &mut |vectors, ts| {
        let ref_t = at.unwrap_or(ts) - offset;
        let mut visible = Vec::new();
        for series in raw {
            match ev.lookup(series, ref_t) {
                Some((t, SampleValue::Float(_)))
                    if sel.data.iter().all(|m| m.matches(series.labels.get(&m.name))) =>
                {
                    visible.push(Visible { series, t });
                }
                Some((_, SampleValue::Histogram(_))) => {
                    return Err(exec_err!(
                        "info(): the info series {} has a histogram sample; info metrics must be floats",
                        series.labels
                    ));
                }
                Some((_, SampleValue::Float(_))) | None => {}
            }
        }
        let mut out = Vec::with_capacity(vectors[0].len());
        for s in &vectors[0] {
            if sel.is_info_metric(s.metric.get(METRIC_NAME)) {
                out.push(s.clone());
                continue;
            }
            match enrich(&s.metric, &visible, &sel)? {
                Some(metric) => out.push(Sample {
                    metric,
                    ..s.clone()
                }),
                None if drop_unjoined => {}
                None => out.push(s.clone()),
            }
        }
        Ok(out)
    })
}

/// The labels of `base` plus the data labels of the info series joining it; `None`
/// when none joins.
fn enrich(base: &Labels, visible: &[Visible<'_>], sel: &InfoSelector) -> Result<Option<Labels>> {
    // Per info metric, the joining series with the latest sample.
    let mut chosen: Vec<&Visible<'_>> = Vec::new();
    for v in visible {
        let labels = &v.series.labels;
        let mut identified = false;
        let mut joins = true;
        for id in IDENTIFYING {
            let value = labels.get(id);
            if !value.is_empty() {
                identified = true;
                joins &= base.get(id) == value;
            }
        }
        if !identified || !joins {
            continue;
        }
        let name = labels.get(METRIC_NAME);
        match chosen
            .iter_mut()
            .find(|c| c.series.labels.get(METRIC_NAME) == name)
        {
            Some(c) if c.t < v.t => *c = v,
            Some(_) => {}
            None => chosen.push(v),
        }
    }
    if chosen.is_empty() {
        return Ok(None);
    }
    let mut out = base.clone();
    let mut added: Vec<(&str, &str)> = Vec::new();
    for v in chosen {
        for (name, value) in v.series.labels.iter() {
            let wanted = sel.data.is_empty() || sel.data.iter().any(|m| m.name == name);
            if name == METRIC_NAME || IDENTIFYING.contains(&name) || !wanted || base.has(name) {
                continue;
            }
            match added.iter().find(|(n, _)| *n == name) {
                Some((_, prev)) if *prev != value => {
                    return Err(exec_err!(
                        "info(): conflicting label {name}: {prev:?} and {value:?} from different info metrics"
                    ));
                }
                Some(_) => {}
                None => {
                    added.push((name, value));
                    out.set(name, value);
                }
            }
        }
    }
    Ok(Some(out))
}
