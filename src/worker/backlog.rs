//! The fan-out backlog: connections a big fan-out gave output to (a message or a close for a
//! channel with `BIG_FANOUT` subscribers or more on this worker, a `/broadcast`'s deliveries),
//! written after every other connection with output, a bounded number per turn.
//!
//! A send costs the kernel 2–12 µs whatever it carries, and one push to a channel with 9,000
//! subscribers on a worker is 9,000 sends. Written in the turn that queued them, as every other
//! output is, they made that turn ~100 ms long, and every other client of the worker (a
//! publisher of another channel, a new subscriber) waited for it (bench/RESULTS.md, `make
//! big-channel`). Here the backlog gets `BACKLOG_SENDS_PER_TURN` sends or `BACKLOG_TIME_PER_TURN`
//! a turn, whichever ends first, after the turn's other output; the loop does not sleep while it
//! is not empty. A subscriber whose frames wait here gets the frames of the pushes that arrive
//! meanwhile appended to the same queue (the same range of a shared batch: `frame_batch`), so
//! when its turn comes one send carries them all: under a fast publisher the backlog writes more
//! frames per send instead of more sends.
//!
//! A connection is in at most one of the two lists (`flags::DIRTY` marks both), and in the order
//! its output was first queued; output it gets later (a heartbeat, its next request's answer)
//! goes out with its place in the backlog.
//!
//! Depends on: worker (Worker, output's flush of one connection), engine (Backend).

use super::Worker;
use crate::engine::Backend;
use std::time::{Duration, Instant};

/// A delivery to this many subscribers on this worker, or more, is written through the backlog
/// (the same number a channel's home keeps before it spreads the channel: `handoff`).
pub(super) const BIG_FANOUT: usize = 64;

/// Sends the backlog makes in one turn at most: ≈ 1.3 ms of kernel time at this machine's
/// 10 µs per loopback send, ≈ 0.3 ms on a host where a send costs 2–3 µs. A count, not only a
/// time, because an io_uring send is only submitted here and runs in the kernel in the next wait.
const BACKLOG_SENDS_PER_TURN: usize = 128;

/// Wall time the backlog's sends get in one turn at most (epoll sends run here).
const BACKLOG_TIME_PER_TURN: Duration = Duration::from_millis(1);

/// The clock is read once per this many sends.
const SENDS_PER_CLOCK_READ: usize = 8;

impl Worker {
    /// Runs `fill` with every connection it gives output to queued in the backlog.
    pub(super) fn queue_in_backlog<T>(
        &mut self,
        big: bool,
        fill: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let was = std::mem::replace(&mut self.marking_backlog, big);
        let result = fill(self);
        self.marking_backlog = was;
        result
    }

    /// Whether connections wait in the backlog (the loop must not sleep).
    pub(super) fn backlogged(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Writes the backlog's oldest connections, within this turn's budget.
    pub(super) fn flush_backlog<B: Backend>(&mut self, backend: &mut B) {
        let start = Instant::now();
        let mut sends = 0;
        while sends < BACKLOG_SENDS_PER_TURN {
            let Some(token) = self.backlog.pop_front() else {
                break;
            };
            if !self.flush_one(backend, token) {
                continue;
            }
            sends += 1;
            if sends % SENDS_PER_CLOCK_READ == 0 && start.elapsed() >= BACKLOG_TIME_PER_TURN {
                break;
            }
        }
        if self.backlog.is_empty() && self.backlog.capacity() > BACKLOG_KEEP_CAPACITY {
            self.backlog.shrink_to(BACKLOG_KEEP_CAPACITY);
        }
    }
}

/// The backlog's list keeps room for this many connections once empty (a big channel's next
/// push reuses it; a one-off fan-out to a million gives its memory back).
const BACKLOG_KEEP_CAPACITY: usize = 16 * 1024;
