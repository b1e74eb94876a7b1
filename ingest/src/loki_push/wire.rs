//! `logproto.PushRequest` walked on the wire: every label selector, line and metadata pair
//! is borrowed from the decompressed request instead of becoming its own `String` (prost
//! decoding allocated several per entry).
//!
//! Input the walk does not take plainly returns `None`: malformed protobuf, invalid UTF-8,
//! a known field of another wire type than the schema's, a singular field given twice
//! (prost keeps the last string or merges messages), or groups. The caller then decodes
//! with prost, which gives the same streams or the precise error. Unknown fields are
//! skipped, as prost skips them.

use super::{PushEntry, PushStream};
use crate::protowire::{Fields, Wire, bytes, varint};

/// A singular string field: `None` when invalid UTF-8 or already seen.
fn once_str<'a>(slot: &mut Option<&'a str>, w: Wire<'a>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(std::str::from_utf8(bytes(w)?).ok()?);
    Some(())
}

/// The streams of a push request, or `None` when prost should decode it (see the module).
pub(super) fn streams(b: &[u8]) -> Option<Vec<PushStream<'_>>> {
    let mut out = Vec::new();
    let mut f = Fields::new(b);
    while let Some((field, w)) = f.next_field()? {
        if field == 1 {
            out.push(stream(bytes(w)?)?);
        }
    }
    Some(out)
}

fn stream(b: &[u8]) -> Option<PushStream<'_>> {
    let mut labels = None;
    // Entries are about a hundred bytes or more on the wire: this rarely grows.
    let mut entries = Vec::with_capacity(b.len() / 128 + 1);
    let mut f = Fields::new(b);
    while let Some((field, w)) = f.next_field()? {
        match field {
            1 => once_str(&mut labels, w)?,
            2 => entries.push(entry(bytes(w)?)?),
            3 => {
                varint(w)?;
            }
            _ => {}
        }
    }
    Some(PushStream {
        labels: labels.unwrap_or(""),
        entries,
    })
}

fn entry(b: &[u8]) -> Option<PushEntry<'_>> {
    let mut timestamp = None;
    let mut line = None;
    let mut metadata = Vec::new();
    let mut f = Fields::new(b);
    while let Some((field, w)) = f.next_field()? {
        match field {
            1 => {
                if timestamp.is_some() {
                    return None;
                }
                timestamp = Some(time(bytes(w)?)?);
            }
            2 => once_str(&mut line, w)?,
            3 => metadata.push(pair(bytes(w)?)?),
            _ => {}
        }
    }
    Some(PushEntry {
        timestamp,
        line: line.unwrap_or(""),
        metadata,
    })
}

/// `google.protobuf.Timestamp`: a repeated scalar takes the last value, as in prost.
fn time(b: &[u8]) -> Option<(i64, i32)> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut f = Fields::new(b);
    while let Some((field, w)) = f.next_field()? {
        match field {
            1 => seconds = varint(w)? as i64,
            2 => nanos = varint(w)? as i32,
            _ => {}
        }
    }
    Some((seconds, nanos))
}

fn pair(b: &[u8]) -> Option<(&str, &str)> {
    let (mut name, mut value) = (None, None);
    let mut f = Fields::new(b);
    while let Some((field, w)) = f.next_field()? {
        match field {
            1 => once_str(&mut name, w)?,
            2 => once_str(&mut value, w)?,
            _ => {}
        }
    }
    Some((name.unwrap_or(""), value.unwrap_or("")))
}
