//! One channel's authoritative state, held by its home hub, and the subscription catch-up rule.
//! Depends on `comet::{auth, keys, message, ring, seq, snapshot}`.
//!
//! Kept to 56 bytes: the name is the hub's map key (not repeated here), the ring is one nullable
//! pointer, the home's own subscribers are 8 bytes inline (`Keys`: none or one without an
//! allocation), and the presence re-announcement needs no counter (the hub derives each
//! channel's announcement tick from its `epoch`; see `hub`).

use super::auth::{hex_matches, to_hex, AuthToken};
use super::keys::Keys;
use super::message::Message;
use super::ring::Ring;
use super::seq::{seq_after, seq_before, FIRST};
use super::snapshot::{SavedChannel, SavedMessage};

/// What a new subscriber gets before live messages.
#[derive(Debug, Clone)]
pub enum CatchUp {
    /// Send a `next_seq` with this seq (a long-poll ends with it).
    NextSeq(u32),
    /// Send these stored messages, oldest first (each broadcast followed by a `next_seq`).
    Replay(Vec<Message>),
    /// Nothing to send yet: wait for live messages.
    Wait,
    /// A resuming client (WebSocket, SSE with ids) cannot continue where it was: the channel is
    /// another incarnation than the one it knew, or its seq fell off the replay ring. It is told
    /// with a `reset` message carrying `seq` (where delivery continues) and gets `replay`, the
    /// stored messages from `seq` on.
    Reset { seq: u32, replay: Vec<Message> },
}

/// How a resumable subscriber (WebSocket, SSE with ids) asks: besides its seq, the channel
/// incarnation it last saw, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resume {
    /// The epoch it last saw (`None`: a first connection, which cannot be told of a new one).
    pub epoch: Option<u32>,
}

/// The state of one channel.
#[derive(Debug)]
pub struct Channel {
    auth_token: AuthToken,
    /// Bit `w` set: worker `w` has at least one subscriber of this channel.
    pub(crate) workers: u64,
    pub(crate) ring: Ring,
    /// The keys of the home worker's own subscribers of this channel (the home's part of the
    /// worker's subscriber index; see `hub::local_keys`).
    pub(crate) local: Keys,
    seq_next: u32,
    /// Idle countdown in ticks; the channel is freed when it drops below zero without subscribers.
    pub(crate) countdown: i32,
    pub(crate) subscribers: u32,
    /// Identity of this incarnation of the channel within its hub (a re-created channel gets a new
    /// one), so stale unsubscribes from before a `/close` are recognised.
    epoch: u32,
}

impl Channel {
    /// A new channel with seq 1, an empty ring and no subscribers.
    pub fn new(auth_token: AuthToken, epoch: u32, countdown: i32) -> Channel {
        Channel {
            auth_token,
            workers: 0,
            ring: Ring::new(),
            local: Keys::default(),
            seq_next: FIRST,
            countdown,
            subscribers: 0,
            epoch,
        }
    }

    /// The seq the next stored message will get.
    pub fn seq_next(&self) -> u32 {
        self.seq_next
    }

    /// This incarnation's epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Number of subscribers on all workers.
    pub fn subscribers(&self) -> u32 {
        self.subscribers
    }

    /// Workers that have subscribers (bit per worker).
    pub fn workers(&self) -> u64 {
        self.workers
    }

    /// Idle countdown in ticks.
    pub fn countdown(&self) -> i32 {
        self.countdown
    }

    /// Messages currently stored.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The token as 32 lowercase hex digits.
    pub fn token_hex(&self) -> [u8; 32] {
        to_hex(&self.auth_token)
    }

    /// Constant-time check of a client-supplied hex token.
    pub fn token_matches(&self, given: &[u8]) -> bool {
        hex_matches(&self.auth_token, given)
    }

    /// Oldest replayable seq, as `/sign` reports it: `seq_next` when nothing is stored.
    pub fn seq_oldest(&self) -> u32 {
        self.ring.oldest_seq().unwrap_or(self.seq_next)
    }

    /// The channel's state as a snapshot saves it.
    pub fn save(&self, name: &[u8]) -> SavedChannel {
        SavedChannel {
            name: name.to_vec(),
            seq_next: self.seq_next,
            epoch: self.epoch,
            auth_token: self.auth_token,
            countdown: self.countdown,
            messages: self.ring.iter().map(SavedMessage::of).collect(),
        }
    }

    /// A channel as a snapshot saved it (no subscribers: they reconnect), its ring cut to
    /// `capacity` messages.
    pub fn restore(saved: &SavedChannel, capacity: usize) -> Channel {
        let mut ch = Channel::new(saved.auth_token, saved.epoch, saved.countdown);
        ch.seq_next = saved.seq_next;
        for m in &saved.messages {
            ch.ring.push(m.to_message(), capacity);
        }
        ch
    }

    /// Takes the next seq.
    pub fn take_seq(&mut self) -> u32 {
        let seq = self.seq_next;
        self.seq_next = seq_after(seq);
        seq
    }

    /// Cluster mode: this mirror takes the incarnation, token and next seq the store holds (its
    /// ring is refilled by the caller).
    pub(crate) fn take_identity(&mut self, epoch: u32, auth_token: AuthToken, seq_next: u32) {
        self.epoch = epoch;
        self.auth_token = auth_token;
        self.seq_next = seq_next;
    }

    /// Cluster mode: a message with seq `seq` was stored by the store; the next one follows it.
    pub(crate) fn stored(&mut self, seq: u32) {
        self.seq_next = seq_after(seq);
    }

    /// Raises the idle countdown to at least `ticks`.
    pub fn raise_countdown(&mut self, ticks: i32) {
        self.countdown = self.countdown.max(ticks);
    }

    /// Catch-up for a subscriber asking for seq `seq` (S) with N = `seq_next`:
    /// * S = 0 or S ahead of N → `NextSeq(N)`;
    /// * S = N → `Wait`;
    /// * S behind N and nothing stored (after `/clear`, or buffer size 0) → `NextSeq(N)`
    ///   (iComet waits silently here);
    /// * S behind N and messages stored → `Replay` of every stored message with seq ≥ S, or of
    ///   all of them when S is older than the oldest (the client sees the seq jump).
    pub fn catch_up(&self, seq: u32) -> CatchUp {
        let next = self.seq_next;
        if seq == 0 || seq_before(next, seq) || (seq != next && self.ring.is_empty()) {
            CatchUp::NextSeq(next)
        } else if seq == next {
            CatchUp::Wait
        } else {
            CatchUp::Replay(self.ring.since(seq).cloned().collect())
        }
    }

    /// Catch-up for a resumable subscriber: as [`catch_up`](Self::catch_up), except that a known
    /// epoch other than this incarnation's, or a seq behind what is stored (trimmed from the ring,
    /// or cleared), is a `Reset` to the oldest stored seq with everything stored from there.
    pub fn catch_up_resuming(&self, seq: u32, resume: Resume) -> CatchUp {
        let next = self.seq_next;
        let oldest = self.seq_oldest();
        let other_incarnation = resume.epoch.is_some_and(|e| e != self.epoch);
        let fell_off = seq != 0 && seq_before(seq, oldest);
        if other_incarnation || fell_off {
            return CatchUp::Reset {
                seq: oldest,
                replay: self.ring.since(oldest).cloned().collect(),
            };
        }
        if seq != 0 && seq != next && !seq_before(next, seq) {
            return CatchUp::Replay(self.ring.since(seq).cloned().collect());
        }
        self.catch_up(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comet::message::MsgType;

    fn channel_with(messages: u32, capacity: usize) -> Channel {
        let mut ch = Channel::new([7; 16], 1, 30);
        for _ in 0..messages {
            let seq = ch.take_seq();
            ch.ring
                .push(Message::new(MsgType::Data, b"c", seq, b"x"), capacity);
        }
        ch
    }

    fn replayed(c: CatchUp) -> Vec<u32> {
        match c {
            CatchUp::Replay(msgs) => msgs.iter().map(|m| m.seq).collect(),
            other => panic!("expected a replay, got {other:?}"),
        }
    }

    #[test]
    fn size_is_pinned() {
        assert_eq!(std::mem::size_of::<Channel>(), 56);
    }

    #[test]
    fn new_channel_starts_at_one() {
        let ch = Channel::new([1; 16], 9, 3);
        assert_eq!(ch.seq_next(), 1);
        assert_eq!(ch.seq_oldest(), 1);
        assert_eq!(ch.epoch(), 9);
        assert!(matches!(ch.catch_up(0), CatchUp::NextSeq(1)));
        assert!(matches!(ch.catch_up(1), CatchUp::Wait));
        assert!(matches!(ch.catch_up(5), CatchUp::NextSeq(1)));
    }

    #[test]
    fn catch_up_rules() {
        let ch = channel_with(2, 10); // seq_next 3, stored 1..=2
        assert!(matches!(ch.catch_up(0), CatchUp::NextSeq(3)));
        assert!(matches!(ch.catch_up(4), CatchUp::NextSeq(3)));
        assert!(matches!(ch.catch_up(3), CatchUp::Wait));
        assert_eq!(replayed(ch.catch_up(1)), vec![1, 2]);
        assert_eq!(replayed(ch.catch_up(2)), vec![2]);
        assert_eq!(ch.seq_oldest(), 1);
    }

    #[test]
    fn stale_seq_after_trim_replays_everything() {
        let ch = channel_with(25, 10); // stored 16..=25
        assert_eq!(ch.seq_oldest(), 16);
        assert_eq!(replayed(ch.catch_up(3)), (16..=25).collect::<Vec<_>>());
    }

    #[test]
    fn stale_seq_after_clear_gets_next_seq() {
        let mut ch = channel_with(4, 10);
        ch.ring.clear();
        assert!(matches!(ch.catch_up(2), CatchUp::NextSeq(5)));
        assert!(matches!(ch.catch_up(5), CatchUp::Wait));
        assert_eq!(ch.seq_oldest(), 5);
    }

    #[test]
    fn zero_buffer_never_replays() {
        let ch = channel_with(4, 0);
        assert!(matches!(ch.catch_up(2), CatchUp::NextSeq(5)));
    }

    #[test]
    fn catch_up_across_wrap() {
        let mut ch = Channel::new([0; 16], 1, 30);
        ch.seq_next = u32::MAX - 1;
        for _ in 0..4 {
            let seq = ch.take_seq();
            ch.ring
                .push(Message::new(MsgType::Data, b"c", seq, b"x"), 10);
        }
        // Stored: MAX-1, MAX, 1, 2; next 3.
        assert_eq!(ch.seq_next(), 3);
        assert_eq!(replayed(ch.catch_up(u32::MAX)), vec![u32::MAX, 1, 2]);
        assert_eq!(replayed(ch.catch_up(1)), vec![1, 2]);
        assert!(matches!(ch.catch_up(3), CatchUp::Wait));
        assert!(matches!(ch.catch_up(4), CatchUp::NextSeq(3)));
        // Around the signed boundary.
        let mut ch = Channel::new([0; 16], 1, 30);
        ch.seq_next = i32::MAX as u32;
        let seq = ch.take_seq();
        ch.ring
            .push(Message::new(MsgType::Data, b"c", seq, b"x"), 10);
        assert_eq!(ch.seq_next(), 0x8000_0000);
        assert_eq!(
            replayed(ch.catch_up(i32::MAX as u32)),
            vec![i32::MAX as u32]
        );
        assert!(matches!(
            ch.catch_up(0x8000_0001),
            CatchUp::NextSeq(0x8000_0000)
        ));
    }

    fn reset(c: CatchUp) -> (u32, Vec<u32>) {
        match c {
            CatchUp::Reset { seq, replay } => (seq, replay.iter().map(|m| m.seq).collect()),
            other => panic!("expected a reset, got {other:?}"),
        }
    }

    #[test]
    fn resuming_in_the_same_incarnation_is_an_ordinary_catch_up() {
        let ch = channel_with(4, 10); // epoch 1, stored 1..=4, next 5
        let same = Resume { epoch: Some(1) };
        assert_eq!(replayed(ch.catch_up_resuming(2, same)), vec![2, 3, 4]);
        assert!(matches!(ch.catch_up_resuming(5, same), CatchUp::Wait));
        assert!(matches!(ch.catch_up_resuming(0, same), CatchUp::NextSeq(5)));
        let first = Resume { epoch: None };
        assert_eq!(replayed(ch.catch_up_resuming(3, first)), vec![3, 4]);
    }

    #[test]
    fn another_incarnation_is_a_reset_with_everything_stored() {
        let ch = channel_with(3, 10);
        let other = Resume { epoch: Some(77) };
        assert_eq!(reset(ch.catch_up_resuming(2, other)), (1, vec![1, 2, 3]));
        assert_eq!(reset(ch.catch_up_resuming(0, other)), (1, vec![1, 2, 3]));
        let empty = Channel::new([1; 16], 5, 3);
        assert_eq!(reset(empty.catch_up_resuming(9, other)), (1, vec![]));
    }

    #[test]
    fn a_seq_off_the_ring_is_a_gap_reset() {
        let ch = channel_with(25, 10); // stored 16..=25
        let same = Resume { epoch: Some(1) };
        assert_eq!(
            reset(ch.catch_up_resuming(3, same)),
            (16, (16..=25).collect::<Vec<_>>())
        );
        let mut cleared = channel_with(4, 10);
        cleared.ring.clear();
        assert_eq!(reset(cleared.catch_up_resuming(2, same)), (5, vec![]));
        assert!(matches!(cleared.catch_up_resuming(5, same), CatchUp::Wait));
    }

    #[test]
    fn token_check() {
        let ch = Channel::new([0xab; 16], 1, 30);
        let hex = ch.token_hex();
        assert_eq!(&hex, b"abababababababababababababababab");
        assert!(ch.token_matches(&hex));
        assert!(!ch.token_matches(b""));
    }
}
