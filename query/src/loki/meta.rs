//! The label browser and index endpoints: `labels`, `label/{name}/values`, `series`,
//! `index/stats`, `index/volume` and `index/volume_range`.
//!
//! All of them answer from the streams that have rows in the requested time range: the
//! stream index resolves the selector, then only the `stream_id` and `timestamp` columns
//! of the pruned row groups are read (see [`LogReader::stream_stats`]).

use super::api::{LokiError, LokiState, blocking, selector, success, time_range};
use super::source::{LogReader, StreamStat};
use crate::prom::params::{BadRequest, Req};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use strata_storage::index::LabelMatcher;
use strata_storage::model::Labels;

type Stats = Vec<(Labels, StreamStat)>;
/// A volume group's label pairs.
type GroupKey = Vec<(String, String)>;

fn stats_in(
    reader: &LogReader,
    matchers: &[LabelMatcher],
    start: i64,
    end: i64,
) -> Result<Stats, LokiError> {
    reader
        .stream_stats(matchers, start, end)
        .map_err(LokiError::of_read)
}

/// Shared preamble: tenant, time range and an optional selector parameter.
struct MetaReq {
    tenant: strata_storage::TenantId,
    start: i64,
    end: i64,
    matchers: Vec<Vec<LabelMatcher>>,
    params: crate::prom::params::Params,
}

fn meta_request(
    state: &LokiState,
    req: Req,
    selector_params: &[&str],
) -> Result<MetaReq, LokiError> {
    let (start, end) = time_range(&req.params, &state.config)?;
    let mut matchers = Vec::new();
    for name in selector_params {
        for v in req.params.all(name) {
            if !v.is_empty() {
                matchers.push(selector(name, v)?);
            }
        }
    }
    Ok(MetaReq {
        tenant: req.tenant,
        start,
        end,
        matchers,
        params: req.params,
    })
}

/// The stats of the streams matching any of the selectors (all streams when none).
async fn collect(state: &LokiState, r: MetaReq) -> Result<(Stats, MetaReq), LokiError> {
    let (tenant, start, end) = (r.tenant.clone(), r.start, r.end);
    let sets = if r.matchers.is_empty() {
        vec![Vec::new()]
    } else {
        r.matchers.clone()
    };
    let stats = blocking(state, tenant, move |reader| {
        let mut all: BTreeMap<Labels, StreamStat> = BTreeMap::new();
        for set in &sets {
            for (l, s) in stats_in(&reader, set, start, end)? {
                all.insert(l, s);
            }
        }
        Ok(all.into_iter().collect::<Vec<_>>())
    })
    .await?;
    Ok((stats, r))
}

pub(crate) async fn labels(
    State(state): State<LokiState>,
    req: Result<Req, BadRequest>,
) -> Result<Response, LokiError> {
    let r = meta_request(&state, req?, &["query"])?;
    let (stats, _) = collect(&state, r).await?;
    let names: BTreeSet<String> = stats
        .iter()
        .flat_map(|(l, _)| l.iter().map(|l| l.name.clone()))
        .collect();
    Ok(success(json!(names)))
}

pub(crate) async fn label_values(
    State(state): State<LokiState>,
    Path(name): Path<String>,
    req: Result<Req, BadRequest>,
) -> Result<Response, LokiError> {
    let r = meta_request(&state, req?, &["query"])?;
    let (stats, _) = collect(&state, r).await?;
    let values: BTreeSet<String> = stats
        .iter()
        .filter_map(|(l, _)| l.get(&name).map(str::to_owned))
        .collect();
    Ok(success(json!(values)))
}

fn labels_json(l: &Labels) -> Json {
    let mut m = Map::new();
    for p in l.iter() {
        m.insert(p.name.clone(), Json::String(p.value.clone()));
    }
    Json::Object(m)
}

pub(crate) async fn series(
    State(state): State<LokiState>,
    req: Result<Req, BadRequest>,
) -> Result<Response, LokiError> {
    let r = meta_request(&state, req?, &["match[]", "match"])?;
    let (stats, _) = collect(&state, r).await?;
    let list: Vec<Json> = stats.iter().map(|(l, _)| labels_json(l)).collect();
    Ok(success(Json::Array(list)))
}

pub(crate) async fn index_stats(
    State(state): State<LokiState>,
    req: Result<Req, BadRequest>,
) -> Result<Response, LokiError> {
    let r = meta_request(&state, req?, &["query"])?;
    let (stats, _) = collect(&state, r).await?;
    let (entries, bytes, chunks) = stats.iter().fold((0u64, 0u64, 0u64), |acc, (_, s)| {
        (acc.0 + s.entries, acc.1 + s.bytes, acc.2 + s.chunks)
    });
    // Loki answers this endpoint without the envelope.
    Ok(axum::Json(json!({
        "streams": stats.len(),
        "chunks": chunks,
        "bytes": bytes,
        "entries": entries,
    }))
    .into_response())
}

/// Groups stream volumes as Loki's volume endpoint does: by `targetLabels` when given,
/// else by the selector's label names (`aggregateBy=series`), or one entry per label name
/// (`aggregateBy=labels`).
fn group_volumes(
    stats: &Stats,
    r: &MetaReq,
) -> Result<BTreeMap<Vec<(String, String)>, u64>, LokiError> {
    let target: Vec<String> = r
        .params
        .get("targetLabels")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let by_labels = match r.params.get("aggregateBy") {
        "" | "series" => false,
        "labels" => true,
        other => {
            return Err(LokiError::bad_request(format!(
                "invalid parameter \"aggregateBy\": {other:?}: use series or labels"
            )));
        }
    };
    let selector_names: Vec<String> = r
        .matchers
        .iter()
        .flatten()
        .map(|m| m.name.clone())
        .collect();
    let mut out: BTreeMap<GroupKey, u64> = BTreeMap::new();
    for (l, s) in stats {
        if by_labels {
            for p in l.iter() {
                if target.is_empty() || target.contains(&p.name) {
                    *out.entry(vec![(p.name.clone(), String::new())])
                        .or_default() += s.bytes;
                }
            }
            continue;
        }
        let names = if target.is_empty() {
            &selector_names
        } else {
            &target
        };
        let key: Vec<(String, String)> = l
            .iter()
            .filter(|p| names.contains(&p.name))
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        *out.entry(key).or_default() += s.bytes;
    }
    Ok(out)
}

fn volume_limit(r: &MetaReq) -> Result<usize, LokiError> {
    match r.params.get("limit") {
        "" => Ok(100),
        v => v.parse().map_err(|_| {
            LokiError::bad_request(format!(
                "invalid parameter \"limit\": {v:?} is not an integer"
            ))
        }),
    }
}

fn metric_json(key: &[(String, String)], by_labels: bool) -> Json {
    let mut m = Map::new();
    for (k, v) in key {
        if by_labels {
            m.insert(k.clone(), Json::String(String::new()));
        } else {
            m.insert(k.clone(), Json::String(v.clone()));
        }
    }
    Json::Object(m)
}

/// Largest first, then by labels; at most `limit`.
fn top(
    groups: BTreeMap<Vec<(String, String)>, u64>,
    limit: usize,
) -> Vec<(Vec<(String, String)>, u64)> {
    let mut v: Vec<_> = groups.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v
}

fn secs(ns: i64) -> Json {
    json!(ns as f64 / 1e9)
}

pub(crate) async fn volume(
    State(state): State<LokiState>,
    req: Result<Req, BadRequest>,
) -> Result<Response, LokiError> {
    let r = meta_request(&state, req?, &["query"])?;
    let limit = volume_limit(&r)?;
    let (stats, r) = collect(&state, r).await?;
    let by_labels = r.params.get("aggregateBy") == "labels";
    let groups = top(group_volumes(&stats, &r)?, limit);
    let result: Vec<Json> = groups
            .iter()
            .map(|(k, bytes)| {
                json!({"metric": metric_json(k, by_labels), "value": [secs(r.end), bytes.to_string()]})
            })
            .collect();
    Ok(success(json!({"resultType": "vector", "result": result})))
}

pub(crate) async fn volume_range(
    State(state): State<LokiState>,
    req: Result<Req, BadRequest>,
) -> Result<Response, LokiError> {
    let r = meta_request(&state, req?, &["query"])?;
    let limit = volume_limit(&r)?;
    let step = match r.params.get("step") {
        "" => ((r.end - r.start) / 250).max(1_000_000_000),
        v => super::api::parse_duration(v)
            .map_err(|e| LokiError::bad_request(format!("invalid parameter \"step\": {e}")))?,
    };
    if step <= 0 || (r.end - r.start) / step > 1000 {
        return Err(LokiError::bad_request(
            "invalid parameter \"step\": use a positive step giving at most 1000 points",
        ));
    }
    let by_labels = r.params.get("aggregateBy") == "labels";
    let mut series: BTreeMap<GroupKey, Vec<Json>> = BTreeMap::new();
    let mut t = r.start;
    let mut totals: BTreeMap<GroupKey, u64> = BTreeMap::new();
    let mut points: Vec<(i64, BTreeMap<GroupKey, u64>)> = Vec::new();
    while t < r.end {
        let window_end = (t + step).min(r.end);
        let sub = MetaReq {
            tenant: r.tenant.clone(),
            start: t,
            end: window_end,
            matchers: r.matchers.clone(),
            params: crate::prom::params::Params::default(),
        };
        let (stats, _) = collect(&state, sub).await?;
        let groups = group_volumes(&stats, &r)?;
        for (k, v) in &groups {
            *totals.entry(k.clone()).or_default() += v;
        }
        points.push((window_end, groups));
        t = window_end;
    }
    let keep: BTreeSet<GroupKey> = top(totals, limit).into_iter().map(|(k, _)| k).collect();
    for (ts, groups) in points {
        for (k, v) in groups {
            if keep.contains(&k) {
                series
                    .entry(k)
                    .or_default()
                    .push(json!([secs(ts), v.to_string()]));
            }
        }
    }
    let result: Vec<Json> = series
        .into_iter()
        .map(|(k, values)| json!({"metric": metric_json(&k, by_labels), "values": values}))
        .collect();
    Ok(success(json!({"resultType": "matrix", "result": result})))
}
