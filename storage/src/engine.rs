//! The storage engine: durable writes, read-your-writes snapshots, flush, compaction and
//! retention.
//!
//! Write path: rows -> Arrow batch -> WAL record (fsynced, group commit) -> memtable and
//! label index -> acknowledged. Writes hold the `gate` shared; a flush takes it exclusively
//! just long enough to rotate the WAL and freeze the memtables, so every record in the
//! older segments is in a frozen memtable. Frozen memtables are written as Parquet files,
//! the catalog is replaced atomically (naming the files and the segment replay starts
//! from), and only then are the older WAL segments deleted.
//!
//! The catalog's in-memory copy and the memtables live in one `State` under one lock, so
//! a query snapshot never sees a row twice (frozen and flushed) or not at all.

use crate::catalog::{Catalog, FileMeta};
use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::files::{
    DirectoryFault, FileStore, ROW_GROUP_ROWS, RowRef, SeriesRuns, decode_local_parquet,
    decode_local_parquet_with_footer, decode_parquet, read_local_footer, sort_order,
};
use crate::index::{LabelIndex, LabelMatcher};
use crate::model::{Labels, LogRecord, MetricMetadata, MetricsWrite, SeriesId, Signal, Span};
use crate::schema::{self, time_column};
use crate::telemetry;
use crate::tenant::TenantId;
use crate::token_index;
use crate::wal::{SegmentSeq, Wal, sync_dir};
use crate::wal_entry::{self, Entry};
use datafusion::arrow::array::{Array, AsArray, MapArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{TimestampMillisecondType, TimestampNanosecondType, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parking_lot::RwLock;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

struct MemTable {
    batches: Vec<RecordBatch>,
    bytes: u64,
    first_write: Instant,
}

struct Frozen {
    tenant: TenantId,
    signal: Signal,
    batches: Vec<RecordBatch>,
    bytes: u64,
}

#[derive(Default)]
struct State {
    active: HashMap<(TenantId, Signal), MemTable>,
    frozen: Vec<Frozen>,
    catalog: Catalog,
    series: HashMap<TenantId, LabelIndex>,
    streams: HashMap<TenantId, LabelIndex>,
    metadata: HashMap<TenantId, BTreeMap<String, MetricMetadata>>,
}

impl State {
    fn pending_bytes(&self) -> u64 {
        self.active.values().map(|m| m.bytes).sum::<u64>()
            + self.frozen.iter().map(|f| f.bytes).sum::<u64>()
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Rows {
                tenant,
                signal,
                batch,
            } => {
                match signal {
                    Signal::Metrics => index_batch(
                        self.series.entry(tenant.clone()).or_default(),
                        &batch,
                        "series_id",
                        "labels",
                    ),
                    Signal::Logs => index_batch(
                        self.streams.entry(tenant.clone()).or_default(),
                        &batch,
                        "stream_id",
                        "stream_labels",
                    ),
                    Signal::Traces => {}
                }
                // Metric rows drop their label strings: the index holds each set once.
                let stripped = if signal == Signal::Metrics {
                    schema::strip_metric_labels_sized(&batch).ok()
                } else {
                    None
                };
                let (batch, bytes) = match stripped {
                    Some((b, own)) => (b, own as u64),
                    None => {
                        let bytes = batch.get_array_memory_size() as u64;
                        (batch, bytes)
                    }
                };
                telemetry::MEMTABLE_BYTES.add(bytes as i64);
                let mem = self
                    .active
                    .entry((tenant, signal))
                    .or_insert_with(|| MemTable {
                        batches: Vec::new(),
                        bytes: 0,
                        first_write: Instant::now(),
                    });
                mem.bytes += bytes;
                mem.batches.push(batch);
            }
            Entry::Metadata { tenant, metadata } => {
                let map = self.metadata.entry(tenant).or_default();
                for m in metadata {
                    map.insert(m.metric_family_name.clone(), m);
                }
            }
        }
    }
}

/// Deletes `.parquet` files (and their sidecars) under `root` that the catalog does not
/// name: left behind by
/// a crash between a catalog update and the deletion of the files it replaced (or a
/// flush that wrote a file but never catalogued it). Returns how many went.
fn remove_orphan_files(root: &Path, catalog: &Catalog) -> usize {
    let known: BTreeSet<PathBuf> = catalog.files.iter().map(|f| root.join(&f.path)).collect();
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(path),
                Ok(t) if t.is_file() => {
                    // A data file, or a sidecar named after one (`<file>.parquet.tokens`).
                    let name = path.to_string_lossy();
                    let data_file = match name.strip_suffix(".tokens") {
                        Some(base) => PathBuf::from(base),
                        None => path.clone(),
                    };
                    let ours = data_file.extension().is_some_and(|e| e == "parquet");
                    if ours && !known.contains(&data_file) && std::fs::remove_file(&path).is_ok() {
                        removed += 1;
                    }
                }
                _ => {}
            }
        }
    }
    removed
}

/// Adds the label sets of a batch's rows to an index.
fn index_batch(index: &mut LabelIndex, batch: &RecordBatch, id_col: &str, map_col: &str) {
    let (Some(ids), Some(maps)) = (batch.column_by_name(id_col), batch.column_by_name(map_col))
    else {
        return;
    };
    let Some(ids) = ids.as_primitive_opt::<UInt64Type>() else {
        return;
    };
    let Some(maps) = maps.as_map_opt() else {
        return;
    };
    let before = index.len();
    for row in 0..batch.num_rows() {
        let id = SeriesId(ids.value(row));
        if index.contains(id) {
            continue;
        }
        index.insert(id, &labels_at(maps, row));
    }
    if id_col == "series_id" {
        telemetry::SERIES.add((index.len() - before) as i64);
    }
}

/// The labels stored in row `row` of a map column.
pub fn labels_at(maps: &MapArray, row: usize) -> Labels {
    let entries = maps.value(row);
    let (Some(keys), Some(values)) = (
        entries.column(0).as_any().downcast_ref::<StringArray>(),
        entries.column(1).as_any().downcast_ref::<StringArray>(),
    ) else {
        return Labels::default();
    };
    Labels::from_pairs((0..keys.len()).map(|i| (keys.value(i), values.value(i))))
}

/// One partition's rows encoded as Parquet.
struct EncodedPart {
    partition: String,
    min_ns: i64,
    max_ns: i64,
    rows: u64,
    bytes: Vec<u8>,
    /// For logs, the token index sidecar's bytes.
    tokens: Option<Vec<u8>>,
    /// For metrics files in label order, the first and last row's series.
    series: Option<(u64, u64)>,
}

/// Read-only view of one tenant's data of one signal at one moment.
pub struct Snapshot {
    /// Rows still in memory (not yet in files), in write order.
    pub batches: Vec<RecordBatch>,
    /// Files overlapping the requested time range, in an order where of two holding a row
    /// of one series and timestamp the later written comes later (for metrics: by time
    /// window, then write order).
    pub files: Vec<FileMeta>,
    /// Absolute local directory the files' paths are relative to.
    pub files_root: PathBuf,
}

/// How long a file dropped from the catalog (by compaction or retention) stays on disk:
/// a query that took its snapshot just before may still be reading it. Longer than any
/// query timeout.
const DELETE_GRACE: Duration = Duration::from_secs(10 * 60);

struct Inner {
    config: StorageConfig,
    /// `<data_dir>/lock`, exclusively locked for as long as the storage is open: a second
    /// process on the same directory would replay the same WAL and compact the same files.
    _dir_lock: std::fs::File,
    wal: Wal,
    files: FileStore,
    /// Files no longer in the catalog, with when they left it; deleted after
    /// [`DELETE_GRACE`].
    graveyard: parking_lot::Mutex<Vec<(Instant, String)>>,
    gate: tokio::sync::RwLock<()>,
    maintenance: tokio::sync::Mutex<()>,
    state: RwLock<State>,
    /// Log batches as they are written, for live tails; sent only while someone listens.
    logs_appended: tokio::sync::broadcast::Sender<LogsAppended>,
}

/// Log rows one write just made durable and visible to queries (see
/// [`Storage::subscribe_logs`]).
#[derive(Debug, Clone)]
pub struct LogsAppended {
    pub tenant: TenantId,
    /// The rows in the memtable's schema (every logs column).
    pub batch: RecordBatch,
}

/// Batches a slow log subscriber may fall behind by before it misses some.
const LOGS_APPENDED_CAPACITY: usize = 1024;

/// Handle to the storage engine. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Takes the data directory's lock file (`<dir>/lock`), held until the returned file is
/// dropped. The lock is the operating system's (`flock`), so it goes away with the process
/// that held it: a crash leaves nothing to clean up.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::DirectoryInUse { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// `YYYY-MM-DD` (UTC) of a nanosecond timestamp.
pub fn day_of(ns: i64) -> String {
    let days = ns.div_euclid(86_400_000_000_000);
    // Civil-from-days (proleptic Gregorian), after H. Hinnant's public-domain algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

const DAY_NS: i64 = 86_400_000_000_000;

/// The raw values of a batch's time column (in the signal's unit, see [`time_column`]).
fn time_values(signal: Signal, batch: &RecordBatch) -> Result<&[i64]> {
    let (col, unit) = time_column(signal);
    let c = batch.column_by_name(col);
    let values = if unit == 1 {
        c.and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .map(|a| a.values().as_ref())
    } else {
        c.and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .map(|a| a.values().as_ref())
    };
    values.ok_or_else(|| {
        datafusion::arrow::error::ArrowError::SchemaError(format!(
            "{signal:?} batch lacks its time column {col}"
        ))
        .into()
    })
}

/// `YYYY-MM-DDTHHMM` (UTC) of the metrics time window starting at `ns`: the catalog
/// partition (and directory) of its files.
pub fn window_name(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000).rem_euclid(86_400);
    format!("{}T{:02}{:02}", day_of(ns), secs / 3600, secs % 3600 / 60)
}

/// The number of the time window of `width_ns` a time (ns) falls in.
fn window_of(ns: i64, width_ns: i64) -> i64 {
    ns.div_euclid(width_ns)
}

/// Whether a metrics file's rows lie in one time window of `width_ns`.
fn in_one_window(f: &FileMeta, width_ns: i64) -> bool {
    window_of(f.min_time_ns, width_ns) == window_of(f.max_time_ns, width_ns)
}

/// Rows and time range (nanoseconds) of one partition (a UTC day, or for metrics a time
/// window) of a flush or compaction.
struct PartitionRange {
    /// The partition's number: which window of the partition width (a day for logs and
    /// traces) since the epoch (see [`window_of`]).
    window: i64,
    min_ns: i64,
    max_ns: i64,
    rows: u64,
}

/// The partitions of `width_ns` the rows fall in (in time order), with each one's rows and
/// time range.
fn partition_ranges(signal: Signal, times: &[&[i64]], width_ns: i64) -> Vec<PartitionRange> {
    let (_, unit) = time_column(signal);
    let mut parts: Vec<PartitionRange> = Vec::new();
    // Rows mostly follow the last one's partition; others are found by window, so rows
    // with timestamps over many windows cost no scan of the list each.
    let mut index: HashMap<i64, usize> = HashMap::new();
    let mut last = 0usize;
    for t in times {
        for v in t.iter() {
            let ns = v.saturating_mul(unit);
            let window = window_of(ns, width_ns);
            if parts.get(last).is_none_or(|p| p.window != window) {
                last = *index.entry(window).or_insert_with(|| {
                    parts.push(PartitionRange {
                        window,
                        min_ns: ns,
                        max_ns: ns,
                        rows: 0,
                    });
                    parts.len() - 1
                });
            }
            if let Some(r) = parts.get_mut(last) {
                r.min_ns = r.min_ns.min(ns);
                r.max_ns = r.max_ns.max(ns);
                r.rows += 1;
            }
        }
    }
    parts.sort_by_key(|p| p.window);
    parts
}

/// `order` split by the partition (of `parts`, sorted by window) each row's time falls
/// in, order kept within each: one pass over the rows.
fn rows_by_partition(
    signal: Signal,
    order: &[RowRef],
    times: &[&[i64]],
    parts: &[PartitionRange],
    width_ns: i64,
) -> Vec<Vec<RowRef>> {
    let (_, unit) = time_column(signal);
    let mut out: Vec<Vec<RowRef>> = parts
        .iter()
        .map(|p| Vec::with_capacity(usize::try_from(p.rows).unwrap_or(0)))
        .collect();
    for &(b, r) in order {
        let t = times
            .get(b as usize)
            .and_then(|t| t.get(r as usize))
            .copied()
            .unwrap_or(0);
        let window = window_of(t.saturating_mul(unit), width_ns);
        if let Ok(at) = parts.binary_search_by_key(&window, |p| p.window)
            && let Some(rows) = out.get_mut(at)
        {
            rows.push((b, r));
        }
    }
    out
}

/// The token index sidecar of a logs file made of the rows `order` names.
fn log_token_index(batches: &[RecordBatch], order: &[RowRef]) -> Vec<u8> {
    let bodies: Vec<Option<&StringArray>> = batches
        .iter()
        .map(|b| {
            b.column_by_name("body")
                .and_then(|c| c.as_string_opt::<i32>())
        })
        .collect();
    let lines: Vec<&str> = order
        .iter()
        .map(|&(b, r)| {
            let r = r as usize;
            match bodies.get(b as usize).copied().flatten() {
                Some(body) if r < body.len() => body.value(r),
                _ => "",
            }
        })
        .collect();
    token_index::TokenIndex::build(&lines, ROW_GROUP_ROWS).encode()
}

/// Keeps the data file at `from` (catalog path `path`) as `<data_dir>/quarantine/<path>`,
/// a hard link (the original goes as files no catalog names do), with its token-index
/// sidecar if it has one; returns the new path. The link is made durable before the
/// caller drops the file from the catalog. A different file already under that name (a
/// path quarantined before, then reused) is not replaced: this one gets a numbered name.
fn keep_in_quarantine(data_dir: &Path, from: &Path, f: &FileMeta) -> Result<PathBuf> {
    let path = f.path.as_str();
    let base = data_dir.join("quarantine").join(path);
    let dir = base.parent().unwrap_or(data_dir).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut n = 0u32;
    let to = loop {
        let to = match n {
            0 => base.clone(),
            _ => PathBuf::from(format!("{}.{n}", base.display())),
        };
        match std::fs::hard_link(from, &to) {
            Ok(()) => break to,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && same_file(from, &to) => {
                break to;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(Error::io(&to, e)),
        }
    };
    if f.signal == Signal::Logs {
        let sidecar = |p: &Path| PathBuf::from(token_index::sidecar_path(&p.to_string_lossy()));
        match std::fs::hard_link(sidecar(from), sidecar(&to)) {
            Err(e)
                if e.kind() != std::io::ErrorKind::NotFound
                    && e.kind() != std::io::ErrorKind::AlreadyExists =>
            {
                return Err(Error::io(sidecar(&to), e));
            }
            _ => {}
        }
    }
    sync_dir(&dir)?;
    Ok(to)
}

/// Whether two paths name one file (the same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Counts and logs a file taken out of the catalog for quarantine.
fn log_quarantined(f: &FileMeta, kept: &Path, why: &Error) {
    telemetry::QUARANTINED_FILES.add(1);
    tracing::error!(
        tenant = %f.tenant,
        signal = %f.signal,
        file = %f.path,
        rows = f.rows,
        kept_as = %kept.display(),
        error = %why,
        "a data file cannot be read: it is taken out of the catalog (its rows no longer \
         answer queries) and kept in quarantine for inspection"
    );
}

/// Logs that a metrics file's series directory is not used because it does not fit the
/// file: its rows are found from its `series_id` column instead.
fn warn_directory_unfit(f: &FileMeta, fault: &DirectoryFault) {
    tracing::warn!(
        tenant = %f.tenant,
        file = %Path::new("files").join(&f.path).display(),
        fault = %fault,
        "a metrics file's series directory does not fit the file: it is ignored and the \
         file's series are read from its series_id column"
    );
}

/// The label-index columns (`id_col`, `map_col`) of a catalogued file, as far as the
/// index needs them: of a metrics file with a fitting series directory, each series'
/// first row; else every row. The series at the chosen rows are checked against the
/// directory: one naming a series where another lies (which would leave a series out of
/// the index, its labels unknown) is ignored and every row read.
fn read_index_columns(
    path: &Path,
    f: &FileMeta,
    id_col: &str,
    map_col: &str,
) -> Result<Vec<RecordBatch>> {
    let mut expected: Option<Vec<(u64, u64)>> = None;
    let mut fault = None;
    let read = decode_local_parquet(path, Some(&[id_col, map_col]), |meta| {
        if f.signal != Signal::Metrics {
            return None;
        }
        match SeriesRuns::from_directory(meta) {
            Ok(Some(runs)) => {
                let (selection, ids) = runs.first_rows();
                expected = Some(ids);
                Some(selection)
            }
            Ok(None) => None,
            Err(e) => {
                fault = Some(e);
                None
            }
        }
    })?;
    if let Some(fault) = fault {
        warn_directory_unfit(f, &fault);
    }
    let Some(expected) = expected else {
        return Ok(read);
    };
    let found: Vec<u64> = read
        .iter()
        .filter_map(|b| {
            b.column_by_name(id_col)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        })
        .flat_map(|ids| ids.values().iter().copied())
        .collect();
    let Some(&(id, row)) = expected
        .iter()
        .zip(found.iter().map(Some).chain(std::iter::repeat(None)))
        .find(|((id, _), found)| *found != Some(id))
        .map(|(e, _)| e)
    else {
        return Ok(read);
    };
    let fault = DirectoryFault::new(format!(
        "row {row} is not the first row of series {id:016x} that the directory says it is"
    ));
    warn_directory_unfit(f, &fault);
    decode_local_parquet(path, Some(&[id_col, map_col]), |_| None)
}

/// One input of a metrics window merge past the row cap: its footer and its rows by
/// series, read once for all the merge's series ranges.
struct MergeInput {
    file: FileMeta,
    path: PathBuf,
    footer: ArrowReaderMetadata,
    runs: SeriesRuns,
    /// Whether the runs come from the file's series directory (not its `series_id`).
    from_directory: bool,
}

/// Reads a merge input's footer and its rows by series: from its series directory when
/// it has one that fits the file (and `use_directory`), else from its `series_id` column.
fn load_merge_input(f: FileMeta, path: PathBuf, use_directory: bool) -> Result<MergeInput> {
    let footer = read_local_footer(&path)?;
    let directory = match use_directory {
        true => SeriesRuns::from_directory(footer.metadata().file_metadata()),
        false => Ok(None),
    };
    let (runs, from_directory) = match directory {
        Ok(Some(runs)) => (runs, true),
        unfit => {
            if let Err(fault) = unfit {
                warn_directory_unfit(&f, &fault);
            }
            let ids = decode_local_parquet_with_footer(&path, &footer, Some(&["series_id"]), None)?;
            (SeriesRuns::from_batches(&ids)?, false)
        }
    };
    Ok(MergeInput {
        file: f,
        path,
        footer,
        runs,
        from_directory,
    })
}

/// A window merge past the row cap: its inputs, read before, and its series ranges.
struct SplitMerge<'a> {
    inputs: &'a [Arc<MergeInput>],
    ranges: Vec<HashSet<u64>>,
}

/// Why a window merge failed: an input that could not be read (quarantined when its
/// bytes are bad), or anything else.
enum MergeFailure {
    Read(FileMeta, Error),
    /// Input number `.0`'s series directory put `.1` rows of other series among those of
    /// one range's series.
    Misplaced(usize, usize),
    Write(Error),
}

/// The metrics columns a merge reads: all but the label columns (the index has them).
fn metric_columns_without_labels() -> Vec<String> {
    schema::schema(Signal::Metrics)
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "metric_name" && n != "labels")
        .collect()
}

/// The rows of the series `ids` of a merge input, without their label columns, read with
/// the input's footer and runs ([`load_merge_input`]); with how many of them, read by the
/// file's series directory, turn out to be of other series.
fn read_series_rows(input: &MergeInput, ids: &HashSet<u64>) -> Result<(Vec<RecordBatch>, usize)> {
    let cols = metric_columns_without_labels();
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    let selection = input.runs.selection(ids);
    let read =
        decode_local_parquet_with_footer(&input.path, &input.footer, Some(&cols), Some(selection))?;
    let mut out = Vec::with_capacity(read.len());
    let mut strays = 0usize;
    for b in read.iter().filter(|b| b.num_rows() > 0) {
        // The runs of a directory that fits cover every row once, but the series it
        // names at them are checked only here.
        if input.from_directory
            && let Some((series, _)) = schema::metric_keys(b)
        {
            strays += series.iter().filter(|id| !ids.contains(id)).count();
        }
        out.push(schema::metrics_batch_without_labels(b)?);
    }
    Ok((out, strays))
}

impl Storage {
    /// Opens (or creates) the store in `config.data_dir`, replaying the WAL.
    pub fn open(config: StorageConfig) -> Result<Storage> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let dir_lock = lock_data_dir(&dir)?;
        let mut catalog = Catalog::load(&dir)?;
        let files = FileStore::local(&dir.join("files"))?;
        let mut state = State::default();
        for (tenant, list) in &catalog.metadata {
            if let Ok(t) = TenantId::new(tenant.clone()) {
                let map = state.metadata.entry(t).or_default();
                for m in list {
                    map.insert(m.metric_family_name.clone(), m.clone());
                }
            }
        }
        let mut unreadable = Vec::new();
        for f in &catalog.files {
            let (index, id_col, map_col) = match f.signal {
                Signal::Metrics => (
                    state.series.entry(f.tenant.clone()).or_default(),
                    "series_id",
                    "labels",
                ),
                Signal::Logs => (
                    state.streams.entry(f.tenant.clone()).or_default(),
                    "stream_id",
                    "stream_labels",
                ),
                Signal::Traces => continue,
            };
            // Only the footer and the two index columns are read, not the whole file; of a
            // metrics file with a series directory only each series' first row (decoding
            // every row of a compacted file would take gigabytes the allocator then keeps).
            let path = files.local_path(&f.path);
            let read = read_index_columns(&path, f, id_col, map_col);
            match read {
                Ok(batches) => {
                    for batch in batches {
                        index_batch(index, &batch, id_col, map_col);
                    }
                }
                // One damaged file must not keep every other row from being served: it
                // leaves the catalog for quarantine/, as compaction does with one.
                Err(e) if e.is_corrupt_file() => {
                    let kept = keep_in_quarantine(&dir, &path, f)?;
                    log_quarantined(f, &kept, &e);
                    unreadable.push(f.id);
                }
                Err(e) => return Err(e),
            }
        }
        if !unreadable.is_empty() {
            catalog.files.retain(|f| !unreadable.contains(&f.id));
            catalog.store(&dir)?;
        }
        let mut undecodable = 0u64;
        let (wal, replay) =
            Wal::open(
                &dir.join("wal"),
                catalog.replay_from(),
                |record| match wal_entry::decode(record) {
                    Some(entry) => state.apply(entry),
                    None => undecodable += 1,
                },
            )?;
        let dropped = replay.dropped_records + undecodable;
        let replayed = replay.records;
        tracing::info!(
            data_dir = %dir.display(),
            files = catalog.files.len(),
            wal_records = replayed,
            dropped_records = dropped,
            "storage opened"
        );
        update_file_gauges(&catalog);
        let orphans = remove_orphan_files(files.root(), &catalog);
        if orphans > 0 {
            tracing::info!(files = orphans, "removed data files no catalog names");
        }
        state.catalog = catalog;
        Ok(Storage {
            inner: Arc::new(Inner {
                config,
                _dir_lock: dir_lock,
                wal,
                files,
                graveyard: parking_lot::Mutex::new(Vec::new()),
                gate: tokio::sync::RwLock::new(()),
                maintenance: tokio::sync::Mutex::new(()),
                state: RwLock::new(state),
                logs_appended: tokio::sync::broadcast::channel(LOGS_APPENDED_CAPACITY).0,
            }),
        })
    }

    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    fn check_pressure(&self) -> Result<()> {
        let pending = self.inner.state.read().pending_bytes();
        let limit = self.inner.config.max_pending_bytes;
        if pending > limit {
            return Err(Error::Overloaded {
                pending_bytes: pending,
                limit_bytes: limit,
            });
        }
        Ok(())
    }

    async fn write_entry(&self, payload: Vec<u8>, entry: Entry, rows: (Signal, u64)) -> Result<()> {
        let _gate = self.inner.gate.read().await;
        self.inner.wal.append(payload).await?;
        self.inner.state.write().apply(entry);
        telemetry::ROWS_WRITTEN.add(rows.0, rows.1);
        Ok(())
    }

    async fn write_batch(
        &self,
        tenant: &TenantId,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let t = tenant.clone();
        let (payload, batch) = tokio::task::spawn_blocking(move || {
            wal_entry::encode_rows(&t, signal, &batch).map(|p| (p, batch))
        })
        .await
        .map_err(|_| Error::ShuttingDown)??;
        let rows = batch.num_rows() as u64;
        // Live tails get the batch once it is durable and queryable; nothing when no one tails.
        let tail = (signal == Signal::Logs && self.inner.logs_appended.receiver_count() > 0)
            .then(|| batch.clone());
        let entry = Entry::Rows {
            tenant: tenant.clone(),
            signal,
            batch,
        };
        self.write_entry(payload, entry, (signal, rows)).await?;
        if let Some(batch) = tail {
            // An error only means every subscriber left meanwhile.
            let _ = self.inner.logs_appended.send(LogsAppended {
                tenant: tenant.clone(),
                batch,
            });
        }
        Ok(())
    }

    /// Every log batch written from now on, once it is durable and visible to queries
    /// (rows a query run after the batch arrives sees too). A receiver that falls more than
    /// 1024 batches behind misses the oldest (`RecvError::Lagged`).
    pub fn subscribe_logs(&self) -> tokio::sync::broadcast::Receiver<LogsAppended> {
        self.inner.logs_appended.subscribe()
    }

    /// Durably writes metric samples and metadata; returns once they are fsynced.
    pub async fn write_metrics(&self, tenant: &TenantId, write: MetricsWrite) -> Result<()> {
        self.check_pressure()?;
        let new_meta: Vec<MetricMetadata> = {
            let state = self.inner.state.read();
            let known = state.metadata.get(tenant);
            write
                .metadata
                .into_iter()
                .filter(|m| known.and_then(|k| k.get(&m.metric_family_name)) != Some(m))
                .collect()
        };
        if !new_meta.is_empty() {
            let payload = wal_entry::encode_metadata(tenant, &new_meta)?;
            let entry = Entry::Metadata {
                tenant: tenant.clone(),
                metadata: new_meta,
            };
            self.write_entry(payload, entry, (Signal::Metrics, 0))
                .await?;
        }
        let samples = write.samples;
        let batch = tokio::task::spawn_blocking(move || schema::metrics_batch(&samples))
            .await
            .map_err(|_| Error::ShuttingDown)??;
        self.write_batch(tenant, Signal::Metrics, batch).await
    }

    /// Durably writes log records.
    pub async fn write_logs(&self, tenant: &TenantId, records: Vec<LogRecord>) -> Result<()> {
        self.check_pressure()?;
        let batch = tokio::task::spawn_blocking(move || schema::logs_batch(&records))
            .await
            .map_err(|_| Error::ShuttingDown)??;
        self.write_batch(tenant, Signal::Logs, batch).await
    }

    /// Durably writes a `logs` batch (built with [`schema::LogsBuilder`]).
    pub async fn write_logs_batch(&self, tenant: &TenantId, batch: RecordBatch) -> Result<()> {
        self.check_pressure()?;
        self.write_batch(tenant, Signal::Logs, batch).await
    }

    /// Durably writes spans.
    pub async fn write_spans(&self, tenant: &TenantId, spans: Vec<Span>) -> Result<()> {
        self.check_pressure()?;
        let batch = tokio::task::spawn_blocking(move || schema::spans_batch(&spans))
            .await
            .map_err(|_| Error::ShuttingDown)??;
        self.write_batch(tenant, Signal::Traces, batch).await
    }

    /// Durably writes a `spans` batch (built with [`schema::SpansBuilder`]).
    pub async fn write_spans_batch(&self, tenant: &TenantId, batch: RecordBatch) -> Result<()> {
        self.check_pressure()?;
        self.write_batch(tenant, Signal::Traces, batch).await
    }

    /// The data of one tenant and signal that may hold rows in `[start_ns, end_ns]`, every
    /// column filled.
    pub fn snapshot(
        &self,
        tenant: &TenantId,
        signal: Signal,
        start_ns: i64,
        end_ns: i64,
    ) -> Snapshot {
        let mut snap = self.snapshot_by_series(tenant, signal, start_ns, end_ns);
        if signal == Signal::Metrics && !snap.batches.is_empty() {
            let labels = self.series_labels(tenant, &snap.batches);
            let lookup = |id: u64| labels.get(&id).cloned();
            snap.batches = snap
                .batches
                .iter()
                .map(|b| schema::fill_metric_labels(b, &lookup).unwrap_or_else(|_| b.clone()))
                .collect();
        }
        snap
    }

    /// The label sets of the series that rows of metric batches belong to.
    /// Each series of `batches` numbered in the order of its label set (metric name
    /// first), which is the order rows take in metrics files.
    fn series_ranks(&self, tenant: &TenantId, batches: &[RecordBatch]) -> HashMap<u64, u32> {
        let ids: HashSet<u64> = batches
            .iter()
            .filter_map(schema::metric_keys)
            .flat_map(|(ids, _)| ids.iter().copied())
            .collect();
        let state = self.inner.state.read();
        let Some(index) = state.series.get(tenant) else {
            return HashMap::new();
        };
        index
            .sorted_by_labels(ids)
            .into_iter()
            .enumerate()
            .map(|(rank, id)| (id, u32::try_from(rank).unwrap_or(u32::MAX)))
            .collect()
    }

    /// The label sets of series ids of a tenant (`None` for an id the index lacks).
    pub fn labels_of_series(&self, tenant: &TenantId, ids: &[u64]) -> Vec<Option<Labels>> {
        let state = self.inner.state.read();
        let index = state.series.get(tenant);
        ids.iter()
            .map(|&id| index.and_then(|i| i.labels_of(SeriesId(id))))
            .collect()
    }

    fn series_labels(&self, tenant: &TenantId, batches: &[RecordBatch]) -> HashMap<u64, Labels> {
        let state = self.inner.state.read();
        let Some(index) = state.series.get(tenant) else {
            return HashMap::new();
        };
        let mut out = HashMap::new();
        for b in batches {
            let Some(ids) = b
                .column_by_name("series_id")
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            else {
                continue;
            };
            for id in ids.values().iter() {
                if !out.contains_key(id)
                    && let Some(l) = index.labels_of(SeriesId(*id))
                {
                    out.insert(*id, l);
                }
            }
        }
        out
    }

    /// Like [`Storage::snapshot`], but metric rows still in memory come with an empty
    /// `metric_name` and `labels`: readers that select series through the label index
    /// (PromQL) know each series' labels already and skip rebuilding them per row.
    pub fn snapshot_by_series(
        &self,
        tenant: &TenantId,
        signal: Signal,
        start_ns: i64,
        end_ns: i64,
    ) -> Snapshot {
        let state = self.inner.state.read();
        let mut batches = Vec::new();
        for f in state
            .frozen
            .iter()
            .filter(|f| &f.tenant == tenant && f.signal == signal)
        {
            batches.extend(f.batches.iter().cloned());
        }
        if let Some(m) = state.active.get(&(tenant.clone(), signal)) {
            batches.extend(m.batches.iter().cloned());
        }
        let mut files = state.catalog.files_for(tenant, signal, start_ns, end_ns);
        if signal == Signal::Metrics {
            // Files of different time windows never hold rows of one time: in window order
            // (write order within a window) a series' rows arrive in time order, its runs
            // of consecutive files to be concatenated rather than merged. A file spanning
            // windows (not yet split by compaction) keeps write order for all.
            let width = self.inner.config.metric_block_ns();
            if files.iter().all(|f| in_one_window(f, width)) {
                files.sort_by_key(|f| window_of(f.min_time_ns, width));
            }
        }
        Snapshot {
            batches,
            files,
            files_root: self.inner.files.root().to_path_buf(),
        }
    }

    /// The series (or, for logs, streams) of a tenant matching every matcher.
    pub fn select_labels(
        &self,
        tenant: &TenantId,
        signal: Signal,
        matchers: &[LabelMatcher],
    ) -> Vec<(SeriesId, Labels)> {
        let state = self.inner.state.read();
        let index = match signal {
            Signal::Metrics => state.series.get(tenant),
            Signal::Logs => state.streams.get(tenant),
            Signal::Traces => None,
        };
        index
            .map(|idx| idx.resolve(&idx.select(matchers)).collect())
            .unwrap_or_default()
    }

    /// The series matching `matchers` (each once), sorted by label set: `f` gets each one's
    /// id and (name, value) pairs in label order, borrowed from the index, without label
    /// sets being built. Past `max` matches nothing is visited and `Err(count)` says how
    /// many matched. `f` runs under the index's read lock: it should only copy.
    pub fn each_series_sorted(
        &self,
        tenant: &TenantId,
        signal: Signal,
        matchers: &[LabelMatcher],
        max: usize,
        f: &mut crate::index::SeriesVisitor<'_>,
    ) -> std::result::Result<usize, usize> {
        let state = self.inner.state.read();
        let index = match signal {
            Signal::Metrics => state.series.get(tenant),
            Signal::Logs => state.streams.get(tenant),
            Signal::Traces => None,
        };
        let Some(index) = index else { return Ok(0) };
        let ords = index.select(matchers);
        let n = usize::try_from(ords.len()).unwrap_or(usize::MAX);
        if n > max {
            return Err(n);
        }
        index.each_sorted(&ords, f);
        Ok(n)
    }

    /// How many series a tenant has, and which of `ids` are among them.
    pub fn series_status(&self, tenant: &TenantId, ids: &[SeriesId]) -> (usize, Vec<bool>) {
        let state = self.inner.state.read();
        match state.series.get(tenant) {
            Some(index) => (
                index.len(),
                ids.iter().map(|id| index.contains(*id)).collect(),
            ),
            None => (0, vec![false; ids.len()]),
        }
    }

    /// Metric metadata of a tenant, by family name.
    pub fn metadata(&self, tenant: &TenantId) -> BTreeMap<String, MetricMetadata> {
        self.inner
            .state
            .read()
            .metadata
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }

    /// Bytes waiting in memtables.
    pub fn pending_bytes(&self) -> u64 {
        self.inner.state.read().pending_bytes()
    }

    /// Writes every memtable to Parquet and truncates the WAL.
    pub async fn flush(&self) -> Result<()> {
        let _m = self.inner.maintenance.lock().await;
        let started = Instant::now();
        let seq: SegmentSeq = {
            let _gate = self.inner.gate.write().await;
            let seq = self.inner.wal.rotate().await?;
            let mut state = self.inner.state.write();
            let active = std::mem::take(&mut state.active);
            for ((tenant, signal), mem) in active {
                state.frozen.push(Frozen {
                    tenant,
                    signal,
                    batches: mem.batches,
                    bytes: mem.bytes,
                });
            }
            seq
        };
        let jobs: Vec<(TenantId, Signal, Vec<RecordBatch>)> = self
            .inner
            .state
            .read()
            .frozen
            .iter()
            .map(|f| (f.tenant.clone(), f.signal, f.batches.clone()))
            .collect();
        let mut catalog = self.inner.state.read().catalog.clone();
        for (tenant, signal, batches) in jobs {
            let new_files = self
                .write_files(
                    &mut catalog,
                    &tenant,
                    signal,
                    batches,
                    signal == Signal::Metrics,
                    0,
                    None,
                )
                .await?;
            catalog.files.extend(new_files);
        }
        catalog.wal_replay_from = seq.0;
        catalog.metadata = {
            let state = self.inner.state.read();
            state
                .metadata
                .iter()
                .map(|(t, m)| (t.to_string(), m.values().cloned().collect()))
                .collect()
        };
        self.store_catalog(&catalog).await?;
        {
            let mut state = self.inner.state.write();
            let freed: u64 = state.frozen.iter().map(|f| f.bytes).sum();
            telemetry::MEMTABLE_BYTES.add(-(freed as i64));
            state.frozen.clear();
            update_file_gauges(&catalog);
            state.catalog = catalog;
        }
        self.inner.wal.remove_before(seq)?;
        telemetry::WAL_DISK_BYTES.set(self.inner.wal.disk_bytes() as i64);
        telemetry::FLUSHES.add(1);
        telemetry::FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn store_catalog(&self, catalog: &Catalog) -> Result<()> {
        let c = catalog.clone();
        let dir = self.inner.config.data_dir.clone();
        tokio::task::spawn_blocking(move || c.store(&dir))
            .await
            .map_err(|_| Error::ShuttingDown)?
    }

    /// Width (ns) of the partitions of a signal's files: metrics time windows
    /// (`storage.metric_block_duration`), UTC days for logs and traces.
    fn partition_ns(&self, signal: Signal) -> i64 {
        match signal {
            Signal::Metrics => self.inner.config.metric_block_ns(),
            Signal::Logs | Signal::Traces => DAY_NS,
        }
    }

    /// Sorts rows, splits them by partition (see [`Storage::partition_ns`]) and writes one
    /// file per partition. Metric rows from memtables come without label columns; with
    /// `fill_labels` they are filled back from the label index, one slice of the file at a
    /// time. The files take `seq` as their place in write order ([`FileMeta::seq`]), or
    /// by default their own id.
    ///
    /// Memory: 8 bytes of row order per row, plus one slice of rows at a time; the rows
    /// themselves are never copied whole (the keys are compared where they lie).
    #[allow(clippy::too_many_arguments)]
    async fn write_files(
        &self,
        catalog: &mut Catalog,
        tenant: &TenantId,
        signal: Signal,
        batches: Vec<RecordBatch>,
        fill_labels: bool,
        level: u32,
        seq: Option<u64>,
    ) -> Result<Vec<FileMeta>> {
        let this = self.clone();
        let t = tenant.clone();
        let width = self.partition_ns(signal);
        let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<EncodedPart>> {
            // Metric files are ordered by series label sets (see `metric_order_by_rank`)
            // when the index knows them, which is always outside of tests that bypass it.
            let rank =
                (fill_labels && signal == Signal::Metrics).then(|| this.series_ranks(&t, &batches));
            // ... and grouped in time slabs first (see `TimeSlabs`).
            let slab_rows = this.inner.config.metric_slab_rows;
            let slabs = rank
                .as_ref()
                .map(|_| crate::files::TimeSlabs::of(&batches, slab_rows));
            let order = match (&rank, &slabs) {
                (Some(rank), Some(slabs)) => {
                    crate::files::metric_order_by_rank(&batches, rank, slabs)?
                }
                _ => sort_order(signal, &batches)?,
            };
            let prepare = |b: RecordBatch| {
                if fill_labels {
                    let labels = this.series_labels(&t, std::slice::from_ref(&b));
                    schema::fill_metric_labels(&b, &|id| labels.get(&id).cloned())
                } else {
                    Ok(b)
                }
            };
            let times = batches
                .iter()
                .map(|b| time_values(signal, b))
                .collect::<Result<Vec<&[i64]>>>()?;
            let parts = partition_ranges(signal, &times, width);
            let mut split = if parts.len() > 1 {
                rows_by_partition(signal, &order, &times, &parts, width)
            } else {
                Vec::new()
            };
            let mut out = Vec::with_capacity(parts.len());
            for (at, range) in parts.iter().enumerate() {
                let part: Cow<'_, [RowRef]> = match split.get_mut(at) {
                    Some(rows) => Cow::Owned(std::mem::take(rows)),
                    None => Cow::Borrowed(&order),
                };
                let bytes = crate::files::encode_parquet_ordered(
                    signal,
                    &batches,
                    &part,
                    slabs.as_ref(),
                    &prepare,
                )?;
                let tokens = (signal == Signal::Logs).then(|| log_token_index(&batches, &part));
                let start = range.window.saturating_mul(width);
                // Rows of series without a rank (unknown to the index) go last: a file
                // whose last series has one is in label order throughout.
                let id_at = |(b, r): RowRef| {
                    batches
                        .get(b as usize)
                        .and_then(schema::metric_keys)
                        .and_then(|(ids, _)| ids.get(r as usize).copied())
                };
                // A slabbed file is in label order per slab only: its first and last rows
                // do not bound its series, so it records no range (never skipped by it).
                let series = match (
                    &rank,
                    slabs.as_ref().is_none_or(|s| s.is_single()),
                    part.first(),
                    part.last(),
                ) {
                    (Some(rank), true, Some(&first), Some(&last)) => id_at(first)
                        .zip(id_at(last))
                        .filter(|(_, last)| rank.contains_key(last)),
                    _ => None,
                };
                out.push(EncodedPart {
                    partition: if signal == Signal::Metrics {
                        window_name(start)
                    } else {
                        day_of(start)
                    },
                    min_ns: range.min_ns,
                    max_ns: range.max_ns,
                    rows: range.rows,
                    bytes,
                    tokens,
                    series,
                });
            }
            Ok(out)
        })
        .await
        .map_err(|_| Error::ShuttingDown)??;
        let mut metas: Vec<FileMeta> = Vec::new();
        for part in encoded {
            let EncodedPart {
                partition: day,
                min_ns: min,
                max_ns: max,
                rows,
                bytes,
                tokens,
                series,
            } = part;
            let id = catalog.next_file_id;
            catalog.next_file_id += 1;
            let path = format!("{tenant}/{signal}/{day}/{id:016}.parquet");
            let mut size = bytes.len() as u64;
            let put = async {
                if let Some(t) = tokens {
                    size += t.len() as u64;
                    self.inner
                        .files
                        .put(&token_index::sidecar_path(&path), t)
                        .await?;
                }
                self.inner.files.put(&path, bytes).await
            }
            .await;
            if let Err(e) = put {
                // No catalog will name the files of this call: they go now (their ids
                // are reused), this one's too in case it was written before failing.
                let mut written: Vec<String> = metas.iter().map(|m| m.path.clone()).collect();
                written.push(path);
                self.delete_unnamed(signal, &written).await;
                return Err(e);
            }
            metas.push(FileMeta {
                id,
                tenant: tenant.clone(),
                signal,
                partition: day,
                path,
                min_time_ns: min,
                max_time_ns: max,
                rows,
                bytes: size,
                level,
                seq: Some(seq.unwrap_or(id)),
                series,
            });
        }
        Ok(metas)
    }

    /// Deletes data files (with their sidecars) that no catalog names, written by a flush
    /// or compaction that then failed. A failure is logged, not returned: the caller's
    /// error is the one to report, and what is left goes as an orphan at the next start.
    async fn delete_unnamed(&self, signal: Signal, paths: &[String]) {
        for path in paths {
            let mut doomed = vec![path.clone()];
            if signal == Signal::Logs {
                doomed.push(token_index::sidecar_path(path));
            }
            for p in doomed {
                if let Err(e) = self.inner.files.delete(&p).await {
                    tracing::warn!(
                        file = %Path::new("files").join(&p).display(),
                        error = %e,
                        "deleting a file of a failed write failed; it goes at the next start"
                    );
                }
            }
        }
    }

    /// Compacts metrics by time window ([`Storage::compact_metrics`]) and logs and traces
    /// by day ([`Storage::compact_days`]). Returns how many merges or splits it made.
    pub async fn compact(&self) -> Result<usize> {
        // One signal's failure (a missing file, a full disk) must not stop the others'
        // compaction: both run, and the first error is returned after them.
        let metrics = self.compact_metrics().await;
        let days = self.compact_days().await;
        // The caller logs the error returned; one not returned is logged here.
        if let (Err(_), Err(e)) = (&metrics, &days) {
            tracing::error!(error = %e, "logs and traces compaction failed");
        }
        Ok(metrics? + days?)
    }

    /// Merges the logs and traces files of day partitions that have at least
    /// `compaction_min_files` files below the row cap: the smallest of them, as many as fit
    /// under the cap (at least two). A partition of many mid-sized files (say 14 flushes of
    /// 1.8M rows against a 10M cap) is thus merged a few files a round instead of never.
    async fn compact_days(&self) -> Result<usize> {
        let _m = self.inner.maintenance.lock().await;
        let catalog = self.inner.state.read().catalog.clone();
        let mut groups: BTreeMap<(TenantId, Signal, String), Vec<FileMeta>> = BTreeMap::new();
        for f in catalog.files.iter().filter(|f| f.signal != Signal::Metrics) {
            groups
                .entry((f.tenant.clone(), f.signal, f.partition.clone()))
                .or_default()
                .push(f.clone());
        }
        let mut merged = 0;
        let max_rows = self.inner.config.compaction_max_rows;
        for ((tenant, signal, _), mut candidates) in groups {
            // Smallest first, up to the row cap: the memory compaction needs stays bounded
            // and files that reached the cap are left alone.
            candidates.retain(|f| f.rows < max_rows);
            if candidates.len() < self.inner.config.compaction_min_files {
                continue;
            }
            candidates.sort_by_key(|f| (f.rows, f.write_seq()));
            let mut inputs = Vec::new();
            let mut rows = 0u64;
            for f in candidates {
                if rows + f.rows > max_rows {
                    break;
                }
                rows += f.rows;
                inputs.push(f);
            }
            if inputs.len() < 2 {
                continue;
            }
            // Rows are merged in write order, so of two rows of a series at one time the
            // later write stays last in the output.
            inputs.sort_by_key(FileMeta::write_seq);
            let mut batches = Vec::new();
            let mut readable = Vec::with_capacity(inputs.len());
            for f in inputs {
                let data = self.inner.files.get(&f.path).await?;
                // Each decode is guarded ([`decode_parquet`]); a panic in our own
                // conversions is a bug, not a damaged file, and must not quarantine one.
                let read = tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
                    if signal == Signal::Traces {
                        // Either spans file layout, back in the table's form.
                        return decode_parquet(data, None, None)?
                            .iter()
                            .map(schema::spans_from_file)
                            .collect();
                    }
                    decode_parquet(data, None, None)
                })
                .await
                .map_err(|_| Error::ShuttingDown)?;
                match read {
                    Ok(b) => {
                        batches.extend(b);
                        readable.push(f);
                    }
                    // A file that cannot be read would fail every round: it leaves the
                    // catalog for quarantine/ and the others are merged without it.
                    Err(e) if e.is_corrupt_file() => self.quarantine(&f, &e).await?,
                    Err(e) => return Err(e),
                }
            }
            let inputs = readable;
            if inputs.len() < 2 {
                continue;
            }
            let level = inputs.iter().map(|f| f.level).max().unwrap_or(0) + 1;
            let mut next = self.inner.state.read().catalog.clone();
            let outputs = self
                .write_files(&mut next, &tenant, signal, batches, false, level, None)
                .await?;
            self.replace_files(next, &inputs, outputs).await?;
            telemetry::COMPACTIONS.add(1);
            merged += 1;
        }
        Ok(merged)
    }

    /// Brings metrics files to one layout: each holds the rows of one time window
    /// (`storage.metric_block_duration`), and the files of a window are the outputs of one
    /// merge, split by series range, so they overlap neither in time (across windows) nor
    /// in series (within one). Two kinds of work, each under the maintenance lock on its
    /// own so flushes wait for one of them at most:
    /// - a file spanning several windows (written by an older version per UTC day, or
    ///   under a longer block duration) is rewritten alone into one file per window,
    ///   keeping its place in write order;
    /// - a window whose files come from two or more writes (flushes, merges, splits) is
    ///   merged whole once it has `compaction_min_files` of them, or any two once the
    ///   window has ended (its end a flush interval in the past): late data is merged into
    ///   its window. Past `compaction_max_rows` rows the merge writes one file per series
    ///   range (label order), reading each input's rows of one range at a time, so its
    ///   memory stays bounded by the cap.
    async fn compact_metrics(&self) -> Result<usize> {
        let width = self.inner.config.metric_block_ns();
        let mut done = 0;
        let spanning: Vec<u64> = {
            let state = self.inner.state.read();
            let mut files: Vec<&FileMeta> = state
                .catalog
                .files
                .iter()
                .filter(|f| f.signal == Signal::Metrics && !in_one_window(f, width))
                .collect();
            files.sort_by_key(|f| f.write_seq());
            files.iter().map(|f| f.id).collect()
        };
        for id in spanning {
            let _m = self.inner.maintenance.lock().await;
            let Some(f) = self
                .inner
                .state
                .read()
                .catalog
                .files
                .iter()
                .find(|f| f.id == id)
                .cloned()
            else {
                continue;
            };
            let batches = match self.read_metric_rows(&f).await {
                Ok(b) => b,
                Err(e) if e.is_corrupt_file() => {
                    self.quarantine(&f, &e).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut next = self.inner.state.read().catalog.clone();
            let outputs = self
                .write_files(
                    &mut next,
                    &f.tenant,
                    Signal::Metrics,
                    batches,
                    true,
                    f.level,
                    Some(f.write_seq()),
                )
                .await?;
            self.replace_files(next, std::slice::from_ref(&f), outputs)
                .await?;
            done += 1;
            drop(_m);
            self.flush_between_units().await;
        }
        let windows: BTreeSet<(TenantId, i64)> = self
            .inner
            .state
            .read()
            .catalog
            .files
            .iter()
            .filter(|f| f.signal == Signal::Metrics && in_one_window(f, width))
            .map(|f| (f.tenant.clone(), window_of(f.min_time_ns, width)))
            .collect();
        for (tenant, window) in windows {
            let _m = self.inner.maintenance.lock().await;
            let inputs = {
                let state = self.inner.state.read();
                self.window_due(&state.catalog, &tenant, window, width)
            };
            let Some(inputs) = inputs else { continue };
            if self.merge_window(&tenant, inputs).await? {
                done += 1;
            }
            drop(_m);
            self.flush_between_units().await;
        }
        Ok(done)
    }

    /// Flushes between two compaction units when a flush is due: a round may rewrite many
    /// windows (an upgrade splits every day file of the history), and memtables must not
    /// grow to the write-pressure limit meanwhile.
    async fn flush_between_units(&self) {
        if self.flush_due()
            && let Err(e) = self.flush().await
        {
            tracing::error!(error = %e, "flush failed; data stays in the WAL and memtables");
        }
    }

    /// The metrics files of `tenant`'s time window number `window`, in write order, when
    /// they are due for a merge (see [`Storage::compact_metrics`]).
    fn window_due(
        &self,
        catalog: &Catalog,
        tenant: &TenantId,
        window: i64,
        width: i64,
    ) -> Option<Vec<FileMeta>> {
        let (start, end) = (
            window.saturating_mul(width),
            window.saturating_add(1).saturating_mul(width),
        );
        let mut files = Vec::new();
        for f in catalog
            .files
            .iter()
            .filter(|f| &f.tenant == tenant && f.signal == Signal::Metrics)
        {
            if in_one_window(f, width) {
                if window_of(f.min_time_ns, width) == window {
                    files.push(f.clone());
                }
            } else if f.max_time_ns >= start && f.min_time_ns < end {
                // Split first (its rows of this window may be older or newer writes).
                return None;
            }
        }
        files.sort_by_key(FileMeta::write_seq);
        // The writes the files come from, and the rows of the largest.
        let (mut writes, mut largest) = (0usize, 0u64);
        for write in files.chunk_by(|a, b| a.write_seq() == b.write_seq()) {
            writes += 1;
            largest = largest.max(write.iter().map(|f| f.rows).sum());
        }
        let flush_ns =
            i64::try_from(self.inner.config.flush_interval.as_nanos()).unwrap_or(i64::MAX);
        let ended = end.saturating_add(flush_ns) <= now_ns();
        // An ended window is merged into one series-split set once the rows outside its
        // largest write are a tenth of it: a trickle of late samples into a merged window
        // waits (reads merge overlapping files) instead of rewriting the window each round.
        let total: u64 = files.iter().map(|f| f.rows).sum();
        let late_enough = total.saturating_sub(largest).saturating_mul(10) >= total;
        let due = writes >= 2
            && (writes >= self.inner.config.compaction_min_files || (ended && late_enough));
        due.then_some(files)
    }

    /// Merges the files of one time window (`inputs`, in write order) into files of at
    /// most `compaction_max_rows` rows split by series range, replacing them in the
    /// catalog at once. `false` when an input could not be read (it went to quarantine;
    /// the next round merges the others). Outputs written before a failure are deleted
    /// (no catalog names them; their ids are reused).
    async fn merge_window(&self, tenant: &TenantId, inputs: Vec<FileMeta>) -> Result<bool> {
        let rows: u64 = inputs.iter().map(|f| f.rows).sum();
        let cap = self.inner.config.compaction_max_rows;
        // Past the cap, each input's footer and rows by series are read once, for all the
        // series ranges.
        let mut loaded: Option<Vec<Arc<MergeInput>>> = None;
        if rows > cap {
            let mut all = Vec::with_capacity(inputs.len());
            for f in &inputs {
                match self.load_merge_input(f, true).await {
                    Ok(input) => all.push(input),
                    Err(e) if e.is_corrupt_file() => {
                        self.quarantine(f, &e).await?;
                        return Ok(false);
                    }
                    Err(e) => return Err(e),
                }
            }
            loaded = Some(all);
        }
        // Each round but the last finds an input whose directory names the wrong series
        // at some rows, which is then read from its `series_id` column instead.
        loop {
            let split = loaded.as_deref().map(|inputs| SplitMerge {
                inputs,
                ranges: self.series_ranges(tenant, inputs, rows, cap),
            });
            let mut next = self.inner.state.read().catalog.clone();
            let mut outputs: Vec<FileMeta> = Vec::new();
            let failure = match self
                .write_merged(tenant, &inputs, split, &mut next, &mut outputs)
                .await
            {
                Ok(()) => {
                    self.replace_files(next, &inputs, outputs).await?;
                    telemetry::COMPACTIONS.add(1);
                    return Ok(true);
                }
                Err(failure) => failure,
            };
            let written: Vec<String> = outputs.iter().map(|o| o.path.clone()).collect();
            self.delete_unnamed(Signal::Metrics, &written).await;
            match failure {
                MergeFailure::Misplaced(i, strays) => {
                    let Some(input) = loaded.as_mut().and_then(|all| all.get_mut(i)) else {
                        // Unreachable: the failure names one of `loaded`.
                        return Err(Error::Corrupt(format!(
                            "merge input {i} of {} is not among those read",
                            inputs.len()
                        )));
                    };
                    warn_directory_unfit(
                        &input.file,
                        &DirectoryFault::new(format!(
                            "{strays} rows of the series one merge range selected belong to \
                             other series"
                        )),
                    );
                    let f = input.file.clone();
                    *input = match self.load_merge_input(&f, false).await {
                        Ok(reloaded) => reloaded,
                        Err(e) if e.is_corrupt_file() => {
                            self.quarantine(&f, &e).await?;
                            return Ok(false);
                        }
                        Err(e) => return Err(e),
                    };
                }
                MergeFailure::Read(f, e) if e.is_corrupt_file() => {
                    self.quarantine(&f, &e).await?;
                    return Ok(false);
                }
                MergeFailure::Read(_, e) | MergeFailure::Write(e) => return Err(e),
            }
        }
    }

    /// Reads a merge input's footer and rows by series ([`load_merge_input`]), from its
    /// series directory only when `use_directory`.
    async fn load_merge_input(&self, f: &FileMeta, use_directory: bool) -> Result<Arc<MergeInput>> {
        let (file, path) = (f.clone(), self.inner.files.local_path(&f.path));
        tokio::task::spawn_blocking(move || load_merge_input(file, path, use_directory))
            .await
            .map_err(|_| Error::ShuttingDown)?
            .map(Arc::new)
    }

    /// Writes the merge of `inputs` into `outputs` (numbered in `next`): all of it into
    /// one set of files, or with `split` (the inputs read before, and the series ranges)
    /// one set per series range, reading each input's rows of one range at a time.
    async fn write_merged(
        &self,
        tenant: &TenantId,
        inputs: &[FileMeta],
        split: Option<SplitMerge<'_>>,
        next: &mut Catalog,
        outputs: &mut Vec<FileMeta>,
    ) -> std::result::Result<(), MergeFailure> {
        let seq = inputs.iter().map(FileMeta::write_seq).max().unwrap_or(0);
        let level = inputs.iter().map(|f| f.level).max().unwrap_or(0) + 1;
        let mut write = async |batches: Vec<RecordBatch>| -> Result<()> {
            let written = self
                .write_files(
                    next,
                    tenant,
                    Signal::Metrics,
                    batches,
                    true,
                    level,
                    Some(seq),
                )
                .await?;
            outputs.extend(written);
            Ok(())
        };
        let Some(SplitMerge {
            inputs: loaded,
            ranges,
        }) = split
        else {
            let mut batches = Vec::new();
            for f in inputs {
                let read = self.read_metric_rows(f).await;
                batches.extend(read.map_err(|e| MergeFailure::Read(f.clone(), e))?);
            }
            return write(batches).await.map_err(MergeFailure::Write);
        };
        for range in ranges {
            let range = Arc::new(range);
            let mut batches = Vec::new();
            for (i, input) in loaded.iter().enumerate() {
                let (task_input, ids) = (input.clone(), range.clone());
                let read = tokio::task::spawn_blocking(move || read_series_rows(&task_input, &ids))
                    .await
                    .map_err(|_| MergeFailure::Write(Error::ShuttingDown))?;
                match read {
                    Ok((_, strays)) if strays > 0 => {
                        return Err(MergeFailure::Misplaced(i, strays));
                    }
                    Ok((b, _)) => batches.extend(b),
                    Err(e) => return Err(MergeFailure::Read(input.file.clone(), e)),
                }
            }
            write(batches).await.map_err(MergeFailure::Write)?;
        }
        Ok(())
    }

    /// Cuts the series of `inputs` (in label order) into ranges of about equal rows, each
    /// at most `cap` rows (unless one series alone has more), as few as the cap allows.
    fn series_ranges(
        &self,
        tenant: &TenantId,
        inputs: &[Arc<MergeInput>],
        rows: u64,
        cap: u64,
    ) -> Vec<HashSet<u64>> {
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for input in inputs {
            for (id, n) in input.runs.row_counts() {
                *counts.entry(id).or_default() += n;
            }
        }
        let ordered: Vec<u64> = {
            let state = self.inner.state.read();
            let mut ranked = state
                .series
                .get(tenant)
                .map(|index| index.sorted_by_labels(counts.keys().copied()))
                .unwrap_or_default();
            // Series the index does not know (none, normally) go last, by id.
            let known: HashSet<u64> = ranked.iter().copied().collect();
            let mut rest: Vec<u64> = counts
                .keys()
                .copied()
                .filter(|id| !known.contains(id))
                .collect();
            rest.sort_unstable();
            ranked.extend(rest);
            ranked
        };
        let parts = rows.div_ceil(cap.max(1)).max(1);
        let target = rows.div_ceil(parts);
        let mut out: Vec<HashSet<u64>> = Vec::new();
        let mut current = HashSet::new();
        let mut acc = 0u64;
        for id in ordered {
            let n = counts.get(&id).copied().unwrap_or(0);
            if acc > 0 && (acc >= target || acc + n > cap) {
                out.push(std::mem::take(&mut current));
                acc = 0;
            }
            current.insert(id);
            acc += n;
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    /// The rows of a metrics file without their label columns (the index has them).
    async fn read_metric_rows(&self, f: &FileMeta) -> Result<Vec<RecordBatch>> {
        let path = self.inner.files.local_path(&f.path);
        tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
            let cols = metric_columns_without_labels();
            let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
            decode_local_parquet(&path, Some(&cols), |_| None)?
                .iter()
                .filter(|b| b.num_rows() > 0)
                .map(schema::metrics_batch_without_labels)
                .collect()
        })
        .await
        .map_err(|_| Error::ShuttingDown)?
    }

    /// Puts `outputs` in the place of `inputs` in `next` (a copy of the catalog the outputs
    /// were numbered in) and makes it the catalog; the inputs go after the grace period.
    async fn replace_files(
        &self,
        mut next: Catalog,
        inputs: &[FileMeta],
        outputs: Vec<FileMeta>,
    ) -> Result<()> {
        let gone: BTreeSet<u64> = inputs.iter().map(|f| f.id).collect();
        next.files.retain(|f| !gone.contains(&f.id));
        next.files.extend(outputs);
        self.store_catalog(&next).await?;
        {
            let mut state = self.inner.state.write();
            update_file_gauges(&next);
            state.catalog = next;
        }
        for f in inputs {
            self.bury(f);
        }
        Ok(())
    }

    /// Takes a data file that cannot be read out of the catalog, keeping it as
    /// `<data_dir>/quarantine/<path>` (a hard link: queries reading it now keep their
    /// copy, and the original goes after the usual grace), with an error logged. Without
    /// this, compaction would fail on it every round and never merge its partition.
    async fn quarantine(&self, f: &FileMeta, why: &Error) -> Result<()> {
        let from = self.inner.files.local_path(&f.path);
        let data_dir = self.inner.config.data_dir.clone();
        let meta = f.clone();
        let kept = tokio::task::spawn_blocking(move || keep_in_quarantine(&data_dir, &from, &meta))
            .await
            .map_err(|_| Error::ShuttingDown)??;
        let next = self.inner.state.read().catalog.clone();
        self.replace_files(next, std::slice::from_ref(f), Vec::new())
            .await?;
        log_quarantined(f, &kept, why);
        Ok(())
    }

    /// Deletes files whose whole partition day is older than the signal's retention.
    pub async fn apply_retention(&self, now_ns: i64) -> Result<usize> {
        let _m = self.inner.maintenance.lock().await;
        let retention = &self.inner.config.retention;
        let next = self.inner.state.read().catalog.clone();
        let expired: Vec<FileMeta> = next
            .files
            .iter()
            .filter(|f| {
                let keep = match f.signal {
                    Signal::Metrics => retention.metrics,
                    Signal::Logs => retention.logs,
                    Signal::Traces => retention.traces,
                };
                !keep.is_zero()
                    && f.max_time_ns
                        < now_ns.saturating_sub(keep.as_nanos().min(i64::MAX as u128) as i64)
            })
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        self.replace_files(next, &expired, Vec::new()).await?;
        telemetry::RETENTION_DELETED_FILES.add(expired.len() as u64);
        Ok(expired.len())
    }

    /// Schedules the deletion of a file the catalog no longer names (and, for logs, of
    /// its token index sidecar).
    fn bury(&self, f: &FileMeta) {
        let mut g = self.inner.graveyard.lock();
        g.push((Instant::now(), f.path.clone()));
        if f.signal == Signal::Logs {
            g.push((Instant::now(), token_index::sidecar_path(&f.path)));
        }
    }

    /// Deletes files that left the catalog at least `grace` ago. Returns how many.
    pub async fn reap(&self, grace: Duration) -> Result<usize> {
        let due: Vec<String> = {
            let mut g = self.inner.graveyard.lock();
            let (due, keep): (Vec<_>, Vec<_>) =
                g.drain(..).partition(|(at, _)| at.elapsed() >= grace);
            *g = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        for (i, path) in due.iter().enumerate() {
            if let Err(e) = self.inner.files.delete(path).await {
                // Keep what is left for the next round.
                let mut g = self.inner.graveyard.lock();
                g.extend(due[i..].iter().map(|p| (Instant::now(), p.clone())));
                return Err(e);
            }
        }
        Ok(due.len())
    }

    fn flush_due(&self) -> bool {
        let state = self.inner.state.read();
        let bytes: u64 = state.active.values().map(|m| m.bytes).sum();
        bytes >= self.inner.config.flush_bytes
            || state
                .active
                .values()
                .any(|m| m.first_write.elapsed() >= self.inner.config.flush_interval)
    }

    /// Runs flushing, compaction and retention until `cancel` fires, then flushes once more.
    pub async fn run_background(self, cancel: CancellationToken) {
        let mut last_maintenance = Instant::now();
        let tick = Duration::from_millis(500);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
            }
            if self.flush_due()
                && let Err(e) = self.flush().await
            {
                tracing::error!(error = %e, "flush failed; data stays in the WAL and memtables");
            }
            if let Err(e) = self.reap(DELETE_GRACE).await {
                tracing::error!(error = %e, "deleting replaced files failed; retrying later");
            }
            if last_maintenance.elapsed() >= self.inner.config.maintenance_interval {
                last_maintenance = Instant::now();
                if let Err(e) = self.compact().await {
                    tracing::error!(error = %e, "compaction failed");
                }
                if let Err(e) = self.apply_retention(now_ns()).await {
                    tracing::error!(error = %e, "retention failed");
                }
            }
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "final flush failed; the WAL keeps the data");
        }
        // No query runs any more: files waiting out their grace period can go (and any
        // left behind are removed as orphans at the next start).
        if let Err(e) = self.reap(Duration::ZERO).await {
            tracing::error!(error = %e, "deleting replaced files failed");
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    /// All tenants with any data.
    pub fn tenants(&self) -> Vec<TenantId> {
        let state = self.inner.state.read();
        let mut t: BTreeSet<TenantId> = state
            .catalog
            .files
            .iter()
            .map(|f| f.tenant.clone())
            .collect();
        t.extend(state.active.keys().map(|(t, _)| t.clone()));
        t.into_iter().collect()
    }
}

fn update_file_gauges(catalog: &Catalog) {
    telemetry::FILES.set(catalog.files.len() as i64);
    telemetry::FILE_BYTES.set(catalog.files.iter().map(|f| f.bytes as i64).sum());
}

#[cfg(test)]
mod tests;
