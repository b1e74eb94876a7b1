//! The query engine: log queries (streams) and the entry point of metric
//! queries, with limits and the deadline.

use std::collections::HashMap;
use std::time::Instant;

use crate::ast::{Expr, LogExpr, Stage};
use crate::error::{Error, Result};
use crate::model::{Direction, Entry, Limits, LogSource, Selection, Stats, Stream, labels_string};
use crate::pipeline::{Cat, LabelSet, run_stages};
use crate::result::QueryResult;

/// Evaluates parsed LogQL queries against a [`LogSource`] under [`Limits`].
#[derive(Debug, Clone, Default)]
pub struct Engine {
    limits: Limits,
}

/// Per-query state: deadline and counters.
pub(crate) struct Ctx<'a> {
    pub src: &'a dyn LogSource,
    pub limits: &'a Limits,
    pub deadline: Option<Instant>,
    pub stats: Stats,
    pub checks: u32,
}

impl Ctx<'_> {
    /// Cheap deadline check: looks at the clock every 1024 calls.
    pub fn tick(&mut self) -> Result<()> {
        self.checks = self.checks.wrapping_add(1);
        if self.checks.is_multiple_of(1024) {
            self.check_deadline()?;
        }
        Ok(())
    }

    pub fn check_deadline(&self) -> Result<()> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(Error::Timeout),
            _ => Ok(()),
        }
    }

    /// Selects streams for `log` in `[start, end)`, applying the selector
    /// again and counting what was read.
    pub fn select(&mut self, log: &LogExpr, start_ns: i64, end_ns: i64) -> Result<Vec<Stream>> {
        self.check_deadline()?;
        let filters = log.leading_line_filters();
        let sel = Selection {
            matchers: &log.matchers,
            start_ns,
            end_ns,
            line_filters: &filters,
        };
        let mut streams = self.src.select(&sel)?;
        streams.retain(|s| log.matchers.iter().all(|m| m.matches_labels(&s.labels)));
        for s in &mut streams {
            s.labels.sort();
            s.entries
                .retain(|e| e.ts_ns >= start_ns && e.ts_ns < end_ns);
            self.stats.lines_processed += s.entries.len() as u64;
            self.stats.bytes_processed += s
                .entries
                .iter()
                .map(|e| {
                    e.line.len()
                        + e.metadata
                            .iter()
                            .map(|(n, v)| n.len() + v.len())
                            .sum::<usize>()
                })
                .sum::<usize>() as u64;
        }
        self.stats.streams_selected += streams.len() as u64;
        if self.stats.bytes_processed > self.limits.max_bytes_scanned {
            return Err(Error::Limit(format!(
                "the query would read too many bytes (query: {}, limit: {}); consider adding more specific stream selectors or reduce the time range of the query",
                human_bytes(self.stats.bytes_processed),
                human_bytes(self.limits.max_bytes_scanned)
            )));
        }
        self.check_deadline()?;
        Ok(streams)
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Whether a pipeline needs per-entry label sets (parsers, label stages).
pub(crate) fn needs_labels(stages: &[Stage]) -> bool {
    stages
        .iter()
        .any(|s| !matches!(s, Stage::LineFilter(_) | Stage::Decolorize))
}

impl Engine {
    pub fn new(limits: Limits) -> Self {
        Engine { limits }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn ctx<'a>(&'a self, src: &'a dyn LogSource) -> Ctx<'a> {
        Ctx {
            src,
            limits: &self.limits,
            deadline: self.limits.timeout.map(|t| Instant::now() + t),
            stats: Stats::default(),
            checks: 0,
        }
    }

    /// Range query: log queries return the entries in `[start, end)`;
    /// metric queries are evaluated at `start, start+step, ... <= end`.
    #[allow(clippy::too_many_arguments)]
    pub fn query_range(
        &self,
        src: &dyn LogSource,
        expr: &Expr,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        interval_ns: Option<i64>,
        limit: usize,
        direction: Direction,
    ) -> Result<QueryResult> {
        self.query_range_with_stats(
            src,
            expr,
            start_ns,
            end_ns,
            step_ns,
            interval_ns,
            limit,
            direction,
        )
        .map(|(r, _)| r)
    }

    /// [`Self::query_range`] returning the query's [`Stats`] too.
    #[allow(clippy::too_many_arguments)]
    pub fn query_range_with_stats(
        &self,
        src: &dyn LogSource,
        expr: &Expr,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        interval_ns: Option<i64>,
        limit: usize,
        direction: Direction,
    ) -> Result<(QueryResult, Stats)> {
        let t0 = Instant::now();
        if end_ns < start_ns {
            return Err(Error::Invalid(
                "end timestamp must not be before or equal to start time".into(),
            ));
        }
        let mut ctx = self.ctx(src);
        let res = match expr {
            Expr::Log(log) => {
                let streams = self.log_query(
                    &mut ctx,
                    log,
                    start_ns,
                    end_ns,
                    limit,
                    direction,
                    interval_ns.unwrap_or(0),
                )?;
                QueryResult::Streams(streams)
            }
            _ => {
                if step_ns <= 0 {
                    return Err(Error::Invalid(
                        "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
                    ));
                }
                let points = (i128::from(end_ns) - i128::from(start_ns)) / i128::from(step_ns) + 1;
                if points > self.limits.max_points as i128 {
                    return Err(Error::Invalid(format!(
                        "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                        self.limits.max_points
                    )));
                }
                crate::eval::eval_range(&mut ctx, expr, start_ns, end_ns, step_ns)?
            }
        };
        ctx.stats.exec_time_secs = t0.elapsed().as_secs_f64();
        if let QueryResult::Streams(s) = &res {
            ctx.stats.entries_returned = s.iter().map(|s| s.entries.len() as u64).sum();
        }
        Ok((res, ctx.stats))
    }

    /// Instant query: metric queries evaluated at `time_ns`. Log queries are
    /// rejected like Loki 3 does.
    pub fn query_instant(
        &self,
        src: &dyn LogSource,
        expr: &Expr,
        time_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<QueryResult> {
        self.query_instant_with_stats(src, expr, time_ns, limit, direction)
            .map(|(r, _)| r)
    }

    /// [`Self::query_instant`] returning the query's [`Stats`] too.
    pub fn query_instant_with_stats(
        &self,
        src: &dyn LogSource,
        expr: &Expr,
        time_ns: i64,
        _limit: usize,
        _direction: Direction,
    ) -> Result<(QueryResult, Stats)> {
        let t0 = Instant::now();
        if expr.is_log_query() {
            return Err(Error::Invalid(
                "log queries are not supported as an instant query type, please change your query to a range query type".into(),
            ));
        }
        let mut ctx = self.ctx(src);
        let res = crate::eval::eval_instant(&mut ctx, expr, time_ns)?;
        ctx.stats.exec_time_secs = t0.elapsed().as_secs_f64();
        Ok((res, ctx.stats))
    }

    #[allow(clippy::too_many_arguments)]
    fn log_query(
        &self,
        ctx: &mut Ctx<'_>,
        log: &LogExpr,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
        direction: Direction,
        interval_ns: i64,
    ) -> Result<Vec<Stream>> {
        if limit > self.limits.max_entries {
            return Err(Error::Limit(format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({} > {})",
                limit, self.limits.max_entries
            )));
        }
        let streams = ctx.select(log, start_ns, end_ns)?;
        let with_labels = needs_labels(&log.stages);
        // Output streams keyed by their final label set.
        let mut index: HashMap<Vec<(String, String)>, usize> = HashMap::new();
        let mut out: Vec<Stream> = Vec::new();
        // (ts, output stream, entry index) for the global limit.
        let mut lbls = LabelSet::default();
        for s in streams {
            for e in s.entries {
                ctx.tick()?;
                let Entry {
                    ts_ns,
                    mut line,
                    metadata,
                    ..
                } = e;
                let (key, parsed, meta_out) = if with_labels {
                    lbls.reset(&s.labels, &metadata);
                    if !run_stages(&log.stages, ts_ns, &mut line, &mut lbls) {
                        continue;
                    }
                    let parsed: Vec<(String, String)> = sorted_cat(&lbls, Cat::Parsed);
                    let meta: Vec<(String, String)> = sorted_cat(&lbls, Cat::Meta);
                    (lbls.sorted(), parsed, meta)
                } else {
                    if !log.stages.is_empty() {
                        let mut dummy = LabelSet::default();
                        if !run_stages(&log.stages, ts_ns, &mut line, &mut dummy) {
                            continue;
                        }
                    }
                    if metadata.is_empty() {
                        (s.labels.clone(), Vec::new(), Vec::new())
                    } else {
                        lbls.reset(&s.labels, &metadata);
                        (lbls.sorted(), Vec::new(), sorted_cat(&lbls, Cat::Meta))
                    }
                };
                let idx = *index.entry(key).or_insert_with_key(|k| {
                    out.push(Stream {
                        labels: k.clone(),
                        entries: Vec::new(),
                    });
                    out.len() - 1
                });
                out[idx].entries.push(Entry {
                    ts_ns,
                    line,
                    metadata: meta_out,
                    parsed,
                });
            }
        }
        // Merge all entries by time in the requested direction, apply the
        // interval and the limit.
        let mut all: Vec<(i64, usize, usize)> = Vec::new();
        for (si, s) in out.iter().enumerate() {
            for (ei, e) in s.entries.iter().enumerate() {
                all.push((e.ts_ns, si, ei));
            }
        }
        match direction {
            Direction::Forward => {
                all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
            }
            Direction::Backward => {
                all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)))
            }
        }
        let mut keep: Vec<Vec<usize>> = vec![Vec::new(); out.len()];
        let mut taken = 0usize;
        let mut last: Option<i64> = None;
        for (ts, si, ei) in all {
            if taken >= limit {
                break;
            }
            let ok = match (last, interval_ns) {
                (None, _) | (_, 0) => true,
                (Some(l), iv) => match direction {
                    Direction::Forward => ts >= l.saturating_add(iv),
                    Direction::Backward => ts <= l.saturating_sub(iv),
                },
            };
            if ok {
                keep[si].push(ei);
                taken += 1;
                last = Some(ts);
            }
        }
        let mut result = Vec::new();
        for (s, idxs) in out.into_iter().zip(keep) {
            if idxs.is_empty() {
                continue;
            }
            let mut entries: Vec<Option<Entry>> = s.entries.into_iter().map(Some).collect();
            let picked: Vec<Entry> = idxs
                .into_iter()
                .filter_map(|i| entries.get_mut(i).and_then(Option::take))
                .collect();
            result.push(Stream {
                labels: s.labels,
                entries: picked,
            });
        }
        result.sort_by_cached_key(|s| labels_string(&s.labels));
        Ok(result)
    }
}

fn sorted_cat(lbls: &LabelSet, cat: Cat) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = lbls
        .items
        .iter()
        .filter(|l| l.cat == cat)
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    v.sort();
    v
}
