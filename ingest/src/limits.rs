//! Per-item input limits. An item over a limit is rejected alone (OTLP `partial_success`),
//! the rest of its request still lands.

use serde::{Deserialize, Serialize};
use strata_storage::model::Labels;

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
    /// Most attributes one log record or span may have.
    pub max_attributes_per_item: usize,
    /// Longest log body, in bytes.
    pub max_log_body_bytes: usize,
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
