//! The 64-bit user-data word of every io_uring operation the uring backend submits. Each operation
//! kind has one named layout, so a completion says exactly what it completes and whether it is
//! stale: connection operations carry the generation of their direct-descriptor slot, and a slot's
//! generation moves on each time the kernel hands its index to a new connection.
//!
//! Layout: the operation kind in the top byte, then per kind
//! - `Poll`, `Close`: slot generation (low 24 bits) in bits 32..56, [`ConnId`] in bits 0..32;
//! - `Recv`: receive-buffer index; `Send`: send-record index;
//! - `Accept`: multishot bit at bit 32, listener index in bits 0..32;
//! - `AcceptPeer`: index of the address buffer of a single-shot accept that returns the peer (the
//!   buffer's record names the listener);
//! - `Refuse`: listener index (a readiness poll of a listener while every table is full);
//! - `RingReady`: index of the ring whose completion queue became readable;
//! - `Cancel`: nothing; `Waker`: the crate-wide [`Token::WAKER`] word (all ones).
//!
//! Depends on: engine (Token, ConnId).

use crate::engine::{ConnId, Token};

/// Generations are compared on their low 24 bits: a slot would have to be reused 16 million times
/// while one of its completions is still queued for a stale one to pass as current.
pub(crate) const GENERATION_MASK: u32 = 0x00ff_ffff;

const KIND_SHIFT: u32 = 56;
const POLL: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const CLOSE: u64 = 4;
const CANCEL: u64 = 5;
const ACCEPT: u64 = 6;
const RING_READY: u64 = 7;
const ACCEPT_PEER: u64 = 8;
const INSTALL: u64 = 9;
const ADOPT: u64 = 10;
const REFUSE: u64 = 11;
const LOW_32: u64 = 0xffff_ffff;

/// What a completion completes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    /// The readiness poll of a connection (multishot).
    Poll { conn: ConnId, generation: u32 },
    /// A receive into the receive buffer with this index.
    Recv { buffer: u32 },
    /// The send described by the send record with this index.
    Send { record: u32 },
    /// The close of a connection's direct descriptor.
    Close { conn: ConnId, generation: u32 },
    /// A cancellation request (its result is not needed).
    Cancel,
    /// An accept on listener `listener`, multishot or single.
    Accept { listener: u32, multishot: bool },
    /// A single-shot accept writing the peer address into the address buffer with this index.
    AcceptPeer { addr: u32 },
    /// The poll, on the first ring, of another ring's file descriptor.
    RingReady { ring: u32 },
    /// The poll of the cross-core waker eventfd.
    Waker,
    /// Turning a connection's direct descriptor into an ordinary one, to hand it to another worker.
    Install { conn: ConnId, generation: u32 },
    /// Registering a handed-over socket into this ring's table (adoption record `record`).
    Adopt { record: u32 },
    /// The readiness poll of listener `listener` while no table has room: its queued connections
    /// are refused (see `listeners`).
    Refuse { listener: u32 },
}

impl Op {
    pub(crate) fn encode(self) -> u64 {
        let kind = |k: u64| k << KIND_SHIFT;
        let conn_word = |conn: ConnId, generation: u32| {
            (u64::from(generation & GENERATION_MASK) << 32) | u64::from(conn.0)
        };
        match self {
            Op::Poll { conn, generation } => kind(POLL) | conn_word(conn, generation),
            Op::Recv { buffer } => kind(RECV) | u64::from(buffer),
            Op::Send { record } => kind(SEND) | u64::from(record),
            Op::Close { conn, generation } => kind(CLOSE) | conn_word(conn, generation),
            Op::Cancel => kind(CANCEL),
            Op::Accept {
                listener,
                multishot,
            } => kind(ACCEPT) | (u64::from(multishot) << 32) | u64::from(listener),
            Op::RingReady { ring } => kind(RING_READY) | u64::from(ring),
            Op::AcceptPeer { addr } => kind(ACCEPT_PEER) | u64::from(addr),
            Op::Install { conn, generation } => kind(INSTALL) | conn_word(conn, generation),
            Op::Adopt { record } => kind(ADOPT) | u64::from(record),
            Op::Refuse { listener } => kind(REFUSE) | u64::from(listener),
            Op::Waker => Token::WAKER,
        }
    }

    /// Decodes a word this module encoded; `None` for anything else.
    pub(crate) fn decode(word: u64) -> Option<Op> {
        if word == Token::WAKER {
            return Some(Op::Waker);
        }
        let low = (word & LOW_32) as u32;
        let generation = ((word >> 32) as u32) & GENERATION_MASK;
        Some(match word >> KIND_SHIFT {
            POLL => Op::Poll {
                conn: ConnId(low),
                generation,
            },
            RECV => Op::Recv { buffer: low },
            SEND => Op::Send { record: low },
            CLOSE => Op::Close {
                conn: ConnId(low),
                generation,
            },
            CANCEL => Op::Cancel,
            ACCEPT => Op::Accept {
                listener: low,
                multishot: (word >> 32) & 1 == 1,
            },
            RING_READY => Op::RingReady { ring: low },
            ACCEPT_PEER => Op::AcceptPeer { addr: low },
            INSTALL => Op::Install {
                conn: ConnId(low),
                generation,
            },
            ADOPT => Op::Adopt { record: low },
            REFUSE => Op::Refuse { listener: low },
            _ => return None,
        })
    }
}

/// True when `generation` (a slot's full counter) is the one a completion carried.
pub(crate) fn same_generation(current: u32, carried: u32) -> bool {
    current & GENERATION_MASK == carried & GENERATION_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_stays_distinct() {
        let ops = [
            Op::Poll {
                conn: ConnId(0x0030_0005),
                generation: 0x00ab_cdef,
            },
            Op::Recv { buffer: 63 },
            Op::Send { record: 7 },
            Op::Close {
                conn: ConnId(u32::MAX),
                generation: GENERATION_MASK,
            },
            Op::Cancel,
            Op::Accept {
                listener: 2,
                multishot: true,
            },
            Op::Accept {
                listener: 2,
                multishot: false,
            },
            Op::RingReady { ring: 49 },
            Op::AcceptPeer { addr: 0 },
            Op::AcceptPeer { addr: 5 },
            Op::Install {
                conn: ConnId(0x0030_0005),
                generation: 3,
            },
            Op::Adopt { record: 9 },
            Op::Refuse { listener: 1 },
            Op::Waker,
        ];
        let words: Vec<u64> = ops.iter().map(|op| op.encode()).collect();
        for (op, word) in ops.iter().zip(&words) {
            assert_eq!(Op::decode(*word), Some(*op));
        }
        let mut unique = words.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), words.len());
        assert_eq!(Op::Waker.encode(), Token::WAKER);
    }

    #[test]
    fn generations_compare_on_their_low_bits_and_unknown_words_decode_to_none() {
        let word = Op::Poll {
            conn: ConnId(1),
            generation: 0x0100_0002,
        }
        .encode();
        let Some(Op::Poll { generation, .. }) = Op::decode(word) else {
            panic!("poll word did not decode");
        };
        assert!(same_generation(0x0100_0002, generation));
        assert!(same_generation(0x0200_0002, generation));
        assert!(!same_generation(3, generation));
        assert_eq!(Op::decode(0), None);
        assert_eq!(Op::decode(0x2a << KIND_SHIFT), None);
    }
}
