//! The per-channel message ring: the last B messages (B = `channel_buffer_size`), oldest first.
//!
//! Exactly B messages are kept: each push beyond B drops the oldest one (iComet lets the buffer
//! grow to ⌈1.5B⌉−1 and then cuts it back to B, so it replays 10..14 messages for B = 10; rcomet
//! always replays the last 10). An empty ring is one null pointer: storage is allocated by the
//! first push and freed by `clear`. B = 0 keeps nothing. B is passed to `push` rather than stored,
//! since every channel of a hub shares it.
//! Depends on `comet::message` and `comet::seq`.

use std::collections::VecDeque;
use std::mem::size_of;

use super::message::Message;
use super::seq::seq_before;

/// Storage grows by doubling up to this many slots, then straight to B.
const FIRST_CAPACITY: usize = 4;

/// The last B messages of a channel, in seq order.
#[derive(Debug, Default)]
pub struct Ring {
    // Boxed on purpose: a nullable pointer keeps every idle channel 24 bytes smaller than an
    // inline (empty) `VecDeque`; the second allocation only exists for channels with messages.
    #[allow(clippy::box_collection)]
    msgs: Option<Box<VecDeque<Message>>>,
}

impl Ring {
    /// An empty ring; allocates nothing.
    pub const fn new() -> Ring {
        Ring { msgs: None }
    }

    /// Appends `msg`, dropping the oldest message when `capacity` are already held. Measured:
    /// ≈ 14 ns into a full ring of 10 (benches/ring.rs).
    pub fn push(&mut self, msg: Message, capacity: usize) {
        if capacity == 0 {
            return;
        }
        let msgs = self
            .msgs
            .get_or_insert_with(|| Box::new(VecDeque::with_capacity(capacity.min(FIRST_CAPACITY))));
        while msgs.len() >= capacity {
            msgs.pop_front();
        }
        if msgs.len() == msgs.capacity() {
            // Grow geometrically but never past the ring size.
            let target = capacity.min(msgs.len().saturating_mul(2).max(FIRST_CAPACITY));
            msgs.reserve_exact(target.saturating_sub(msgs.len()));
        }
        msgs.push_back(msg);
    }

    /// Drops every message and frees the storage. Seq numbering is the channel's business.
    pub fn clear(&mut self) {
        self.msgs = None;
    }

    /// Number of messages held.
    pub fn len(&self) -> usize {
        self.msgs.as_ref().map_or(0, |m| m.len())
    }

    /// True when no message is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Seq of the oldest message held.
    pub fn oldest_seq(&self) -> Option<u32> {
        self.msgs.as_ref()?.front().map(|m| m.seq)
    }

    /// Seq of the newest message held.
    #[cfg(test)]
    pub fn newest_seq(&self) -> Option<u32> {
        self.msgs.as_ref()?.back().map(|m| m.seq)
    }

    /// Messages with seq ≥ `seq`, oldest first. When `seq` is older than the oldest message held,
    /// that is every message (the gap is not signalled here; the client sees the seq jump).
    pub fn since(&self, seq: u32) -> impl Iterator<Item = &Message> {
        self.msgs
            .iter()
            .flat_map(|m| m.iter())
            .skip_while(move |m| seq_before(m.seq, seq))
    }

    /// Every message held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Message> {
        self.msgs.iter().flat_map(|m| m.iter())
    }

    /// Heap bytes owned by the ring itself (the message JSON buffers are shared and not counted).
    pub fn heap_bytes(&self) -> usize {
        self.msgs.as_ref().map_or(0, |m| {
            size_of::<VecDeque<Message>>() + m.capacity() * size_of::<Message>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comet::message::MsgType;
    use crate::comet::seq::seq_after;

    fn msg(seq: u32) -> Message {
        Message::new(MsgType::Data, b"c", seq, b"x")
    }

    fn seqs<'a>(it: impl Iterator<Item = &'a Message>) -> Vec<u32> {
        it.map(|m| m.seq).collect()
    }

    #[test]
    fn empty_ring_costs_nothing() {
        let ring = Ring::new();
        assert_eq!(size_of::<Ring>(), size_of::<usize>());
        assert_eq!(ring.heap_bytes(), 0);
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.oldest_seq(), None);
        assert_eq!(seqs(ring.since(1)), Vec::<u32>::new());
    }

    #[test]
    fn keeps_exactly_b() {
        let mut ring = Ring::new();
        for s in 1..=25 {
            ring.push(msg(s), 10);
            assert!(ring.len() <= 10);
        }
        assert_eq!(ring.len(), 10);
        assert_eq!(ring.oldest_seq(), Some(16));
        assert_eq!(ring.newest_seq(), Some(25));
        assert_eq!(seqs(ring.iter()), (16..=25).collect::<Vec<_>>());
        // Storage never exceeds B slots.
        assert!(ring.heap_bytes() <= size_of::<VecDeque<Message>>() + 10 * size_of::<Message>());
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut ring = Ring::new();
        ring.push(msg(1), 0);
        assert!(ring.is_empty());
        assert_eq!(ring.heap_bytes(), 0);
    }

    #[test]
    fn since_replays_from_seq_or_everything() {
        let mut ring = Ring::new();
        for s in 1..=14 {
            ring.push(msg(s), 10);
        }
        assert_eq!(seqs(ring.since(12)), vec![12, 13, 14]);
        assert_eq!(seqs(ring.since(5)), (5..=14).collect::<Vec<_>>());
        assert_eq!(seqs(ring.since(1)), (5..=14).collect::<Vec<_>>());
        assert_eq!(seqs(ring.since(15)), Vec::<u32>::new());
    }

    #[test]
    fn since_across_wrap() {
        let mut ring = Ring::new();
        let mut s = u32::MAX - 2;
        for _ in 0..6 {
            ring.push(msg(s), 4);
            s = seq_after(s);
        }
        // Held: MAX, 1, 2, 3 (0 is skipped).
        assert_eq!(seqs(ring.iter()), vec![u32::MAX, 1, 2, 3]);
        assert_eq!(seqs(ring.since(u32::MAX - 10)), vec![u32::MAX, 1, 2, 3]);
        assert_eq!(seqs(ring.since(1)), vec![1, 2, 3]);
        assert_eq!(seqs(ring.since(u32::MAX)), vec![u32::MAX, 1, 2, 3]);
    }

    #[test]
    fn clear_frees() {
        let mut ring = Ring::new();
        ring.push(msg(1), 10);
        assert!(ring.heap_bytes() > 0);
        ring.clear();
        assert_eq!(ring.heap_bytes(), 0);
        assert!(ring.is_empty());
    }

    #[test]
    fn large_capacity_is_not_preallocated() {
        let mut ring = Ring::new();
        ring.push(msg(1), 1_000_000);
        assert!(ring.heap_bytes() < 1024);
    }
}
