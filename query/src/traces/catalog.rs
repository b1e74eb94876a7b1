//! Services and operations of a tenant's spans, for Jaeger's service and operation lists
//! and Tempo's intrinsic tag values. A Parquet file never changes, so its distinct
//! (service, span name, kind) triples are computed once and cached by path; memtables are
//! read on every call.

use super::limits::Budget;
use super::read::SpanColumns;
use crate::error::{Error, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use strata_storage::model::Signal;
use strata_storage::{Storage, TenantId};

/// One operation: service, span name, OTLP kind.
pub type Operation = (String, String, i32);

type OpSet = Arc<BTreeSet<Operation>>;

static FILE_OPS: LazyLock<Mutex<HashMap<PathBuf, OpSet>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

const CACHE_ENTRIES: usize = 4096;

fn add_batch(set: &mut BTreeSet<Operation>, b: &RecordBatch) {
    let cols = SpanColumns::new(b);
    let (Some(svc), Some(name), Some(kind)) =
        (cols.str("service_name"), cols.str("name"), cols.i32("kind"))
    else {
        return;
    };
    let mut last: Option<(&str, &str, i32)> = None;
    for i in 0..b.num_rows() {
        let key = (svc.value(i), name.value(i), kind.value(i));
        if last == Some(key) {
            continue;
        }
        last = Some(key);
        if !set.contains(&(key.0.to_owned(), key.1.to_owned(), key.2)) {
            set.insert((key.0.to_owned(), key.1.to_owned(), key.2));
        }
    }
}

fn file_ops(path: &PathBuf) -> Result<OpSet> {
    if let Some(s) = FILE_OPS.lock().get(path) {
        return Ok(s.clone());
    }
    let internal = |e: datafusion::parquet::errors::ParquetError| Error::Internal(Box::new(e));
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display()).into()))?;
    // The footer through the process's cache, its decode guarded (bytes from disk).
    let footer = crate::footer::footer(path, &file).map_err(internal)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, footer.meta.clone());
    let pschema = builder.parquet_schema();
    let leaves: Vec<usize> = (0..pschema.num_columns())
        .filter(|i| matches!(pschema.column(*i).name(), "service_name" | "name" | "kind"))
        .collect();
    let mask = ProjectionMask::leaves(pschema, leaves);
    let mut set = BTreeSet::new();
    let mut reader = super::read::build_reader(builder.with_projection(mask))?;
    while let Some(b) = super::read::next_batch(&mut reader)? {
        add_batch(&mut set, &b);
    }
    let set = Arc::new(set);
    let mut cache = FILE_OPS.lock();
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(path.clone(), set.clone());
    Ok(set)
}

/// Every (service, operation, kind) of a tenant, whatever its time.
pub fn operations(
    storage: &Storage,
    tenant: &TenantId,
    budget: &Budget,
) -> Result<BTreeSet<Operation>> {
    let snap = storage.snapshot(tenant, Signal::Traces, i64::MIN, i64::MAX);
    let mut all = BTreeSet::new();
    for f in &snap.files {
        budget.check()?;
        all.extend(file_ops(&snap.files_root.join(&f.path))?.iter().cloned());
    }
    for b in &snap.batches {
        budget.check()?;
        add_batch(&mut all, b);
    }
    Ok(all)
}
