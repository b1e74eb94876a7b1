//! The ingest crate's self-metrics.

use strata_storage::telemetry::{Render, SignalCounter};

pub static ITEMS_ACCEPTED: SignalCounter = SignalCounter::new(
    "strata_ingest_items_accepted_total",
    "Items (samples, log records, spans) accepted and stored, per signal.",
);
pub static ITEMS_REJECTED: SignalCounter = SignalCounter::new(
    "strata_ingest_items_rejected_total",
    "Items rejected one by one (limits, invalid content), per signal.",
);
pub static REQUESTS_FAILED: SignalCounter = SignalCounter::new(
    "strata_ingest_requests_failed_total",
    "Whole requests refused (malformed, too large, overload), per signal.",
);

/// The ingest crate's metrics, for `/metrics`.
pub static INGEST_METRICS: &[&dyn Render] = &[&ITEMS_ACCEPTED, &ITEMS_REJECTED, &REQUESTS_FAILED];
