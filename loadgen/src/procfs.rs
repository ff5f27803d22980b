//! Readings from /proc: MemAvailable and SUnreclaim from /proc/meminfo (free-memory guard, kernel
//! memory per connection) and VmRSS / RssAnon from /proc/PID/status (server memory per
//! connection), and the before/while-held probe built from them. Missing files or fields read as
//! None. Depends on std only.

/// Value in bytes of a `Name:   1234 kB` line in a /proc text file.
fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

fn meminfo_field(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kb_field(&text, name)
}

/// Bytes the kernel estimates are available for new allocations.
pub fn mem_available() -> Option<u64> {
    meminfo_field("MemAvailable")
}

/// Unreclaimable slab bytes (sockets, inodes of sockets, ...).
pub fn sunreclaim() -> Option<u64> {
    meminfo_field("SUnreclaim")
}

/// Resident set size of a process, in bytes.
pub fn process_rss(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kb_field(&text, "VmRSS")
}

/// Anonymous resident memory of a process, in bytes.
pub fn process_rss_anon(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kb_field(&text, "RssAnon")
}

/// Server and kernel memory before the ramp and while the connections are held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemProbe {
    pub pid: Option<u32>,
    pub rss_before: Option<u64>,
    pub sunreclaim_before: Option<u64>,
    pub rss_held: Option<u64>,
    pub sunreclaim_held: Option<u64>,
    pub rss_anon_before: Option<u64>,
    pub rss_anon_held: Option<u64>,
}

impl MemProbe {
    /// Readings before any connection is opened.
    pub fn baseline(pid: Option<u32>) -> MemProbe {
        MemProbe {
            pid,
            rss_before: pid.and_then(process_rss),
            sunreclaim_before: sunreclaim(),
            rss_held: None,
            sunreclaim_held: None,
            rss_anon_before: pid.and_then(process_rss_anon),
            rss_anon_held: None,
        }
    }

    /// Readings once every process finished its ramp.
    pub fn at_hold(&mut self) {
        self.rss_held = self.pid.and_then(process_rss);
        self.sunreclaim_held = sunreclaim();
        self.rss_anon_held = self.pid.and_then(process_rss_anon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kb_lines() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:    1000 kB\nSUnreclaim:  7 kB\n";
        assert_eq!(kb_field(text, "MemAvailable"), Some(1000 * 1024));
        assert_eq!(kb_field(text, "SUnreclaim"), Some(7 * 1024));
        assert_eq!(kb_field(text, "Mem"), None);
        assert_eq!(kb_field(text, "Nope"), None);
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(process_rss(me).unwrap_or(0) > 0);
        assert!(mem_available().unwrap_or(0) > 0);
    }
}
