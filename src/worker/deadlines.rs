//! Time in a worker: the clock tick, per-connection deadlines, and what a deadline means in each
//! phase (keep-alive and header timeouts, heartbeats).
//!
//! A connection's timer is its `deadline` field alone: arming, moving or clearing it writes that
//! field and nothing else. Once a second a sweep walks the worker's connection slots and fires
//! every deadline that has passed. There is no timer wheel, so an idle connection costs no timer
//! entry (a wheel's entries and their half-empty buckets were ~30 bytes per idle subscriber), and
//! the sweep reads each slot once a second: a few milliseconds a second at a million
//! connections. The sweep is spread over turns (`deadline_sweep`), the worker not sleeping until
//! it is done.
//!
//! Depends on: worker (Worker, Conn, the sweep).

use super::conn::{Conns, Phase};
use super::Worker;
use crate::engine::Token;

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
        self.deadlines.start(now);
        self.sweep_deadlines();
        self.tick_channels();
        self.out_pool.tick();
        crate::memory::release_freed();
    }

    /// One turn's part of the sweep (`deadline_sweep`): the deadlines that have passed. Tens of thousands of connections that came
    /// in the same second have their heartbeats or timeouts due in the same second too, and one
    /// turn doing them all would hold up everyone else; a timer handled a few turns late fires a
    /// few milliseconds late, never early. A sweep that ends after the tick moved on starts
    /// again at once, so no deadline waits more than a sweep past its second.
    pub(super) fn sweep_deadlines(&mut self) {
        let now = self.now;
        let mut due = self.deadlines.collect_due(&self.conns, now);
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
        self.deadlines.give_back(due);
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
