//! Per-item input limits. An item over a limit is rejected alone (OTLP `partial_success`),
//! the rest of its request still lands.

use serde::{Deserialize, Serialize};
use strata_storage::model::Labels;
use strata_storage::schema::{LOGS_BATCH_MAX_TEXT_BYTES, SPANS_BATCH_MAX_TEXT_BYTES};

/// The most reasons one answer gives for the items it rejected (OTLP
/// `partial_success.error_message`, the reasons joined with `; `): every rejected item is
/// counted, the first reasons told.
pub const MAX_REJECTION_MESSAGES: usize = 10;

/// Keeps why an item was rejected unless [`MAX_REJECTION_MESSAGES`] reasons are kept
/// already; `why` is only formatted when kept.
pub fn note_rejection(reasons: &mut Vec<String>, why: impl FnOnce() -> String) {
    if reasons.len() < MAX_REJECTION_MESSAGES {
        reasons.push(why());
    }
}

/// Limits on what one item may carry (the `[limits]` table of the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, after decompression, in bytes (also applied before).
    pub max_request_bytes: usize,
    /// Most labels one metric series may have (`__name__` included).
    pub max_labels_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub max_label_value_bytes: usize,
    /// Most attributes one log record, span, span event or span link may have (a span
    /// with an event or link over it is rejected).
    pub max_attributes_per_item: usize,
    /// Longest log body, in bytes.
    pub max_log_body_bytes: usize,
    /// Most events one span may have; a span with more is rejected, as one over the
    /// attribute limit is (128, the OpenTelemetry SDKs' and Tempo's default, so spans of
    /// SDKs with default limits always fit).
    pub max_events_per_span: usize,
    /// Most links one span may have; a span with more is rejected (128, as for events).
    pub max_links_per_span: usize,
    /// Most attributes one resource may have: the spans, log records and metric points of
    /// a resource with more are rejected (128, the OpenTelemetry SDKs' attribute count
    /// limit and `max_labels_per_series`' default, which its `target_info` series has to
    /// meet anyway).
    pub max_resource_attributes: usize,
    /// Most attributes one instrumentation scope may have: the items of a scope with more
    /// are rejected (128, as for resources).
    pub max_scope_attributes: usize,
    /// Most metric series one tenant may have; samples of further new series are rejected
    /// (existing series keep being written). `0` means no limit. Concurrent writes may
    /// overshoot it by the new series of the requests in flight.
    pub max_series_per_tenant: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 64 * 1024 * 1024,
            max_labels_per_series: 128,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
            max_attributes_per_item: 256,
            max_log_body_bytes: 1024 * 1024,
            max_events_per_span: 128,
            max_links_per_span: 128,
            max_resource_attributes: 128,
            max_scope_attributes: 128,
            max_series_per_tenant: 2_000_000,
        }
    }
}

impl Limits {
    /// Checks a series' label set.
    pub fn check_labels(&self, labels: &Labels) -> Result<(), String> {
        if labels.len() > self.max_labels_per_series {
            return Err(format!(
                "series {labels} has {} labels, more than the limit of {}",
                labels.len(),
                self.max_labels_per_series
            ));
        }
        for l in labels.iter() {
            if l.name.len() > self.max_label_name_bytes {
                return Err(format!(
                    "label name {:?}... is {} bytes, longer than the limit of {}",
                    l.name.chars().take(32).collect::<String>(),
                    l.name.len(),
                    self.max_label_name_bytes
                ));
            }
            if l.value.len() > self.max_label_value_bytes {
                return Err(format!(
                    "value of label {:?} is {} bytes, longer than the limit of {}",
                    l.name,
                    l.value.len(),
                    self.max_label_value_bytes
                ));
            }
        }
        Ok(())
    }

    pub fn check_attributes(&self, count: usize) -> Result<(), String> {
        if count > self.max_attributes_per_item {
            Err(format!(
                "{count} attributes, more than the limit of {}",
                self.max_attributes_per_item
            ))
        } else {
            Ok(())
        }
    }

    /// The most text the items of one request may make once converted, for every signal:
    /// log records' bodies, attributes, ids and the resource, scope and stream labels
    /// copied onto each (OTLP and Loki push); spans' ids, names, attribute, event and link
    /// JSON and their resource and scope; metric samples' labels (each bucket of a
    /// histogram copies its point's). 16 times `max_request_bytes`, at most what one batch
    /// may hold ([`LOGS_BATCH_MAX_TEXT_BYTES`], [`SPANS_BATCH_MAX_TEXT_BYTES`]: 1 GiB,
    /// under what an Arrow column can address). A request over it is refused whole with
    /// 413 before more items are converted.
    pub fn max_text_bytes(&self) -> usize {
        self.max_request_bytes
            .saturating_mul(16)
            .min(LOGS_BATCH_MAX_TEXT_BYTES)
            .min(SPANS_BATCH_MAX_TEXT_BYTES)
    }

    /// Checks a span's event and link counts.
    pub fn check_events_links(&self, events: usize, links: usize) -> Result<(), String> {
        if events > self.max_events_per_span {
            Err(format!(
                "{events} events, more than the limit of {}",
                self.max_events_per_span
            ))
        } else if links > self.max_links_per_span {
            Err(format!(
                "{links} links, more than the limit of {}",
                self.max_links_per_span
            ))
        } else {
            Ok(())
        }
    }

    /// Checks the attribute counts of the resource and the scope items come from: why every
    /// item of the block is rejected, if it is.
    pub fn check_origin(&self, resource: usize, scope: usize) -> Result<(), String> {
        if resource > self.max_resource_attributes {
            Err(format!(
                "its resource has {resource} attributes, more than the limit of {}",
                self.max_resource_attributes
            ))
        } else if scope > self.max_scope_attributes {
            Err(format!(
                "its instrumentation scope has {scope} attributes, more than the limit of {}",
                self.max_scope_attributes
            ))
        } else {
            Ok(())
        }
    }

    pub fn check_log_body(&self, len: usize) -> Result<(), String> {
        if len > self.max_log_body_bytes {
            Err(format!(
                "body of {len} bytes is longer than the limit of {}",
                self.max_log_body_bytes
            ))
        } else {
            Ok(())
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_request_bytes == 0 || self.max_labels_per_series == 0 {
            return Err("limits must be greater than 0".into());
        }
        Ok(())
    }
}
