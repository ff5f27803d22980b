//! Per-subscriber sequence check: from the data seqs a subscriber receives, tell in-order
//! delivery from a forward jump (messages lost), a repeat (duplicate) and a late arrival of a seq
//! already counted as lost (out of order). Fixed size: a 64-seq window of recent arrivals.
//! Seqs are compared with wrapping 32-bit arithmetic, as iComet does. Pure; depends on nothing.

/// What one received data seq means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqOutcome {
    /// The seq we expected (or the first one seen).
    InOrder,
    /// A jump forward: this many seqs were skipped.
    Lost(u32),
    /// A seq received before (or too old to tell, which is treated as a repeat).
    Duplicate,
    /// A seq counted as lost earlier that arrived late.
    Late,
}

/// Expected next seq plus a bitmap of the 64 seqs below it (bit k = seq `expected - 1 - k`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqTracker {
    expected: i32,
    window: u64,
    started: bool,
}

impl SeqTracker {
    /// The seq to ask for in the next subscription (0 = "tell me where the channel is").
    pub fn next_seq(&self) -> i32 {
        if self.started {
            self.expected
        } else {
            0
        }
    }

    /// The server told us where to continue (`next_seq`): take it as the new baseline.
    pub fn on_next_seq(&mut self, seq: i32) {
        if !self.started || seq != self.expected {
            self.expected = seq;
            self.window = 0;
            self.started = true;
        }
    }

    /// A data (or broadcast) message with this seq arrived.
    pub fn on_data(&mut self, seq: i32) -> SeqOutcome {
        if !self.started {
            self.started = true;
            self.expected = seq.wrapping_add(1);
            self.window = 1;
            return SeqOutcome::InOrder;
        }
        let ahead = seq.wrapping_sub(self.expected);
        if ahead >= 0 {
            let shift = ahead as u64 + 1;
            self.window = if shift >= 64 { 0 } else { self.window << shift };
            self.window |= 1;
            self.expected = seq.wrapping_add(1);
            return if ahead == 0 {
                SeqOutcome::InOrder
            } else {
                SeqOutcome::Lost(ahead as u32)
            };
        }
        let back = (-(ahead as i64) - 1) as u64; // bit index of `seq`
        if back >= 64 {
            return SeqOutcome::Duplicate;
        }
        let bit = 1u64 << back;
        if self.window & bit != 0 {
            SeqOutcome::Duplicate
        } else {
            self.window |= bit;
            SeqOutcome::Late
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_after_next_seq() {
        let mut t = SeqTracker::default();
        assert_eq!(t.next_seq(), 0);
        t.on_next_seq(3);
        assert_eq!(t.next_seq(), 3);
        assert_eq!(t.on_data(3), SeqOutcome::InOrder);
        assert_eq!(t.on_data(4), SeqOutcome::InOrder);
        assert_eq!(t.next_seq(), 5);
    }

    #[test]
    fn jump_repeat_and_late_arrival() {
        let mut t = SeqTracker::default();
        t.on_next_seq(1);
        assert_eq!(t.on_data(1), SeqOutcome::InOrder);
        assert_eq!(t.on_data(4), SeqOutcome::Lost(2));
        assert_eq!(t.on_data(4), SeqOutcome::Duplicate);
        assert_eq!(t.on_data(1), SeqOutcome::Duplicate);
        assert_eq!(t.on_data(2), SeqOutcome::Late);
        assert_eq!(t.on_data(2), SeqOutcome::Duplicate);
        assert_eq!(t.on_data(5), SeqOutcome::InOrder);
        assert_eq!(t.on_data(-100), SeqOutcome::Duplicate);
    }

    #[test]
    fn wraps_around_i32() {
        let mut t = SeqTracker::default();
        t.on_next_seq(i32::MAX);
        assert_eq!(t.on_data(i32::MAX), SeqOutcome::InOrder);
        assert_eq!(t.on_data(i32::MIN), SeqOutcome::InOrder);
        assert_eq!(t.on_data(i32::MIN + 100), SeqOutcome::Lost(99));
    }

    #[test]
    fn same_next_seq_keeps_window() {
        let mut t = SeqTracker::default();
        t.on_next_seq(1);
        t.on_data(1);
        t.on_next_seq(2);
        assert_eq!(t.on_data(1), SeqOutcome::Duplicate);
    }
}
