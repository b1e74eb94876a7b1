//! Wire formats only: OTLP (the `opentelemetry-proto` crate, re-exported), Prometheus
//! remote write and Loki push; no logic beyond decoding and encoding.

pub use opentelemetry_proto;

pub mod loki;
pub mod prometheus;
