//! The subscriber side: opening a subscription (ask the channel's home, then write the head and the
//! catch-up), live deliveries fanned out to this worker's subscribers with the encoded message
//! shared by reference, heartbeats (noop), /close, and /psub presence streams.
//!
//! Depends on: worker (State, Conn, Msg), comet (messages, local index), api (framing).

use super::conn::{flags, Phase};
use super::msg::{Msg, SubscribeMsg};
use super::State;
use crate::api::frame::{subscribe_head_closing, write_iframe_preamble, Framing, Transport};
use crate::api::SubscribeRequest;
use crate::comet::channel::CatchUp;
use crate::comet::hub::{SubscribeError, Subscribed};
use crate::comet::message::{encode, expand_replay, follow_up, Message, MsgType};
use crate::comet::seq::seq_before;
use crate::engine::Token;
use crate::http::Version;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// An open (or opening) subscription of one connection.
#[derive(Debug)]
pub struct Subscription {
    pub channel: Arc<[u8]>,
    pub framing: Framing,
    /// The next data seq this subscriber expects.
    pub next_seq: u32,
    /// The number the next heartbeat carries.
    pub noop: u32,
    /// The channel incarnation the home registered us with.
    pub epoch: u32,
    /// Registered at the home (counted there); false for a long-poll answered at once.
    pub registered: bool,
    /// Waiting for the home's answer: live deliveries are not for this subscriber yet.
    pub pending: bool,
}

impl State {
    /// Starts a subscription: the connection waits while the channel's home decides.
    pub(crate) fn subscribe(&mut self, token: Token, req: SubscribeRequest) {
        let chunked = req.version == Version::Http11;
        // One copy of a channel's name per process where possible: share the one this worker's
        // index or hub already holds.
        let name: Arc<[u8]> = match self.local.name(&req.cname) {
            Some(n) => Arc::clone(n),
            None => match self.hub.name(&req.cname) {
                Some(n) => n,
                None => Arc::from(req.cname),
            },
        };
        let framing = Framing::new(req.transport, chunked, req.callback.as_deref());
        let long_poll = req.transport == Transport::LongPoll;
        let Some(conn) = self.conns.get_mut(token.slot, token.generation) else {
            return;
        };
        conn.phase = Phase::Waiting;
        conn.sub = Some(Box::new(Subscription {
            channel: Arc::clone(&name),
            framing,
            next_seq: req.seq,
            noop: req.noop,
            epoch: 0,
            registered: false,
            pending: true,
        }));
        self.local.add(&name, token.pack());
        let home = self.home_of(&name);
        let from = self.id;
        self.mail(
            home,
            Msg::Subscribe(Box::new(SubscribeMsg {
                from,
                token,
                name,
                seq: req.seq,
                auth: req.token,
                long_poll,
            })),
        );
    }

    /// The home answered a subscription request.
    pub(super) fn on_subscribed(
        &mut self,
        token: Token,
        name: Arc<[u8]>,
        result: Result<Subscribed, SubscribeError>,
    ) {
        let live = self
            .conns
            .get(token.slot, token.generation)
            .is_some_and(|c| {
                c.phase == Phase::Waiting && c.sub.as_ref().is_some_and(|s| s.pending)
            });
        if !live {
            // The connection left while the home was deciding: undo the registration.
            let none_left = self.local.count(&name) == 0;
            if let Ok(s) = &result {
                if s.registered || none_left {
                    let count = u32::from(s.registered);
                    self.unsubscribe_home(&name, s.epoch, count, none_left);
                }
            }
            return;
        }
        let date = self.date.get();
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let Some(conn) = self.conns.get_mut(token.slot, token.generation) else {
            return;
        };
        let http11 = !conn.has(flags::HTTP10);
        let close = !conn.has(flags::KEEP_ALIVE);
        let Some(sub) = conn.sub.as_mut() else {
            return;
        };
        let transport = sub.framing.transport;
        let ended = match result {
            Err(e) => {
                subscribe_head_closing(&mut out, transport, http11, false, close, date);
                let json = encode(e.kind(), &name, 0, e.content());
                sub.framing.write_frame(&json, &mut out);
                sub.framing.write_end(&mut out);
                sub.registered = false;
                true
            }
            Ok(s) => {
                if !Arc::ptr_eq(&sub.channel, &s.name) && self.local.count(&name) == 1 {
                    // The home made its own copy of the name: keep that one only.
                    self.local.take(&name);
                    self.local.add(&s.name, token.pack());
                    sub.channel = Arc::clone(&s.name);
                }
                sub.pending = false;
                self.shared.stats[self.id]
                    .subscribers
                    .fetch_add(1, Ordering::Relaxed);
                sub.epoch = s.epoch;
                sub.registered = s.registered;
                subscribe_head_closing(&mut out, transport, http11, true, close, date);
                if transport == Transport::Iframe {
                    write_iframe_preamble(http11, &mut out);
                }
                let waits = matches!(s.catch_up, CatchUp::Wait);
                match s.catch_up {
                    CatchUp::NextSeq(seq) => {
                        let json = encode(MsgType::NextSeq, &name, seq, b"");
                        sub.framing.write_frame(&json, &mut out);
                        sub.next_seq = seq;
                    }
                    CatchUp::Replay(msgs) => {
                        self.shared.stats[self.id]
                            .deliveries
                            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
                        if let Some(last) = msgs.last() {
                            sub.next_seq = last.seq.wrapping_add(1);
                        }
                        let objects = expand_replay(&name, &msgs);
                        sub.framing.write_objects(&objects, &mut out);
                    }
                    CatchUp::Wait => {}
                }
                if transport == Transport::LongPoll && !waits {
                    sub.framing.write_end(&mut out);
                    true
                } else {
                    false
                }
            }
        };
        conn.phase = Phase::Subscribed;
        self.queue(token, &out);
        self.scratch = out;
        if ended {
            self.end_subscription(token);
        } else {
            let d = self.noop_deadline();
            self.arm(token, d);
        }
    }

    fn noop_deadline(&self) -> u32 {
        self.after(self.shared.config.front.polling_timeout)
    }

    /// Tells the home that `count` of this worker's subscribers of `name` left.
    fn unsubscribe_home(&mut self, name: &Arc<[u8]>, epoch: u32, count: u32, none_left: bool) {
        let home = self.home_of(name);
        let from = self.id;
        self.mail(
            home,
            Msg::Unsubscribe {
                from,
                name: Arc::clone(name),
                epoch,
                count,
                none_left,
            },
        );
    }

    /// Ends the subscription response of a connection: HTTP/1.1 connections go back to waiting for
    /// their next request; HTTP/1.0 ones are closed once the output is sent.
    fn end_subscription(&mut self, token: Token) {
        self.drop_subscription(token);
        let Some(conn) = self.conns.get_mut(token.slot, token.generation) else {
            return;
        };
        if conn.has(flags::HTTP10) {
            conn.clear(flags::KEEP_ALIVE);
        }
        self.request_done(token);
    }

    /// Detaches the connection's subscription: out of the local index and the counters. The home is
    /// not told (callers decide; one message can cover many subscribers).
    fn take_sub(&mut self, token: Token) -> Option<Box<Subscription>> {
        let conn = self.conns.get_mut(token.slot, token.generation)?;
        let sub = conn.sub.take()?;
        self.local.remove(&sub.channel, token.pack());
        if !sub.pending {
            self.stats().subscribers.fetch_sub(1, Ordering::Relaxed);
        }
        Some(sub)
    }

    /// Removes the connection's subscription from the local index and tells the home.
    fn drop_subscription(&mut self, token: Token) {
        let Some(sub) = self.take_sub(token) else {
            return;
        };
        if sub.pending {
            // The home's answer is still on its way; `on_subscribed` settles it.
            return;
        }
        let none_left = self.local.count(&sub.channel) == 0;
        if sub.registered || none_left {
            self.unsubscribe_home(
                &sub.channel,
                sub.epoch,
                u32::from(sub.registered),
                none_left,
            );
        }
    }

    /// Cleanup when a connection leaves `was` (it is closing).
    pub(crate) fn leave_phase(&mut self, token: Token, was: Phase) {
        match was {
            Phase::Subscribed | Phase::Waiting => self.drop_subscription(token),
            Phase::Presence => {
                let key = token;
                self.presence.retain(|t| *t != key);
                self.shared.presence_clients.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// A new message for a channel with subscribers on this worker.
    pub(super) fn on_deliver(&mut self, name: &Arc<[u8]>, msg: &Message) {
        let mut keys = std::mem::take(&mut self.fanout);
        keys.clear();
        self.local.keys_into(name, &mut keys);
        if keys.is_empty() {
            // The home still thinks this worker has subscribers: correct it.
            self.unsubscribe_home(name, 0, 0, true);
            self.fanout = keys;
            return;
        }
        let next_seq_json = if msg.kind == MsgType::Broadcast {
            follow_up(name, msg)
        } else {
            None
        };
        let mut ended = 0u32;
        let mut delivered = 0u64;
        let mut epoch = 0;
        let mut pieces = Vec::with_capacity(64);
        let mut suffix = Vec::with_capacity(32);
        let deadline = self.noop_deadline();
        for &key in &keys {
            let token = Token::unpack(key);
            let Some(conn) = self.conns.get_mut(token.slot, token.generation) else {
                continue;
            };
            let Some(sub) = conn.sub.as_mut() else {
                continue;
            };
            if sub.pending || conn.phase != Phase::Subscribed {
                continue;
            }
            if seq_before(msg.seq, sub.next_seq) {
                // Already sent in the catch-up.
                continue;
            }
            sub.next_seq = msg.seq.wrapping_add(1);
            pieces.clear();
            suffix.clear();
            let long_poll = sub.framing.transport == Transport::LongPoll;
            match &next_seq_json {
                Some(next) if long_poll => {
                    let objects = [&msg.json[..], &next[..]];
                    sub.framing.write_objects(&objects, &mut pieces);
                }
                Some(next) => {
                    sub.framing.write_frame(&msg.json, &mut pieces);
                    sub.framing.write_frame(next, &mut pieces);
                }
                None => {
                    sub.framing.prefix(msg.json.len(), &mut pieces);
                    sub.framing.suffix(&mut suffix);
                }
            }
            if long_poll {
                sub.framing.write_end(if next_seq_json.is_some() {
                    &mut pieces
                } else {
                    &mut suffix
                });
            }
            conn.deadline = deadline;
            if next_seq_json.is_some() {
                self.queue(token, &pieces);
            } else {
                self.queue_shared(token, &pieces, &msg.json, &suffix);
            }
            delivered += 1;
            if long_poll {
                if let Some(sub) = self.take_sub(token) {
                    ended += u32::from(sub.registered);
                    epoch = sub.epoch;
                }
                self.end_subscription(token);
            }
        }
        self.stats()
            .deliveries
            .fetch_add(delivered, Ordering::Relaxed);
        if ended > 0 {
            let none_left = self.local.count(name) == 0;
            self.unsubscribe_home(name, epoch, ended, none_left);
        }
        self.fanout = keys;
    }

    /// The channel was closed: every subscriber gets `close` and its response ends.
    pub(super) fn on_closed(&mut self, name: &Arc<[u8]>, json: &Arc<[u8]>) {
        let mut keys = Vec::new();
        self.local.keys_into(name, &mut keys);
        let mut out = Vec::with_capacity(128);
        for key in keys {
            let token = Token::unpack(key);
            let Some(conn) = self.conns.get_mut(token.slot, token.generation) else {
                continue;
            };
            let Some(sub) = conn.sub.as_ref() else {
                continue;
            };
            if sub.pending {
                continue;
            }
            out.clear();
            sub.framing.write_frame(json, &mut out);
            sub.framing.write_end(&mut out);
            // The home already forgot the channel: no unsubscribe is owed.
            self.take_sub(token);
            self.queue(token, &out);
            self.end_subscription(token);
        }
    }

    /// A subscriber's heartbeat is due.
    pub(crate) fn on_noop_due(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.slot, token.generation) else {
            return;
        };
        let Some(sub) = conn.sub.as_mut() else {
            return;
        };
        let json = encode(MsgType::Noop, &sub.channel, sub.noop, b"");
        sub.noop = sub.noop.wrapping_add(1);
        let mut out = Vec::with_capacity(json.len() + 32);
        sub.framing.write_frame(&json, &mut out);
        let long_poll = sub.framing.transport == Transport::LongPoll;
        if long_poll {
            sub.framing.write_end(&mut out);
        }
        self.queue(token, &out);
        if long_poll {
            self.end_subscription(token);
        } else {
            let d = self.noop_deadline();
            self.arm(token, d);
        }
    }

    /// The connection becomes a /psub presence stream.
    pub(crate) fn start_presence(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(token.slot, token.generation) {
            conn.phase = Phase::Presence;
            self.presence.push(token);
            self.shared.presence_clients.fetch_add(1, Ordering::Relaxed);
            self.disarm(token);
        }
    }

    /// One presence line for every /psub client of this worker.
    pub(super) fn on_presence(&mut self, line: &[u8]) {
        let mut chunk = Vec::with_capacity(line.len() + 8);
        for token in self.presence.clone() {
            let http10 = self
                .conns
                .get(token.slot, token.generation)
                .is_none_or(|c| c.has(flags::HTTP10));
            chunk.clear();
            crate::api::frame::write_chunk(!http10, line, &mut chunk);
            self.queue(token, &chunk);
        }
    }
}
