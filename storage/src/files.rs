//! Parquet files: encoding choices, writing sorted zstd files through the object store,
//! and reading them back.
//!
//! The object store's local backend does not fsync; for local storage we fsync the file and
//! its directory ourselves before the catalog may name it.
//!
//! Metrics file layout (flushes and compactions with the label index at hand):
//!
//! - Rows are grouped in **time slabs** ([`TimeSlabs`]): 15-minute UTC windows, consecutive
//!   windows merged until a slab holds at least `storage.metric_slab_rows` rows (so sparse
//!   data keeps one slab). The default, 0, makes each file one slab (measured: slabs cost
//!   range queries ~5% CPU on the PromQL benchmark without a measurable instant-query gain).
//!   Each slab is its own row groups (the writer closes a row group at every slab end), so
//!   row groups' `timestamp` statistics cover one slab.
//! - Within a slab, rows are sorted by series rank (label-set order), then time, then
//!   arrival (a rewritten timestamp's later row comes last; readers keep the last).
//! - The footer's series directory ([`SERIES_DIRECTORY_KEY`]) has one entry per series and
//!   slab: (id, first row, rows), sorted by id then first row. The storage engine (start-up
//!   indexing, compaction) uses it only through [`SeriesRuns`], once checked to cover every
//!   row of the file exactly once, and reads the `series_id` column otherwise.
//! - Readers cut each series' directory ranges to the row groups whose timestamps overlap
//!   the query, so an instant query or a short range decodes one slab of a file rather than
//!   every row of its series.
//!
//! Files written before slabs (one directory entry per series, row groups spanning the
//! file's whole time range) read the same way: their row groups all overlap and nothing is
//! cut. Files without a directory (sorted by `series_id`) are pruned by statistics.

use crate::error::{Error, Result};
use crate::model::Signal;
use crate::schema::{schema, sort_columns};
use crate::wal::sync_dir;
use bytes::Bytes;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::compute::{SortColumn, concat, interleave_record_batch, lexsort_to_indices};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{
    DataType, Int64Type, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt64Type,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::metadata::{FileMetaData, KeyValue, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::reader::ChunkReader;
use datafusion::parquet::schema::types::ColumnPath;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per Parquet row group: small enough that a trace-id or series lookup skips most of
/// a file, large enough for good compression.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows per data page of metrics files (see `writer_properties`).
const METRIC_PAGE_ROWS: usize = 4096;

/// Rows per data page of spans files (see `writer_properties`): a trace-by-id lookup
/// decodes one page per column, and each page costs a header and page-index entries.
const SPAN_PAGE_ROWS: usize = 1024;

/// Where data files live: an object store plus, for local storage, its root directory.
#[derive(Clone)]
pub struct FileStore {
    store: Arc<dyn ObjectStore>,
    root: PathBuf,
}

impl FileStore {
    /// A file store on the local filesystem under `root`.
    pub fn local(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let store = LocalFileSystem::new_with_prefix(root)?;
        Ok(FileStore {
            store: Arc::new(store),
            root: root.to_path_buf(),
        })
    }

    /// The absolute local path of a stored file.
    pub fn local_path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes bytes durably at `path` (relative to the root).
    pub async fn put(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let location = ObjectPath::from(path);
        self.store.put(&location, Bytes::from(data).into()).await?;
        let local = self.local_path(path);
        let dir = local.parent().map(Path::to_path_buf);
        tokio::task::spawn_blocking(move || -> Result<()> {
            std::fs::File::open(&local)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&local, e))?;
            if let Some(dir) = dir {
                sync_dir(&dir)?;
            }
            Ok(())
        })
        .await
        .map_err(|_| Error::ShuttingDown)?
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.store.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Bytes> {
        Ok(self
            .store
            .get(&ObjectPath::from(path))
            .await?
            .bytes()
            .await?)
    }
}

/// Merges batches into one sorted by the signal's access path.
pub fn sort_batches(signal: Signal, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let order = sort_order(signal, batches)?;
    gather(batches, &order)
}

/// A row of a list of batches: (batch index, row within the batch).
pub type RowRef = (u32, u32);

/// One sort key column of every batch, readable without concatenating them.
enum KeyColumn<'a> {
    U64(Vec<&'a [u64]>),
    I64(Vec<&'a [i64]>),
    Str(Vec<&'a StringArray>),
}

impl KeyColumn<'_> {
    /// The key column `name` of every batch, if it has a type we compare in place and no
    /// nulls (the sort columns of our schemas never have any).
    fn of<'a>(batches: &'a [RecordBatch], name: &str) -> Option<KeyColumn<'a>> {
        let cols: Vec<&'a dyn Array> = batches
            .iter()
            .map(|b| b.column_by_name(name).map(|c| c.as_ref()))
            .collect::<Option<_>>()?;
        if cols.iter().any(|c| c.null_count() > 0) {
            return None;
        }
        let first = cols.first()?.data_type().clone();
        if cols.iter().any(|c| *c.data_type() != first) {
            return None;
        }
        Some(match first {
            DataType::UInt64 => KeyColumn::U64(
                cols.iter()
                    .map(|c| {
                        c.as_primitive_opt::<UInt64Type>()
                            .map(|a| a.values().as_ref())
                    })
                    .collect::<Option<_>>()?,
            ),
            DataType::Int64 | DataType::Timestamp(_, _) => {
                KeyColumn::I64(cols.iter().map(|c| i64_values(*c)).collect::<Option<_>>()?)
            }
            DataType::Utf8 => KeyColumn::Str(
                cols.iter()
                    .map(|c| c.as_string_opt::<i32>())
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }

    fn cmp(&self, a: RowRef, b: RowRef) -> Ordering {
        let (ab, ar, bb, br) = (a.0 as usize, a.1 as usize, b.0 as usize, b.1 as usize);
        match self {
            KeyColumn::U64(v) => v[ab][ar].cmp(&v[bb][br]),
            KeyColumn::I64(v) => v[ab][ar].cmp(&v[bb][br]),
            KeyColumn::Str(v) => v[ab].value(ar).cmp(v[bb].value(br)),
        }
    }
}

/// The values of an `Int64` or timestamp column.
fn i64_values(c: &dyn Array) -> Option<&[i64]> {
    let values = match c.data_type() {
        DataType::Int64 => c.as_primitive_opt::<Int64Type>()?.values(),
        DataType::Timestamp(TimeUnit::Second, _) => {
            c.as_primitive_opt::<TimestampSecondType>()?.values()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            c.as_primitive_opt::<TimestampMillisecondType>()?.values()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            c.as_primitive_opt::<TimestampMicrosecondType>()?.values()
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            c.as_primitive_opt::<TimestampNanosecondType>()?.values()
        }
        _ => return None,
    };
    Some(values.as_ref())
}

/// The order that sorts the rows of `batches` by the signal's access path.
///
/// The keys are compared where they are, not concatenated: a flush holds 8 bytes per row
/// for the order and gathers the rows a slice at a time ([`encode_parquet_gathered`])
/// rather than copying them all.
pub fn sort_order(signal: Signal, batches: &[RecordBatch]) -> Result<Vec<RowRef>> {
    if signal == Signal::Traces
        && let Some(order) = span_order(batches)
    {
        return Ok(order);
    }
    if signal == Signal::Logs
        && let Some(order) = log_order(batches)
    {
        return Ok(order);
    }
    let mut order: Vec<RowRef> = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for (b, batch) in batches.iter().enumerate() {
        let b = u32::try_from(b).map_err(|_| too_many_rows())?;
        let rows = u32::try_from(batch.num_rows()).map_err(|_| too_many_rows())?;
        order.extend((0..rows).map(|r| (b, r)));
    }
    let keys: Option<Vec<KeyColumn<'_>>> = sort_columns(signal)
        .iter()
        .map(|name| KeyColumn::of(batches, name))
        .collect();
    match keys {
        Some(keys) => order.sort_unstable_by(|&a, &b| {
            keys.iter()
                .map(|k| k.cmp(a, b))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        None => {
            // Some key of another type (or with nulls): Arrow's sort over the
            // concatenated keys.
            let mut columns = Vec::new();
            for name in sort_columns(signal) {
                let parts: Vec<&dyn Array> = batches
                    .iter()
                    .filter_map(|b| b.column_by_name(name).map(|c| c.as_ref()))
                    .collect();
                if parts.len() == batches.len() && !parts.is_empty() {
                    columns.push(SortColumn {
                        values: concat(&parts)?,
                        options: None,
                    });
                }
            }
            if !columns.is_empty() {
                let flat = order;
                order = lexsort_to_indices(&columns, None)?
                    .values()
                    .iter()
                    .filter_map(|&i| flat.get(i as usize).copied())
                    .collect();
            }
        }
    }
    Ok(order)
}

/// The shape of a log line that a logs file groups lines by within a stream: 0 for a
/// line that opens a JSON object, 1 for any other.
fn line_shape(line: &[u8]) -> u8 {
    u8::from(line.first() != Some(&b'{'))
}

/// The order of log rows: by stream, then by the shape of the line ([`line_shape`]:
/// JSON objects first, then other text), then by time.
///
/// Streams often mix JSON and plain-text lines. Kept apart, each page holds lines of one
/// shape, which zstd compresses 6-7% better at level 1 (keys, separators and field order
/// repeat from line to line); that is what lets the body column use level 1 (a quarter
/// of ingest CPU less than level 6) and still take less disk. Readers order a stream's
/// entries by time themselves (files and memtables overlap in time anyway), and the
/// file declares only `stream_id` as its sort order. `None` when a batch lacks the
/// key columns (or they have nulls): [`sort_order`]'s generic path then sorts.
fn log_order(batches: &[RecordBatch]) -> Option<Vec<RowRef>> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // (stream, time, batch, shape bit << 31 | row): 24 bytes a row.
    let mut keys: Vec<(u64, i64, u32, u32)> = Vec::with_capacity(rows);
    for (b, batch) in batches.iter().enumerate() {
        let bi = u32::try_from(b).ok()?;
        let ids = batch
            .column_by_name("stream_id")?
            .as_primitive_opt::<UInt64Type>()?;
        let ts = batch.column_by_name("timestamp")?;
        let body = batch.column_by_name("body")?.as_string_opt::<i32>()?;
        // The row number shares its u32 with the shape bit.
        if batch.num_rows() > 0x7fff_ffff
            || ids.null_count() > 0
            || ts.null_count() > 0
            || body.null_count() > 0
        {
            return None;
        }
        let ts = i64_values(ts.as_ref())?;
        let offsets = body.value_offsets();
        let bytes = body.value_data();
        for (r, (&id, &t)) in ids.values().iter().zip(ts).enumerate() {
            let start = usize::try_from(offsets[r]).ok()?;
            let end = usize::try_from(offsets[r + 1]).ok()?;
            let shape = line_shape(bytes.get(start..end)?);
            keys.push((id, t, bi, (u32::from(shape) << 31) | u32::try_from(r).ok()?));
        }
    }
    keys.sort_unstable_by_key(|&(id, t, b, r)| (id, r >> 31, t, b, r));
    Some(
        keys.into_iter()
            .map(|(_, _, b, r)| (b, r & 0x7fff_ffff))
            .collect(),
    )
}

/// Width of the time windows metric rows are grouped by (see [`TimeSlabs`]).
pub const METRIC_WINDOW_MS: i64 = 15 * 60 * 1000;

/// The time slabs of a metrics file: consecutive 15-minute windows ([`METRIC_WINDOW_MS`])
/// grouped until a slab holds at least `min_rows` rows (`storage.metric_slab_rows`; 0 makes
/// the whole file one slab). A metrics file with a
/// series directory holds its slabs one after the other, each its own row groups sorted
/// by series rank then time, so a query of a short time range (an instant query, a recent
/// dashboard) decodes only the row groups whose timestamp statistics overlap it instead
/// of every row of its series. A series has one directory entry per slab it has rows in.
#[derive(Debug, Clone, Default)]
pub struct TimeSlabs {
    /// Start (ms) of every slab but the first, ascending.
    starts: Vec<i64>,
}

impl TimeSlabs {
    /// The slabs of the metric rows of `batches`, each of at least `min_rows` rows (the
    /// last may hold fewer); one slab when `min_rows` is 0.
    pub fn of(batches: &[RecordBatch], min_rows: u64) -> Self {
        if min_rows == 0 {
            return TimeSlabs::default();
        }
        let mut windows: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
        for (_, ts) in batches.iter().filter_map(crate::schema::metric_keys) {
            for t in ts {
                *windows.entry(t.div_euclid(METRIC_WINDOW_MS)).or_default() += 1;
            }
        }
        let mut starts = Vec::new();
        let mut rows = 0u64;
        for (w, n) in windows {
            if rows >= min_rows {
                starts.push(w.saturating_mul(METRIC_WINDOW_MS));
                rows = 0;
            }
            rows += n;
        }
        TimeSlabs { starts }
    }

    /// Whether the rows form one slab (the file is in series order throughout).
    pub fn is_single(&self) -> bool {
        self.starts.is_empty()
    }

    /// The slab of a row at `t` (ms).
    pub fn slab_of(&self, t: i64) -> u32 {
        u32::try_from(self.starts.partition_point(|&s| s <= t)).unwrap_or(u32::MAX)
    }
}

/// The order of metric rows by time slab (see [`TimeSlabs`]), then series rank, then
/// time: with ranks from the series' label sets, a slab holds the series of one metric
/// (and one job, one instance) together, as Prometheus's index orders them, so a selector
/// reads a few contiguous pages of each slab. Rows of a series without a rank go last in
/// their slab, by id. Rows of the same series and time keep the order of `batches`.
pub fn metric_order_by_rank(
    batches: &[RecordBatch],
    rank: &std::collections::HashMap<u64, u32>,
    slabs: &TimeSlabs,
) -> Result<Vec<RowRef>> {
    // 8 bytes of order and 8 of slab and rank per row, compared in place: a flush holds no
    // wider sort keys (rows of a series without a rank go last, by id).
    let mut keys: Vec<(&[u64], &[i64], Vec<u64>)> = Vec::with_capacity(batches.len());
    let mut order: Vec<RowRef> = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for (b, batch) in batches.iter().enumerate() {
        let bi = u32::try_from(b).map_err(|_| too_many_rows())?;
        let Some((ids, ts)) = crate::schema::metric_keys(batch) else {
            return sort_order(Signal::Metrics, batches);
        };
        let rows = u32::try_from(ids.len()).map_err(|_| too_many_rows())?;
        let ranks = ids
            .iter()
            .zip(ts)
            .map(|(id, &t)| {
                let rank = rank.get(id).copied().unwrap_or(u32::MAX);
                (u64::from(slabs.slab_of(t)) << 32) | u64::from(rank)
            })
            .collect();
        keys.push((ids, ts, ranks));
        order.extend((0..rows).map(|r| (bi, r)));
    }
    // Rows of one series and timestamp (a rewrite) stay in arrival order, batches in the
    // order given: readers keep the last of them.
    let key = |(b, r): RowRef| {
        let (ids, ts, ranks) = &keys[b as usize];
        let i = r as usize;
        (ranks[i], ids[i], ts[i], b, r)
    };
    order.sort_unstable_by_key(|&a| key(a));
    Ok(order)
}

/// Footer key of a metrics file sorted by time slab and series rank: its series directory,
/// each series' id, first row and row count per run of its rows (one per time slab, see
/// [`TimeSlabs`]; files written before slabs have one per series) (see
/// [`series_directory`]).
pub const SERIES_DIRECTORY_KEY: &str = "strata.series_directory";

/// One series' rows in a file: `(series id, first row, rows)`.
pub type DirectoryEntry = (u64, u64, u64);

/// The directory of the rows `order` names, in file order: runs of one series id.
fn gathered_directory(batches: &[RecordBatch], order: &[RowRef]) -> Vec<DirectoryEntry> {
    let ids: Vec<Option<&[u64]>> = batches
        .iter()
        .map(|b| {
            b.column_by_name("series_id")
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .map(|a| a.values().as_ref())
        })
        .collect();
    let mut out: Vec<DirectoryEntry> = Vec::new();
    for (row, &(b, r)) in order.iter().enumerate() {
        let Some(id) = ids
            .get(b as usize)
            .copied()
            .flatten()
            .and_then(|v| v.get(r as usize))
        else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.0 == *id && last.1 + last.2 == row as u64 => last.2 += 1,
            _ => out.push((*id, row as u64, 1)),
        }
    }
    out.sort_unstable();
    out
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let (v, n) = crate::varint::decode(bytes.get(*pos..)?)?;
    *pos += n;
    Some(v)
}

/// Hex of the directory as varints: id deltas (entries sorted by id), first rows, counts.
pub fn directory_hex(entries: &[DirectoryEntry]) -> String {
    let mut bytes = Vec::with_capacity(entries.len() * 8);
    let mut prev = 0u64;
    for &(id, start, rows) in entries {
        crate::varint::encode(&mut bytes, id.wrapping_sub(prev));
        prev = id;
        crate::varint::encode(&mut bytes, start);
        crate::varint::encode(&mut bytes, rows);
    }
    to_hex(&bytes)
}

fn to_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        use std::fmt::Write;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A metrics file's series directory, sorted by id; `None` for files sorted by id (they
/// predate the directory, or were written without label ranks), which readers prune by
/// `series_id` statistics instead. Not checked against the file: the storage engine reads
/// directories through [`SeriesRuns::from_directory`], which is.
pub fn series_directory(meta: &FileMetaData) -> Option<Vec<DirectoryEntry>> {
    parse_directory(&footer_bytes(meta, SERIES_DIRECTORY_KEY)?)
}

/// The entries of a series directory's bytes (see [`directory_hex`]), in stored order.
fn parse_directory(bytes: &[u8]) -> Option<Vec<DirectoryEntry>> {
    let mut pos = 0;
    let mut out = Vec::new();
    let mut prev = 0u64;
    while pos < bytes.len() {
        let id = prev.wrapping_add(read_varint(bytes, &mut pos)?);
        prev = id;
        let start = read_varint(bytes, &mut pos)?;
        let rows = read_varint(bytes, &mut pos)?;
        out.push((id, start, rows));
    }
    Some(out)
}

/// Why a metrics file's series directory does not fit the file (see
/// [`SeriesRuns::from_directory`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryFault(String);

impl DirectoryFault {
    pub fn new(why: impl Into<String>) -> Self {
        DirectoryFault(why.into())
    }
}

impl std::fmt::Display for DirectoryFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A metrics file's rows by series: runs of consecutive rows of one series, in file
/// order, that cover every row of the file exactly once. A merge that splits its output
/// by series range selects each range's rows through them, so a run that missed or
/// misplaced rows would lose them: runs come from a series directory only once it is
/// checked against the file ([`SeriesRuns::from_directory`]), or else from the file's
/// `series_id` column ([`SeriesRuns::from_batches`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesRuns {
    /// (series id, first row, rows), by first row, each run starting where the one
    /// before ends.
    runs: Vec<DirectoryEntry>,
}

impl SeriesRuns {
    /// The runs of a metrics file's series directory: `Ok(None)` when the file has none,
    /// an error when the directory does not fit the file. It fits when it decodes, its
    /// entries are in stored order (by series id, then first row, no two alike), each
    /// entry has rows, and the entries' rows, in row order, follow one another from row 0
    /// to the file's last row without a gap or an overlap (so they add up to the file's
    /// row count and lie within it).
    pub fn from_directory(meta: &FileMetaData) -> Result<Option<SeriesRuns>, DirectoryFault> {
        let fault = |why: String| Err(DirectoryFault(why));
        let Some(kv) = meta
            .key_value_metadata()
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == SERIES_DIRECTORY_KEY))
        else {
            return Ok(None);
        };
        let Some(mut runs) = kv
            .value
            .as_deref()
            .and_then(from_hex)
            .and_then(|bytes| parse_directory(&bytes))
        else {
            return fault("the series directory does not decode".into());
        };
        let Ok(total) = u64::try_from(meta.num_rows()) else {
            return fault(format!("the file claims {} rows", meta.num_rows()));
        };
        for pair in runs.windows(2) {
            let ((a, a_first, _), (b, b_first, _)) = (pair[0], pair[1]);
            if (a, a_first) >= (b, b_first) {
                return fault(format!(
                    "directory entries out of order: series {b:016x} at row {b_first} \
                     follows series {a:016x} at row {a_first}"
                ));
            }
        }
        if let Some((id, first, _)) = runs.iter().find(|e| e.2 == 0) {
            return fault(format!(
                "series {id:016x} has an entry of no rows at row {first}"
            ));
        }
        runs.sort_unstable_by_key(|e| e.1);
        let mut pos = 0u64;
        for &(id, first, rows) in &runs {
            if first != pos {
                let what = if first < pos {
                    "overlap"
                } else {
                    "leave a gap before"
                };
                return fault(format!(
                    "the rows of series {id:016x} (from row {first}) {what} row {pos}"
                ));
            }
            let Some(end) = first.checked_add(rows).filter(|&end| end <= total) else {
                return fault(format!(
                    "the rows of series {id:016x} (from row {first}, {rows} rows) run past \
                     the file's {total} rows"
                ));
            };
            pos = end;
        }
        if pos != total {
            return fault(format!(
                "the directory covers {pos} rows of the file's {total}"
            ));
        }
        Ok(Some(SeriesRuns { runs }))
    }

    /// The runs of the `series_id` column of a metrics file's rows, `batches` in file
    /// order.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<SeriesRuns> {
        let mut runs: Vec<DirectoryEntry> = Vec::new();
        let mut row = 0u64;
        for b in batches {
            let Some(ids) = b
                .column_by_name("series_id")
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            else {
                return Err(datafusion::arrow::error::ArrowError::SchemaError(
                    "metrics batch lacks series_id".into(),
                )
                .into());
            };
            for &id in ids.values().iter() {
                match runs.last_mut() {
                    Some(last) if last.0 == id => last.2 += 1,
                    _ => runs.push((id, row, 1)),
                }
                row += 1;
            }
        }
        Ok(SeriesRuns { runs })
    }

    /// The runs as directory entries, sorted by series id then first row (the order a
    /// directory is stored in).
    pub fn into_directory(self) -> Vec<DirectoryEntry> {
        let mut entries = self.runs;
        entries.sort_unstable();
        entries
    }

    /// How many rows each series has.
    pub fn row_counts(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|&(id, _, rows)| (id, rows))
    }

    /// The rows of the series `ids`, every other row skipped.
    pub fn selection(&self, ids: &std::collections::HashSet<u64>) -> RowSelection {
        let mut selectors: Vec<RowSelector> = Vec::new();
        for &(id, _, rows) in &self.runs {
            let rows = usize::try_from(rows).unwrap_or(usize::MAX);
            let select = ids.contains(&id);
            // Neighbouring runs of one kind make one selector.
            match selectors.last_mut() {
                Some(last) if last.skip != select => last.row_count += rows,
                _ => selectors.push(if select {
                    RowSelector::select(rows)
                } else {
                    RowSelector::skip(rows)
                }),
            }
        }
        RowSelection::from(selectors)
    }

    /// The first row of every series (a series' labels are the same on all its rows, so
    /// these rows name every series once), with the series expected at each of those
    /// rows, `(series id, row)` in row order.
    pub fn first_rows(&self) -> (RowSelection, Vec<(u64, u64)>) {
        let mut seen = std::collections::HashSet::new();
        let mut selectors = Vec::new();
        let mut ids = Vec::new();
        let mut pos = 0u64;
        for &(id, first, _) in &self.runs {
            if !seen.insert(id) {
                continue;
            }
            if first > pos {
                selectors.push(RowSelector::skip(
                    usize::try_from(first - pos).unwrap_or(usize::MAX),
                ));
            }
            selectors.push(RowSelector::select(1));
            ids.push((id, first));
            pos = first + 1;
        }
        let total = self.runs.last().map_or(0, |&(_, first, rows)| first + rows);
        if total > pos {
            selectors.push(RowSelector::skip(
                usize::try_from(total - pos).unwrap_or(usize::MAX),
            ));
        }
        (RowSelection::from(selectors), ids)
    }
}

fn too_many_rows() -> Error {
    datafusion::arrow::error::ArrowError::InvalidArgumentError(
        "more than 2^32 rows or batches in one flush".into(),
    )
    .into()
}

/// The rows `order` names, in that order, as one batch.
pub fn gather(batches: &[RecordBatch], order: &[RowRef]) -> Result<RecordBatch> {
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
    };
    if order.is_empty() {
        return Ok(RecordBatch::new_empty(first.schema()));
    }
    let pairs: Vec<(usize, usize)> = order
        .iter()
        .map(|&(b, r)| (b as usize, r as usize))
        .collect();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    Ok(interleave_record_batch(&refs, &pairs)?)
}

/// The (batch, row) pairs of spans in file order (service, trace id, start time), from
/// fixed-size keys: comparing them is several times cheaper than the generic sort's
/// string comparisons. `None` when a trace id is not 32 lower-case hex digits (the
/// generic sort then runs, giving the same order).
fn span_order(batches: &[RecordBatch]) -> Option<Vec<RowRef>> {
    use datafusion::arrow::array::{AsArray, StringArray};
    use datafusion::arrow::datatypes::TimestampNanosecondType;
    let mut cols = Vec::with_capacity(batches.len());
    for b in batches {
        let svc = b.column_by_name("service_name")?.as_string_opt::<i32>()?;
        let tid = b.column_by_name("trace_id")?.as_string_opt::<i32>()?;
        let start = b
            .column_by_name("start_time")?
            .as_primitive_opt::<TimestampNanosecondType>()?;
        cols.push((svc, tid, start));
    }
    let mut services: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
    for (svc, _, _) in &cols {
        let svc: &StringArray = svc;
        for i in 0..svc.len() {
            services.entry(svc.value(i)).or_insert(0);
        }
    }
    for (rank, v) in services.values_mut().enumerate() {
        *v = u32::try_from(rank).ok()?;
    }
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut keys: Vec<(u32, u128, i64, u32, u32)> = Vec::with_capacity(total);
    for (bi, (svc, tid, start)) in cols.iter().enumerate() {
        let bi = u32::try_from(bi).ok()?;
        for i in 0..svc.len() {
            let t = tid.value(i);
            if t.len() != 32 || !t.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                return None;
            }
            let t = u128::from_str_radix(t, 16).ok()?;
            let rank = *services.get(svc.value(i))?;
            keys.push((rank, t, start.value(i), bi, u32::try_from(i).ok()?));
        }
    }
    keys.sort_unstable();
    Some(keys.into_iter().map(|(_, _, _, b, r)| (b, r)).collect())
}

/// zstd level of the log lines (see [`writer_properties`]).
const BODY_ZSTD_LEVEL: i32 = 1;

fn writer_properties(signal: Signal, s: &SchemaRef) -> Result<WriterProperties> {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(true);
    // Logs files are sorted by stream, then line shape, then time (see [`log_order`]):
    // only the stream is a declared sort column.
    let declared = match signal {
        Signal::Logs => &sort_columns(signal)[..1],
        _ => sort_columns(signal),
    };
    let sorting: Vec<SortingColumn> = declared
        .iter()
        .filter_map(|name| s.index_of(name).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    b = b.set_sorting_columns(Some(sorting));
    // Time and id columns are near-monotonic within a series or trace: delta encoding turns
    // them into a few bits per row, which dictionaries cannot.
    for col in [
        "timestamp",
        "observed_timestamp",
        "start_time",
        "end_time",
        "duration",
        "series_id",
        "stream_id",
    ] {
        if s.index_of(col).is_ok() {
            let path = ColumnPath::from(col);
            b = b
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    if signal == Signal::Metrics {
        // A series' samples sit together, so a selective read decodes one page per column:
        // smaller pages mean less to decode for it, at a small cost in compression.
        b = b
            .set_data_page_row_count_limit(METRIC_PAGE_ROWS)
            .set_write_batch_size(METRIC_PAGE_ROWS);
        // Sample values are mostly distinct: a dictionary would be a large page that every
        // read of the row group decodes first. Splitting the float's bytes into streams lets
        // zstd find the slowly changing exponent and high mantissa bytes.
        let path = ColumnPath::from("value");
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
    }
    if signal == Signal::Logs {
        // Log lines are most of a logs file. With a stream's JSON and plain-text lines in
        // separate runs (see [`log_order`]), zstd level 1 makes them slightly smaller than
        // level 6 did on mixed pages, at a fifth of its CPU (level 6 was a quarter of all
        // ingest CPU); a stream of one shape pays 4-6% more bytes than at level 6. Levels
        // 2-5 compress log text worse than 1 (measured in BENCHMARKS.md, "Logs"). Lines
        // are nearly all distinct: a dictionary would only be built to be abandoned.
        // Min/max statistics of the lines prune nothing (they span everything) and cost a
        // quarter of a flush's CPU in string comparisons.
        let path = ColumnPath::from("body");
        b = b
            .set_column_compression(
                path.clone(),
                Compression::ZSTD(ZstdLevel::try_new(BODY_ZSTD_LEVEL)?),
            )
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
        // Per-value min/max upkeep of the metadata string columns (mostly empty or one
        // value per stream) was another fifth of a flush; their ranges prune nothing that
        // `stream_id` and `timestamp` do not. `service_name` and `severity_text` keep theirs.
        for col in [
            "body_type",
            "attributes",
            "trace_id",
            "span_id",
            "event_name",
            "resource_attributes",
            "resource_schema_url",
            "scope_name",
            "scope_version",
            "scope_attributes",
            "scope_schema_url",
        ] {
            b = b.set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::None);
        }
        // Dictionary encoding interns every value, a hash and a `memcmp` each: for the
        // near-constant string columns that was an eighth of all ingest CPU. Columns no log
        // query reads (the stream's label map, which only the stream index reads when the
        // store opens, and four that only SQL reads) are written plain instead: their
        // repetitive pages compress to almost nothing. The stream map's keys and values
        // need no min/max either (streams are pruned by `stream_id`).
        // The short metadata columns log queries read (service, severity, trace and span
        // ids, scope name and version) and the record attributes are plain too: they are
        // one value per stream, empty, or distinct per record (ids, attributes), so a
        // dictionary saved no bytes and cost 8-12% of ingest CPU in interning (BENCHMARKS.md,
        // "Logs"). Only the resource and scope attributes keep theirs: per-resource JSON
        // that can run to hundreds of bytes, which a hash and one `memcmp` intern more
        // cheaply than zstd compresses a plain copy per row. `service_name` and
        // `severity_text` keep their min/max statistics for SQL's page pruning.
        for leaf in ["keys", "values"] {
            let path = ColumnPath::new(vec!["stream_labels".into(), "entries".into(), leaf.into()]);
            b = b
                .set_column_statistics_enabled(path.clone(), EnabledStatistics::None)
                .set_column_dictionary_enabled(path, false);
        }
        for col in [
            "body_type",
            "event_name",
            "resource_schema_url",
            "scope_schema_url",
            "service_name",
            "severity_text",
            "trace_id",
            "span_id",
            "scope_name",
            "scope_version",
            "attributes",
        ] {
            b = b.set_column_dictionary_enabled(ColumnPath::from(col), false);
        }
    }
    if signal == Signal::Traces {
        let path = ColumnPath::from("trace_id");
        b = b
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path, 0.01)
            // A trace-by-id lookup decodes one page of every column: small pages keep that
            // cheap (the page index lets the reader skip the others).
            .set_data_page_row_count_limit(SPAN_PAGE_ROWS)
            .set_write_batch_size(SPAN_PAGE_ROWS);
        // Nearly unique per span: a dictionary only adds a large page every lookup reads.
        for col in ["span_id", "parent_span_id", "attributes", "events", "links"] {
            b = b.set_column_dictionary_enabled(ColumnPath::from(col), false);
        }
        // Nothing prunes by these columns (JSON text and rarely set strings): their min/max,
        // kept per value even for chunk statistics, were a twentieth of ingest CPU in
        // string comparisons (long shared prefixes), and per-page values (up to 64 bytes
        // each, twice per page) would only grow the page index.
        for col in [
            "attributes",
            "events",
            "links",
            "resource_attributes",
            "scope_attributes",
            "trace_state",
            "status_message",
            "resource_schema_url",
            "scope_version",
            "scope_schema_url",
        ] {
            b = b.set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::None);
        }
    }
    Ok(b.build())
}

/// Settings of a spans file's dedicated attribute columns: no statistics (nothing prunes
/// by them; their upkeep is flush CPU), and no dictionary for those with many values.
/// Integers among those are delta encoded instead (bit-packed deltas, a fifth smaller
/// than plain for random lengths); strings stay PLAIN. `DELTA_BYTE_ARRAY` was 0.8 B/span
/// smaller (38.2 against 39.0 B/span, `benches/traces/run.py --spans 1000000`), but
/// parquet 59's decoder sizes its buffers from the page's own counts and asserts on
/// them, so one corrupt page could allocate without bound or panic; PLAIN pages are
/// bounds-checked. (Files written with it are still read, [`catch_corrupt`] guarding.)
fn dedicated_column_properties(
    props: WriterProperties,
    s: &SchemaRef,
    plain: &[String],
) -> WriterProperties {
    let mut b = props.into_builder();
    for f in s.fields() {
        if f.name().starts_with(crate::span_attrs::DEDICATED_PREFIX) {
            let path = ColumnPath::new(vec![f.name().clone()]);
            b = b.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
            if plain.contains(f.name()) {
                b = b.set_column_dictionary_enabled(path.clone(), false);
                // Strings stay PLAIN: the delta string decoders of parquet 59 size a buffer
                // from the page's own count and assert on it, so one corrupt page could
                // allocate without bound or panic.
                if f.data_type() == &DataType::Int64 {
                    b = b.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
                }
            }
        }
    }
    b.build()
}

/// Encodes a sorted batch as a Parquet file.
pub fn encode_parquet(signal: Signal, batch: &RecordBatch) -> Result<Vec<u8>> {
    encode_parquet_with(signal, batch, &|b| Ok(b))
}

/// Encodes a sorted batch as a Parquet file, passing it through `prepare` one slice at a
/// time.
pub fn encode_parquet_with(
    signal: Signal,
    batch: &RecordBatch,
    prepare: &dyn Fn(RecordBatch) -> Result<RecordBatch>,
) -> Result<Vec<u8>> {
    // Spans are stored in the leaner file layout when their ids allow it.
    let converted = match signal {
        Signal::Traces => crate::schema::spans_to_file(batch)?,
        _ => None,
    };
    let (batch, file_schema) = match &converted {
        Some(f) => (&f.batch, f.batch.schema()),
        None => (batch, schema(signal)),
    };
    let mut buf = Vec::new();
    let mut props = writer_properties(signal, &file_schema)?;
    if let Some(f) = &converted {
        props = dedicated_column_properties(props, &file_schema, &f.plain_columns);
    }
    let mut writer = ArrowWriter::try_new(&mut buf, file_schema, Some(props))?;
    if signal == Signal::Metrics {
        writer.append_key_value_metadata(KeyValue::new(
            HISTOGRAM_SERIES_KEY.to_string(),
            encode_histogram_series(batch)?,
        ));
    }
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = ENCODE_SLICE_ROWS.min(batch.num_rows() - offset);
        writer.write(&prepare(batch.slice(offset, len))?)?;
        offset += len;
    }
    writer.close()?;
    Ok(buf)
}

/// Encodes the rows `order` names (see [`sort_order`]) as a Parquet file, gathering and
/// passing them through `prepare` one slice at a time: only one slice is ever held
/// copied (and, for a metrics flush, with its labels spelled out), never the whole
/// sorted file.
pub fn encode_parquet_gathered(
    signal: Signal,
    batches: &[RecordBatch],
    order: &[RowRef],
    prepare: &dyn Fn(RecordBatch) -> Result<RecordBatch>,
) -> Result<Vec<u8>> {
    encode_parquet_ordered(signal, batches, order, None, prepare)
}

/// `order` (by time slab first) cut where the slab changes.
fn slab_parts<'a>(
    batches: &[RecordBatch],
    order: &'a [RowRef],
    slabs: &TimeSlabs,
) -> Vec<&'a [RowRef]> {
    let ts: Vec<Option<&[i64]>> = batches
        .iter()
        .map(|b| crate::schema::metric_keys(b).map(|(_, t)| t))
        .collect();
    let slab = |(b, r): RowRef| {
        ts.get(b as usize)
            .copied()
            .flatten()
            .and_then(|t| t.get(r as usize))
            .map(|&t| slabs.slab_of(t))
    };
    let mut parts = Vec::new();
    let mut rest = order;
    while let Some(&first) = rest.first() {
        let s = slab(first);
        let n = rest.partition_point(|&x| slab(x) <= s).max(1);
        let (part, tail) = rest.split_at(n.min(rest.len()));
        parts.push(part);
        rest = tail;
    }
    parts
}

/// Like [`encode_parquet_gathered`]; with `directory`, a metrics file (whose `order` is
/// by time slab and series rank, see [`metric_order_by_rank`] with the same slabs) also
/// gets its series directory, and each time slab starts a new row group.
pub fn encode_parquet_ordered(
    signal: Signal,
    batches: &[RecordBatch],
    order: &[RowRef],
    directory: Option<&TimeSlabs>,
    prepare: &dyn Fn(RecordBatch) -> Result<RecordBatch>,
) -> Result<Vec<u8>> {
    if signal == Signal::Traces {
        // Whether a spans file takes the lean layout depends on all its rows (every id
        // must be hex), so spans are gathered whole and converted at once.
        return encode_parquet_with(signal, &gather(batches, order)?, prepare);
    }
    let mut buf = Vec::new();
    let file_schema = schema(signal);
    let mut props = writer_properties(signal, &file_schema)?;
    if directory.is_some() {
        // Sorted by series rank, not by the declared `series_id`.
        props = props.into_builder().set_sorting_columns(None).build();
    }
    let mut writer = ArrowWriter::try_new(&mut buf, file_schema, Some(props))?;
    if signal == Signal::Metrics {
        writer.append_key_value_metadata(KeyValue::new(
            HISTOGRAM_SERIES_KEY.to_string(),
            histogram_series_hex(&gathered_histogram_series(batches, order))?,
        ));
        if directory.is_some() {
            writer.append_key_value_metadata(KeyValue::new(
                SERIES_DIRECTORY_KEY.to_string(),
                directory_hex(&gathered_directory(batches, order)),
            ));
        }
    }
    let parts = match directory {
        Some(slabs) => slab_parts(batches, order, slabs),
        None => vec![order],
    };
    for part in parts {
        for chunk in part.chunks(GATHER_SLICE_ROWS) {
            writer.write(&prepare(gather(batches, chunk)?)?)?;
        }
        // A slab's rows end its row group, so the group's timestamp statistics say which
        // slab it holds.
        writer.flush()?;
    }
    writer.close()?;
    Ok(buf)
}

/// Footer key of a metrics file naming the series that have native-histogram rows in it
/// (a serialized roaring treemap in hex). Readers of float series skip the `histogram`
/// column of files whose set holds none of their series: that column's pages are the
/// largest a sample read would otherwise decode.
pub const HISTOGRAM_SERIES_KEY: &str = "strata.histogram_series";

/// The `series_id` and `histogram` columns of a metrics batch, when any row has a
/// histogram.
fn histogram_columns(batch: &RecordBatch) -> Option<(&[u64], &dyn Array)> {
    let ids = batch
        .column_by_name("series_id")?
        .as_primitive_opt::<UInt64Type>()?;
    let hists = batch.column_by_name("histogram")?;
    (hists.null_count() < hists.len()).then(|| (ids.values().as_ref(), hists.as_ref()))
}

fn encode_histogram_series(batch: &RecordBatch) -> Result<String> {
    let mut set = roaring::RoaringTreemap::new();
    if let Some((ids, hists)) = histogram_columns(batch) {
        for (i, id) in ids.iter().enumerate() {
            if hists.is_valid(i) {
                set.insert(*id);
            }
        }
    }
    histogram_series_hex(&set)
}

/// The series with histogram rows among the rows `order` names.
fn gathered_histogram_series(batches: &[RecordBatch], order: &[RowRef]) -> roaring::RoaringTreemap {
    let mut set = roaring::RoaringTreemap::new();
    let columns: Vec<Option<(&[u64], &dyn Array)>> =
        batches.iter().map(histogram_columns).collect();
    if columns.iter().all(Option::is_none) {
        return set;
    }
    for &(b, r) in order {
        let r = r as usize;
        if let Some(Some((ids, hists))) = columns.get(b as usize)
            && r < ids.len()
            && hists.is_valid(r)
        {
            set.insert(ids[r]);
        }
    }
    set
}

fn histogram_series_hex(set: &roaring::RoaringTreemap) -> Result<String> {
    let mut bytes = Vec::with_capacity(set.serialized_size());
    set.serialize_into(&mut bytes)
        .map_err(|e| Error::io("histogram series set", e))?;
    Ok(to_hex(&bytes))
}

/// The sorted ids of the series with native-histogram rows in a metrics file, from its
/// footer; `None` when the file predates the footer key (any series may have them).
pub fn histogram_series(meta: &FileMetaData) -> Option<Vec<u64>> {
    let bytes = footer_bytes(meta, HISTOGRAM_SERIES_KEY)?;
    let set = roaring::RoaringTreemap::deserialize_from(bytes.as_slice()).ok()?;
    Some(set.iter().collect())
}

/// The bytes a footer key holds in hex.
fn footer_bytes(meta: &FileMetaData, key: &str) -> Option<Vec<u8>> {
    let hex = meta
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_deref()?;
    from_hex(hex)
}

/// Rows passed to the Parquet writer at a time.
const ENCODE_SLICE_ROWS: usize = 64 * 1024;

/// Rows gathered (and, for metrics, given their label columns) at a time by
/// [`encode_parquet_gathered`]: metric rows with labels spelled out take ~300 bytes each,
/// so 8k rows are a few MiB; the Parquet writer still makes full-size row groups.
const GATHER_SLICE_ROWS: usize = 8 * 1024;

/// Runs a read of a data file, turning a panic into [`Error::Corrupt`]: the Parquet
/// decoders index and assert on what a page says (a corrupt `DELTA_BYTE_ARRAY` page of a
/// dedicated attribute column fails an assertion or indexes out of bounds), and such a
/// file must be an error its reader can name, not a lost worker thread.
pub fn catch_corrupt<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(Error::Corrupt(format!(
                "decoding failed (the decoder panicked: {why})"
            )))
        }
    }
}

/// Reads a Parquet file (in memory, or an open local file, of which only the footer and
/// the chosen columns' chunks are read), optionally only some columns and rows. A decoder
/// panic on a corrupt page is [`Error::Corrupt`] ([`catch_corrupt`]).
pub fn decode_parquet<R: ChunkReader + 'static>(
    data: R,
    columns: Option<&[&str]>,
    selection: Option<RowSelection>,
) -> Result<Vec<RecordBatch>> {
    decode_parquet_selecting(data, columns, move |_| selection)
}

/// [`decode_parquet`] with the rows chosen from the file's metadata (read once, with the
/// footer the decode needs anyway).
pub fn decode_parquet_selecting<R: ChunkReader + 'static>(
    data: R,
    columns: Option<&[&str]>,
    select: impl FnOnce(&FileMetaData) -> Option<RowSelection>,
) -> Result<Vec<RecordBatch>> {
    catch_corrupt(|| decode_parquet_unguarded(data, None, columns, select))
}

/// Decodes a file, with its footer as given (`footer`, read before) or read now.
fn decode_parquet_unguarded<R: ChunkReader + 'static>(
    data: R,
    footer: Option<ArrowReaderMetadata>,
    columns: Option<&[&str]>,
    select: impl FnOnce(&FileMetaData) -> Option<RowSelection>,
) -> Result<Vec<RecordBatch>> {
    let mut builder = match footer {
        Some(footer) => ParquetRecordBatchReaderBuilder::new_with_metadata(data, footer),
        None => ParquetRecordBatchReaderBuilder::try_new(data)?,
    };
    let selection = select(builder.metadata().file_metadata());
    if let Some(cols) = columns {
        let schema = builder.parquet_schema();
        let indices: Vec<usize> = (0..schema.num_columns())
            .filter(|i| {
                let path = schema.column(*i).path().parts().to_vec();
                path.first()
                    .is_some_and(|root| cols.contains(&root.as_str()))
            })
            .collect();
        let mask = ProjectionMask::leaves(schema, indices);
        builder = builder.with_projection(mask);
    }
    if let Some(sel) = selection {
        builder = builder.with_row_selection(sel);
    }
    let reader = builder.with_batch_size(64 * 1024).build()?;
    let mut out = Vec::new();
    for batch in reader {
        // The reader's errors are the decoder's verdict on the pages (a bad header, a
        // compressed block that does not decompress, values that do not fit): the file
        // is damaged. (A local file's I/O failures are told apart by [`WatchedFile`].)
        out.push(batch.map_err(|e| Error::Corrupt(format!("decoding failed: {e}")))?);
    }
    Ok(out)
}

/// A local data file for the Parquet reader that keeps I/O failures apart from what the
/// decoder says of the bytes: the reader would report a failed read as a Parquet error,
/// and a disk or network-filesystem hiccup must not pass for a damaged file (which would
/// be taken out of the catalog).
struct WatchedFile {
    file: std::fs::File,
    len: u64,
    failure: Arc<parking_lot::Mutex<Option<std::io::Error>>>,
}

/// A read of a [`WatchedFile`], noting its first failure.
struct WatchedRead {
    inner: std::io::BufReader<std::fs::File>,
    failure: Arc<parking_lot::Mutex<Option<std::io::Error>>>,
}

impl WatchedFile {
    fn note<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        note_failure(&self.failure, r)
    }
}

/// Keeps the first I/O failure of `r` (a copy: the error goes on to the reader).
fn note_failure<T>(
    failure: &parking_lot::Mutex<Option<std::io::Error>>,
    r: std::io::Result<T>,
) -> std::io::Result<T> {
    if let Err(e) = &r {
        keep_failure(failure, e);
    }
    r
}

fn keep_failure(failure: &parking_lot::Mutex<Option<std::io::Error>>, e: &std::io::Error) {
    failure
        .lock()
        .get_or_insert_with(|| std::io::Error::new(e.kind(), e.to_string()));
}

impl std::io::Read for WatchedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        note_failure(&self.failure, self.inner.read(buf))
    }
}

impl datafusion::parquet::file::reader::Length for WatchedFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for WatchedFile {
    type T = WatchedRead;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<WatchedRead> {
        use std::io::Seek;
        let mut file = self.note(self.file.try_clone())?;
        self.note(file.seek(std::io::SeekFrom::Start(start)))?;
        Ok(WatchedRead {
            inner: std::io::BufReader::new(file),
            failure: self.failure.clone(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> datafusion::parquet::errors::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        // The length comes from the footer: a damaged one must not size the buffer.
        if start
            .checked_add(length as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(datafusion::parquet::errors::ParquetError::EOF(format!(
                "expected {length} bytes at offset {start}: the file is {} bytes",
                self.len
            )));
        }
        let mut buf = vec![0u8; length];
        match self.file.read_exact_at(&mut buf, start) {
            Ok(()) => {}
            // Shorter than its footer says: the file's content is wrong, not the disk.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(datafusion::parquet::errors::ParquetError::EOF(format!(
                    "expected {length} bytes at offset {start}: the file is shorter"
                )));
            }
            Err(e) => {
                keep_failure(&self.failure, &e);
                return Err(e.into());
            }
        }
        Ok(buf.into())
    }
}

/// [`decode_parquet_selecting`] of a local file, of which only the footer and the chosen
/// columns' chunks are read. A failure to read the file is [`Error::Io`], never a
/// Parquet or corrupt-data error, so callers quarantine only files whose bytes are bad.
pub fn decode_local_parquet(
    path: &Path,
    columns: Option<&[&str]>,
    select: impl FnOnce(&FileMetaData) -> Option<RowSelection>,
) -> Result<Vec<RecordBatch>> {
    with_local_file(path, |watched| {
        catch_corrupt(|| decode_parquet_unguarded(watched, None, columns, select))
    })
}

/// The footer of a local Parquet file, read once for several reads of the file
/// ([`decode_local_parquet_with_footer`]). Errors as [`decode_local_parquet`]'s.
pub fn read_local_footer(path: &Path) -> Result<ArrowReaderMetadata> {
    with_local_file(path, |watched| {
        catch_corrupt(|| Ok(ArrowReaderMetadata::load(&watched, Default::default())?))
    })
}

/// [`decode_local_parquet`] of a file whose footer was read before
/// ([`read_local_footer`]): only the chosen columns' chunks are read.
pub fn decode_local_parquet_with_footer(
    path: &Path,
    footer: &ArrowReaderMetadata,
    columns: Option<&[&str]>,
    selection: Option<RowSelection>,
) -> Result<Vec<RecordBatch>> {
    let footer = footer.clone();
    with_local_file(path, |watched| {
        catch_corrupt(|| {
            decode_parquet_unguarded(watched, Some(footer), columns, move |_| selection)
        })
    })
}

/// Runs `read` on a local file watched for I/O failures ([`WatchedFile`]): a read that
/// failed because the file could not be read is [`Error::Io`].
fn with_local_file<T>(path: &Path, read: impl FnOnce(WatchedFile) -> Result<T>) -> Result<T> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let failure = Arc::new(parking_lot::Mutex::new(None));
    let watched = WatchedFile {
        file,
        len,
        failure: failure.clone(),
    };
    let read = read(watched);
    match failure.lock().take() {
        Some(e) if read.is_err() => Err(Error::io(path, e)),
        _ => read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, Sample, SampleValue};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float64Type, TimestampMillisecondType, UInt64Type};

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        let samples: Vec<Sample> = rows
            .iter()
            .map(|(job, ts)| Sample {
                labels: Labels::from_pairs([("__name__", "up"), ("job", *job)]),
                timestamp_ms: *ts,
                value: SampleValue::Float(*ts as f64),
                exemplars: vec![],
            })
            .collect();
        crate::schema::metrics_batch(&samples).expect("batch")
    }

    #[test]
    fn spans_sort_by_service_then_trace_then_start_and_rows_move_whole() {
        use crate::model::{Origin, Span};
        let span = |svc: &str, trace: u128, start: i64, id: u64| Span {
            trace_id: format!("{trace:032x}"),
            span_id: format!("{id:016x}"),
            start_time_ns: start,
            end_time_ns: start + i64::try_from(id).expect("small"),
            origin: Origin {
                service_name: svc.into(),
                ..Origin::default()
            },
            ..Span::default()
        };
        let a = crate::schema::spans_batch(&[
            span("web", 0xff << 120, 5, 1),
            span("db", 7, 9, 2),
            span("web", 3, 2, 3),
        ])
        .expect("batch");
        let b = crate::schema::spans_batch(&[
            span("db", 7, 1, 4),
            span("api", u128::MAX, 0, 5),
            span("web", 3, 1, 6),
        ])
        .expect("batch");
        let sorted = sort_batches(Signal::Traces, &[a.clone(), b.clone()]).expect("sort");
        // A trace id that is not canonical hex takes the generic sort: same order.
        let mut odd = b.clone();
        let cols: Vec<_> = odd
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    let ids: datafusion::arrow::array::StringArray = (0..3)
                        .map(|r| {
                            let v = c.as_string::<i32>().value(r);
                            Some(if r == 1 {
                                "zz".to_owned()
                            } else {
                                v.to_owned()
                            })
                        })
                        .collect();
                    std::sync::Arc::new(ids) as datafusion::arrow::array::ArrayRef
                } else {
                    c.clone()
                }
            })
            .collect();
        odd = RecordBatch::try_new(odd.schema(), cols).expect("batch");
        let generic = sort_batches(Signal::Traces, &[a, odd]).expect("sort");
        let col = |b: &RecordBatch, n: &str| -> Vec<String> {
            let c = b.column_by_name(n).expect("column").as_string::<i32>();
            (0..b.num_rows()).map(|i| c.value(i).to_owned()).collect()
        };
        let spans: Vec<u64> = col(&sorted, "span_id")
            .iter()
            .map(|s| u64::from_str_radix(s, 16).expect("hex"))
            .collect();
        assert_eq!(spans, [5, 4, 2, 6, 3, 1]);
        assert_eq!(col(&generic, "span_id"), col(&sorted, "span_id"));
        let ends = sorted
            .column_by_name("end_time")
            .expect("end")
            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>();
        let starts = sorted
            .column_by_name("start_time")
            .expect("start")
            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>();
        for (i, id) in spans.iter().enumerate() {
            assert_eq!(
                ends.value(i) - starts.value(i),
                i64::try_from(*id).expect("small")
            );
        }
    }

    #[test]
    fn metrics_footer_names_the_series_with_histograms() {
        let float = |job: &str, ts| Sample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", job)]),
            timestamp_ms: ts,
            value: SampleValue::Float(1.0),
            exemplars: vec![],
        };
        let hist_labels = Labels::from_pairs([("__name__", "lat"), ("job", "h")]);
        let samples = vec![
            float("a", 1),
            Sample {
                labels: hist_labels.clone(),
                timestamp_ms: 1,
                value: SampleValue::Histogram(Box::default()),
                exemplars: vec![],
            },
            float("b", 2),
        ];
        let batch = crate::schema::metrics_batch(&samples).expect("batch");
        let sorted = sort_batches(Signal::Metrics, &[batch]).expect("sort");
        let file = Bytes::from(encode_parquet(Signal::Metrics, &sorted).expect("encode"));
        let meta = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .expect("footer");
        assert_eq!(
            histogram_series(meta.file_metadata()),
            Some(vec![hist_labels.series_id().0])
        );
        // Float-only files carry an empty set (not "unknown").
        let floats = crate::schema::metrics_batch(&[float("a", 1)]).expect("batch");
        let file = Bytes::from(encode_parquet(Signal::Metrics, &floats).expect("encode"));
        let meta = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .expect("footer");
        assert_eq!(histogram_series(meta.file_metadata()), Some(vec![]));
        // Files written before the key existed: unknown.
        assert_eq!(
            histogram_series(&FileMetaData::new(
                1,
                0,
                None,
                None,
                meta.file_metadata().schema_descr_ptr(),
                None
            )),
            None
        );
    }

    /// The metadata of a file of `rows` rows whose series directory footer value is
    /// `directory` (`None`: no directory).
    fn meta_with_directory(rows: i64, directory: Option<String>) -> FileMetaData {
        let file =
            Bytes::from(encode_parquet(Signal::Metrics, &batch(&[("a", 1)])).expect("encode"));
        let meta = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .expect("footer");
        let kvs = directory.map(|v| vec![KeyValue::new(SERIES_DIRECTORY_KEY.to_string(), v)]);
        FileMetaData::new(
            1,
            rows,
            None,
            kvs,
            meta.file_metadata().schema_descr_ptr(),
            None,
        )
    }

    fn runs_of(
        rows: i64,
        entries: &[DirectoryEntry],
    ) -> Result<Option<SeriesRuns>, DirectoryFault> {
        SeriesRuns::from_directory(&meta_with_directory(rows, Some(directory_hex(entries))))
    }

    #[test]
    fn a_series_directory_is_used_only_when_it_covers_its_file_once() {
        // Series 7: rows 0-1 and 5-6 (two slabs); series 9: rows 2-4.
        let good = [(7, 0, 2), (7, 5, 2), (9, 2, 3)];
        let runs = runs_of(7, &good).expect("fits").expect("a directory");
        let mut counts: Vec<(u64, u64)> = runs.row_counts().collect();
        counts.sort_unstable();
        assert_eq!(counts, [(7, 2), (7, 2), (9, 3)]);
        let only_9 = runs.selection(&[9].into_iter().collect());
        assert_eq!(
            Vec::from(only_9),
            vec![
                RowSelector::skip(2),
                RowSelector::select(3),
                RowSelector::skip(2)
            ]
        );
        let (first, ids) = runs.first_rows();
        assert_eq!(ids, [(7, 0), (9, 2)]);
        assert_eq!(
            Vec::from(first),
            vec![
                RowSelector::select(1),
                RowSelector::skip(1),
                RowSelector::select(1),
                RowSelector::skip(4)
            ]
        );
        // The same runs as the series_id column of those rows gives.
        let ids = [7u64, 7, 9, 9, 9, 7, 7];
        let column = RecordBatch::try_from_iter([(
            "series_id",
            Arc::new(datafusion::arrow::array::UInt64Array::from(ids.to_vec()))
                as datafusion::arrow::array::ArrayRef,
        )])
        .expect("batch");
        let from_column =
            SeriesRuns::from_batches(&[column.slice(0, 3), column.slice(3, 4)]).expect("runs");
        assert_eq!(
            Vec::from(from_column.selection(&[9].into_iter().collect())),
            {
                let s: Vec<RowSelector> = runs.selection(&[9].into_iter().collect()).into();
                s
            }
        );
        // No directory: nothing to check, nothing used.
        assert_eq!(
            SeriesRuns::from_directory(&meta_with_directory(7, None)),
            Ok(None)
        );
        // Every way of not covering the file's rows once is refused.
        let damaged: [(&str, i64, &[DirectoryEntry]); 8] = [
            ("fewer rows than the file", 8, &good),
            ("more rows than the file", 6, &good),
            ("a series left out", 7, &[(7, 0, 2), (7, 5, 2)]),
            (
                "a gap and an overlap",
                7,
                &[(7, 0, 2), (7, 5, 2), (9, 3, 3)],
            ),
            (
                "one row in two series",
                7,
                &[(7, 0, 3), (7, 5, 2), (9, 2, 3)],
            ),
            (
                "an entry of no rows",
                7,
                &[(7, 0, 2), (7, 5, 2), (8, 4, 0), (9, 2, 3)],
            ),
            ("rows past the end", 7, &[(7, 0, 2), (9, 2, u64::MAX)]),
            (
                "a series twice at one row",
                7,
                &[(7, 0, 2), (7, 0, 2), (9, 2, 5)],
            ),
        ];
        for (what, rows, entries) in damaged {
            assert!(runs_of(rows, entries).is_err(), "{what}");
        }
        // Stored out of id order (the encoding takes any order).
        assert!(
            SeriesRuns::from_directory(&meta_with_directory(
                7,
                Some(directory_hex(&[(9, 2, 3), (7, 0, 2), (7, 5, 2)]))
            ))
            .is_err()
        );
        // Not hex, or hex that is not a directory.
        for value in ["zz", "ff"] {
            assert!(
                SeriesRuns::from_directory(&meta_with_directory(7, Some(value.into()))).is_err(),
                "{value}"
            );
        }
        // A file claiming a negative row count.
        assert!(runs_of(-1, &good).is_err());
    }

    #[test]
    fn a_read_past_the_end_of_a_local_file_is_refused_before_any_buffer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("short.parquet");
        std::fs::write(&path, b"0123456789").expect("write");
        let watched = WatchedFile {
            file: std::fs::File::open(&path).expect("open"),
            len: 10,
            failure: Arc::default(),
        };
        // A damaged footer naming a terabyte-long column chunk: an error, not an abort.
        let err = watched.get_bytes(4, 1 << 40).expect_err("past the end");
        assert!(err.to_string().contains("the file is 10 bytes"), "{err}");
        assert!(watched.failure.lock().is_none(), "not an I/O failure");
        assert_eq!(watched.get_bytes(2, 3).expect("in range").as_ref(), b"234");
    }

    #[test]
    fn logs_sort_by_stream_then_line_shape_then_time_and_declare_only_the_stream() {
        use crate::model::LogRecord;
        let rec = |stream: &str, ts: i64, body: &str| LogRecord {
            timestamp_ns: ts,
            observed_timestamp_ns: ts,
            body: body.into(),
            stream: Labels::from_pairs([("service_name", stream)]),
            ..LogRecord::default()
        };
        // Two batches (as two memtable batches), JSON and text lines interleaved in time.
        let inputs = vec![
            crate::schema::logs_batch(&[
                rec("b", 4, "plain 4"),
                rec("a", 3, r#"{"n":3}"#),
                rec("a", 2, "plain 2"),
                rec("b", 1, r#"{"n":1}"#),
            ])
            .expect("batch"),
            crate::schema::logs_batch(&[
                rec("a", 1, r#"{"n":1}"#),
                rec("a", 5, ""),
                rec("b", 2, "plain 2"),
                rec("a", 4, "plain 4"),
            ])
            .expect("batch"),
        ];
        let sorted = sort_batches(Signal::Logs, &inputs).expect("sort");
        let ids = sorted
            .column_by_name("stream_id")
            .expect("stream_id")
            .as_primitive::<UInt64Type>();
        let ts = sorted
            .column_by_name("timestamp")
            .expect("timestamp")
            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>();
        let body = sorted
            .column_by_name("body")
            .expect("body")
            .as_string::<i32>();
        let a = Labels::from_pairs([("service_name", "a")]).series_id().0;
        let rows: Vec<(bool, i64, &str)> = (0..sorted.num_rows())
            .map(|i| (ids.value(i) == a, ts.value(i), body.value(i)))
            .collect();
        let (first, second) = if rows[0].0 {
            (true, false)
        } else {
            (false, true)
        };
        // Within a stream: JSON objects by time, then every other line (empty ones too)
        // by time; whole rows moved together.
        let expected_a = [
            (true, 1, r#"{"n":1}"#),
            (true, 3, r#"{"n":3}"#),
            (true, 2, "plain 2"),
            (true, 4, "plain 4"),
            (true, 5, ""),
        ];
        let expected_b = [
            (false, 1, r#"{"n":1}"#),
            (false, 2, "plain 2"),
            (false, 4, "plain 4"),
        ];
        let expected: Vec<(bool, i64, &str)> = if first {
            expected_a.iter().chain(&expected_b).copied().collect()
        } else {
            expected_b.iter().chain(&expected_a).copied().collect()
        };
        assert_eq!(rows, expected, "stream a first: {first}, b first: {second}");
        // The file claims no time order it does not have.
        let file = encode_parquet(Signal::Logs, &sorted).expect("encode");
        let meta = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file))
            .expect("footer")
            .metadata()
            .clone();
        let declared = meta
            .row_group(0)
            .sorting_columns()
            .expect("sorting columns");
        let stream_idx = schema(Signal::Logs).index_of("stream_id").expect("index") as i32;
        assert_eq!(declared.len(), 1);
        assert_eq!(declared[0].column_idx, stream_idx);
    }

    #[test]
    fn sort_batches_orders_rows_of_all_inputs_by_series_then_time() {
        let inputs = vec![
            batch(&[("b", 3), ("a", 2)]),
            batch(&[]),
            batch(&[("a", 1), ("b", 1), ("a", 3)]),
        ];
        let sorted = sort_batches(Signal::Metrics, &inputs).expect("sort");
        assert_eq!(sorted.num_rows(), 5);
        let ids = sorted.column(0).as_primitive::<UInt64Type>();
        let ts = sorted
            .column_by_name("timestamp")
            .expect("timestamp")
            .as_primitive::<TimestampMillisecondType>();
        let values = sorted
            .column_by_name("value")
            .expect("value")
            .as_primitive::<Float64Type>();
        let keys: Vec<(u64, i64)> = (0..5).map(|i| (ids.value(i), ts.value(i))).collect();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(keys, expected);
        // Whole rows moved together: each value still equals its timestamp.
        for i in 0..5 {
            assert_eq!(values.value(i), ts.value(i) as f64);
        }
        let labels = sorted.column_by_name("labels").expect("labels").as_map();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")])
            .series_id()
            .0;
        for i in 0..5 {
            let job = crate::engine::labels_at(labels, i);
            assert_eq!(ids.value(i) == a, job.get("job") == Some("a"));
        }
    }
}
