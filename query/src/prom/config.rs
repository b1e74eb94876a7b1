//! Settings of the Prometheus query API (the `[prometheus_api]` table of the config file).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits and defaults of the Prometheus-compatible query API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromApiConfig {
    /// How far back an instant selector looks for the latest sample of a series
    /// (Prometheus's `--query.lookback-delta`). A request's `lookback_delta` overrides it.
    #[serde(with = "humantime_serde")]
    pub lookback_delta: Duration,
    /// Longest a query may run (Prometheus's `--query.timeout`); a request's `timeout`
    /// parameter can only shorten it.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Most samples one query may load or hold in memory (`--query.max-samples`).
    pub max_samples: usize,
    /// Most series one selector, or one series/labels request, may touch.
    pub max_series: usize,
    /// Bytes of decoded samples kept for the next query that reads the same rows of a file
    /// (small selections only, as dashboards repeat them); 0 keeps none.
    pub sample_cache_bytes: usize,
    /// The Prometheus version `/api/v1/status/buildinfo` reports. Clients such as Grafana
    /// pick the query features they use by it.
    pub build_version: String,
}

impl Default for PromApiConfig {
    fn default() -> Self {
        PromApiConfig {
            lookback_delta: Duration::from_secs(300),
            query_timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_series: 500_000,
            sample_cache_bytes: 64 << 20,
            build_version: "3.0.0".to_owned(),
        }
    }
}

impl PromApiConfig {
    /// Checks settings that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.lookback_delta.is_zero() {
            return Err("prometheus_api.lookback_delta must be greater than 0".into());
        }
        if self.query_timeout.is_zero() {
            return Err("prometheus_api.query_timeout must be greater than 0".into());
        }
        if self.max_samples == 0 || self.max_series == 0 {
            return Err("prometheus_api.max_samples and max_series must be greater than 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_human_durations_and_rejects_unknown_fields() {
        let c: PromApiConfig =
            serde_json::from_str(r#"{"lookback_delta": "2m", "query_timeout": "30s"}"#)
                .expect("config");
        assert_eq!(c.lookback_delta, Duration::from_secs(120));
        assert_eq!(c.query_timeout, Duration::from_secs(30));
        assert_eq!(c.max_samples, PromApiConfig::default().max_samples);
        assert!(c.validate().is_ok());
        assert!(serde_json::from_str::<PromApiConfig>(r#"{"lookback": "2m"}"#).is_err());
    }
}
