//! The subscriber side: opening a subscription (ask the channel's home, then queue what
//! `api::subscribe` writes for its answer), one subscriber's frame of a live delivery with the
//! encoded message shared by reference (the fan-out over a channel's subscribers is
//! `fanout_lane`'s), heartbeats (noop), /close, and /psub presence streams. Which bytes each
//! subscriber gets is decided in `api::subscribe`.
//!
//! Depends on: worker (Worker, Conn, Msg), comet (messages, local index), api (subscriptions).

use super::backlog::BIG_FANOUT;
use super::conn::{flags, Conns, Ext, Phase};
use super::frame_batch::FirstFrame;
use super::lane::Ended;
use super::msg::{Msg, SubscribeMsg};
use super::ws_channels::sub_for;
use super::Worker;
use crate::api::frame::{Framing, Transport};
use crate::api::subscribe::{self, Delivery, HeadStyle, Subscription};
use crate::api::SubscribeRequest;
use crate::comet::hub::{SubscribeError, Subscribed};
use crate::comet::message::Message;
use crate::comet::name::Name;
use crate::engine::Token;
use crate::http::Version;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Worker {
    /// One copy of a channel's name per process where possible: share the one this worker's
    /// index or hub already holds.
    pub(super) fn shared_name(&self, cname: Vec<u8>) -> Name {
        match self.hub.elsewhere_name(&cname) {
            Some(n) => Name::clone(n),
            None => self.hub.name(&cname).unwrap_or_else(|| Name::from(cname)),
        }
    }

    /// Starts a subscription: the connection moves to the channel's home when it can
    /// (`handoff`), or waits here while the home decides.
    pub(crate) fn subscribe(&mut self, token: Token, req: SubscribeRequest) {
        if req.transport == Transport::WebSocket {
            // After the upgrade no HTTP request follows: the connection ends with its
            // subscription.
            if let Some(conn) = self.conns.at(token) {
                conn.clear(flags::KEEP_ALIVE);
            }
        }
        if self.should_hand_over(token, &req.cname) {
            return self.hand_over(token, req);
        }
        self.subscribe_from_here(token, req);
    }

    /// Subscribes this worker's connection: the home (this worker or another) decides.
    pub(super) fn subscribe_from_here(&mut self, token: Token, req: SubscribeRequest) {
        let chunked = req.version == Version::Http11;
        let framing = Framing::new(req.transport, chunked, req.callback.as_deref())
            .resuming(req.resume.is_some());
        let long_poll = req.transport == Transport::LongPoll;
        let name = self.shared_name(req.cname);
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        conn.phase = Phase::Waiting;
        let mut sub = Subscription::pending(Name::clone(&name), framing, req.seq, req.noop);
        sub.cors = req.cors;
        conn.ext = Some(Box::new(Ext::Sub(sub)));
        self.hub.add_local(&name, token.pack());
        let home = self.home_of(&name);
        let from = self.id;
        let msg = SubscribeMsg {
            from,
            token,
            name,
            seq: req.seq,
            credential: req.credential,
            long_poll,
            resume: req.resume,
        };
        self.mail(home, Msg::Subscribe(Box::new(msg)));
    }

    /// The home answered a subscription request.
    pub(super) fn on_subscribed(
        &mut self,
        token: Token,
        name: Name,
        result: Result<Subscribed, SubscribeError>,
    ) {
        if self.is_open_websocket(token) {
            return self.ws_subscribed(token, name, result);
        }
        let live = self
            .conns
            .peek(token)
            .is_some_and(|c| c.phase == Phase::Waiting && c.sub().is_some_and(|s| s.pending));
        if !live {
            return self.forget_answer(&name, &result);
        }
        if let Ok(s) = &result {
            self.adopt_home_name(token, &s.name);
        }
        let date = self.date.get();
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        let http11 = !conn.has(flags::HTTP10);
        let close = conn.has(flags::ASKS_CLOSE);
        conn.phase = Phase::Subscribed;
        let Some(sub) = conn.sub_mut() else {
            return;
        };
        let transport = sub.framing.transport;
        let sse = sub.framing.transport == Transport::Sse;
        let style = HeadStyle {
            http11,
            close,
            cors: self.shared.cors.lines(sub.cors, sse),
            date,
        };
        let opened = subscribe::open(sub, style, &result, &mut out);
        if result.is_ok() {
            self.count_subscriber(transport, true);
        }
        self.count_replayed(opened.replayed);
        self.stats().count_response(&out);
        self.queue(token, &out);
        self.scratch = out;
        if opened.ended {
            self.end_subscription(token);
        } else {
            let d = self.noop_deadline();
            self.arm(token, d);
            if self.is_open_websocket(token) {
                self.ws_opened(token);
            }
        }
    }

    /// The connection left while the home was deciding: undo the registration.
    pub(super) fn forget_answer(
        &mut self,
        name: &Name,
        result: &Result<Subscribed, SubscribeError>,
    ) {
        let none_left = self.hub.local_count(name) == 0;
        if let Ok(s) = result {
            if s.registered || none_left {
                self.unsubscribe_home(name, s.epoch, u32::from(s.registered), none_left);
            }
        }
    }

    /// The home made its own copy of the name: when this subscriber is the only local one, keep
    /// the home's copy only.
    fn adopt_home_name(&mut self, token: Token, home_name: &Name) {
        let Some(sub) = self.conns.at(token).and_then(|c| c.sub_mut()) else {
            return;
        };
        if Name::ptr_eq(&sub.channel, home_name) || self.hub.local_count(home_name) != 1 {
            return;
        }
        sub.channel = Name::clone(home_name);
        self.hub.rekey_elsewhere(home_name);
    }

    fn noop_deadline(&self) -> u32 {
        self.after(self.config.front.polling_timeout)
    }

    /// Tells the home that `count` of this worker's subscribers of `name` left.
    pub(super) fn unsubscribe_home(
        &mut self,
        name: &Name,
        epoch: u32,
        count: u32,
        none_left: bool,
    ) {
        let home = self.home_of(name);
        let from = self.id;
        self.mail(
            home,
            Msg::Unsubscribe {
                from,
                name: Name::clone(name),
                epoch,
                count,
                none_left,
            },
        );
    }

    /// Ends the subscription response of a connection: HTTP/1.1 connections go back to waiting for
    /// their next request; HTTP/1.0 ones are closed once the output is sent.
    pub(super) fn end_subscription(&mut self, token: Token) {
        self.drop_subscription(token);
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        if conn.has(flags::HTTP10) {
            conn.clear(flags::KEEP_ALIVE);
        }
        self.request_done(token);
    }

    /// Detaches the connection's subscription: out of the local index and the counters. The home is
    /// not told (callers decide; one message can cover many subscribers).
    pub(super) fn take_sub(&mut self, token: Token) -> Option<Subscription> {
        let sub = self.conns.at(token)?.take_sub()?;
        self.hub.remove_local(&sub.channel, token.pack());
        if !sub.pending {
            self.count_subscriber(sub.framing.transport, false);
        }
        Some(sub)
    }

    /// Counts a subscription opening (`up`) or ending, in total and by transport.
    pub(super) fn count_subscriber(&self, transport: Transport, up: bool) {
        let stats = self.stats();
        let by = &stats.subscribers_by_transport[transport as usize];
        if up {
            stats.subscribers.fetch_add(1, Ordering::Relaxed);
            by.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.subscribers.fetch_sub(1, Ordering::Relaxed);
            by.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Counts stored messages sent in a catch-up (they are deliveries too).
    pub(super) fn count_replayed(&self, replayed: u64) {
        let stats = self.stats();
        stats.deliveries.fetch_add(replayed, Ordering::Relaxed);
        stats.replays.fetch_add(replayed, Ordering::Relaxed);
    }

    /// Removes the connection's subscription from the local index and tells the home.
    pub(super) fn drop_subscription(&mut self, token: Token) {
        let Some(sub) = self.take_sub(token) else {
            return;
        };
        if sub.pending {
            // The home's answer is still on its way; `on_subscribed` settles it.
            return;
        }
        self.unsubscribe_left(&sub);
    }

    /// Tells the home that a settled subscription (already out of the local index) left.
    pub(super) fn unsubscribe_left(&mut self, sub: &Subscription) {
        let none_left = self.hub.local_count(&sub.channel) == 0;
        if sub.registered || none_left {
            let count = u32::from(sub.registered);
            self.unsubscribe_home(&sub.channel, sub.epoch, count, none_left);
        }
    }

    /// Cleanup when a connection leaves `was` (it is closing).
    pub(crate) fn leave_phase(&mut self, token: Token, was: Phase) {
        match was {
            Phase::Subscribed | Phase::Waiting => {
                self.drop_subscription(token);
                self.ws_forget(token);
            }
            Phase::Presence
                if self
                    .conns
                    .peek(token)
                    .is_some_and(|c| c.has(flags::STATS_STREAM)) =>
            {
                self.end_stats_stream(token);
            }
            Phase::Presence => {
                self.presence.retain(|t| *t != token);
                self.shared.counters_ref().remove_listener();
            }
            _ => {}
        }
    }

    /// Queues one subscriber's frame (stored once in the channel's batch when `batch`); true when
    /// something was queued.
    pub(super) fn deliver_one(
        &mut self,
        token: Token,
        (name, batch, first): (&Name, bool, Option<&FirstFrame>),
        (msg, epoch): (&Message, Option<u32>),
        next: Option<&[u8]>,
        head: &mut Vec<u8>,
        ended: &mut Ended,
    ) -> bool {
        let deadline = self.noop_deadline();
        let Some(conn) = self.conns.at(token) else {
            return false;
        };
        if conn.phase != Phase::Subscribed {
            return false;
        }
        let Some(sub) = sub_for(conn, &mut self.ws.channels, token, name) else {
            return false;
        };
        if epoch.is_some_and(|e| e != sub.epoch) {
            // A later incarnation of the channel (closed and opened again meanwhile).
            return false;
        }
        head.clear();
        let class = batch_class(&sub.framing);
        let ends = match subscribe::deliver(sub, msg, next, head) {
            Delivery::Skip => return false,
            Delivery::Shared { tail, ends } if batch && !ends => {
                conn.deadline = deadline;
                self.queue_batched(token, (name, class, first), (head, &msg.json, tail));
                ends
            }
            Delivery::Shared { tail, ends } => {
                conn.deadline = deadline;
                self.queue_frame(token, head, &msg.json, tail);
                ends
            }
            Delivery::Owned { ends } => {
                conn.deadline = deadline;
                self.queue(token, head);
                ends
            }
        };
        if ends {
            // One unsubscribe message covers every long-poll this delivery ended.
            if let Some(sub) = self.take_sub(token) {
                ended.registered += u32::from(sub.registered);
                ended.epoch = sub.epoch;
            }
            self.end_subscription(token);
        }
        true
    }

    /// Incarnation `epoch` of the channel was closed: each of its subscribers gets `close` and
    /// its response ends. (A channel with `BIG_FANOUT` subscribers here is closed a part per
    /// turn instead: `fanout_lane`.)
    pub(super) fn closed_now(&mut self, name: &Name, json: &Arc<[u8]>, epoch: Option<u32>) {
        let mut keys = Vec::new();
        self.hub.local_keys_into(name, &mut keys);
        let big = keys.len() >= BIG_FANOUT;
        self.queue_in_backlog(big, |w| w.close_each(name, (json, epoch), &keys));
    }

    /// Sends each of `keys` (subscribers of the closed channel `name`) of incarnation `epoch`
    /// its `close`.
    pub(super) fn close_each(
        &mut self,
        name: &Name,
        (json, epoch): (&Arc<[u8]>, Option<u32>),
        keys: &[u64],
    ) {
        let mut out = Vec::with_capacity(128);
        for &key in keys {
            let token = Token::unpack(key);
            let extra = &mut self.ws.channels;
            let Some(sub) = self
                .conns
                .at(token)
                .and_then(|c| sub_for(c, extra, token, name))
            else {
                continue;
            };
            // Pending: the home answers it after the close (a later incarnation, or an error).
            if sub.pending || epoch.is_some_and(|e| e != sub.epoch) {
                continue;
            }
            if sub.framing.transport == Transport::WebSocket {
                self.ws_channel_closed(token, name, json);
                continue;
            }
            out.clear();
            subscribe::closed(sub, json, &mut out);
            // The home already forgot the channel: no unsubscribe is owed.
            self.take_sub(token);
            self.queue(token, &out);
            self.end_subscription(token);
        }
    }

    /// A subscriber's heartbeat is due.
    pub(crate) fn on_noop_due(&mut self, token: Token) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        let awaiting_pong = conn.has(flags::AWAITING_PONG);
        if conn
            .sub()
            .is_some_and(|s| s.framing.transport == Transport::WebSocket)
        {
            // Answered by the next frame the client sends (`ws`), or closed at the next beat.
            conn.set(flags::AWAITING_PONG);
        }
        let Some(sub) = conn.sub_mut() else {
            return;
        };
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        if subscribe::peer_silent(sub, awaiting_pong, &mut out) {
            self.queue(token, &out);
            self.scratch = out;
            return self.ws_close(token);
        }
        let ends = subscribe::noop(sub, &mut out);
        self.stats().noops.fetch_add(1, Ordering::Relaxed);
        self.queue(token, &out);
        self.scratch = out;
        if ends {
            self.end_subscription(token);
        } else {
            let d = self.noop_deadline();
            self.arm(token, d);
        }
    }

    /// The connection becomes a /psub presence stream. Counted before its head is sent, so every
    /// worker records the events that follow.
    pub(crate) fn start_presence(&mut self, token: Token) {
        if let Some(conn) = self.conns.at(token) {
            conn.phase = Phase::Presence;
            self.presence.push(token);
            self.shared.counters_ref().add_listener();
            self.disarm(token);
        }
    }

    /// Presence events for every /psub client of this worker: the bare `lines` for HTTP/1.0
    /// readers, `chunks` (one chunk per event; made from the lines when not given) for HTTP/1.1
    /// ones, built once for all readers and shared by reference when they are long.
    pub(super) fn on_presence(&mut self, lines: &Arc<[u8]>, chunks: Option<&Arc<[u8]>>) {
        if lines.is_empty() || self.presence.is_empty() {
            return;
        }
        let mut chunked: Option<Arc<[u8]>> = chunks.cloned();
        let readers = std::mem::take(&mut self.presence);
        for &token in &readers {
            let http10 = self.conns.peek(token).is_none_or(|c| c.has(flags::HTTP10));
            let bytes = if http10 {
                lines
            } else {
                chunked.get_or_insert_with(|| presence_chunks(lines))
            };
            if bytes.len() < PRESENCE_SHARE_MIN {
                self.queue(token, bytes);
            } else {
                self.queue_frame(token, b"", bytes, b"");
            }
        }
        // A reader closed for holding too much unsent output leaves the list here.
        let conns = &self.conns;
        self.presence = readers;
        self.presence
            .retain(|&t| conns.peek(t).is_some_and(|c| c.phase == Phase::Presence));
    }
}

/// The framing class of a subscriber's frames for `frame_batch`: subscribers of one channel
/// with the same class get the same bytes for a message.
fn batch_class(framing: &Framing) -> u8 {
    framing.transport as u8
        | u8::from(framing.chunked) << 4
        | u8::from(framing.resumable) << 5
        | u8::from(framing.callback.is_some()) << 6
}

/// Presence bytes below this are copied into each reader's queue; longer ones are shared.
const PRESENCE_SHARE_MIN: usize = 1024;

/// Each line of `lines` as its own HTTP/1.1 chunk (for events that came without their chunks:
/// the cluster thread's, one line per event).
fn presence_chunks(lines: &[u8]) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(lines.len() + lines.len() / 2 + 8);
    for line in lines.split_inclusive(|&b| b == b'\n') {
        crate::api::frame::write_chunk(true, line, &mut out);
    }
    out.into()
}
