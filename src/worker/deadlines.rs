//! Time in a worker: the clock tick, per-connection deadlines, and what a deadline means in each
//! phase (keep-alive and header timeouts, heartbeats).
//!
//! A connection's timer is its `deadline` field alone: arming, moving or clearing it writes that
//! field and nothing else. Once a second a sweep walks the worker's connection slots and fires
//! every deadline that has passed. There is no timer wheel, so an idle connection costs no timer
//! entry (a wheel's entries and their half-empty buckets were ~30 bytes per idle subscriber), and
//! the sweep reads each slot once a second: a few milliseconds a second at a million
//! connections. The sweep is spread over turns, [`SLOTS_PER_TURN`] slots and at most
//! [`TIMERS_PER_TURN`] timeouts each, the worker not sleeping until it is done.
//!
//! Depends on: worker (Worker, Conn), slab (the scan).

use super::conn::{Conns, Phase};
use super::Worker;
use crate::engine::Token;

/// Due timers one loop turn handles at most (a heartbeat is a frame queued and flushed, about a
/// microsecond).
const TIMERS_PER_TURN: usize = 2048;

/// Connection slots one loop turn looks at (a comparison each: tens of microseconds).
const SLOTS_PER_TURN: usize = 16_384;

/// Where the once-a-second sweep of the connection slots stands.
#[derive(Default)]
pub(super) struct DeadlineSweep {
    /// The slot the sweep goes on from (`None`: no sweep in progress).
    cursor: Option<u32>,
    /// The tick the sweep in progress started at.
    started_at: u32,
    /// Armed deadlines seen so far by the sweep in progress.
    armed_so_far: usize,
    /// Armed deadlines the last complete sweep saw (the `rcomet_timers` gauge).
    armed: usize,
    /// This turn's due connections (kept for its capacity).
    due: Vec<Token>,
}

impl DeadlineSweep {
    /// True while a sweep is in progress (the worker must not sleep).
    pub(super) fn in_progress(&self) -> bool {
        self.cursor.is_some()
    }

    /// Connections with a deadline armed, as the last complete sweep counted them.
    pub(super) fn armed(&self) -> usize {
        self.armed
    }
}

impl Worker {
    /// Advances the clock: a sweep of the connections' deadlines and the channels' once-a-second
    /// tick. (The Date header follows the wall clock's own second, read once per turn:
    /// `http::date`.) The sweep's first part runs before the channels' tick, the rest in the
    /// next turns (`sweep_deadlines`).
    pub(super) fn on_time(&mut self) {
        let now = self.shared.tick();
        if now == self.now {
            return;
        }
        self.now = now;
        if self.deadlines.cursor.is_none() {
            self.deadlines.cursor = Some(0);
            self.deadlines.started_at = now;
        }
        self.sweep_deadlines();
        self.tick_channels();
        self.out_pool.tick();
        crate::memory::release_freed();
    }

    /// One turn's part of the sweep: up to `SLOTS_PER_TURN` slots, firing up to
    /// `TIMERS_PER_TURN` deadlines that have passed. Tens of thousands of connections that came
    /// in the same second have their heartbeats or timeouts due in the same second too, and one
    /// turn doing them all would hold up everyone else; a timer handled a few turns late fires a
    /// few milliseconds late, never early. A sweep that ends after the tick moved on starts
    /// again at once, so no deadline waits more than a sweep past its second.
    pub(super) fn sweep_deadlines(&mut self) {
        let Some(start) = self.deadlines.cursor else {
            return;
        };
        let now = self.now;
        let mut due = std::mem::take(&mut self.deadlines.due);
        let mut armed = 0;
        let next = self
            .conns
            .scan(start, SLOTS_PER_TURN, |slot, generation, conn| {
                if conn.deadline != 0 {
                    armed += 1;
                    if conn.deadline <= now {
                        due.push(Token { slot, generation });
                    }
                }
                due.len() < TIMERS_PER_TURN
            });
        let sweep = &mut self.deadlines;
        sweep.armed_so_far += armed;
        sweep.cursor = next;
        if next.is_none() {
            sweep.armed = std::mem::take(&mut sweep.armed_so_far);
            if now > sweep.started_at {
                sweep.cursor = Some(0);
                sweep.started_at = now;
            }
        }
        for token in due.drain(..) {
            let Some(conn) = self.conns.at(token) else {
                continue;
            };
            if conn.deadline == 0 || conn.deadline > now {
                continue;
            }
            conn.deadline = 0;
            self.on_timeout(token);
        }
        self.deadlines.due = due;
    }

    /// The tick at which a timer of `secs` seconds started now is due. Ticks are whole seconds, so
    /// one more tick is added: the timer fires between `secs` and `secs + 1` seconds from now,
    /// never early.
    /// The clock is read afresh (a vDSO call): the cached `now` may lag by the length of a turn.
    pub(crate) fn after(&self, secs: u32) -> u32 {
        self.shared.tick().saturating_add(secs).saturating_add(1)
    }

    /// Sets the connection's timer to fire at tick `deadline`.
    pub(crate) fn arm(&mut self, token: Token, deadline: u32) {
        if let Some(conn) = self.conns.at(token) {
            conn.deadline = deadline;
        }
    }

    /// Clears the connection's timer.
    pub(crate) fn disarm(&mut self, token: Token) {
        if let Some(conn) = self.conns.at(token) {
            conn.deadline = 0;
        }
    }

    fn on_timeout(&mut self, token: Token) {
        let Some(conn) = self.conns.peek(token) else {
            return;
        };
        match conn.phase {
            // Admin replies still on their way keep the connection (they come within a turn or
            // two; the timer looks again later).
            Phase::Idle if conn.replies_owed() > 0 => self.rearm_header_timer(token),
            Phase::Idle => self.close(token),
            Phase::Reading => self.reject(token, 408, b""),
            Phase::Waiting => self.rearm_header_timer(token),
            Phase::Subscribed => self.on_noop_due(token),
            Phase::Presence | Phase::Moving => {}
            Phase::Closing => self.close(token),
        }
    }

    fn rearm_header_timer(&mut self, token: Token) {
        let d = self.after(self.config.server.header_timeout);
        self.arm(token, d);
    }
}
