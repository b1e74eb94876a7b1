//! Invalid UTF-8 in string literals.
//!
//! In PromQL (Go), the escapes `\xNN` and `\NNN` (octal) put raw bytes into
//! a string, so `"a\xc5z"` is a string that is not valid UTF-8, and label
//! names built from it are rejected. `promql-parser` decodes such an escape
//! as the character U+00NN instead. Before parsing, escaped bytes that
//! spell a UTF-8 character are therefore replaced by that character, and
//! each byte that does not form valid UTF-8 with its neighbours is
//! re-spelled as a character of the private-use range U+10FF80..=U+10FFFF
//! ([`raw_byte`] maps it back), so label name checks can reject it and
//! messages can show it the way Prometheus does.

/// First code point of the range standing for raw bytes 0x80..=0xFF.
const RAW_BASE: u32 = 0x10FF00;

/// The raw byte a character stands for, if it is one.
pub(crate) fn raw_byte(c: char) -> Option<u8> {
    let v = u32::from(c);
    if (RAW_BASE + 0x80..=RAW_BASE + 0xFF).contains(&v) {
        u8::try_from(v - RAW_BASE).ok()
    } else {
        None
    }
}

/// Whether `s` is a valid label name: non-empty UTF-8 (Prometheus 3).
pub(crate) fn valid_label_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| raw_byte(c).is_some())
}

/// `s` quoted with raw bytes shown as `\xNN`, like Go's `%q`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match raw_byte(c) {
            Some(b) => out.push_str(&format!("\\x{b:02x}")),
            None => out.extend(c.escape_debug()),
        }
    }
    out.push('"');
    out
}

/// `s` with raw bytes shown as `\xNN` (unquoted).
pub(crate) fn display(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match raw_byte(c) {
            Some(b) => out.push_str(&format!("\\x{b:02x}")),
            None => out.push(c),
        }
    }
    out
}

/// One decoded byte of a literal, with the source range of the raw-byte
/// escape it came from (if it did).
struct Byte {
    b: u8,
    escape: Option<(usize, usize)>,
}

/// Rewrites the quoted literal `lit` (with its quotes) so that its
/// non-ASCII byte escapes mean what they mean in Go: escapes that together
/// spell a UTF-8 character become that character, bytes that do not form
/// valid UTF-8 become `\U0010FFNN` escapes. None if nothing changes.
pub(super) fn respell_raw_bytes(lit: &str) -> Option<String> {
    let s = lit.as_bytes();
    if !lit.contains('\\') {
        return None;
    }
    let mut bytes: Vec<Byte> = Vec::with_capacity(s.len());
    let mut i = 1;
    let end = s.len().saturating_sub(1);
    while i < end {
        if s[i] != b'\\' {
            bytes.push(Byte {
                b: s[i],
                escape: None,
            });
            i += 1;
            continue;
        }
        let Some(&e) = s.get(i + 1) else { break };
        match e {
            b'x' => {
                let v = lit
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())?;
                bytes.push(Byte {
                    b: v,
                    escape: Some((i, i + 4)),
                });
                i += 4;
            }
            b'0'..=b'7' => {
                let v = lit
                    .get(i + 1..i + 4)
                    .and_then(|o| u8::from_str_radix(o, 8).ok())?;
                bytes.push(Byte {
                    b: v,
                    escape: Some((i, i + 4)),
                });
                i += 4;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let c = lit
                    .get(i + 2..i + 2 + n)
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)?;
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    bytes.push(Byte { b, escape: None });
                }
                i += 2 + n;
            }
            _ => {
                // One-character escapes all stand for ASCII.
                bytes.push(Byte {
                    b: b'?',
                    escape: None,
                });
                i += 2;
            }
        }
    }
    let raw: Vec<u8> = bytes.iter().map(|b| b.b).collect();
    // (source range, replacement) for each non-ASCII byte escape.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut pos = 0;
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            let n = c.len_utf8();
            // A multi-byte character spelled with escapes: Go reads the
            // bytes, promql-parser would read one character per escape.
            let first = bytes.get(pos).and_then(|b| b.escape);
            let last = bytes.get(pos + n - 1).and_then(|b| b.escape);
            if n > 1
                && let (Some((from, _)), Some((_, to))) = (first, last)
            {
                edits.push((from, to, c.to_string()));
            }
            pos += n;
        }
        for _ in chunk.invalid() {
            if let Some(Byte {
                b,
                escape: Some((from, to)),
            }) = bytes.get(pos)
            {
                edits.push((*from, *to, format!("\\U{:08x}", RAW_BASE + u32::from(*b))));
            }
            pos += 1;
        }
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(lit.len() + 8 * edits.len());
    let mut copied = 0;
    for (from, to, text) in edits {
        out.push_str(&lit[copied..from]);
        out.push_str(&text);
        copied = to;
    }
    out.push_str(&lit[copied..]);
    Some(out)
}
