//! The fixed-size slot every connection lives in (a test pins its size), its phases and flags,
//! the per-connection extras that only busy connections own, and token lookups in the slab.
//!
//! An idle connection owns no buffer: `inbuf` holds only a partial request, `out` only unsent
//! output, `ext` only an open subscription or admin replies still on their way; each is `None`
//! otherwise.
//!
//! Depends on: engine (ConnId, OutQueue, Token), slab, api (Subscription, SubscribeRequest),
//! http (HeadScan), worker::replies.

use super::replies::ReplyQueue;
use crate::api::subscribe::Subscription;
use crate::api::SubscribeRequest;
use crate::engine::{ConnId, OutQueue, Token};
use crate::http::HeadScan;
use crate::slab::Slab;

/// Which listener accepted the connection. The discriminant is the listener's tag in the backend.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Port {
    Admin = 0,
    Front = 1,
}

impl Port {
    /// The backend tag of this port's listeners.
    pub const fn tag(self) -> u32 {
        self as u32
    }

    /// The port whose listeners carry `tag`.
    pub fn from_tag(tag: u32) -> Port {
        if tag == Port::Admin.tag() {
            Port::Admin
        } else {
            Port::Front
        }
    }
}

/// Where a connection is in its life. Each variant names what moves it on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Phase {
    /// Between requests: bytes arriving start a request (keep-alive timer armed).
    Idle,
    /// Part of a request head or body has arrived (header timer armed).
    Reading,
    /// A subscription request went to the channel's home; its answer resumes the connection.
    /// Further pipelined bytes wait in `inbuf`.
    Waiting,
    /// A subscription response is open (noop timer armed); a delivery, /close, a noop or the peer
    /// closing moves it on.
    Subscribed,
    /// An endless admin stream is open until the peer leaves: /psub presence, or
    /// `/stats/stream` (flag `STATS_STREAM`).
    Presence,
    /// Handed to its channel's home worker at the end of this turn (`handoff`); bytes that
    /// arrive meanwhile travel with it.
    Moving,
    /// Being torn down: output is flushed if possible, then the slot is freed.
    Closing,
}

/// Bit flags of a connection.
pub mod flags {
    /// Queued in the worker's flush list this turn.
    pub const DIRTY: u16 = 1 << 0;
    /// Reading is paused (too much output queued, or waiting for a cross-core reply).
    pub const PAUSED: u16 = 1 << 1;
    /// The peer closed its side or the socket failed.
    pub const PEER_CLOSED: u16 = 1 << 2;
    /// Close as soon as the queued output is sent.
    pub const CLOSE_AFTER_FLUSH: u16 = 1 << 3;
    /// The current request is HTTP/1.0.
    pub const HTTP10: u16 = 1 << 4;
    /// The current request keeps the connection open afterwards.
    pub const KEEP_ALIVE: u16 = 1 << 5;
    /// `100 Continue` was sent for the current request.
    pub const CONTINUE_SENT: u16 = 1 << 6;
    /// Admin connection from an address the allow/deny list accepts.
    pub const ADMIN_ALLOWED: u16 = 1 << 7;
    /// The current request's `Connection` header said `close` (its reply says so too, on HTTP/1.0
    /// as well as 1.1).
    pub const ASKS_CLOSE: u16 = 1 << 8;
    /// A WebSocket was pinged with its last heartbeat and has sent nothing since.
    pub const AWAITING_PONG: u16 = 1 << 9;
    /// The endless admin stream (phase `Presence`) is a `/stats/stream`, not a `/psub`.
    pub const STATS_STREAM: u16 = 1 << 10;
    /// A push of this admin connection found its channel's home `limits.publish_ahead` behind
    /// and waits for the home's reply; the connection's next requests wait for it too.
    pub const WINDOW_WAIT: u16 = 1 << 11;
}

/// What a busy connection owns beyond its slot.
#[derive(Debug)]
pub enum Ext {
    /// The open subscription (phase `Subscribed`, or `Waiting` for the home's answer).
    Sub(Subscription),
    /// Admin replies that must go out in request order, some still being computed elsewhere.
    Replies(ReplyQueue),
    /// On its way to its channel's home (phase `Moving`): the request it asked, and its socket
    /// once the backend handed it out.
    Moving(Box<Moving>),
}

/// A connection being handed to its channel's home.
#[derive(Debug)]
pub struct Moving {
    pub request: SubscribeRequest,
    /// The socket as an ordinary descriptor (a backend that hands over later fills it in).
    pub socket: Option<std::os::fd::OwnedFd>,
}

/// One connection slot.
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub port: Port,
    pub phase: Phase,
    pub flags: u16,
    /// The tick at which this connection's timer is due (0 = none); the once-a-second sweep of
    /// `deadlines` fires it.
    pub deadline: u32,
    /// Bytes of a request that is not complete yet (or pipelined requests waiting their turn),
    /// with how far the parse of its head got. Boxed so the slot holds 8 bytes for every idle
    /// connection.
    pub inbuf: Option<Box<InBuf>>,
    /// Output not yet taken by the kernel.
    pub out: Option<Box<OutQueue>>,
    pub ext: Option<Box<Ext>>,
}

/// A connection's buffered input: the bytes, and the [`HeadScan`] of the request at their
/// start (so a head that trickles in is not parsed again from its first byte on every read). It
/// reads and grows as the `Vec` it wraps; whoever removes bytes from its front resets the scan.
#[derive(Debug, Default)]
pub struct InBuf {
    pub bytes: Vec<u8>,
    pub scan: HeadScan,
}

impl std::ops::Deref for InBuf {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl std::ops::DerefMut for InBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl Conn {
    pub fn new(id: ConnId, port: Port) -> Conn {
        Conn {
            id,
            port,
            phase: Phase::Idle,
            flags: 0,
            deadline: 0,
            inbuf: None,
            out: None,
            ext: None,
        }
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn set(&mut self, flag: u16) {
        self.flags |= flag;
    }

    pub fn clear(&mut self, flag: u16) {
        self.flags &= !flag;
    }

    /// Bytes this connection holds in borrowed buffers (counted against the worker's budget).
    pub fn buffered(&self) -> usize {
        self.inbuf.as_ref().map_or(0, |b| b.capacity())
            + self.out.as_ref().map_or(0, |o| o.queued())
    }

    pub fn sub(&self) -> Option<&Subscription> {
        let Some(Ext::Sub(s)) = self.ext.as_deref() else {
            return None;
        };
        Some(s)
    }

    pub fn sub_mut(&mut self) -> Option<&mut Subscription> {
        let Some(Ext::Sub(s)) = self.ext.as_deref_mut() else {
            return None;
        };
        Some(s)
    }

    /// Takes the subscription out of the slot (leaving other extras in place).
    pub fn take_sub(&mut self) -> Option<Subscription> {
        match self.ext.take().map(|b| *b) {
            Some(Ext::Sub(s)) => Some(s),
            other => {
                self.ext = other.map(Box::new);
                None
            }
        }
    }

    pub fn replies(&self) -> Option<&ReplyQueue> {
        let Some(Ext::Replies(r)) = self.ext.as_deref() else {
            return None;
        };
        Some(r)
    }

    /// The admin reply queue, created when absent (admin connections only).
    pub fn replies_mut(&mut self) -> Option<&mut ReplyQueue> {
        if self.ext.is_none() {
            self.ext = Some(Box::new(Ext::Replies(ReplyQueue::default())));
        }
        let Some(Ext::Replies(r)) = self.ext.as_deref_mut() else {
            return None;
        };
        Some(r)
    }

    /// Replies still owed before new output may be written directly.
    pub fn replies_owed(&self) -> usize {
        self.replies().map_or(0, ReplyQueue::len)
    }
}

/// Token lookups in the connection slab: a slot whose generation moved on is gone.
pub trait Conns {
    fn at(&mut self, token: Token) -> Option<&mut Conn>;
    fn peek(&self, token: Token) -> Option<&Conn>;
}

impl Conns for Slab<Conn> {
    fn at(&mut self, token: Token) -> Option<&mut Conn> {
        self.get_mut(token.slot, token.generation)
    }

    fn peek(&self, token: Token) -> Option<&Conn> {
        self.get(token.slot, token.generation)
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

    #[test]
    fn listener_tags_name_their_port() {
        for port in [Port::Admin, Port::Front] {
            assert_eq!(Port::from_tag(port.tag()), port);
        }
    }
}
