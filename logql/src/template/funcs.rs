//! Template helpers: Go time layouts (UTC), base64 and URL encoding.

use super::civil_from_days;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Layout elements, longest first where one is a prefix of another.
const LAYOUT: &[&str] = &[
    "January",
    "Jan",
    "Monday",
    "Mon",
    "MST",
    "2006",
    "_2006",
    "002",
    "__2",
    "01",
    "02",
    "_2",
    "03",
    "04",
    "05",
    "06",
    "15",
    "1",
    "2",
    "3",
    "4",
    "5",
    "PM",
    "pm",
    "Z07:00:00",
    "Z070000",
    "Z07:00",
    "Z0700",
    "Z07",
    "-07:00:00",
    "-070000",
    "-07:00",
    "-0700",
    "-07",
];

/// Formats `ns` (UTC) with a Go reference-time layout (`2006-01-02T15:04:05Z07:00`).
pub(crate) fn go_format(layout: &str, ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    // 1970-01-01 was a Thursday.
    let wd = (days + 4).rem_euclid(7) as usize;
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    let mut out = String::with_capacity(layout.len() + 8);
    let mut rest = layout;
    while !rest.is_empty() {
        if let Some(tok) = LAYOUT.iter().find(|t| rest.starts_with(**t)) {
            use std::fmt::Write;
            let _ = match *tok {
                "January" => write!(out, "{}", MONTHS[mo as usize - 1]),
                "Jan" => write!(out, "{}", &MONTHS[mo as usize - 1][..3]),
                "Monday" => write!(out, "{}", DAYS[wd]),
                "Mon" => write!(out, "{}", &DAYS[wd][..3]),
                "MST" => write!(out, "UTC"),
                "2006" => write!(out, "{y:04}"),
                "_2006" => write!(out, "_{y:04}"),
                "002" => write!(out, "{yday:03}"),
                "__2" => write!(out, "{yday:>3}"),
                "01" => write!(out, "{mo:02}"),
                "02" => write!(out, "{d:02}"),
                "_2" => write!(out, "{d:>2}"),
                "03" => write!(out, "{h12:02}"),
                "04" => write!(out, "{mi:02}"),
                "05" => write!(out, "{s:02}"),
                "06" => write!(out, "{:02}", y.rem_euclid(100)),
                "15" => write!(out, "{h:02}"),
                "1" => write!(out, "{mo}"),
                "2" => write!(out, "{d}"),
                "3" => write!(out, "{h12}"),
                "4" => write!(out, "{mi}"),
                "5" => write!(out, "{s}"),
                "PM" => write!(out, "{}", if h >= 12 { "PM" } else { "AM" }),
                "pm" => write!(out, "{}", if h >= 12 { "pm" } else { "am" }),
                "Z07:00:00" | "Z070000" | "Z07:00" | "Z0700" | "Z07" => write!(out, "Z"),
                "-07:00:00" => write!(out, "+00:00:00"),
                "-070000" => write!(out, "+000000"),
                "-07:00" => write!(out, "+00:00"),
                "-0700" => write!(out, "+0000"),
                _ => write!(out, "+00"),
            };
            rest = &rest[tok.len()..];
            continue;
        }
        // Fractional seconds: .000 (fixed) or .999 (trailing zeros trimmed).
        let b = rest.as_bytes();
        if (b[0] == b'.' || b[0] == b',') && b.len() > 1 && (b[1] == b'0' || b[1] == b'9') {
            let digit = b[1];
            let n = b[1..].iter().take_while(|c| **c == digit).count();
            let next_is_digit = b.get(1 + n).is_some_and(u8::is_ascii_digit);
            if !next_is_digit {
                let digits = format!("{frac:09}");
                let mut part = digits[..n.min(9)].to_string();
                if digit == b'9' {
                    part = part.trim_end_matches('0').to_string();
                    if !part.is_empty() {
                        out.push(b[0] as char);
                        out.push_str(&part);
                    }
                } else {
                    out.push(b[0] as char);
                    out.push_str(&part);
                }
                rest = &rest[1 + n..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Loki's `unixToTime`: an epoch in seconds, milliseconds, microseconds or
/// nanoseconds, told apart by the number of digits.
pub(crate) fn unix_to_time(s: &str) -> Result<i64, String> {
    let v: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("unixToTime: invalid epoch {s:?}"))?;
    let digits = s.trim().trim_start_matches('-').len();
    Ok(match digits {
        0..=10 => v.saturating_mul(1_000_000_000),
        11..=13 => v.saturating_mul(1_000_000),
        14..=16 => v.saturating_mul(1_000),
        _ => v,
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn b64enc(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(B64[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn b64dec(s: &str) -> String {
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let Some(v) = B64.iter().position(|x| *x == c) else {
            // sprig returns the error text as the value.
            return "illegal base64 data".into();
        };
        bits = (bits << 6) | v as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `url.QueryEscape`.
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape` (invalid escapes give an empty string).
pub(crate) fn urldecode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => return String::new(),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
