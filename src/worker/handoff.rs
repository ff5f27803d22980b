//! Subscribers move to their channel's home. A connection that subscribes to a channel whose
//! home is another worker is handed to that worker (one message carrying the socket, the flags,
//! any bytes that followed the request, and the request itself); from then on the subscription,
//! every delivery, every heartbeat and every long-poll cycle of that connection run where the
//! channel lives, with no cross-core message at all. A push then crosses cores at most once (from
//! the publisher's worker to the home).
//!
//! Backends hand sockets over in one step (epoll: the descriptor is process-wide) or in two
//! (io_uring: a direct descriptor is turned into an ordinary one, then registered in the other
//! ring); the worker keeps the connection in `Phase::Moving` until its socket is out, and the
//! adopting worker keeps the hand-over waiting until its backend reports the connection.
//!
//! Big channels fan out on every worker instead: once a channel has `SPREAD_AT` subscribers on
//! its home, the home tells each worker that hands it one more to keep the next ones where they
//! are (`Msg::Spread`); those subscribe from a distance (the home then mails each delivery, encoded
//! once, to every worker with subscribers).
//!
//! Depends on: worker (Worker, Conn, Msg), engine (Backend detach/adopt), api (requests).

use super::conn::{flags, Conn, Conns, Ext, Moving, Phase, Port};
use super::msg::{Adoption, Arriving, Msg};
use super::Worker;
use crate::api::SubscribeRequest;
use crate::comet::name::Name;
use crate::engine::{Backend, ConnId, Detach, Token};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

/// Subscribers of one channel on its home before new ones stay on their own workers.
pub const SPREAD_AT: usize = 64;

/// Channel names remembered as spread, per worker; the set starts over when it is full (a name
/// forgotten only costs one more hand-over and one more `Spread`).
const SPREAD_NAMES_MAX: usize = 4096;

impl Worker {
    /// Whether this subscription should move its connection to the channel's home.
    pub(super) fn should_hand_over(&self, token: Token, cname: &[u8]) -> bool {
        if !self.can_detach || self.shutting_down.is_some() || self.home_of(cname) == self.id {
            return false;
        }
        let idle = self.conns.peek(token).is_some_and(|c| {
            c.port == Port::Front && c.out.is_none() && !c.has(flags::PEER_CLOSED)
        });
        idle && !self.spread.contains(cname)
    }

    /// Marks the connection for hand-over at the end of this turn's wait.
    pub(super) fn hand_over(&mut self, token: Token, request: SubscribeRequest) {
        if let Some(conn) = self.conns.at(token) {
            conn.phase = Phase::Moving;
            let moving = Moving {
                request,
                socket: None,
            };
            conn.ext = Some(Box::new(Ext::Moving(Box::new(moving))));
            self.to_move.push(token);
        }
    }

    /// Hands out every connection marked this turn whose socket the backend can give now, and
    /// starts the others.
    pub(super) fn move_out<B: Backend>(&mut self, backend: &mut B) {
        for token in std::mem::take(&mut self.to_move) {
            let Some(conn) = self.conns.at(token).filter(|c| c.phase == Phase::Moving) else {
                continue; // closed meanwhile
            };
            let id = conn.id;
            let ready = matches!(conn.ext.as_deref(), Some(Ext::Moving(m)) if m.socket.is_some());
            if ready {
                // The backend gave an ordinary descriptor earlier: its own handle closes now.
                self.send_over(token, None);
                backend.close(id, token);
                continue;
            }
            match backend.detach(id, token) {
                Detach::Now(socket) => self.send_over(token, Some(socket)),
                Detach::Later => {}
                Detach::Unsupported => self.stay(token),
            }
        }
    }

    /// The backend finished a hand-over it started (`Detach::Later`).
    pub(super) fn on_detached(&mut self, token: Token, socket: Option<OwnedFd>) {
        let Some(conn) = self.conns.at(token).filter(|c| c.phase == Phase::Moving) else {
            return; // closed meanwhile: the descriptor closes here
        };
        match (socket, conn.ext.as_deref_mut()) {
            (Some(socket), Some(Ext::Moving(m))) => {
                m.socket = Some(socket);
                self.to_move.push(token);
            }
            _ => self.stay(token),
        }
    }

    /// The socket could not be handed over: the connection subscribes from here.
    fn stay(&mut self, token: Token) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        conn.phase = Phase::Idle;
        if let Some(Ext::Moving(m)) = conn.ext.take().map(|b| *b) {
            self.subscribe_from_here(token, m.request);
        }
    }

    /// Takes the connection out of this worker and mails it to its channel's home, with `socket`
    /// (or the one the backend gave earlier).
    fn send_over(&mut self, token: Token, socket: Option<OwnedFd>) {
        let Some(conn) = self.conns.remove(token.slot, token.generation) else {
            return;
        };
        self.buffered = self.buffered.saturating_sub(conn.buffered());
        self.stats().connections.fetch_sub(1, Ordering::Relaxed);
        let Conn {
            flags, inbuf, ext, ..
        } = conn;
        let Some(Ext::Moving(m)) = ext.map(|b| *b) else {
            self.shared.release_connection();
            return;
        };
        let Moving {
            request,
            socket: earlier,
        } = *m;
        let Some(socket) = socket.or(earlier) else {
            self.shared.release_connection();
            return;
        };
        let home = self.home_of(&request.cname);
        let adoption = Adoption {
            from: self.id,
            socket,
            flags,
            inbuf,
            request,
        };
        self.mail(home, Msg::Adopt(Box::new(adoption)));
    }

    /// Takes over a subscriber another worker handed over.
    pub(super) fn adopt<B: Backend>(&mut self, backend: &mut B, a: Adoption) {
        let Adoption {
            from,
            socket,
            flags,
            inbuf,
            request,
        } = a;
        let arriving = Arriving {
            from,
            flags,
            inbuf,
            request,
        };
        let tag = self.next_arrival;
        self.next_arrival = tag.wrapping_add(1);
        match backend.adopt(socket, tag) {
            Ok(Some(id)) => self.take_in(backend, id, arriving),
            Ok(None) => {
                self.arriving.insert(tag, arriving);
            }
            Err(e) => {
                log::warn!("a handed-over connection could not be taken: {e}");
                self.shared.release_connection();
            }
        }
    }

    /// The backend registered (or failed to register) a handed-over socket.
    pub(super) fn on_adopted(&mut self, tag: u64, conn: Option<ConnId>) {
        let Some(arriving) = self.arriving.remove(&tag) else {
            return;
        };
        match conn {
            Some(id) => self.arrived.push((id, arriving)),
            None => self.shared.release_connection(),
        }
    }

    /// Attaches the handed-over connections their backend registered during the wait.
    pub(super) fn attach_arrived<B: Backend>(&mut self, backend: &mut B) {
        for (id, arriving) in std::mem::take(&mut self.arrived) {
            self.take_in(backend, id, arriving);
        }
    }

    /// Gives a handed-over connection a slot here and subscribes it.
    fn take_in<B: Backend>(&mut self, backend: &mut B, id: ConnId, a: Arriving) {
        let mut conn = Conn::new(id, Port::Front);
        conn.flags = a.flags & !(flags::DIRTY | flags::PAUSED);
        conn.inbuf = a.inbuf;
        let held = conn.buffered();
        let Ok((slot, generation)) = self.conns.insert(conn) else {
            backend.close(id, super::REFUSED);
            self.shared.release_connection();
            return;
        };
        let token = Token { slot, generation };
        if let Err(e) = backend.attach(id, token) {
            log::warn!("attach of a handed-over connection failed: {e}");
            self.close(token);
            return;
        }
        self.buffered += held;
        self.stats().connections.fetch_add(1, Ordering::Relaxed);
        if self.hub.local_count(&a.request.cname) >= SPREAD_AT && a.from != self.id {
            let name = self.shared_name(a.request.cname.clone());
            self.mail(a.from, Msg::Spread { name });
        }
        self.subscribe(token, a.request);
    }

    /// The home says a channel is big: subscribe its next subscribers from here.
    pub(super) fn on_spread(&mut self, name: Name) {
        if self.spread.len() >= SPREAD_NAMES_MAX {
            self.spread.clear();
        }
        self.spread.insert(name);
    }
}
