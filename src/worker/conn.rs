//! The fixed-size slot every connection lives in (a test pins its size), its phases and flags.
//!
//! An idle connection owns no buffer: `inbuf` holds only a partial request, `out` only unsent
//! output, `sub` only an active subscription; each is `None` otherwise.
//!
//! Depends on: engine (ConnId, OutQueue), worker::subs (Subscription).

use super::subs::Subscription;
use crate::engine::{ConnId, OutQueue};

/// Which listener accepted the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Port {
    Admin = 0,
    Front = 1,
}

/// Where a connection is in its life. Each variant names what moves it on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Phase {
    /// Between requests: bytes arriving start a request (keep-alive timer armed).
    Idle,
    /// Part of a request head or body has arrived (header timer armed).
    Reading,
    /// A request was handed to another core (or the channel's home); its reply resumes the
    /// connection. Further pipelined bytes wait in `inbuf`.
    Waiting,
    /// A subscription response is open (noop timer armed); a delivery, /close, a noop or the peer
    /// closing moves it on.
    Subscribed,
    /// A /psub presence stream is open until the peer leaves.
    Presence,
    /// Being torn down: output is flushed if possible, then the slot is freed.
    Closing,
}

/// Bit flags of a connection.
pub mod flags {
    /// Queued in the worker's flush list this turn.
    pub const DIRTY: u8 = 1 << 0;
    /// Reading is paused (too much output queued, or waiting for a cross-core reply).
    pub const PAUSED: u8 = 1 << 1;
    /// The peer closed its side or the socket failed.
    pub const PEER_CLOSED: u8 = 1 << 2;
    /// Close as soon as the queued output is sent.
    pub const CLOSE_AFTER_FLUSH: u8 = 1 << 3;
    /// The current request is HTTP/1.0.
    pub const HTTP10: u8 = 1 << 4;
    /// The current request keeps the connection open afterwards.
    pub const KEEP_ALIVE: u8 = 1 << 5;
    /// `100 Continue` was sent for the current request.
    pub const CONTINUE_SENT: u8 = 1 << 6;
    /// Admin connection from an address the allow/deny list accepts.
    pub const ADMIN_ALLOWED: u8 = 1 << 7;
}

/// One connection slot.
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub port: Port,
    pub phase: Phase,
    pub flags: u8,
    /// The tick at which this connection's timer is due (0 = none).
    pub deadline: u32,
    /// The tick of this connection's entry in the timer wheel (0 = none). Entries with another tick
    /// are stale and ignored.
    pub wheel_at: u32,
    /// Bytes of a request that is not complete yet (or pipelined requests waiting their turn).
    /// Boxed so the slot holds 8 bytes instead of a 24-byte `Vec` for every idle connection.
    #[allow(clippy::box_collection)]
    pub inbuf: Option<Box<Vec<u8>>>,
    /// Output not yet taken by the kernel.
    pub out: Option<Box<OutQueue>>,
    /// The open subscription, when `phase` is `Subscribed` (or `Waiting` for a subscribe reply).
    pub sub: Option<Box<Subscription>>,
}

impl Conn {
    pub fn new(id: ConnId, port: Port) -> Conn {
        Conn {
            id,
            port,
            phase: Phase::Idle,
            flags: 0,
            deadline: 0,
            wheel_at: 0,
            inbuf: None,
            out: None,
            sub: None,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn set(&mut self, flag: u8) {
        self.flags |= flag;
    }

    pub fn clear(&mut self, flag: u8) {
        self.flags &= !flag;
    }

    /// Bytes this connection holds in borrowed buffers (counted against the worker's budget).
    pub fn buffered(&self) -> usize {
        self.inbuf.as_ref().map_or(0, |b| b.capacity())
            + self.out.as_ref().map_or(0, |o| o.queued())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-connection byte budget in README.md starts from this number: keep it small.
    #[test]
    fn a_connection_slot_stays_small() {
        assert_eq!(std::mem::size_of::<Conn>(), 40);
    }
}
