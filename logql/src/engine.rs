//! The query engine: log queries (streams) and the entry point of metric
//! queries, with limits and the deadline.

use std::collections::HashSet;
use std::time::Instant;

use crate::ast::{Expr, LogExpr, Stage};
use crate::error::{Error, Result};
use crate::labels::{Cat, KeyIndex, LRef, LabelSet};
use crate::model::{Direction, Entry, Limits, LogSource, Selection, Stats, Stream, labels_string};
use crate::pipeline::run_stages;
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
}

impl<'a> Ctx<'a> {
    /// Selects the streams of `log` in `[start, end)` and hands them to `f` a chunk at a
    /// time (see [`LogSource::select_chunks`]), so that only one chunk of lines is held at
    /// once: the selector is applied again, entries out of range are dropped, what was
    /// read is counted and the bytes limit enforced; a stream's label set is sorted
    /// before `f` sees it. `limit` is the source hint of [`Selection::limit`].
    pub fn select_each(
        &mut self,
        log: &LogExpr,
        start_ns: i64,
        end_ns: i64,
        limit: Option<(usize, Direction)>,
        needs: Needs<'_>,
        f: &mut dyn FnMut(&mut Ctx<'a>, Stream) -> Result<()>,
    ) -> Result<()> {
        self.check_deadline()?;
        let filters = log.leading_line_filters();
        let sel = Selection {
            matchers: &log.matchers,
            start_ns,
            end_ns,
            line_filters: &filters,
            limit,
            need_lines: needs.lines,
            label_names: needs.label_names,
        };
        let src = self.src;
        let mut seen: HashSet<Vec<(String, String)>> = HashSet::new();
        let mut failed: Option<Error> = None;
        src.select_chunks(&sel, &mut |mut s| {
            if !log.matchers.iter().all(|m| m.matches_labels(&s.labels)) {
                return true;
            }
            s.labels.sort();
            s.entries
                .retain(|e| e.ts_ns >= start_ns && e.ts_ns < end_ns);
            self.stats.lines_processed += s.entries.len() as u64;
            for e in &s.entries {
                let meta: usize = e.metadata.iter().map(|(n, v)| n.len() + v.len()).sum();
                self.stats.bytes_processed += (e.line.len() + meta) as u64;
                self.stats.metadata_bytes_processed += meta as u64;
            }
            if !seen.contains(&s.labels) {
                seen.insert(s.labels.clone());
                self.stats.streams_selected += 1;
            }
            let step = if self.stats.bytes_processed > self.limits.max_bytes_scanned {
                Err(bytes_limit(
                    self.stats.bytes_processed,
                    self.limits.max_bytes_scanned,
                ))
            } else {
                self.check_deadline().and_then(|()| f(self, s))
            };
            match step {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => self.check_deadline(),
        }
    }
}

/// What of the selected entries a query uses (see [`Selection::need_lines`] and
/// [`Selection::label_names`]).
#[derive(Clone, Copy)]
pub(crate) struct Needs<'n> {
    pub lines: bool,
    pub label_names: Option<&'n HashSet<String>>,
}

impl Needs<'_> {
    /// Everything: lines and every label.
    pub const ALL: Needs<'static> = Needs {
        lines: true,
        label_names: None,
    };
}

fn bytes_limit(read: u64, limit: u64) -> Error {
    Error::Limit(format!(
        "the query would read too many bytes (query: {}, limit: {}); consider adding more specific stream selectors or reduce the time range of the query",
        human_bytes(read),
        human_bytes(limit)
    ))
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
            ctx.stats.direction = Some(direction);
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
        // When the pipeline is nothing but the hinted line filters, a source
        // applying them may stop after `limit` entries per stream.
        let only_hints = log
            .stages
            .iter()
            .all(|s| matches!(s, Stage::LineFilter(f) if f.or.is_empty()));
        let source_limit = (only_hints && interval_ns == 0).then_some((limit, direction));
        // Output streams are keyed by their final label set; categories of
        // each output stream's labels are kept for categorised encoding.
        let mut keys = KeyIndex::default();
        let mut cats: Vec<Vec<Cat>> = Vec::new();
        // (ts, output stream, arrival order, line)
        let mut found: Vec<(i64, u32, u64, String)> = Vec::new();
        let better = |x: &(i64, u32, u64, String), y: &(i64, u32, u64, String)| match direction {
            Direction::Forward => x.0.cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)),
            Direction::Backward => y.0.cmp(&x.0).then(x.1.cmp(&y.1)).then(y.2.cmp(&x.2)),
        };
        // Without an interval only the best `limit` lines can be returned:
        // keep memory bounded by dropping the rest as we go.
        let compact_at = if interval_ns == 0 {
            limit.saturating_mul(2).saturating_add(4096)
        } else {
            usize::MAX
        };
        let mut seq: u64 = 0;
        let mut buf = Vec::new();
        let mut refs = Vec::new();
        // The selection arrives a chunk at a time (see `LogSource::select_chunks`): with a
        // limit, only the best `limit` lines (and one chunk) are ever held.
        ctx.select_each(
            log,
            start_ns,
            end_ns,
            source_limit,
            Needs::ALL,
            &mut |ctx, s| {
                let Stream {
                    labels,
                    entries: src_entries,
                } = s;
                let mut lbls = LabelSet::new(&labels, std::mem::take(&mut buf));
                let mut base_idx: Option<u32> = None;
                for e in src_entries {
                    ctx.tick()?;
                    let Entry {
                        ts_ns,
                        mut line,
                        metadata,
                        ..
                    } = e;
                    lbls.reset();
                    if !metadata.is_empty() {
                        lbls.add_metadata(metadata);
                    }
                    if !log.stages.is_empty()
                        && !run_stages(&log.stages, ts_ns, &mut line, &mut lbls)
                    {
                        continue;
                    }
                    let oi = if lbls.is_base() {
                        match base_idx {
                            Some(i) => i,
                            None => {
                                let i = intern(&mut keys, &mut cats, &lbls, &mut refs);
                                base_idx = Some(i);
                                i
                            }
                        }
                    } else {
                        intern(&mut keys, &mut cats, &lbls, &mut refs)
                    };
                    ctx.stats.post_filter_lines += 1;
                    seq += 1;
                    found.push((ts_ns, oi, seq, line));
                    if found.len() >= compact_at {
                        if limit == 0 {
                            found.clear();
                        } else {
                            found.select_nth_unstable_by(limit, better);
                            found.truncate(limit);
                        }
                        // Parsed labels can make nearly every line its own output
                        // stream: keep only the streams of the lines kept, or they pile up.
                        if keys.len() > compact_at {
                            let mut used = vec![false; keys.len()];
                            for f in &found {
                                used[f.1 as usize] = true;
                            }
                            let remap = keys.retain_used(&used);
                            let mut u = used.iter();
                            cats.retain(|_| u.next().copied().unwrap_or(false));
                            for f in &mut found {
                                f.1 = remap[f.1 as usize];
                            }
                            base_idx = base_idx
                                .map(|i| remap[i as usize])
                                .filter(|i| *i != u32::MAX);
                        }
                    }
                }
                buf = lbls.into_buf();
                Ok(())
            },
        )?;
        // Merge all entries by time in the requested direction, then apply
        // the interval and the limit across streams.
        if interval_ns == 0 && limit < found.len() {
            if limit == 0 {
                found.clear();
            } else {
                found.select_nth_unstable_by(limit, better);
                found.truncate(limit);
            }
        }
        found.sort_unstable_by(better);
        let mut per_stream: Vec<Vec<Entry>> = vec![Vec::new(); keys.len()];
        let mut taken = 0usize;
        let mut last: Option<i64> = None;
        for (ts, si, _, line) in found.iter_mut() {
            if taken >= limit {
                break;
            }
            let ok = match (last, interval_ns) {
                (None, _) | (_, 0) => true,
                (Some(l), iv) => match direction {
                    Direction::Forward => *ts >= l.saturating_add(iv),
                    Direction::Backward => *ts <= l.saturating_sub(iv),
                },
            };
            if !ok {
                continue;
            }
            taken += 1;
            last = Some(*ts);
            let si = *si as usize;
            let labels = &keys.keys[si];
            let of = |c: Cat| -> Vec<(String, String)> {
                labels
                    .iter()
                    .zip(&cats[si])
                    .filter(|(_, k)| **k == c)
                    .map(|(p, _)| p.clone())
                    .collect()
            };
            per_stream[si].push(Entry {
                ts_ns: *ts,
                line: std::mem::take(line),
                metadata: of(Cat::Meta),
                parsed: of(Cat::Parsed),
            });
        }
        let mut result: Vec<Stream> = keys
            .keys
            .into_iter()
            .zip(per_stream)
            .filter(|(_, e)| !e.is_empty())
            .map(|(labels, entries)| Stream { labels, entries })
            .collect();
        result.sort_by_cached_key(|s| labels_string(&s.labels));
        Ok(result)
    }
}

/// The output index of a label set, registering it if new.
fn intern(
    keys: &mut KeyIndex,
    cats: &mut Vec<Vec<Cat>>,
    lbls: &LabelSet<'_>,
    refs: &mut Vec<LRef>,
) -> u32 {
    lbls.sorted_refs(refs, |_| true);
    let (i, new) = keys.get_or_insert(|| lbls.pairs(refs));
    if new {
        cats.push(refs.iter().map(|r| lbls.cat(*r)).collect());
    }
    i as u32
}
