//! SQL over every signal through DataFusion.
//!
//! Each query gets a session with three tables, `metrics`, `logs` and `spans`, holding the
//! tenant's data: rows still in memtables (read-your-writes) plus the Parquet files the
//! catalog names. A table is a view over both parts, so filters and projections push down
//! into the Parquet scan (row-group and page pruning by statistics).
//!
//! Spans files of the second layout (binary span ids, no `end_time`; see
//! `strata_storage::schema`) are shown through expressions that give the table's columns
//! back: `span_id` and `parent_span_id` as hex text, `end_time = start_time + duration`.
//! `trace_id` is stored as hex text in both layouts, so `WHERE trace_id = '...'` still
//! prunes row groups and pages. Files of the third layout have dedicated attribute
//! columns (`attr:<type>:<key>`); the view merges them back into `attributes` with
//! `strata_span_attributes` (files without one of them read it as nulls).

use crate::error::{Error, Result};
use crate::json::batches_to_rows;
use crate::traces::read::lean_spans_file_dedicated;
use datafusion::arrow::datatypes::{Field, FieldRef, Schema};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use strata_storage::model::Signal;
use strata_storage::schema::{schema, spans_file_schema, table_name};
use strata_storage::{Storage, TenantId};

/// SQL settings (the `[query]` table's SQL part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlLimits {
    /// Most rows one SQL answer may hold.
    pub max_rows: usize,
    /// Longest a SQL query may run.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            max_rows: 100_000,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A SQL answer: column names and rows of JSON values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SqlAnswer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

async fn register(
    ctx: &SessionContext,
    storage: &Storage,
    tenant: &TenantId,
    signal: Signal,
) -> Result<()> {
    let snap = storage.snapshot(tenant, signal, i64::MIN, i64::MAX);
    let name = table_name(signal);
    let schema = schema(signal);
    let mem = Arc::new(MemTable::try_new(schema.clone(), vec![snap.batches])?);
    if snap.files.is_empty() {
        ctx.register_table(name, mem)?;
        return Ok(());
    }
    let mut paths = Vec::new();
    let mut lean_paths = Vec::new();
    // Dedicated attribute columns of any lean spans file, by name (the name holds the
    // type, so equal names have equal types); files without one read it as nulls.
    let mut dedicated: std::collections::BTreeMap<String, FieldRef> = Default::default();
    for f in &snap.files {
        let path = snap.files_root.join(&f.path);
        match (signal == Signal::Traces)
            .then(|| lean_spans_file_dedicated(&path))
            .transpose()?
            .flatten()
        {
            Some(fields) => {
                for f in fields {
                    dedicated.entry(f.name().clone()).or_insert(f);
                }
                lean_paths.push(path);
            }
            None => paths.push(path),
        }
    }
    let mem_name = format!("__{name}_memtable");
    ctx.register_table(mem_name.as_str(), mem)?;
    let mut parts = vec![format!("SELECT * FROM {mem_name}")];
    if !paths.is_empty() {
        let files_name = format!("__{name}_files");
        ctx.register_table(files_name.as_str(), listing(&paths, schema.clone())?)?;
        parts.push(format!("SELECT * FROM {files_name}"));
    }
    if !lean_paths.is_empty() {
        // The second spans file layout, shown in the table's form: hex ids, `end_time`.
        let files_name = format!("__{name}_lean_files");
        let mut fields: Vec<FieldRef> = spans_file_schema().fields().iter().cloned().collect();
        fields.extend(
            dedicated
                .values()
                .map(|f| Arc::new(Field::new(f.name(), f.data_type().clone(), true)) as FieldRef),
        );
        ctx.register_table(
            files_name.as_str(),
            listing(&lean_paths, Arc::new(Schema::new(fields)))?,
        )?;
        let attributes = if dedicated.is_empty() {
            "\"attributes\"".to_owned()
        } else {
            let args: Vec<String> = dedicated
                .keys()
                .map(|n| {
                    format!(
                        "'{}', \"{}\"",
                        n.replace('\'', "''"),
                        n.replace('"', "\"\"")
                    )
                })
                .collect();
            format!(
                "{}(\"attributes\", {}) AS attributes",
                crate::sql_attributes::NAME,
                args.join(", ")
            )
        };
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "span_id" => "encode(arrow_cast(span_id, 'Binary'), 'hex') AS span_id".to_owned(),
                "parent_span_id" => {
                    "coalesce(encode(arrow_cast(parent_span_id, 'Binary'), 'hex'), '') \
                     AS parent_span_id"
                        .to_owned()
                }
                "end_time" => {
                    "start_time + arrow_cast(duration, 'Duration(Nanosecond)') AS end_time"
                        .to_owned()
                }
                "attributes" => attributes.clone(),
                other => format!("\"{other}\""),
            })
            .collect();
        parts.push(format!("SELECT {} FROM {files_name}", columns.join(", ")));
    }
    parts.rotate_left(1);
    ctx.sql(&format!(
        "CREATE VIEW {name} AS {}",
        parts.join(" UNION ALL ")
    ))
    .await?;
    Ok(())
}

fn listing(
    paths: &[std::path::PathBuf],
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<Arc<ListingTable>> {
    let urls = paths
        .iter()
        .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Runs one SQL statement for a tenant.
pub async fn run(
    storage: &Storage,
    tenant: &TenantId,
    query: &str,
    limits: &SqlLimits,
) -> Result<SqlAnswer> {
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_udf(crate::sql_attributes::udf());
    for signal in Signal::ALL {
        register(&ctx, storage, tenant, signal).await?;
    }
    let work = async {
        let df = ctx.sql(query).await?;
        let columns: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let df = df.limit(0, Some(limits.max_rows + 1))?;
        let batches = df.collect().await?;
        let rows = batches_to_rows(&batches);
        if rows.len() > limits.max_rows {
            return Err(Error::TooManyRows {
                limit: limits.max_rows,
            });
        }
        Ok(SqlAnswer { columns, rows })
    };
    match tokio::time::timeout(limits.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            seconds: limits.timeout.as_secs_f64(),
        }),
    }
}
