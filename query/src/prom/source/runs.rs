//! Series scans: a selector's rows handed over in runs of one series, files decoded on
//! several threads.
//!
//! Metrics files sorted by series label set carry a series directory (id -> first row, row
//! count), so the rows a selection reads arrive in known runs: the scan says which series
//! each run belongs to without decoding the `series_id` column or looking ids up per run.
//! Files without a directory and memtable batches are split into runs by their `series_id`
//! column.
//!
//! Prometheus evaluates a query on one thread; decoding Parquet (zstd, bit unpacking) is
//! most of a broad selector's cost, so files are decoded by up to [`DECODE_THREADS`]
//! threads while the caller consumes their batches strictly in file order (a later write of
//! a timestamp must still win). Channels are bounded: at most a few batches per file wait.

use super::cache::{Columns, RangeKey, SampleCache};
use super::{
    Limit, ScanError, Scanner, decode, directory_ranges, file_err, selection_of_ranges, storage_err,
};
use crate::footer::{DataFile, Footer, SeriesDirectory, cached_footer, footer};
use datafusion::arrow::array::{ArrayData, MutableArrayData, make_array};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parking_lot::Mutex;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use strata_storage::Snapshot;

/// Most threads decoding files for one selector.
const DECODE_THREADS: usize = 2;
/// Batches of one file that may wait decoded for the consumer.
const QUEUED_BATCHES: usize = 2;
/// Rows per decoded batch.
const BATCH_ROWS: usize = 16 * 1024;

/// Consecutive rows of one series in a batch of a series scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Index of the series in the scan's `ids`, `None` for a series not asked for.
    pub series: Option<usize>,
    /// Number of rows.
    pub rows: usize,
}

type Decoded = Result<(RecordBatch, Vec<Run>), ScanError>;

/// What a series scan hands each batch to.
pub type RunsFn<'a> = dyn FnMut(&RecordBatch, &[Run]) -> Result<(), ScanError> + 'a;

/// The row ranges of a scan's `ids` in one file, as [`directory_ranges`] gives them, known
/// beforehand (file index in the snapshot and its directory); `None` looks them up.
pub(crate) type KnownRanges<'a> =
    dyn Fn(usize, &SeriesDirectory) -> Option<Vec<(u64, u64, usize)>> + Sync + 'a;

/// A data file of a scan made ready once for all the parts it is decoded in: open, its
/// footer at hand, and the rows of the scan's series in it.
pub(super) struct Prepared {
    /// The file as errors name it (relative to the data directory).
    name: String,
    file: DataFile,
    footer: Arc<Footer>,
    /// The wanted series' row ranges (directory ranges cut to the time range), `None` for
    /// a file without a series directory.
    ranges: Option<Vec<(u64, u64, usize)>>,
    /// No wanted series has histogram rows in the file.
    no_histograms: bool,
}

/// A file of a threaded scan and how many of its parts have yet to take it: prepared by
/// the first part to reach it (the others wait, they need it too), let go once the last
/// has taken it.
pub(super) type Shared = Mutex<(Option<Result<Arc<Prepared>, ScanError>>, usize)>;

/// The prepared file of `slot`, prepared now by `prepare` when no part did yet.
pub(super) fn take_shared(
    slot: &Shared,
    prepare: impl FnOnce() -> Result<Prepared, ScanError>,
) -> Result<Arc<Prepared>, ScanError> {
    let mut slot = slot.lock();
    let prepared = match &slot.0 {
        Some(p) => p.clone(),
        None => {
            let p = prepare().map(Arc::new);
            slot.0 = Some(p.clone());
            p
        }
    };
    slot.1 = slot.1.saturating_sub(1);
    if slot.1 == 0 {
        slot.0 = None;
    }
    prepared
}

impl Scanner {
    /// Calls `f` with batches holding the rows of the series `ids` (sorted, deduplicated)
    /// in the files and memtables of `snap`, and the runs of one series they consist of
    /// (covering every row of the batch, in order). Batches have `timestamp` and those of
    /// `columns` the data has; rows may lie outside `[start_ms, end_ms]` (the caller skips
    /// them). Files come in snapshot order, then memtables; a file `skip` says holds none
    /// of the series is not opened.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn scan_series_in(
        &self,
        snap: &Snapshot,
        ids: &[u64],
        (start_ms, end_ms): (i64, i64),
        columns: &[&str],
        known: Option<&KnownRanges<'_>>,
        skip: &dyn Fn(usize) -> bool,
        f: &mut RunsFn<'_>,
    ) -> Result<(), ScanError> {
        if ids.is_empty() || end_ms < start_ms {
            return Ok(());
        }
        let span = (start_ms, end_ms);
        let files: Vec<(usize, &strata_storage::catalog::FileMeta)> = snap
            .files
            .iter()
            .enumerate()
            .filter(|(i, _)| !skip(*i))
            .collect();
        // The file of `files` at `at`, prepared for the scan; `hints` carries directory
        // positions from file to file (see `SeriesDirectory`).
        let prepare = |at: usize, hints: &mut Vec<u32>| -> Result<Prepared, ScanError> {
            let Some(&(i, file)) = files.get(at) else {
                return Err(ScanError::Storage("no such file in the scan".into()));
            };
            self.prepare(
                &snap.files_root.join(&file.path),
                ids,
                span,
                hints,
                known.map(|k| (i, k)),
            )
        };
        // A small selection decodes on the calling thread, each file whole. Otherwise,
        // with fewer files than threads (a selection in one series range of one time
        // window), each file's rows are decoded in parts, one per thread, handed over in
        // order; a file is opened and its rows looked up once for all its parts.
        let inline = small_scan(ids.len(), end_ms.saturating_sub(start_ms));
        let parts = if inline {
            1
        } else {
            DECODE_THREADS.div_ceil(files.len().max(1))
        };
        // (position in `files`, part).
        let units: Vec<(usize, (usize, usize))> = (0..files.len())
            .flat_map(|at| (0..parts).map(move |p| (at, (p, parts))))
            .collect();
        let units = &units;
        let threads = if inline {
            1
        } else {
            DECODE_THREADS.min(units.len())
        };
        if threads <= 1 {
            let mut hints = Vec::new();
            let mut pass = |b: RecordBatch, runs: Vec<Run>| f(&b, &runs);
            let cache = self.cache.as_deref().filter(|c| inline && c.enabled());
            for at in 0..files.len() {
                self.check()?;
                if let (Some(cache), Some(&(i, file))) = (cache, files.get(at)) {
                    let path = snap.files_root.join(&file.path);
                    let known = known.map(|k| (i, k));
                    if !self.cached_runs(
                        cache, file.id, &path, ids, span, columns, &mut hints, known, &mut pass,
                    )? {
                        let prepared = prepare(at, &mut hints)?;
                        self.decode_caching(
                            cache, file.id, &prepared, ids, span, columns, &mut pass,
                        )?;
                    }
                    continue;
                }
                let prepared = prepare(at, &mut hints)?;
                for part in 0..parts {
                    self.decode_part(&prepared, ids, span, columns, (part, parts), &mut pass)?;
                }
            }
        } else {
            let shared: Vec<Shared> = (0..files.len())
                .map(|_| Mutex::new((None, parts)))
                .collect();
            let (shared, prepare) = (&shared, &prepare);
            std::thread::scope(|scope| -> Result<(), ScanError> {
                let mut receivers: Vec<Receiver<Decoded>> = Vec::with_capacity(units.len());
                let mut senders: Vec<Vec<(usize, SyncSender<Decoded>)>> =
                    (0..threads).map(|_| Vec::new()).collect();
                for u in 0..units.len() {
                    let (tx, rx) = sync_channel(QUEUED_BATCHES);
                    receivers.push(rx);
                    if let Some(s) = senders.get_mut(u % threads) {
                        s.push((u, tx));
                    }
                }
                for mine in senders {
                    scope.spawn(move || {
                        let mut hints = Vec::new();
                        for (u, tx) in mine {
                            let Some(&(at, part)) = units.get(u) else {
                                continue;
                            };
                            let res = self
                                .check()
                                .map_err(ScanError::from)
                                .and_then(|()| match shared.get(at) {
                                    Some(slot) => take_shared(slot, || prepare(at, &mut hints)),
                                    None => prepare(at, &mut hints).map(Arc::new),
                                })
                                .and_then(|prepared| {
                                    self.decode_part(
                                        &prepared,
                                        ids,
                                        span,
                                        columns,
                                        part,
                                        &mut |b, runs| {
                                            // The consumer hung up (it failed): stop decoding.
                                            tx.send(Ok((b, runs)))
                                                .map_err(|_| ScanError::Limit(Limit::Canceled))
                                        },
                                    )
                                });
                            if let Err(e) = res {
                                // Lost only when the consumer is gone already.
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                    });
                }
                // In file order; a worker's channel closes when its file is done.
                for rx in receivers {
                    for msg in rx {
                        let (b, runs) = msg?;
                        f(&b, &runs)?;
                    }
                }
                Ok(())
            })?;
        }
        for batch in &snap.batches {
            self.check()?;
            let indices: Vec<usize> = ["series_id", "timestamp"]
                .iter()
                .chain(columns)
                .filter_map(|c| batch.schema().index_of(c).ok())
                .collect();
            let projected = batch.project(&indices).map_err(storage_err)?;
            let runs = id_runs(&projected, ids)?;
            f(&projected, &runs)?;
        }
        Ok(())
    }

    /// Opens the data file at `path` for a scan of series `ids` over `span`: its footer
    /// and the wanted series' row ranges in the time range. `hints` carries directory
    /// positions from file to file (see `SeriesDirectory`); `known` gives the file's
    /// ranges when the caller worked them out beforehand.
    pub(super) fn prepare(
        &self,
        path: &Path,
        ids: &[u64],
        span: (i64, i64),
        hints: &mut Vec<u32>,
        known: Option<(usize, &KnownRanges<'_>)>,
    ) -> Result<Prepared, ScanError> {
        let name = self.file_name(path);
        let file = DataFile::open(path).map_err(|e| file_err(&name, e))?;
        let footer = footer(path, file.file()).map_err(|e| file_err(&name, e))?;
        let (ranges, no_histograms) = rows_in_file(&footer, ids, span, hints, known);
        Ok(Prepared {
            name,
            file,
            footer,
            ranges,
            no_histograms,
        })
    }

    /// Passes the rows of series `ids` of the file at `path` (catalog id `file`) from
    /// `cache`, one batch per directory range, when its footer is at hand and every range
    /// is cached; `false` (nothing passed) otherwise.
    #[allow(clippy::too_many_arguments)]
    fn cached_runs(
        &self,
        cache: &SampleCache,
        file: u64,
        path: &Path,
        ids: &[u64],
        span: (i64, i64),
        columns: &[&str],
        hints: &mut Vec<u32>,
        known: Option<(usize, &KnownRanges<'_>)>,
        f: &mut dyn FnMut(RecordBatch, Vec<Run>) -> Result<(), ScanError>,
    ) -> Result<bool, ScanError> {
        let Some(footer) = cached_footer(path) else {
            return Ok(false);
        };
        let (Some(ranges), no_histograms) = rows_in_file(&footer, ids, span, hints, known) else {
            return Ok(false);
        };
        let Some(columns) = cached_columns(columns, no_histograms) else {
            return Ok(false);
        };
        let wanted: Vec<&(u64, u64, usize)> = ranges.iter().filter(|r| r.1 > 0).collect();
        let keys: Vec<RangeKey> = wanted
            .iter()
            .map(|&&(first, rows, _)| RangeKey {
                file,
                first,
                rows,
                columns,
            })
            .collect();
        let Some(batches) = cache.get_all(&keys) else {
            return Ok(false);
        };
        for (batch, &&(_, _, series)) in batches.into_iter().zip(&wanted) {
            let rows = batch.num_rows();
            f(
                batch,
                vec![Run {
                    series: Some(series),
                    rows,
                }],
            )?;
        }
        Ok(true)
    }

    /// [`Self::decode_part`] of a whole prepared file (catalog id `file`), keeping each of
    /// its directory ranges in `cache` on the way.
    #[allow(clippy::too_many_arguments)]
    fn decode_caching(
        &self,
        cache: &SampleCache,
        file: u64,
        prepared: &Prepared,
        ids: &[u64],
        span: (i64, i64),
        columns: &[&str],
        f: &mut dyn FnMut(RecordBatch, Vec<Run>) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        let (Some(ranges), Some(cols)) = (
            prepared.ranges.as_deref(),
            cached_columns(columns, prepared.no_histograms),
        ) else {
            return self.decode_part(prepared, ids, span, columns, (0, 1), f);
        };
        let mut collector = RangeCollector {
            cache,
            file,
            columns: cols,
            ranges,
            pieces: Vec::new(),
            rows: 0,
            lost: false,
        };
        self.decode_part(prepared, ids, span, columns, (0, 1), &mut |b, runs| {
            collector.take(&b, &runs);
            f(b, runs)
        })
    }

    /// Decodes the rows of series `ids` of a prepared file, passing each batch with its
    /// runs: part `part` (k, n), the k-th of n parts of about equal rows of the file's
    /// ranges (a file without a directory is read whole by part 0). Only the decoder's
    /// calls are guarded ([`decode`]): a panic of this code or of `f` is not a damaged
    /// file.
    fn decode_part(
        &self,
        prepared: &Prepared,
        ids: &[u64],
        (start_ms, end_ms): (i64, i64),
        columns: &[&str],
        part: (usize, usize),
        f: &mut dyn FnMut(RecordBatch, Vec<Run>) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        let ranges = prepared.ranges.as_deref().map(|r| part_of(r, part));
        if ranges.is_none() && part.0 > 0 {
            return Ok(());
        }
        let meta = prepared.footer.meta.metadata();
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            prepared.file.clone(),
            prepared.footer.meta.clone(),
        );
        let (keep, selection) = match ranges {
            Some(r) => selection_of_ranges(meta, r),
            None => super::selection_by_stats(&builder, meta, ids, start_ms, end_ms)?,
        };
        if keep.is_empty() {
            return Ok(());
        }
        let pschema = builder.parquet_schema();
        let leaves = crate::footer::leaves_where(pschema, |root| {
            (root == "timestamp"
                || (root == "series_id" && ranges.is_none())
                || columns.contains(&root))
                && !(prepared.no_histograms && root == "histogram")
        });
        let mask = ProjectionMask::leaves(pschema, leaves);
        builder = builder
            .with_row_groups(keep)
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS);
        if let Some(sel) = selection {
            builder = builder.with_row_selection(sel);
        }
        let name = &prepared.name;
        let mut reader = decode(name, || builder.build())?;
        // Position in the directory's ranges: (range, rows of it already handed out).
        let mut at = (0usize, 0usize);
        loop {
            self.check()?;
            let Some(batch) = decode(name, || reader.next().transpose())? else {
                return Ok(());
            };
            let runs = match ranges {
                Some(r) => directory_runs(r, &mut at, batch.num_rows()),
                None => id_runs(&batch, ids)?,
            };
            f(batch, runs)?;
        }
    }
}

/// Row ranges of series in a file: (first row, rows, index of the series in the scan).
type RowRanges = Vec<(u64, u64, usize)>;

/// The rows of series `ids` in the file of `footer` over `span`: with a series directory,
/// their row ranges (cut to the row groups of the time range; `series_id` need not be
/// decoded), and whether none of them has histogram rows (float series never need the
/// histogram column, the widest one to decode; files list the series that have any).
fn rows_in_file(
    footer: &Footer,
    ids: &[u64],
    span: (i64, i64),
    hints: &mut Vec<u32>,
    known: Option<(usize, &KnownRanges<'_>)>,
) -> (Option<RowRanges>, bool) {
    let no_histograms = footer
        .histogram_series()
        .is_some_and(|h| !super::sorted_intersect(h, ids));
    let ranges = footer.series_directory().map(|d| {
        let ranges = known
            .and_then(|(i, k)| k(i, d))
            .unwrap_or_else(|| directory_ranges(d, ids, hints));
        super::in_time(footer.group_times(), ranges, span)
    });
    (ranges, no_histograms)
}

/// The columns a cached range of a file holds besides `timestamp`, `None` when a scan
/// reads columns the cache does not key.
fn cached_columns(columns: &[&str], no_histograms: bool) -> Option<Columns> {
    // Both kinds of entry hold `value`: a scan without it decodes other rows' shapes.
    if !columns.contains(&"value") {
        return None;
    }
    let mut histograms = false;
    for &c in columns {
        match c {
            "value" => {}
            "histogram" => histograms = !no_histograms,
            _ => return None,
        }
    }
    Some(if histograms {
        Columns::ValuesAndHistograms
    } else {
        Columns::Values
    })
}

/// Collects the rows of a file's directory ranges out of its decoded batches, and keeps
/// each range in the cache once it is whole.
struct RangeCollector<'a> {
    cache: &'a SampleCache,
    file: u64,
    columns: Columns,
    /// The ranges still to come, in file order.
    ranges: &'a [(u64, u64, usize)],
    /// Slices of the current range so far, and their rows.
    pieces: Vec<RecordBatch>,
    rows: u64,
    /// The runs stopped matching the ranges: keep nothing more.
    lost: bool,
}

impl RangeCollector<'_> {
    fn take(&mut self, batch: &RecordBatch, runs: &[Run]) {
        let mut row = 0usize;
        for run in runs {
            if self.lost {
                return;
            }
            while self.ranges.first().is_some_and(|r| r.1 == 0) {
                self.ranges = self.ranges.get(1..).unwrap_or(&[]);
            }
            let Some(&(first, count, series)) = self.ranges.first() else {
                self.lost = true;
                return;
            };
            if run.series != Some(series) || row + run.rows > batch.num_rows() {
                self.lost = true;
                return;
            }
            self.pieces.push(batch.slice(row, run.rows));
            self.rows += run.rows as u64;
            row += run.rows;
            if self.rows > count {
                self.lost = true;
            } else if self.rows == count {
                let key = RangeKey {
                    file: self.file,
                    first,
                    rows: count,
                    columns: self.columns,
                };
                // After a partial hit the file is decoded whole: ranges cached already
                // are not copied again.
                if !self.cache.contains(&key) {
                    match compact(&self.pieces) {
                        Some(b) => self.cache.insert(key, b),
                        None => self.lost = true,
                    }
                }
                self.pieces.clear();
                self.rows = 0;
                self.ranges = self.ranges.get(1..).unwrap_or(&[]);
            }
        }
    }
}

/// `pieces` (slices of one schema) copied into one batch of their own buffers: a slice
/// would keep its whole decoded batch alive in the cache.
fn compact(pieces: &[RecordBatch]) -> Option<RecordBatch> {
    let schema = pieces.first()?.schema();
    let rows: usize = pieces.iter().map(RecordBatch::num_rows).sum();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for c in 0..schema.fields().len() {
        let data: Vec<ArrayData> = pieces.iter().map(|p| p.column(c).to_data()).collect();
        let mut out = MutableArrayData::new(data.iter().collect(), false, rows);
        for (i, d) in data.iter().enumerate() {
            out.try_extend(i, 0, d.len()).ok()?;
        }
        columns.push(make_array(out.freeze()));
    }
    RecordBatch::try_new(schema, columns).ok()
}

/// Samples of a selection below which its files are decoded on the calling thread: for
/// a few thousand rows per file, starting decode threads and handing batches between
/// them cost more than they overlap (a tenth of a small query's CPU went to thread
/// starts and wake-ups).
const INLINE_SAMPLES: usize = 64 * 1024;

/// Whether a scan of `series` series over `span_ms` is small enough to decode inline
/// (counting a sample every 15 s).
fn small_scan(series: usize, span_ms: i64) -> bool {
    let per_series = usize::try_from(span_ms / 15_000)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    series.saturating_mul(per_series) < INLINE_SAMPLES
}

/// Part `k` of `n` of `ranges` (sorted by first row): whole ranges, cut where the rows
/// before them pass `k / n` of all rows (each part a stretch of `ranges`, in order).
fn part_of(ranges: &[(u64, u64, usize)], (k, n): (usize, usize)) -> &[(u64, u64, usize)] {
    if n <= 1 {
        return ranges;
    }
    let total: u64 = ranges.iter().map(|r| r.1).sum();
    let (n, k) = (n as u64, k as u64);
    // The part a range starts in, from the rows before it, never decreases: part k is
    // the ranges from the first starting in it to the first starting past it.
    let (mut lo, mut hi) = (ranges.len(), ranges.len());
    let mut before = 0u64;
    for (i, r) in ranges.iter().enumerate() {
        let p = (before.saturating_mul(n) / total.max(1)).min(n - 1);
        before += r.1;
        if p >= k && lo == ranges.len() {
            lo = i;
        }
        if p > k {
            hi = i;
            break;
        }
    }
    ranges.get(lo..hi).unwrap_or(&[])
}

/// The next `rows` rows of a directory selection as runs, advancing `at`.
fn directory_runs(
    ranges: &[(u64, u64, usize)],
    at: &mut (usize, usize),
    mut rows: usize,
) -> Vec<Run> {
    let mut runs = Vec::new();
    while rows > 0 {
        let Some(&(_, count, series)) = ranges.get(at.0) else {
            // More rows than the directory promised: hand them over as unknown.
            runs.push(Run { series: None, rows });
            break;
        };
        let left = usize::try_from(count).unwrap_or(usize::MAX) - at.1;
        let take = left.min(rows);
        if take > 0 {
            runs.push(Run {
                series: Some(series),
                rows: take,
            });
        }
        rows -= take;
        if take == left {
            *at = (at.0 + 1, 0);
        } else {
            at.1 += take;
        }
    }
    runs
}

/// A batch's runs of equal `series_id`, each looked up in `ids`.
fn id_runs(batch: &RecordBatch, ids: &[u64]) -> Result<Vec<Run>, ScanError> {
    let Some(col) = batch
        .column_by_name("series_id")
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
    else {
        return Err(ScanError::Storage(
            "metrics batch without a series_id column".into(),
        ));
    };
    let vals = col.values();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < vals.len() {
        let id = vals[i];
        let mut j = i + 1;
        while j < vals.len() && vals[j] == id {
            j += 1;
        }
        runs.push(Run {
            series: ids.binary_search(&id).ok(),
            rows: j - i,
        });
        i = j;
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_selections_decode_inline() {
        // One instance's 72 counters over 3 h and a service's 62 gauges over 1 h are small.
        assert!(small_scan(72, 3 * 3600 * 1000));
        assert!(small_scan(62, 3600 * 1000));
        // A service's 621 gauges over 3 h, or 45k series at one instant, are not.
        assert!(!small_scan(621, 3 * 3600 * 1000));
        assert!(!small_scan(45_000, 5 * 60 * 1000));
        assert!(!small_scan(usize::MAX, i64::MAX));
    }

    #[test]
    fn parts_cover_the_ranges_once_in_order() {
        let ranges: Vec<(u64, u64, usize)> =
            (0..10).map(|k| (k * 100, 10 + k, k as usize)).collect();
        for n in 1..5 {
            let parts: Vec<_> = (0..n).map(|k| part_of(&ranges, (k, n))).collect();
            assert_eq!(parts.concat(), ranges, "{n} parts");
            assert!(parts.iter().all(|p| !p.is_empty()), "{n} parts");
        }
        // Rows decide, not range counts: one big range is a part of its own.
        let skewed = vec![(0, 1000, 0), (1000, 1, 1), (1001, 1, 2)];
        assert_eq!(part_of(&skewed, (0, 2)), [(0, 1000, 0)]);
        assert_eq!(part_of(&skewed, (1, 2)), [(1000, 1, 1), (1001, 1, 2)]);
        assert!(part_of(&[], (1, 2)).is_empty());
    }

    #[test]
    fn directory_runs_split_ranges_at_batch_ends() {
        // Series 0 has 3 rows, series 2 has 5, series 1 has 1 (file order).
        let ranges = [(0, 3, 0), (10, 5, 2), (40, 1, 1)];
        let mut at = (0, 0);
        let a = directory_runs(&ranges, &mut at, 4);
        let b = directory_runs(&ranges, &mut at, 4);
        let c = directory_runs(&ranges, &mut at, 3);
        let run = |s: Option<usize>, rows| Run { series: s, rows };
        assert_eq!(a, vec![run(Some(0), 3), run(Some(2), 1)]);
        assert_eq!(b, vec![run(Some(2), 4)]);
        // One row past what the directory promised is not attributed to any series.
        assert_eq!(c, vec![run(Some(1), 1), run(None, 2)]);
    }
}
