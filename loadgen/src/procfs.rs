//! Readings from /proc: MemAvailable and SUnreclaim from /proc/meminfo (free-memory guard, kernel
//! memory per connection), VmRSS / RssAnon from /proc/PID/status (server memory per connection),
//! utime + stime from /proc/PID/stat (server CPU per push, delivery or request), each pair of
//! memory fields from one read for the periodic samples, and the before/while-held memory probe
//! built from them. Missing files or fields read as None. Depends on sys (clock ticks per second)
//! and std.

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

/// VmRSS and RssAnon of a process, in bytes, from one read of /proc/PID/status.
pub fn process_rss_and_anon(pid: u32) -> (Option<u64>, Option<u64>) {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(text) => (kb_field(&text, "VmRSS"), kb_field(&text, "RssAnon")),
        Err(_) => (None, None),
    }
}

/// SUnreclaim and MemAvailable, in bytes, from one read of /proc/meminfo.
pub fn sunreclaim_and_available() -> (Option<u64>, Option<u64>) {
    match std::fs::read_to_string("/proc/meminfo") {
        Ok(text) => (
            kb_field(&text, "SUnreclaim"),
            kb_field(&text, "MemAvailable"),
        ),
        Err(_) => (None, None),
    }
}

/// Anonymous resident memory of a process, in bytes.
pub fn process_rss_anon(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kb_field(&text, "RssAnon")
}

/// utime + stime (clock ticks) of a /proc/PID/stat line: fields 14 and 15, counted after the
/// command name, which is in parentheses and may itself contain spaces and parentheses.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11); // state is field 3, utime field 14
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time (user + system, every thread) a process has used so far, in µs.
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat_cpu_ticks(&text)?;
    let per_s = crate::sys::clock_ticks_per_s()?;
    Some((u128::from(ticks) * 1_000_000 / u128::from(per_s)) as u64)
}

/// The sum of `read` over `pids`: None when there is none or one cannot be read (a sum that
/// leaves a process out would pass for the whole).
pub fn sum_of(pids: &[u32], read: impl Fn(u32) -> Option<u64>) -> Option<u64> {
    sum_each(&each(pids, read))
}

/// `read` of every one of `pids`, in order.
pub fn each(pids: &[u32], read: impl Fn(u32) -> Option<u64>) -> Vec<Option<u64>> {
    pids.iter().map(|&p| read(p)).collect()
}

/// The sum of readings taken with [`each`], None when empty or when one is missing.
pub fn sum_each(values: &[Option<u64>]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.iter().try_fold(0u64, |acc, v| Some(acc + (*v)?))
}

/// Server and kernel memory before the ramp and while the connections are held; the server's
/// numbers are sums over its processes (`rss_*_each`: each one's VmRSS, in `pids` order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemProbe {
    pub pids: Vec<u32>,
    pub rss_before: Option<u64>,
    pub sunreclaim_before: Option<u64>,
    pub rss_held: Option<u64>,
    pub sunreclaim_held: Option<u64>,
    pub rss_anon_before: Option<u64>,
    pub rss_anon_held: Option<u64>,
    pub rss_before_each: Vec<Option<u64>>,
    pub rss_held_each: Vec<Option<u64>>,
}

impl MemProbe {
    /// Readings before any connection is opened.
    pub fn baseline(pids: &[u32]) -> MemProbe {
        let rss_before_each = each(pids, process_rss);
        MemProbe {
            pids: pids.to_vec(),
            rss_before: sum_each(&rss_before_each),
            sunreclaim_before: sunreclaim(),
            rss_held: None,
            sunreclaim_held: None,
            rss_anon_before: sum_of(pids, process_rss_anon),
            rss_anon_held: None,
            rss_before_each,
            rss_held_each: Vec::new(),
        }
    }

    /// Readings once every process finished its ramp.
    pub fn at_hold(&mut self) {
        self.rss_held_each = each(&self.pids, process_rss);
        self.rss_held = sum_each(&self.rss_held_each);
        self.sunreclaim_held = sunreclaim();
        self.rss_anon_held = sum_of(&self.pids, process_rss_anon);
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
        assert!(process_cpu_us(me).is_some());
        assert_eq!(process_cpu_us(u32::MAX), None);
        let (rss, anon) = process_rss_and_anon(me);
        assert!(rss.unwrap_or(0) > 0 && anon.is_some());
        assert_eq!(process_rss_and_anon(u32::MAX), (None, None));
        let (sunreclaim, available) = sunreclaim_and_available();
        assert!(sunreclaim.is_some() && available.unwrap_or(0) > 0);
    }

    #[test]
    fn sums_over_processes_need_every_one() {
        assert_eq!(sum_each(&[Some(3), Some(4)]), Some(7));
        assert_eq!(
            sum_each(&[Some(3), None]),
            None,
            "a missing process spoils the sum"
        );
        assert_eq!(sum_each(&[]), None);
        let me = std::process::id();
        let one = process_rss(me).unwrap_or(0);
        let two = sum_of(&[me, me], process_rss).unwrap_or(0);
        assert!(one > 0 && two >= 2 * one - 2 * one / 10, "{one} {two}");
        assert_eq!(sum_of(&[me, u32::MAX], process_rss), None);
        let probe = MemProbe::baseline(&[me, me]);
        assert_eq!(probe.rss_before_each.len(), 2);
        assert!(probe.rss_before.is_some());
        assert_eq!(MemProbe::baseline(&[]).rss_before, None);
    }

    #[test]
    fn cpu_ticks_from_stat_line() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 900 0 3 0 250 75 0 0 20 0 3 0 100";
        assert_eq!(stat_cpu_ticks(line), Some(325));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let me = std::process::id();
        let before = process_cpu_us(me).expect("cpu");
        let tick_us = 1_000_000 / crate::sys::clock_ticks_per_s().expect("ticks");
        // Spin until this thread alone used more than two clock ticks of CPU.
        let spin_until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while process_cpu_us(me).unwrap_or(0) < before + 2 * tick_us {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            assert!(
                std::time::Instant::now() < spin_until,
                "CPU time never grew"
            );
        }
        std::hint::black_box(x);
    }
}
