//! The once-a-second progress line on stderr: connections held, connect rate, errors, deliveries,
//! requests, and the server's RSS when --pid is given. A worker sends its `Progress` to the parent,
//! which sums them and prints one line. Depends on stats, procfs, serde.

use serde::{Deserialize, Serialize};

use crate::procfs::process_rss;
use crate::stats::Counters;

/// A snapshot of the counters the progress line shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub held: u64,
    pub target: u64,
    pub established: u64,
    pub errors: u64,
    pub deliveries: u64,
    pub requests: u64,
    pub cycles: u64,
    pub guard: bool,
}

impl Progress {
    pub fn of(c: &Counters) -> Progress {
        Progress {
            held: c.held,
            target: c.target,
            established: c.established,
            errors: c.errors.total(),
            deliveries: c.deliveries,
            requests: c.requests,
            cycles: c.cycles,
            guard: c.memory_guard_hit,
        }
    }

    pub fn merge(&mut self, o: &Progress) {
        self.held += o.held;
        self.target += o.target;
        self.established += o.established;
        self.errors += o.errors;
        self.deliveries += o.deliveries;
        self.requests += o.requests;
        self.cycles += o.cycles;
        self.guard |= o.guard;
    }
}

/// Prints progress lines with per-second rates.
#[derive(Debug)]
pub struct Printer {
    start_ns: u64,
    last: Progress,
    last_ns: u64,
    pids: Vec<u32>,
    quiet: bool,
}

fn per_s(now: u64, prev: u64, dt_ns: u64) -> u64 {
    if dt_ns == 0 {
        return 0;
    }
    (u128::from(now.saturating_sub(prev)) * 1_000_000_000 / u128::from(dt_ns)) as u64
}

impl Printer {
    pub fn new(start_ns: u64, pids: &[u32], quiet: bool) -> Printer {
        Printer {
            start_ns,
            last: Progress::default(),
            last_ns: start_ns,
            pids: pids.to_vec(),
            quiet,
        }
    }

    pub fn line(&mut self, p: &Progress, now_ns: u64) -> String {
        let dt = now_ns.saturating_sub(self.last_ns);
        let mut line = format!(
            "[{:>5}s] held {}/{} +{}/s  err {}",
            now_ns.saturating_sub(self.start_ns) / 1_000_000_000,
            p.held,
            p.target,
            per_s(p.established, self.last.established, dt),
            p.errors,
        );
        if p.deliveries > 0 {
            let rate = per_s(p.deliveries, self.last.deliveries, dt);
            line.push_str(&format!("  deliv {} +{}/s", p.deliveries, rate));
        }
        if p.requests > 0 {
            let rate = per_s(p.requests, self.last.requests, dt);
            line.push_str(&format!("  req {} +{}/s", p.requests, rate));
        }
        if p.cycles > 0 {
            let rate = per_s(p.cycles, self.last.cycles, dt);
            line.push_str(&format!("  cycles {} +{}/s", p.cycles, rate));
        }
        if let Some(rss) = crate::procfs::sum_of(&self.pids, process_rss) {
            line.push_str(&format!("  server rss {:.1} MiB", rss as f64 / 1048576.0));
        }
        if p.guard {
            line.push_str("  [memory guard: ramp stopped]");
        }
        self.last = *p;
        self.last_ns = now_ns;
        line
    }

    pub fn print(&mut self, p: &Progress, now_ns: u64) {
        let line = self.line(p, now_ns);
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_rates() {
        let mut pr = Printer::new(0, &[], true);
        let p = Progress {
            held: 50,
            target: 100,
            established: 50,
            deliveries: 10,
            ..Progress::default()
        };
        let line = pr.line(&p, 2_000_000_000);
        assert!(line.contains("held 50/100 +25/s"), "{line}");
        assert!(line.contains("deliv 10 +5/s"), "{line}");
        let mut a = p;
        a.merge(&p);
        assert_eq!(a.held, 100);
    }
}
