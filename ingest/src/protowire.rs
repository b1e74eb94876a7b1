//! A reader of the protobuf wire format over borrowed bytes, for the request decoders that
//! walk a body once instead of building prost structs (`otlp::traces_wire`,
//! `loki_push::wire`).
//!
//! It takes what prost takes: unknown fields of any wire type (groups are skipped), nested
//! messages up to prost's recursion limit, and a singular field given more than once, for
//! which the schema's rule applies (the last scalar or string wins; messages merge, which
//! [`Merged`] walks without collecting anything). Anything malformed is a [`WireError`]
//! naming the field it was found in, as prost's errors do, so a walker never needs prost
//! to explain a refusal, and prost never builds a large request.

use std::borrow::Cow;
use std::fmt;

/// prost's limit on nested messages (and groups): a message below 100 levels of nesting
/// is refused.
const RECURSION_LIMIT: u32 = 100;

/// Why bytes are not the protobuf message they should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    description: Cow<'static, str>,
    /// `(message, field)` from the innermost out.
    path: Vec<(&'static str, &'static str)>,
    /// The number and wire type of the field whose value could not be read, until the
    /// walker of its message names it ([`Named::named`]).
    field: Option<(u32, u8)>,
}

impl WireError {
    pub(crate) fn new(description: impl Into<Cow<'static, str>>) -> Self {
        WireError {
            description: description.into(),
            path: Vec::new(),
            field: None,
        }
    }
}

impl fmt::Display for WireError {
    /// prost's form, innermost first: `Span.name: ScopeSpans.spans: ResourceSpans.scope_spans:
    /// invalid string value: data is not UTF-8 encoded`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (message, field) in &self.path {
            write!(f, "{message}.{field}: ")?;
        }
        f.write_str(&self.description)
    }
}

impl std::error::Error for WireError {}

/// Names the field an error was found in, on its way out.
pub(crate) trait At<T> {
    fn at(self, message: &'static str, field: &'static str) -> Result<T, WireError>;
}

impl<T> At<T> for Result<T, WireError> {
    fn at(self, message: &'static str, field: &'static str) -> Result<T, WireError> {
        self.map_err(|mut e| {
            e.path.push((message, field));
            e
        })
    }
}

/// Wire types, as a message's field table ([`Named`]) gives them.
pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const I32: u8 = 5;

const WIRE_TYPE_NAMES: [&str; 6] = [
    "Varint",
    "SixtyFourBit",
    "LengthDelimited",
    "StartGroup",
    "EndGroup",
    "ThirtyTwoBit",
];

fn wire_type_name(wire: u8) -> &'static str {
    WIRE_TYPE_NAMES
        .get(usize::from(wire))
        .copied()
        .unwrap_or("?")
}

/// Names, in an error from [`Fields::next_field`], the field whose value was malformed,
/// given the message's fields `(number, name, wire type)`: prost names known fields (and
/// refuses one of another wire type for that before reading it), not unknown ones.
pub(crate) trait Named<T> {
    fn named(
        self,
        message: &'static str,
        fields: &[(u32, &'static str, u8)],
    ) -> Result<T, WireError>;
}

impl<T> Named<T> for Result<T, WireError> {
    fn named(
        self,
        message: &'static str,
        fields: &[(u32, &'static str, u8)],
    ) -> Result<T, WireError> {
        self.map_err(|mut e| {
            if let Some((n, wire)) = e.field.take()
                && let Some((_, name, expected)) = fields.iter().find(|(f, _, _)| *f == n)
            {
                if wire != *expected {
                    e.description = format!(
                        "invalid wire type: {} (expected {})",
                        wire_type_name(wire),
                        wire_type_name(*expected)
                    )
                    .into();
                }
                e.path.push((message, name));
            }
            e
        })
    }
}

/// One protobuf field's value.
#[derive(Clone, Copy)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    /// A group: only valid where the field is unknown (skipped at the next field).
    StartGroup,
    /// A group's end without its start: only reported if the field is unknown.
    EndGroup,
}

impl Wire<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "Varint",
            Wire::Fixed64(_) => "SixtyFourBit",
            Wire::Bytes(_) => "LengthDelimited",
            Wire::Fixed32(_) => "ThirtyTwoBit",
            Wire::StartGroup => "StartGroup",
            Wire::EndGroup => "EndGroup",
        }
    }

    fn expected(&self, expected: &str) -> WireError {
        WireError::new(format!(
            "invalid wire type: {} (expected {expected})",
            self.type_name()
        ))
    }
}

/// Walks the fields of one protobuf message.
#[derive(Clone)]
pub(crate) struct Fields<'a> {
    b: &'a [u8],
    pos: usize,
    /// Nesting: 0 for the request, 1 for a message in it, ...
    level: u32,
    /// A group field just returned: skipped (or, an end, refused) at the next field, so
    /// that a known field of a group type is refused for its type first, as prost does.
    pending_group: Option<(u32, Wire<'a>)>,
}

/// The fields of the message held by `w`, a field of a message at `level`.
fn nested(level: u32, w: Wire<'_>) -> Result<Fields<'_>, WireError> {
    let b = bytes(w)?;
    if level >= RECURSION_LIMIT {
        return Err(WireError::new("recursion limit reached"));
    }
    Ok(Fields {
        b,
        pos: 0,
        level: level + 1,
        pending_group: None,
    })
}

fn underflow() -> WireError {
    WireError::new("buffer underflow")
}

impl<'a> Fields<'a> {
    /// The fields of a request body.
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Fields {
            b,
            pos: 0,
            level: 0,
            pending_group: None,
        }
    }

    /// The fields of the message held by `w`, a field of this one.
    pub(crate) fn message(&self, w: Wire<'a>) -> Result<Fields<'a>, WireError> {
        nested(self.level, w)
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let (v, n) = strata_storage::varint::decode(self.b.get(self.pos..).unwrap_or_default())
            .ok_or_else(|| WireError::new("invalid varint"))?;
        self.pos += n;
        Ok(v)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(n).map_err(|_| underflow())?;
        let end = self.pos.checked_add(n).ok_or_else(underflow)?;
        let out = self.b.get(self.pos..end).ok_or_else(underflow)?;
        self.pos = end;
        Ok(out)
    }

    /// A field's key: its number and wire type.
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        let key =
            u32::try_from(key).map_err(|_| WireError::new(format!("invalid key value: {key}")))?;
        let wire = (key & 7) as u8;
        if wire > 5 {
            return Err(WireError::new(format!("invalid wire type value: {wire}")));
        }
        if key >> 3 == 0 {
            return Err(WireError::new("invalid tag value: 0"));
        }
        Ok((key >> 3, wire))
    }

    /// Skips the rest of the group `field` (whose start was just read), nested at `level`.
    fn skip_group(&mut self, field: u32, level: u32) -> Result<(), WireError> {
        if level >= RECURSION_LIMIT {
            return Err(WireError::new("recursion limit reached"));
        }
        loop {
            let (n, wire) = self.key()?;
            match wire {
                4 if n == field => return Ok(()),
                4 => return Err(WireError::new("unexpected end group tag")),
                3 => self.skip_group(n, level + 1)?,
                _ => {
                    self.value(wire)?;
                }
            }
        }
    }

    fn value(&mut self, wire: u8) -> Result<Wire<'a>, WireError> {
        Ok(match wire {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| underflow())?,
            )),
            2 => {
                let n = self.varint()?;
                Wire::Bytes(self.take(n)?)
            }
            _ => Wire::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| underflow())?,
            )),
        })
    }

    /// The next field, `None` at the end.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, WireError> {
        match self.pending_group.take() {
            Some((n, Wire::StartGroup)) => self.skip_group(n, self.level)?,
            Some(_) => return Err(WireError::new("unexpected end group tag")),
            None => {}
        }
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let (n, wire) = self.key()?;
        let w = match wire {
            3 | 4 => {
                let w = if wire == 3 {
                    Wire::StartGroup
                } else {
                    Wire::EndGroup
                };
                self.pending_group = Some((n, w));
                w
            }
            _ => self.value(wire).map_err(|mut e| {
                e.field = Some((n, wire));
                e
            })?,
        };
        Ok(Some((n, w)))
    }
}

/// The fields of a singular message field given any number of times in one message, as
/// one message: protobuf merges them, which is walking each occurrence's fields in turn.
/// Nothing is collected, so a field repeated millions of times costs no memory.
#[derive(Clone)]
pub(crate) struct Merged<'a> {
    outer: Fields<'a>,
    field: u32,
    inner: Option<Fields<'a>>,
}

impl<'a> Merged<'a> {
    /// Field `field` of the message `parent` walks (from its start).
    pub(crate) fn new(parent: Fields<'a>, field: u32) -> Self {
        Merged {
            outer: parent,
            field,
            inner: None,
        }
    }

    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, WireError> {
        loop {
            if let Some(inner) = &mut self.inner
                && let Some(f) = inner.next_field()?
            {
                return Ok(Some(f));
            }
            loop {
                match self.outer.next_field()? {
                    None => return Ok(None),
                    Some((n, w)) if n == self.field => {
                        self.inner = Some(self.outer.message(w)?);
                        break;
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// The fields of the message held by `w`, a field of the merged message.
    pub(crate) fn message(&self, w: Wire<'a>) -> Result<Fields<'a>, WireError> {
        nested(self.outer.level + 1, w)
    }
}

/// What walks a message's fields: one message ([`Fields`]) or a merged field ([`Merged`]).
pub(crate) trait Walk<'a>: Clone {
    fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, WireError>;
    /// The fields of the message held by `w`, a field of this one.
    fn message(&self, w: Wire<'a>) -> Result<Fields<'a>, WireError>;
}

impl<'a> Walk<'a> for Fields<'a> {
    fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, WireError> {
        Fields::next_field(self)
    }
    fn message(&self, w: Wire<'a>) -> Result<Fields<'a>, WireError> {
        Fields::message(self, w)
    }
}

impl<'a> Walk<'a> for Merged<'a> {
    fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, WireError> {
        Merged::next_field(self)
    }
    fn message(&self, w: Wire<'a>) -> Result<Fields<'a>, WireError> {
        Merged::message(self, w)
    }
}

pub(crate) fn bytes(w: Wire<'_>) -> Result<&[u8], WireError> {
    match w {
        Wire::Bytes(b) => Ok(b),
        other => Err(other.expected("LengthDelimited")),
    }
}

pub(crate) fn text(w: Wire<'_>) -> Result<&str, WireError> {
    std::str::from_utf8(bytes(w)?)
        .map_err(|_| WireError::new("invalid string value: data is not UTF-8 encoded"))
}

pub(crate) fn varint(w: Wire<'_>) -> Result<u64, WireError> {
    match w {
        Wire::Varint(v) => Ok(v),
        other => Err(other.expected("Varint")),
    }
}

pub(crate) fn fixed64(w: Wire<'_>) -> Result<u64, WireError> {
    match w {
        Wire::Fixed64(v) => Ok(v),
        other => Err(other.expected("SixtyFourBit")),
    }
}

pub(crate) fn fixed32(w: Wire<'_>) -> Result<u32, WireError> {
    match w {
        Wire::Fixed32(v) => Ok(v),
        other => Err(other.expected("ThirtyTwoBit")),
    }
}

/// Protobuf encoders for tests that write unusual requests by hand.
#[cfg(test)]
pub(crate) mod test_encode {
    use prost::encoding::{WireType, encode_key, encode_varint};

    /// A length-delimited field.
    pub(crate) fn field(num: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(num, WireType::LengthDelimited, &mut out);
        encode_varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }

    /// A varint field.
    pub(crate) fn varint_field(num: u32, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(num, WireType::Varint, &mut out);
        encode_varint(v, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_as_prost_writes_them() {
        for v in [0u64, 1, 300, u64::MAX] {
            let mut b = Vec::new();
            prost::encoding::encode_varint(v, &mut b);
            let mut ours = Vec::new();
            strata_storage::varint::encode(&mut ours, v);
            assert_eq!(ours, b);
            let mut f = Fields::new(&b);
            assert_eq!(f.varint().expect("varint"), v);
        }
    }

    #[test]
    fn groups_of_unknown_fields_are_skipped() {
        // Field 5 a group holding a varint field and a nested group, then field 1 = 7.
        let b = [0x2b, 0x08, 0x01, 0x33, 0x34, 0x2c, 0x08, 0x07];
        let mut f = Fields::new(&b);
        assert!(matches!(f.next_field(), Ok(Some((5, Wire::StartGroup)))));
        assert!(matches!(f.next_field(), Ok(Some((1, Wire::Varint(7))))));
        assert!(matches!(f.next_field(), Ok(None)));
        // An end without a start, and a group closed by another field's end.
        let mut f = Fields::new(&[0x2c]);
        assert!(matches!(f.next_field(), Ok(Some((5, Wire::EndGroup)))));
        assert!(f.next_field().is_err());
        let mut f = Fields::new(&[0x2b, 0x34]);
        assert!(matches!(f.next_field(), Ok(Some((5, Wire::StartGroup)))));
        assert!(f.next_field().is_err());
    }

    #[test]
    fn merged_occurrences_walk_as_one_message() {
        // Field 2 given twice: {1: 1} and {1: 2, 3: 3}, around field 4 = 9.
        let b = [
            0x12, 0x02, 0x08, 0x01, 0x20, 0x09, 0x12, 0x04, 0x08, 0x02, 0x18, 0x03,
        ];
        let mut m = Merged::new(Fields::new(&b), 2);
        let mut seen = Vec::new();
        while let Some((n, w)) = m.next_field().expect("well-formed") {
            seen.push((n, varint(w).expect("varint")));
        }
        assert_eq!(seen, vec![(1, 1), (1, 2), (3, 3)]);
    }

    #[test]
    fn errors_name_the_field_like_prost() {
        let e: Result<(), WireError> = Err(WireError::new("invalid varint"));
        let e = e
            .at("Span", "name")
            .at("ScopeSpans", "spans")
            .expect_err("an error");
        assert_eq!(e.to_string(), "Span.name: ScopeSpans.spans: invalid varint");
    }
}
