//! Parquet files: encoding choices, writing sorted zstd files through the object store,
//! and reading them back.
//!
//! The object store's local backend does not fsync; for local storage we fsync the file and
//! its directory ourselves before the catalog may name it.

use crate::error::{Error, Result};
use crate::model::Signal;
use crate::schema::{schema, sort_columns};
use crate::wal::sync_dir;
use bytes::Bytes;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::{
    SortColumn, concat, concat_batches, interleave_record_batch, lexsort_to_indices,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::reader::ChunkReader;
use datafusion::parquet::schema::types::ColumnPath;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per Parquet row group: small enough that a trace-id or series lookup skips most of
/// a file, large enough for good compression.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows per data page of spans files (see `writer_properties`).
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

/// Merges batches into one sorted by the signal's access path. Only the sort key columns
/// are concatenated; rows are then gathered straight from the inputs, so a flush holds
/// the memtable plus one sorted copy, not two.
pub fn sort_batches(signal: Signal, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let schema = schema(signal);
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
    if columns.is_empty() {
        return Ok(concat_batches(&schema, batches)?);
    }
    let indices = lexsort_to_indices(&columns, None)?;
    drop(columns);
    // Global row number -> (batch, row within it).
    let mut starts = Vec::with_capacity(batches.len());
    let mut total = 0usize;
    for b in batches {
        starts.push(total);
        total += b.num_rows();
    }
    let pairs: Vec<(usize, usize)> = indices
        .values()
        .iter()
        .map(|&i| {
            let i = i as usize;
            let b = starts.partition_point(|&s| s <= i) - 1;
            (b, i - starts[b])
        })
        .collect();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    Ok(interleave_record_batch(&refs, &pairs)?)
}

fn writer_properties(signal: Signal) -> Result<WriterProperties> {
    let s = schema(signal);
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(true);
    let sorting: Vec<SortingColumn> = sort_columns(signal)
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
    if signal == Signal::Logs {
        // Log lines are most of a logs file. zstd level 6 makes them 7-13% smaller than
        // level 3 on log text (both read equally fast) for about twice the compression CPU,
        // which keeps data plus token index under `zstd -3` of the raw lines. Lines are
        // nearly all distinct: a dictionary would only be built to be abandoned.
        // Min/max statistics of the lines prune nothing (they span everything) and cost a
        // quarter of a flush's CPU in string comparisons.
        let path = ColumnPath::from("body");
        b = b
            .set_column_compression(path.clone(), Compression::ZSTD(ZstdLevel::try_new(6)?))
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
    }
    Ok(b.build())
}

/// Encodes a sorted batch as a Parquet file.
pub fn encode_parquet(signal: Signal, batch: &RecordBatch) -> Result<Vec<u8>> {
    encode_parquet_with(signal, batch, &|b| Ok(b))
}

/// Encodes a sorted batch as a Parquet file, passing it through `prepare` one slice at a
/// time: a flush fills metric label columns this way, so only one slice is ever held
/// with its labels spelled out.
pub fn encode_parquet_with(
    signal: Signal,
    batch: &RecordBatch,
    prepare: &dyn Fn(RecordBatch) -> Result<RecordBatch>,
) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buf, schema(signal), Some(writer_properties(signal)?))?;
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = ENCODE_SLICE_ROWS.min(batch.num_rows() - offset);
        writer.write(&prepare(batch.slice(offset, len))?)?;
        offset += len;
    }
    writer.close()?;
    Ok(buf)
}

/// Rows passed to the Parquet writer at a time.
const ENCODE_SLICE_ROWS: usize = 64 * 1024;

/// Reads a Parquet file (in memory, or an open local file, of which only the footer and
/// the chosen columns' chunks are read), optionally only some columns and rows.
pub fn decode_parquet<R: ChunkReader + 'static>(
    data: R,
    columns: Option<&[&str]>,
    selection: Option<RowSelection>,
) -> Result<Vec<RecordBatch>> {
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(data)?;
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
        out.push(batch?);
    }
    Ok(out)
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
