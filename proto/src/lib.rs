//! Wire formats only: OTLP (the `opentelemetry-proto` crate, re-exported) and Prometheus
//! remote write; no logic beyond decoding and encoding.

pub use opentelemetry_proto;

pub mod prometheus;
