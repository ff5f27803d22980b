//! Source addresses for outgoing connections: parsing `--sources` (`A-B` range, single address, or a
//! count starting at 127.0.0.2) and picking one round-robin by global connection index, so that
//! every worker process spreads its share the same way. Pure; depends on std only.

use std::net::Ipv4Addr;

/// First address used when `--sources` is a count.
const COUNT_BASE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Largest accepted list, to keep a typo from allocating a huge table.
const MAX_SOURCES: u32 = 1 << 16;
/// Connections per source address the automatic choice aims at (well under the port range).
pub const AUTO_CONNS_PER_SOURCE: u64 = 16_000;

/// The ordered list of source addresses; empty means "let the kernel choose".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    addrs: Vec<Ipv4Addr>,
}

impl Sources {
    /// Parses `127.0.0.2-127.0.0.40`, `127.0.0.5` or a count like `16`.
    pub fn parse(spec: &str) -> Result<Sources, String> {
        let spec = spec.trim();
        if let Ok(count) = spec.parse::<u32>() {
            return Sources::count(count);
        }
        let (lo, hi) = match spec.split_once('-') {
            Some((a, b)) => (parse_ip(a)?, parse_ip(b)?),
            None => {
                let ip = parse_ip(spec)?;
                (ip, ip)
            }
        };
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        if hi < lo {
            return Err(format!("source range {spec} is reversed"));
        }
        if hi - lo >= MAX_SOURCES {
            return Err(format!("source range {spec} is too large"));
        }
        Ok(Sources {
            addrs: (lo..=hi).map(Ipv4Addr::from).collect(),
        })
    }

    /// `count` consecutive addresses from 127.0.0.2.
    pub fn count(count: u32) -> Result<Sources, String> {
        if count > MAX_SOURCES {
            return Err(format!("{count} source addresses is too many"));
        }
        let base = u32::from(COUNT_BASE);
        Ok(Sources {
            addrs: (0..count)
                .map(|i| Ipv4Addr::from(base.wrapping_add(i)))
                .collect(),
        })
    }

    /// Default when `--sources` is absent: for a loopback target, enough 127.0.0.x addresses to
    /// keep each source/destination pair under [`AUTO_CONNS_PER_SOURCE`]; otherwise none.
    pub fn auto(target_is_loopback: bool, connections: u64) -> Sources {
        if !target_is_loopback {
            return Sources::default();
        }
        let wanted = connections.div_ceil(AUTO_CONNS_PER_SOURCE).clamp(1, 253);
        Sources::count(wanted as u32).unwrap_or_default()
    }

    /// The address for the connection with this global index (None: kernel's choice).
    pub fn pick(&self, global_index: u64) -> Option<Ipv4Addr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = (global_index % self.addrs.len() as u64) as usize;
        self.addrs.get(i).copied()
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }
}

fn parse_ip(s: &str) -> Result<Ipv4Addr, String> {
    s.trim()
        .parse::<Ipv4Addr>()
        .map_err(|_| format!("bad source address {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_inclusive() {
        let s = Sources::parse("127.0.0.2-127.0.0.40").expect("range");
        assert_eq!(s.len(), 39);
        assert_eq!(s.pick(0), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(s.pick(38), Some(Ipv4Addr::new(127, 0, 0, 40)));
        assert_eq!(s.pick(39), Some(Ipv4Addr::new(127, 0, 0, 2)));
    }

    #[test]
    fn count_starts_at_dot_two() {
        let s = Sources::parse("3").expect("count");
        assert_eq!(s.pick(2), Some(Ipv4Addr::new(127, 0, 0, 4)));
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(Sources::parse("127.0.0.9-127.0.0.2").is_err());
        assert!(Sources::parse("nope").is_err());
        assert!(Sources::parse("10.0.0.0-10.255.255.255").is_err());
    }

    #[test]
    fn auto_scales_with_connections() {
        assert_eq!(Sources::auto(true, 100).len(), 1);
        assert_eq!(Sources::auto(true, 1_000_000).len(), 63);
        assert_eq!(Sources::auto(false, 1_000_000).pick(1), None);
    }
}
