//! Series, label, metadata and exemplar endpoints.
//!
//! With `match[]`, series come from the label index and, when the request bounds the time
//! range, only those with samples in it count. Without `match[]`, `labels` and label values
//! answer from the whole index, like Prometheus answers from every block overlapping the
//! range: cheap enough for the editor to call on every keystroke.

use super::api::{ApiState, BadRequest, Req, blocking, limit_error, timeout_param};
use super::params::{
    MAX_TIME_MS, MIN_TIME_MS, Params, invalid_param, limit_param, match_param, time_param,
};
use super::response::{ApiError, Outcome};
use super::source::{Limit, ScanError, Scanner, engine_labels, index_matcher};
use axum::extract::{Path, State};
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::UInt64Type;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use strata_promql::Matcher;
use strata_storage::model::{Exemplar, Labels, Signal};

fn scan_error(e: ScanError) -> ApiError {
    match e {
        ScanError::Limit(l) => limit_error(&l),
        ScanError::Storage(m) => ApiError::internal(m),
    }
}

/// The series matching any of `sets`, sorted by labels; when `[start, end]` is bounded,
/// only series with samples in it.
pub(crate) fn matching_series(
    scanner: &Scanner,
    sets: &[Vec<Matcher>],
    start: i64,
    end: i64,
    max_series: usize,
) -> Result<Vec<(u64, Labels)>, ScanError> {
    let mut found: BTreeMap<u64, Labels> = BTreeMap::new();
    for set in sets {
        let matchers = set
            .iter()
            .map(index_matcher)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ScanError::Storage(e.to_string()))?;
        for (id, labels) in
            scanner
                .storage()
                .select_labels(scanner.tenant(), Signal::Metrics, &matchers)
        {
            found.insert(id.0, labels);
        }
        if found.len() > max_series {
            return Err(Limit::TooManySeries(max_series).into());
        }
    }
    if start > MIN_TIME_MS || end < MAX_TIME_MS {
        let ids: Vec<u64> = found.keys().copied().collect();
        let mut seen: HashSet<u64> = HashSet::new();
        scanner.scan(&ids, start, end, &[], &mut |b| {
            if let Some(col) = b
                .column_by_name("series_id")
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            {
                seen.extend(col.values().iter().copied());
            }
            Ok(())
        })?;
        found.retain(|id, _| seen.contains(id));
    }
    let mut out: Vec<(u64, Labels)> = found.into_iter().collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn labels_json(l: &Labels) -> Value {
    let mut m = Map::new();
    for l in l.iter() {
        m.insert(l.name.clone(), Value::String(l.value.clone()));
    }
    Value::Object(m)
}

fn truncated(mut items: Vec<Value>, limit: usize) -> Outcome {
    let mut warnings = Vec::new();
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        warnings.push("results truncated due to limit".to_owned());
    }
    Outcome::Ok {
        data: Value::Array(items),
        warnings,
        infos: Vec::new(),
    }
}

struct Common {
    req: Req,
    limit: usize,
    start: i64,
    end: i64,
    sets: Option<Vec<Vec<Matcher>>>,
}

fn common(req: Req, need_match: bool) -> Result<Common, ApiError> {
    let p: &Params = &req.params;
    let matches = p.all("match[]");
    if need_match && matches.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let limit = limit_param(p)?;
    let start = time_param(p, "start", MIN_TIME_MS)?;
    let end = time_param(p, "end", MAX_TIME_MS)?;
    let sets = if matches.is_empty() {
        None
    } else {
        Some(match_param(&matches)?)
    };
    Ok(Common {
        req,
        limit,
        start,
        end,
        sets,
    })
}

/// `/api/v1/series`
pub(crate) async fn series(
    State(state): State<ApiState>,
    req: Result<Req, BadRequest>,
) -> Result<Outcome, ApiError> {
    let c = common(req?, true)?;
    let timeout = timeout_param(&c.req.params, &state.config)?;
    let max = state.config.max_series;
    let (start, end, sets) = (c.start, c.end, c.sets.unwrap_or_default());
    let found = blocking(&state, c.req.tenant, timeout, move |scanner| {
        matching_series(&scanner, &sets, start, end, max).map_err(scan_error)
    })
    .await?;
    Ok(truncated(
        found.iter().map(|(_, l)| labels_json(l)).collect(),
        c.limit,
    ))
}

/// The label sets `labels` and label values answer from.
async fn label_sets(state: &ApiState, c: &Common) -> Result<Vec<Labels>, ApiError> {
    let timeout = timeout_param(&c.req.params, &state.config)?;
    let max = state.config.max_series;
    let (start, end, sets) = (c.start, c.end, c.sets.clone());
    blocking(state, c.req.tenant.clone(), timeout, move |scanner| {
        Ok(match sets {
            None => scanner
                .storage()
                .select_labels(scanner.tenant(), Signal::Metrics, &[])
                .into_iter()
                .map(|(_, l)| l)
                .collect(),
            Some(sets) => matching_series(&scanner, &sets, start, end, max)
                .map_err(scan_error)?
                .into_iter()
                .map(|(_, l)| l)
                .collect(),
        })
    })
    .await
}

/// `/api/v1/labels`
pub(crate) async fn labels(
    State(state): State<ApiState>,
    req: Result<Req, BadRequest>,
) -> Result<Outcome, ApiError> {
    let c = common(req?, false)?;
    let sets = label_sets(&state, &c).await?;
    let names: BTreeSet<&str> = sets
        .iter()
        .flat_map(|l| l.iter().map(|l| l.name.as_str()))
        .collect();
    Ok(truncated(
        names.into_iter().map(|n| json!(n)).collect(),
        c.limit,
    ))
}

/// A label name from the URL path, as Prometheus 3 reads it: any UTF-8 name, and a
/// `U__` prefix marks the "values" escaping (`U__http_2e_method` is `http.method`, `__`
/// an underscore); a name that does not unescape cleanly is taken as written.
fn path_label_name(raw: &str) -> String {
    let Some(rest) = raw.strip_prefix("U__") else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let hex: String = chars.by_ref().take_while(|&h| h != '_').collect();
        if hex.is_empty() {
            out.push('_');
            continue;
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(decoded) => out.push(decoded),
            None => return raw.to_owned(),
        }
    }
    out
}

/// `/api/v1/label/{name}/values`
pub(crate) async fn label_values(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    req: Result<Req, BadRequest>,
) -> Result<Outcome, ApiError> {
    let name = path_label_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let c = common(req?, false)?;
    let sets = label_sets(&state, &c).await?;
    let values: BTreeSet<&str> = sets.iter().filter_map(|l| l.get(&name)).collect();
    Ok(truncated(
        values.into_iter().map(|v| json!(v)).collect(),
        c.limit,
    ))
}

/// `/api/v1/metadata`
pub(crate) async fn metadata(
    State(state): State<ApiState>,
    req: Result<Req, BadRequest>,
) -> Result<Outcome, ApiError> {
    let req = req?;
    let p = &req.params;
    let limit = limit_param(p)?;
    let metric = p.get("metric");
    let mut data = Map::new();
    for (name, m) in state.storage.metadata(&req.tenant) {
        if !metric.is_empty() && name != metric {
            continue;
        }
        if limit > 0 && data.len() >= limit {
            break;
        }
        data.insert(
            name,
            json!([{ "type": m.metric_type.as_str(), "help": m.help, "unit": m.unit }]),
        );
    }
    Ok(Outcome::data(Value::Object(data)))
}

fn timestamp_json(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn collect_selectors(
    e: &promql_parser::parser::Expr,
    out: &mut Vec<Vec<Matcher>>,
) -> Result<(), String> {
    use promql_parser::parser::Expr;
    match e {
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out)?;
            if let Some(p) = &a.param {
                collect_selectors(p, out)?;
            }
        }
        Expr::Unary(u) => collect_selectors(&u.expr, out)?,
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out)?;
            collect_selectors(&b.rhs, out)?;
        }
        Expr::Paren(p) => collect_selectors(&p.expr, out)?,
        Expr::Subquery(s) => collect_selectors(&s.expr, out)?,
        Expr::VectorSelector(vs) => out.extend(super::params::selector_sets(vs)?),
        Expr::MatrixSelector(ms) => out.extend(super::params::selector_sets(&ms.vs)?),
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_selectors(a, out)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

/// `/api/v1/query_exemplars`
pub(crate) async fn query_exemplars(
    State(state): State<ApiState>,
    req: Result<Req, BadRequest>,
) -> Result<Outcome, ApiError> {
    let req = req?;
    let p = &req.params;
    let start = time_param(p, "start", MIN_TIME_MS)?;
    let end = time_param(p, "end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    let expr =
        strata_promql::parse(p.get("query")).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let mut sets = Vec::new();
    collect_selectors(&expr, &mut sets).map_err(|e| invalid_param("query", e))?;
    let timeout = timeout_param(p, &state.config)?;
    let tenant = req.tenant;
    if sets.is_empty() {
        return Ok(Outcome::data(Value::Null));
    }
    let max = state.config.max_series;
    let exemplars = blocking(&state, tenant, timeout, move |scanner| {
        let series =
            matching_series(&scanner, &sets, MIN_TIME_MS, MAX_TIME_MS, max).map_err(scan_error)?;
        let ids: Vec<u64> = {
            let mut v: Vec<u64> = series.iter().map(|(id, _)| *id).collect();
            v.sort_unstable();
            v
        };
        let mut found: BTreeMap<u64, Vec<Exemplar>> = BTreeMap::new();
        scanner
            .scan(&ids, start, end, &["exemplars"], &mut |b| {
                let (Some(id_col), Some(ex_col)) = (
                    b.column_by_name("series_id")
                        .and_then(|c| c.as_primitive_opt::<UInt64Type>()),
                    b.column_by_name("exemplars")
                        .and_then(|c| c.as_any().downcast_ref::<StringArray>()),
                ) else {
                    return Ok(());
                };
                for row in 0..b.num_rows() {
                    if !ex_col.is_valid(row) {
                        continue;
                    }
                    let Ok(list) = serde_json::from_str::<Vec<Exemplar>>(ex_col.value(row)) else {
                        continue;
                    };
                    found.entry(id_col.value(row)).or_default().extend(
                        list.into_iter()
                            .filter(|e| e.timestamp_ms >= start && e.timestamp_ms <= end),
                    );
                }
                Ok(())
            })
            .map_err(scan_error)?;
        let mut out = Vec::new();
        for (id, labels) in series {
            let Some(mut list) = found.remove(&id).filter(|l| !l.is_empty()) else {
                continue;
            };
            list.sort_by_key(|e| e.timestamp_ms);
            let exemplars: Vec<Value> = list
                .iter()
                .map(|e| {
                    json!({
                        "labels": labels_json(&e.labels),
                        "value": strata_promql::json::format_float(e.value),
                        "timestamp": timestamp_json(e.timestamp_ms),
                    })
                })
                .collect();
            let metric = engine_labels(&labels);
            let mut series_labels = Map::new();
            for (k, v) in metric.iter() {
                series_labels.insert(k.to_owned(), json!(v));
            }
            out.push(json!({ "seriesLabels": series_labels, "exemplars": exemplars }));
        }
        Ok(Value::Array(out))
    })
    .await?;
    Ok(Outcome::data(exemplars))
}

#[cfg(test)]
mod tests {
    use super::path_label_name;

    #[test]
    fn path_label_names_unescape_like_prometheus() {
        assert_eq!(path_label_name("job"), "job");
        assert_eq!(path_label_name("http.method"), "http.method");
        assert_eq!(path_label_name("U__http_2e_method"), "http.method");
        assert_eq!(path_label_name("U__a__b"), "a_b");
        assert_eq!(path_label_name("U___2e_a_1f600_"), ".a\u{1f600}");
        // Not a clean escape: taken as written.
        assert_eq!(path_label_name("U__a_zz_"), "U__a_zz_");
    }
}
