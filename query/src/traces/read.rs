//! Reading spans out of storage: whole traces by id (no time range) and column scans for
//! searches.
//!
//! By id: memtable batches are filtered with a vectorised comparison; each Parquet file is
//! checked through its (cached) footer: spans files are sorted by `trace_id`, so row-group
//! min/max statistics leave at most one or two row groups per file, the `trace_id` bloom
//! filter of those row groups rules most files out without reading data, and the page
//! index narrows what is left to the pages holding the trace. Files are immutable, so
//! footers are cached per path (the cache is dropped whole when it grows past a bound).
//!
//! Spans files come in three layouts (see `strata_storage::schema`): every batch read
//! from a file goes through `spans_from_file`, so the code past this module sees the
//! table's form (hex ids, `end_time`, whole `attributes` JSON) whatever the file. Reading
//! `attributes` reads the file's dedicated attribute columns with it; a search condition
//! on a key with such a column ([`Narrow::attribute`]) is a Parquet row filter on it.
//!
//! Scans read only the requested columns of the files and memtables overlapping a time
//! range (row groups pruned by `start_time` statistics), checking the deadline, the
//! cancellation flag and the spans-scanned budget between batches. Everything here is
//! synchronous: callers run it on the blocking pool.

use super::limits::Budget;
use crate::error::{Error, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::datatypes::{FieldRef, Int32Type, Int64Type, TimestampNanosecondType};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowPredicate, ArrowPredicateFn, ArrowReaderMetadata, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowFilter, RowSelection, RowSelector,
};
use datafusion::parquet::bloom_filter::Sbbf;
use datafusion::parquet::file::metadata::ColumnChunkMetaData;
use datafusion::parquet::schema::types::SchemaDescriptor;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use strata_storage::catalog::FileMeta;
use strata_storage::model::{Origin, Signal, Span, SpanEvent, SpanLink};
use strata_storage::schema::spans_from_file;
use strata_storage::span_attrs::{AttrType, DEDICATED_PREFIX, column_name};
use strata_storage::{Storage, TenantId};

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Internal(Box::new(e))
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("{}: {e}", path.display()).into())
}

/// A file reader built, guarded ([`crate::guard`]): a decoder panic is an error.
pub(super) fn build_reader(
    builder: ParquetRecordBatchReaderBuilder<std::fs::File>,
) -> Result<ParquetRecordBatchReader> {
    crate::guard::guarded(|| builder.build().map_err(internal), internal)
}

/// A reader's next batch, decoded guarded ([`crate::guard`]): a decoder panic on a
/// damaged page is an error.
pub(super) fn next_batch(reader: &mut ParquetRecordBatchReader) -> Result<Option<RecordBatch>> {
    crate::guard::guarded(|| reader.next().transpose().map_err(internal), internal)
}

/// Most row-group bloom filters kept; past it the cache starts over. A filter of a
/// 128k-row group is some tens of KiB, and reading every one of them again for each
/// lookup is most of a by-id lookup's work once there are many files.
const BLOOM_CACHE_ENTRIES: usize = 8192;

type BloomKey = (PathBuf, usize);

static BLOOMS: LazyLock<Mutex<HashMap<BloomKey, Option<Arc<Sbbf>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The `trace_id` bloom filter of one row group of an immutable file, read once.
fn bloom_filter(
    path: &Path,
    row_group: usize,
    column: &ColumnChunkMetaData,
    file: &std::fs::File,
) -> Result<Option<Arc<Sbbf>>> {
    let key = (path.to_path_buf(), row_group);
    if let Some(b) = BLOOMS.lock().get(&key) {
        return Ok(b.clone());
    }
    let bloom = crate::guard::guarded(
        || Sbbf::read_from_column_chunk(column, file).map_err(internal),
        internal,
    )?
    .map(Arc::new);
    let mut cache = BLOOMS.lock();
    if cache.len() >= BLOOM_CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, bloom.clone());
    Ok(bloom)
}

/// The layout of a spans file: `None` for the first (every column as in the table),
/// else its dedicated attribute columns (none in the second layout, binary span ids and
/// no `end_time`; some in the third).
pub fn lean_spans_file_dedicated(path: &Path) -> Result<Option<Vec<FieldRef>>> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let meta = footer(path, &file)?;
    let schema = meta.schema();
    if schema.column_with_name("end_time").is_some() {
        return Ok(None);
    }
    Ok(Some(
        schema
            .fields()
            .iter()
            .filter(|f| f.name().starts_with(DEDICATED_PREFIX))
            .cloned()
            .collect(),
    ))
}

/// The footer (with page index) of an immutable Parquet file, read once per process.
fn footer(path: &Path, file: &std::fs::File) -> Result<ArrowReaderMetadata> {
    Ok(crate::footer::footer(path, file)
        .map_err(internal)?
        .meta
        .clone())
}

/// Checks that a trace id is 32 hex digits (16 bytes) and returns it in lower case.
pub fn normalize_trace_id(id: &str) -> Result<String> {
    let id = id.trim();
    let ok = !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(Error::BadQuery(format!(
            "invalid trace id {id:?}: expected up to 32 hexadecimal digits"
        )));
    }
    // Shorter ids (some clients drop leading zeros) are padded as Tempo and Jaeger do.
    let lower = id.to_ascii_lowercase();
    let id = format!("{lower:0>32}");
    if id.bytes().all(|b| b == b'0') {
        return Err(Error::BadQuery("the trace id must not be all zeros".into()));
    }
    Ok(id)
}

/// Every stored row of one trace, from memtables and all files whatever their time.
pub fn trace_batches(
    storage: &Storage,
    tenant: &TenantId,
    trace_id: &str,
    budget: &Budget,
) -> Result<Vec<RecordBatch>> {
    let snap = storage.snapshot(tenant, Signal::Traces, i64::MIN, i64::MAX);
    let mut out = Vec::new();
    for file in &snap.files {
        budget.check()?;
        let path = snap.files_root.join(&file.path);
        out.extend(trace_in_file(&path, trace_id)?);
    }
    let wanted = StringArray::new_scalar(trace_id);
    for batch in &snap.batches {
        budget.check()?;
        let Some(col) = batch.column_by_name("trace_id") else {
            continue;
        };
        let mask = eq(col, &wanted).map_err(internal)?;
        if mask.true_count() > 0 {
            out.push(filter_record_batch(batch, &mask).map_err(internal)?);
        }
    }
    let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
    budget.add_spans(rows)?;
    Ok(out)
}

fn trace_in_file(path: &Path, trace_id: &str) -> Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let meta = footer(path, &file)?;
    let pmeta = meta.metadata().clone();
    let schema = meta.schema().clone();
    let pschema = meta.parquet_schema();
    let Some(col_idx) =
        (0..pschema.num_columns()).find(|i| pschema.column(*i).name() == "trace_id")
    else {
        return Ok(Vec::new());
    };
    let stats = StatisticsConverter::try_new("trace_id", &schema, pschema).map_err(internal)?;
    let rgs = pmeta.row_groups();
    let mins = stats.row_group_mins(rgs.iter()).map_err(internal)?;
    let maxes = stats.row_group_maxes(rgs.iter()).map_err(internal)?;
    let (mins, maxes) = (mins.as_string_opt::<i32>(), maxes.as_string_opt::<i32>());
    let mut keep = Vec::new();
    for (i, rg) in rgs.iter().enumerate() {
        if let (Some(lo), Some(hi)) = (mins, maxes)
            && lo.is_valid(i)
            && hi.is_valid(i)
            && (trace_id < lo.value(i) || trace_id > hi.value(i))
        {
            continue;
        }
        let bloom = bloom_filter(path, i, rg.column(col_idx), &file)?;
        if bloom.is_some_and(|b| !b.check(trace_id)) {
            continue;
        }
        keep.push(i);
    }
    if keep.is_empty() {
        return Ok(Vec::new());
    }
    let pages = page_selection(&meta, &stats, &keep, trace_id).unwrap_or_else(|| {
        let rows: i64 = keep.iter().map(|&i| rgs[i].num_rows()).sum();
        RowSelection::from(vec![RowSelector::select(
            usize::try_from(rows).unwrap_or(0),
        )])
    });
    // First only `trace_id` of those pages, to find the trace's rows exactly; then every
    // column of just those rows (pages holding none of them are not even read).
    let wanted = StringArray::new_scalar(trace_id);
    let mut ids = build_reader(
        ParquetRecordBatchReaderBuilder::new_with_metadata(
            file.try_clone().map_err(|e| io_err(path, e))?,
            meta.clone(),
        )
        .with_row_groups(keep.clone())
        .with_projection(ProjectionMask::leaves(pschema, [col_idx]))
        .with_row_selection(pages.clone())
        .with_batch_size(8 * 1024),
    )?;
    let mut hits: Vec<bool> = Vec::new();
    while let Some(batch) = next_batch(&mut ids)? {
        let mask = eq(batch.column(0), &wanted).map_err(internal)?;
        hits.extend(mask.iter().map(|m| m == Some(true)));
    }
    if !hits.contains(&true) {
        return Ok(Vec::new());
    }
    let mut exact = Vec::new();
    let mut next = hits.into_iter();
    for sel in pages.iter() {
        if sel.skip {
            exact.push(RowSelector::skip(sel.row_count));
            continue;
        }
        for hit in next.by_ref().take(sel.row_count) {
            exact.push(if hit {
                RowSelector::select(1)
            } else {
                RowSelector::skip(1)
            });
        }
    }
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta)
        .with_row_groups(keep)
        .with_row_selection(RowSelection::from(exact))
        .with_batch_size(8 * 1024);
    let mut out = Vec::new();
    let mut reader = build_reader(builder)?;
    while let Some(batch) = next_batch(&mut reader)? {
        let batch = spans_from_file(&batch).map_err(internal)?;
        let Some(col) = batch.column_by_name("trace_id") else {
            continue;
        };
        let mask = eq(col, &wanted).map_err(internal)?;
        if mask.true_count() > 0 {
            out.push(filter_record_batch(&batch, &mask).map_err(internal)?);
        }
    }
    Ok(out)
}

/// Selects only the pages of the kept row groups whose `trace_id` range holds the trace.
fn page_selection(
    meta: &ArrowReaderMetadata,
    stats: &StatisticsConverter<'_>,
    keep: &[usize],
    trace_id: &str,
) -> Option<RowSelection> {
    let pmeta = meta.metadata();
    let (ci, oi) = (pmeta.column_index()?, pmeta.offset_index()?);
    let mins = stats.data_page_mins(ci, oi, keep).ok()?;
    let maxes = stats.data_page_maxes(ci, oi, keep).ok()?;
    let counts = stats
        .data_page_row_counts(oi, pmeta.row_groups(), keep)
        .ok()??;
    let (mins, maxes) = (mins.as_string_opt::<i32>()?, maxes.as_string_opt::<i32>()?);
    if mins.len() != counts.len() || maxes.len() != counts.len() {
        return None;
    }
    let mut selectors = Vec::with_capacity(counts.len());
    for p in 0..counts.len() {
        let rows = usize::try_from(counts.value(p)).ok()?;
        let wanted = !(mins.is_valid(p) && maxes.is_valid(p))
            || (mins.value(p) <= trace_id && trace_id <= maxes.value(p));
        selectors.push(if wanted {
            RowSelector::select(rows)
        } else {
            RowSelector::skip(rows)
        });
    }
    Some(RowSelection::from(selectors))
}

/// Calls `f` with the rows whose `start_time` lies in `[start_ns, end_ns]`, projected to
/// `columns` (plus `start_time`), files first, then memtables. `f` returns false to stop.
pub fn scan(
    storage: &Storage,
    tenant: &TenantId,
    start_ns: i64,
    end_ns: i64,
    columns: &[&str],
    budget: &Budget,
    f: &mut dyn FnMut(&RecordBatch) -> Result<bool>,
) -> Result<()> {
    scan_narrowed(
        storage,
        tenant,
        start_ns,
        end_ns,
        Narrow::default(),
        columns,
        budget,
        None,
        f,
    )
}

/// Conditions every span a scan's caller wants meets, which let the scan leave file rows
/// out before decoding them. The caller still checks each row it is given (memtable rows
/// and some file rows come unfiltered).
#[derive(Debug, Clone, Copy, Default)]
pub struct Narrow<'a> {
    /// File pages whose `service_name` range cannot hold it are skipped unread (files
    /// are sorted by service), and other services' rows are left out.
    pub service: Option<&'a str>,
    pub min_duration_ns: Option<i64>,
    pub max_duration_ns: Option<i64>,
    /// A span attribute a matching span has with this value, or does not have at all
    /// (the caller may then look elsewhere, e.g. in resource attributes). Files with a
    /// dedicated column for the key leave out rows whose value there differs.
    pub attribute: Option<AttrNarrow<'a>>,
}

/// See [`Narrow::attribute`].
#[derive(Debug, Clone, Copy)]
pub struct AttrNarrow<'a> {
    pub key: &'a str,
    pub want: AttrWant<'a>,
}

/// The value of an [`AttrNarrow`].
#[derive(Debug, Clone, Copy)]
pub enum AttrWant<'a> {
    /// Jaeger's tag match: any value whose text is this (`"/cart"`, `200`, `true`).
    Text(&'a str),
    /// TraceQL equality: values of other types are left for the caller to judge.
    Str(&'a str),
    Int(i64),
    Bool(bool),
}

/// An owned [`AttrWant`], for a row filter.
enum Want {
    Text(String),
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Want {
    fn of(w: AttrWant<'_>) -> Want {
        match w {
            AttrWant::Text(s) => Want::Text(s.to_owned()),
            AttrWant::Str(s) => Want::Str(s.to_owned()),
            AttrWant::Int(i) => Want::Int(i),
            AttrWant::Bool(b) => Want::Bool(b),
        }
    }

    /// Whether a dedicated column's value at `row` may match (nulls always may: the
    /// attribute may be elsewhere).
    fn may_match(&self, col: &dyn Array, row: usize) -> bool {
        if col.is_null(row) {
            return true;
        }
        let (s, i, b) = (
            col.as_string_opt::<i32>(),
            col.as_primitive_opt::<Int64Type>(),
            col.as_boolean_opt(),
        );
        match self {
            Want::Text(want) => {
                if let Some(s) = s {
                    s.value(row) == want
                } else if let Some(i) = i {
                    want.parse::<i64>().ok() == Some(i.value(row))
                        && i.value(row).to_string() == *want
                } else if let Some(b) = b {
                    want == if b.value(row) { "true" } else { "false" }
                } else {
                    true
                }
            }
            Want::Str(want) => s.is_none_or(|s| s.value(row) == want),
            Want::Int(want) => i.is_none_or(|i| i.value(row) == *want),
            Want::Bool(want) => b.is_none_or(|b| b.value(row) == *want),
        }
    }
}

impl Narrow<'_> {
    fn filters_rows(&self) -> bool {
        self.service.is_some() || self.min_duration_ns.is_some() || self.max_duration_ns.is_some()
    }
}

/// Like [`scan`], leaving out file rows that `narrow` excludes: those columns are decoded
/// first, and the others only for the rows that pass.
///
/// With `newest_first`, newest spans come first: memtables, then files by their latest
/// span start, stopping at the first file whose spans all start before the cut-off it
/// gives (asked before each file, so a search can stop once it holds enough newer hits).
#[allow(clippy::too_many_arguments)]
pub fn scan_narrowed(
    storage: &Storage,
    tenant: &TenantId,
    start_ns: i64,
    end_ns: i64,
    narrow: Narrow<'_>,
    columns: &[&str],
    budget: &Budget,
    newest_first: Option<&dyn Fn() -> Option<i64>>,
    f: &mut dyn FnMut(&RecordBatch) -> Result<bool>,
) -> Result<()> {
    if end_ns < start_ns {
        return Ok(());
    }
    let mut cols: Vec<&str> = vec!["start_time"];
    for c in columns {
        if !cols.contains(c) {
            cols.push(c);
        }
    }
    let snap = storage.snapshot(tenant, Signal::Traces, start_ns, end_ns);
    let scan_batches = |f: &mut dyn FnMut(&RecordBatch) -> Result<bool>| -> Result<bool> {
        for batch in &snap.batches {
            budget.check()?;
            let indices: Vec<usize> = cols
                .iter()
                .filter_map(|c| batch.schema().index_of(c).ok())
                .collect();
            let projected = batch.project(&indices).map_err(internal)?;
            budget.add_spans(projected.num_rows())?;
            if let Some(b) = in_range(&projected, start_ns, end_ns)?
                && !f(&b)?
            {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let mut files: Vec<&FileMeta> = snap.files.iter().collect();
    if newest_first.is_some() {
        // Memtables hold the newest spans; then files by their latest span start.
        if !scan_batches(f)? {
            return Ok(());
        }
        files.sort_by_key(|file| std::cmp::Reverse(file.max_time_ns));
    }
    for file in files {
        // Newest first, none of the files whose spans all start before the cut-off.
        if newest_first
            .and_then(|older_than| older_than())
            .is_some_and(|cut| file.max_time_ns < cut)
        {
            return Ok(());
        }
        budget.check()?;
        let path = snap.files_root.join(&file.path);
        if !scan_file(&path, start_ns, end_ns, narrow, &cols, budget, f)? {
            return Ok(());
        }
    }
    if newest_first.is_none() {
        scan_batches(f)?;
    }
    Ok(())
}

fn scan_file(
    path: &Path,
    start_ns: i64,
    end_ns: i64,
    narrow: Narrow<'_>,
    cols: &[&str],
    budget: &Budget,
    f: &mut dyn FnMut(&RecordBatch) -> Result<bool>,
) -> Result<bool> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let meta = footer(path, &file)?;
    let pmeta = meta.metadata().clone();
    let schema = meta.schema().clone();
    let pschema = meta.parquet_schema();
    let stats = StatisticsConverter::try_new("start_time", &schema, pschema).map_err(internal)?;
    let rgs = pmeta.row_groups();
    let mins = stats.row_group_mins(rgs.iter()).map_err(internal)?;
    let maxes = stats.row_group_maxes(rgs.iter()).map_err(internal)?;
    let (mins, maxes) = (
        mins.as_primitive_opt::<TimestampNanosecondType>(),
        maxes.as_primitive_opt::<TimestampNanosecondType>(),
    );
    let keep: Vec<usize> = (0..rgs.len())
        .filter(|&i| match (mins, maxes) {
            (Some(lo), Some(hi)) if lo.is_valid(i) && hi.is_valid(i) => {
                lo.value(i) <= end_ns && hi.value(i) >= start_ns
            }
            _ => true,
        })
        .collect();
    if keep.is_empty() {
        return Ok(true);
    }
    // Files of the second layout derive `end_time` from `start_time + duration`; those of
    // the third keep some attributes in dedicated columns.
    let needs_duration = cols.contains(&"end_time");
    let needs_dedicated = cols.contains(&"attributes");
    let leaves = crate::footer::leaves_where(pschema, |root| {
        cols.contains(&root)
            || (needs_duration && root == "duration")
            || (needs_dedicated && root.starts_with(DEDICATED_PREFIX))
    });
    let mask = ProjectionMask::leaves(pschema, leaves);
    let selection = match narrow.service {
        Some(svc) => service_selection(&meta, &keep, svc)?,
        None => None,
    };
    if selection.as_ref().is_some_and(|s| !s.selects_any()) {
        return Ok(true);
    }
    let filter = row_filter(pschema, narrow);
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta)
        .with_row_groups(keep)
        .with_projection(mask)
        .with_batch_size(32 * 1024);
    if let Some(sel) = selection {
        builder = builder.with_row_selection(sel);
    }
    if let Some(filter) = filter {
        builder = builder.with_row_filter(filter);
    }
    let mut reader = build_reader(builder)?;
    loop {
        budget.check()?;
        let Some(batch) = next_batch(&mut reader)? else {
            break;
        };
        let batch = spans_from_file(&batch).map_err(internal)?;
        budget.add_spans(batch.num_rows())?;
        if let Some(b) = in_range(&batch, start_ns, end_ns)?
            && !f(&b)?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A Parquet row filter keeping the rows `narrow` allows: first on `service_name` and
/// `duration`, then, for the rows left, on the narrowed attribute's dedicated column
/// (`None` when there is nothing to filter on).
fn row_filter(pschema: &SchemaDescriptor, narrow: Narrow<'_>) -> Option<RowFilter> {
    let leaf = |name: &str| (0..pschema.num_columns()).find(|i| pschema.column(*i).name() == name);
    let mut predicates: Vec<Box<dyn ArrowPredicate>> = Vec::new();
    if narrow.filters_rows() {
        predicates.push(service_duration_predicate(pschema, narrow)?);
    }
    if let Some(attr) = narrow.attribute {
        let dedicated = [AttrType::Str, AttrType::Int, AttrType::Bool]
            .into_iter()
            .find_map(|ty| leaf(&column_name(ty, attr.key)));
        if let Some(col) = dedicated {
            let want = Want::of(attr.want);
            predicates.push(Box::new(ArrowPredicateFn::new(
                ProjectionMask::leaves(pschema, [col]),
                move |batch: RecordBatch| {
                    let c = batch.column(0);
                    Ok((0..batch.num_rows())
                        .map(|i| Some(want.may_match(c.as_ref(), i)))
                        .collect::<BooleanArray>())
                },
            )));
        }
    }
    (!predicates.is_empty()).then(|| RowFilter::new(predicates))
}

/// The predicate of [`row_filter`] on `service_name` and `duration` (`None` when the file
/// lacks them).
fn service_duration_predicate(
    pschema: &SchemaDescriptor,
    narrow: Narrow<'_>,
) -> Option<Box<dyn ArrowPredicate>> {
    let leaf = |name: &str| (0..pschema.num_columns()).find(|i| pschema.column(*i).name() == name);
    let mut leaves = Vec::new();
    if narrow.service.is_some() {
        leaves.push(leaf("service_name")?);
    }
    if narrow.min_duration_ns.is_some() || narrow.max_duration_ns.is_some() {
        leaves.push(leaf("duration")?);
    }
    let service = narrow.service.map(str::to_owned);
    let (lo, hi) = (narrow.min_duration_ns, narrow.max_duration_ns);
    let predicate = ArrowPredicateFn::new(
        ProjectionMask::leaves(pschema, leaves),
        move |batch: RecordBatch| {
            let svc = batch
                .column_by_name("service_name")
                .and_then(|c| c.as_string_opt::<i32>());
            let dur = batch
                .column_by_name("duration")
                .and_then(|c| c.as_primitive_opt::<Int64Type>());
            Ok((0..batch.num_rows())
                .map(|i| {
                    let svc_ok = match (&service, svc) {
                        (Some(want), Some(c)) => c.value(i) == want,
                        _ => true,
                    };
                    let dur_ok = dur.is_none_or(|d| {
                        let d = d.value(i);
                        lo.is_none_or(|m| d >= m) && hi.is_none_or(|m| d <= m)
                    });
                    Some(svc_ok && dur_ok)
                })
                .collect::<BooleanArray>())
        },
    );
    Some(Box::new(predicate))
}

/// The rows of the kept row groups in pages whose `service_name` range holds `service`
/// (`None` when the file has no page index: then every row is read).
fn service_selection(
    meta: &ArrowReaderMetadata,
    keep: &[usize],
    service: &str,
) -> Result<Option<RowSelection>> {
    let pmeta = meta.metadata();
    let (Some(ci), Some(oi)) = (pmeta.column_index(), pmeta.offset_index()) else {
        return Ok(None);
    };
    let stats = StatisticsConverter::try_new("service_name", meta.schema(), meta.parquet_schema())
        .map_err(internal)?;
    let mins = stats.data_page_mins(ci, oi, keep).map_err(internal)?;
    let maxes = stats.data_page_maxes(ci, oi, keep).map_err(internal)?;
    let Some(counts) = stats
        .data_page_row_counts(oi, pmeta.row_groups(), keep)
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let (Some(mins), Some(maxes)) = (mins.as_string_opt::<i32>(), maxes.as_string_opt::<i32>())
    else {
        return Ok(None);
    };
    if mins.len() != counts.len() || maxes.len() != counts.len() {
        return Ok(None);
    }
    let mut selectors = Vec::with_capacity(counts.len());
    for p in 0..counts.len() {
        let rows = usize::try_from(counts.value(p)).map_err(internal)?;
        let wanted = !(mins.is_valid(p) && maxes.is_valid(p))
            || (mins.value(p) <= service && service <= maxes.value(p));
        selectors.push(if wanted {
            RowSelector::select(rows)
        } else {
            RowSelector::skip(rows)
        });
    }
    Ok(Some(RowSelection::from(selectors)))
}

fn in_range(batch: &RecordBatch, start_ns: i64, end_ns: i64) -> Result<Option<RecordBatch>> {
    let Some(ts) = batch
        .column_by_name("start_time")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
    else {
        return Err(Error::Internal("spans batch without start_time".into()));
    };
    let mask: BooleanArray = ts
        .values()
        .iter()
        .map(|t| Some(*t >= start_ns && *t <= end_ns))
        .collect();
    match mask.true_count() {
        0 => Ok(None),
        n if n == batch.num_rows() => Ok(Some(batch.clone())),
        _ => filter_record_batch(batch, &mask)
            .map(Some)
            .map_err(internal),
    }
}

/// Typed access to the columns of a spans batch (any projection of the `spans` schema).
pub struct SpanColumns<'a> {
    batch: &'a RecordBatch,
}

impl<'a> SpanColumns<'a> {
    pub fn new(batch: &'a RecordBatch) -> Self {
        SpanColumns { batch }
    }

    fn col(&self, name: &str) -> Option<&'a ArrayRef> {
        self.batch.column_by_name(name)
    }

    /// A string column (`None` when not projected).
    pub fn str(&self, name: &str) -> Option<&'a StringArray> {
        self.col(name)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    }

    pub fn i32(&self, name: &str) -> Option<&'a datafusion::arrow::array::Int32Array> {
        self.col(name)
            .and_then(|c| c.as_primitive_opt::<Int32Type>())
    }

    pub fn i64(&self, name: &str) -> Option<&'a datafusion::arrow::array::Int64Array> {
        self.col(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
    }

    pub fn u32(&self, name: &str) -> Option<&'a UInt32Array> {
        self.col(name)
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
    }

    pub fn ts(&self, name: &str) -> Option<&'a datafusion::arrow::array::TimestampNanosecondArray> {
        self.col(name)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
    }
}

fn missing(name: &str) -> Error {
    Error::Internal(format!("spans batch without column {name}").into())
}

/// Decodes full rows of the `spans` schema back into model spans.
pub fn spans_of(batch: &RecordBatch) -> Result<Vec<Span>> {
    let c = SpanColumns::new(batch);
    let s = |n: &str| c.str(n).ok_or_else(|| missing(n));
    let u = |n: &str| c.u32(n).ok_or_else(|| missing(n));
    let (trace_id, span_id, parent, trace_state) = (
        s("trace_id")?,
        s("span_id")?,
        s("parent_span_id")?,
        s("trace_state")?,
    );
    let (name, attrs, events, links, status_message) = (
        s("name")?,
        s("attributes")?,
        s("events")?,
        s("links")?,
        s("status_message")?,
    );
    let (flags, dropped_attrs, dropped_events, dropped_links) = (
        u("flags")?,
        u("dropped_attributes_count")?,
        u("dropped_events_count")?,
        u("dropped_links_count")?,
    );
    let kind = c.i32("kind").ok_or_else(|| missing("kind"))?;
    let status = c.i32("status_code").ok_or_else(|| missing("status_code"))?;
    let start = c.ts("start_time").ok_or_else(|| missing("start_time"))?;
    let end = c.ts("end_time").ok_or_else(|| missing("end_time"))?;
    let (service, res_attrs, res_url, scope_name, scope_version, scope_attrs, scope_url) = (
        s("service_name")?,
        s("resource_attributes")?,
        s("resource_schema_url")?,
        s("scope_name")?,
        s("scope_version")?,
        s("scope_attributes")?,
        s("scope_schema_url")?,
    );
    let (res_dropped, scope_dropped) = (
        u("resource_dropped_attributes_count")?,
        u("scope_dropped_attributes_count")?,
    );
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let events: Vec<SpanEvent> = serde_json::from_str(events.value(i)).map_err(internal)?;
        let links: Vec<SpanLink> = serde_json::from_str(links.value(i)).map_err(internal)?;
        out.push(Span {
            trace_id: trace_id.value(i).to_owned(),
            span_id: span_id.value(i).to_owned(),
            parent_span_id: parent.value(i).to_owned(),
            trace_state: trace_state.value(i).to_owned(),
            flags: flags.value(i),
            name: name.value(i).to_owned(),
            kind: kind.value(i),
            start_time_ns: start.value(i),
            end_time_ns: end.value(i),
            attributes: attrs.value(i).to_owned(),
            dropped_attributes_count: dropped_attrs.value(i),
            events,
            dropped_events_count: dropped_events.value(i),
            links,
            dropped_links_count: dropped_links.value(i),
            status_code: status.value(i),
            status_message: status_message.value(i).to_owned(),
            origin: Origin {
                service_name: service.value(i).to_owned(),
                resource_attributes: res_attrs.value(i).to_owned(),
                resource_dropped_attributes_count: res_dropped.value(i),
                resource_schema_url: res_url.value(i).to_owned(),
                scope_name: scope_name.value(i).to_owned(),
                scope_version: scope_version.value(i).to_owned(),
                scope_attributes: scope_attrs.value(i).to_owned(),
                scope_dropped_attributes_count: scope_dropped.value(i),
                scope_schema_url: scope_url.value(i).to_owned(),
            },
        });
    }
    Ok(out)
}

/// All spans of one trace sorted by start time (duplicates of a span id, as left by
/// retried exports, kept once); empty when the trace is unknown.
pub fn read_trace(
    storage: &Storage,
    tenant: &TenantId,
    trace_id: &str,
    budget: &Budget,
) -> Result<Vec<Span>> {
    let mut spans = Vec::new();
    for b in trace_batches(storage, tenant, trace_id, budget)? {
        spans.extend(spans_of(&b)?);
    }
    spans.sort_by(|a, b| {
        a.start_time_ns
            .cmp(&b.start_time_ns)
            .then_with(|| a.span_id.cmp(&b.span_id))
    });
    let mut seen = std::collections::HashSet::with_capacity(spans.len());
    spans.retain(|s| seen.insert(s.span_id.clone()));
    Ok(spans)
}
