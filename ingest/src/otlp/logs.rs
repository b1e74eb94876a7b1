//! OTLP logs -> a `logs` batch, with stream labels from configured resource attributes.
//!
//! Records go straight into a [`LogsBuilder`] (no model record per row), whose text limit
//! ([`Limits::max_text_bytes`]) refuses a request whose records would copy too much text.

use crate::attributes::{any_kind, any_to_text, attribute_text, attributes_json};
use crate::limits::{Limits, note_rejection};
use crate::otlp::common::{check_id, hex_id, nanos, origin};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use std::collections::HashMap;
use strata_storage::model::{Labels, label_name, severity_level};
use strata_storage::schema::{LogRow, LogsBuilder};

/// The stream label holding the severity.
pub const LEVEL_LABEL: &str = "level";

/// What became of a logs request.
#[derive(Debug)]
pub struct LogsConversion {
    /// The records accepted.
    pub batch: LogsBuilder,
    pub rejected: u64,
    pub errors: Vec<String>,
}

/// Converts a request; items that break a limit are rejected one by one. A request whose
/// records would make more text than [`Limits::max_text_bytes`] (each copies its
/// resource, scope and stream labels) is refused whole
/// ([`strata_storage::Error::TooLarge`]) by the batch builder, before more records are
/// built.
pub fn convert(
    req: &ExportLogsServiceRequest,
    stream_attributes: &[String],
    limits: &Limits,
) -> Result<LogsConversion, strata_storage::Error> {
    let records = req
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum();
    let mut out = LogsConversion {
        batch: LogsBuilder::with_capacity(records, 0).with_max_text_bytes(limits.max_text_bytes()),
        rejected: 0,
        errors: Vec::new(),
    };
    for rl in &req.resource_logs {
        let resource = rl.resource.as_ref();
        let mut stream_pairs: Vec<(String, String)> = stream_attributes
            .iter()
            .filter_map(|a| {
                resource
                    .and_then(|r| attribute_text(&r.attributes, a))
                    .map(|v| (label_name(a), v))
            })
            .collect();
        if !stream_pairs.iter().any(|(n, _)| n == "service_name") {
            stream_pairs.push((
                "service_name".into(),
                crate::otlp::common::service_name(resource),
            ));
        }
        // The resource's streams, one per level: their labels and id, made once.
        let mut streams: Vec<(Labels, u64)> = Vec::new();
        // Levels are client text: found by hash, not by a scan per record.
        let mut stream_of_level: HashMap<String, usize> = HashMap::new();
        let resource_attributes = resource.map_or(0, |r| r.attributes.len());
        for sl in &rl.scope_logs {
            let scope_attributes = sl.scope.as_ref().map_or(0, |s| s.attributes.len());
            if let Err(e) = limits.check_origin(resource_attributes, scope_attributes) {
                let n = sl.log_records.len();
                out.rejected += n as u64;
                if n > 0 {
                    note_rejection(&mut out.errors, || format!("{n} log records rejected: {e}"));
                }
                continue;
            }
            let origin = origin(resource, &rl.schema_url, sl.scope.as_ref(), &sl.schema_url);
            for lr in &sl.log_records {
                let problem = check_id(&lr.trace_id, 16, "trace_id")
                    .and_then(|_| check_id(&lr.span_id, 8, "span_id"))
                    .and_then(|_| limits.check_attributes(lr.attributes.len()))
                    .and_then(|_| {
                        let body = any_to_text(lr.body.as_ref());
                        limits.check_log_body(body.len()).map(|_| body)
                    });
                let body = match problem {
                    Ok(body) => body,
                    Err(e) => {
                        out.rejected += 1;
                        note_rejection(&mut out.errors, || format!("log record rejected: {e}"));
                        continue;
                    }
                };
                let level = severity_level(lr.severity_number, &lr.severity_text);
                let at = *stream_of_level.entry(level).or_insert_with_key(|level| {
                    let mut pairs = stream_pairs.clone();
                    pairs.push((LEVEL_LABEL.into(), level.clone()));
                    let labels = Labels::from_pairs(pairs);
                    let id = labels.series_id().0;
                    streams.push((labels, id));
                    streams.len() - 1
                });
                let (stream, stream_id) = &streams[at];
                let observed = nanos(lr.observed_time_unix_nano);
                let ts = if lr.time_unix_nano == 0 {
                    observed
                } else {
                    nanos(lr.time_unix_nano)
                };
                out.batch.append(
                    stream,
                    *stream_id,
                    &origin,
                    &LogRow {
                        timestamp_ns: ts,
                        observed_timestamp_ns: observed,
                        severity_number: lr.severity_number,
                        severity_text: &lr.severity_text,
                        body: &body,
                        body_type: any_kind(lr.body.as_ref()),
                        attributes: &attributes_json(&lr.attributes),
                        dropped_attributes_count: lr.dropped_attributes_count,
                        flags: lr.flags,
                        trace_id: &hex_id(&lr.trace_id),
                        span_id: &hex_id(&lr.span_id),
                        event_name: &lr.event_name,
                    },
                )?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_shared_example() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/otlp-examples/logs.json"
        );
        let json = std::fs::read_to_string(path).expect("example");
        let req: ExportLogsServiceRequest = serde_json::from_str(&json).expect("parse");
        let out = convert(&req, &["service.name".into()], &Limits::default()).expect("fits");
        assert_eq!(out.rejected, 0);
        let records: usize = req.resource_logs[0]
            .scope_logs
            .iter()
            .map(|s| s.log_records.len())
            .sum();
        assert_eq!(out.batch.len(), records);
    }

    /// The rows are those of the model records the request means: stream labels from the
    /// configured resource attributes and the level, one stream per level, the origin,
    /// hex ids, bodies of any type as text, the observed time when there is no time.
    #[test]
    fn rows_are_the_records_the_request_means() {
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, InstrumentationScope, KeyValue, any_value::Value,
        };
        use opentelemetry_proto::tonic::logs::v1::{LogRecord as Otlp, ResourceLogs, ScopeLogs};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use strata_storage::model::LogRecord;
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let text = |s: &str| Value::StringValue(s.into());
        let resource = Resource {
            attributes: vec![
                kv("service.name", text("api")),
                kv("k8s.namespace.name", text("prod")),
                kv("host", text("h1")),
            ],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "lib".into(),
            version: "1.2".into(),
            ..Default::default()
        };
        let t = 1_700_000_000_000_000_000u64;
        let records = vec![
            Otlp {
                time_unix_nano: t,
                observed_time_unix_nano: t + 5,
                severity_number: 9,
                severity_text: "INFO".into(),
                body: Some(AnyValue {
                    value: Some(text("hello")),
                }),
                attributes: vec![kv("user", text("u1")), kv("n", Value::IntValue(3))],
                trace_id: vec![0xab; 16],
                span_id: vec![0x01; 8],
                flags: 1,
                ..Default::default()
            },
            Otlp {
                observed_time_unix_nano: t + 7,
                severity_number: 17,
                body: Some(AnyValue {
                    value: Some(Value::IntValue(5)),
                }),
                event_name: "boom".into(),
                dropped_attributes_count: 2,
                ..Default::default()
            },
            Otlp {
                time_unix_nano: t + 9,
                severity_number: 9,
                severity_text: "INFO".into(),
                ..Default::default()
            },
        ];
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope.clone()),
                    log_records: records.clone(),
                    schema_url: "s".into(),
                }],
                schema_url: "r".into(),
            }],
        };
        let stream_attributes = ["service.name".into(), "k8s.namespace.name".into()];
        let out = convert(&req, &stream_attributes, &Limits::default()).expect("fits");
        let origin = origin(Some(&resource), "r", Some(&scope), "s");
        let stream = |level: &str| {
            Labels::from_pairs([
                ("service_name", "api"),
                ("k8s_namespace_name", "prod"),
                (LEVEL_LABEL, level),
            ])
        };
        let want: Vec<LogRecord> = records
            .iter()
            .zip([t as i64, t as i64 + 7, t as i64 + 9])
            .zip(["info", "error", "info"])
            .map(|((r, ts), level)| LogRecord {
                timestamp_ns: ts,
                observed_timestamp_ns: r.observed_time_unix_nano as i64,
                severity_number: r.severity_number,
                severity_text: r.severity_text.clone(),
                body: any_to_text(r.body.as_ref()),
                body_type: any_kind(r.body.as_ref()).into(),
                attributes: attributes_json(&r.attributes),
                dropped_attributes_count: r.dropped_attributes_count,
                flags: r.flags,
                trace_id: hex_id(&r.trace_id),
                span_id: hex_id(&r.span_id),
                event_name: r.event_name.clone(),
                origin: origin.clone(),
                stream: stream(level),
            })
            .collect();
        assert_eq!(want[0].trace_id, "ab".repeat(16));
        assert_eq!(
            (want[1].body.as_str(), want[1].body_type.as_str()),
            ("5", "int")
        );
        let want = strata_storage::schema::logs_batch(&want).expect("batch");
        assert_eq!(out.batch.finish().expect("batch"), want);
    }

    #[test]
    fn label_names_and_levels() {
        assert_eq!(label_name("k8s.namespace.name"), "k8s_namespace_name");
        assert_eq!(label_name("1x"), "_1x");
        assert_eq!(severity_level(17, ""), "error");
        assert_eq!(severity_level(9, "INFO"), "info");
        assert_eq!(severity_level(0, ""), "unknown");
    }

    #[test]
    fn records_of_resources_or_scopes_over_the_attribute_limits_are_rejected() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
        use opentelemetry_proto::tonic::logs::v1::{LogRecord as Otlp, ResourceLogs, ScopeLogs};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        let attrs = |n: usize| -> Vec<KeyValue> {
            (0..n)
                .map(|i| KeyValue {
                    key: format!("k{i}"),
                    value: Some(AnyValue::default()),
                    ..Default::default()
                })
                .collect()
        };
        let block = |resource: usize, scope: usize, records: usize| ResourceLogs {
            resource: Some(Resource {
                attributes: attrs(resource),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    attributes: attrs(scope),
                    ..Default::default()
                }),
                log_records: vec![Otlp::default(); records],
                ..Default::default()
            }],
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![block(128, 128, 1), block(129, 0, 2), block(0, 129, 3)],
        };
        let out = convert(&req, &[], &Limits::default()).expect("fits");
        assert_eq!((out.batch.len(), out.rejected), (1, 5));
        assert_eq!(
            out.errors,
            vec![
                "2 log records rejected: its resource has 129 attributes, more than the limit of 128",
                "3 log records rejected: its instrumentation scope has 129 attributes, more than the limit of 128",
            ]
        );
    }
}

#[cfg(test)]
mod text_limit_tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as Otlp, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    /// Records of a large resource copy it each: a small request of them would make
    /// gigabytes of records. Past the text limit the request is refused before more are
    /// built; under it, it converts.
    #[test]
    fn records_copying_a_large_resource_past_the_text_limit_refuse_the_request() {
        let attributes: Vec<KeyValue> = (0..50)
            .map(|i| KeyValue {
                key: format!("k{i}"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("v".repeat(2000))),
                }),
                ..Default::default()
            })
            .collect();
        let request = |records: usize| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: attributes.clone(),
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        Otlp {
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("hello".into())),
                            }),
                            ..Default::default()
                        };
                        records
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let limits = Limits {
            max_request_bytes: 1 << 20,
            ..Limits::default()
        };
        assert_eq!(limits.max_text_bytes(), 16 << 20);
        // About 100 KB of resource JSON per record: 150 records fit, 200 do not.
        let out = convert(&request(150), &[], &limits).expect("fits");
        assert_eq!(out.batch.len(), 150);
        let err = convert(&request(200), &[], &limits).expect_err("too much text");
        assert!(matches!(err, strata_storage::Error::TooLarge(_)), "{err}");
        assert!(
            err.to_string().contains("more than 16777216 bytes of text"),
            "{err}"
        );
    }

    /// The same with the large text in a second scope of the same stream, after a scope of
    /// none: each row counts its own origin, not the stream's first one.
    #[test]
    fn records_of_a_later_scope_count_their_own_origin_against_the_text_limit() {
        use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
        let record = Otlp {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("hello".into())),
            }),
            ..Default::default()
        };
        let request = |records: usize| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![
                    ScopeLogs {
                        log_records: vec![record.clone()],
                        ..Default::default()
                    },
                    ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "s".repeat(100_000),
                            ..Default::default()
                        }),
                        log_records: vec![record.clone(); records],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        };
        let limits = Limits {
            max_request_bytes: 1 << 20,
            ..Limits::default()
        };
        // 100 KB of scope name per record: 150 records fit in 16 MiB, 200 do not.
        let out = convert(&request(150), &[], &limits).expect("fits");
        assert_eq!(out.batch.len(), 151);
        let err = convert(&request(200), &[], &limits).expect_err("too much text");
        assert!(matches!(err, strata_storage::Error::TooLarge(_)), "{err}");
    }
}
