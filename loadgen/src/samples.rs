//! Memory samples over the run, for charts: every --sample-interval-ms (default 500 ms) the process
//! that reports (standalone, or the parent of worker processes) records the connections held, the
//! server's VmRSS and RssAnon (/proc/PID/status, with --pid) and the kernel's SUnreclaim and
//! MemAvailable (/proc/meminfo), with the stage of the run; one more sample is taken when the ramp
//! ends (at the same moment as the memory probe). A run keeps at most `MAX_SAMPLES`: when full,
//! every other sample goes and the interval doubles. Depends on procfs and serde.

use serde::Serialize;

use crate::procfs;

/// Most samples one run keeps.
pub const MAX_SAMPLES: usize = 4096;
const NS: u64 = 1_000_000_000;

/// What the run was doing when a sample was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Connections are being opened.
    Ramp,
    /// Every process finished its ramp (taken with the memory probe).
    Ready,
    /// The measurement (hold, publishing, requests) is running.
    Measure,
}

/// One reading. Sizes are None when unreadable (no --pid, no such field).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    pub stage: Stage,
    pub connections_held: u64,
    pub server_rss_bytes: Option<u64>,
    pub server_rss_anon_bytes: Option<u64>,
    pub kernel_sunreclaim_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
}

/// What a run hands to its report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Seconds between samples at the end of the run (0 = sampling off).
    pub interval_s: f64,
    pub samples: Vec<Sample>,
}

#[derive(Debug)]
pub struct Sampler {
    pids: Vec<u32>,
    start_ns: u64,
    /// 0 = sampling off.
    interval_ns: u64,
    next_ns: u64,
    samples: Vec<Sample>,
}

impl Sampler {
    /// A sampler whose first sample is due at `start_ns`.
    pub fn new(start_ns: u64, interval_ms: u64, pids: &[u32]) -> Sampler {
        Sampler {
            pids: pids.to_vec(),
            start_ns,
            interval_ns: interval_ms.saturating_mul(1_000_000),
            next_ns: start_ns,
            samples: Vec::new(),
        }
    }

    /// When the next periodic sample is due (None when sampling is off).
    pub fn next_due_ns(&self) -> Option<u64> {
        (self.interval_ns > 0).then_some(self.next_ns)
    }

    /// Takes a sample if one is due.
    pub fn maybe(&mut self, now_ns: u64, held: u64, stage: Stage) {
        if self.interval_ns > 0 && now_ns >= self.next_ns {
            self.record(now_ns, held, stage);
        }
    }

    /// Takes a sample now (nothing when sampling is off).
    pub fn record(&mut self, now_ns: u64, held: u64, stage: Stage) {
        if self.interval_ns == 0 {
            return;
        }
        // Summed over the server's processes (None when one cannot be read).
        let pairs: Vec<_> = self
            .pids
            .iter()
            .map(|&p| procfs::process_rss_and_anon(p))
            .collect();
        let rss = procfs::sum_each(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
        let anon = procfs::sum_each(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
        let (sunreclaim, available) = procfs::sunreclaim_and_available();
        self.push(Sample {
            t_s: now_ns.saturating_sub(self.start_ns) as f64 / NS as f64,
            stage,
            connections_held: held,
            server_rss_bytes: rss,
            server_rss_anon_bytes: anon,
            kernel_sunreclaim_bytes: sunreclaim,
            mem_available_bytes: available,
        });
        self.next_ns = self.next_ns.saturating_add(self.interval_ns);
        if self.next_ns <= now_ns {
            self.next_ns = now_ns.saturating_add(self.interval_ns);
        }
    }

    /// Appends a sample; when `MAX_SAMPLES` are kept, drops every other one (never the ramp-end
    /// sample) and doubles the interval.
    fn push(&mut self, s: Sample) {
        self.samples.push(s);
        if self.samples.len() >= MAX_SAMPLES {
            let mut i = 0usize;
            self.samples.retain(|s| {
                i += 1;
                i % 2 == 1 || s.stage == Stage::Ready
            });
            self.interval_ns = self.interval_ns.saturating_mul(2);
        }
    }

    pub fn finish(self) -> Series {
        Series {
            interval_s: self.interval_ns as f64 / NS as f64,
            samples: self.samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_when_due_and_at_ramp_end() {
        let me = std::process::id();
        let mut s = Sampler::new(1_000 * NS, 500, &[me]);
        assert_eq!(s.next_due_ns(), Some(1_000 * NS));
        s.maybe(1_000 * NS, 0, Stage::Ramp); // due at once: the baseline
        s.maybe(1_000 * NS + NS / 4, 5, Stage::Ramp); // not due yet
        s.maybe(1_000 * NS + NS / 2, 10, Stage::Ramp);
        s.record(1_000 * NS + NS * 6 / 10, 12, Stage::Ready);
        s.maybe(1_000 * NS + 5 * NS, 12, Stage::Measure); // late: the next is due 0.5 s later
        assert_eq!(s.next_due_ns(), Some(1_000 * NS + 5 * NS + NS / 2));
        let series = s.finish();
        assert_eq!(series.interval_s, 0.5);
        let held: Vec<u64> = series.samples.iter().map(|x| x.connections_held).collect();
        assert_eq!(held, [0, 10, 12, 12]);
        let stages: Vec<Stage> = series.samples.iter().map(|x| x.stage).collect();
        assert_eq!(
            stages,
            [Stage::Ramp, Stage::Ramp, Stage::Ready, Stage::Measure]
        );
        assert_eq!(series.samples[1].t_s, 0.5);
        let first = series.samples[0];
        assert!(first.server_rss_bytes.unwrap_or(0) > 0, "{first:?}");
        assert!(first.server_rss_anon_bytes.is_some(), "{first:?}");
        assert!(first.kernel_sunreclaim_bytes.is_some(), "{first:?}");
        assert!(first.mem_available_bytes.unwrap_or(0) > 0, "{first:?}");
    }

    #[test]
    fn off_without_interval_and_no_server_without_pid() {
        let mut off = Sampler::new(0, 0, &[std::process::id()]);
        off.maybe(NS, 1, Stage::Ramp);
        off.record(NS, 1, Stage::Ready);
        assert_eq!(off.next_due_ns(), None);
        assert_eq!(off.finish(), Series::default());
        let mut nopid = Sampler::new(0, 100, &[]);
        nopid.maybe(0, 3, Stage::Ramp);
        let s = nopid.finish().samples[0];
        assert_eq!((s.server_rss_bytes, s.server_rss_anon_bytes), (None, None));
    }

    #[test]
    fn a_full_series_halves_and_keeps_the_ramp_end() {
        let mut s = Sampler::new(0, 100, &[]);
        let step = NS / 10;
        for i in 0..(MAX_SAMPLES as u64 - 1) {
            let stage = if i == 3 { Stage::Ready } else { Stage::Ramp };
            s.record(i * step, i, stage);
        }
        assert_eq!(s.samples.len(), MAX_SAMPLES - 1);
        s.record(MAX_SAMPLES as u64 * step, 0, Stage::Measure);
        assert!(
            s.samples.len() <= MAX_SAMPLES / 2 + 1,
            "{}",
            s.samples.len()
        );
        assert!(s.samples.iter().any(|x| x.stage == Stage::Ready));
        assert_eq!(s.samples[0].connections_held, 0);
        assert_eq!(s.samples[1].connections_held, 2);
        assert_eq!(s.finish().interval_s, 0.2);
    }
}
