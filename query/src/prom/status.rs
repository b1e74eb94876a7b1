//! Status endpoints: build and runtime information, and label-index cardinality statistics.

use super::api::{ApiState, BadRequest, Req};
use super::response::{ApiError, Outcome};
use axum::extract::State;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::TimestampMillisecondType;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use strata_storage::model::Signal;

/// `/api/v1/status/buildinfo`
pub(crate) async fn buildinfo(State(state): State<ApiState>) -> Outcome {
    Outcome::data(json!({
        "version": state.config.build_version,
        "revision": concat!("strata-", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

fn retention_text(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        "0s".to_owned()
    } else if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// `/api/v1/status/runtimeinfo`
pub(crate) async fn runtimeinfo(State(state): State<ApiState>) -> Outcome {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    Outcome::data(json!({
        "startTime": humantime::format_rfc3339_millis(state.started).to_string(),
        "CWD": cwd,
        "reloadConfigSuccess": true,
        "lastConfigTime": humantime::format_rfc3339_millis(state.started).to_string(),
        "corruptionCount": 0,
        "goroutineCount": 0,
        "GOMAXPROCS": workers,
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": retention_text(state.storage.config().retention.metrics),
    }))
}

fn top(counts: impl IntoIterator<Item = (String, u64)>, limit: usize) -> Value {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    Value::Array(
        v.into_iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect(),
    )
}

/// `/api/v1/status/tsdb`
pub(crate) async fn tsdb(
    State(state): State<ApiState>,
    req: Result<Req, BadRequest>,
) -> Result<Outcome, ApiError> {
    let req = req?;
    let limit = match req.params.get("limit") {
        "" => 10,
        v => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(ApiError::bad_data("limit must be a positive number")),
        },
    };
    let storage = state.storage.clone();
    let tenant = req.tenant;
    let stats = tokio::task::spawn_blocking(move || {
        let series = storage.select_labels(&tenant, Signal::Metrics, &[]);
        let mut by_name: HashMap<String, u64> = HashMap::new();
        let mut pairs: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (_, labels) in &series {
            *by_name.entry(labels.metric_name().to_owned()).or_default() += 1;
            for l in labels.iter() {
                *pairs.entry((l.name.clone(), l.value.clone())).or_default() += 1;
            }
        }
        let mut values_by_label: HashMap<String, u64> = HashMap::new();
        let mut bytes_by_label: HashMap<String, u64> = HashMap::new();
        for (name, value) in pairs.keys() {
            *values_by_label.entry(name.clone()).or_default() += 1;
            *bytes_by_label.entry(name.clone()).or_default() += value.len() as u64;
        }
        let snap = storage.snapshot_by_series(&tenant, Signal::Metrics, i64::MIN, i64::MAX);
        let mut min = snap.files.iter().map(|f| f.min_time_ns / 1_000_000).min();
        let mut max = snap.files.iter().map(|f| f.max_time_ns / 1_000_000).max();
        for b in &snap.batches {
            if let Some(ts) = b
                .column_by_name("timestamp")
                .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            {
                for t in ts.values().iter().copied() {
                    min = Some(min.map_or(t, |m| m.min(t)));
                    max = Some(max.map_or(t, |m| m.max(t)));
                }
            }
        }
        json!({
            "headStats": {
                "numSeries": series.len(),
                "numLabelPairs": pairs.len(),
                "chunkCount": 0,
                "minTime": min.unwrap_or(i64::MAX),
                "maxTime": max.unwrap_or(i64::MIN),
            },
            "seriesCountByMetricName": top(by_name, limit),
            "labelValueCountByLabelName": top(values_by_label, limit),
            "memoryInBytesByLabelName": top(bytes_by_label, limit),
            "seriesCountByLabelValuePair": top(
                pairs.into_iter().map(|((n, v), c)| (format!("{n}={v}"), c)),
                limit,
            ),
        })
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Outcome::data(stats))
}
