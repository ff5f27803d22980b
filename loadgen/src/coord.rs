//! How a run's phases are synchronised. Standalone: the ramp's end starts the measurement at once
//! (after the memory probe), and the process takes the memory samples itself. Worker: the process
//! reports progress (also at every sampling interval, so the parent's samples count connections
//! of the moment), "ready" and its result as JSON lines on stdout, and waits for the parent's `go`
//! line on stdin; EOF on stdin aborts the run. Depends on sys, stats, progress, procfs, samples,
//! serde.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::procfs::MemProbe;
use crate::progress::{Printer, Progress};
use crate::samples::{Sampler, Stage};
use crate::stats::{Counters, Stats, WorkerResult};
use crate::sys::{self, Epoll};

/// Epoll token of a worker's stdin.
pub const STDIN_TOKEN: u64 = u64::MAX;
/// Longest line accepted from the parent.
const MAX_STDIN_LINE: usize = 256;

/// One line a worker writes on stdout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerLine {
    Progress(Progress),
    Ready { held: u64 },
    Result(Box<WorkerResult>),
}

pub struct Standalone {
    pub mem: MemProbe,
    pub printer: Printer,
    pub sampler: Sampler,
}

#[derive(Default)]
pub struct WorkerLink {
    go: bool,
    aborted: bool,
    buf: Vec<u8>,
    /// Nanoseconds between progress lines sent for the parent's samples (0 = none).
    sample_ns: u64,
    next_sample_ns: u64,
}

pub enum Coord {
    Standalone(Box<Standalone>),
    Worker(WorkerLink),
}

fn emit(line: &WorkerLine) {
    if let Ok(text) = serde_json::to_string(line) {
        let mut out = io::stdout().lock();
        // The parent reading our stdout is gone if this fails; the run ends on stdin EOF.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl Coord {
    /// A worker that also reports progress every `sample_interval_ms` (0 = only once a second).
    pub fn worker(sample_interval_ms: u64) -> Coord {
        Coord::Worker(WorkerLink {
            sample_ns: sample_interval_ms.saturating_mul(1_000_000),
            ..WorkerLink::default()
        })
    }

    /// Watches stdin for the parent's commands (worker only).
    pub fn register(&self, epoll: &Epoll) -> io::Result<()> {
        if let Coord::Worker(_) = self {
            sys::set_nonblocking(0)?;
            epoll.add(0, sys::READ_INTEREST, STDIN_TOKEN)?;
        }
        Ok(())
    }

    /// The ramp is over.
    pub fn ready(&mut self, c: &Counters) {
        match self {
            Coord::Standalone(s) => {
                s.mem.at_hold();
                s.sampler.record(sys::now_ns(), c.held, Stage::Ready);
            }
            Coord::Worker(_) => emit(&WorkerLine::Ready { held: c.held }),
        }
    }

    /// A memory sample when one is due (standalone); a progress line for the parent's sample
    /// (worker).
    pub fn sample(&mut self, c: &Counters, now_ns: u64, stage: Stage) {
        match self {
            Coord::Standalone(s) => s.sampler.maybe(now_ns, c.held, stage),
            Coord::Worker(w) => {
                if w.sample_ns > 0 && now_ns >= w.next_sample_ns {
                    w.next_sample_ns = now_ns.saturating_add(w.sample_ns);
                    emit(&WorkerLine::Progress(Progress::of(c)));
                }
            }
        }
    }

    /// When `sample` next has something to do (None: nothing periodic).
    pub fn next_sample_ns(&self) -> Option<u64> {
        match self {
            Coord::Standalone(s) => s.sampler.next_due_ns(),
            Coord::Worker(w) => (w.sample_ns > 0).then_some(w.next_sample_ns),
        }
    }

    /// May the measurement start?
    pub fn go(&self) -> bool {
        match self {
            Coord::Standalone(_) => true,
            Coord::Worker(w) => w.go,
        }
    }

    /// The parent went away: stop.
    pub fn aborted(&self) -> bool {
        match self {
            Coord::Standalone(_) => false,
            Coord::Worker(w) => w.aborted,
        }
    }

    /// Reads what the parent wrote on stdin.
    pub fn on_stdin(&mut self) {
        let Coord::Worker(w) = self else {
            return;
        };
        let mut chunk = [0u8; 256];
        loop {
            match sys::read_fd(0, &mut chunk) {
                Ok(0) => {
                    w.aborted = true;
                    return;
                }
                Ok(n) => {
                    for &b in chunk.iter().take(n) {
                        if b == b'\n' {
                            if w.buf.trim_ascii() == b"go" {
                                w.go = true;
                            }
                            w.buf.clear();
                        } else if w.buf.len() < MAX_STDIN_LINE {
                            w.buf.push(b);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    w.aborted = true;
                    return;
                }
            }
        }
    }

    pub fn progress(&mut self, c: &Counters, now_ns: u64) {
        let p = Progress::of(c);
        match self {
            Coord::Standalone(s) => s.printer.print(&p, now_ns),
            Coord::Worker(_) => emit(&WorkerLine::Progress(p)),
        }
    }

    /// Hands the result over (worker: as the last stdout line).
    pub fn finish(&mut self, stats: &Stats) {
        if let Coord::Worker(_) = self {
            emit(&WorkerLine::Result(Box::new(stats.to_result())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_are_tagged_json() {
        let line = WorkerLine::Ready { held: 7 };
        let text = serde_json::to_string(&line).expect("json");
        assert_eq!(text, r#"{"kind":"ready","held":7}"#);
        let back: WorkerLine = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, line);
        let r = WorkerLine::Result(Box::default());
        let text = serde_json::to_string(&r).expect("json");
        assert!(matches!(
            serde_json::from_str(&text),
            Ok(WorkerLine::Result(_))
        ));
    }
}
