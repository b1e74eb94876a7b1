//! Tempo's search: `GET /api/search` with TraceQL (`q`) or legacy logfmt `tags`.
//!
//! Two phases. First a column scan of the spans starting in `[start, end]` finds the
//! traces that can match: the query's hints (conditions every matching trace meets on
//! some span, from `strata-traceql`) are checked on cheap columns, attributes only when
//! their text holds the key; hints that cannot be checked here count as met. Then the
//! candidates, most recent first, are read whole by id and the query is evaluated on
//! each until `limit` traces matched. Answers carry Tempo's `metrics`.

use super::attrs::{attr_value, parse_attrs};
use super::limits::Budget;
use super::params::{TagFilter, bad, duration_bounds, int_param, now_ns, parse_logfmt};
use super::read::{AttrNarrow, AttrWant, Narrow, SpanColumns, read_trace, scan_narrowed};
use super::search::{SpanConditions, find_traces};
use super::tempo::Answer;
use super::{TraceState, blocking, check_limit, check_range, params, tenant};
use crate::error::{Error, Result};
use crate::prom::params::Params;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use datafusion::arrow::array::RecordBatch;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use strata_storage::model::Span;
use strata_storage::{Storage, TenantId};
use strata_traceql::{
    Condition, EventData, HintField, LinkData, Predicate, Query, SpanData, SpanKind, StatusCode,
    TraceData, Value, evaluate, parse, trace_summary_json,
};

/// A stored attribute value as a TraceQL value.
pub fn traceql_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(traceql_value).collect()),
        Json::Object(_) => Value::Str(v.to_string()),
    }
}

fn traceql_attrs(v: &Json) -> Vec<(String, Value)> {
    match v {
        Json::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), traceql_value(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// A stored trace in the evaluator's form.
pub fn trace_data(trace_id: &str, spans: &[Span]) -> TraceData {
    let spans = spans
        .iter()
        .map(|s| SpanData {
            span_id: s.span_id.clone(),
            parent_span_id: (!s.parent_span_id.is_empty()).then(|| s.parent_span_id.clone()),
            name: s.name.clone(),
            kind: SpanKind::from_otlp(s.kind),
            status: StatusCode::from_otlp(s.status_code),
            status_message: s.status_message.clone(),
            start_ns: s.start_time_ns,
            end_ns: s.end_time_ns,
            service_name: s.origin.service_name.clone(),
            attributes: traceql_attrs(&Json::Object(parse_attrs(&s.attributes))),
            resource_attributes: traceql_attrs(&Json::Object(parse_attrs(
                &s.origin.resource_attributes,
            ))),
            scope_name: s.origin.scope_name.clone(),
            scope_version: s.origin.scope_version.clone(),
            events: s
                .events
                .iter()
                .map(|e| EventData {
                    name: e.name.clone(),
                    time_ns: e.time_ns,
                    attributes: traceql_attrs(&e.attributes),
                })
                .collect(),
            links: s
                .links
                .iter()
                .map(|l| LinkData {
                    trace_id: l.trace_id.clone(),
                    span_id: l.span_id.clone(),
                    attributes: traceql_attrs(&l.attributes),
                })
                .collect(),
        })
        .collect();
    TraceData {
        trace_id: trace_id.to_owned(),
        spans,
    }
}

/// Where a checkable hint looks.
enum Target {
    Service,
    Name,
    Status,
    Kind,
    Duration,
    /// Span attributes (`span`), resource attributes (`resource`), or either.
    Attr {
        key: String,
        /// `"key"`, to find the key in the attributes' JSON text before parsing it.
        quoted: String,
        span: bool,
        resource: bool,
    },
}

/// A hint this module can check on one row.
struct Check {
    target: Target,
    predicate: Predicate,
    regex: Option<regex::Regex>,
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) | Value::Duration(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Compares a stored value with a hint's: `None` when the types cannot be compared here.
fn cmp_values(have: &Value, want: &Value) -> Option<std::cmp::Ordering> {
    match (have, want) {
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Status(a), Value::Status(b)) => (a == b).then_some(std::cmp::Ordering::Equal),
        (Value::Kind(a), Value::Kind(b)) => (a == b).then_some(std::cmp::Ordering::Equal),
        _ => num(have)?.partial_cmp(&num(want)?),
    }
}

impl Check {
    fn from_condition(c: &Condition) -> Option<Check> {
        let target = match &c.field {
            HintField::ServiceName => Target::Service,
            HintField::SpanName => Target::Name,
            HintField::Status => Target::Status,
            HintField::Kind => Target::Kind,
            HintField::Duration => Target::Duration,
            HintField::SpanAttribute(k) => Target::Attr {
                key: k.clone(),
                quoted: format!("\"{k}\""),
                span: true,
                resource: false,
            },
            HintField::ResourceAttribute(k) => Target::Attr {
                key: k.clone(),
                quoted: format!("\"{k}\""),
                span: false,
                resource: true,
            },
            HintField::Attribute(k) => Target::Attr {
                key: k.clone(),
                quoted: format!("\"{k}\""),
                span: true,
                resource: true,
            },
            _ => return None,
        };
        let regex = match &c.predicate {
            Predicate::Regex(p) => Some(regex::Regex::new(&format!("^(?:{p})$")).ok()?),
            _ => None,
        };
        Some(Check {
            target,
            predicate: c.predicate.clone(),
            regex,
        })
    }

    /// [`Check::holds`] for a string value, without copying it for the common
    /// predicates (this runs for every span a search scans).
    fn holds_str(&self, s: &str) -> bool {
        match (&self.predicate, &self.regex) {
            (Predicate::Eq(Value::Str(w)), _) => s == w,
            (Predicate::Regex(_), Some(r)) => r.is_match(s),
            (Predicate::Exists, _) => true,
            _ => self.holds(&Value::Str(s.to_owned())),
        }
    }

    /// Whether `v` satisfies the predicate (true when it cannot be decided here).
    fn holds(&self, v: &Value) -> bool {
        use std::cmp::Ordering::*;
        if let Value::Array(items) = v {
            return items.iter().any(|i| self.holds(i));
        }
        let ord = |want: &Value| cmp_values(v, want);
        match &self.predicate {
            Predicate::Exists => !v.is_nil(),
            Predicate::Eq(w) => ord(w).is_none_or(|o| o == Equal) && !v.is_nil(),
            Predicate::In(ws) => ws.iter().any(|w| ord(w).is_none_or(|o| o == Equal)),
            Predicate::Gt(w) => ord(w).is_none_or(|o| o == Greater),
            Predicate::Gte(w) => ord(w).is_none_or(|o| o != Less),
            Predicate::Lt(w) => ord(w).is_none_or(|o| o == Less),
            Predicate::Lte(w) => ord(w).is_none_or(|o| o != Greater),
            Predicate::Regex(_) => match (v, &self.regex) {
                (Value::Str(s), Some(r)) => r.is_match(s),
                _ => true,
            },
        }
    }

    fn row(&self, cols: &SpanColumns<'_>, row: usize) -> bool {
        let text = |name: &str| cols.str(name).map(|c| c.value(row));
        let v = match &self.target {
            Target::Service => match text("service_name") {
                Some(s) => return self.holds_str(s),
                None => None,
            },
            Target::Name => match text("name") {
                Some(s) => return self.holds_str(s),
                None => None,
            },
            Target::Status => cols
                .i32("status_code")
                .map(|c| Value::Status(StatusCode::from_otlp(c.value(row)))),
            Target::Kind => cols
                .i32("kind")
                .map(|c| Value::Kind(SpanKind::from_otlp(c.value(row)))),
            Target::Duration => cols.i64("duration").map(|c| Value::Duration(c.value(row))),
            Target::Attr {
                key,
                quoted,
                span,
                resource,
            } => {
                let quoted = quoted.as_str();
                let mut found = None;
                if *span
                    && let Some(a) = cols.str("attributes")
                    && a.value(row).contains(quoted)
                {
                    found = attr_value(a.value(row), key).as_ref().map(traceql_value);
                }
                if found.is_none()
                    && *resource
                    && let Some(r) = cols.str("resource_attributes")
                    && r.value(row).contains(quoted)
                {
                    found = attr_value(r.value(row), key).as_ref().map(traceql_value);
                }
                Some(found.unwrap_or(Value::Nil))
            }
        };
        match v {
            Some(Value::Nil) => false,
            Some(v) => self.holds(&v),
            None => true,
        }
    }
}

/// Traces whose spans in `[start_ns, end_ns]` meet every checkable hint, most recent
/// first (their latest matching start).
fn candidates(
    storage: &Storage,
    tenant: &TenantId,
    query: &Query,
    start_ns: i64,
    end_ns: i64,
    budget: &Budget,
) -> Result<Vec<String>> {
    let checks: Vec<Check> = query
        .hints()
        .conditions
        .iter()
        .filter_map(Check::from_condition)
        .take(64)
        .collect();
    let all: u64 = if checks.len() == 64 {
        u64::MAX
    } else {
        (1u64 << checks.len()) - 1
    };
    let mut columns = vec![
        "trace_id",
        "service_name",
        "name",
        "status_code",
        "kind",
        "duration",
    ];
    if checks
        .iter()
        .any(|c| matches!(c.target, Target::Attr { .. }))
    {
        columns.extend(["attributes", "resource_attributes"]);
    }
    // When every hint must hold on one span, a matching trace has a span of the service
    // an equality condition names: file pages of other services need not be read.
    // The same holds for a duration bound.
    let mut narrow = Narrow::default();
    if query.hints_hold_on_one_span() {
        for c in &checks {
            match (&c.target, &c.predicate) {
                (Target::Service, Predicate::Eq(Value::Str(s))) => narrow.service = Some(s),
                (Target::Duration, Predicate::Gt(Value::Duration(d))) => {
                    narrow.min_duration_ns = Some(d.saturating_add(1));
                }
                (Target::Duration, Predicate::Gte(Value::Duration(d))) => {
                    narrow.min_duration_ns = Some(*d);
                }
                (Target::Duration, Predicate::Lt(Value::Duration(d))) => {
                    narrow.max_duration_ns = Some(d.saturating_sub(1));
                }
                (Target::Duration, Predicate::Lte(Value::Duration(d))) => {
                    narrow.max_duration_ns = Some(*d);
                }
                (
                    Target::Attr {
                        key,
                        span: true,
                        resource: false,
                        ..
                    },
                    Predicate::Eq(v),
                ) if narrow.attribute.is_none() => {
                    let want = match v {
                        Value::Str(s) => Some(AttrWant::Str(s)),
                        // The evaluator compares numbers as floats: exact below 2^53.
                        Value::Int(i) if i.unsigned_abs() < 1 << 53 => Some(AttrWant::Int(*i)),
                        Value::Bool(b) => Some(AttrWant::Bool(*b)),
                        _ => None,
                    };
                    narrow.attribute = want.map(|want| AttrNarrow { key, want });
                }
                _ => {}
            }
        }
    }
    let mut traces: HashMap<String, (u64, i64)> = HashMap::new();
    scan_narrowed(
        storage,
        tenant,
        start_ns,
        end_ns,
        narrow,
        &columns,
        budget,
        None,
        &mut |b: &RecordBatch| {
            budget.add_bytes(b.get_array_memory_size() as u64);
            let cols = SpanColumns::new(b);
            let (Some(ids), Some(starts)) = (cols.str("trace_id"), cols.ts("start_time")) else {
                return Err(Error::Internal("spans batch without trace_id".into()));
            };
            for row in 0..b.num_rows() {
                let mut mask = 0u64;
                for (i, c) in checks.iter().enumerate() {
                    if c.row(&cols, row) {
                        mask |= 1 << i;
                    }
                }
                // A span meeting no condition adds nothing to its trace (unless there are
                // no conditions, when every trace is a candidate).
                if mask == 0 && all != 0 {
                    continue;
                }
                let id = ids.value(row);
                let start = starts.value(row);
                match traces.get_mut(id) {
                    Some(e) => {
                        e.0 |= mask;
                        e.1 = e.1.max(start);
                    }
                    None => {
                        traces.insert(id.to_owned(), (mask, start));
                    }
                }
            }
            Ok(true)
        },
    )?;
    let mut hits: Vec<(String, i64)> = traces
        .into_iter()
        .filter(|(_, (mask, _))| *mask == all)
        .map(|(id, (_, start))| (id, start))
        .collect();
    hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(hits.into_iter().map(|(id, _)| id).collect())
}

/// The search's time range: `start`/`end` in Unix seconds, by default the configured
/// range before now.
pub(crate) fn seconds_range(p: &Params, state: &TraceState) -> Result<(i64, i64)> {
    let end = int_param(p, "end")?.map_or_else(now_ns, |s| s.saturating_mul(1_000_000_000));
    let default = i64::try_from(state.config.default_search_range.as_nanos()).unwrap_or(i64::MAX);
    let start = int_param(p, "start")?.map_or_else(
        || end.saturating_sub(default),
        |s| s.saturating_mul(1_000_000_000),
    );
    check_range(&state.config, start, end)?;
    Ok((start, end))
}

struct SearchRequest {
    query: Option<Query>,
    tags: Vec<TagFilter>,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
    spss: usize,
    min_ns: Option<i64>,
    max_ns: Option<i64>,
}

fn search_request(p: &Params, state: &TraceState) -> Result<SearchRequest> {
    let q = p.get("q").trim();
    let tags_text = p.get("tags");
    let tags = parse_logfmt(tags_text).map_err(|e| bad("tags", tags_text, e))?;
    let query = if q.is_empty() && !tags.is_empty() {
        None
    } else {
        let text = if q.is_empty() { "{}" } else { q };
        Some(parse(text).map_err(|e| Error::BadQuery(format!("invalid TraceQL query: {e}")))?)
    };
    let (start_ns, end_ns) = seconds_range(p, state)?;
    let limit = check_limit(&state.config, int_param(p, "limit")?)?;
    let spss = match int_param(p, "spss")? {
        None | Some(0) => 3,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(n) => return Err(bad("spss", &n.to_string(), "must be between 1 and 10000")),
    };
    let (min_ns, max_ns) = duration_bounds(p)?;
    Ok(SearchRequest {
        query,
        tags,
        start_ns,
        end_ns,
        limit,
        spss,
        min_ns,
        max_ns,
    })
}

fn trace_duration(t: &TraceData) -> i64 {
    let start = t.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = t.spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
    end.saturating_sub(start)
}

fn run_search(
    storage: &Storage,
    tenant: &TenantId,
    req: &SearchRequest,
    budget: &Budget,
) -> Result<Json> {
    let ids = match &req.query {
        Some(q) => candidates(storage, tenant, q, req.start_ns, req.end_ns, budget)?,
        None => {
            let cond = SpanConditions {
                tags: req.tags.clone(),
                tempo_names: true,
                ..SpanConditions::default()
            };
            find_traces(
                storage,
                tenant,
                &cond,
                req.start_ns,
                req.end_ns,
                usize::MAX,
                budget,
            )?
            .into_iter()
            .map(|h| h.trace_id)
            .collect()
        }
    };
    let mut traces = Vec::new();
    let mut inspected = 0u64;
    for id in ids {
        if traces.len() >= req.limit {
            break;
        }
        budget.check()?;
        let spans = read_trace(storage, tenant, &id, budget)?;
        if spans.is_empty() {
            continue;
        }
        inspected += 1;
        let data = trace_data(&id, &spans);
        let d = trace_duration(&data);
        if req.min_ns.is_some_and(|m| d < m) || req.max_ns.is_some_and(|m| d > m) {
            continue;
        }
        let sets = match &req.query {
            Some(q) => {
                let sets = evaluate(q, &data);
                if sets.is_empty() {
                    continue;
                }
                sets
            }
            None => Vec::new(),
        };
        traces.push(trace_summary_json(&data, &sets, req.spss));
    }
    Ok(json!({
        "traces": traces,
        "metrics": {
            "inspectedTraces": inspected,
            "inspectedBytes": budget.bytes().to_string(),
            "inspectedSpans": budget.spans().to_string(),
            "completedJobs": 1,
            "totalJobs": 1,
        },
    }))
}

/// `GET /api/search`.
pub(crate) async fn search(
    State(state): State<TraceState>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let t = tenant(&headers)?;
    let req = search_request(&params(&uri), &state)?;
    let storage = state.storage.clone();
    Ok(axum::Json(
        blocking(&state, move |b| run_search(&storage, &t, &req, b)).await?,
    ))
}
