//! `logproto.PushRequest` walked on the wire: every label selector, line and metadata pair
//! is borrowed from the decompressed request, and nothing is collected per stream or entry
//! (prost decoding allocated several strings per entry, and a list of them).
//!
//! The walk takes what prost takes, with protobuf's rules: a singular string given more
//! than once keeps the last (`labels`, `line`, a pair's `name` and `value`), a repeated
//! timestamp merges (each later field overrides), unknown fields are skipped. Anything
//! malformed is a [`WireError`] naming the field, as prost's error would. The push walks a
//! request once; past a refusal it walks the rest without building anything, so that a
//! malformed request is refused as malformed.

use crate::protowire::{At, Fields, LEN, Named, VARINT, WireError, text, varint};

// Field names of the messages walked, for errors.
const REQUEST: &[(u32, &str, u8)] = &[(1, "streams", LEN)];
const STREAM: &[(u32, &str, u8)] = &[(1, "labels", LEN), (2, "entries", LEN), (3, "hash", VARINT)];
const ENTRY: &[(u32, &str, u8)] = &[
    (1, "timestamp", LEN),
    (2, "line", LEN),
    (3, "structured_metadata", LEN),
];
const TIMESTAMP: &[(u32, &str, u8)] = &[(1, "seconds", VARINT), (2, "nanos", VARINT)];
const PAIR: &[(u32, &str, u8)] = &[(1, "name", LEN), (2, "value", LEN)];

/// The streams of a request, one at a time.
pub(super) struct Streams<'a> {
    f: Fields<'a>,
}

impl<'a> Streams<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Streams { f: Fields::new(b) }
    }

    pub(super) fn next(&mut self) -> Result<Option<Stream<'a>>, WireError> {
        while let Some((n, w)) = self.f.next_field().named("PushRequest", REQUEST)? {
            if n == 1 {
                return self
                    .f
                    .message(w)
                    .and_then(stream)
                    .at("PushRequest", "streams")
                    .map(Some);
            }
        }
        Ok(None)
    }
}

/// One stream: its selector text (`{app="api"}`) and its entries, walked on demand.
pub(super) struct Stream<'a> {
    pub labels: &'a str,
    fields: Fields<'a>,
}

fn stream(f: Fields<'_>) -> Result<Stream<'_>, WireError> {
    let mut labels = "";
    let mut g = f.clone();
    while let Some((n, w)) = g.next_field().named("StreamAdapter", STREAM)? {
        match n {
            1 => labels = text(w).at("StreamAdapter", "labels")?,
            3 => {
                varint(w).at("StreamAdapter", "hash")?;
            }
            _ => {}
        }
    }
    Ok(Stream { labels, fields: f })
}

impl<'a> Stream<'a> {
    pub(super) fn entries(&self) -> Entries<'a> {
        Entries {
            f: self.fields.clone(),
        }
    }
}

/// The entries of a stream, one at a time.
pub(super) struct Entries<'a> {
    f: Fields<'a>,
}

/// One entry. Its metadata pairs go into a list the caller passes, at most as many as
/// it asks for: all are checked and counted, so an entry of millions of pairs costs no
/// memory before it is refused for them.
#[derive(Debug, PartialEq)]
pub(super) struct Entry<'a> {
    /// `google.protobuf.Timestamp` (seconds, nanos) when present.
    pub timestamp: Option<(i64, i32)>,
    pub line: &'a str,
    pub metadata_count: usize,
}

impl<'a> Entries<'a> {
    /// The next entry; its first `keep` metadata pairs replace `metadata`'s contents.
    pub(super) fn next(
        &mut self,
        metadata: &mut Vec<(&'a str, &'a str)>,
        keep: usize,
    ) -> Result<Option<Entry<'a>>, WireError> {
        let mut next = || -> Result<Option<Entry<'a>>, WireError> {
            while let Some((n, w)) = self.f.next_field().named("StreamAdapter", STREAM)? {
                if n == 2 {
                    return self
                        .f
                        .message(w)
                        .and_then(|e| entry(e, metadata, keep))
                        .at("StreamAdapter", "entries")
                        .map(Some);
                }
            }
            Ok(None)
        };
        next().at("PushRequest", "streams")
    }
}

fn entry<'a>(
    mut g: Fields<'a>,
    metadata: &mut Vec<(&'a str, &'a str)>,
    keep: usize,
) -> Result<Entry<'a>, WireError> {
    metadata.clear();
    let mut out = Entry {
        timestamp: None,
        line: "",
        metadata_count: 0,
    };
    while let Some((n, w)) = g.next_field().named("EntryAdapter", ENTRY)? {
        match n {
            1 => {
                // Each occurrence merges into the one before, as protobuf merges messages.
                let (mut seconds, mut nanos) = out.timestamp.unwrap_or((0, 0));
                let mut ts = g.message(w).at("EntryAdapter", "timestamp")?;
                while let Some((n, w)) = ts
                    .next_field()
                    .named("Timestamp", TIMESTAMP)
                    .at("EntryAdapter", "timestamp")?
                {
                    match n {
                        1 => {
                            seconds = varint(w)
                                .at("Timestamp", "seconds")
                                .at("EntryAdapter", "timestamp")?
                                as i64
                        }
                        2 => {
                            nanos = varint(w)
                                .at("Timestamp", "nanos")
                                .at("EntryAdapter", "timestamp")?
                                as i32
                        }
                        _ => {}
                    }
                }
                out.timestamp = Some((seconds, nanos));
            }
            2 => out.line = text(w).at("EntryAdapter", "line")?,
            3 => {
                let p = g
                    .message(w)
                    .and_then(pair)
                    .at("EntryAdapter", "structured_metadata")?;
                out.metadata_count += 1;
                if metadata.len() < keep {
                    metadata.push(p);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn pair(mut f: Fields<'_>) -> Result<(&str, &str), WireError> {
    let (mut name, mut value) = ("", "");
    while let Some((n, w)) = f.next_field().named("LabelPairAdapter", PAIR)? {
        match n {
            1 => name = text(w).at("LabelPairAdapter", "name")?,
            2 => value = text(w).at("LabelPairAdapter", "value")?,
            _ => {}
        }
    }
    Ok((name, value))
}
