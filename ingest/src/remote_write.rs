//! Prometheus remote write 1.0: snappy-compressed `prometheus.WriteRequest` bodies, decoded
//! into the storage model.
//!
//! [`decode`] is CPU work (decompression, protobuf, validation): call it off the async reactor.
//!
//! Choices worth knowing:
//! - the decompressed size is read from the snappy header and checked against the limit
//!   before anything is allocated ([`DecodeError::TooLarge`], which the HTTP layer answers
//!   with 413);
//! - a request is accepted or rejected whole: any malformed series (invalid UTF-8, an empty
//!   or duplicate label name, a missing metric name, an inconsistent histogram) rejects it
//!   with an error naming the series and what was wrong;
//! - labels with an empty value are dropped, as in Prometheus, where empty means absent;
//! - integer native histograms (delta-encoded bucket counts) become absolute float counts;
//! - the model attaches exemplars to samples: an exemplar goes to the series' sample with
//!   the same timestamp, otherwise to its latest sample. Exemplars of a series that carries
//!   no sample at all have nowhere to go and are dropped.

use std::collections::HashSet;

use prost::Message;
use strata_proto::prometheus as pb;
use strata_storage::model::{
    BucketSpan, Exemplar, Label, Labels, MetricMetadata, MetricType, MetricsWrite, NativeHistogram,
    Sample, SampleValue,
};

/// The schema of native histograms with custom bucket bounds.
const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
const MIN_EXPONENTIAL_SCHEMA: i32 = -4;
const MAX_EXPONENTIAL_SCHEMA: i32 = 8;

/// Why a remote-write body was rejected. Every variant is the client's fault (4xx).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The snappy header announces more decompressed bytes than allowed: answer 413.
    #[error(
        "request body decompresses to {decoded_len} bytes, more than the limit of {limit} bytes"
    )]
    TooLarge { decoded_len: usize, limit: usize },
    #[error("invalid snappy (block format) body: {0}")]
    Snappy(#[source] snap::Error),
    #[error("invalid protobuf WriteRequest: {0}")]
    Protobuf(#[source] prost::DecodeError),
    #[error("series {series}: the {part} of label {label} is not valid UTF-8")]
    InvalidUtf8 {
        series: usize,
        label: usize,
        part: &'static str,
    },
    #[error("series {series}: label {label} has an empty name")]
    EmptyLabelName { series: usize, label: usize },
    #[error("series {series}: duplicate label name {name:?}")]
    DuplicateLabelName { series: usize, name: String },
    #[error("series {series} {labels}: missing or empty metric name (label __name__)")]
    MissingMetricName { series: usize, labels: String },
    #[error("series {series} {labels}: exemplar {exemplar}: {reason}")]
    InvalidExemplar {
        series: usize,
        labels: String,
        exemplar: usize,
        reason: String,
    },
    #[error("series {series} {labels}: histogram {histogram}: {reason}")]
    InvalidHistogram {
        series: usize,
        labels: String,
        histogram: usize,
        reason: String,
    },
}

impl DecodeError {
    /// True when the body is over the decompressed-size limit (HTTP 413), false for every
    /// other (400) error.
    pub fn is_too_large(&self) -> bool {
        matches!(self, DecodeError::TooLarge { .. })
    }
}

/// Decodes a remote write 1.0 body (snappy block format around a protobuf
/// `prometheus.WriteRequest`) into the storage model.
///
/// `max_decoded_bytes` bounds the decompressed size; it is checked against the length the
/// snappy header announces before any buffer is allocated.
pub fn decode(body: &[u8], max_decoded_bytes: usize) -> Result<MetricsWrite, DecodeError> {
    let decoded_len = snap::raw::decompress_len(body).map_err(DecodeError::Snappy)?;
    if decoded_len > max_decoded_bytes {
        return Err(DecodeError::TooLarge {
            decoded_len,
            limit: max_decoded_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(DecodeError::Snappy)?;
    let req = pb::WriteRequest::decode(raw.as_slice()).map_err(DecodeError::Protobuf)?;
    drop(raw);
    convert(req)
}

/// Converts a decoded `WriteRequest` into the storage model, validating every series.
pub fn convert(req: pb::WriteRequest) -> Result<MetricsWrite, DecodeError> {
    let mut out = MetricsWrite {
        samples: Vec::with_capacity(req.timeseries.len()),
        metadata: Vec::with_capacity(req.metadata.len()),
    };
    for (series_idx, ts) in req.timeseries.into_iter().enumerate() {
        convert_series(series_idx, ts, &mut out.samples)?;
    }
    out.metadata = req
        .metadata
        .into_iter()
        .filter(|m| !m.metric_family_name.is_empty())
        .map(|m| MetricMetadata {
            metric_type: metric_type(m.r#type),
            metric_family_name: m.metric_family_name,
            unit: m.unit,
            help: m.help,
        })
        .collect();
    Ok(out)
}

fn metric_type(t: i32) -> MetricType {
    use pb::metric_metadata::MetricType as P;
    match P::try_from(t) {
        Ok(P::Counter) => MetricType::Counter,
        Ok(P::Gauge) => MetricType::Gauge,
        Ok(P::Histogram) => MetricType::Histogram,
        Ok(P::Gaugehistogram) => MetricType::GaugeHistogram,
        Ok(P::Summary) => MetricType::Summary,
        Ok(P::Info) => MetricType::Info,
        Ok(P::Stateset) => MetricType::StateSet,
        Ok(P::Unknown) | Err(_) => MetricType::Unknown,
    }
}

fn convert_series(
    series: usize,
    ts: pb::TimeSeries,
    out: &mut Vec<Sample>,
) -> Result<(), DecodeError> {
    let labels = series_labels(series, ts.labels)?;
    if labels.metric_name().is_empty() {
        return Err(DecodeError::MissingMetricName {
            series,
            labels: labels.to_string(),
        });
    }

    let first = out.len();
    // Histograms first (they can fail), then samples; rows are sorted again at flush.
    let mut histograms = Vec::with_capacity(ts.histograms.len());
    for (idx, h) in ts.histograms.iter().enumerate() {
        let nh = convert_histogram(h).map_err(|reason| DecodeError::InvalidHistogram {
            series,
            labels: labels.to_string(),
            histogram: idx,
            reason,
        })?;
        histograms.push((h.timestamp, nh));
    }
    // Each sample carries its series' labels; the last one takes them without a copy
    // (remote write usually sends one sample per series).
    let values = ts
        .samples
        .iter()
        .map(|s| (s.timestamp, SampleValue::Float(s.value)))
        .chain(
            histograms
                .into_iter()
                .map(|(t, h)| (t, SampleValue::Histogram(Box::new(h)))),
        );
    let total = ts.samples.len() + ts.histograms.len();
    // Only exemplar errors still name the series once the samples own its labels.
    let error_labels = if ts.exemplars.is_empty() {
        Labels::default()
    } else {
        labels.clone()
    };
    let mut labels = Some(labels);
    for (i, (timestamp_ms, value)) in values.enumerate() {
        let labels = if i + 1 == total {
            labels.take().unwrap_or_default()
        } else {
            labels.clone().unwrap_or_default()
        };
        out.push(Sample {
            labels,
            timestamp_ms,
            value,
            exemplars: Vec::new(),
        });
    }

    let produced = &mut out[first..];
    for (idx, ex) in ts.exemplars.into_iter().enumerate() {
        let ex_labels =
            exemplar_labels(ex.labels).map_err(|reason| DecodeError::InvalidExemplar {
                series,
                labels: error_labels.to_string(),
                exemplar: idx,
                reason,
            })?;
        let exemplar = Exemplar {
            labels: ex_labels,
            value: ex.value,
            timestamp_ms: ex.timestamp,
        };
        let target = produced
            .iter()
            .position(|s| s.timestamp_ms == ex.timestamp)
            .or_else(|| {
                produced
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, s)| s.timestamp_ms)
                    .map(|(i, _)| i)
            });
        if let Some(i) = target {
            produced[i].exemplars.push(exemplar);
        }
    }
    Ok(())
}

fn series_labels(series: usize, labels: Vec<pb::Label>) -> Result<Labels, DecodeError> {
    let mut pairs = Vec::with_capacity(labels.len());
    for (label, l) in labels.into_iter().enumerate() {
        let name = String::from_utf8(l.name).map_err(|_| DecodeError::InvalidUtf8 {
            series,
            label,
            part: "name",
        })?;
        let value = String::from_utf8(l.value).map_err(|_| DecodeError::InvalidUtf8 {
            series,
            label,
            part: "value",
        })?;
        if name.is_empty() {
            return Err(DecodeError::EmptyLabelName { series, label });
        }
        pairs.push(Label { name, value });
    }
    Labels::from_unique(pairs).map_err(|dup| DecodeError::DuplicateLabelName {
        series,
        name: dup.name,
    })
}

fn exemplar_labels(labels: Vec<pb::Label>) -> Result<Labels, String> {
    let mut seen: HashSet<String> = HashSet::with_capacity(labels.len());
    let mut pairs = Vec::with_capacity(labels.len());
    for (i, l) in labels.into_iter().enumerate() {
        let name = String::from_utf8(l.name)
            .map_err(|_| format!("the name of label {i} is not valid UTF-8"))?;
        let value = String::from_utf8(l.value)
            .map_err(|_| format!("the value of label {name:?} is not valid UTF-8"))?;
        if name.is_empty() {
            return Err(format!("label {i} has an empty name"));
        }
        if !seen.insert(name.clone()) {
            return Err(format!("duplicate label name {name:?}"));
        }
        pairs.push((name, value));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Converts a remote-write native histogram (integer or float) to the model's float form.
fn convert_histogram(h: &pb::Histogram) -> Result<NativeHistogram, String> {
    use pb::histogram::{Count, ResetHint, ZeroCount};

    let is_custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    if !is_custom && !(MIN_EXPONENTIAL_SCHEMA..=MAX_EXPONENTIAL_SCHEMA).contains(&h.schema) {
        return Err(format!(
            "unsupported schema {} (expected {MIN_EXPONENTIAL_SCHEMA}..={MAX_EXPONENTIAL_SCHEMA} \
             or {CUSTOM_BUCKETS_SCHEMA})",
            h.schema
        ));
    }
    let is_float = matches!(h.count, Some(Count::CountFloat(_)));
    let count = match h.count {
        Some(Count::CountInt(c)) => c as f64,
        Some(Count::CountFloat(c)) => c,
        None => 0.0,
    };
    let zero_count = match h.zero_count {
        Some(ZeroCount::ZeroCountInt(c)) => c as f64,
        Some(ZeroCount::ZeroCountFloat(c)) => c,
        None => 0.0,
    };
    let counter_reset_hint = match ResetHint::try_from(h.reset_hint) {
        Ok(hint) => hint as u8,
        Err(_) => return Err(format!("unknown reset hint {}", h.reset_hint)),
    };

    let positive_buckets = buckets("positive", is_float, &h.positive_deltas, &h.positive_counts)?;
    let negative_buckets = buckets("negative", is_float, &h.negative_deltas, &h.negative_counts)?;
    let positive_spans = spans("positive", &h.positive_spans, positive_buckets.len())?;
    let negative_spans = spans("negative", &h.negative_spans, negative_buckets.len())?;

    if is_custom {
        if h.custom_values.is_empty() {
            return Err("custom-bucket histogram (schema -53) without custom_values".into());
        }
        if !h.custom_values.windows(2).all(|w| w[0] < w[1]) {
            return Err("custom_values are not strictly increasing".into());
        }
        if !negative_buckets.is_empty() || !negative_spans.is_empty() {
            return Err("custom-bucket histogram with negative buckets".into());
        }
    } else if !h.custom_values.is_empty() {
        return Err(format!(
            "custom_values given for exponential schema {}",
            h.schema
        ));
    }

    Ok(NativeHistogram {
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count,
        count,
        sum: h.sum,
        positive_spans,
        positive_buckets,
        negative_spans,
        negative_buckets,
        counter_reset_hint,
        custom_values: h.custom_values.clone(),
    })
}

/// Absolute float bucket counts from the integer deltas or the float counts.
fn buckets(side: &str, is_float: bool, deltas: &[i64], counts: &[f64]) -> Result<Vec<f64>, String> {
    if is_float {
        if !deltas.is_empty() {
            return Err(format!("float histogram with integer {side} deltas"));
        }
        if let Some(c) = counts.iter().find(|c| **c < 0.0) {
            return Err(format!("negative {side} bucket count {c}"));
        }
        return Ok(counts.to_vec());
    }
    if !counts.is_empty() {
        return Err(format!("integer histogram with float {side} counts"));
    }
    let mut out = Vec::with_capacity(deltas.len());
    let mut current: i64 = 0;
    for (i, d) in deltas.iter().enumerate() {
        current = current
            .checked_add(*d)
            .ok_or_else(|| format!("{side} bucket {i}: count overflows"))?;
        if current < 0 {
            return Err(format!("{side} bucket {i}: negative count {current}"));
        }
        out.push(current as f64);
    }
    Ok(out)
}

fn spans(side: &str, spans: &[pb::BucketSpan], buckets: usize) -> Result<Vec<BucketSpan>, String> {
    let total: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if total != buckets as u64 {
        return Err(format!(
            "{side} spans cover {total} buckets but {buckets} bucket counts are given"
        ));
    }
    Ok(spans
        .iter()
        .map(|s| BucketSpan {
            offset: s.offset,
            length: s.length,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::histogram::{Count, ResetHint, ZeroCount};
    use strata_storage::model::{is_stale_marker, stale_marker};

    fn compress(raw: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(raw)
            .expect("snappy compress")
    }

    fn encode(req: &pb::WriteRequest) -> Vec<u8> {
        compress(&req.encode_to_vec())
    }

    fn series(labels: &[(&str, &str)]) -> pb::TimeSeries {
        pb::TimeSeries {
            labels: labels.iter().map(|(n, v)| pb::Label::new(*n, *v)).collect(),
            samples: vec![],
            exemplars: vec![],
            histograms: vec![],
        }
    }

    fn int_histogram() -> pb::Histogram {
        pb::Histogram {
            count: Some(Count::CountInt(12)),
            sum: 18.4,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: Some(ZeroCount::ZeroCountInt(2)),
            negative_spans: vec![pb::BucketSpan {
                offset: 0,
                length: 2,
            }],
            negative_deltas: vec![1, 0],
            negative_counts: vec![],
            positive_spans: vec![
                pb::BucketSpan {
                    offset: 0,
                    length: 2,
                },
                pb::BucketSpan {
                    offset: 1,
                    length: 2,
                },
            ],
            positive_deltas: vec![1, 1, -1, 0],
            positive_counts: vec![],
            reset_hint: ResetHint::No as i32,
            timestamp: 1_700_000_000_500,
            custom_values: vec![],
        }
    }

    fn full_request() -> pb::WriteRequest {
        let mut a = series(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("empty", ""),
        ]);
        a.samples = vec![
            pb::Sample {
                value: 1.0,
                timestamp: 1_700_000_000_000,
            },
            pb::Sample {
                value: stale_marker(),
                timestamp: 1_700_000_015_000,
            },
        ];
        a.exemplars = vec![
            pb::Exemplar {
                labels: vec![pb::Label::new("trace_id", "abc")],
                value: 0.5,
                timestamp: 1_700_000_000_000,
            },
            pb::Exemplar {
                labels: vec![pb::Label::new("trace_id", "def")],
                value: 0.7,
                timestamp: 1_700_000_009_000,
            },
        ];
        let mut h = series(&[("__name__", "latency_seconds"), ("job", "api")]);
        h.histograms = vec![
            int_histogram(),
            pb::Histogram {
                count: Some(Count::CountFloat(3.5)),
                sum: 1.0,
                schema: CUSTOM_BUCKETS_SCHEMA,
                zero_threshold: 0.0,
                zero_count: None,
                negative_spans: vec![],
                negative_deltas: vec![],
                negative_counts: vec![],
                positive_spans: vec![pb::BucketSpan {
                    offset: 0,
                    length: 2,
                }],
                positive_deltas: vec![],
                positive_counts: vec![1.5, 2.0],
                reset_hint: ResetHint::Gauge as i32,
                timestamp: 1_700_000_001_000,
                custom_values: vec![0.1, 1.0],
            },
        ];
        pb::WriteRequest {
            timeseries: vec![a, h],
            metadata: vec![pb::MetricMetadata {
                r#type: pb::metric_metadata::MetricType::Counter as i32,
                metric_family_name: "http_requests_total".into(),
                help: "Requests.".into(),
                unit: "".into(),
            }],
        }
    }

    #[test]
    fn round_trip_floats_histograms_exemplars_metadata() {
        let body = encode(&full_request());
        let w = decode(&body, 1 << 20).expect("decode");
        assert_eq!(w.samples.len(), 4);

        let a = &w.samples[0];
        assert_eq!(
            a.labels,
            Labels::from_pairs([("__name__", "http_requests_total"), ("job", "api")])
        );
        assert_eq!(a.timestamp_ms, 1_700_000_000_000);
        assert_eq!(a.value, SampleValue::Float(1.0));
        assert_eq!(a.exemplars.len(), 1, "exemplar with the same timestamp");
        assert_eq!(a.exemplars[0].labels.get("trace_id"), Some("abc"));
        assert_eq!(a.exemplars[0].value, 0.5);

        let stale = &w.samples[1];
        match stale.value {
            SampleValue::Float(v) => assert!(is_stale_marker(v)),
            ref other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            stale.exemplars.len(),
            1,
            "unmatched exemplar goes to the latest"
        );
        assert_eq!(stale.exemplars[0].timestamp_ms, 1_700_000_009_000);

        let SampleValue::Histogram(h) = &w.samples[2].value else {
            panic!("expected a histogram");
        };
        assert_eq!(w.samples[2].timestamp_ms, 1_700_000_000_500);
        assert_eq!(
            **h,
            NativeHistogram {
                schema: 1,
                zero_threshold: 0.001,
                zero_count: 2.0,
                count: 12.0,
                sum: 18.4,
                positive_spans: vec![
                    BucketSpan {
                        offset: 0,
                        length: 2
                    },
                    BucketSpan {
                        offset: 1,
                        length: 2
                    },
                ],
                positive_buckets: vec![1.0, 2.0, 1.0, 1.0],
                negative_spans: vec![BucketSpan {
                    offset: 0,
                    length: 2
                }],
                negative_buckets: vec![1.0, 1.0],
                counter_reset_hint: 2,
                custom_values: vec![],
            }
        );
        let SampleValue::Histogram(f) = &w.samples[3].value else {
            panic!("expected a histogram");
        };
        assert_eq!(f.schema, CUSTOM_BUCKETS_SCHEMA);
        assert_eq!(f.count, 3.5);
        assert_eq!(f.positive_buckets, vec![1.5, 2.0]);
        assert_eq!(f.custom_values, vec![0.1, 1.0]);
        assert_eq!(f.counter_reset_hint, 3);

        assert_eq!(
            w.metadata,
            vec![MetricMetadata {
                metric_family_name: "http_requests_total".into(),
                metric_type: MetricType::Counter,
                unit: String::new(),
                help: "Requests.".into(),
            }]
        );
    }

    #[test]
    fn empty_request_is_empty_write() {
        let body = encode(&pb::WriteRequest::default());
        assert_eq!(decode(&body, 1024).ok(), Some(MetricsWrite::default()));
    }

    #[test]
    fn truncated_body_is_a_snappy_error() {
        let body = encode(&full_request());
        for cut in [1, body.len() / 2, body.len() - 1] {
            let err = decode(&body[..cut], 1 << 20).expect_err("truncated");
            assert!(matches!(err, DecodeError::Snappy(_)), "{cut}: {err}");
            assert!(!err.is_too_large());
        }
        assert!(matches!(decode(&[], 1024), Err(DecodeError::Snappy(_))));
    }

    #[test]
    fn header_over_limit_is_rejected_before_allocating() {
        // A varint length header claiming 4 GiB - 1, followed by nothing.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let err = decode(&body, 10 << 20).expect_err("too large");
        assert!(err.is_too_large());
        assert!(matches!(
            err,
            DecodeError::TooLarge {
                decoded_len: 0xffff_ffff,
                limit: 10_485_760
            }
        ));

        // A real body just over the limit, too.
        let real = encode(&full_request());
        let len = snap::raw::decompress_len(&real).expect("len");
        assert!(decode(&real, len).is_ok());
        assert!(decode(&real, len - 1).expect_err("limit").is_too_large());
    }

    #[test]
    fn not_protobuf_is_a_protobuf_error() {
        let body = compress(&[0x0a, 0x05, 0x01]);
        assert!(matches!(decode(&body, 1024), Err(DecodeError::Protobuf(_))));
    }

    fn decode_series(ts: pb::TimeSeries) -> Result<MetricsWrite, DecodeError> {
        let req = pb::WriteRequest {
            timeseries: vec![series(&[("__name__", "ok")]), ts],
            metadata: vec![],
        };
        decode(&encode(&req), 1 << 20)
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_series_and_label() {
        let mut ts = series(&[("__name__", "x")]);
        ts.labels.push(pb::Label {
            name: b"le".to_vec(),
            value: vec![0xc3, 0x28],
        });
        let err = decode_series(ts).expect_err("utf8");
        assert!(matches!(
            err,
            DecodeError::InvalidUtf8 {
                series: 1,
                label: 1,
                part: "value"
            }
        ));
        assert_eq!(
            err.to_string(),
            "series 1: the value of label 1 is not valid UTF-8"
        );

        let mut ts = series(&[]);
        ts.labels.push(pb::Label {
            name: vec![0xff],
            value: b"v".to_vec(),
        });
        assert!(matches!(
            decode_series(ts),
            Err(DecodeError::InvalidUtf8 { part: "name", .. })
        ));

        let mut ts = series(&[("__name__", "x")]);
        ts.samples.push(pb::Sample {
            value: 1.0,
            timestamp: 1,
        });
        ts.exemplars.push(pb::Exemplar {
            labels: vec![pb::Label {
                name: b"trace_id".to_vec(),
                value: vec![0xff],
            }],
            value: 1.0,
            timestamp: 1,
        });
        let err = decode_series(ts).expect_err("exemplar utf8");
        assert!(matches!(
            err,
            DecodeError::InvalidExemplar { series: 1, .. }
        ));
        assert!(err.to_string().contains("trace_id"), "{err}");
    }

    #[test]
    fn metric_name_must_be_present_and_non_empty() {
        for labels in [vec![("job", "a")], vec![("__name__", ""), ("job", "a")]] {
            let err = decode_series(series(&labels)).expect_err("name");
            assert!(matches!(
                err,
                DecodeError::MissingMetricName { series: 1, .. }
            ));
            assert!(err.to_string().contains("job=\"a\""), "{err}");
        }
    }

    #[test]
    fn empty_and_duplicate_label_names_are_errors() {
        let err = decode_series(series(&[("__name__", "x"), ("", "v")])).expect_err("empty");
        assert!(matches!(
            err,
            DecodeError::EmptyLabelName {
                series: 1,
                label: 1
            }
        ));
        let err = decode_series(series(&[("__name__", "x"), ("a", "1"), ("a", "2")]))
            .expect_err("duplicate");
        assert!(
            matches!(err, DecodeError::DuplicateLabelName { series: 1, ref name } if name == "a")
        );
    }

    #[test]
    fn inconsistent_histograms_are_errors() {
        type Mutation = fn(&mut pb::Histogram);
        let cases: Vec<(Mutation, &str)> = vec![
            (|h| h.positive_deltas.push(1), "spans cover"),
            (|h| h.positive_deltas[0] = -1, "negative count"),
            (|h| h.schema = 9, "unsupported schema"),
            (|h| h.positive_counts = vec![1.0], "float positive counts"),
            (|h| h.reset_hint = 7, "reset hint"),
            (|h| h.custom_values = vec![1.0], "custom_values"),
            (
                |h| h.positive_deltas = vec![i64::MAX, i64::MAX, 0, 0],
                "overflows",
            ),
        ];
        for (mutate, want) in cases {
            let mut h = int_histogram();
            mutate(&mut h);
            let mut ts = series(&[("__name__", "h")]);
            ts.histograms.push(h);
            let err = decode_series(ts).expect_err(want);
            assert!(
                matches!(
                    err,
                    DecodeError::InvalidHistogram {
                        series: 1,
                        histogram: 0,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(
                err.to_string().contains(want),
                "{err} should mention {want}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic pseudo-random bodies, raw and snappy-wrapped.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes, 1 << 16);
            let _ = decode(&compress(&bytes), 1 << 16);
        }
    }
}
