//! Limits of the trace APIs (the `[query.traces]` table) and the per-request budget that
//! enforces them while storage is read.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Settings of the Jaeger and Tempo trace APIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceApiConfig {
    /// Longest time range one search (or tag, dependency or service listing over a
    /// range) may cover.
    #[serde(with = "humantime_serde")]
    pub max_search_range: Duration,
    /// The range a search covers when the request names none.
    #[serde(with = "humantime_serde")]
    pub default_search_range: Duration,
    /// Most spans one request may read from storage; past it the request fails with 422.
    pub max_spans_scanned: u64,
    /// Most traces one search may return (`limit` above it is an error).
    pub max_result_traces: usize,
    /// Traces a search returns when the request sets no `limit`.
    pub default_result_traces: usize,
    /// Longest a trace request may run.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for TraceApiConfig {
    fn default() -> Self {
        TraceApiConfig {
            max_search_range: Duration::from_secs(7 * 24 * 3600),
            default_search_range: Duration::from_secs(3600),
            max_spans_scanned: 50_000_000,
            max_result_traces: 1000,
            default_result_traces: 20,
            timeout: Duration::from_secs(60),
        }
    }
}

impl TraceApiConfig {
    /// Checks settings that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_search_range.is_zero() || self.timeout.is_zero() {
            return Err("query.traces.max_search_range and timeout must be greater than 0".into());
        }
        if self.max_spans_scanned == 0 || self.max_result_traces == 0 {
            return Err(
                "query.traces.max_spans_scanned and max_result_traces must be greater than 0"
                    .into(),
            );
        }
        if self.default_result_traces == 0 || self.default_result_traces > self.max_result_traces {
            return Err(
                "query.traces.default_result_traces must be between 1 and max_result_traces".into(),
            );
        }
        Ok(())
    }
}

/// What one request may still spend, shared with the blocking reader.
#[derive(Clone)]
pub struct Budget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    deadline: Option<Instant>,
    timeout: Duration,
    canceled: AtomicBool,
    spans: AtomicU64,
    bytes: AtomicU64,
    max_spans: u64,
}

impl Budget {
    pub fn new(config: &TraceApiConfig) -> Self {
        Budget {
            inner: Arc::new(BudgetInner {
                deadline: Instant::now().checked_add(config.timeout),
                timeout: config.timeout,
                canceled: AtomicBool::new(false),
                spans: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                max_spans: config.max_spans_scanned,
            }),
        }
    }

    /// Fails once the deadline passed or the client went away.
    pub fn check(&self) -> Result<()> {
        if self.inner.canceled.load(Ordering::Relaxed) {
            return Err(Error::Timeout {
                seconds: self.inner.timeout.as_secs_f64(),
            });
        }
        if self.inner.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Timeout {
                seconds: self.inner.timeout.as_secs_f64(),
            });
        }
        Ok(())
    }

    /// Counts spans read; fails past `max_spans_scanned`.
    pub fn add_spans(&self, n: usize) -> Result<()> {
        let total = self.inner.spans.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total > self.inner.max_spans {
            return Err(Error::LimitExceeded(format!(
                "the request would read more than {} spans (query.traces.max_spans_scanned); \
                 narrow the time range or add conditions",
                self.inner.max_spans
            )));
        }
        Ok(())
    }

    /// Counts bytes inspected (reported in Tempo's search metrics).
    pub fn add_bytes(&self, n: u64) {
        self.inner.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn spans(&self) -> u64 {
        self.inner.spans.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Stops the blocking work at its next check.
    pub fn cancel(&self) {
        self.inner.canceled.store(true, Ordering::Relaxed);
    }
}

/// Cancels a budget when dropped (the handler finished or the client went away).
pub struct CancelOnDrop(pub Budget);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
