//! How a run's phases are synchronised. Standalone: the ramp's end starts the measurement at once
//! (after the memory probe). Worker: the process reports progress, "ready" and its result as JSON
//! lines on stdout, and waits for the parent's `go` line on stdin; EOF on stdin aborts the run.
//! Depends on sys, stats, progress, procfs, serde.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::procfs::MemProbe;
use crate::progress::{Printer, Progress};
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
}

#[derive(Default)]
pub struct WorkerLink {
    go: bool,
    aborted: bool,
    buf: Vec<u8>,
}

pub enum Coord {
    Standalone(Standalone),
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
    pub fn worker() -> Coord {
        Coord::Worker(WorkerLink::default())
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
            Coord::Standalone(s) => s.mem.at_hold(),
            Coord::Worker(_) => emit(&WorkerLine::Ready { held: c.held }),
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
