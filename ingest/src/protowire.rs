//! A reader of the protobuf wire format over borrowed bytes, for the request decoders that
//! walk a body once instead of building prost structs (`otlp::traces_wire`,
//! `loki_push::wire`). Each returns `None` on anything malformed, so its caller can fall
//! back to prost for the precise error.

/// One protobuf field's value.
#[derive(Clone, Copy)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Walks the fields of one protobuf message.
pub(crate) struct Fields<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Fields { b, pos: 0 }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut out = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return None;
            }
            out |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(out);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// The next field, `Some(None)` at the end, `None` when malformed.
    pub(crate) fn next_field(&mut self) -> Option<Option<(u32, Wire<'a>)>> {
        if self.pos >= self.b.len() {
            return Some(None);
        }
        // Keys above u32::MAX are invalid, as prost has them.
        let key = u32::try_from(self.varint()?).ok()?;
        let field = Some(key >> 3).filter(|f| *f > 0)?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                Wire::Bytes(self.take(n)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().ok()?)),
            _ => return None,
        };
        Some(Some((field, wire)))
    }
}

pub(crate) fn bytes(w: Wire<'_>) -> Option<&[u8]> {
    match w {
        Wire::Bytes(b) => Some(b),
        _ => None,
    }
}

pub(crate) fn text(w: Wire<'_>) -> Option<&str> {
    std::str::from_utf8(bytes(w)?).ok()
}

pub(crate) fn varint(w: Wire<'_>) -> Option<u64> {
    match w {
        Wire::Varint(v) => Some(v),
        _ => None,
    }
}

pub(crate) fn fixed64(w: Wire<'_>) -> Option<u64> {
    match w {
        Wire::Fixed64(v) => Some(v),
        _ => None,
    }
}

pub(crate) fn fixed32(w: Wire<'_>) -> Option<u32> {
    match w {
        Wire::Fixed32(v) => Some(v),
        _ => None,
    }
}
