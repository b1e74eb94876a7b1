//! Span-condition search shared by Jaeger's `/api/traces` and Tempo's legacy tag search:
//! find the traces having one span that satisfies every condition (service, operation,
//! kind, tags, duration) within a time range, most recent first.
//!
//! Cheap columns are checked first; the attribute JSON of a row is parsed only when its
//! text contains every wanted key, so a tag search does not parse every span's attributes.

use super::attrs::{attr_value, jaeger_kind, status_name, value_text};
use super::limits::Budget;
use super::params::TagFilter;
use super::read::{AttrNarrow, AttrWant, Narrow, SpanColumns, scan_narrowed};
use crate::error::{Error, Result};
use datafusion::arrow::array::RecordBatch;
use std::cell::Cell;
use std::collections::HashMap;
use strata_storage::{Storage, TenantId};

/// What a matching span must satisfy.
#[derive(Debug, Clone, Default)]
pub struct SpanConditions {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub kind: Option<i32>,
    pub tags: Vec<TagFilter>,
    pub min_duration_ns: Option<i64>,
    pub max_duration_ns: Option<i64>,
    /// Tempo's legacy tags: `name` means the span name, `status.code` the status.
    pub tempo_names: bool,
}

/// A matching trace: its id and the latest start of its matching spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub trace_id: String,
    pub latest_start_ns: i64,
}

impl SpanConditions {
    fn columns(&self) -> Vec<&'static str> {
        let mut c = vec!["trace_id", "service_name", "name", "kind", "duration"];
        if !self.tags.is_empty() {
            c.extend([
                "attributes",
                "resource_attributes",
                "status_code",
                "status_message",
                "scope_name",
            ]);
        }
        c
    }

    /// Whether a span's derived (non-attribute) tag has this value; `None` when `key`
    /// names no derived tag.
    fn derived(&self, key: &str, cols: &SpanColumns<'_>, row: usize) -> Option<String> {
        let status = cols.i32("status_code").map(|c| c.value(row));
        Some(match key {
            "span.kind" => jaeger_kind(cols.i32("kind")?.value(row)).to_owned(),
            "otel.status_code" => status_name(status?).to_owned(),
            "error" => (status? == 2).to_string(),
            "status.code" if self.tempo_names => status_name(status?).to_ascii_lowercase(),
            "otel.status_description" => cols.str("status_message")?.value(row).to_owned(),
            "otel.scope.name" => cols.str("scope_name")?.value(row).to_owned(),
            "service.name" if self.tempo_names => cols.str("service_name")?.value(row).to_owned(),
            "name" if self.tempo_names => cols.str("name")?.value(row).to_owned(),
            _ => return None,
        })
    }

    /// Whether `key` names a derived tag (see [`SpanConditions::derived`]).
    fn is_derived(&self, key: &str) -> bool {
        matches!(
            key,
            "span.kind"
                | "otel.status_code"
                | "error"
                | "otel.status_description"
                | "otel.scope.name"
        ) || (self.tempo_names && matches!(key, "status.code" | "service.name" | "name"))
    }

    fn tags_match(&self, cols: &SpanColumns<'_>, row: usize) -> bool {
        let (Some(attrs), Some(res)) = (cols.str("attributes"), cols.str("resource_attributes"))
        else {
            return self.tags.is_empty();
        };
        let (a_text, r_text) = (attrs.value(row), res.value(row));
        for t in &self.tags {
            if let Some(v) = self.derived(&t.key, cols, row) {
                if v.eq_ignore_ascii_case(&t.value) {
                    continue;
                }
                if t.key != "error" {
                    return false;
                }
            }
            let quoted = format!("\"{}\"", t.key);
            if !a_text.contains(&quoted) && !r_text.contains(&quoted) {
                return false;
            }
            // Span attributes first; resource attributes when the span has no such key.
            let value = attr_value(a_text, &t.key).or_else(|| attr_value(r_text, &t.key));
            let hit = value.is_some_and(|v| value_text(&v) == t.value);
            if !hit {
                return false;
            }
        }
        true
    }

    fn row_matches(&self, cols: &SpanColumns<'_>, row: usize) -> bool {
        if let (Some(want), Some(c)) = (&self.service, cols.str("service_name"))
            && c.value(row) != want
        {
            return false;
        }
        if let (Some(want), Some(c)) = (&self.operation, cols.str("name"))
            && c.value(row) != want
        {
            return false;
        }
        if let (Some(want), Some(c)) = (self.kind, cols.i32("kind"))
            && c.value(row) != want
        {
            return false;
        }
        if let Some(c) = cols.i64("duration") {
            let d = c.value(row);
            if self.min_duration_ns.is_some_and(|m| d < m)
                || self.max_duration_ns.is_some_and(|m| d > m)
            {
                return false;
            }
        }
        self.tags.is_empty() || self.tags_match(cols, row)
    }
}

/// Traces with a span matching `cond` whose start lies in `[start_ns, end_ns]`, most
/// recent first, at most `limit`.
pub fn find_traces(
    storage: &Storage,
    tenant: &TenantId,
    cond: &SpanConditions,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
    budget: &Budget,
) -> Result<Vec<Hit>> {
    let mut latest: HashMap<String, i64> = HashMap::new();
    let columns = cond.columns();
    let narrow = Narrow {
        service: cond.service.as_deref(),
        min_duration_ns: cond.min_duration_ns,
        max_duration_ns: cond.max_duration_ns,
        // Tags match span attributes first: a span whose own value differs fails.
        attribute: cond
            .tags
            .iter()
            .find(|t| !cond.is_derived(&t.key))
            .map(|t| AttrNarrow {
                key: &t.key,
                want: AttrWant::Text(&t.value),
            }),
    };
    // Once `limit` traces are found, a file whose spans all start before the
    // `limit`-th latest start cannot change the answer: newer data is read first and the
    // scan stops there.
    let cutoff: Cell<Option<i64>> = Cell::new(None);
    let mut starts_buf: Vec<i64> = Vec::new();
    scan_narrowed(
        storage,
        tenant,
        start_ns,
        end_ns,
        narrow,
        &columns,
        budget,
        Some(&|| cutoff.get()),
        &mut |b: &RecordBatch| {
            let cols = SpanColumns::new(b);
            let (Some(ids), Some(starts)) = (cols.str("trace_id"), cols.ts("start_time")) else {
                return Err(Error::Internal("spans batch without trace_id".into()));
            };
            let mut found = false;
            for row in 0..b.num_rows() {
                if cond.row_matches(&cols, row) {
                    let start = starts.value(row);
                    let e = latest.entry(ids.value(row).to_owned()).or_insert(start);
                    *e = (*e).max(start);
                    found = true;
                }
            }
            if found && limit > 0 && latest.len() >= limit {
                starts_buf.clear();
                starts_buf.extend(latest.values().copied());
                let (_, kth, _) = starts_buf.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
                cutoff.set(Some(*kth));
            }
            Ok(true)
        },
    )?;
    let mut hits: Vec<Hit> = latest
        .into_iter()
        .map(|(trace_id, latest_start_ns)| Hit {
            trace_id,
            latest_start_ns,
        })
        .collect();
    hits.sort_by(|a, b| {
        b.latest_start_ns
            .cmp(&a.latest_start_ns)
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    hits.truncate(limit);
    Ok(hits)
}
