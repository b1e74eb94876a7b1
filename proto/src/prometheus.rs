//! Prometheus remote write 1.0 (`prometheus.WriteRequest`), written by hand as `prost`
//! messages.
//!
//! Field numbers and types follow Prometheus's `prompb/remote.proto` and `prompb/types.proto`
//! (package `prometheus`). Only the messages a remote-write receiver needs are here.
//!
//! One deliberate difference from generated code: label names and values are carried as raw
//! bytes ([`Label::name`], [`Label::value`]). The wire format is identical to a proto `string`
//! (both are length-delimited), but decoding never fails on invalid UTF-8; the receiver checks
//! it and can then say exactly which series and label was wrong.

/// `prometheus.WriteRequest` (remote.proto). Field 2 is reserved upstream.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`: one label set with its samples, exemplars and native histograms.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`. Strings on the wire; bytes here so that UTF-8 is checked by the
/// receiver (see the module documentation).
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct Label {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

impl Label {
    /// A label from two strings.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into().into_bytes(),
            value: value.into().into_bytes(),
        }
    }
}

/// `prometheus.Sample`: a float value at a millisecond timestamp.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.BucketSpan`: `offset` buckets skipped (from the previous span, or the
/// starting index for the first span), then `length` consecutive buckets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// `prometheus.Histogram`: a native histogram, either an integer histogram (`count_int`,
/// `zero_count_int`, `*_deltas`) or a float histogram (`count_float`, `zero_count_float`,
/// `*_counts`).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Histogram {
    #[prost(oneof = "histogram::Count", tags = "1, 2")]
    pub count: Option<histogram::Count>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Bucket resolution: -4..=8 for exponential schemas, -53 for custom buckets.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: Option<histogram::ZeroCount>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Integer histograms: each bucket's count as a delta to the previous bucket (the first
    /// relative to zero).
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Float histograms: absolute bucket counts.
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    #[prost(enumeration = "histogram::ResetHint", tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// Upper bounds of the custom buckets (schema -53).
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// Oneofs and enums of [`Histogram`].
pub mod histogram {
    /// Count of observations.
    #[derive(Clone, Copy, PartialEq, ::prost::Oneof)]
    pub enum Count {
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }

    /// Count of observations in the zero bucket.
    #[derive(Clone, Copy, PartialEq, ::prost::Oneof)]
    pub enum ZeroCount {
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }

    /// `prometheus.Histogram.ResetHint`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum ResetHint {
        /// Counter resets have to be detected by comparing with the previous histogram.
        Unknown = 0,
        /// The first histogram after a counter reset.
        Yes = 1,
        /// No counter reset since the previous histogram.
        No = 2,
        /// A gauge histogram: counter resets do not apply.
        Gauge = 3,
    }
}

/// `prometheus.MetricMetadata`. Field 3 is unused upstream.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct MetricMetadata {
    #[prost(enumeration = "metric_metadata::MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Enums of [`MetricMetadata`].
pub mod metric_metadata {
    /// `prometheus.MetricMetadata.MetricType`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        Unknown = 0,
        Counter = 1,
        Gauge = 2,
        Histogram = 3,
        Gaugehistogram = 4,
        Summary = 5,
        Info = 6,
        Stateset = 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Hand-assembled bytes check the field numbers and wire types against types.proto.
    #[test]
    fn wire_layout_matches_prompb() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("a", "b")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 2,
                }],
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![MetricMetadata {
                r#type: metric_metadata::MetricType::Counter as i32,
                metric_family_name: "m".into(),
                help: "h".into(),
                unit: "u".into(),
            }],
        };
        let bytes = req.encode_to_vec();
        let expected: Vec<u8> = [
            // timeseries (1, LEN)
            &[0x0a, 21][..],
            // labels (1, LEN) { name (1) "a", value (2) "b" }
            &[0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b'],
            // samples (2, LEN) { value (1, I64) 1.0, timestamp (2, VARINT) 2 }
            &[0x12, 11, 0x09],
            &1.0f64.to_le_bytes(),
            &[0x10, 2],
            // metadata (3, LEN) { type (1) 1, family (2) "m", help (4) "h", unit (5) "u" }
            &[
                0x1a, 11, 0x08, 1, 0x12, 1, b'm', 0x22, 1, b'h', 0x2a, 1, b'u',
            ],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(WriteRequest::decode(bytes.as_slice()).ok(), Some(req));
    }

    #[test]
    fn histogram_oneofs_and_zigzag() {
        let h = Histogram {
            count: Some(histogram::Count::CountInt(3)),
            sum: 0.0,
            schema: -1,
            zero_threshold: 0.0,
            zero_count: Some(histogram::ZeroCount::ZeroCountFloat(0.5)),
            negative_spans: vec![],
            negative_deltas: vec![],
            negative_counts: vec![],
            positive_spans: vec![BucketSpan {
                offset: -1,
                length: 1,
            }],
            positive_deltas: vec![-1],
            positive_counts: vec![],
            reset_hint: histogram::ResetHint::Gauge as i32,
            timestamp: 0,
            custom_values: vec![],
        };
        let bytes = h.encode_to_vec();
        let expected: Vec<u8> = [
            // count_int (1, VARINT) 3; schema (4, sint32) -1 -> zigzag 1
            &[0x08, 3, 0x20, 1][..],
            // zero_count_float (7, I64)
            &[0x39],
            &0.5f64.to_le_bytes(),
            // positive_spans (11, LEN) { offset (sint32) -1 -> 1, length 1 }
            &[0x5a, 4, 0x08, 1, 0x10, 1],
            // positive_deltas (12, packed sint64) [-1] -> [1]
            &[0x62, 1, 1],
            // reset_hint (14) 3
            &[0x70, 3],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(Histogram::decode(bytes.as_slice()).ok(), Some(h));
    }

    #[test]
    fn invalid_utf8_labels_decode_as_bytes() {
        let bytes = [0x0a, 2, 0xff, 0xfe];
        let l = Label::decode(&bytes[..]).ok();
        assert_eq!(l.map(|l| l.name), Some(vec![0xff, 0xfe]));
    }
}
