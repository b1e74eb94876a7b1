//! OTLP logs -> storage log records, with stream labels from configured resource attributes.

use crate::attributes::{any_kind, any_to_text, attribute_text, attributes_json};
use crate::limits::{Limits, note_rejection};
use crate::otlp::common::{check_id, hex_id, nanos, origin, origin_text_bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use strata_storage::model::{Labels, LogRecord, label_name, severity_level};

/// The stream label holding the severity.
pub const LEVEL_LABEL: &str = "level";

/// What became of a logs request.
#[derive(Debug, Default)]
pub struct LogsConversion {
    pub records: Vec<LogRecord>,
    pub rejected: u64,
    pub errors: Vec<String>,
}

/// Converts a request; items that break a limit are rejected one by one. A request whose
/// records would make more text than [`Limits::max_text_bytes`] (each copies its
/// resource, scope and stream labels) is refused whole
/// ([`strata_storage::Error::TooLarge`]), before more records are built.
pub fn convert(
    req: &ExportLogsServiceRequest,
    stream_attributes: &[String],
    limits: &Limits,
) -> Result<LogsConversion, strata_storage::Error> {
    let mut out = LogsConversion::default();
    let (mut text_bytes, max_text) = (0usize, limits.max_text_bytes());
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
            // What each record of the block copies: its origin and stream labels.
            let copied = origin_text_bytes(&origin)
                + stream_pairs
                    .iter()
                    .map(|(n, v)| n.len() + v.len())
                    .sum::<usize>();
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
                let attributes = attributes_json(&lr.attributes);
                text_bytes = text_bytes.saturating_add(
                    copied
                        + body.len()
                        + attributes.len()
                        + lr.severity_text.len()
                        + 2 * (lr.trace_id.len() + lr.span_id.len())
                        + lr.event_name.len(),
                );
                if text_bytes > max_text {
                    return Err(strata_storage::Error::TooLarge(format!(
                        "the log records of this request make more than {max_text} bytes of \
                         text (bodies, attributes, and the resource, scope and stream labels \
                         copied onto each record); send fewer records per request or smaller \
                         resource attributes"
                    )));
                }
                let mut pairs = stream_pairs.clone();
                pairs.push((
                    LEVEL_LABEL.into(),
                    severity_level(lr.severity_number, &lr.severity_text),
                ));
                let observed = nanos(lr.observed_time_unix_nano);
                let ts = if lr.time_unix_nano == 0 {
                    observed
                } else {
                    nanos(lr.time_unix_nano)
                };
                out.records.push(LogRecord {
                    timestamp_ns: ts,
                    observed_timestamp_ns: observed,
                    severity_number: lr.severity_number,
                    severity_text: lr.severity_text.clone(),
                    body,
                    body_type: any_kind(lr.body.as_ref()).to_owned(),
                    attributes,
                    dropped_attributes_count: lr.dropped_attributes_count,
                    flags: lr.flags,
                    trace_id: hex_id(&lr.trace_id),
                    span_id: hex_id(&lr.span_id),
                    event_name: lr.event_name.clone(),
                    origin: origin.clone(),
                    stream: Labels::from_pairs(pairs),
                });
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
        let text = std::fs::read_to_string(path).expect("example");
        let req: ExportLogsServiceRequest = serde_json::from_str(&text).expect("parse");
        let out = convert(&req, &["service.name".into()], &Limits::default()).expect("fits");
        assert_eq!(out.rejected, 0);
        assert!(!out.records.is_empty());
        let r = &out.records[0];
        assert_eq!(
            r.stream.get("service_name"),
            Some(r.origin.service_name.as_str())
        );
        assert!(r.stream.get(LEVEL_LABEL).is_some());
        assert_eq!(r.trace_id.len(), 32);
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
        assert_eq!((out.records.len(), out.rejected), (1, 5));
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
        assert_eq!(out.records.len(), 150);
        let err = convert(&request(200), &[], &limits).expect_err("too much text");
        assert!(matches!(err, strata_storage::Error::TooLarge(_)), "{err}");
        assert!(
            err.to_string().contains("more than 16777216 bytes of text"),
            "{err}"
        );
    }
}
