//! Per-connection state and the slab that holds it: fixed-size slots addressed by index plus a
//! generation (so an epoll event for a reused slot is recognised as stale), a bounded pending-write
//! buffer, and the write helpers. No task or thread per connection. Depends on http_reader,
//! seq_check, stats.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::TcpStream;

use crate::http_reader::ResponseReader;
use crate::seq_check::SeqTracker;
use crate::stats::{Counters, ErrorKind};

/// Largest amount of request bytes a connection may have waiting for the socket.
pub const MAX_OUT: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Free,
    Subscriber,
    Admin,
    Ping,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No socket: waiting for its /sign reply.
    WaitSign,
    /// connect() in progress.
    Connecting,
    /// Request sent, response head not yet complete.
    AwaitHead,
    /// Head received: reading the body (or idle keep-alive for admin and ping).
    Open,
}

/// Work queued on an admin or ping connection, answered in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Sign {
        slot: u32,
        gen: u32,
    },
    Push {
        id: u64,
    },
    Ping {
        sent_ns: u64,
    },
    /// An admin-scenario request (--op), sent at `sent_ns`.
    Admin {
        sent_ns: u64,
    },
}

/// What a subscriber remembers between messages.
#[derive(Debug, Default)]
pub struct SubState {
    pub seq: SeqTracker,
    /// Heartbeat number to send on the next poll.
    pub noop: i32,
    /// Counted in `Counters::held`.
    pub held: bool,
    /// Still part of the initial ramp (neither held nor failed yet).
    pub ramping: bool,
    /// Frames received since this subscription started.
    pub frames: u32,
    /// Token from /sign, when signing.
    pub token: Option<Box<[u8]>>,
}

impl SubState {
    /// The connection is now held: counts it once, and ends its part in the initial ramp.
    /// True when this ended the ramp for it (the first time an initial-ramp connection is held).
    pub fn mark_held(&mut self, counters: &mut Counters, ramp_pending: &mut u64) -> bool {
        if self.held {
            return false;
        }
        self.held = true;
        counters.add_held();
        if !self.ramping {
            return false;
        }
        self.ramping = false;
        *ramp_pending = ramp_pending.saturating_sub(1);
        true
    }
}

#[derive(Debug)]
pub struct Conn {
    pub stream: Option<TcpStream>,
    pub gen: u32,
    pub role: Role,
    pub phase: Phase,
    /// When the current phase began (timeouts).
    pub since_ns: u64,
    /// When this connection's connect began (connect latency, churn cycle time).
    pub started_ns: u64,
    /// Global index: channel and source address are derived from it.
    pub index: u64,
    pub reader: ResponseReader,
    /// Request bytes the socket has not taken yet; empty (no allocation) when idle.
    pub out: Vec<u8>,
    pub sub: SubState,
    pub jobs: VecDeque<Job>,
    /// An admin reply whose head arrived in an earlier read than its end.
    pub partial_reply: Option<Box<crate::admin::Reply>>,
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            stream: None,
            gen: 0,
            role: Role::Free,
            phase: Phase::Connecting,
            since_ns: 0,
            started_ns: 0,
            index: 0,
            reader: ResponseReader::default(),
            out: Vec::new(),
            sub: SubState::default(),
            jobs: VecDeque::new(),
            partial_reply: None,
        }
    }
}

impl Conn {
    /// Writes `bytes`, keeping what the socket does not take for the next writable event.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        if self.out.len() + bytes.len() > MAX_OUT {
            return Err(ErrorKind::Closed);
        }
        if !self.out.is_empty() || self.phase == Phase::Connecting {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(ErrorKind::Closed);
        };
        let written = write_some(stream, bytes)?;
        if let Some(rest) = bytes.get(written..) {
            self.out.extend_from_slice(rest);
        }
        Ok(())
    }

    /// Pushes pending bytes after a writable event.
    pub fn flush(&mut self) -> Result<(), ErrorKind> {
        if self.out.is_empty() {
            return Ok(());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(ErrorKind::Closed);
        };
        let written = write_some(stream, &self.out)?;
        self.out.drain(..written.min(self.out.len()));
        if self.out.is_empty() {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Drops the socket and any buffered bytes; the slot keeps its identity.
    pub fn drop_socket(&mut self) {
        self.stream = None;
        self.reader.reset();
        self.out = Vec::new();
    }
}

/// Writes as much as the socket takes without blocking.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> Result<usize, ErrorKind> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(bytes.get(written..).unwrap_or(&[])) {
            Ok(0) => return Err(ErrorKind::Closed),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ErrorKind::Closed),
        }
    }
    Ok(written)
}

/// Epoll token of a slot: generation in the high half, index in the low half.
pub fn token(slot: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(slot)
}

pub fn split_token(token: u64) -> (u32, u32) {
    (token as u32, (token >> 32) as u32)
}

/// Connection slots: grown on demand up to `cap`, reused through a free list.
#[derive(Debug, Default)]
pub struct Slab {
    conns: Vec<Conn>,
    free: Vec<u32>,
    cap: usize,
    live: usize,
}

impl Slab {
    pub fn new(cap: usize) -> Slab {
        Slab {
            conns: Vec::new(),
            free: Vec::new(),
            cap: cap.min(u32::MAX as usize),
            live: 0,
        }
    }

    /// Takes a free slot for `role`; None when the slab is full.
    pub fn alloc(&mut self, role: Role) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.conns.len() < self.cap => {
                self.conns.push(Conn::default());
                (self.conns.len() - 1) as u32
            }
            None => return None,
        };
        let conn = self.conns.get_mut(slot as usize)?;
        let gen = conn.gen;
        *conn = Conn::default();
        conn.gen = gen;
        conn.role = role;
        self.live += 1;
        Some(slot)
    }

    /// Returns a slot to the free list; its generation changes so old tokens go stale.
    pub fn release(&mut self, slot: u32) {
        if let Some(conn) = self.conns.get_mut(slot as usize) {
            if conn.role != Role::Free {
                let gen = conn.gen.wrapping_add(1);
                *conn = Conn::default();
                conn.gen = gen;
                self.free.push(slot);
                self.live -= 1;
            }
        }
    }

    /// Gives a live slot a new generation (its socket was replaced); returns it.
    pub fn bump_gen(&mut self, slot: u32) -> Option<u32> {
        let conn = self.conns.get_mut(slot as usize)?;
        conn.gen = conn.gen.wrapping_add(1);
        Some(conn.gen)
    }

    /// The slot if it is in use and still has this generation.
    pub fn get_mut(&mut self, slot: u32, gen: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(slot as usize)
            .filter(|c| c.gen == gen && c.role != Role::Free)
    }

    pub fn get(&self, slot: u32) -> Option<&Conn> {
        self.conns.get(slot as usize)
    }

    pub fn slot_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.conns.get_mut(slot as usize)
    }

    pub fn live(&self) -> usize {
        self.live
    }

    pub fn is_full(&self) -> bool {
        self.live >= self.cap
    }

    /// Number of slots ever created (iteration bound).
    pub fn slots(&self) -> u32 {
        self.conns.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_is_counted_once_and_ends_the_ramp_once() {
        let mut counters = Counters::default();
        let mut pending = 2u64;
        let mut sub = SubState {
            ramping: true,
            ..SubState::default()
        };
        assert!(sub.mark_held(&mut counters, &mut pending));
        assert!(!sub.mark_held(&mut counters, &mut pending));
        assert_eq!((counters.held, pending, sub.ramping), (1, 1, false));
        let mut late = SubState::default();
        assert!(!late.mark_held(&mut counters, &mut pending));
        assert_eq!((counters.held, pending), (2, 1));
    }

    #[test]
    fn slots_are_reused_with_new_generation() {
        let mut s = Slab::new(2);
        let a = s.alloc(Role::Subscriber).expect("a");
        let b = s.alloc(Role::Ping).expect("b");
        assert!(s.alloc(Role::Ping).is_none());
        let gen = s.get(a).map(|c| c.gen).expect("gen");
        s.release(a);
        s.release(a); // double release is harmless
        assert!(s.get_mut(a, gen).is_none());
        let c = s.alloc(Role::Admin).expect("c");
        assert_eq!(c, a);
        assert!(s.get_mut(c, gen + 1).is_some());
        assert_eq!(s.live(), 2);
        assert_ne!(b, c);
    }

    #[test]
    fn tokens_round_trip() {
        assert_eq!(split_token(token(7, 9)), (7, 9));
        assert_eq!(split_token(token(u32::MAX, u32::MAX)), (u32::MAX, u32::MAX));
    }

    #[test]
    fn send_buffers_until_connected_and_is_bounded() {
        let mut c = Conn::default();
        assert_eq!(c.send(b"abc"), Ok(()));
        assert_eq!(c.out, b"abc");
        let big = vec![0u8; MAX_OUT];
        assert_eq!(c.send(&big), Err(ErrorKind::Closed));
    }

    #[test]
    fn conn_slot_stays_small() {
        assert!(
            std::mem::size_of::<Conn>() <= 256,
            "{}",
            std::mem::size_of::<Conn>()
        );
    }
}
