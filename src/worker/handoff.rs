//! Subscribers move to their channel's home. A connection that subscribes to a channel whose
//! home is another worker is handed to that worker (one message carrying the socket, the flags,
//! any bytes that followed the request, and the request itself); from then on the subscription,
//! every delivery, every heartbeat and every long-poll cycle of that connection run where the
//! channel lives, with no cross-core message at all. A push then crosses cores at most once (from
//! the publisher's worker to the home).
//!
//! Big channels fan out on every worker instead: once a channel has `SPREAD_AT` subscribers on
//! its home, the home tells each worker that hands it one more to keep the next ones where they
//! are (`Msg::Spread`); those subscribe from a distance (the home then mails each delivery, encoded
//! once, to every worker with subscribers). Backends that cannot hand sockets over (io_uring's
//! direct descriptors live in one ring) always subscribe from a distance.
//!
//! Depends on: worker (Worker, Conn, Msg), engine (Backend detach/adopt), api (requests).

use super::conn::{flags, Conn, Conns, Phase, Port};
use super::msg::{Adoption, Msg};
use super::Worker;
use crate::api::SubscribeRequest;
use crate::engine::{Backend, Token};
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
            self.to_move.push((token, request));
        }
    }

    /// Detaches every connection marked this turn and mails each to its channel's home.
    pub(super) fn move_out<B: Backend>(&mut self, backend: &mut B) {
        for (token, request) in std::mem::take(&mut self.to_move) {
            if self
                .conns
                .peek(token)
                .is_none_or(|c| c.phase != Phase::Moving)
            {
                continue; // closed meanwhile
            }
            let Some(conn) = self.conns.remove(token.slot, token.generation) else {
                continue;
            };
            self.buffered = self.buffered.saturating_sub(conn.buffered());
            self.stats().connections.fetch_sub(1, Ordering::Relaxed);
            let Some(socket) = backend.detach(conn.id, token) else {
                backend.close(conn.id, token);
                self.shared.release_connection();
                continue;
            };
            let home = self.home_of(&request.cname);
            let adoption = Adoption {
                from: self.id,
                socket,
                flags: conn.flags,
                inbuf: conn.inbuf,
                request,
            };
            self.mail(home, Msg::Adopt(Box::new(adoption)));
        }
    }

    /// Takes over a subscriber another worker handed over, and subscribes it here.
    pub(super) fn adopt<B: Backend>(&mut self, backend: &mut B, a: Adoption) {
        let Adoption {
            from,
            socket,
            flags: conn_flags,
            inbuf,
            request,
        } = a;
        let Ok(id) = backend.adopt(socket) else {
            self.shared.release_connection();
            return;
        };
        let mut conn = Conn::new(id, Port::Front);
        conn.flags = conn_flags & !(flags::DIRTY | flags::PAUSED);
        conn.inbuf = inbuf;
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
        if self.local.count(&request.cname) >= SPREAD_AT && from != self.id {
            let name = self.shared_name(request.cname.clone());
            self.mail(from, Msg::Spread { name });
        }
        self.subscribe(token, request);
    }

    /// The home says a channel is big: subscribe its next subscribers from here.
    pub(super) fn on_spread(&mut self, name: Arc<[u8]>) {
        if self.spread.len() >= SPREAD_NAMES_MAX {
            self.spread.clear();
        }
        self.spread.insert(name);
    }
}
