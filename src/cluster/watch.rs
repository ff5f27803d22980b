//! One watched channel on the cluster thread: where its subscription stands, the seq the next
//! forwarded message must carry, and what to do with each pub/sub payload and each state read
//! from Redis. Pure: the thread sends what these functions return.
//!
//! The rule: a channel's messages reach its home worker exactly once and in seq order. A payload
//! with the expected seq is forwarded; an older one is a duplicate (it was in a state read);
//! a newer one, or one of another incarnation, means something was missed, and the state is read
//! again. A state read after a reconnect forwards what the buffer holds beyond the last forwarded
//! seq, or — when the buffer no longer reaches back that far, or the channel is another
//! incarnation (Redis came back empty) — reports a gap.
//!
//! Depends on: cluster (Entry, State, wire payloads), comet (seq order).

use super::types::{Entry, State};
use super::wire::Payload;
use crate::comet::seq::{seq_after, seq_before};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// SUBSCRIBE sent, not confirmed.
    Subscribing,
    /// Subscribed; the state read is in flight (payloads are held).
    Fetching,
    Live,
}

/// What the thread must do after a payload or a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// First state: the home builds its mirror.
    Synced(State),
    /// The next message.
    Forward(Entry),
    /// Messages were lost or the channel is another incarnation.
    Gap(State),
    Closed,
    Cleared,
    /// Read the state again.
    Refetch,
}

#[derive(Debug)]
pub struct Watch {
    pub phase: Phase,
    /// Create the channel in Redis when absent.
    pub create: bool,
    /// The home has its mirror (a later state read is a resync).
    pub synced: bool,
    epoch: u32,
    /// The seq the next forwarded message must carry.
    next: u32,
}

impl Watch {
    pub fn new(create: bool) -> Watch {
        Watch {
            phase: Phase::Subscribing,
            create,
            synced: false,
            epoch: 0,
            next: 0,
        }
    }

    /// A payload from the channel's subject, once the watch is live: the caller holds what comes
    /// before the state and hands it here after `on_state` (payloads already in the state are
    /// skipped as duplicates). Ignored before that.
    pub fn on_payload(&mut self, p: Payload, out: &mut Vec<Out>) {
        if self.phase != Phase::Live {
            return;
        }
        match p {
            Payload::Message { epoch, entry } => {
                if epoch != self.epoch {
                    return self.refetch(out);
                }
                if entry.seq == self.next {
                    self.next = seq_after(entry.seq);
                    out.push(Out::Forward(entry));
                } else if !seq_before(entry.seq, self.next) {
                    self.refetch(out);
                }
            }
            Payload::Closed { epoch } if epoch == self.epoch => out.push(Out::Closed),
            Payload::Cleared { epoch } if epoch == self.epoch => out.push(Out::Cleared),
            Payload::Closed { .. } | Payload::Cleared { .. } => {}
        }
    }

    fn refetch(&mut self, out: &mut Vec<Out>) {
        self.phase = Phase::Fetching;
        out.push(Out::Refetch);
    }

    /// The channel's state as read from Redis (after the subscription was confirmed).
    pub fn on_state(&mut self, state: State, out: &mut Vec<Out>) {
        self.phase = Phase::Live;
        if !self.synced {
            self.synced = true;
            self.epoch = state.epoch;
            self.next = state.seq_next;
            out.push(Out::Synced(state));
        } else {
            self.resync(state, out);
        }
    }

    fn resync(&mut self, state: State, out: &mut Vec<Out>) {
        if state.epoch == self.epoch && state.seq_next == self.next {
            return;
        }
        let mut missing = state
            .entries
            .iter()
            .filter(|e| !seq_before(e.seq, self.next))
            .peekable();
        let same = state.epoch == self.epoch && !seq_before(state.seq_next, self.next);
        if same && missing.peek().is_some_and(|e| e.seq == self.next) {
            let entries: Vec<Entry> = missing.cloned().collect();
            for e in entries {
                self.next = seq_after(e.seq);
                out.push(Out::Forward(e));
            }
            return;
        }
        self.epoch = state.epoch;
        self.next = state.seq_next;
        out.push(Out::Gap(state));
    }

    /// The link was lost: subscribe again, then read the state again.
    pub fn lost(&mut self) {
        self.phase = Phase::Subscribing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comet::message::MsgType;

    fn entry(seq: u32) -> Entry {
        Entry {
            seq,
            kind: MsgType::Data,
            content: seq.to_string().into_bytes(),
        }
    }

    fn state(epoch: u32, seqs: std::ops::RangeInclusive<u32>, next: u32) -> State {
        State {
            epoch,
            seq_next: next,
            token: [0; 16],
            entries: seqs.map(entry).collect(),
        }
    }

    fn empty(epoch: u32, next: u32) -> State {
        State {
            epoch,
            seq_next: next,
            token: [0; 16],
            entries: Vec::new(),
        }
    }

    fn msg(epoch: u32, seq: u32) -> Payload {
        Payload::Message {
            epoch,
            entry: entry(seq),
        }
    }

    fn forwarded(out: &[Out]) -> Vec<u32> {
        out.iter()
            .filter_map(|o| match o {
                Out::Forward(e) => Some(e.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_watch_is_small() {
        // A node holds one per mirrored channel: 16 bytes, 32 with its name in the map.
        assert!(
            std::mem::size_of::<Watch>() <= 16,
            "{}",
            std::mem::size_of::<Watch>()
        );
    }

    #[test]
    fn held_payloads_after_the_first_state_skip_duplicates() {
        let mut w = Watch::new(true);
        let mut out = Vec::new();
        w.on_payload(msg(5, 2), &mut out);
        assert!(out.is_empty(), "nothing is forwarded before the state");
        w.on_state(state(5, 1..=3, 4), &mut out);
        assert!(matches!(out[0], Out::Synced(_)));
        // What the caller held meanwhile: 3 is already in the state, 4 is next.
        w.on_payload(msg(5, 3), &mut out);
        w.on_payload(msg(5, 4), &mut out);
        assert_eq!(forwarded(&out), vec![4]);
        out.clear();
        w.on_payload(msg(5, 5), &mut out);
        w.on_payload(msg(5, 5), &mut out);
        assert_eq!(forwarded(&out), vec![5]);
    }

    #[test]
    fn a_jump_refetches_and_the_resync_fills_the_hole() {
        let mut w = Watch::new(true);
        let mut out = Vec::new();
        w.on_state(state(5, 1..=2, 3), &mut out);
        out.clear();
        w.on_payload(msg(5, 5), &mut out);
        assert_eq!(out, vec![Out::Refetch]);
        out.clear();
        w.on_state(state(5, 1..=5, 6), &mut out);
        assert_eq!(forwarded(&out), vec![3, 4, 5]);
    }

    #[test]
    fn history_lost_or_new_incarnation_is_a_gap() {
        let mut w = Watch::new(true);
        let mut out = Vec::new();
        w.on_state(state(5, 1..=2, 3), &mut out);
        out.clear();
        w.lost();
        w.on_state(state(5, 8..=9, 10), &mut out);
        assert!(matches!(&out[..], [Out::Gap(s)] if s.seq_next == 10));
        out.clear();
        w.lost();
        w.on_state(empty(77, 1), &mut out);
        assert!(matches!(&out[..], [Out::Gap(s)] if s.epoch == 77));
        out.clear();
        w.on_payload(msg(77, 1), &mut out);
        assert_eq!(forwarded(&out), vec![1]);
    }

    #[test]
    fn close_and_clear_of_this_incarnation_only() {
        let mut w = Watch::new(true);
        let mut out = Vec::new();
        w.on_state(empty(5, 1), &mut out);
        out.clear();
        w.on_payload(Payload::Closed { epoch: 4 }, &mut out);
        w.on_payload(Payload::Cleared { epoch: 5 }, &mut out);
        w.on_payload(Payload::Closed { epoch: 5 }, &mut out);
        assert_eq!(out, vec![Out::Cleared, Out::Closed]);
    }
}
