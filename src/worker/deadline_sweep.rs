//! Where the once-a-second sweep of a worker's connection deadlines stands, and one turn's step
//! of it: which connections' deadlines have passed (`deadlines` fires them).
//!
//! Depends on: worker (Conn), slab (the scan), engine (Token).

use super::conn::Conn;
use crate::engine::Token;
use crate::slab::Slab;

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
    /// A new second: starts a sweep unless one is still in progress (it then starts again as
    /// soon as it ends, see `collect_due`).
    pub(super) fn start(&mut self, now: u32) {
        if self.cursor.is_none() {
            self.cursor = Some(0);
            self.started_at = now;
        }
    }

    /// One turn's step: up to [`SLOTS_PER_TURN`] slots, returning at most [`TIMERS_PER_TURN`]
    /// connections whose deadline is at or before `now` (give the list back afterwards with
    /// `give_back`). A sweep that ends after the tick moved on starts again at once.
    pub(super) fn collect_due(&mut self, conns: &Slab<Conn>, now: u32) -> Vec<Token> {
        let mut due = std::mem::take(&mut self.due);
        let Some(start) = self.cursor else {
            return due;
        };
        let mut armed = 0;
        let next = conns.scan(start, SLOTS_PER_TURN, |slot, generation, conn| {
            if conn.deadline != 0 {
                armed += 1;
                if conn.deadline <= now {
                    due.push(Token { slot, generation });
                }
            }
            due.len() < TIMERS_PER_TURN
        });
        self.armed_so_far += armed;
        self.cursor = next;
        if next.is_none() {
            self.armed = std::mem::take(&mut self.armed_so_far);
            if now > self.started_at {
                self.cursor = Some(0);
                self.started_at = now;
            }
        }
        due
    }

    /// Returns the list `collect_due` lent (emptied), keeping its capacity.
    pub(super) fn give_back(&mut self, mut due: Vec<Token>) {
        due.clear();
        self.due = due;
    }

    /// True while a sweep is in progress (the worker must not sleep).
    pub(super) fn in_progress(&self) -> bool {
        self.cursor.is_some()
    }

    /// Connections with a deadline armed, as the last complete sweep counted them.
    pub(super) fn armed(&self) -> usize {
        self.armed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ConnId;
    use crate::worker::conn::Port;

    fn slab_with_deadlines(deadlines: impl IntoIterator<Item = u32>) -> Slab<Conn> {
        let mut conns = Slab::with_max(1 << 20);
        for (i, d) in deadlines.into_iter().enumerate() {
            let mut conn = Conn::new(ConnId(i as u32), Port::Front);
            conn.deadline = d;
            assert!(conns.insert(conn).is_ok());
        }
        conns
    }

    /// Runs steps until the sweep is over, returning the slots each step found due.
    fn run(sweep: &mut DeadlineSweep, conns: &Slab<Conn>, now: u32) -> Vec<Vec<u32>> {
        let mut steps = Vec::new();
        while sweep.in_progress() {
            let due = sweep.collect_due(conns, now);
            steps.push(due.iter().map(|t| t.slot).collect());
            sweep.give_back(due);
            assert!(steps.len() < 1000, "the sweep never ends");
        }
        steps
    }

    #[test]
    fn fires_only_passed_deadlines_and_counts_the_armed() {
        let conns = slab_with_deadlines([0, 5, 3, 4, 9]);
        let mut sweep = DeadlineSweep::default();
        assert!(!sweep.in_progress());
        sweep.start(4);
        let steps = run(&mut sweep, &conns, 4);
        assert_eq!(
            steps,
            vec![vec![2, 3]],
            "deadlines 3 and 4 at tick 4, never 5 or 9"
        );
        assert_eq!(sweep.armed(), 4);
    }

    #[test]
    fn a_big_sweep_is_spread_over_bounded_steps() {
        let n = 2 * SLOTS_PER_TURN + 10;
        // Every slot due: each step stops at the timeout bound.
        let conns = slab_with_deadlines(std::iter::repeat_n(1, n));
        let mut sweep = DeadlineSweep::default();
        sweep.start(1);
        let steps = run(&mut sweep, &conns, 1);
        assert!(steps.iter().all(|s| s.len() <= TIMERS_PER_TURN));
        let all: Vec<u32> = steps.concat();
        assert_eq!(
            all,
            (0..n as u32).collect::<Vec<_>>(),
            "each once, in slot order"
        );
        // Nothing due: each step stops at the slot bound.
        let idle = slab_with_deadlines(std::iter::repeat_n(50, n));
        sweep.start(2);
        let steps = run(&mut sweep, &idle, 2);
        assert_eq!(steps.len(), n.div_ceil(SLOTS_PER_TURN));
        assert_eq!(sweep.armed(), n);
    }

    #[test]
    fn a_sweep_that_outlives_its_second_starts_again() {
        let conns = slab_with_deadlines(std::iter::repeat_n(7, SLOTS_PER_TURN + 1));
        let mut sweep = DeadlineSweep::default();
        sweep.start(6);
        let first = sweep.collect_due(&conns, 6);
        assert!(first.is_empty());
        sweep.give_back(first);
        // The next second comes while the sweep is still on: starting again waits for its end.
        sweep.start(7);
        let rest = sweep.collect_due(&conns, 7);
        assert_eq!(rest.len(), 1, "the slot after the first step's end");
        sweep.give_back(rest);
        assert!(
            sweep.in_progress(),
            "a new sweep began for the slots it checked at tick 6"
        );
        let again: Vec<Vec<u32>> = run(&mut sweep, &conns, 7);
        assert_eq!(again.concat().len(), SLOTS_PER_TURN + 1);
    }
}
