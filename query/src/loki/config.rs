//! Settings of the Loki query API (the `[query.loki]` table of the config file).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits and defaults of the Loki-compatible log API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LokiApiConfig {
    /// Longest time range one query may cover (Loki's `max_query_length`).
    #[serde(with = "humantime_serde")]
    pub max_query_range: Duration,
    /// Largest `limit` (lines returned) a log query may ask for
    /// (Loki's `max_entries_limit_per_query`).
    pub max_entries_limit: usize,
    /// Most bytes one query may read: compressed column bytes from files, checked before
    /// reading, and log line bytes processed by the engine. 0 means no limit.
    pub max_bytes_scanned: u64,
    /// Most series a metric query may return (Loki's `max_query_series`).
    pub max_series: usize,
    /// Longest a query may run; a timeout answers 504.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// The version `/loki/api/v1/status/buildinfo` reports; Grafana picks features by it.
    pub build_version: String,
    /// Most live tails (`/loki/api/v1/tail` WebSockets) open at once, over all tenants
    /// (Loki's `max_concurrent_tail_requests`).
    pub max_tail_sessions: usize,
    /// Longest a live tail stays open; the server then closes it (Loki's
    /// `tail_max_duration`).
    #[serde(with = "humantime_serde")]
    pub tail_max_duration: Duration,
}

impl Default for LokiApiConfig {
    fn default() -> Self {
        LokiApiConfig {
            max_query_range: Duration::from_secs(721 * 3600),
            max_entries_limit: 5000,
            max_bytes_scanned: 16 * 1024 * 1024 * 1024,
            max_series: 500,
            query_timeout: Duration::from_secs(60),
            build_version: "3.0.0".to_owned(),
            max_tail_sessions: 10,
            tail_max_duration: Duration::from_secs(3600),
        }
    }
}

impl LokiApiConfig {
    /// Checks settings that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_query_range.is_zero() || self.query_timeout.is_zero() {
            return Err(
                "query.loki.max_query_range and query_timeout must be greater than 0".into(),
            );
        }
        if self.tail_max_duration.is_zero() {
            return Err("query.loki.tail_max_duration must be greater than 0".into());
        }
        if self.max_entries_limit == 0 || self.max_series == 0 {
            return Err(
                "query.loki.max_entries_limit and max_series must be greater than 0".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_human_durations_and_rejects_unknown_fields() {
        let c: LokiApiConfig =
            serde_json::from_str(r#"{"max_query_range": "1d", "query_timeout": "5s"}"#)
                .expect("config");
        assert_eq!(c.max_query_range, Duration::from_secs(86_400));
        assert_eq!(c.query_timeout, Duration::from_secs(5));
        assert!(c.validate().is_ok());
        assert!(serde_json::from_str::<LokiApiConfig>(r#"{"timeout": "2m"}"#).is_err());
        let zero = LokiApiConfig {
            max_entries_limit: 0,
            ..LokiApiConfig::default()
        };
        assert!(zero.validate().is_err());
    }
}
