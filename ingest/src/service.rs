//! The ingester: turns decoded requests into storage writes, applying limits per item.
//! Every receiver (OTLP gRPC, OTLP HTTP, remote write) goes through it.

use crate::error::{Error, Result};
use crate::limits::{Limits, MAX_REJECTION_MESSAGES, note_rejection};
use crate::otlp::metrics::{
    DEFAULT_MAX_DELTA_SERIES, DeltaAccumulator, MetricsTranslator, TranslationConfig,
};
use crate::otlp::{decoded_size, logs, traces, traces_wire};
use crate::spanmetrics::{Prepared, SpanMetrics, SpanMetricsConfig};
use crate::telemetry::{ITEMS_ACCEPTED, ITEMS_REJECTED};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::Mutex;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use strata_storage::model::{MetricsWrite, Origin, SeriesId, Signal};
use strata_storage::schema::{SpanRow, spans_batch_limited};
use strata_storage::{Storage, TenantId};

/// Ingest settings (the `[ingest]` table of the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Resource attributes that, with the severity, form a log record's stream labels
    /// (dots become underscores: `service.name` -> `service_name`).
    pub log_stream_attributes: Vec<String>,
    /// Resource attributes promoted to labels on every metric series of their resource.
    pub promote_resource_attributes: Vec<String>,
    /// Add unit and `_total` suffixes to OTLP metric names, as Prometheus does by default.
    pub add_metric_suffixes: bool,
    /// Per-item and per-request limits.
    pub limits: Limits,
    /// RED metrics computed from ingested spans.
    pub span_metrics: SpanMetricsConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            log_stream_attributes: [
                "service.name",
                "service.namespace",
                "deployment.environment",
                "deployment.environment.name",
                "k8s.namespace.name",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            promote_resource_attributes: Vec::new(),
            add_metric_suffixes: true,
            limits: Limits::default(),
            span_metrics: SpanMetricsConfig::default(),
        }
    }
}

/// The result of a write that was at least partly accepted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Items rejected individually (the rest were stored).
    pub rejected: u64,
    /// Why, for the first few; empty when nothing was rejected.
    pub message: String,
}

impl Outcome {
    /// `rejected` items, and why: the first [`MAX_REJECTION_MESSAGES`] of `errors`.
    fn new(rejected: u64, errors: &[String]) -> Self {
        let told = errors.len().min(MAX_REJECTION_MESSAGES);
        Outcome {
            rejected,
            message: errors[..told].join("; "),
        }
    }
}

/// Shared entry point of all receivers. Cheap to clone.
#[derive(Clone)]
pub struct Ingester {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    config: IngestConfig,
    translator: MetricsTranslator,
    deltas: Mutex<HashMap<TenantId, DeltaAccumulator>>,
    span_metrics: SpanMetrics,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Storage(strata_storage::Error::ShuttingDown))
}

impl Ingester {
    pub fn new(storage: Storage, config: IngestConfig) -> Self {
        let translator = MetricsTranslator::new(TranslationConfig {
            promote_resource_attributes: config.promote_resource_attributes.clone(),
            add_metric_suffixes: config.add_metric_suffixes,
        });
        let span_metrics = SpanMetrics::new(config.span_metrics.clone());
        Ingester {
            inner: Arc::new(Inner {
                storage,
                config,
                translator,
                deltas: Mutex::new(HashMap::new()),
                span_metrics,
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Drops samples whose series break the label limits; returns how many and why.
    fn enforce_label_limits(&self, write: &mut MetricsWrite) -> (u64, Vec<String>) {
        let limits = &self.inner.config.limits;
        let mut errors = Vec::new();
        let before = write.samples.len();
        write
            .samples
            .retain(|s| match limits.check_labels(&s.labels) {
                Ok(()) => true,
                Err(e) => {
                    note_rejection(&mut errors, || e);
                    false
                }
            });
        ((before - write.samples.len()) as u64, errors)
    }

    /// Drops samples of new series past the tenant's series limit; returns how many and why.
    fn enforce_series_limit(
        &self,
        tenant: &TenantId,
        write: &mut MetricsWrite,
    ) -> (u64, Vec<String>) {
        let limit = self.inner.config.limits.max_series_per_tenant;
        if limit == 0 || write.samples.is_empty() {
            return (0, Vec::new());
        }
        let ids: Vec<SeriesId> = write.samples.iter().map(|s| s.labels.series_id()).collect();
        let (mut count, known) = self.inner.storage.series_status(tenant, &ids);
        if count + ids.len() <= limit {
            return (0, Vec::new());
        }
        let mut admitted: HashSet<SeriesId> = HashSet::new();
        let mut refused = 0u64;
        let mut first: Option<String> = None;
        let mut keep = Vec::with_capacity(ids.len());
        for ((id, known), sample) in ids.iter().zip(&known).zip(&write.samples) {
            let ok = *known
                || admitted.contains(id)
                || (count < limit && {
                    admitted.insert(*id);
                    count += 1;
                    true
                });
            if !ok {
                refused += 1;
                first.get_or_insert_with(|| sample.labels.to_string());
            }
            keep.push(ok);
        }
        let mut flags = keep.into_iter();
        write.samples.retain(|_| flags.next().unwrap_or(false));
        let errors = first
            .map(|series| {
                vec![format!(
                    "tenant {tenant} has reached its limit of {limit} series \
                     (limits.max_series_per_tenant); new series such as {series} are refused"
                )]
            })
            .unwrap_or_default();
        (refused, errors)
    }

    async fn store_metrics(
        &self,
        tenant: &TenantId,
        mut write: MetricsWrite,
        rejected: u64,
        mut errors: Vec<String>,
    ) -> Result<Outcome> {
        let (over, limit_errors) = self.enforce_label_limits(&mut write);
        errors.extend(limit_errors);
        let (refused, series_errors) = self.enforce_series_limit(tenant, &mut write);
        errors.extend(series_errors);
        let rejected = rejected + over + refused;
        let accepted = write.samples.len() as u64;
        self.inner.storage.write_metrics(tenant, write).await?;
        ITEMS_ACCEPTED.add(Signal::Metrics, accepted);
        ITEMS_REJECTED.add(Signal::Metrics, rejected);
        Ok(Outcome::new(rejected, &errors))
    }

    /// Stores an OTLP metrics request.
    pub async fn metrics(
        &self,
        tenant: &TenantId,
        req: ExportMetricsServiceRequest,
    ) -> Result<Outcome> {
        self.metrics_from(tenant, move || Ok(req)).await
    }

    /// Stores an OTLP metrics request given as protobuf bytes: refused before it is
    /// decoded if it would take too much memory ([`decoded_size`]).
    pub async fn metrics_protobuf(&self, tenant: &TenantId, body: bytes::Bytes) -> Result<Outcome> {
        self.metrics_from(tenant, checked_decode(Signal::Metrics, body))
            .await
    }

    /// Stores the OTLP metrics request `decode` gives (called off the reactor).
    async fn metrics_from(
        &self,
        tenant: &TenantId,
        decode: impl FnOnce() -> Result<ExportMetricsServiceRequest> + Send + 'static,
    ) -> Result<Outcome> {
        let this = self.clone();
        let t = tenant.clone();
        let (translation, rejected, mut errors) = blocking(move || -> Result<_> {
            let mut req = decode()?;
            let (rejected, errors) = crate::otlp::metrics::reject_oversized_resources(
                &mut req,
                &this.inner.config.limits,
            );
            let mut deltas = this.inner.deltas.lock();
            let acc = deltas
                .entry(t)
                .or_insert_with(|| DeltaAccumulator::new(DEFAULT_MAX_DELTA_SERIES));
            let limits = &this.inner.config.limits;
            let translation =
                this.inner
                    .translator
                    .translate_limited(&req, acc, limits.max_text_bytes())?;
            Ok((translation, rejected, errors))
        })
        .await??;
        errors.extend(translation.errors);
        self.store_metrics(
            tenant,
            translation.write,
            translation.rejected_points + rejected,
            errors,
        )
        .await
    }

    /// Stores a Prometheus remote-write request (snappy-compressed protobuf).
    pub async fn remote_write(&self, tenant: &TenantId, body: bytes::Bytes) -> Result<Outcome> {
        let max = self.inner.config.limits.max_request_bytes;
        let write = blocking(move || crate::remote_write::decode(&body, max)).await??;
        self.store_metrics(tenant, write, 0, Vec::new()).await
    }

    /// Stores an OTLP logs request.
    pub async fn logs(&self, tenant: &TenantId, req: ExportLogsServiceRequest) -> Result<Outcome> {
        self.logs_from(tenant, move || Ok(req)).await
    }

    /// Stores an OTLP logs request given as protobuf bytes: refused before it is decoded
    /// if it would take too much memory ([`decoded_size`]).
    pub async fn logs_protobuf(&self, tenant: &TenantId, body: bytes::Bytes) -> Result<Outcome> {
        self.logs_from(tenant, checked_decode(Signal::Logs, body))
            .await
    }

    /// Stores the OTLP logs request `decode` gives (called off the reactor).
    async fn logs_from(
        &self,
        tenant: &TenantId,
        decode: impl FnOnce() -> Result<ExportLogsServiceRequest> + Send + 'static,
    ) -> Result<Outcome> {
        let this = self.clone();
        let (batch, rejected, errors) = blocking(move || -> Result<_> {
            let req = decode()?;
            let conv = logs::convert(
                &req,
                &this.inner.config.log_stream_attributes,
                &this.inner.config.limits,
            )?;
            Ok((conv.batch.finish()?, conv.rejected, conv.errors))
        })
        .await??;
        let accepted = batch.num_rows() as u64;
        self.inner.storage.write_logs_batch(tenant, batch).await?;
        ITEMS_ACCEPTED.add(Signal::Logs, accepted);
        ITEMS_REJECTED.add(Signal::Logs, rejected);
        Ok(Outcome::new(rejected, &errors))
    }

    /// Stores log rows already decoded and validated (Loki push): all or nothing.
    pub async fn store_log_batch(
        &self,
        tenant: &TenantId,
        rows: strata_storage::schema::LogsBuilder,
    ) -> Result<()> {
        let batch = rows.finish()?;
        let accepted = batch.num_rows() as u64;
        self.inner.storage.write_logs_batch(tenant, batch).await?;
        ITEMS_ACCEPTED.add(Signal::Logs, accepted);
        Ok(())
    }

    /// Stores an OTLP traces request.
    pub async fn traces(
        &self,
        tenant: &TenantId,
        req: ExportTraceServiceRequest,
    ) -> Result<Outcome> {
        let this = self.clone();
        let (conv, batch, prepared) = blocking(move || -> Result<_> {
            let limits = &this.inner.config.limits;
            let conv = traces::convert(&req, limits)?;
            let prepared = this.inner.span_metrics.prepare(&conv.spans);
            let batch = spans_batch_limited(&conv.spans, limits.max_text_bytes())?;
            Ok((conv, batch, prepared))
        })
        .await??;
        let accepted = conv.spans.len() as u64;
        self.inner.storage.write_spans_batch(tenant, batch).await?;
        self.inner.span_metrics.record(tenant, prepared);
        ITEMS_ACCEPTED.add(Signal::Traces, accepted);
        ITEMS_REJECTED.add(Signal::Traces, conv.rejected);
        Ok(Outcome::new(conv.rejected, &conv.errors))
    }
}

impl Ingester {
    /// Stores an OTLP traces request given as protobuf bytes, decoded straight into a
    /// spans batch ([`traces_wire`]): the same answer as [`Ingester::traces`] gives for
    /// the decoded request, malformed protobuf refused the same way.
    pub async fn traces_protobuf(&self, tenant: &TenantId, body: bytes::Bytes) -> Result<Outcome> {
        let this = self.clone();
        let (batch, prepared, rejected, errors) = blocking(move || -> Result<_> {
            let metrics = &this.inner.span_metrics;
            let mut prepared = Prepared::default();
            let mut on_span = |row: &SpanRow<'_>, origin: &Origin| {
                metrics.prepare_row(&mut prepared, row, origin);
            };
            let w = traces_wire::decode(&body, &this.inner.config.limits, &mut on_span)
                .map_err(Error::MalformedProtobuf)?;
            if let Some(e) = w.too_large {
                return Err(e.into());
            }
            let batch = w.builder.finish()?;
            Ok((batch, prepared, w.rejected, w.errors))
        })
        .await??;
        let accepted = batch.num_rows() as u64;
        self.inner.storage.write_spans_batch(tenant, batch).await?;
        self.inner.span_metrics.record(tenant, prepared);
        ITEMS_ACCEPTED.add(Signal::Traces, accepted);
        ITEMS_REJECTED.add(Signal::Traces, rejected);
        Ok(Outcome::new(rejected, &errors))
    }

    /// Writes the current span metrics of every tenant into the metrics store.
    pub async fn flush_span_metrics(&self) -> Result<()> {
        let this = self.clone();
        let writes = blocking(move || this.inner.span_metrics.snapshot()).await?;
        for (tenant, write) in writes {
            self.inner.storage.write_metrics(&tenant, write).await?;
        }
        Ok(())
    }

    /// Writes span metrics every `ingest.span_metrics.interval` until `shutdown`
    /// completes, then once more.
    pub async fn run_span_metrics(self, shutdown: impl std::future::Future<Output = ()>) {
        if !self.inner.config.span_metrics.enabled {
            return;
        }
        let interval = self.inner.config.span_metrics.interval;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.flush_span_metrics().await {
                tracing::warn!(error = %e, "writing span metrics failed; retrying next interval");
            }
        }
        if let Err(e) = self.flush_span_metrics().await {
            tracing::warn!(error = %e, "final span metrics write failed");
        }
    }
}

/// The decode of a `signal` request's protobuf `body`, refused first if it would take too
/// much memory decoded ([`decoded_size`]); run off the reactor by the caller.
fn checked_decode<T: Message + Default>(
    signal: Signal,
    body: bytes::Bytes,
) -> impl FnOnce() -> Result<T> + Send + 'static {
    move || {
        decoded_size::check_protobuf(signal, &body)?;
        Ok(T::decode(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_storage::StorageConfig;
    use strata_storage::model::{Labels, Sample, SampleValue};

    fn sample(job: &str, ts: i64) -> Sample {
        Sample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", job)]),
            timestamp_ms: ts,
            value: SampleValue::Float(1.0),
            exemplars: vec![],
        }
    }

    fn write(samples: Vec<Sample>) -> MetricsWrite {
        MetricsWrite {
            samples,
            metadata: vec![],
        }
    }

    #[tokio::test]
    async fn new_series_past_the_tenant_limit_are_refused_existing_ones_still_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(StorageConfig {
            data_dir: dir.path().to_path_buf(),
            ..StorageConfig::default()
        })
        .expect("open");
        let mut config = IngestConfig::default();
        config.limits.max_series_per_tenant = 2;
        let ingester = Ingester::new(storage.clone(), config);
        let a = TenantId::new("a").expect("tenant");
        let b = TenantId::new("b").expect("tenant");

        let o = ingester
            .store_metrics(&a, write(vec![sample("x", 1), sample("y", 1)]), 0, vec![])
            .await
            .expect("write");
        assert_eq!(o.rejected, 0);
        // One more sample of each known series plus two new ones: only the new go.
        let o = ingester
            .store_metrics(
                &a,
                write(vec![
                    sample("x", 2),
                    sample("z", 2),
                    sample("y", 2),
                    sample("w", 2),
                ]),
                0,
                vec![],
            )
            .await
            .expect("write");
        assert_eq!(o.rejected, 2);
        assert!(o.message.contains("limit of 2 series"), "{}", o.message);
        assert!(o.message.contains("max_series_per_tenant"), "{}", o.message);
        assert_eq!(storage.select_labels(&a, Signal::Metrics, &[]).len(), 2);
        let rows: usize = storage
            .snapshot(&a, Signal::Metrics, i64::MIN, i64::MAX)
            .batches
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 4);
        // The limit is per tenant.
        let o = ingester
            .store_metrics(&b, write(vec![sample("z", 1), sample("w", 1)]), 0, vec![])
            .await
            .expect("write");
        assert_eq!(o.rejected, 0);
    }

    /// Each answer tells at most `MAX_REJECTION_MESSAGES` reasons, however many items
    /// it rejects and wherever they were rejected (conversion, label limits).
    #[tokio::test]
    async fn rejections_are_all_counted_and_the_first_ten_told() {
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(StorageConfig {
            data_dir: dir.path().to_path_buf(),
            ..StorageConfig::default()
        })
        .expect("open");
        let mut config = IngestConfig::default();
        config.limits.max_labels_per_series = 2;
        let ingester = Ingester::new(storage, config);
        let t = TenantId::new("a").expect("tenant");
        let bad = LogRecord {
            trace_id: vec![1; 3],
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![bad; 15],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let o = ingester.logs(&t, req).await.expect("logs");
        assert_eq!(o.rejected, 15);
        assert_eq!(o.message.split("; ").count(), MAX_REJECTION_MESSAGES);
        assert!(
            o.message
                .starts_with("log record rejected: trace_id must be 16 bytes, got 3")
        );
        // Metrics: samples over the label limit, after translation's own reasons.
        let wide = |i: i64| Sample {
            labels: Labels::from_pairs([
                ("__name__", "up".to_owned()),
                ("a", i.to_string()),
                ("b", "x".to_owned()),
            ]),
            ..sample("x", i)
        };
        let reasons: Vec<String> = (0..4).map(|i| format!("reason {i}")).collect();
        let o = ingester
            .store_metrics(&t, write((0..12).map(wide).collect()), 4, reasons)
            .await
            .expect("write");
        assert_eq!(o.rejected, 16);
        let told: Vec<&str> = o.message.split("; ").collect();
        assert_eq!(told.len(), MAX_REJECTION_MESSAGES);
        assert_eq!(told[..4], ["reason 0", "reason 1", "reason 2", "reason 3"]);
        assert!(
            told[4].contains("3 labels, more than the limit of 2"),
            "{}",
            told[4]
        );
    }
}
