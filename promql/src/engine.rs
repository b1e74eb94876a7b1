//! The public entry points: [`Engine::instant_query`] and
//! [`Engine::range_query`], with limits (samples, resolution, timeout).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use promql_parser::parser::value::ValueType;

use crate::annotations::Annotations;
use crate::error::{Error, Result, exec_err};
use crate::eval::prepare::{SelectParams, Selections, select_all, step_invariant};
use crate::eval::{Evaluator, QueryCtx, Val, addr, drop_metric_name, free_later};
use crate::functions::merge_same_labelset;
use crate::model::{Matrix, RawSeries, Sample, Value};
use crate::parse::{QueryTimes, parse_in};
use crate::source::SeriesSource;

/// Engine configuration.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (default 5m).
    pub lookback_delta: Duration,
    /// Maximum samples held in memory by one query.
    pub max_samples: usize,
    /// Maximum evaluation time of one query.
    pub timeout: Duration,
    /// Maximum points per series of a range query (Prometheus: 11,000).
    pub max_points_per_series: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            max_points_per_series: 11_000,
        }
    }
}

/// A successful query result.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// Warning annotations ("PromQL warning: ...").
    pub warnings: Vec<String>,
    /// Info annotations ("PromQL info: ...").
    pub infos: Vec<String>,
}

impl QueryResult {
    /// The Prometheus API `data` object for this result.
    pub fn to_api_json(&self) -> serde_json::Value {
        crate::json::to_api_json(&self.value)
    }

    /// Writes the Prometheus API `data` object for this result as JSON text: the same
    /// document as [`QueryResult::to_api_json`] without building a value tree first.
    pub fn write_api_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, &crate::json::ApiData(&self.value))
    }
}

/// The PromQL engine. Cheap to share; holds only options.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// Creates an engine.
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant_query(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryResult> {
        let expr = parse_in(query, Some(QueryTimes::instant(time_ms)))?;
        self.exec(source, &expr, time_ms, time_ms, 0)
    }

    /// Evaluates an already parsed expression at `time_ms`.
    pub fn instant_query_expr(
        &self,
        source: &dyn SeriesSource,
        expr: &promql_parser::parser::Expr,
        time_ms: i64,
    ) -> Result<QueryResult> {
        self.exec(source, expr, time_ms, time_ms, 0)
    }

    /// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms`.
    pub fn range_query(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        if step_ms <= 0 {
            return Err(Error::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms > self.opts.max_points_per_series {
            return Err(Error::BadData(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                group_thousands(self.opts.max_points_per_series)
            )));
        }
        let times = QueryTimes {
            start_ms,
            end_ms,
            step_ms,
        };
        let expr = parse_in(query, Some(times))?;
        self.range_query_expr(source, &expr, start_ms, end_ms, step_ms)
    }

    /// Like [`Engine::range_query`] for an already parsed expression.
    pub fn range_query_expr(
        &self,
        source: &dyn SeriesSource,
        expr: &promql_parser::parser::Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        if step_ms <= 0 {
            return Err(Error::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            t => {
                return Err(Error::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_name(t)
                )));
            }
        }
        self.exec(source, expr, start_ms, end_ms, step_ms)
    }

    fn exec(
        &self,
        source: &dyn SeriesSource,
        expr: &promql_parser::parser::Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult> {
        let deadline = Instant::now().checked_add(self.opts.timeout);
        let lookback = self.opts.lookback_delta.as_millis() as i64;
        let mut selections = Selections::default();
        select_all(
            expr,
            &SelectParams {
                start,
                end,
                lookback,
                query_start: start,
                query_end: end,
            },
            source,
            &mut selections,
        )?;
        let Selections {
            mut series,
            mut deferred,
        } = selections;
        let mut stats = HashSet::new();
        crate::eval::prepare::stats_selectors(expr, &mut stats);
        for (k, v) in series.iter_mut() {
            if stats.contains(k) {
                *v = v
                    .iter()
                    .map(crate::eval::prepare::with_stats_hints)
                    .collect();
            }
        }
        for (k, d) in deferred.iter_mut() {
            d.stats = stats.contains(k);
        }
        let mut wrap = HashSet::new();
        let (_, should_wrap) = step_invariant(expr, &mut wrap);
        if should_wrap {
            wrap.insert(addr(expr));
        }
        let ctx = QueryCtx {
            series,
            deferred,
            wrap,
            max_samples: self.opts.max_samples,
            deadline,
            query_start: start,
            query_end: end,
            query_step: step,
            lookback,
            annos: RefCell::new(Annotations::default()),
            samples: Cell::new(0),
        };
        let ev = Evaluator {
            ctx: &ctx,
            source,
            chunk: None,
            start,
            end,
            interval: if step == 0 { 1 } else { step },
        };
        let val = ev.eval(expr)?;
        let value = match val {
            Val::String(s) => Value::String { t: start, v: s },
            Val::Matrix(m) => {
                let m = cleanup_names(m)?;
                if step == 0 {
                    instant_value(expr.value_type(), m, start)?
                } else {
                    let mut m = m;
                    m.sort_by(|a, b| a.metric.cmp(&b.metric));
                    Value::Matrix(m)
                }
            }
        };
        let QueryCtx { series, annos, .. } = ctx;
        release_later(series);
        let annos = annos.into_inner();
        Ok(QueryResult {
            value,
            warnings: annos.warnings(),
            infos: annos.infos(),
        })
    }
}

/// Frees a query's selected samples once the answer is ready (see [`free_later`]).
fn release_later(series: HashMap<usize, Vec<RawSeries>>) {
    let samples: usize = series
        .values()
        .flat_map(|v| v.iter().map(RawSeries::len))
        .sum();
    free_later(series, samples);
}

fn group_thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

/// Drops names marked for dropping and merges series that collide.
fn cleanup_names(mut m: Matrix) -> Result<Matrix> {
    for s in &mut m {
        if s.drop_name {
            s.metric = drop_metric_name(&s.metric);
        }
    }
    merge_same_labelset(m)
}

fn instant_value(t: ValueType, m: Matrix, ts: i64) -> Result<Value> {
    Ok(match t {
        ValueType::Scalar => {
            let v = m
                .first()
                .and_then(|s| s.floats.first())
                .map(|p| p.f)
                .ok_or_else(|| exec_err!("scalar expression produced no value"))?;
            Value::Scalar { t: ts, v }
        }
        ValueType::Vector => Value::Vector(
            m.into_iter()
                .map(|s| match s.histograms.first() {
                    Some(h) => Sample {
                        metric: s.metric,
                        t: ts,
                        f: 0.0,
                        h: Some(h.h.clone()),
                        drop_name: false,
                    },
                    None => Sample {
                        metric: s.metric,
                        t: ts,
                        f: s.floats.first().map(|p| p.f).unwrap_or(f64::NAN),
                        h: None,
                        drop_name: false,
                    },
                })
                .collect(),
        ),
        _ => {
            let mut m = m;
            m.sort_by(|a, b| a.metric.cmp(&b.metric));
            Value::Matrix(m)
        }
    })
}
