//! Reading metric samples out of storage for the PromQL engine and the metadata endpoints.
//!
//! [`StorageSource`] implements the engine's [`SeriesSource`] for one tenant: matchers are
//! resolved on the roaring label index, then the samples of those series ids are read from
//! Parquet files (pruned by the catalog's time range, then read by the exact row ranges of
//! the file's series directory, or for files without one by row-group statistics on
//! `series_id` and `timestamp` and `series_id` page statistics) and from the memtable
//! batches. PromQL selects go through [`runs`]: directory runs, two decode threads.
//! Everything here is synchronous: callers run it inside `spawn_blocking`.
//!
//! Invariants: a series' samples come back sorted by time with one sample per timestamp
//! (the latest written wins: files are read before memtables, both in write order); staleness
//! markers are kept bit-exact; limits, the deadline and cancellation stop a scan between
//! batches with a [`Limit`] that the API maps to Prometheus's error types.

use crate::footer::{DataFile, GroupTimes, SeriesDirectory, footer};
use crate::pruning::{keep_row_groups, page_selection};
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use datafusion::parquet::file::metadata::ParquetMetaData;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

mod bounds;
pub mod cache;
mod merge;
#[cfg(test)]
mod read_ahead_tests;
mod runs;
#[cfg(test)]
mod scan_tests;
use bounds::{FileBounds, file_bounds, misses};
pub use runs::Run;
use strata_promql::histogram::{CounterResetHint, FloatHistogram, Span};
use strata_promql::{
    FPoint, Labels, MatchKind, Matcher, RawSample, RawSeries, SampleValue, SeriesChunks,
    SeriesSource, SourceError,
};
use strata_storage::index::{LabelMatcher, MatchOp};
use strata_storage::model::{NativeHistogram, Signal};
use strata_storage::schema::metric_keys;
use strata_storage::{Snapshot, Storage, TenantId};

/// Why a read stopped before it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// A selector matched more series than allowed.
    TooManySeries(usize),
    /// More samples than allowed would be loaded.
    TooManySamples,
    /// The deadline passed.
    Timeout,
    /// The client went away.
    Canceled,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::TooManySeries(n) => write!(
                f,
                "the query selects more than {n} series; narrow its label matchers"
            ),
            Limit::TooManySamples => f.write_str(
                "query processing would load too many samples into memory in query execution",
            ),
            Limit::Timeout => f.write_str("query timed out in query execution"),
            Limit::Canceled => f.write_str("query was canceled in query execution"),
        }
    }
}

/// A failed read.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanError {
    /// A limit, the deadline or cancellation stopped the read.
    Limit(Limit),
    /// Storage could not be read; the text is for logs, not clients.
    Storage(String),
}

impl From<Limit> for ScanError {
    fn from(l: Limit) -> Self {
        ScanError::Limit(l)
    }
}

/// A decoder call on the data file errors call `name`, guarded ([`crate::guard::decode_file`]):
/// only the decoder's calls go inside, a panic of our own code is a bug, not a damaged file.
fn decode<T, E: std::fmt::Display>(
    name: &str,
    call: impl FnOnce() -> Result<T, E>,
) -> Result<T, ScanError> {
    crate::guard::decode_file(name, call).map_err(ScanError::Storage)
}

/// An error reading the data file errors call `name`.
fn file_err(name: &str, e: impl std::fmt::Display) -> ScanError {
    ScanError::Storage(crate::guard::file_error(name, e))
}

fn storage_err(e: impl std::fmt::Display) -> ScanError {
    ScanError::Storage(e.to_string())
}

/// Converts an engine matcher to a label-index matcher (regexes fully anchored, `.` matches
/// newlines, as in Prometheus).
pub fn index_matcher(m: &Matcher) -> Result<LabelMatcher, regex::Error> {
    let anchored = |v: &str| regex::Regex::new(&format!("^(?s:{v})$"));
    let op = match m.kind {
        MatchKind::Equal => MatchOp::Equal(m.value.clone()),
        MatchKind::NotEqual => MatchOp::NotEqual(m.value.clone()),
        MatchKind::Regex => MatchOp::Regex(anchored(&m.value)?),
        MatchKind::NotRegex => MatchOp::NotRegex(anchored(&m.value)?),
    };
    Ok(LabelMatcher {
        name: m.name.clone(),
        op,
    })
}

/// Converts a stored native histogram to the engine's form.
pub fn float_histogram(h: NativeHistogram) -> FloatHistogram {
    let spans = |s: Vec<strata_storage::model::BucketSpan>| {
        s.into_iter()
            .map(|s| Span {
                offset: s.offset,
                length: s.length,
            })
            .collect()
    };
    FloatHistogram {
        counter_reset_hint: match h.counter_reset_hint {
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        },
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count,
        count: h.count,
        sum: h.sum,
        positive_spans: spans(h.positive_spans),
        negative_spans: spans(h.negative_spans),
        positive_buckets: h.positive_buckets,
        negative_buckets: h.negative_buckets,
        custom_values: h.custom_values,
    }
}

/// Reads rows of chosen series and a time range from one tenant's metrics.
#[derive(Clone)]
pub struct Scanner {
    storage: Storage,
    tenant: TenantId,
    deadline: Option<Instant>,
    cancel: Arc<AtomicBool>,
    /// Set when whoever reads through this scanner is gone (a chunk read ahead that no
    /// one will take): the read stops at its next check.
    abandoned: Option<Arc<AtomicBool>>,
    /// Decoded row ranges of small selections, shared by the queries of one API.
    cache: Option<Arc<cache::SampleCache>>,
}

impl Scanner {
    /// A scanner that stops at `deadline` or once `cancel` is set.
    pub fn new(
        storage: Storage,
        tenant: TenantId,
        deadline: Option<Instant>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        Scanner {
            storage,
            tenant,
            deadline,
            cancel,
            abandoned: None,
            cache: None,
        }
    }

    /// This scanner, reading small selections through `cache`.
    pub fn with_cache(self, cache: Arc<cache::SampleCache>) -> Self {
        Scanner {
            cache: Some(cache),
            ..self
        }
    }

    /// This scanner, also stopping (as canceled) once `abandoned` is set.
    fn abandoned_with(&self, abandoned: Arc<AtomicBool>) -> Scanner {
        Scanner {
            abandoned: Some(abandoned),
            ..self.clone()
        }
    }

    /// The storage handle.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The tenant read.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Fails once the deadline passed or the request was canceled.
    pub fn check(&self) -> Result<(), Limit> {
        if self.cancel.load(Ordering::Relaxed)
            || self
                .abandoned
                .as_ref()
                .is_some_and(|a| a.load(Ordering::Relaxed))
        {
            return Err(Limit::Canceled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Limit::Timeout);
        }
        Ok(())
    }

    /// Calls `f` with batches holding exactly the rows whose series id is in `ids` (sorted,
    /// deduplicated) and whose timestamp lies in `[start_ms, end_ms]`, projected to
    /// `columns` plus `series_id` and `timestamp`. Files come first, then memtables.
    pub fn scan(
        &self,
        ids: &[u64],
        start_ms: i64,
        end_ms: i64,
        columns: &[&str],
        f: &mut dyn FnMut(&RecordBatch) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        let snap = self.snapshot(start_ms, end_ms);
        self.scan_with(&snap, ids, (start_ms, end_ms), columns, f)
    }

    /// What a scan of `[start_ms, end_ms]` reads: the metric files overlapping it and the
    /// memtable batches.
    pub fn snapshot(&self, start_ms: i64, end_ms: i64) -> Snapshot {
        self.storage.snapshot_by_series(
            &self.tenant,
            Signal::Metrics,
            start_ms.saturating_mul(1_000_000),
            end_ms.saturating_mul(1_000_000),
        )
    }

    fn scan_with(
        &self,
        snap: &Snapshot,
        ids: &[u64],
        (start_ms, end_ms): (i64, i64),
        columns: &[&str],
        f: &mut dyn FnMut(&RecordBatch) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        if ids.is_empty() || end_ms < start_ms {
            return Ok(());
        }
        let mut cols: Vec<&str> = vec!["series_id", "timestamp"];
        for c in columns {
            if !cols.contains(c) {
                cols.push(c);
            }
        }
        for file in &snap.files {
            self.check()?;
            let path = snap.files_root.join(&file.path);
            self.scan_file(&path, ids, (start_ms, end_ms), &cols, f)?;
        }
        for batch in &snap.batches {
            self.check()?;
            let indices: Vec<usize> = cols
                .iter()
                .filter_map(|c| batch.schema().index_of(c).ok())
                .collect();
            let projected = batch.project(&indices).map_err(storage_err)?;
            if let Some(b) = keep_rows(&projected, ids, start_ms, end_ms)? {
                f(&b)?;
            }
        }
        Ok(())
    }

    fn scan_file(
        &self,
        path: &Path,
        ids: &[u64],
        (start_ms, end_ms): (i64, i64),
        cols: &[&str],
        f: &mut dyn FnMut(&RecordBatch) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        let name = self.file_name(path);
        let file = DataFile::open(path).map_err(|e| file_err(&name, e))?;
        let footer = footer(path, file.file()).map_err(|e| file_err(&name, e))?;
        let meta = footer.meta.metadata().clone();
        // Float series never need the histogram column, the widest one to decode; files
        // list the series that have histogram rows.
        let no_histograms = footer
            .histogram_series()
            .is_some_and(|h| !sorted_intersect(h, ids));
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, footer.meta.clone());
        let pschema = builder.parquet_schema();
        let (keep, selection) = match footer.series_directory() {
            // Sorted by series rank: the directory gives each wanted series' rows.
            Some(dir) => {
                directory_selection(&meta, footer.group_times(), dir, ids, (start_ms, end_ms))
            }
            None => selection_by_stats(&builder, &meta, ids, start_ms, end_ms)?,
        };
        if keep.is_empty() {
            return Ok(());
        }
        let leaves = crate::footer::leaves_where(pschema, |root| {
            cols.contains(&root) && !(no_histograms && root == "histogram")
        });
        let mask = ProjectionMask::leaves(pschema, leaves);
        builder = builder
            .with_row_groups(keep)
            .with_projection(mask)
            .with_batch_size(16 * 1024);
        if let Some(sel) = selection {
            builder = builder.with_row_selection(sel);
        }
        let mut reader = decode(&name, || builder.build())?;
        loop {
            self.check()?;
            let Some(batch) = decode(&name, || reader.next().transpose())? else {
                return Ok(());
            };
            if let Some(b) = keep_rows(&batch, ids, start_ms, end_ms)? {
                f(&b)?;
            }
        }
    }

    /// How errors name the data file at `path` (relative to the data directory).
    fn file_name(&self, path: &Path) -> String {
        crate::footer::data_file_name(self.storage.data_dir(), path)
    }
}

/// The row ranges of the wanted series (sorted `ids`) of a file with a series directory:
/// (first row, row count, index in `ids`), in file order.
pub(crate) fn directory_ranges(
    dir: &SeriesDirectory,
    ids: &[u64],
    hints: &mut Vec<u32>,
) -> Vec<(u64, u64, usize)> {
    let mut ranges: Vec<(u64, u64, usize)> = Vec::new();
    dir.each_of(ids, hints, |k, e| ranges.push((e.1, e.2, k)));
    ranges.sort_unstable();
    ranges
}

/// `ranges` (sorted by first row, from [`directory_ranges`]) cut to the rows of the row
/// groups whose timestamps may lie in `[start_ms, end_ms]`: a metrics file's time slabs
/// are row groups of their own, so a short time range reads only the slabs it overlaps.
/// Files whose row groups all overlap (written before slabs, or a long range) keep their
/// ranges unchanged.
pub(crate) fn in_time(
    groups: &[GroupTimes],
    ranges: Vec<(u64, u64, usize)>,
    (start_ms, end_ms): (i64, i64),
) -> Vec<(u64, u64, usize)> {
    let overlaps: Vec<bool> = groups
        .iter()
        .map(|g| {
            g.min_max
                .is_none_or(|(lo, hi)| hi >= start_ms && lo <= end_ms)
        })
        .collect();
    if overlaps.iter().all(|&o| o) {
        return ranges;
    }
    let mut out = Vec::with_capacity(ranges.len());
    for (first, count, k) in ranges {
        let end = first.saturating_add(count);
        let mut g = groups.partition_point(|g| g.first_row.saturating_add(g.rows) <= first);
        // The kept rows so far, merged while contiguous.
        let mut piece: Option<(u64, u64)> = None;
        while let Some(grp) = groups.get(g) {
            if grp.first_row >= end {
                break;
            }
            if overlaps.get(g).copied().unwrap_or(true) {
                let lo = first.max(grp.first_row);
                let hi = end.min(grp.first_row.saturating_add(grp.rows));
                piece = match piece {
                    Some((plo, phi)) if phi == lo => Some((plo, hi)),
                    Some((plo, phi)) => {
                        out.push((plo, phi - plo, k));
                        Some((lo, hi))
                    }
                    None => Some((lo, hi)),
                };
            }
            g += 1;
        }
        if let Some((lo, hi)) = piece {
            out.push((lo, hi - lo, k));
        }
    }
    out
}

/// The row groups and pages of a file without a series directory (sorted by
/// `series_id`) that may hold `ids` in `[start_ms, end_ms]`, from its statistics.
pub(crate) fn selection_by_stats<T: datafusion::parquet::file::reader::ChunkReader + 'static>(
    builder: &ParquetRecordBatchReaderBuilder<T>,
    meta: &ParquetMetaData,
    ids: &[u64],
    start_ms: i64,
    end_ms: i64,
) -> Result<(Vec<usize>, Option<RowSelection>), ScanError> {
    let (schema, pschema) = (builder.schema(), builder.parquet_schema());
    let id_stats =
        StatisticsConverter::try_new("series_id", schema, pschema).map_err(storage_err)?;
    let ts_stats =
        StatisticsConverter::try_new("timestamp", schema, pschema).map_err(storage_err)?;
    let keep = keep_row_groups::<TimestampMillisecondType>(
        meta, &id_stats, &ts_stats, ids, start_ms, end_ms,
    )
    .map_err(storage_err)?;
    let selection = page_selection(meta, &id_stats, &keep, ids);
    Ok((keep, selection))
}

fn directory_selection(
    meta: &ParquetMetaData,
    groups: &[GroupTimes],
    dir: &SeriesDirectory,
    ids: &[u64],
    span: (i64, i64),
) -> (Vec<usize>, Option<RowSelection>) {
    let ranges = in_time(groups, directory_ranges(dir, ids, &mut Vec::new()), span);
    selection_of_ranges(meta, &ranges)
}

/// The row groups holding `ranges` (from [`directory_ranges`]) and a selection of exactly
/// their rows over those row groups.
pub(crate) fn selection_of_ranges(
    meta: &ParquetMetaData,
    ranges: &[(u64, u64, usize)],
) -> (Vec<usize>, Option<RowSelection>) {
    let ranges: Vec<(u64, u64)> = ranges
        .iter()
        .map(|&(first, count, _)| (first, first.saturating_add(count)))
        .collect();
    let mut keep = Vec::new();
    let mut selectors: Vec<RowSelector> = Vec::new();
    let mut first_row = 0u64;
    let mut r = 0;
    for (g, rg) in meta.row_groups().iter().enumerate() {
        let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
        let end = first_row.saturating_add(rows);
        while r < ranges.len() && ranges[r].1 <= first_row {
            r += 1;
        }
        let mut pos = first_row;
        let mut group: Vec<RowSelector> = Vec::new();
        let mut k = r;
        while k < ranges.len() && ranges[k].0 < end {
            let (lo, hi) = (ranges[k].0.max(pos), ranges[k].1.min(end));
            if lo > pos {
                group.push(RowSelector::skip((lo - pos) as usize));
            }
            if hi > lo {
                group.push(RowSelector::select((hi - lo) as usize));
                pos = hi;
            }
            if ranges[k].1 > end {
                break;
            }
            k += 1;
        }
        if !group.is_empty() {
            if pos < end {
                group.push(RowSelector::skip((end - pos) as usize));
            }
            keep.push(g);
            selectors.extend(group);
        }
        first_row = end;
    }
    (keep, Some(RowSelection::from(selectors)))
}

/// Whether two sorted id lists share an id.
fn sorted_intersect(a: &[u64], b: &[u64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// The rows of `batch` with a wanted id and time, or `None` when there are none.
fn keep_rows(
    batch: &RecordBatch,
    ids: &[u64],
    start_ms: i64,
    end_ms: i64,
) -> Result<Option<RecordBatch>, ScanError> {
    let Some((id_col, ts_col)) = metric_keys(batch) else {
        return Err(ScanError::Storage(
            "metrics batch without series_id/timestamp columns".into(),
        ));
    };
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let t = ts_col[i];
            Some(t >= start_ms && t <= end_ms && ids.binary_search(&id_col[i]).is_ok())
        })
        .collect();
    match mask.true_count() {
        0 => Ok(None),
        n if n == batch.num_rows() => Ok(Some(batch.clone())),
        _ => filter_record_batch(batch, &mask)
            .map(Some)
            .map_err(storage_err),
    }
}

/// Limits of one query's reads.
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    /// Most series one selector may match.
    pub max_series: usize,
    /// Most samples all selectors together may load.
    pub max_samples: usize,
}

/// The engine's view of one tenant's metrics.
pub struct StorageSource {
    scanner: Scanner,
    limits: SourceLimits,
    loaded: Cell<usize>,
    stopped: RefCell<Option<Limit>>,
}

impl StorageSource {
    /// A source over `scanner`'s tenant.
    pub fn new(scanner: Scanner, limits: SourceLimits) -> Self {
        StorageSource {
            scanner,
            limits,
            loaded: Cell::new(0),
            stopped: RefCell::new(None),
        }
    }

    /// The limit that stopped a `select`, if one did.
    pub fn limit_hit(&self) -> Option<Limit> {
        self.stopped.borrow().clone()
    }

    fn select_inner(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RawSeries>, ScanError> {
        let series = self.matching(matchers)?;
        let snap = self.scanner.snapshot(start_ms, end_ms);
        self.read(&snap, &series, start_ms, end_ms)
    }

    /// The series matching `matchers` (series id and labels), sorted by labels, each id
    /// once.
    fn matching(&self, matchers: &[Matcher]) -> Result<Vec<(u64, Labels)>, ScanError> {
        self.scanner.check()?;
        let index_matchers = matchers
            .iter()
            .map(index_matcher)
            .collect::<Result<Vec<_>, _>>()
            .map_err(storage_err)?;
        let mut series: Vec<(u64, Labels)> = Vec::new();
        // The index sorts the sets and lends their strings: each engine label set is built
        // once, straight from them.
        let counted = self.scanner.storage().each_series_sorted(
            self.scanner.tenant(),
            Signal::Metrics,
            &index_matchers,
            self.limits.max_series,
            &mut |id, pairs| series.push((id.0, Labels::from_sorted_pairs(pairs))),
        );
        if counted.is_err() {
            return Err(Limit::TooManySeries(self.limits.max_series).into());
        }
        // The index's order is `Labels`' order unless a stored set held an empty value
        // (which engine label sets drop).
        if !series.is_sorted_by(|a, b| a.1 <= b.1) {
            series.sort_by(|a, b| a.1.cmp(&b.1));
        }
        Ok(series)
    }

    /// The samples in `[start_ms, end_ms]` of `found` (series id and labels, sorted by
    /// labels, each id once) in the files and memtables of `snap`, in the order of `found`
    /// (series without samples left out).
    fn read(
        &self,
        snap: &Snapshot,
        found: &[(u64, Labels)],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RawSeries>, ScanError> {
        let mut loaded = self.loaded.get();
        let bounds = file_bounds(&self.scanner, snap);
        let res = read_series(
            &self.scanner,
            self.limits.max_samples,
            &mut loaded,
            snap,
            &bounds,
            found,
            (start_ms, end_ms),
            None,
        );
        self.loaded.set(loaded);
        res
    }

    /// Records a limit that stopped a read and converts the error for the engine.
    fn source_error(&self, e: ScanError) -> SourceError {
        match e {
            ScanError::Limit(l) => {
                let msg = l.to_string();
                *self.stopped.borrow_mut() = Some(l);
                SourceError::new(msg)
            }
            ScanError::Storage(m) => SourceError::new(m),
        }
    }
}

/// Most series per chunk of a chunked selection (a chunk costs each file one reader).
const MAX_SERIES_PER_CHUNK: usize = 8192;
/// Fewest series in a chunk; later chunks are sized from the bytes per series seen so far.
const FIRST_CHUNK_SERIES: usize = 256;
/// Bytes of samples a chunk aims at: about 730 float series of 3 h at 15 s; native
/// histograms take some hundred bytes per sample. A chunk's samples are written by the
/// read, then merged, then windowed by the engine: at 8 MB they are still in cache for
/// the later passes (at 32 MB those passes ran from memory, 5-7% more CPU for 3 h
/// `rate`/`increase` aggregations over 10k-45k series).
const CHUNK_BYTES: usize = 8 << 20;

/// Series in the first chunk of a selection of `series` series over `span_ms`: sized
/// for [`CHUNK_BYTES`] at a sample every 15 s and 256 bytes a sample (between a float's 16
/// and a native histogram's few hundred); a selection up to twice that is read at once.
fn first_chunk(series: usize, span_ms: i64) -> usize {
    let samples = usize::try_from(span_ms / 15_000).unwrap_or(0) + 1;
    let first = (CHUNK_BYTES / 256 / samples).clamp(FIRST_CHUNK_SERIES, MAX_SERIES_PER_CHUNK);
    if series <= 2 * first {
        series.max(1)
    } else {
        first
    }
}

/// Bytes a series' samples take in memory, roughly.
fn approx_bytes(s: &RawSeries) -> usize {
    let hist: usize = s
        .histograms
        .iter()
        .map(|p| {
            let h = &p.h;
            std::mem::size_of::<FloatHistogram>()
                + 32
                + 8 * (h.positive_buckets.len()
                    + h.negative_buckets.len()
                    + h.positive_spans.len()
                    + h.negative_spans.len()
                    + h.custom_values.len())
        })
        .sum();
    std::mem::size_of::<RawSeries>()
        + s.floats.len() * std::mem::size_of::<FPoint>()
        + s.histograms.len() * std::mem::size_of::<strata_promql::HPoint>()
        + hist
}

/// (series id, index in `found`) of each series of a selection, sorted by id.
fn by_id(found: &[(u64, Labels)]) -> Vec<(u64, usize)> {
    let mut by_id: Vec<(u64, usize)> = found
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    by_id.sort_unstable();
    by_id
}

/// Most (series, file) row ranges a [`SelectionRows`] holds (8 bytes each).
const MAX_SELECTION_ROWS: usize = 8 << 20;

/// The rows of every series of a chunked selection in each file with a series directory,
/// looked up once per file for the whole selection. A chunk's series ids are scattered
/// over the directory (sorted by id, a few MB a file), so looking them up chunk by chunk
/// costs a cache miss per series and file; one merge pass over each directory for all of
/// the selection's series reads it in order once.
struct SelectionRows {
    /// The selection's ids sorted, and the index of each in the selection.
    ids: Vec<u64>,
    index: Vec<usize>,
    /// Per file of the snapshot: (first row, row count) per series of the selection (a
    /// count of 0 when the file lacks it), `None` when a row number exceeds `u32`.
    files: Vec<std::sync::OnceLock<Option<FileRows>>>,
}

/// (first row, row count) per series of a selection in one file.
type FileRows = Vec<(u32, u32)>;

impl SelectionRows {
    /// For the selection `found` over `files` files; `None` when it would be too large.
    fn new(found: &[(u64, Labels)], files: usize) -> Option<Self> {
        if found.len().saturating_mul(files) > MAX_SELECTION_ROWS || files == 0 {
            return None;
        }
        let by_id = by_id(found);
        // `found` holds each id once; a duplicate would leave a series without rows.
        if by_id.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(SelectionRows {
            ids: by_id.iter().map(|x| x.0).collect(),
            index: by_id.iter().map(|x| x.1).collect(),
            files: (0..files).map(|_| std::sync::OnceLock::new()).collect(),
        })
    }

    /// The rows of the selection's series in file `file` (indexed like the selection),
    /// looked up on first use.
    fn in_file(&self, file: usize, dir: &SeriesDirectory) -> Option<&[(u32, u32)]> {
        // One range a series: a file of time slabs is looked up chunk by chunk instead.
        if dir.slabbed() {
            return None;
        }
        self.files
            .get(file)?
            .get_or_init(|| {
                let mut rows = vec![(0u32, 0u32); self.index.len()];
                let mut fits = true;
                dir.each_of(&self.ids, &mut Vec::new(), |k, e| {
                    let slot = self.index.get(k).and_then(|&i| rows.get_mut(i));
                    match (slot, u32::try_from(e.1), u32::try_from(e.2)) {
                        (Some(slot), Ok(first), Ok(count)) => *slot = (first, count),
                        _ => fits = false,
                    }
                });
                fits.then_some(rows)
            })
            .as_deref()
    }

    /// The ranges of a chunk's series in file `file`, as [`directory_ranges`] gives them
    /// for the chunk's sorted ids: the chunk is the selection's series from `offset` on,
    /// `by_id` its (id, index in the chunk) sorted by id.
    fn chunk_ranges(
        &self,
        file: usize,
        dir: &SeriesDirectory,
        offset: usize,
        by_id: &[(u64, usize)],
    ) -> Option<Vec<(u64, u64, usize)>> {
        let table = self.in_file(file, dir)?;
        let mut ranges = Vec::with_capacity(by_id.len());
        for (k, &(_, idx)) in by_id.iter().enumerate() {
            let &(first, count) = table.get(offset + idx)?;
            if count > 0 {
                ranges.push((u64::from(first), u64::from(count), k));
            }
        }
        ranges.sort_unstable();
        Some(ranges)
    }
}

/// A selection read a chunk of series at a time (about [`CHUNK_BYTES`] of samples, at
/// most [`MAX_SERIES_PER_CHUNK`] series), in label order, from one snapshot. Files are
/// sorted by series labels, so a chunk's rows are a contiguous stretch of every file.
/// While the engine evaluates a chunk, a thread reads the next one (Prometheus evaluates
/// on one thread; here decoding and evaluation overlap).
struct StorageChunks<'a> {
    source: &'a StorageSource,
    read: Arc<ChunkRead>,
    labels: Vec<Labels>,
    next: usize,
    chunk: usize,
    /// The next chunk being read: its series count and the thread reading it.
    pending: Option<(usize, std::thread::JoinHandle<ChunkResult>)>,
    /// Set on drop (after an evaluation error, say): the thread reading ahead stops at its
    /// next check (each file and each batch of rows) instead of decoding a chunk no one
    /// will take.
    abandoned: Arc<AtomicBool>,
}

impl Drop for StorageChunks<'_> {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

/// What reading a chunk needs, shared with the thread reading ahead.
struct ChunkRead {
    scanner: Scanner,
    snap: Snapshot,
    bounds: FileBounds,
    found: Vec<(u64, Labels)>,
    span: (i64, i64),
    max_samples: usize,
    /// The selection's rows per file, when looked up once for all chunks.
    rows: Option<SelectionRows>,
}

/// A chunk's series and the query's loaded samples after it.
type ChunkResult = (Result<Vec<RawSeries>, ScanError>, usize);

impl ChunkRead {
    fn read(&self, range: std::ops::Range<usize>, mut loaded: usize) -> ChunkResult {
        let part = self.found.get(range.clone()).unwrap_or(&[]);
        let rows = self.rows.as_ref().map(|r| (r, range.start));
        let res = read_series(
            &self.scanner,
            self.max_samples,
            &mut loaded,
            &self.snap,
            &self.bounds,
            part,
            self.span,
            rows,
        );
        (res, loaded)
    }
}

impl<'a> StorageChunks<'a> {
    fn new(
        source: &'a StorageSource,
        found: Vec<(u64, Labels)>,
        start_ms: i64,
        end_ms: i64,
    ) -> Self {
        let abandoned = Arc::new(AtomicBool::new(false));
        let snap = source.scanner.snapshot(start_ms, end_ms);
        let chunk = first_chunk(found.len(), end_ms.saturating_sub(start_ms));
        let rows = (found.len() > chunk)
            .then(|| SelectionRows::new(&found, snap.files.len()))
            .flatten();
        StorageChunks {
            source,
            labels: found.iter().map(|(_, l)| l.clone()).collect(),
            read: Arc::new(ChunkRead {
                scanner: source.scanner.abandoned_with(Arc::clone(&abandoned)),
                bounds: file_bounds(&source.scanner, &snap),
                snap,
                found,
                span: (start_ms, end_ms),
                max_samples: source.limits.max_samples,
                rows,
            }),
            next: 0,
            chunk,
            pending: None,
            abandoned,
        }
    }

    /// The series of the next chunk, advancing past them.
    fn take(&mut self) -> std::ops::Range<usize> {
        let end = (self.next + self.chunk).min(self.read.found.len());
        let range = self.next..end;
        self.next = end;
        range
    }
}

impl SeriesChunks for StorageChunks<'_> {
    fn labels(&self) -> &[Labels] {
        &self.labels
    }

    fn next_chunk(&mut self) -> Result<Option<Vec<RawSeries>>, SourceError> {
        loop {
            let (len, (res, loaded)) = match self.pending.take() {
                Some((len, handle)) => match handle.join() {
                    Ok(r) => (len, r),
                    Err(_) => return Err(SourceError::new("a chunk reader failed")),
                },
                None if self.next < self.read.found.len() => {
                    let range = self.take();
                    (range.len(), self.read.read(range, self.source.loaded.get()))
                }
                None => return Ok(None),
            };
            self.source.loaded.set(loaded);
            let series = res.map_err(|e| self.source.source_error(e))?;
            let bytes: usize = series.iter().map(approx_bytes).sum();
            let per_series = (bytes / len.max(1)).max(1);
            self.chunk = (CHUNK_BYTES / per_series).clamp(FIRST_CHUNK_SERIES, MAX_SERIES_PER_CHUNK);
            if self.next < self.read.found.len() {
                let start = self.next;
                let range = self.take();
                let read = Arc::clone(&self.read);
                let spawned = std::thread::Builder::new()
                    .name("promql-read".into())
                    .spawn(move || read.read(range, loaded));
                match spawned {
                    Ok(h) => self.pending = Some((self.next - start, h)),
                    // No thread: the next call reads the chunk itself.
                    Err(_) => self.next = start,
                }
            }
            if !series.is_empty() {
                return Ok(Some(series));
            }
        }
    }
}

/// The samples in `[start_ms, end_ms]` of `found` (series id and labels, sorted by labels,
/// each id once) in the files and memtables of `snap`, in the order of `found` (series
/// without samples left out). `loaded_total` counts the samples a query loaded; past
/// `max_samples` the read stops. Files whose `bounds` leave out every series of `found`
/// are not opened.
#[allow(clippy::too_many_arguments)]
fn read_series(
    scanner: &Scanner,
    max_samples: usize,
    loaded_total: &mut usize,
    snap: &Snapshot,
    bounds: &FileBounds,
    found: &[(u64, Labels)],
    (start_ms, end_ms): (i64, i64),
    rows: Option<(&SelectionRows, usize)>,
) -> Result<Vec<RawSeries>, ScanError> {
    scanner.check()?;
    let skip = |i: usize| misses(bounds.get(i).and_then(Option::as_deref), found);
    // (series id, index into `found`), sorted by id: the scan names a run's series by
    // its position here.
    let mut by_id = by_id(found);
    by_id.dedup_by_key(|x| x.0);
    let ids: Vec<u64> = by_id.iter().map(|x| x.0).collect();
    let mut floats: Vec<Vec<FPoint>> = vec![Vec::new(); found.len()];
    // Series with histogram rows keep every sample in arrival order until the end, so
    // that a later write of a timestamp wins across both kinds.
    let mut mixed: HashMap<usize, Vec<RawSample>> = HashMap::new();
    // A series usually has one run of rows per file plus one in the memtables.
    let runs_per_series = (snap.files.len() + usize::from(!snap.batches.is_empty())).max(1);
    let mut loaded = *loaded_total;
    let span = (start_ms, end_ms);
    // A chunk of a selection whose rows per file were looked up at once: the chunk's
    // ranges are read off those instead of looked up per id (see `SelectionRows`).
    let known = |file: usize, dir: &SeriesDirectory| {
        let (all, offset) = rows?;
        all.chunk_ranges(file, dir, offset, &by_id)
    };
    let res = scanner.scan_series_in(
        snap,
        &ids,
        (start_ms, end_ms),
        &["value", "histogram"],
        rows.is_some().then_some(&known as &runs::KnownRanges<'_>),
        &skip,
        &mut |b, runs| {
            let Some(ts_vals) = b
                .column_by_name("timestamp")
                .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
                .map(|c| c.values())
            else {
                return Err(ScanError::Storage("metrics batch lacks timestamps".into()));
            };
            let values = b
                .column_by_name("value")
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>());
            let hists = b
                .column_by_name("histogram")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .filter(|h| h.null_count() < h.len());
            let n = b.num_rows().min(ts_vals.len());
            // Float-only batches without nulls (the usual case) take the short loop.
            let plain = values.filter(|v| hists.is_none() && v.null_count() == 0);
            let mut row = 0usize;
            for run in runs {
                let rows = row..(row + run.rows).min(n);
                row = rows.end;
                let Some(&(_, idx)) = run.series.and_then(|k| by_id.get(k)) else {
                    continue;
                };
                if let Some(v) = plain
                    && !mixed.contains_key(&idx)
                {
                    let Some(series) = floats.get_mut(idx) else {
                        continue;
                    };
                    let before = series.len();
                    let vals = v.values();
                    let (ts, fs) = (
                        ts_vals.get(rows.clone()).unwrap_or(&[]),
                        vals.get(rows.clone()).unwrap_or(&[]),
                    );
                    // Rows outside the range usually sit at the run's ends (a run is a
                    // series' rows of one file, in time order): trim them, then copy the
                    // middle at once when it is all in range.
                    let lo = ts.iter().take_while(|&&t| t < start_ms).count();
                    let hi = ts.len()
                        - ts.get(lo..)
                            .unwrap_or(&[])
                            .iter()
                            .rev()
                            .take_while(|&&t| t > end_ms)
                            .count();
                    let (mid_t, mid_f) =
                        (ts.get(lo..hi).unwrap_or(&[]), fs.get(lo..hi).unwrap_or(&[]));
                    // Sized once for the whole range rather than regrown per file.
                    if series.capacity() == 0 {
                        series.reserve_exact(expected_points(mid_t, span, runs_per_series));
                    }
                    if ts.len() == fs.len()
                        && ts.len() == rows.len()
                        && mid_t.iter().all(|&t| t >= start_ms && t <= end_ms)
                    {
                        // The usual case: a copy of known length.
                        series.extend(mid_t.iter().zip(mid_f).map(|(&t, &f)| FPoint { t, f }));
                    } else {
                        series.extend(rows.filter_map(|r| {
                            let t = ts_vals[r];
                            (t >= start_ms && t <= end_ms).then(|| FPoint { t, f: vals[r] })
                        }));
                    }
                    loaded += series.len() - before;
                } else {
                    for r in rows {
                        let t = ts_vals[r];
                        if t < start_ms || t > end_ms {
                            continue;
                        }
                        let value = match (values, hists) {
                            (_, Some(h)) if h.is_valid(r) => {
                                let nh: NativeHistogram = serde_json::from_str(h.value(r))
                                    .map_err(|e| storage_err(format!("bad histogram row: {e}")))?;
                                SampleValue::Histogram(Arc::new(float_histogram(nh)))
                            }
                            (Some(v), _) if v.is_valid(r) => SampleValue::Float(v.value(r)),
                            _ => continue,
                        };
                        let kept = match (&value, mixed.get_mut(&idx)) {
                            (_, Some(m)) => m,
                            (SampleValue::Float(f), None) => {
                                if let Some(series) = floats.get_mut(idx) {
                                    series.push(FPoint { t, f: *f });
                                }
                                loaded += 1;
                                continue;
                            }
                            (SampleValue::Histogram(_), None) => {
                                // The floats so far arrived first.
                                let earlier = floats.get_mut(idx).map(std::mem::take);
                                mixed.entry(idx).or_insert_with(|| {
                                    earlier
                                        .unwrap_or_default()
                                        .into_iter()
                                        .map(|p| RawSample {
                                            t: p.t,
                                            value: SampleValue::Float(p.f),
                                        })
                                        .collect()
                                })
                            }
                        };
                        kept.push(RawSample { t, value });
                        loaded += 1;
                    }
                }
                if loaded > max_samples {
                    return Err(Limit::TooManySamples.into());
                }
            }
            Ok(())
        },
    );
    *loaded_total = loaded;
    res?;
    let mut out = Vec::new();
    for (i, ((_, labels), f)) in found.iter().zip(floats).enumerate() {
        let series = match mixed.remove(&i) {
            Some(samples) => RawSeries::from_samples(labels.clone(), latest_per_time(samples)),
            None if f.is_empty() => continue,
            None => {
                // Runs arrive in time order (files come by time window, see
                // `Snapshot::files`) unless files overlap in time (late writes into a
                // window, files of older versions) or the memtables hold older times;
                // then they are merged, a later duplicate of a timestamp winning.
                let f = merge::merge_runs(f);
                RawSeries {
                    labels: labels.clone(),
                    floats: f,
                    histograms: Vec::new(),
                }
            }
        };
        out.push(series);
    }
    Ok(out)
}

/// Points a series is expected to have in `[start_ms, end_ms]`, from the timestamps of
/// its first run's points in that range (`kept`, sorted): the range at the run's sampling
/// interval, at least the run and at most one such run per file (`runs`). An instant
/// query keeps a few points of each run: reserving the untrimmed runs of every file
/// instead allocated ~50 times the points kept.
fn expected_points(kept: &[i64], (start_ms, end_ms): (i64, i64), runs: usize) -> usize {
    let n = kept.len();
    let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
        return 0;
    };
    let most = n.saturating_mul(runs.max(1));
    if n < 2 || last <= first {
        return n.min(most);
    }
    // Intervals in the range at the run's average interval, plus one point.
    let span = (end_ms.saturating_sub(start_ms)) as f64;
    let interval = (last - first) as f64 / (n - 1) as f64;
    let want = ((span / interval).ceil() as usize).saturating_add(1);
    want.clamp(n, most)
}

/// Samples in arrival order sorted by time, keeping the last arrival of a timestamp.
fn latest_per_time(mut s: Vec<RawSample>) -> Vec<RawSample> {
    if s.is_sorted_by(|a, b| a.t < b.t) {
        return s;
    }
    s.sort_by_key(|x| x.t);
    let mut deduped: Vec<RawSample> = Vec::with_capacity(s.len());
    for x in s {
        match deduped.last_mut() {
            Some(last) if last.t == x.t => *last = x,
            _ => deduped.push(x),
        }
    }
    deduped
}

/// Converts storage labels to the engine's.
pub fn engine_labels(l: &strata_storage::model::Labels) -> strata_promql::Labels {
    strata_promql::Labels::from_pairs(l.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

impl SeriesSource for StorageSource {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RawSeries>, SourceError> {
        self.select_inner(matchers, start_ms, end_ms)
            .map_err(|e| self.source_error(e))
    }

    fn select_chunked<'a>(
        &'a self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Box<dyn SeriesChunks + 'a>, SourceError> {
        let found = self.matching(matchers).map_err(|e| self.source_error(e))?;
        Ok(Box::new(StorageChunks::new(self, found, start_ms, end_ms)))
    }
}

#[cfg(test)]
mod in_time_tests {
    use super::*;

    fn group(first_row: u64, rows: u64, lo: i64, hi: i64) -> GroupTimes {
        GroupTimes {
            first_row,
            rows,
            min_max: Some((lo, hi)),
        }
    }

    #[test]
    fn ranges_are_cut_to_the_row_groups_overlapping_the_time_range() {
        // Two slabs: rows 0..100 at times 0..=99 (groups of 60 and 40 rows), rows
        // 100..200 at times 100..=199 (one group), then a group without statistics.
        let groups = [
            group(0, 60, 0, 60),
            group(60, 40, 40, 99),
            group(100, 100, 100, 199),
            GroupTimes {
                first_row: 200,
                rows: 10,
                min_max: None,
            },
        ];
        // Series 0: rows 0..50 and 100..150; series 1: rows 50..100 (across the first two
        // groups) and 150..200; series 2: rows 200..210.
        let ranges = vec![
            (0, 50, 0),
            (50, 50, 1),
            (100, 50, 0),
            (150, 50, 1),
            (200, 10, 2),
        ];
        // Everything overlaps: the ranges come back as they are.
        assert_eq!(in_time(&groups, ranges.clone(), (0, 500)), ranges);
        // Only the second slab (and the group without statistics) may hold 150..=160.
        assert_eq!(
            in_time(&groups, ranges.clone(), (150, 160)),
            vec![(100, 50, 0), (150, 50, 1), (200, 10, 2)]
        );
        // 70..=80 lies in the first slab's second group only: series 1's range is cut to
        // its rows in that group.
        assert_eq!(
            in_time(&groups, ranges.clone(), (70, 80)),
            vec![(60, 40, 1), (200, 10, 2)]
        );
        // A range spanning kept, dropped and kept groups splits into two pieces.
        let groups = [
            group(0, 10, 0, 9),
            group(10, 10, 50, 59),
            group(20, 10, 5, 9),
        ];
        assert_eq!(
            in_time(&groups, vec![(0, 30, 4)], (0, 9)),
            vec![(0, 10, 4), (20, 10, 4)]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_reserves_its_expected_points_in_the_range() {
        let at = |n: i64, from: i64| (0..n).map(|i| from + i * 15_000).collect::<Vec<i64>>();
        // An instant `[5m]` window: 20 points of a file's run are all the series keeps,
        // whatever the number of files.
        assert_eq!(expected_points(&at(20, 15_000), (0, 300_000), 9), 21);
        // A 3 h range whose first file holds 20 minutes: the range at 15 s, at most one
        // such run per file.
        assert_eq!(expected_points(&at(80, 0), (0, 3 * 3600 * 1000), 9), 720);
        assert_eq!(expected_points(&at(80, 0), (0, 3 * 3600 * 1000), 4), 320);
        // Nothing or one point in range: no guess beyond it.
        assert_eq!(expected_points(&[], (0, 1000), 9), 0);
        assert_eq!(expected_points(&[5], (0, 1000), 9), 1);
        assert_eq!(expected_points(&[5, 5], (0, 1000), 9), 2);
    }

    /// A file is skipped only when no selected series' label set lies within its first
    /// and last series'.
    #[test]
    fn files_are_skipped_by_their_series_range() {
        let l = |v: &str| Labels::from_pairs([("__name__", "m"), ("i", v)]);
        let found: Vec<(u64, Labels)> = ["b", "d", "f"]
            .iter()
            .enumerate()
            .map(|(k, v)| (k as u64, l(v)))
            .collect();
        let range = |lo: &str, hi: &str| Some((l(lo), l(hi)));
        // No range known: read.
        assert!(!misses(None, &found));
        for (lo, hi, missed) in [
            ("a", "a", true),
            ("a", "b", false),
            ("b", "b", false),
            ("c", "c", true),
            ("c", "e", false),
            ("e", "ez", true),
            ("f", "z", false),
            ("g", "z", true),
            ("a", "z", false),
        ] {
            assert_eq!(misses(range(lo, hi).as_ref(), &found), missed, "{lo}..{hi}");
        }
        assert!(misses(range("a", "z").as_ref(), &[]));
    }

    /// A chunk's ranges read off the selection's rows agree with looking the chunk's ids
    /// up in the directory, for chunks anywhere in the selection and series missing from
    /// the file.
    #[test]
    fn selection_rows_give_a_chunk_the_directory_ranges() {
        // A file of 5,000 series (ids scattered like hashes), each with 1 to 7 rows, laid
        // out in an order unrelated to the ids; every 7th selected series is not in it.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let ids: Vec<u64> = (0..5000).map(|_| rand()).collect();
        let mut entries = Vec::new();
        let mut row = 0u64;
        for &id in ids.iter().rev() {
            let count = 1 + rand() % 7;
            entries.push((id, row, count));
            row += count;
        }
        entries.sort_unstable();
        let dir = SeriesDirectory::new(entries);
        // The selection: every other series of the file plus absent ones, in an order of
        // its own (as label order would be).
        let mut found: Vec<(u64, Labels)> = ids
            .iter()
            .step_by(2)
            .enumerate()
            .map(|(i, &id)| (if i % 7 == 0 { id ^ 1 } else { id }, Labels::empty()))
            .collect();
        found.sort_by_key(|(id, _)| id.rotate_left(17));
        let rows = SelectionRows::new(&found, 3).expect("small selection");
        for (start, len) in [(0, 1), (0, 256), (100, 900), (2000, 500), (2400, 100)] {
            let part = &found[start..start + len];
            let mut by_id: Vec<(u64, usize)> = part
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (*id, i))
                .collect();
            by_id.sort_unstable();
            let chunk_ids: Vec<u64> = by_id.iter().map(|x| x.0).collect();
            let want = directory_ranges(&dir, &chunk_ids, &mut Vec::new());
            let got = rows.chunk_ranges(1, &dir, start, &by_id);
            assert_eq!(got.as_ref(), Some(&want), "chunk {start}+{len}");
            assert!(len == 1 || want.len() > len / 2, "chunk {start}+{len}");
        }
        // A file index past the snapshot's files has no precomputed rows.
        assert!(rows.chunk_ranges(3, &dir, 0, &[]).is_none());
        // Too large a selection is looked up chunk by chunk instead.
        assert!(SelectionRows::new(&found, MAX_SELECTION_ROWS).is_none());
    }
}
