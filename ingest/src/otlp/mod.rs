//! OTLP receivers (gRPC and HTTP) and the conversions of OTLP data to the storage model.

pub mod common;
pub mod decoded_size;
pub mod grpc;
pub mod grpc_traces;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod traces;
pub mod traces_wire;
