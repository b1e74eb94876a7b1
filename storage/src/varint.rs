//! Unsigned LEB128 varints, as protobuf writes them: the one reader and writer of them for
//! storage's own encodings (a metrics file's series directory) and for the ingest crate's
//! protobuf wire walks.

/// Appends `v` as a varint.
pub fn encode(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The varint at the start of `b`: its value and length in bytes; `None` when it is
/// truncated or overflows 64 bits (more than ten bytes, or a tenth above 1), as prost
/// refuses them.
pub fn decode(b: &[u8]) -> Option<(u64, usize)> {
    let mut out = 0u64;
    for (i, &byte) in b.iter().take(10).enumerate() {
        if i == 9 && byte > 1 {
            return None;
        }
        out |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((out, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_a_varint() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            encode(&mut b, v);
            assert_eq!(decode(&b), Some((v, b.len())), "{v}");
            b.push(0x55);
            assert_eq!(decode(&b), Some((v, b.len() - 1)), "{v} then more");
        }
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x80]), None);
        assert_eq!(decode(&[0xff; 9]), None);
        assert_eq!(decode(&[0xff; 11]), None);
        let mut b = vec![0xff; 9];
        b.push(0x02);
        assert_eq!(decode(&b), None, "past 64 bits");
    }
}
