//! Tempo's tag endpoints: `/api/search/tags` (`{"tagNames"}`), `/api/v2/search/tags`
//! (`{"scopes": [{"name", "tags"}]}` for `resource`, `span` and `intrinsic`),
//! `/api/search/tag/{tag}/values` (`{"tagValues": [string]}`) and
//! `/api/v2/search/tag/{tag}/values` (`{"tagValues": [{"type", "value"}]}`, `tag` scoped
//! as in TraceQL: `resource.x`, `span.x`, `.x`, or an intrinsic such as `name`, `status`,
//! `kind`). They read the spans starting in `[start, end]` (Unix seconds, by default the
//! configured default search range before now); identical attribute texts are parsed
//! once per batch, and at most [`MAX_VALUES`] values are returned per tag.

use super::attrs::parse_attrs;
use super::limits::Budget;
use super::params::bad;
use super::read::{SpanColumns, scan};
use super::tempo::Answer;
use super::tempo_search::seconds_range;
use super::{TraceState, blocking, params, tenant};
use crate::error::Result;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use datafusion::arrow::array::{Array, RecordBatch};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use strata_storage::{Storage, TenantId};

/// Most distinct values one tag answer lists.
pub const MAX_VALUES: usize = 1000;

/// TraceQL intrinsics listed in the `intrinsic` scope.
const INTRINSICS: &[&str] = &[
    "duration",
    "event:name",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

fn metrics(budget: &Budget) -> Json {
    json!({"inspectedBytes": budget.bytes().to_string()})
}

/// Attribute keys of spans and resources in the range.
fn tag_names(
    storage: &Storage,
    tenant: &TenantId,
    start: i64,
    end: i64,
    budget: &Budget,
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut span_keys = BTreeSet::new();
    let mut res_keys = BTreeSet::new();
    let cols = ["attributes", "resource_attributes"];
    scan(
        storage,
        tenant,
        start,
        end,
        &cols,
        budget,
        &mut |b: &RecordBatch| {
            budget.add_bytes(b.get_array_memory_size() as u64);
            let c = SpanColumns::new(b);
            for (name, keys) in [
                ("attributes", &mut span_keys),
                ("resource_attributes", &mut res_keys),
            ] {
                let Some(col) = c.str(name) else { continue };
                let mut seen: HashSet<&str> = HashSet::new();
                for i in 0..col.len() {
                    let text = col.value(i);
                    if seen.insert(text) {
                        keys.extend(parse_attrs(text).into_iter().map(|(k, _)| k));
                    }
                }
            }
            Ok(true)
        },
    )?;
    Ok((span_keys, res_keys))
}

/// The scope and attribute (or intrinsic) a v2 tag names.
#[derive(Debug, Clone, PartialEq)]
enum TagRef {
    Span(String),
    Resource(String),
    Any(String),
    Intrinsic(String),
}

fn tag_ref(tag: &str, v2: bool) -> TagRef {
    if !v2 {
        return TagRef::Any(tag.to_owned());
    }
    if let Some(k) = tag.strip_prefix("span.") {
        TagRef::Span(k.to_owned())
    } else if let Some(k) = tag.strip_prefix("resource.") {
        TagRef::Resource(k.to_owned())
    } else if let Some(k) = tag.strip_prefix('.') {
        TagRef::Any(k.to_owned())
    } else {
        TagRef::Intrinsic(tag.trim_start_matches("span:").to_owned())
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_i64() || n.is_u64() => "int",
        Json::Number(_) => "float",
        _ => "string",
    }
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Distinct (type, value) pairs of a tag in the range.
fn tag_values(
    storage: &Storage,
    tenant: &TenantId,
    tag: &TagRef,
    start: i64,
    end: i64,
    budget: &Budget,
) -> Result<BTreeMap<String, &'static str>> {
    let mut out: BTreeMap<String, &'static str> = BTreeMap::new();
    let cols: Vec<&str> = match tag {
        TagRef::Intrinsic(n) => match n.as_str() {
            "name" | "rootName" => vec!["name", "parent_span_id"],
            "rootServiceName" => vec!["service_name", "parent_span_id"],
            "statusMessage" => vec!["status_message"],
            "kind" | "status" => {
                let (names, typ): (&[&str], _) = if n == "kind" {
                    (
                        &[
                            "unspecified",
                            "internal",
                            "server",
                            "client",
                            "producer",
                            "consumer",
                        ],
                        "keyword",
                    )
                } else {
                    (&["error", "ok", "unset"], "keyword")
                };
                return Ok(names.iter().map(|s| ((*s).to_owned(), typ)).collect());
            }
            "instrumentation:name" => vec!["scope_name"],
            "instrumentation:version" => vec!["scope_version"],
            _ => return Ok(out),
        },
        TagRef::Span(_) => vec!["attributes"],
        TagRef::Resource(_) => vec!["resource_attributes", "service_name"],
        TagRef::Any(_) => vec!["attributes", "resource_attributes", "service_name"],
    };
    scan(
        storage,
        tenant,
        start,
        end,
        &cols,
        budget,
        &mut |b: &RecordBatch| {
            budget.add_bytes(b.get_array_memory_size() as u64);
            let c = SpanColumns::new(b);
            match tag {
                TagRef::Intrinsic(n) => {
                    let col = match n.as_str() {
                        "name" | "rootName" => c.str("name"),
                        "rootServiceName" => c.str("service_name"),
                        "statusMessage" => c.str("status_message"),
                        "instrumentation:name" => c.str("scope_name"),
                        _ => c.str("scope_version"),
                    };
                    let roots_only = n.starts_with("root");
                    let parents = c.str("parent_span_id");
                    if let Some(col) = col {
                        for i in 0..col.len() {
                            if roots_only && parents.is_some_and(|p| !p.value(i).is_empty()) {
                                continue;
                            }
                            if !col.value(i).is_empty() && out.len() < MAX_VALUES {
                                out.insert(col.value(i).to_owned(), "string");
                            }
                        }
                    }
                }
                TagRef::Span(k) | TagRef::Resource(k) | TagRef::Any(k) => {
                    if k == "service.name"
                        && !matches!(tag, TagRef::Span(_))
                        && let Some(col) = c.str("service_name")
                    {
                        for i in 0..col.len() {
                            if out.len() < MAX_VALUES {
                                out.insert(col.value(i).to_owned(), "string");
                            }
                        }
                    }
                    let quoted = format!("\"{k}\"");
                    for name in ["attributes", "resource_attributes"] {
                        let Some(col) = c.str(name) else { continue };
                        let mut seen: HashSet<&str> = HashSet::new();
                        for i in 0..col.len() {
                            let text = col.value(i);
                            if !text.contains(&quoted) || !seen.insert(text) {
                                continue;
                            }
                            if let Some(v) = parse_attrs(text).get(k)
                                && out.len() < MAX_VALUES
                            {
                                out.insert(json_text(v), json_type(v));
                            }
                        }
                    }
                }
            }
            Ok(true)
        },
    )?;
    Ok(out)
}

/// `GET /api/search/tags`.
pub(crate) async fn tags_v1(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let t = tenant(&headers)?;
    let (start, end) = seconds_range(&params(&uri), &state)?;
    let storage = state.storage.clone();
    let v = blocking(&state, move |b| {
        let (span, res) = tag_names(&storage, &t, start, end, b)?;
        let all: BTreeSet<String> = span.into_iter().chain(res).collect();
        Ok(json!({"tagNames": all, "metrics": metrics(b)}))
    })
    .await?;
    Ok(axum::Json(v))
}

/// `GET /api/v2/search/tags?scope=`.
pub(crate) async fn tags_v2(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let t = tenant(&headers)?;
    let p = params(&uri);
    let scope = p.get("scope").to_owned();
    if !matches!(
        scope.as_str(),
        "" | "all" | "span" | "resource" | "intrinsic"
    ) {
        return Err(bad("scope", &scope, "expected span, resource, intrinsic or all").into());
    }
    let (start, end) = seconds_range(&p, &state)?;
    let storage = state.storage.clone();
    let v = blocking(&state, move |b| {
        let want = |s: &str| scope.is_empty() || scope == "all" || scope == s;
        let (span, res) = if want("span") || want("resource") {
            tag_names(&storage, &t, start, end, b)?
        } else {
            Default::default()
        };
        let mut scopes = Vec::new();
        if want("resource") {
            scopes.push(json!({"name": "resource", "tags": res}));
        }
        if want("span") {
            scopes.push(json!({"name": "span", "tags": span}));
        }
        if want("intrinsic") {
            scopes.push(json!({"name": "intrinsic", "tags": INTRINSICS}));
        }
        Ok(json!({"scopes": scopes, "metrics": metrics(b)}))
    })
    .await?;
    Ok(axum::Json(v))
}

async fn values(state: TraceState, headers: HeaderMap, uri: Uri, tag: String, v2: bool) -> Answer {
    let t = tenant(&headers)?;
    let (start, end) = seconds_range(&params(&uri), &state)?;
    if tag.trim().is_empty() {
        return Err(bad("tag", &tag, "must not be empty").into());
    }
    let tag = tag_ref(&tag, v2);
    let storage = state.storage.clone();
    let v = blocking(&state, move |b| {
        let vals = tag_values(&storage, &t, &tag, start, end, b)?;
        let list: Vec<Json> = if v2 {
            vals.into_iter()
                .map(|(v, typ)| json!({"type": typ, "value": v}))
                .collect()
        } else {
            vals.into_keys().map(Json::String).collect()
        };
        Ok(json!({"tagValues": list, "metrics": metrics(b)}))
    })
    .await?;
    Ok(axum::Json(v))
}

/// `GET /api/search/tag/{tag}/values`.
pub(crate) async fn values_v1(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
    Path(tag): Path<String>,
) -> Answer {
    values(state, headers, uri, tag, false).await
}

/// `GET /api/v2/search/tag/{tag}/values`.
pub(crate) async fn values_v2(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
    Path(tag): Path<String>,
) -> Answer {
    values(state, headers, uri, tag, true).await
}
