//! Time in a worker: the clock tick, per-connection deadlines on the timer wheel, and what a
//! deadline means in each phase (keep-alive and header timeouts, heartbeats).
//!
//! Depends on: worker (Worker, Conn), memory (shrinking the due queue).

use super::conn::{Conns, Phase};
use super::Worker;
use crate::engine::Token;
use crate::memory::ShrinkIdle;

/// Due timers one loop turn handles at most (a heartbeat is a frame queued and flushed, about a
/// microsecond).
const TIMERS_PER_TURN: usize = 2048;

impl Worker {
    /// Advances the clock: connection timers and the channels' once-a-second tick. (The Date
    /// header follows the wall clock's own second, read once per turn: `http::date`.) The timers
    /// that came due are queued and handled `TIMERS_PER_TURN` per turn (`fire_due_timers`), the
    /// first of them before the channels' tick, as when all were handled at once.
    pub(super) fn on_time(&mut self) {
        let now = self.shared.tick();
        if now == self.now {
            return;
        }
        self.now = now;
        let due = &mut self.due_timers;
        self.timers.advance(now, |e| due.push_back(e));
        self.fire_due_timers();
        self.tick_channels();
        self.out_pool.tick();
        crate::memory::release_freed();
    }

    /// Handles up to `TIMERS_PER_TURN` of the queued due timers (the worker does not sleep while
    /// some wait): tens of thousands of connections that came in the same second have their
    /// heartbeats or timeouts due in the same second too, and one turn doing them all would hold
    /// up everyone else. A timer handled a few turns late fires a few milliseconds late.
    pub(super) fn fire_due_timers(&mut self) {
        let now = self.now;
        for _ in 0..TIMERS_PER_TURN {
            let Some(e) = self.due_timers.pop_front() else {
                break;
            };
            let token = Token {
                slot: e.slot,
                generation: e.generation,
            };
            let Some(conn) = self.conns.at(token) else {
                continue;
            };
            if conn.wheel_at != e.tick {
                continue;
            }
            conn.wheel_at = 0;
            let deadline = conn.deadline;
            if deadline == 0 {
                continue;
            }
            if deadline > now {
                self.arm(token, deadline);
            } else {
                conn.deadline = 0;
                self.on_timeout(token);
            }
        }
        self.due_timers.shrink_idle();
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
        let now = self.now;
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        conn.deadline = deadline;
        if conn.wheel_at == 0 || deadline < conn.wheel_at {
            conn.wheel_at = deadline.max(now + 1);
            self.timers
                .schedule(token.slot, token.generation, conn.wheel_at);
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
