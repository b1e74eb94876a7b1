//! RED metrics from spans, like Tempo's metrics generator: as spans are stored, each is
//! counted per tenant in `traces_spanmetrics_calls_total` and its duration observed in the
//! classic histogram `traces_spanmetrics_latency` (`_bucket{le}`, `_sum`, `_count`, in
//! seconds), labelled `service`, `span_name`, `span_kind` (`SPAN_KIND_SERVER`, ...),
//! `status_code` (`STATUS_CODE_UNSET|OK|ERROR`) plus any configured attribute dimensions
//! (dots become underscores). Every `interval` (and at shutdown) the cumulative values
//! are written into the metrics store, so PromQL rates, error ratios and
//! `histogram_quantile` work on them.
//!
//! Counters start at zero when Strata starts (a counter reset PromQL's `rate` handles);
//! a tenant's series are capped at `max_series`, further combinations are not counted.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use strata_storage::TenantId;
use strata_storage::model::{
    Labels, MetricMetadata, MetricType, MetricsWrite, Origin, Sample, SampleValue, Span, label_name,
};
use strata_storage::schema::SpanRow;

/// The calls counter's name.
pub const CALLS: &str = "traces_spanmetrics_calls_total";
/// The latency histogram's family name.
pub const LATENCY: &str = "traces_spanmetrics_latency";

/// Settings of the span metrics (the `[ingest.span_metrics]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    /// Compute RED metrics from ingested spans.
    pub enabled: bool,
    /// How often the metrics are written into the metrics store.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Upper bounds of the latency histogram's buckets, in seconds (`+Inf` is implied).
    pub buckets: Vec<f64>,
    /// Span or resource attributes added as labels (`http.method` -> `http_method`).
    pub dimensions: Vec<String>,
    /// Most label combinations kept per tenant.
    pub max_series: usize,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            enabled: true,
            interval: Duration::from_secs(15),
            // Tempo's metrics generator defaults.
            buckets: vec![
                0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
                8.192, 16.384,
            ],
            dimensions: Vec::new(),
            max_series: 10_000,
        }
    }
}

impl SpanMetricsConfig {
    /// Checks settings that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("ingest.span_metrics.interval must be greater than 0".into());
        }
        if self.buckets.iter().any(|b| !b.is_finite()) {
            return Err("ingest.span_metrics.buckets must be finite numbers".into());
        }
        if self.buckets.windows(2).any(|w| w[0] >= w[1]) {
            return Err("ingest.span_metrics.buckets must be strictly increasing".into());
        }
        Ok(())
    }
}

#[derive(Default)]
struct Series {
    calls: u64,
    buckets: Vec<u64>,
    sum_seconds: f64,
}

/// The label values of one combination: service, span name, kind, status, dimensions.
type Key = (String, String, i32, i32, Vec<String>);

/// Spans reduced to what the metrics need (see [`SpanMetrics::prepare`]).
#[derive(Default)]
pub struct Prepared(Vec<(Key, f64)>);

/// Span metrics of every tenant since start.
pub struct SpanMetrics {
    config: SpanMetricsConfig,
    dimension_labels: Vec<String>,
    state: Mutex<HashMap<TenantId, HashMap<Key, Series>>>,
}

fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

fn status_name(code: i32) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

fn format_le(f: f64) -> String {
    if f.is_infinite() {
        "+Inf".into()
    } else {
        format!("{f}")
    }
}

fn dimension_value(attrs: &serde_json::Value, res: &serde_json::Value, name: &str) -> String {
    match attrs.get(name).or_else(|| res.get(name)) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl SpanMetrics {
    pub fn new(config: SpanMetricsConfig) -> Self {
        let dimension_labels = config.dimensions.iter().map(|d| label_name(d)).collect();
        SpanMetrics {
            config,
            dimension_labels,
            state: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &SpanMetricsConfig {
        &self.config
    }

    /// Counts stored spans.
    pub fn observe(&self, tenant: &TenantId, spans: &[Span]) {
        let prepared = self.prepare(spans);
        self.record(tenant, prepared);
    }

    /// The label values and duration of each span, taken before the spans move on to
    /// storage; [`SpanMetrics::record`] counts them once they are stored.
    pub fn prepare(&self, spans: &[Span]) -> Prepared {
        if !self.config.enabled {
            return Prepared(Vec::new());
        }
        let keyed: Vec<(Key, f64)> = spans
            .iter()
            .map(|s| {
                self.key_of(
                    &s.origin,
                    &s.name,
                    s.kind,
                    s.status_code,
                    s.end_time_ns.saturating_sub(s.start_time_ns),
                    &s.attributes,
                )
            })
            .collect();
        Prepared(keyed)
    }

    /// Whether span metrics are counted at all.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The series key and duration (seconds) of one span.
    fn key_of(
        &self,
        origin: &Origin,
        name: &str,
        kind: i32,
        status: i32,
        duration_ns: i64,
        attributes: &str,
    ) -> (Key, f64) {
        let dims = if self.config.dimensions.is_empty() {
            Vec::new()
        } else {
            let attrs = serde_json::from_str(attributes).unwrap_or_default();
            let res = serde_json::from_str(&origin.resource_attributes).unwrap_or_default();
            self.config
                .dimensions
                .iter()
                .map(|d| dimension_value(&attrs, &res, d))
                .collect()
        };
        let seconds = duration_ns.max(0) as f64 / 1e9;
        (
            (
                origin.service_name.clone(),
                name.to_owned(),
                kind,
                status,
                dims,
            ),
            seconds,
        )
    }

    /// Adds one span of a batch being decoded (see [`SpanMetrics::prepare`]).
    pub fn prepare_row(&self, prepared: &mut Prepared, row: &SpanRow<'_>, origin: &Origin) {
        if self.config.enabled {
            prepared.0.push(self.key_of(
                origin,
                row.name,
                row.kind,
                row.status_code,
                row.end_time_ns.saturating_sub(row.start_time_ns),
                row.attributes,
            ));
        }
    }

    /// Counts prepared spans.
    pub fn record(&self, tenant: &TenantId, prepared: Prepared) {
        if prepared.0.is_empty() {
            return;
        }
        let mut state = self.state.lock();
        let series = state.entry(tenant.clone()).or_default();
        let nb = self.config.buckets.len();
        for (key, seconds) in prepared.0 {
            let full = series.len() >= self.config.max_series;
            let entry = match series.get_mut(&key) {
                Some(e) => e,
                None if full => continue,
                None => series.entry(key).or_insert_with(|| Series {
                    calls: 0,
                    buckets: vec![0; nb],
                    sum_seconds: 0.0,
                }),
            };
            entry.calls += 1;
            entry.sum_seconds += seconds;
            // Buckets are cumulative when written; here each count is in its first bucket.
            if let Some(i) = self.config.buckets.iter().position(|b| seconds <= *b)
                && let Some(c) = entry.buckets.get_mut(i)
            {
                *c += 1;
            }
        }
    }

    /// The current cumulative values of every tenant as metric writes stamped `now`.
    pub fn snapshot(&self) -> Vec<(TenantId, MetricsWrite)> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.snapshot_at(now_ms)
    }

    fn snapshot_at(&self, ts: i64) -> Vec<(TenantId, MetricsWrite)> {
        let state = self.state.lock();
        let mut out = Vec::new();
        for (tenant, series) in state.iter() {
            if series.is_empty() {
                continue;
            }
            let mut samples = Vec::new();
            for ((service, name, kind, status, dims), s) in series {
                let mut base: Vec<(String, String)> = vec![
                    ("service".into(), service.clone()),
                    ("span_name".into(), name.clone()),
                    ("span_kind".into(), kind_name(*kind).into()),
                    ("status_code".into(), status_name(*status).into()),
                ];
                for (l, v) in self.dimension_labels.iter().zip(dims) {
                    base.push((l.clone(), v.clone()));
                }
                let sample = |metric: &str, extra: Option<(&str, String)>, v: f64| {
                    let mut pairs = base.clone();
                    pairs.push(("__name__".into(), metric.into()));
                    if let Some((k, val)) = extra {
                        pairs.push((k.into(), val));
                    }
                    Sample {
                        labels: Labels::from_pairs(pairs),
                        timestamp_ms: ts,
                        value: SampleValue::Float(v),
                        exemplars: Vec::new(),
                    }
                };
                samples.push(sample(CALLS, None, s.calls as f64));
                let mut cumulative = 0u64;
                for (bound, c) in self.config.buckets.iter().zip(&s.buckets) {
                    cumulative += c;
                    samples.push(sample(
                        &format!("{LATENCY}_bucket"),
                        Some(("le", format_le(*bound))),
                        cumulative as f64,
                    ));
                }
                samples.push(sample(
                    &format!("{LATENCY}_bucket"),
                    Some(("le", format_le(f64::INFINITY))),
                    s.calls as f64,
                ));
                samples.push(sample(&format!("{LATENCY}_sum"), None, s.sum_seconds));
                samples.push(sample(&format!("{LATENCY}_count"), None, s.calls as f64));
            }
            let metadata = vec![
                MetricMetadata {
                    metric_family_name: CALLS.into(),
                    metric_type: MetricType::Counter,
                    unit: String::new(),
                    help: "Spans counted by service, span name, kind and status.".into(),
                },
                MetricMetadata {
                    metric_family_name: LATENCY.into(),
                    metric_type: MetricType::Histogram,
                    unit: "seconds".into(),
                    help: "Span durations in seconds.".into(),
                },
            ];
            out.push((tenant.clone(), MetricsWrite { samples, metadata }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_storage::model::Origin;

    fn span(service: &str, name: &str, kind: i32, status: i32, dur_ms: i64) -> Span {
        Span {
            name: name.into(),
            kind,
            status_code: status,
            start_time_ns: 1_000_000_000,
            end_time_ns: 1_000_000_000 + dur_ms * 1_000_000,
            attributes: r#"{"http.method":"GET"}"#.into(),
            origin: Origin {
                service_name: service.into(),
                ..Origin::default()
            },
            ..Span::default()
        }
    }

    fn value(w: &MetricsWrite, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
        w.samples
            .iter()
            .find(|s| {
                s.labels.metric_name() == name
                    && extra.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .and_then(|s| match s.value {
                SampleValue::Float(v) => Some(v),
                SampleValue::Histogram(_) => None,
            })
    }

    #[test]
    fn counts_calls_and_cumulative_buckets() {
        let m = SpanMetrics::new(SpanMetricsConfig {
            dimensions: vec!["http.method".into()],
            ..SpanMetricsConfig::default()
        });
        let t = TenantId::default_tenant();
        m.observe(
            &t,
            &[
                span("cart", "GET /", 2, 0, 3),
                span("cart", "GET /", 2, 0, 100),
                span("cart", "GET /", 2, 2, 5000),
            ],
        );
        let snap = m.snapshot_at(1000);
        assert_eq!(snap.len(), 1);
        let w = &snap[0].1;
        let ok = [
            ("status_code", "STATUS_CODE_UNSET"),
            ("span_kind", "SPAN_KIND_SERVER"),
        ];
        assert_eq!(value(w, CALLS, &ok), Some(2.0));
        assert_eq!(
            value(w, CALLS, &[("status_code", "STATUS_CODE_ERROR")]),
            Some(1.0)
        );
        let b = |le: &str| {
            value(
                w,
                "traces_spanmetrics_latency_bucket",
                &[("status_code", "STATUS_CODE_UNSET"), ("le", le)],
            )
        };
        assert_eq!(b("0.002"), Some(0.0));
        assert_eq!(b("0.004"), Some(1.0));
        assert_eq!(b("0.128"), Some(2.0));
        assert_eq!(b("+Inf"), Some(2.0));
        let sum = value(
            w,
            "traces_spanmetrics_latency_sum",
            &[("status_code", "STATUS_CODE_UNSET")],
        )
        .expect("sum");
        assert!((sum - 0.103).abs() < 1e-9);
        assert_eq!(
            value(
                w,
                CALLS,
                &[("http_method", "GET"), ("status_code", "STATUS_CODE_ERROR")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn series_are_capped_and_disabled_counts_nothing() {
        let m = SpanMetrics::new(SpanMetricsConfig {
            max_series: 1,
            ..SpanMetricsConfig::default()
        });
        let t = TenantId::default_tenant();
        m.observe(&t, &[span("a", "x", 1, 0, 1), span("b", "y", 1, 0, 1)]);
        let w = &m.snapshot_at(0)[0].1;
        assert!(value(w, CALLS, &[("service", "a")]).is_some());
        assert!(value(w, CALLS, &[("service", "b")]).is_none());
        let off = SpanMetrics::new(SpanMetricsConfig {
            enabled: false,
            ..SpanMetricsConfig::default()
        });
        off.observe(&t, &[span("a", "x", 1, 0, 1)]);
        assert!(off.snapshot_at(0).is_empty());
    }

    #[test]
    fn validates_buckets() {
        let mut c = SpanMetricsConfig::default();
        assert!(c.validate().is_ok());
        c.buckets = vec![1.0, 0.5];
        assert!(c.validate().is_err());
    }
}
