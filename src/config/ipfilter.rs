//! The admin port's IP filter, built from the config's `allow:` / `deny:` lines. iComet's rules
//! with its two bugs fixed: a prefix such as `192.168` matches whole dotted octets only, and every
//! entry is examined. Also accepts CIDR (`10.0.0.0/8`, `fe80::/10`). Depends on std only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address range: network bits already masked, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    V4(u32, u8),
    V6(u128, u8),
}

impl Net {
    fn v4(addr: Ipv4Addr, bits: u8) -> Net {
        Net::V4(u32::from(addr) & mask32(bits), bits)
    }

    fn v6(addr: Ipv6Addr, bits: u8) -> Net {
        Net::V6(u128::from(addr) & mask128(bits), bits)
    }

    fn host(ip: IpAddr) -> Net {
        match ip.to_canonical() {
            IpAddr::V4(a) => Net::v4(a, 32),
            IpAddr::V6(a) => Net::v6(a, 128),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Net::V4(net, bits), IpAddr::V4(a)) => u32::from(a) & mask32(bits) == net,
            (Net::V6(net, bits), IpAddr::V6(a)) => u128::from(a) & mask128(bits) == net,
            _ => false,
        }
    }
}

fn mask32(bits: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(bits.min(32)))
        .unwrap_or(0)
}

fn mask128(bits: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(bits.min(128)))
        .unwrap_or(0)
}

/// What one `allow:` / `deny:` value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    All,
    Net(Net),
}

fn parse_rule(entry: &str) -> Result<Rule, String> {
    let entry = entry.trim();
    if entry == "all" || entry == "*" {
        return Ok(Rule::All);
    }
    if let Some((addr, bits)) = entry.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("bad address in `{entry}`"))?;
        let bits: u8 = bits
            .parse()
            .map_err(|_| format!("bad prefix length in `{entry}`"))?;
        return match addr {
            IpAddr::V4(a) if bits <= 32 => Ok(Rule::Net(Net::v4(a, bits))),
            IpAddr::V6(a) if bits <= 128 => Ok(Rule::Net(Net::v6(a, bits))),
            _ => Err(format!("prefix length too long in `{entry}`")),
        };
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(Rule::Net(Net::host(ip)));
    }
    parse_dotted_prefix(entry)
        .map(Rule::Net)
        .ok_or_else(|| format!("`{entry}` is not all, *, an address, a dotted prefix or a CIDR"))
}

/// `192.168` or `10.` → the network of those leading octets.
fn parse_dotted_prefix(entry: &str) -> Option<Net> {
    let body = entry.strip_suffix('.').unwrap_or(entry);
    let mut octets = [0u8; 4];
    let mut count = 0usize;
    for part in body.split('.') {
        let valid = !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit());
        let slot = octets.get_mut(count)?;
        *slot = if valid {
            part.parse().ok()?
        } else {
            return None;
        };
        count += 1;
    }
    // Four octets would have parsed as an address; fewer is a prefix.
    if count >= 4 {
        return None;
    }
    let bits = u8::try_from(count * 8).ok()?;
    Some(Net::v4(Ipv4Addr::from(octets), bits))
}

/// Decides whether a client address may use the admin port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpFilter {
    allow_all: bool,
    deny_all: bool,
    allow: Vec<Net>,
    deny: Vec<Net>,
    /// Whether any allow/deny line was given at all (none → everything passes).
    configured: bool,
}

impl IpFilter {
    /// Builds the filter from the `allow:` and `deny:` values. Values that
    /// [`IpFilter::check_entry`] rejects match nothing (the config loader refuses them earlier).
    pub fn new(allow: &[String], deny: &[String]) -> IpFilter {
        let mut filter = IpFilter {
            configured: !allow.is_empty() || !deny.is_empty(),
            ..IpFilter::default()
        };
        for rule in allow.iter().filter_map(|e| parse_rule(e).ok()) {
            match rule {
                Rule::All => filter.allow_all = true,
                Rule::Net(net) => filter.allow.push(net),
            }
        }
        for rule in deny.iter().filter_map(|e| parse_rule(e).ok()) {
            match rule {
                Rule::All => filter.deny_all = true,
                Rule::Net(net) => filter.deny.push(net),
            }
        }
        filter
    }

    /// Checks one allow/deny value; the error says what is wrong with it.
    pub fn check_entry(entry: &str) -> Result<(), String> {
        parse_rule(entry).map(|_| ())
    }

    /// Whether `ip` may pass. Order: an allow entry matches → pass; a deny entry matches →
    /// reject; deny all → reject; allow all → pass; no lists at all → pass; otherwise reject.
    /// IPv4-mapped IPv6 addresses are compared as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.allow.iter().any(|n| n.contains(ip)) {
            return true;
        }
        if self.deny.iter().any(|n| n.contains(ip)) || self.deny_all {
            return false;
        }
        self.allow_all || !self.configured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allow: &[&str], deny: &[&str]) -> IpFilter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        IpFilter::new(&own(allow), &own(deny))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_lists_allow_everything() {
        let f = IpFilter::default();
        assert!(f.allows(ip("1.2.3.4")));
        assert!(f.allows(ip("::1")));
        assert_eq!(filter(&[], &[]), f);
    }

    #[test]
    fn shipped_sample_rules() {
        let f = filter(&["127.0.0.1", "192.168"], &["all"]);
        assert!(f.allows(ip("127.0.0.1")));
        assert!(f.allows(ip("192.168.1.2")));
        assert!(f.allows(ip("192.168.255.255")));
        assert!(!f.allows(ip("127.0.0.2")));
        assert!(!f.allows(ip("10.0.0.1")));
        assert!(!f.allows(ip("::1")));
    }

    #[test]
    fn prefix_matches_only_at_dot_boundary() {
        let f = filter(&["192.168"], &["all"]);
        assert!(!f.allows(ip("192.1.68.1")));
        // 192.1680.0.1 is not an address; the nearest real case: 192.16.80.1.
        assert!(!f.allows(ip("192.16.80.1")));
        let f = filter(&["127.0.1"], &["*"]);
        assert!(f.allows(ip("127.0.1.9")));
        assert!(!f.allows(ip("127.0.10.1")));
        assert!(!f.allows(ip("127.0.11.1")));
        let f = filter(&["10."], &["all"]);
        assert!(f.allows(ip("10.200.0.1")));
        assert!(!f.allows(ip("100.0.0.1")));
    }

    #[test]
    fn every_entry_is_examined() {
        let f = filter(&["127.0.0.1", "127.0.0.10"], &["all"]);
        assert!(f.allows(ip("127.0.0.1")));
        assert!(f.allows(ip("127.0.0.10")));
        assert!(!f.allows(ip("127.0.0.100")));
        let f = filter(&[], &["10.0.0.1", "10.0.0.10"]);
        assert!(!f.allows(ip("10.0.0.1")));
        assert!(!f.allows(ip("10.0.0.10")));
    }

    #[test]
    fn allow_beats_deny_and_deny_beats_allow_all() {
        let f = filter(&["10.0.0.1"], &["10.0"]);
        assert!(f.allows(ip("10.0.0.1")));
        assert!(!f.allows(ip("10.0.0.2")));
        let f = filter(&["all"], &["10.0"]);
        assert!(!f.allows(ip("10.0.0.2")));
        assert!(f.allows(ip("11.0.0.2")));
        let f = filter(&["all"], &["all"]);
        assert!(!f.allows(ip("1.1.1.1")));
    }

    #[test]
    fn lists_without_all_reject_the_rest() {
        let f = filter(&["10.0.0.1"], &[]);
        assert!(!f.allows(ip("10.0.0.2")));
        let f = filter(&[], &["10.0.0.1"]);
        assert!(!f.allows(ip("10.0.0.2")));
    }

    #[test]
    fn ipv4_mapped_ipv6_compares_as_ipv4() {
        let f = filter(&["127.0.0.1"], &["all"]);
        assert!(f.allows(ip("::ffff:127.0.0.1")));
        let f = filter(&["::ffff:192.168.0.1"], &["all"]);
        assert!(f.allows(ip("192.168.0.1")));
    }

    #[test]
    fn ipv6_exact_and_cidr() {
        let f = filter(&["::1", "fe80::/10"], &["all"]);
        assert!(f.allows(ip("::1")));
        assert!(f.allows(ip("fe80::1234")));
        assert!(!f.allows(ip("::2")));
        assert!(!f.allows(ip("127.0.0.1")));
        let f = filter(&["10.0.0.0/8"], &["*"]);
        assert!(f.allows(ip("10.9.9.9")));
        assert!(!f.allows(ip("11.0.0.0")));
        let f = filter(&["0.0.0.0/0"], &["all"]);
        assert!(f.allows(ip("8.8.8.8")));
        assert!(!f.allows(ip("::8")));
    }

    #[test]
    fn entries_are_checked() {
        for good in [
            "all",
            "*",
            "1.2.3.4",
            "192.168",
            "10.",
            "10",
            "::1",
            "fe80::/10",
            "1.2.3.0/24",
        ] {
            assert!(IpFilter::check_entry(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "alll",
            "1.2.3.x",
            "256.1",
            "1..2",
            "1.2.3.4.5",
            "1.2.3.4/33",
            "::/129",
            "+1",
        ] {
            assert!(IpFilter::check_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_entries_match_nothing() {
        let f = filter(&["bogus"], &[]);
        assert!(!f.allows(ip("1.2.3.4")));
    }
}
