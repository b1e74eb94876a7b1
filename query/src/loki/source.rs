//! Reading log streams out of storage for the LogQL engine and the metadata endpoints.
//!
//! [`LogReader`] works for one tenant: stream matchers are resolved on the roaring stream
//! index, then the rows of those stream ids and the time range are read from Parquet files
//! (pruned by the catalog's time range, row-group statistics on `stream_id` and `timestamp`,
//! the [token index](strata_storage::token_index) for `|=` needles, and `stream_id` page
//! statistics; only the needed columns) and from the memtables. Before a single data page is
//! read, the compressed size of everything the plan would read is checked against the
//! bytes limit, so an over-large query fails at once with a clear error.
//!
//! Structured metadata (usable in LogQL as labels, never index keys) is built the way Loki's
//! OTLP ingestion names it: log attributes, resource attributes that are not stream labels,
//! scope attributes, `scope_name`, `scope_version`, `trace_id`, `span_id`, `severity_text`,
//! `severity_number`, `detected_level` and `flags`; every name with characters outside
//! `[a-zA-Z0-9_]` replaced by `_`, nested objects flattened with `_`.
//!
//! Everything here is synchronous: callers run it inside `spawn_blocking`.

use crate::pruning::{keep_row_groups, page_selection};
use datafusion::arrow::array::{Array, AsArray, Int32Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::datatypes::{TimestampNanosecondType, UInt64Type};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
use strata_storage::index::LabelMatcher;
use strata_storage::model::{Labels, Signal, label_name, severity_level};
use strata_storage::token_index::{self, Needles, TokenIndex};
use strata_storage::{Storage, TenantId};

/// Why a read stopped before it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadLimit {
    /// The query would read more bytes than allowed.
    TooManyBytes { would_read: u64, limit: u64 },
    /// The deadline passed.
    Timeout,
    /// The client went away.
    Canceled,
}

/// Bytes in Loki's human form (`12 GB`, `1.5 MB`).
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

impl std::fmt::Display for ReadLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadLimit::TooManyBytes { would_read, limit } => write!(
                f,
                "the query would read too many bytes (query: {}, limit: {}); consider adding more specific stream selectors or reduce the time range of the query",
                human_bytes(*would_read),
                human_bytes(*limit)
            ),
            ReadLimit::Timeout => f.write_str("query timed out"),
            ReadLimit::Canceled => f.write_str("query was canceled"),
        }
    }
}

/// A failed read.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// A limit, the deadline or cancellation stopped the read.
    Limit(ReadLimit),
    /// Storage could not be read; the text is for logs, not clients.
    Storage(String),
}

impl From<ReadLimit> for ReadError {
    fn from(l: ReadLimit) -> Self {
        ReadError::Limit(l)
    }
}

fn storage_err(e: impl std::fmt::Display) -> ReadError {
    ReadError::Storage(e.to_string())
}

/// An error reading the data file errors call `name` (relative to the data directory,
/// [`crate::footer::data_file_name`]).
fn file_err(name: &str, e: impl std::fmt::Display) -> ReadError {
    ReadError::Storage(crate::guard::file_error(name, e))
}

/// A decoder call on the data file errors call `name` (loading its footer, building its
/// reader, decoding its next batch), guarded ([`crate::guard`]): its error, and a panic
/// in it on a damaged page, is an error naming the file.
fn decode<T, E: std::fmt::Display>(
    name: &str,
    call: impl FnOnce() -> Result<T, E>,
) -> Result<T, ReadError> {
    crate::guard::decode_file(name, call).map_err(ReadError::Storage)
}

/// Counters of what a reader did, reported in a query's `stats`.
#[derive(Debug, Default)]
pub struct ReadStats {
    pub files: AtomicU64,
    pub row_groups: AtomicU64,
    /// Row groups skipped by time or stream statistics.
    pub row_groups_pruned: AtomicU64,
    /// Row groups skipped by the token index.
    pub row_groups_token_skipped: AtomicU64,
    pub row_groups_read: AtomicU64,
    /// Compressed bytes of the column chunks read from files, token index sidecars included.
    pub file_bytes_read: AtomicU64,
    /// Bytes of token index sidecars read.
    pub token_index_bytes_read: AtomicU64,
    /// Compressed bytes of every column chunk of the files the time range touched.
    pub file_bytes_total: AtomicU64,
    /// Rows read (files and memtables) that belong to the selected streams and range.
    pub lines: AtomicU64,
    /// Bytes of those rows' bodies.
    pub line_bytes: AtomicU64,
    /// Rows read from memtables.
    pub memtable_lines: AtomicU64,
}

impl ReadStats {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// A snapshot as JSON, for the `stats` object of query answers.
    pub fn to_json(&self) -> Json {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "files": g(&self.files),
            "rowGroups": g(&self.row_groups),
            "rowGroupsPruned": g(&self.row_groups_pruned),
            "rowGroupsSkippedByTokenIndex": g(&self.row_groups_token_skipped),
            "rowGroupsRead": g(&self.row_groups_read),
            "fileBytesRead": g(&self.file_bytes_read),
            "tokenIndexBytesRead": g(&self.token_index_bytes_read),
            "fileBytesTotal": g(&self.file_bytes_total),
            "lines": g(&self.lines),
            "lineBytes": g(&self.line_bytes),
            "memtableLines": g(&self.memtable_lines),
        })
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// One log entry read from storage.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadEntry {
    pub ts_ns: i64,
    pub line: String,
    /// Structured metadata, sorted by name.
    pub metadata: Vec<(String, String)>,
}

/// One stream's entries in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadStream {
    pub labels: Labels,
    pub entries: Vec<ReadEntry>,
}

/// Per-stream counts for the label browser, `index/stats` and `index/volume`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamStat {
    pub entries: u64,
    /// Body bytes: exact for memtable rows, for files the row group's uncompressed body
    /// size shared evenly over its rows.
    pub bytes: u64,
    /// Row groups and memtable batches holding the stream's rows.
    pub chunks: u64,
}

/// What of each entry [`LogReader::select_each`] reads besides its timestamp.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The line; without it entries come back with empty lines.
    pub body: bool,
    /// When set, the only label names the caller uses: structured metadata is not read
    /// when every selected stream has a label of each of these names.
    pub label_names: Option<&'a std::collections::HashSet<String>>,
}

/// Reads one tenant's logs; see the module docs.
pub struct LogReader {
    storage: Storage,
    tenant: TenantId,
    deadline: Option<Instant>,
    cancel: Arc<AtomicBool>,
    max_bytes: u64,
    pub stats: ReadStats,
}

const META_COLUMNS: &[&str] = &[
    "attributes",
    "resource_attributes",
    "scope_name",
    "scope_version",
    "scope_attributes",
    "trace_id",
    "span_id",
    "severity_text",
    "severity_number",
    "flags",
];

/// What a scan calls per batch: the rows, and for file rows the estimated body bytes per row.
type BatchFn<'a> = dyn FnMut(&RecordBatch, Option<u64>) -> Result<(), ReadError> + 'a;

/// One file's read plan.
struct FilePlan {
    /// The file as errors name it.
    name: String,
    builder: ParquetRecordBatchReaderBuilder<std::fs::File>,
    keep: Vec<usize>,
    selection: Option<RowSelection>,
    mask: ProjectionMask,
}

impl LogReader {
    /// A reader that stops at `deadline`, once `cancel` is set, or before reading more than
    /// `max_bytes` compressed bytes from files (0: unlimited).
    pub fn new(
        storage: Storage,
        tenant: TenantId,
        deadline: Option<Instant>,
        cancel: Arc<AtomicBool>,
        max_bytes: u64,
    ) -> Self {
        LogReader {
            storage,
            tenant,
            deadline,
            cancel,
            max_bytes,
            stats: ReadStats::default(),
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Fails once the deadline passed or the request was canceled.
    pub fn check(&self) -> Result<(), ReadLimit> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(ReadLimit::Canceled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ReadLimit::Timeout);
        }
        Ok(())
    }

    /// The streams matching every matcher, by id.
    pub fn streams(&self, matchers: &[LabelMatcher]) -> HashMap<u64, Labels> {
        self.storage
            .select_labels(&self.tenant, Signal::Logs, matchers)
            .into_iter()
            .map(|(id, l)| (id.0, l))
            .collect()
    }

    /// Plans the reads of every file overlapping `[start_ns, end_ns)`.
    fn plan(
        &self,
        ids: &[u64],
        start_ns: i64,
        end_ns: i64,
        needles: &Needles,
        columns: &[&str],
    ) -> Result<(Vec<FilePlan>, Vec<RecordBatch>), ReadError> {
        let snap = self.storage.snapshot(
            &self.tenant,
            Signal::Logs,
            start_ns,
            end_ns.saturating_sub(1),
        );
        let mut plans = Vec::new();
        let mut planned_bytes = 0u64;
        for file in &snap.files {
            self.check()?;
            ReadStats::add(&self.stats.files, 1);
            let path = snap.files_root.join(&file.path);
            if let Some(p) = self.plan_file(
                &path,
                ids,
                start_ns,
                end_ns,
                needles,
                columns,
                &mut planned_bytes,
            )? {
                plans.push(p);
            }
        }
        if self.max_bytes > 0 && planned_bytes > self.max_bytes {
            return Err(ReadLimit::TooManyBytes {
                would_read: planned_bytes,
                limit: self.max_bytes,
            }
            .into());
        }
        Ok((plans, snap.batches))
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_file(
        &self,
        path: &Path,
        ids: &[u64],
        start_ns: i64,
        end_ns: i64,
        needles: &Needles,
        columns: &[&str],
        planned_bytes: &mut u64,
    ) -> Result<Option<FilePlan>, ReadError> {
        let name = crate::footer::data_file_name(self.storage.data_dir(), path);
        let file = std::fs::File::open(path).map_err(|e| file_err(&name, e))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let builder = decode(&name, || {
            ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        })?;
        let meta = builder.metadata().clone();
        let schema = builder.schema().clone();
        let pschema = builder.parquet_schema();
        let id_stats =
            StatisticsConverter::try_new("stream_id", &schema, pschema).map_err(storage_err)?;
        let ts_stats =
            StatisticsConverter::try_new("timestamp", &schema, pschema).map_err(storage_err)?;
        let candidates = keep_row_groups::<TimestampNanosecondType>(
            &meta,
            &id_stats,
            &ts_stats,
            ids,
            start_ns,
            end_ns.saturating_sub(1),
        )
        .map_err(storage_err)?;
        let rgs = meta.row_groups();
        ReadStats::add(&self.stats.row_groups, rgs.len() as u64);
        ReadStats::add(
            &self.stats.row_groups_pruned,
            (rgs.len() - candidates.len()) as u64,
        );
        ReadStats::add(
            &self.stats.file_bytes_total,
            rgs.iter().map(|r| r.compressed_size() as u64).sum(),
        );
        let mut keep = candidates;
        if !needles.is_empty() && !keep.is_empty() {
            let sidecar = token_index::sidecar_path(&path.to_string_lossy());
            let bytes = std::fs::read(&sidecar).ok();
            let read = bytes.as_ref().map_or(0, |b| b.len() as u64);
            ReadStats::add(&self.stats.file_bytes_read, read);
            ReadStats::add(&self.stats.token_index_bytes_read, read);
            if let Some(index) = bytes.and_then(|b| TokenIndex::decode(&b)) {
                let mut first_rows = Vec::with_capacity(rgs.len());
                let mut row = 0u64;
                for rg in rgs {
                    first_rows.push(row);
                    row += rg.num_rows() as u64;
                }
                let before = keep.len();
                keep.retain(|i| {
                    index.may_match(first_rows[*i], rgs[*i].num_rows() as u64, needles)
                });
                let skipped = (before - keep.len()) as u64;
                ReadStats::add(&self.stats.row_groups_token_skipped, skipped);
                token_index::ROW_GROUPS_SKIPPED.add(skipped);
                token_index::ROW_GROUPS_READ.add(keep.len() as u64);
            }
        }
        if keep.is_empty() {
            return Ok(None);
        }
        let leaves = crate::footer::leaves_where(pschema, |root| columns.contains(&root));
        let bytes: u64 = keep
            .iter()
            .map(|rg| {
                leaves
                    .iter()
                    .map(|c| rgs[*rg].column(*c).compressed_size() as u64)
                    .sum::<u64>()
            })
            .sum();
        *planned_bytes += bytes;
        ReadStats::add(&self.stats.file_bytes_read, bytes);
        ReadStats::add(&self.stats.row_groups_read, keep.len() as u64);
        let selection = page_selection(&meta, &id_stats, &keep, ids);
        let mask = ProjectionMask::leaves(pschema, leaves);
        Ok(Some(FilePlan {
            name,
            builder,
            keep,
            selection,
            mask,
        }))
    }

    /// Calls `f` with batches holding exactly the rows of `ids` (sorted) in
    /// `[start_ns, end_ns)`, projected to `columns` (which must include `stream_id` and
    /// `timestamp`); the flag says whether the batch came from a file row group.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        ids: &[u64],
        start_ns: i64,
        end_ns: i64,
        needles: &Needles,
        columns: &[&str],
        mem_columns: &[&str],
        f: &mut BatchFn<'_>,
    ) -> Result<(), ReadError> {
        if ids.is_empty() || end_ns <= start_ns {
            return Ok(());
        }
        let (plans, batches) = self.plan(ids, start_ns, end_ns, needles, columns)?;
        for plan in plans {
            self.check()?;
            let FilePlan {
                name,
                builder,
                keep,
                selection,
                mask,
            } = plan;
            let meta = builder.metadata().clone();
            let body_idx = meta
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .position(|c| c.path().parts().first().is_some_and(|r| r == "body"));
            // Average uncompressed body bytes per row of the kept row groups, for estimates.
            let (rows, body_bytes) = keep.iter().fold((0u64, 0u64), |(r, b), rg| {
                let g = meta.row_group(*rg);
                let bb = body_idx.map_or(0, |c| g.column(c).uncompressed_size() as u64);
                (r + g.num_rows() as u64, b + bb)
            });
            let per_row = body_bytes.checked_div(rows).unwrap_or(0);
            let mut builder = builder
                .with_row_groups(keep)
                .with_projection(mask)
                .with_batch_size(16 * 1024);
            if let Some(sel) = selection {
                builder = builder.with_row_selection(sel);
            }
            // Only the decoder's calls are guarded: a panic of ours is not a damaged file.
            let mut reader = decode(&name, || builder.build())?;
            loop {
                self.check()?;
                let Some(batch) = decode(&name, || reader.next().transpose())? else {
                    break;
                };
                if let Some(b) = keep_rows(&batch, ids, start_ns, end_ns)? {
                    f(&b, Some(per_row))?;
                }
            }
        }
        for batch in &batches {
            self.check()?;
            let indices: Vec<usize> = mem_columns
                .iter()
                .filter_map(|c| batch.schema().index_of(c).ok())
                .collect();
            let projected = batch.project(&indices).map_err(storage_err)?;
            if let Some(b) = keep_rows(&projected, ids, start_ns, end_ns)? {
                ReadStats::add(&self.stats.memtable_lines, b.num_rows() as u64);
                f(&b, None)?;
            }
        }
        Ok(())
    }

    /// The entries of the streams matching `matchers` in `[start_ns, end_ns)`. `needles`
    /// are substrings every wanted line contains: lines without them are not returned (the
    /// query's `|=` filters, which the engine applies again); `with_metadata` builds each entry's structured metadata.
    pub fn select(
        &self,
        matchers: &[LabelMatcher],
        start_ns: i64,
        end_ns: i64,
        needles: &[String],
        with_metadata: bool,
    ) -> Result<Vec<ReadStream>, ReadError> {
        self.check()?;
        let streams = self.streams(matchers);
        let mut ids: Vec<u64> = streams.keys().copied().collect();
        ids.sort_unstable();
        let raw_needles = needles;
        let needles = Needles::new(needles);
        let mut cols = vec!["stream_id", "timestamp", "body"];
        if with_metadata {
            cols.extend_from_slice(META_COLUMNS);
        }
        let mut out: HashMap<u64, Vec<ReadEntry>> = HashMap::new();
        let mut meta_cache = MetadataCache::default();
        self.scan(
            &ids,
            start_ns,
            end_ns,
            &needles,
            &cols,
            &cols,
            &mut |b, _| {
                self.collect_rows(
                    b,
                    &streams,
                    with_metadata,
                    raw_needles,
                    &mut meta_cache,
                    &mut out,
                )
            },
        )?;
        Ok(into_streams(out, &streams))
    }

    /// Like [`Self::select`], but hands the entries to `f` a batch at a time (up to 16k rows
    /// of one file row group or memtable batch), one [`ReadStream`] per stream in the batch,
    /// in label order, entries in time order; a stream comes back once per batch holding
    /// it. Only one batch is held at once. Stops early once `f` returns false.
    pub fn select_each(
        &self,
        matchers: &[LabelMatcher],
        start_ns: i64,
        end_ns: i64,
        needles: &[String],
        wanted: Wanted<'_>,
        f: &mut dyn FnMut(ReadStream) -> bool,
    ) -> Result<(), ReadError> {
        self.check()?;
        let streams = self.streams(matchers);
        let mut ids: Vec<u64> = streams.keys().copied().collect();
        ids.sort_unstable();
        let raw_needles = needles;
        let needles = Needles::new(needles);
        let mut cols = vec!["stream_id", "timestamp"];
        if wanted.body {
            cols.push("body");
        }
        // Metadata is left out only when every stream has a label of each wanted name.
        let with_metadata = wanted.label_names.is_none_or(|names| {
            !names
                .iter()
                .all(|n| streams.values().all(|l| l.get(n).is_some()))
        });
        if with_metadata {
            cols.extend_from_slice(META_COLUMNS);
        }
        let mut meta_cache = MetadataCache::default();
        let mut stopped = false;
        let res = self.scan(
            &ids,
            start_ns,
            end_ns,
            &needles,
            &cols,
            &cols,
            &mut |b, _| {
                let mut out: HashMap<u64, Vec<ReadEntry>> = HashMap::new();
                self.collect_rows(
                    b,
                    &streams,
                    with_metadata,
                    raw_needles,
                    &mut meta_cache,
                    &mut out,
                )?;
                for s in into_streams(out, &streams) {
                    if !f(s) {
                        stopped = true;
                        // Any error ends the scan; this one is dropped below.
                        return Err(ReadLimit::Canceled.into());
                    }
                }
                Ok(())
            },
        );
        match res {
            Err(_) if stopped => Ok(()),
            other => other,
        }
    }

    /// The entries of one freshly written batch (every logs column, as
    /// [`Storage::subscribe_logs`] delivers it) that belong to `streams`, with their
    /// structured metadata; streams sorted by labels, entries by time.
    pub fn select_batch(
        &self,
        batch: &RecordBatch,
        streams: &HashMap<u64, Labels>,
    ) -> Result<Vec<ReadStream>, ReadError> {
        let mut ids: Vec<u64> = streams.keys().copied().collect();
        ids.sort_unstable();
        let mut out: HashMap<u64, Vec<ReadEntry>> = HashMap::new();
        if let Some(b) = keep_rows(batch, &ids, i64::MIN, i64::MAX)? {
            let mut cache = MetadataCache::default();
            self.collect_rows(&b, streams, true, &[], &mut cache, &mut out)?;
        }
        Ok(into_streams(out, streams))
    }

    /// Appends the rows of `b` (already restricted to wanted streams and times) to `out`;
    /// when the batch has lines, only those containing every one of `needles` (the `|=`
    /// filters the query applies anyway: no entry is built for a line they would drop).
    fn collect_rows(
        &self,
        b: &RecordBatch,
        streams: &HashMap<u64, Labels>,
        with_metadata: bool,
        needles: &[String],
        meta_cache: &mut MetadataCache,
        out: &mut HashMap<u64, Vec<ReadEntry>>,
    ) -> Result<(), ReadError> {
        let id_col = u64_col(b, "stream_id")?;
        let ts_col = b
            .column_by_name("timestamp")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or_else(|| storage_err("logs batch without timestamp"))?;
        let body = b
            .column_by_name("body")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let cols = if with_metadata {
            Some(MetaColumns::of(b)?)
        } else {
            None
        };
        let mut line_bytes = 0u64;
        for row in 0..b.num_rows() {
            let id = id_col.value(row);
            let line = body.map_or("", |b| b.value(row));
            line_bytes += line.len() as u64;
            if body.is_some() && !needles.iter().all(|n| line.contains(n.as_str())) {
                continue;
            }
            let metadata = match (&cols, streams.get(&id)) {
                (Some(c), Some(labels)) => c.metadata(row, labels, meta_cache),
                _ => Vec::new(),
            };
            out.entry(id).or_default().push(ReadEntry {
                ts_ns: ts_col.value(row),
                line: line.to_owned(),
                metadata,
            });
        }
        ReadStats::add(&self.stats.lines, b.num_rows() as u64);
        ReadStats::add(&self.stats.line_bytes, line_bytes);
        Ok(())
    }

    /// Per-stream entry counts and body bytes of the streams matching `matchers` that have
    /// rows in `[start_ns, end_ns)`; reads only the `stream_id` and `timestamp` columns.
    pub fn stream_stats(
        &self,
        matchers: &[LabelMatcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(Labels, StreamStat)>, ReadError> {
        self.check()?;
        let streams = self.streams(matchers);
        let mut ids: Vec<u64> = streams.keys().copied().collect();
        ids.sort_unstable();
        let mut stats: HashMap<u64, StreamStat> = HashMap::new();
        // Files: only the two index columns; memtables: the body too, for exact bytes.
        let cols = ["stream_id", "timestamp"];
        let mem_cols = ["stream_id", "timestamp", "body"];
        let none = Needles::default();
        self.scan(
            &ids,
            start_ns,
            end_ns,
            &none,
            &cols,
            &mem_cols,
            &mut |b, per_row| {
                let id_col = u64_col(b, "stream_id")?;
                let body = b
                    .column_by_name("body")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>());
                let mut seen: HashMap<u64, ()> = HashMap::new();
                for row in 0..b.num_rows() {
                    let id = id_col.value(row);
                    let s = stats.entry(id).or_default();
                    s.entries += 1;
                    s.bytes += match (per_row, body) {
                        (Some(p), _) => p,
                        (None, Some(body)) => body.value(row).len() as u64,
                        (None, None) => 0,
                    };
                    if seen.insert(id, ()).is_none() {
                        s.chunks += 1;
                    }
                }
                Ok(())
            },
        )?;
        let mut out: Vec<(Labels, StreamStat)> = stats
            .into_iter()
            .filter_map(|(id, s)| Some((streams.get(&id)?.clone(), s)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// Entries by stream id as streams sorted by labels, each stream's entries by time.
fn into_streams(
    out: HashMap<u64, Vec<ReadEntry>>,
    streams: &HashMap<u64, Labels>,
) -> Vec<ReadStream> {
    let mut result: Vec<ReadStream> = out
        .into_iter()
        .filter_map(|(id, mut entries)| {
            let labels = streams.get(&id)?.clone();
            entries.sort_by_key(|e| e.ts_ns);
            Some(ReadStream { labels, entries })
        })
        .collect();
    result.sort_by(|a, b| a.labels.cmp(&b.labels));
    result
}

fn u64_col<'a>(
    b: &'a RecordBatch,
    name: &str,
) -> Result<&'a datafusion::arrow::array::PrimitiveArray<UInt64Type>, ReadError> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .ok_or_else(|| storage_err(format!("logs batch without {name}")))
}

fn str_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ReadError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| storage_err(format!("logs batch without {name}")))
}

/// The metadata columns of a batch.
struct MetaColumns<'a> {
    attributes: &'a StringArray,
    resource: &'a StringArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
    scope_attributes: &'a StringArray,
    trace_id: &'a StringArray,
    span_id: &'a StringArray,
    severity_text: &'a StringArray,
    severity_number: Option<&'a Int32Array>,
    flags: Option<&'a UInt32Array>,
}

/// Parsed attribute maps, by their JSON text (resource and scope attributes repeat).
#[derive(Default)]
struct MetadataCache(HashMap<String, Arc<Vec<(String, String)>>>);

impl MetadataCache {
    fn get(&mut self, json: &str) -> Arc<Vec<(String, String)>> {
        if let Some(v) = self.0.get(json) {
            return v.clone();
        }
        let v = Arc::new(flatten_json(json));
        if self.0.len() < 10_000 {
            self.0.insert(json.to_owned(), v.clone());
        }
        v
    }
}

impl<'a> MetaColumns<'a> {
    fn of(b: &'a RecordBatch) -> Result<Self, ReadError> {
        Ok(MetaColumns {
            attributes: str_col(b, "attributes")?,
            resource: str_col(b, "resource_attributes")?,
            scope_name: str_col(b, "scope_name")?,
            scope_version: str_col(b, "scope_version")?,
            scope_attributes: str_col(b, "scope_attributes")?,
            trace_id: str_col(b, "trace_id")?,
            span_id: str_col(b, "span_id")?,
            severity_text: str_col(b, "severity_text")?,
            severity_number: b
                .column_by_name("severity_number")
                .and_then(|c| c.as_any().downcast_ref::<Int32Array>()),
            flags: b
                .column_by_name("flags")
                .and_then(|c| c.as_any().downcast_ref::<UInt32Array>()),
        })
    }

    fn metadata(
        &self,
        row: usize,
        stream: &Labels,
        cache: &mut MetadataCache,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in cache.get(self.resource.value(row)).iter() {
            if stream.get(k).is_none() {
                out.push((k.clone(), v.clone()));
            }
        }
        out.extend(cache.get(self.scope_attributes.value(row)).iter().cloned());
        out.extend(flatten_json(self.attributes.value(row)));
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                out.push((k.to_owned(), v.to_owned()));
            }
        };
        put("scope_name", self.scope_name.value(row));
        put("scope_version", self.scope_version.value(row));
        put("trace_id", self.trace_id.value(row));
        put("span_id", self.span_id.value(row));
        let text = self.severity_text.value(row);
        put("severity_text", text);
        let number = self.severity_number.map_or(0, |c| c.value(row));
        if number != 0 {
            put("severity_number", &number.to_string());
        }
        if number != 0 || !text.is_empty() {
            put("detected_level", &severity_level(number, text));
        }
        let flags = self.flags.map_or(0, |c| c.value(row));
        if flags != 0 {
            put("flags", &flags.to_string());
        }
        // A later source wins a name clash (log attributes over resource ones), as in Loki.
        let mut dedup: Vec<(String, String)> = Vec::with_capacity(out.len());
        for (k, v) in out.into_iter().rev() {
            if !dedup.iter().any(|(d, _)| *d == k) {
                dedup.push((k, v));
            }
        }
        dedup.sort();
        dedup
    }
}

/// Flattens a JSON object of attributes into label-like pairs: nested objects joined with
/// `_`, strings as they are, other values as JSON.
pub fn flatten_json(json: &str) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Json, out: &mut Vec<(String, String)>) {
        match v {
            Json::Object(m) => {
                for (k, v) in m {
                    let name = if prefix.is_empty() {
                        label_name(k)
                    } else {
                        format!("{prefix}_{}", label_name(k))
                    };
                    walk(&name, v, out);
                }
            }
            Json::String(s) => out.push((prefix.to_owned(), s.clone())),
            Json::Null => {}
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    if json.is_empty() || json == "{}" {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Ok(v @ Json::Object(_)) = serde_json::from_str::<Json>(json) {
        walk("", &v, &mut out);
    }
    out
}

/// Whether any of the sorted `ids` lies in `[lo, hi]`.
/// The rows of `batch` with a wanted id and time, or `None` when there are none.
fn keep_rows(
    batch: &RecordBatch,
    ids: &[u64],
    start_ns: i64,
    end_ns: i64,
) -> Result<Option<RecordBatch>, ReadError> {
    let id_col = u64_col(batch, "stream_id")?;
    let ts_col = batch
        .column_by_name("timestamp")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| storage_err("logs batch without timestamp"))?;
    let mask: datafusion::arrow::array::BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let t = ts_col.value(i);
            Some(t >= start_ns && t < end_ns && ids.binary_search(&id_col.value(i)).is_ok())
        })
        .collect();
    match mask.true_count() {
        0 => Ok(None),
        n if n == batch.num_rows() => Ok(Some(batch.clone())),
        _ => datafusion::arrow::compute::filter_record_batch(batch, &mask)
            .map(Some)
            .map_err(storage_err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_attributes_like_loki() {
        let got =
            flatten_json(r#"{"http.method":"GET","n":3,"ok":true,"user":{"id":"u1"},"z":null}"#);
        assert_eq!(
            got,
            vec![
                ("http_method".to_owned(), "GET".to_owned()),
                ("n".to_owned(), "3".to_owned()),
                ("ok".to_owned(), "true".to_owned()),
                ("user_id".to_owned(), "u1".to_owned()),
            ]
        );
        assert!(flatten_json("{}").is_empty());
        assert!(flatten_json("not json").is_empty());
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_300_000_000), "12.3 GB");
    }
}
