//! OTLP metrics -> the storage model, the way Prometheus 3.x's OTLP receiver translates them
//! with its default `UnderscoreEscapingWithSuffixes` strategy and default label-name options
//! (`label_name_underscore_sanitization: true`, `label_name_preserve_multiple_underscores:
//! true`).
//!
//! - Metric names: characters outside `[a-zA-Z0-9:]` split the name into words joined by `_`;
//!   unit suffixes (`s` -> `_seconds`, `By/s` -> `_bytes_per_second`, `{...}` annotations
//!   dropped), `_total` for monotonic sums, `_ratio` for gauges with unit `1`; a leading digit
//!   gets a `_` prefix. [`TranslationConfig::add_metric_suffixes`] `false` only escapes.
//! - Label names: characters outside `[a-zA-Z0-9_]` become `_`; a leading digit gets `key_`,
//!   a single leading `_` gets `key`. Attributes colliding after escaping are joined with `;`
//!   in key order.
//! - `service.namespace`/`service.name` -> `job`, `service.instance.id` -> `instance`; the
//!   other resource attributes go on one `target_info` gauge (value 1) per resource; the
//!   configured resource attributes are promoted to labels of every series.
//! - gauge -> gauge; monotonic sum -> counter; non-monotonic sum -> gauge; histogram ->
//!   `_bucket{le}` (cumulative, with `+Inf`), `_sum` (when present), `_count`; exponential
//!   histogram -> one native histogram sample; summary -> `{quantile}`, `_sum`, `_count`.
//! - DELTA sums and histograms are accumulated into cumulative series in a
//!   [`DeltaAccumulator`] (Prometheus itself rejects them unless a feature flag is set).
//! - The NO_RECORDED_VALUE flag becomes the stale marker on every series of the point.
//!
//! Translation is CPU work: run it off the async reactor.

use crate::limits::note_rejection;
use std::collections::{BTreeMap, HashMap, HashSet};

use strata_proto::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use strata_proto::opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use strata_proto::opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar as OtlpExemplar, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint, exemplar,
    exponential_histogram_data_point, metric, number_data_point,
};
use strata_storage::model::{
    BucketSpan, Exemplar, Labels, METRIC_NAME_LABEL, MetricMetadata, MetricType, MetricsWrite,
    NativeHistogram, Sample, SampleValue, stale_marker,
};

#[cfg(test)]
mod tests;

/// OTLP data point flag: the point has no recorded value (-> stale marker).
const FLAG_NO_RECORDED_VALUE: u32 = 1;
/// Prometheus's smallest and largest exponential schema.
const MIN_SCHEMA: i32 = -4;
const MAX_SCHEMA: i32 = 8;
/// The zero threshold Prometheus gives translated exponential histograms; used when the OTLP
/// point's own threshold is zero (exact zeros only), which it is equivalent to.
const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;
/// Largest bucket index magnitude accepted (bounds past 2^(2^30 / 256) are not even
/// representable as f64); keeps every span offset within i32.
const MAX_BUCKET_INDEX: i64 = 1 << 30;
/// Exemplar labels longer than this (in characters, names and values together) keep only
/// the trace and span ids (OpenMetrics' limit, as Prometheus applies it).
const MAX_EXEMPLAR_RUNES: usize = 128;
/// `target_info` gets a sample every half lookback delta (Prometheus's default 5m) between
/// the earliest and the latest point of the resource...
const TARGET_INFO_INTERVAL_MS: i64 = 150_000;
/// ...but no more than this many, so that a far-off timestamp cannot blow up a request.
const MAX_TARGET_INFO_SAMPLES: i64 = 64;
/// Default cap of a [`DeltaAccumulator`].
pub const DEFAULT_MAX_DELTA_SERIES: usize = 100_000;

const JOB_LABEL: &str = "job";
const INSTANCE_LABEL: &str = "instance";
const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";
const TARGET_INFO: &str = "target_info";

/// How OTLP metrics are translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationConfig {
    /// Resource attributes added as labels to every series of their resource (escaped like
    /// any label name; a data point attribute of the same name wins).
    pub promote_resource_attributes: Vec<String>,
    /// Add unit, `_total` and `_ratio` suffixes to metric names (Prometheus's
    /// `UnderscoreEscapingWithSuffixes`); `false` is `UnderscoreEscapingWithoutSuffixes`.
    pub add_metric_suffixes: bool,
}

impl Default for TranslationConfig {
    fn default() -> Self {
        TranslationConfig {
            promote_resource_attributes: Vec::new(),
            add_metric_suffixes: true,
        }
    }
}

/// The outcome of translating one request: what could be translated, plus a count of (and
/// messages about) the data points that could not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translation {
    pub write: MetricsWrite,
    /// Data points dropped because they could not be translated.
    pub rejected_points: u64,
    /// Why they were dropped (at most the first `MAX_REJECTION_MESSAGES`).
    pub errors: Vec<String>,
}

/// Translates OTLP metrics into the storage model. Cheap to share; holds no state of its own
/// (delta state lives in the caller's [`DeltaAccumulator`]).
#[derive(Debug, Clone)]
pub struct MetricsTranslator {
    config: TranslationConfig,
}

impl MetricsTranslator {
    pub fn new(config: TranslationConfig) -> Self {
        MetricsTranslator { config }
    }

    pub fn config(&self) -> &TranslationConfig {
        &self.config
    }

    /// Translates a whole request. Points that cannot be translated are counted in
    /// `rejected_points` with a message; everything else lands in `write`.
    pub fn translate(
        &self,
        req: &ExportMetricsServiceRequest,
        deltas: &mut DeltaAccumulator,
    ) -> Translation {
        self.translate_limited(req, deltas, usize::MAX)
            .unwrap_or_default()
    }

    /// [`Self::translate`], refusing the request ([`strata_storage::Error::TooLarge`]) once
    /// its samples' labels make more than `max_text` bytes: each sample has its own copy
    /// (each bucket of a histogram point copies the point's), so a small request of large
    /// labels and many buckets would otherwise make gigabytes of them. A refused request
    /// leaves `deltas` as it found them: the delta points translated before the refusal
    /// are taken back, so that the client's retry (or next request) is not counted on top
    /// of them.
    pub fn translate_limited(
        &self,
        req: &ExportMetricsServiceRequest,
        deltas: &mut DeltaAccumulator,
        max_text: usize,
    ) -> Result<Translation, strata_storage::Error> {
        let mark = deltas.begin();
        let translated = self.translate_within(req, deltas, max_text);
        match translated {
            Ok(_) => deltas.commit(mark),
            Err(_) => deltas.roll_back(mark),
        }
        translated
    }

    fn translate_within(
        &self,
        req: &ExportMetricsServiceRequest,
        deltas: &mut DeltaAccumulator,
        max_text: usize,
    ) -> Result<Translation, strata_storage::Error> {
        let mut ctx = Ctx {
            max_text,
            ..Ctx::default()
        };
        for rm in &req.resource_metrics {
            let resource_attrs: &[KeyValue] = rm
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let resource = self.resource_context(resource_attrs, &mut ctx);
            let mut time_range: Option<(u64, u64)> = None;
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    for t in point_times(m) {
                        time_range = Some(match time_range {
                            None => (t, t),
                            Some((lo, hi)) => (lo.min(t), hi.max(t)),
                        });
                    }
                    self.translate_metric(m, &resource, deltas, &mut ctx);
                    if ctx.over_text {
                        return Err(too_much_label_text(max_text));
                    }
                }
            }
            if let Some((earliest, latest)) = time_range {
                add_target_info(resource_attrs, &resource, earliest, latest, &mut ctx);
                // `target_info` copies the resource's attributes too: past the limit it
                // refuses the request like any other sample (the push dropped the rest).
                if ctx.over_text {
                    return Err(too_much_label_text(max_text));
                }
            }
        }
        Ok(Translation {
            write: MetricsWrite {
                samples: ctx.samples,
                metadata: ctx.metadata,
            },
            rejected_points: ctx.rejected_points,
            errors: ctx.errors,
        })
    }

    fn resource_context(&self, attrs: &[KeyValue], ctx: &mut Ctx) -> ResourceContext {
        let get = |key: &str| {
            attrs
                .iter()
                .rev()
                .find(|kv| kv.key == key)
                .map(|kv| any_value_string(kv.value.as_ref()))
        };
        let job = get(SERVICE_NAME).map(|name| match get(SERVICE_NAMESPACE) {
            Some(ns) => format!("{ns}/{name}"),
            None => name,
        });
        let instance = get(SERVICE_INSTANCE_ID);
        let mut promoted = BTreeMap::new();
        for kv in attrs {
            if !self.config.promote_resource_attributes.contains(&kv.key) {
                continue;
            }
            match sanitize_label_name(&kv.key) {
                Ok(name) => {
                    promoted.insert(name, any_value_string(kv.value.as_ref()));
                }
                Err(e) => ctx.error(format!("promoted resource attribute skipped: {e}")),
            }
        }
        ResourceContext {
            job,
            instance,
            promoted,
        }
    }

    fn translate_metric(
        &self,
        m: &Metric,
        resource: &ResourceContext,
        deltas: &mut DeltaAccumulator,
        ctx: &mut Ctx,
    ) {
        let Some(data) = &m.data else {
            ctx.error(format!("metric {:?} has no data (unknown type)", m.name));
            return;
        };
        let points = point_count(data);
        if points == 0 {
            return; // Nothing to translate (Prometheus only warns).
        }
        if m.name.is_empty() {
            ctx.reject(points, "metric with an empty name".into());
            return;
        }

        let (kind, temporality) = match data {
            metric::Data::Gauge(_) => (NameKind::Gauge, None),
            metric::Data::Sum(s) if s.is_monotonic => {
                (NameKind::MonotonicCounter, Some(s.aggregation_temporality))
            }
            metric::Data::Sum(s) => (
                NameKind::NonMonotonicCounter,
                Some(s.aggregation_temporality),
            ),
            metric::Data::Histogram(h) => (NameKind::Histogram, Some(h.aggregation_temporality)),
            metric::Data::ExponentialHistogram(h) => (
                NameKind::ExponentialHistogram,
                Some(h.aggregation_temporality),
            ),
            metric::Data::Summary(_) => (NameKind::Summary, None),
        };
        let delta = match temporality.map(AggregationTemporality::try_from) {
            None | Some(Ok(AggregationTemporality::Cumulative)) => false,
            Some(Ok(AggregationTemporality::Delta)) => true,
            Some(_) => {
                ctx.reject(
                    points,
                    format!(
                        "metric {:?}: invalid aggregation temporality {}",
                        m.name,
                        temporality.unwrap_or_default()
                    ),
                );
                return;
            }
        };
        let family =
            match build_metric_name(&m.name, &m.unit, kind, self.config.add_metric_suffixes) {
                Ok(f) => f,
                Err(e) => {
                    ctx.reject(points, e);
                    return;
                }
            };

        let before = ctx.samples.len();
        let mut mc = MetricCtx {
            otlp_name: &m.name,
            family: &family,
            resource,
            delta,
            deltas,
            ctx,
        };
        match data {
            metric::Data::Gauge(g) => {
                for p in &g.data_points {
                    mc.number_point(p, false);
                }
            }
            metric::Data::Sum(s) => {
                for p in &s.data_points {
                    mc.number_point(p, true);
                }
            }
            metric::Data::Histogram(h) => {
                for p in &h.data_points {
                    mc.histogram_point(p);
                }
            }
            metric::Data::ExponentialHistogram(h) => {
                for p in &h.data_points {
                    mc.exponential_point(p);
                }
            }
            metric::Data::Summary(s) => {
                for p in &s.data_points {
                    mc.summary_point(p);
                }
            }
        }
        if ctx.samples.len() > before {
            ctx.add_metadata(MetricMetadata {
                metric_family_name: family,
                metric_type: kind.metric_type(),
                unit: unit_name(&m.unit),
                help: m.description.clone(),
            });
        }
    }
}

impl Default for MetricsTranslator {
    fn default() -> Self {
        MetricsTranslator::new(TranslationConfig::default())
    }
}

/// Accumulated state of the resource being translated.
struct ResourceContext {
    job: Option<String>,
    instance: Option<String>,
    /// Promoted resource attributes, names already escaped.
    promoted: BTreeMap<String, String>,
}

/// What one request produced so far.
#[derive(Default)]
struct Ctx {
    samples: Vec<Sample>,
    metadata: Vec<MetricMetadata>,
    families: HashSet<String>,
    target_info_seen: HashSet<(Labels, i64)>,
    rejected_points: u64,
    errors: Vec<String>,
    /// Bytes of label text of the samples so far, and the most allowed.
    text_bytes: usize,
    max_text: usize,
    /// Past `max_text`: no more samples are kept.
    over_text: bool,
}

impl Ctx {
    fn error(&mut self, msg: String) {
        note_rejection(&mut self.errors, || msg);
    }

    fn reject(&mut self, points: u64, msg: String) {
        self.rejected_points += points;
        self.error(msg);
    }

    fn add_metadata(&mut self, md: MetricMetadata) {
        if self.families.insert(md.metric_family_name.clone()) {
            self.metadata.push(md);
        }
    }

    fn push(&mut self, labels: Labels, timestamp_ms: i64, value: SampleValue, ex: Vec<Exemplar>) {
        if self.over_text {
            return;
        }
        let text: usize = labels.iter().map(|l| l.name.len() + l.value.len()).sum();
        self.text_bytes = self.text_bytes.saturating_add(text);
        if self.text_bytes > self.max_text {
            self.over_text = true;
            self.samples = Vec::new();
            return;
        }
        self.samples.push(Sample {
            labels,
            timestamp_ms,
            value,
            exemplars: ex,
        });
    }
}

/// Per-metric translation state.
struct MetricCtx<'a> {
    otlp_name: &'a str,
    family: &'a str,
    resource: &'a ResourceContext,
    delta: bool,
    deltas: &'a mut DeltaAccumulator,
    ctx: &'a mut Ctx,
}

impl MetricCtx<'_> {
    fn reject(&mut self, msg: impl std::fmt::Display) {
        let msg = format!("metric {:?}: {msg}", self.otlp_name);
        self.ctx.reject(1, msg);
    }

    fn base_labels(&mut self, attrs: &[KeyValue]) -> Option<BTreeMap<String, String>> {
        match point_labels(attrs, self.resource) {
            Ok(l) => Some(l),
            Err(e) => {
                self.reject(e);
                None
            }
        }
    }

    fn number_point(&mut self, p: &NumberDataPoint, is_sum: bool) {
        let Some(base) = self.base_labels(&p.attributes) else {
            return;
        };
        let labels = series_labels(&base, self.family, None);
        let ts = nanos_to_millis(p.time_unix_nano);
        let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
        let value = if stale {
            stale_marker()
        } else {
            let v = match p.value {
                Some(number_data_point::Value::AsDouble(v)) => v,
                Some(number_data_point::Value::AsInt(v)) => v as f64,
                None => {
                    self.reject(format!("data point {labels} has no value"));
                    return;
                }
            };
            if is_sum && self.delta {
                match self
                    .deltas
                    .accumulate(&labels, p.time_unix_nano, DeltaState::Sum(v))
                {
                    Ok(DeltaState::Sum(total)) => total,
                    Ok(_) => v,
                    Err(e) => {
                        self.reject(format!("{labels}: {e}"));
                        return;
                    }
                }
            } else {
                v
            }
        };
        // Like Prometheus, exemplars are kept for sums only.
        let exemplars = if is_sum {
            convert_exemplars(&p.exemplars)
        } else {
            Vec::new()
        };
        self.ctx
            .push(labels, ts, SampleValue::Float(value), exemplars);
    }

    fn histogram_point(&mut self, p: &HistogramDataPoint) {
        let Some(base) = self.base_labels(&p.attributes) else {
            return;
        };
        if let Err(e) = check_explicit_buckets(p) {
            let labels = series_labels(&base, self.family, None);
            self.reject(format!("histogram data point {labels}: {e}"));
            return;
        }
        let ts = nanos_to_millis(p.time_unix_nano);
        let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;

        let mut state = ClassicHistogram {
            bounds: p.explicit_bounds.clone(),
            counts: p.bucket_counts.clone(),
            count: p.count,
            sum: p.sum,
        };
        if self.delta && !stale {
            let key = series_labels(&base, self.family, None);
            match self.deltas.accumulate(
                &key,
                p.time_unix_nano,
                DeltaState::Histogram(state.clone()),
            ) {
                Ok(DeltaState::Histogram(total)) => state = total,
                Ok(_) => {}
                Err(e) => {
                    self.reject(format!("{key}: {e}"));
                    return;
                }
            }
        }
        let value = |v: f64| SampleValue::Float(if stale { stale_marker() } else { v });

        if let Some(sum) = state.sum {
            let labels = series_labels(&base, &format!("{}_sum", self.family), None);
            self.ctx.push(labels, ts, value(sum), Vec::new());
        }
        let labels = series_labels(&base, &format!("{}_count", self.family), None);
        self.ctx
            .push(labels, ts, value(state.count as f64), Vec::new());

        let mut exemplars = convert_exemplars(&p.exemplars);
        exemplars.sort_by(|a, b| a.value.total_cmp(&b.value));
        let mut exemplars = exemplars.into_iter().peekable();
        let bucket_name = format!("{}_bucket", self.family);
        let mut cumulative: u64 = 0;
        for (bound, count) in state.bounds.iter().zip(&state.counts) {
            cumulative = cumulative.saturating_add(*count);
            let mut bucket_exemplars = Vec::new();
            while let Some(ex) = exemplars.next_if(|ex| ex.value <= *bound) {
                bucket_exemplars.push(ex);
            }
            let le = format_float(*bound);
            let labels = series_labels(&base, &bucket_name, Some(("le", &le)));
            self.ctx
                .push(labels, ts, value(cumulative as f64), bucket_exemplars);
        }
        let labels = series_labels(&base, &bucket_name, Some(("le", "+Inf")));
        self.ctx
            .push(labels, ts, value(state.count as f64), exemplars.collect());
    }

    fn exponential_point(&mut self, p: &ExponentialHistogramDataPoint) {
        let Some(base) = self.base_labels(&p.attributes) else {
            return;
        };
        let labels = series_labels(&base, self.family, None);
        let mut hist = match ExpHistogram::from_otlp(p) {
            Ok(h) => h,
            Err(e) => {
                self.reject(format!("exponential histogram data point {labels}: {e}"));
                return;
            }
        };
        let ts = nanos_to_millis(p.time_unix_nano);
        let native = if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
            NativeHistogram {
                schema: hist.schema,
                zero_threshold: hist.zero_threshold,
                count: stale_marker(),
                sum: stale_marker(),
                ..NativeHistogram::default()
            }
        } else {
            if self.delta {
                match self.deltas.accumulate(
                    &labels,
                    p.time_unix_nano,
                    DeltaState::Exponential(hist.clone()),
                ) {
                    Ok(DeltaState::Exponential(total)) => hist = total,
                    Ok(_) => {}
                    Err(e) => {
                        self.reject(format!("{labels}: {e}"));
                        return;
                    }
                }
            }
            hist.to_native()
        };
        let exemplars = convert_exemplars(&p.exemplars);
        self.ctx.push(
            labels,
            ts,
            SampleValue::Histogram(Box::new(native)),
            exemplars,
        );
    }

    fn summary_point(&mut self, p: &SummaryDataPoint) {
        let Some(base) = self.base_labels(&p.attributes) else {
            return;
        };
        let ts = nanos_to_millis(p.time_unix_nano);
        let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
        let value = |v: f64| SampleValue::Float(if stale { stale_marker() } else { v });

        let labels = series_labels(&base, &format!("{}_sum", self.family), None);
        self.ctx.push(labels, ts, value(p.sum), Vec::new());
        let labels = series_labels(&base, &format!("{}_count", self.family), None);
        self.ctx.push(labels, ts, value(p.count as f64), Vec::new());
        for q in &p.quantile_values {
            let quantile = format_float(q.quantile);
            let labels = series_labels(&base, self.family, Some(("quantile", &quantile)));
            self.ctx.push(labels, ts, value(q.value), Vec::new());
        }
    }
}

/// Checks an explicit-bucket histogram point against the OTLP rules: `bucket_counts` has one
/// more element than `explicit_bounds` (or both are empty), bounds finite and increasing.
fn check_explicit_buckets(p: &HistogramDataPoint) -> Result<(), String> {
    let (buckets, bounds) = (p.bucket_counts.len(), p.explicit_bounds.len());
    if buckets != 0 && buckets != bounds + 1 {
        return Err(format!(
            "{buckets} bucket counts do not match {bounds} explicit bounds (expected {})",
            bounds + 1
        ));
    }
    if buckets == 0 && bounds != 0 {
        return Err(format!("{bounds} explicit bounds but no bucket counts"));
    }
    if let Some(b) = p.explicit_bounds.iter().find(|b| !b.is_finite()) {
        return Err(format!("explicit bound {b} is not finite"));
    }
    if !p.explicit_bounds.windows(2).all(|w| w[0] < w[1]) {
        return Err("explicit bounds are not strictly increasing".into());
    }
    Ok(())
}

/// The refusal of a request whose samples copy more than `max_text` bytes of labels.
fn too_much_label_text(max_text: usize) -> strata_storage::Error {
    strata_storage::Error::TooLarge(format!(
        "the samples of this request make more than {max_text} bytes of labels (each sample \
         copies its series' labels, each histogram bucket its point's); send fewer points or \
         buckets per request, or fewer or shorter attributes"
    ))
}

/// Adds the `target_info` series of one resource: every resource attribute except the ones
/// that became `job` and `instance`, from the earliest to the latest point of the resource.
fn add_target_info(
    attrs: &[KeyValue],
    resource: &ResourceContext,
    earliest_ns: u64,
    latest_ns: u64,
    ctx: &mut Ctx,
) {
    const IDENTIFYING: [&str; 3] = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
    let rest: Vec<KeyValue> = attrs
        .iter()
        .filter(|kv| !IDENTIFYING.contains(&kv.key.as_str()))
        .cloned()
        .collect();
    if rest.is_empty() {
        return; // Only job and instance: target_info would say nothing.
    }
    if resource.job.is_none() && resource.instance.is_none() {
        return; // Nothing to join target_info on.
    }
    let no_promotion = ResourceContext {
        job: resource.job.clone(),
        instance: resource.instance.clone(),
        promoted: BTreeMap::new(),
    };
    let base = match attribute_labels(&rest, &[], &no_promotion) {
        Ok(b) => b,
        Err(e) => {
            ctx.error(format!("target_info not written: {e}"));
            return;
        }
    };
    let labels = series_labels(&base, TARGET_INFO, None);

    let (first, last) = (nanos_to_millis(earliest_ns), nanos_to_millis(latest_ns));
    let mut times = Vec::new();
    if (last - first) / TARGET_INFO_INTERVAL_MS < MAX_TARGET_INFO_SAMPLES {
        let mut t = first;
        while t < last {
            times.push(t);
            t += TARGET_INFO_INTERVAL_MS;
        }
    } else {
        times.push(first);
    }
    times.push(last);

    let mut pushed = false;
    for t in times {
        if ctx.target_info_seen.insert((labels.clone(), t)) {
            ctx.push(labels.clone(), t, SampleValue::Float(1.0), Vec::new());
            pushed = true;
        }
    }
    if pushed {
        ctx.add_metadata(MetricMetadata {
            metric_family_name: TARGET_INFO.into(),
            metric_type: MetricType::Gauge,
            unit: String::new(),
            help: "Target metadata".into(),
        });
    }
}

/// Timestamps (ns) of every data point of a metric.
fn point_times(m: &Metric) -> Vec<u64> {
    match &m.data {
        None => Vec::new(),
        Some(metric::Data::Gauge(g)) => g.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(metric::Data::Sum(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(metric::Data::Histogram(h)) => {
            h.data_points.iter().map(|p| p.time_unix_nano).collect()
        }
        Some(metric::Data::ExponentialHistogram(h)) => {
            h.data_points.iter().map(|p| p.time_unix_nano).collect()
        }
        Some(metric::Data::Summary(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
    }
}

/// Takes out of `req` the metrics of resources over `max_resource_attributes` (their
/// attributes would all become labels of a `target_info` series): how many points that
/// rejects, and why. Scope attributes are not stored for metrics, so not limited here.
pub fn reject_oversized_resources(
    req: &mut ExportMetricsServiceRequest,
    limits: &crate::limits::Limits,
) -> (u64, Vec<String>) {
    let (mut rejected, mut errors) = (0u64, Vec::new());
    req.resource_metrics.retain(|rm| {
        let attributes = rm.resource.as_ref().map_or(0, |r| r.attributes.len());
        let Err(e) = limits.check_origin(attributes, 0) else {
            return true;
        };
        let points: u64 = rm
            .scope_metrics
            .iter()
            .flat_map(|sm| &sm.metrics)
            .filter_map(|m| m.data.as_ref())
            .map(point_count)
            .sum();
        rejected += points;
        if points > 0 {
            note_rejection(&mut errors, || format!("{points} points rejected: {e}"));
        }
        false
    });
    (rejected, errors)
}

fn point_count(data: &metric::Data) -> u64 {
    let n = match data {
        metric::Data::Gauge(g) => g.data_points.len(),
        metric::Data::Sum(s) => s.data_points.len(),
        metric::Data::Histogram(h) => h.data_points.len(),
        metric::Data::ExponentialHistogram(h) => h.data_points.len(),
        metric::Data::Summary(s) => s.data_points.len(),
    };
    n as u64
}

fn nanos_to_millis(ns: u64) -> i64 {
    // u64::MAX / 1e6 fits in i64.
    (ns / 1_000_000) as i64
}

// ---------------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------------

/// The labels every series of a data point shares (without `__name__`).
fn point_labels(
    attrs: &[KeyValue],
    resource: &ResourceContext,
) -> Result<BTreeMap<String, String>, String> {
    attribute_labels(attrs, &[METRIC_NAME_LABEL], resource)
}

/// Escaped attributes (colliding names joined with `;` in key order), then the promoted
/// resource attributes where not already set, then `job` and `instance`.
fn attribute_labels(
    attrs: &[KeyValue],
    ignore: &[&str],
    resource: &ResourceContext,
) -> Result<BTreeMap<String, String>, String> {
    let mut sorted: Vec<(&str, String)> = attrs
        .iter()
        .filter(|kv| !ignore.contains(&kv.key.as_str()))
        .map(|kv| (kv.key.as_str(), any_value_string(kv.value.as_ref())))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));

    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in sorted {
        let name = sanitize_label_name(key)?;
        match out.get_mut(&name) {
            Some(existing) if !existing.is_empty() => {
                existing.push(';');
                existing.push_str(&value);
            }
            _ => {
                out.insert(name, value);
            }
        }
    }
    for (name, value) in &resource.promoted {
        if out.get(name).is_none_or(|v| v.is_empty()) {
            out.insert(name.clone(), value.clone());
        }
    }
    if let Some(job) = &resource.job {
        out.insert(JOB_LABEL.into(), job.clone());
    }
    if let Some(instance) = &resource.instance {
        out.insert(INSTANCE_LABEL.into(), instance.clone());
    }
    Ok(out)
}

/// A series' labels: the shared ones, one extra (`le`, `quantile`) and the metric name.
fn series_labels(
    base: &BTreeMap<String, String>,
    name: &str,
    extra: Option<(&str, &str)>,
) -> Labels {
    Labels::from_pairs(
        base.iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(extra)
            .chain([(METRIC_NAME_LABEL, name)]),
    )
}

/// Escapes an attribute name into a Prometheus label name (Prometheus 3.x defaults): every
/// character outside `[a-zA-Z0-9]` becomes `_` (runs are kept), a leading digit gets `key_`,
/// a single leading `_` gets `key`. A name that is empty or only underscores is an error.
pub fn sanitize_label_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("attribute with an empty name".into());
    }
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    if out.chars().all(|c| c == '_') {
        return Err(format!(
            "attribute name {name:?} escapes to the invalid label name {out:?}"
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Metric names and units
// ---------------------------------------------------------------------------------------------

/// The OTLP metric kinds as far as naming cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl NameKind {
    fn metric_type(self) -> MetricType {
        match self {
            NameKind::Gauge | NameKind::NonMonotonicCounter => MetricType::Gauge,
            NameKind::MonotonicCounter => MetricType::Counter,
            NameKind::Histogram | NameKind::ExponentialHistogram => MetricType::Histogram,
            NameKind::Summary => MetricType::Summary,
        }
    }
}

/// Main units (UCUM) and the words Prometheus names them with.
fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        _ => return None,
    })
}

/// "Per" units (the part after `/`), singular.
fn per_unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// Splits a UCUM unit into its main suffix and its `per_...` suffix, both unescaped.
/// Annotations (`{...}`) yield nothing; unknown units are kept as written.
fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let usable = |u: &str| !u.is_empty() && !u.contains(['{', '}']);
    let main = main.trim();
    let main = if usable(main) {
        unit_word(main).map_or_else(|| main.to_string(), str::to_string)
    } else {
        String::new()
    };
    let per = per.map(str::trim).unwrap_or("");
    let per = if usable(per) {
        let word = per_unit_word(per).map_or_else(|| per.to_string(), str::to_string);
        format!("per_{word}")
    } else {
        String::new()
    };
    (main, per)
}

fn is_metric_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Escapes a unit suffix: invalid characters to `_`, runs of `_` collapsed, no leading `_`.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_name_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => out,
    }
}

/// The unit as Prometheus reports it in metadata (`By/s` -> `bytes_per_second`).
pub fn unit_name(unit: &str) -> String {
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_unit(&main), clean_unit(&per));
    let joined = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    };
    let trimmed = joined.strip_prefix('_').unwrap_or(&joined);
    trimmed.strip_suffix('_').unwrap_or(trimmed).to_string()
}

/// Builds the Prometheus metric family name of an OTLP metric.
pub fn build_metric_name(
    name: &str,
    unit: &str,
    kind: NameKind,
    add_suffixes: bool,
) -> Result<String, String> {
    let built = if add_suffixes {
        name_with_suffixes(name, unit, kind)
    } else {
        let words: Vec<&str> = name
            .split(|c: char| !is_metric_name_char(c) && c != '_')
            .filter(|w| !w.is_empty())
            .collect();
        let mut out = words.join("_");
        if out.starts_with(|c: char| c.is_ascii_digit()) {
            out.insert(0, '_');
        }
        out
    };
    if built.is_empty() {
        return Err(format!("metric name {name:?} escapes to an empty name"));
    }
    if built != name && built.chars().all(|c| c == '_') {
        return Err(format!(
            "metric name {name:?} escapes to the invalid name {built:?}"
        ));
    }
    Ok(built)
}

fn name_with_suffixes(name: &str, unit: &str, kind: NameKind) -> String {
    let mut words: Vec<String> = name
        .split(|c: char| !is_metric_name_char(c))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();

    let (main, per) = unit_suffixes(unit);
    let mut main = clean_unit(&main);
    let mut per = clean_unit(&per);
    if words.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        if per.ends_with('_') {
            per.pop();
        }
        if words.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() && main.ends_with('_') {
        main.pop();
    }
    if !main.is_empty() {
        words.push(main);
    }
    if !per.is_empty() {
        words.push(per);
    }

    if kind == NameKind::MonotonicCounter {
        words.retain(|w| w != "total");
        words.push("total".into());
    }
    if unit == "1" && kind == NameKind::Gauge {
        words.retain(|w| w != "ratio");
        words.push("ratio".into());
    }

    let mut out = words.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` (used for `le` and
/// `quantile`): shortest round-trip digits, never an exponent.
fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

// ---------------------------------------------------------------------------------------------
// Attribute values as label values (pdata's `Value.AsString`)
// ---------------------------------------------------------------------------------------------

/// Renders an attribute value as a label value: strings as is, numbers and booleans as text,
/// bytes as base64, arrays and maps as JSON.
pub fn any_value_string(v: Option<&AnyValue>) -> String {
    use any_value::Value;
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(Value::StringValueStrindex(_)) => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => json_number(*d),
        Some(Value::BytesValue(b)) => base64(b),
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            let mut out = String::new();
            write_json(&mut out, Some(v));
            out
        }
    }
}

/// A double as Go's `encoding/json` (ES6) writes it; non-finite values as Prometheus spells
/// them.
fn json_number(f: f64) -> String {
    if !f.is_finite() {
        return format_float(f);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

fn write_json(out: &mut String, v: Option<&any_value::Value>) {
    use any_value::Value;
    match v {
        None | Some(Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(Value::StringValue(s)) => write_json_string(out, s),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => out.push_str(&i.to_string()),
        Some(Value::DoubleValue(d)) if d.is_finite() => out.push_str(&json_number(*d)),
        Some(Value::DoubleValue(_)) => out.push_str("null"),
        Some(Value::BytesValue(b)) => write_json_string(out, &base64(b)),
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item.value.as_ref());
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kvs)) => {
            // JSON objects from maps have sorted keys; a later duplicate key wins.
            let map: BTreeMap<&str, Option<&any_value::Value>> = kvs
                .values
                .iter()
                .map(|kv| {
                    (
                        kv.key.as_str(),
                        kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    )
                })
                .collect();
            out.push('{');
            for (i, (k, v)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_json(out, v);
            }
            out.push('}');
        }
    }
}

/// A JSON string escaped as Go's `encoding/json` does (HTML-safe).
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Exemplars
// ---------------------------------------------------------------------------------------------

fn convert_exemplars(exemplars: &[OtlpExemplar]) -> Vec<Exemplar> {
    exemplars
        .iter()
        .filter_map(|ex| {
            let value = match ex.value? {
                exemplar::Value::AsDouble(v) => v,
                exemplar::Value::AsInt(v) => v as f64,
            };
            let mut pairs: Vec<(String, String)> = Vec::new();
            let mut runes = 0;
            for (key, id) in [("trace_id", &ex.trace_id), ("span_id", &ex.span_id)] {
                if !id.is_empty() {
                    let v = hex::encode(id);
                    runes += key.len() + v.len();
                    pairs.push((key.to_string(), v));
                }
            }
            let attrs: Vec<(String, String)> = ex
                .filtered_attributes
                .iter()
                .filter(|kv| !kv.key.is_empty())
                .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref())))
                .collect();
            runes += attrs
                .iter()
                .map(|(k, v)| k.chars().count() + v.chars().count())
                .sum::<usize>();
            if runes <= MAX_EXEMPLAR_RUNES {
                pairs.extend(attrs);
            }
            Some(Exemplar {
                labels: Labels::from_pairs(pairs),
                value,
                timestamp_ms: nanos_to_millis(ex.time_unix_nano),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Exponential histograms
// ---------------------------------------------------------------------------------------------

/// An exponential histogram in Prometheus's bucket numbering, sparse, with float counts: the
/// form both translation and delta accumulation work on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExpHistogram {
    schema: i32,
    zero_threshold: f64,
    zero_count: f64,
    count: f64,
    sum: f64,
    /// Prometheus bucket index -> count (non-zero counts only).
    positive: BTreeMap<i32, f64>,
    negative: BTreeMap<i32, f64>,
}

impl ExpHistogram {
    /// Converts an OTLP point: OTLP bucket `i` (covering `(base^i, base^(i+1)]`) is
    /// Prometheus bucket `i+1`; scales above 8 are reduced to 8 by merging buckets.
    fn from_otlp(p: &ExponentialHistogramDataPoint) -> Result<Self, String> {
        if p.scale < MIN_SCHEMA {
            return Err(format!(
                "scale {} is below the minimum {MIN_SCHEMA}",
                p.scale
            ));
        }
        // Any scale is accepted, as in Prometheus; past 63 every bucket merges the same way.
        let reduce = (i64::from(p.scale) - i64::from(MAX_SCHEMA)).clamp(0, 63) as u32;
        let empty = exponential_histogram_data_point::Buckets::default();
        let side = |b: Option<&exponential_histogram_data_point::Buckets>| {
            let b = b.unwrap_or(&empty);
            let mut out = BTreeMap::new();
            for (i, c) in b.bucket_counts.iter().enumerate() {
                if *c == 0 {
                    continue;
                }
                let otlp_index = i64::from(b.offset) + i as i64;
                let index = (otlp_index >> reduce) + 1;
                if index.abs() > MAX_BUCKET_INDEX {
                    return Err(format!("bucket index {otlp_index} is out of range"));
                }
                let index = index as i32;
                *out.entry(index).or_insert(0.0) += *c as f64;
            }
            Ok::<_, String>(out)
        };
        let zero_threshold = if p.zero_threshold.is_finite() && p.zero_threshold > 0.0 {
            p.zero_threshold
        } else {
            DEFAULT_ZERO_THRESHOLD
        };
        Ok(ExpHistogram {
            schema: p.scale.min(MAX_SCHEMA),
            zero_threshold,
            zero_count: p.zero_count as f64,
            count: p.count as f64,
            sum: p.sum.unwrap_or(0.0),
            positive: side(p.positive.as_ref())?,
            negative: side(p.negative.as_ref())?,
        })
    }

    /// Lowers the resolution to `schema` by merging buckets (`schema` <= the current one).
    fn reduce_to(&mut self, schema: i32) {
        if schema >= self.schema {
            return;
        }
        let shift = (self.schema - schema) as u32;
        let merge = |m: &BTreeMap<i32, f64>| {
            let mut out = BTreeMap::new();
            for (index, count) in m {
                // Prometheus bucket j covers (base^(j-1), base^j]: merge like OTLP's j-1.
                *out.entry(((index - 1) >> shift) + 1).or_insert(0.0) += count;
            }
            out
        };
        self.positive = merge(&self.positive);
        self.negative = merge(&self.negative);
        self.schema = schema;
    }

    /// Widens the zero bucket to `threshold`, moving buckets entirely inside it.
    fn widen_zero_bucket(&mut self, threshold: f64) {
        if threshold <= self.zero_threshold {
            return;
        }
        let factor = (-f64::from(self.schema)).exp2();
        let upper = |index: i32| (f64::from(index) * factor).exp2();
        let mut moved = 0.0;
        for m in [&mut self.positive, &mut self.negative] {
            m.retain(|index, count| {
                let inside = upper(*index) <= threshold;
                if inside {
                    moved += *count;
                }
                !inside
            });
        }
        self.zero_count += moved;
        self.zero_threshold = threshold;
    }

    /// Adds another histogram (a delta) to this one, at the coarser of the two resolutions.
    fn add(&mut self, mut other: ExpHistogram) {
        let schema = self.schema.min(other.schema);
        self.reduce_to(schema);
        other.reduce_to(schema);
        let threshold = self.zero_threshold.max(other.zero_threshold);
        self.widen_zero_bucket(threshold);
        other.widen_zero_bucket(threshold);
        self.zero_count += other.zero_count;
        self.count += other.count;
        self.sum += other.sum;
        for (index, count) in other.positive {
            *self.positive.entry(index).or_insert(0.0) += count;
        }
        for (index, count) in other.negative {
            *self.negative.entry(index).or_insert(0.0) += count;
        }
    }

    fn to_native(&self) -> NativeHistogram {
        let (positive_spans, positive_buckets) = spans_and_buckets(&self.positive);
        let (negative_spans, negative_buckets) = spans_and_buckets(&self.negative);
        NativeHistogram {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive_spans,
            positive_buckets,
            negative_spans,
            negative_buckets,
            // OTLP has no gauge exponential histograms and deltas are made cumulative here:
            // "unknown" lets the reader detect resets, which is always safe.
            counter_reset_hint: 0,
            custom_values: Vec::new(),
        }
    }
}

/// Spans and bucket counts for sparse buckets. Like Prometheus, gaps of up to two buckets
/// are filled with empty buckets instead of starting a new span.
fn spans_and_buckets(m: &BTreeMap<i32, f64>) -> (Vec<BucketSpan>, Vec<f64>) {
    let mut spans: Vec<BucketSpan> = Vec::new();
    let mut buckets = Vec::with_capacity(m.len());
    let mut prev: Option<i32> = None;
    for (&index, &count) in m {
        match prev {
            None => spans.push(BucketSpan {
                offset: index,
                length: 1,
            }),
            Some(p) => {
                let gap = i64::from(index) - i64::from(p) - 1;
                if gap <= 2 {
                    buckets.extend(std::iter::repeat_n(0.0, gap as usize));
                    if let Some(last) = spans.last_mut() {
                        last.length += gap as u32 + 1;
                    }
                } else {
                    spans.push(BucketSpan {
                        offset: gap as i32,
                        length: 1,
                    });
                }
            }
        }
        buckets.push(count);
        prev = Some(index);
    }
    (spans, buckets)
}

// ---------------------------------------------------------------------------------------------
// Delta -> cumulative
// ---------------------------------------------------------------------------------------------

/// An explicit-bucket histogram's counts (accumulated for delta temporality).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassicHistogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    count: u64,
    sum: Option<f64>,
}

/// The running total of one delta series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DeltaState {
    Sum(f64),
    Histogram(ClassicHistogram),
    Exponential(ExpHistogram),
}

impl DeltaState {
    /// Adds `delta`. A different kind or different explicit bounds start over from `delta`
    /// (readers then see a counter reset).
    fn add(&mut self, delta: DeltaState) {
        match (self, delta) {
            (DeltaState::Sum(total), DeltaState::Sum(d)) => *total += d,
            (DeltaState::Histogram(total), DeltaState::Histogram(d))
                if total.bounds == d.bounds && total.counts.len() == d.counts.len() =>
            {
                for (t, c) in total.counts.iter_mut().zip(&d.counts) {
                    *t = t.saturating_add(*c);
                }
                total.count = total.count.saturating_add(d.count);
                total.sum = match (total.sum, d.sum) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
            }
            (DeltaState::Exponential(total), DeltaState::Exponential(d)) => total.add(d),
            (state, delta) => *state = delta,
        }
    }
}

#[derive(Clone)]
struct DeltaEntry {
    state: DeltaState,
    last_time_ns: u64,
    tick: u64,
}

/// How to take back one change to a [`DeltaAccumulator`].
enum Undo {
    /// The series was added: remove it.
    Added(Labels),
    /// The series was updated or forgotten: put back its entry as it was.
    Replaced(Labels, DeltaEntry),
}

/// Where a [`DeltaAccumulator`]'s changes of one request begin, to commit or take back
/// (one request at a time: the accumulator is behind the tenant's lock).
#[must_use]
pub struct DeltaMark {
    next_tick: u64,
}

/// Running totals that turn DELTA sums and histograms into cumulative series, keyed by the
/// series' labels. Memory is bounded: past `max_entries` series, the least recently updated
/// one is forgotten (its next delta starts a new total, which readers see as a counter
/// reset). Keep one per tenant.
pub struct DeltaAccumulator {
    max_entries: usize,
    entries: HashMap<Labels, DeltaEntry>,
    /// Update tick -> series, oldest first.
    order: BTreeMap<u64, Labels>,
    next_tick: u64,
    /// The changes since the open [`DeltaMark`], to take them back.
    journal: Vec<Undo>,
}

impl DeltaAccumulator {
    /// An accumulator holding at most `max_entries` series (at least one).
    pub fn new(max_entries: usize) -> Self {
        DeltaAccumulator {
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_tick: 0,
            journal: Vec::new(),
        }
    }

    /// Starts a request's changes: [`Self::commit`] keeps them, [`Self::roll_back`] takes
    /// them back.
    pub fn begin(&mut self) -> DeltaMark {
        // Changes before it are kept.
        self.journal = Vec::new();
        DeltaMark {
            next_tick: self.next_tick,
        }
    }

    /// Keeps the changes since `mark` (and frees what would take them back).
    pub fn commit(&mut self, _mark: DeltaMark) {
        self.journal = Vec::new();
    }

    /// Takes back every change since `mark`, newest first: the totals, times and update
    /// order are as they were, series forgotten to make room are back.
    pub fn roll_back(&mut self, mark: DeltaMark) {
        while let Some(undo) = self.journal.pop() {
            match undo {
                Undo::Added(key) => {
                    if let Some(e) = self.entries.remove(&key) {
                        self.order.remove(&e.tick);
                    }
                }
                Undo::Replaced(key, old) => {
                    if let Some(e) = self.entries.get(&key) {
                        self.order.remove(&e.tick);
                    }
                    self.order.insert(old.tick, key.clone());
                    self.entries.insert(key, old);
                }
            }
        }
        self.next_tick = mark.next_tick;
        self.commit(mark);
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Number of series currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a series is currently tracked.
    pub fn contains(&self, labels: &Labels) -> bool {
        self.entries.contains_key(labels)
    }

    /// Adds a delta point at `time_ns` to the series' total and returns the new total. A
    /// point not newer than the last one accumulated is refused (it would be counted twice).
    fn accumulate(
        &mut self,
        key: &Labels,
        time_ns: u64,
        delta: DeltaState,
    ) -> Result<DeltaState, String> {
        let tick = self.next_tick;
        self.next_tick += 1;
        if let Some(entry) = self.entries.get_mut(key) {
            if time_ns <= entry.last_time_ns {
                return Err(format!(
                    "delta point at {time_ns} ns is not newer than the last accumulated point \
                     at {} ns",
                    entry.last_time_ns
                ));
            }
            self.journal
                .push(Undo::Replaced(key.clone(), entry.clone()));
            entry.state.add(delta);
            entry.last_time_ns = time_ns;
            self.order.remove(&entry.tick);
            entry.tick = tick;
            self.order.insert(tick, key.clone());
            return Ok(entry.state.clone());
        }
        while self.entries.len() >= self.max_entries {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(forgotten) = self.entries.remove(&oldest) {
                self.journal.push(Undo::Replaced(oldest, forgotten));
            }
        }
        self.journal.push(Undo::Added(key.clone()));
        self.entries.insert(
            key.clone(),
            DeltaEntry {
                state: delta.clone(),
                last_time_ns: time_ns,
                tick,
            },
        );
        self.order.insert(tick, key.clone());
        Ok(delta)
    }
}

impl Default for DeltaAccumulator {
    fn default() -> Self {
        DeltaAccumulator::new(DEFAULT_MAX_DELTA_SERIES)
    }
}

impl std::fmt::Debug for DeltaAccumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaAccumulator")
            .field("max_entries", &self.max_entries)
            .field("len", &self.entries.len())
            .finish()
    }
}
