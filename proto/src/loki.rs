//! Loki push API (`logproto.PushRequest`), written by hand as `prost` messages.
//!
//! Field numbers and types follow Loki's `pkg/push/push.proto` (package `logproto`), which
//! Promtail, Grafana Alloy and the Loki clients send snappy-compressed to
//! `POST /loki/api/v1/push`. Only what a receiver needs is here.

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: one stream, its labels in Prometheus selector syntax
/// (`{app="api", env="prod"}`), and its entries.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Set by Loki's distributors only; ignored on receive.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`: one log line with its time and structured metadata.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`: one structured-metadata pair.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn round_trips_and_matches_hand_encoded_bytes() {
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: "{a=\"b\"}".into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1,
                        nanos: 2,
                    }),
                    line: "hi".into(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "k".into(),
                        value: "v".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let bytes = req.encode_to_vec();
        // Hand encoding of the same message: field 1 (stream) { 1: labels, 2: entry {
        // 1: ts {1:1, 2:2}, 2: "hi", 3: {1:"k", 2:"v"} } }.
        let entry: Vec<u8> = [
            &[0x0a, 0x04, 0x08, 0x01, 0x10, 0x02][..],
            &[0x12, 0x02, b'h', b'i'],
            &[0x1a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v'],
        ]
        .concat();
        let mut stream = vec![0x0a, 0x07];
        stream.extend_from_slice(b"{a=\"b\"}");
        stream.push(0x12);
        stream.push(entry.len() as u8);
        stream.extend_from_slice(&entry);
        let mut want = vec![0x0a, stream.len() as u8];
        want.extend_from_slice(&stream);
        assert_eq!(bytes, want);
        assert_eq!(PushRequest::decode(bytes.as_slice()).expect("decode"), req);
    }
}
