//! `ip("...")` matching for line and label filters: a single address, a
//! CIDR block (`192.168.0.0/16`) or a range (`10.0.0.1-10.0.0.9`), IPv4 or
//! IPv6.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPattern {
    text: String,
    /// Inclusive bounds, both of the same family (`v6` tells which).
    lo: u128,
    hi: u128,
    v6: bool,
}

fn bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v) => (u128::from(u32::from(v)), false),
        IpAddr::V6(v) => (u128::from(v), true),
    }
}

impl IpPattern {
    pub fn parse(s: &str) -> Result<IpPattern, String> {
        let bad = || format!("ip: invalid address, range or CIDR {s:?}");
        let t = s.trim();
        let (lo, hi, v6) = if let Some((net, len)) = t.split_once('/') {
            let (base, v6) = bits(net.trim().parse::<IpAddr>().map_err(|_| bad())?);
            let width = if v6 { 128 } else { 32 };
            let len: u32 = len.trim().parse().map_err(|_| bad())?;
            if len > width {
                return Err(bad());
            }
            let host = if len == width {
                0
            } else {
                (1u128 << (width - len)) - 1
            };
            (base & !host, base | host, v6)
        } else if let Some((a, b)) = t.split_once('-') {
            let (a, va) = bits(a.trim().parse::<IpAddr>().map_err(|_| bad())?);
            let (b, vb) = bits(b.trim().parse::<IpAddr>().map_err(|_| bad())?);
            if va != vb || a > b {
                return Err(bad());
            }
            (a, b, va)
        } else {
            let (a, v6) = bits(t.parse::<IpAddr>().map_err(|_| bad())?);
            (a, a, v6)
        };
        Ok(IpPattern {
            text: s.to_string(),
            lo,
            hi,
            v6,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v, v6) = bits(ip);
        v6 == self.v6 && self.lo <= v && v <= self.hi
    }

    /// Whether a label value is an address inside the pattern.
    pub fn matches_value(&self, v: &str) -> bool {
        v.trim().parse::<IpAddr>().is_ok_and(|ip| self.contains(ip))
    }

    /// Whether any address-looking token of a line is inside the pattern.
    pub fn matches_line(&self, line: &str) -> bool {
        let is_ip_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
        line.split(|c: char| !is_ip_char(c))
            .filter(|tok| tok.len() >= 2 && (tok.contains('.') || tok.contains(':')))
            .any(|tok| {
                let tok = tok.trim_matches(|c| c == '.' || c == ':');
                let hit = |t: &str| t.parse::<IpAddr>().is_ok_and(|ip| self.contains(ip));
                // `10.1.2.3:443`: an IPv4 address with a port.
                hit(tok) || (tok.contains('.') && tok.split(':').any(hit))
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::IpPattern;

    #[test]
    fn forms() {
        let p = IpPattern::parse("192.168.0.0/16").unwrap();
        assert!(p.matches_value("192.168.4.2") && !p.matches_value("192.169.0.1"));
        let r = IpPattern::parse("10.0.0.1-10.0.0.9").unwrap();
        assert!(r.matches_value("10.0.0.9") && !r.matches_value("10.0.0.10"));
        let s = IpPattern::parse("::1").unwrap();
        assert!(s.matches_value("::1") && !s.matches_value("127.0.0.1"));
        let v6 = IpPattern::parse("2001:db8::/32").unwrap();
        assert!(v6.matches_line("from [2001:db8::7]: ok"));
        assert!(IpPattern::parse("1.2.3.4/33").is_err());
        assert!(IpPattern::parse("10.0.0.9-10.0.0.1").is_err());
        assert!(IpPattern::parse("nope").is_err());
    }

    #[test]
    fn finds_addresses_in_lines() {
        let p = IpPattern::parse("10.0.0.0/8").unwrap();
        assert!(p.matches_line("client=10.1.2.3:443 ok"));
        assert!(p.matches_line("10.0.0.1 - - [x]"));
        assert!(!p.matches_line("client=11.1.2.3 version 10.1"));
    }
}
