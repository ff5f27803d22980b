//! The home side of channels and the routing of admin operations: what a worker does with the
//! operations addressed to the channels it is home of (subscribe, unsubscribe, admin operations,
//! publishes, broadcast), the channels' once-a-second tick, and where an admin request runs.
//!
//! Hops (cross-core messages a client waits on), with the channel's home H and the admin
//! connection's worker A: `/push` and `/pub` cost none when A = H and one (A→H) otherwise — the
//! publisher is answered on A at once, having reserved the channel's creation against
//! `max_channels`; other admin operations answer with the home's state and cost a round trip
//! (A→H→A) when A ≠ H. Pipelined requests do not wait for each other: replies leave in request
//! order (`replies`), and all mail of a turn travels as one batch per worker.
//!
//! In cluster mode admin operations, broadcasts and subscriptions to channels not mirrored yet
//! take the way through Redis (`cluster`).
//!
//! Depends on: worker (Worker, Msg, replies, cluster), comet (Hub), api (admin operations and
//! replies).

use super::conn::{flags, Conns, Phase};
use super::frame_batch::FirstFrame;
use super::held::HeldOp;
use super::msg::{Msg, SubscribeMsg};
use super::Worker;
use crate::api::home::{self, Effect};
use crate::api::{admin, HomeOp, HomeRequest};
use crate::comet::hub::{worker_bit, Ask, Presence, Published, SubscribeError, Subscribed};
use crate::comet::name::Name;
use crate::comet::route::home_worker;
use crate::engine::Token;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one publish counts against `limits.publish_ahead`: its bytes and the mail around them.
fn publish_ahead_bytes(cname: &[u8], content: &[u8]) -> usize {
    64 + cname.len() + content.len()
}

/// Wall time one loop turn gives a bulk operation over the channels (the once-a-second tick, a
/// `/broadcast`) at most. It works in slices of a fixed amount and stops after the slice that
/// passes this: the cost per channel grows with the hub (cache misses: in a tight loop freeing
/// one costs 80 ns at 100,000 channels and 170 ns at 500,000, more with the rest of a server's
/// data around), so a count alone does not bound the turn.
const BULK_TIME_PER_TURN: Duration = Duration::from_millis(1);

/// Channels one slice of a broadcast stores it in (≈ 0.1–0.25 µs each).
const BROADCAST_SLICE: usize = 1024;

/// One slice of the channels' tick (`Hub::tick_step`: a visit counts 1, ≈ 10–50 ns; freeing an
/// expired channel 16, ≈ 0.3 µs with its ring, its name and a presence line for `/psub`
/// readers): 1,024 visits or 64 frees.
const TICK_SLICE: usize = 1024;

/// Runs `slice` until it reports nothing left or `BULK_TIME_PER_TURN` has passed.
fn for_a_turn(mut slice: impl FnMut() -> bool) {
    let start = Instant::now();
    while slice() && start.elapsed() < BULK_TIME_PER_TURN {}
}

impl Worker {
    /// The worker that is home of `cname`.
    pub(crate) fn home_of(&self, cname: &[u8]) -> usize {
        home_worker(cname, self.workers())
    }

    /// Sends `msg` to every worker whose bit is set in `workers`.
    pub(super) fn mail_workers(&mut self, workers: u64, mut make: impl FnMut() -> Msg) {
        for w in 0..self.workers().min(64) {
            if workers & worker_bit(w) != 0 {
                let msg = make();
                self.mail(w, msg);
            }
        }
    }

    /// Carries out what a home operation asks for after its reply.
    pub(super) fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::Deliver(p) => {
                self.stats().pushes.fetch_add(1, Ordering::Relaxed);
                self.count_big_publish(&p);
                self.mail_delivery(&p);
            }
            Effect::Closed(c) => {
                self.mail_workers(c.workers, || Msg::Closed {
                    name: Name::clone(&c.name),
                    json: Arc::clone(&c.json),
                    epoch: c.epoch,
                });
            }
        }
    }

    /// Routes one admin operation from a connection of this worker: run here when this is the
    /// channel's home; otherwise a publish is answered here and sent on, and anything else waits
    /// for the home's reply in its place in the connection's reply order.
    pub(crate) fn admin_op(&mut self, token: Token, request: HomeRequest) {
        if self.cluster.is_some() {
            return self.cluster_admin(token, request);
        }
        let home = self.home_of(&request.cname);
        if home == self.id {
            self.settle_broadcast(&request.cname);
        }
        // A publish to a channel homed elsewhere is answered here when it may go ahead.
        let ahead = match &request.op {
            HomeOp::Publish { content } if home != self.id => {
                self.publish_ahead(token, home, publish_ahead_bytes(&request.cname, content))
            }
            _ => false,
        };
        if home == self.id {
            let publishes = matches!(request.op, HomeOp::Publish { .. });
            if self.must_hold(&request.cname, publishes) {
                return self.hold_local(token, request);
            }
        }
        let date = self.date.get();
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        if home == self.id {
            let sub_timeout = self.config.front.polling_timeout;
            let effect = home::run(&mut self.hub, &request, date, sub_timeout, &mut out);
            self.respond(token, &out);
            self.scratch = out;
            self.apply(effect);
            self.announce_presence();
            return;
        }
        if ahead {
            admin::ok_reply(&mut out, &request, date);
            self.respond(token, &out);
            self.scratch = out;
            if let HomeOp::Publish { content } = request.op {
                let cname = request.cname;
                self.mail(home, Msg::Publish { cname, content });
            }
            return;
        }
        self.scratch = out;
        let Some(number) = self.conns.at(token).and_then(|c| c.replies_mut()) else {
            return;
        };
        let number = number.reserve();
        let from = self.id;
        let request = Box::new(request);
        self.mail(
            home,
            Msg::Home {
                from,
                token,
                number,
                request,
            },
        );
    }

    /// Queues an admin reply behind the replies still owed to the connection (or at once).
    pub(crate) fn respond(&mut self, token: Token, reply: &[u8]) {
        self.stats().count_response(reply);
        let owed = self.conns.peek(token).is_some_and(|c| c.replies_owed() > 0);
        if !owed {
            self.queue(token, reply);
        } else if let Some(q) = self.conns.at(token).and_then(|c| c.replies_mut()) {
            q.push_ready(reply.to_vec());
        }
    }

    /// A home's reply to request `number` of an admin connection.
    pub(super) fn on_home_reply(&mut self, token: Token, number: u32, reply: Vec<u8>) {
        self.stats().count_response(&reply);
        let Some(q) = self.conns.at(token).and_then(|c| c.replies_mut()) else {
            return;
        };
        if !q.fill(number, reply) {
            return;
        }
        let mut ready = Vec::new();
        while let Some(r) = q.pop_ready() {
            ready.push(r);
        }
        let drained = q.is_empty();
        for r in ready {
            self.queue(token, &r);
        }
        if drained {
            self.replies_drained(token);
        }
    }

    /// Every reply owed went out: requests that waited for that run now, and a peer that left
    /// is closed once they are sent.
    fn replies_drained(&mut self, token: Token) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        conn.ext = None;
        conn.clear(flags::WINDOW_WAIT);
        let last = conn.has(flags::PEER_CLOSED) || !conn.has(flags::KEEP_ALIVE);
        if last && conn.phase != Phase::Closing {
            self.close_after_flush(token);
        } else if conn.inbuf.is_some() {
            self.to_resume.push(token);
        }
    }

    fn home_subscribe(&mut self, m: SubscribeMsg) {
        if let Some(m) = self.cluster_park(m) {
            self.home_subscribe_now(m);
        }
    }

    /// Subscribes on this home's hub (in cluster mode, once the channel is mirrored).
    pub(super) fn home_subscribe_now(&mut self, m: SubscribeMsg) {
        self.settle_broadcast(&m.name);
        let result = self.hub.subscribe(Ask {
            cname: &m.name,
            seq: m.seq,
            credential: &m.credential,
            worker: m.from,
            long_poll: m.long_poll,
            resume: m.resume,
        });
        self.answer_subscribe(m, result);
        self.announce_presence();
    }

    /// Tells a subscription's worker how it went.
    pub(super) fn answer_subscribe(
        &mut self,
        m: SubscribeMsg,
        result: Result<Subscribed, SubscribeError>,
    ) {
        let (token, name) = (m.token, m.name);
        self.mail(
            m.from,
            Msg::Subscribed {
                token,
                name,
                result,
            },
        );
    }

    /// An admin operation from another worker's connection (or a held one of this worker's).
    fn home_request(&mut self, from: usize, token: Token, number: u32, request: Box<HomeRequest>) {
        let publishes = matches!(request.op, HomeOp::Publish { .. });
        if self.must_hold(&request.cname, publishes) {
            let op = HeldOp::Home {
                from,
                token,
                number,
                request,
            };
            return self.hold(op);
        }
        self.home_request_now(from, token, number, &request);
    }

    /// Runs an admin operation for connection `token` of worker `from` and mails the reply.
    pub(super) fn home_request_now(
        &mut self,
        from: usize,
        token: Token,
        number: u32,
        req: &HomeRequest,
    ) {
        self.settle_broadcast(&req.cname);
        let mut reply = Vec::with_capacity(256);
        let date = self.date.get();
        let sub_timeout = self.config.front.polling_timeout;
        let effect = home::run(&mut self.hub, req, date, sub_timeout, &mut reply);
        self.mail(
            from,
            Msg::HomeReply {
                token,
                number,
                reply,
            },
        );
        self.apply(effect);
        self.announce_presence();
    }

    /// May a publish of `bytes` (`publish_ahead_bytes`) from connection `token` to a channel
    /// homed on `home` be answered here and sent on? Only while `home` has less than
    /// `limits.publish_ahead` of them waiting, and when the channel's creation, if it needs one,
    /// fits under `max_channels`. Otherwise the publish waits for the home's own reply; past the
    /// window the connection's next requests wait for that reply too (`flags::WINDOW_WAIT`), so a
    /// publisher faster than the home's fan-out is slowed to it, one round trip per window,
    /// rather than piling its messages up in the home's mailbox (100 stalled subscribers, 20,000
    /// pushes of 1 KiB: without the window the home's mailbox held ~16 MB of them,
    /// bench/RESULTS.md).
    fn publish_ahead(&mut self, token: Token, home: usize, bytes: usize) -> bool {
        let window = self.config.limits.publish_ahead_bytes;
        if !self.shared.reserve_publish(home, bytes, window) {
            self.stats().push_waits.fetch_add(1, Ordering::Relaxed);
            if let Some(conn) = self.conns.at(token) {
                conn.set(flags::WINDOW_WAIT);
            }
            return false;
        }
        let max = self.config.front.max_channels;
        if self.shared.counters_ref().reserve_channel(max) {
            return true;
        }
        self.shared.publish_stored(home, bytes);
        false
    }

    /// A publish whose publisher was answered on its own worker.
    fn home_publish(&mut self, cname: Vec<u8>, content: Vec<u8>) {
        if self.must_hold(&cname, true) {
            return self.hold(HeldOp::Publish { cname, content });
        }
        self.home_publish_now(&cname, &content);
    }

    /// Stores a publish whose publisher was answered, and lets its window go.
    pub(super) fn home_publish_now(&mut self, cname: &[u8], content: &[u8]) {
        self.shared
            .publish_stored(self.id, publish_ahead_bytes(cname, content));
        self.settle_broadcast(cname);
        if let Some(p) = self.hub.publish_reserved(cname, content) {
            self.apply(Effect::Deliver(p));
        }
        self.announce_presence();
    }

    /// Broadcasts `content` on every channel this worker is home of: the turn stores it in what
    /// `BULK_TIME_PER_TURN` allows (`broadcast_some`, later in this turn), the rest in the next
    /// turns.
    fn home_broadcast(&mut self, content: &[u8]) {
        self.hub.broadcast_start(content);
    }

    /// Stores the broadcasts under way, oldest first, in a bounded number of channels and sends
    /// what they deliver (each turn until they are done).
    pub(super) fn broadcast_some(&mut self) {
        let hub = &mut self.hub;
        for_a_turn(|| hub.broadcast_step(BROADCAST_SLICE));
        self.send_broadcast_deliveries();
    }

    /// Before an operation on a channel: the broadcasts under way reach it first, oldest first
    /// (and its subscribers get them first), as if they had been stored everywhere at once.
    fn settle_broadcast(&mut self, cname: &[u8]) {
        if self.hub.broadcasting() {
            self.hub.broadcast_settle(cname);
            self.send_broadcast_deliveries();
        }
    }

    fn send_broadcast_deliveries(&mut self) {
        let (stored, deliveries) = self.hub.take_broadcast_deliveries();
        self.stats().pushes.fetch_add(stored, Ordering::Relaxed);
        for p in &deliveries {
            self.mail_delivery(p);
        }
    }

    /// A stored message to every worker with subscribers of its channel.
    fn mail_delivery(&mut self, p: &Published) {
        let first = (p.workers.count_ones() > 1).then(|| Arc::new(FirstFrame::new(self.id)));
        self.mail_workers(p.workers, || Msg::Deliver {
            name: Name::clone(&p.name),
            msg: p.msg.clone(),
            first: first.clone(),
            epoch: p.epoch,
        });
    }

    /// Starts a broadcast: every worker (this one too) broadcasts on the channels it is home of.
    pub(crate) fn broadcast(&mut self, content: Arc<[u8]>) {
        // (In cluster mode `/broadcast` is an admin operation run by Redis: `cluster_admin`.)
        for w in 0..self.workers() {
            let content = Arc::clone(&content);
            self.mail(w, Msg::Broadcast { content });
        }
    }

    /// The channels' once-a-second tick: expiry and presence re-announcements, walked by the
    /// turn (`tick_some_channels`, later in this turn and the next ones).
    pub(super) fn tick_channels(&mut self) {
        self.hub.begin_tick();
        self.cluster_tick();
    }

    /// A bounded part of the tick's walk over the channels (each turn until it is done), with
    /// the presence events it produced.
    pub(super) fn tick_some_channels(&mut self) {
        let hub = &mut self.hub;
        for_a_turn(|| hub.tick_step(TICK_SLICE));
        self.announce_presence();
    }

    /// Sends the presence events the hub collected to every worker with /psub clients.
    pub(super) fn announce_presence(&mut self) {
        let events = self.hub.drain_presence();
        self.send_presence(events);
    }

    /// One message per worker for every presence event of this turn: the lines (`1 name\n` /
    /// `0 name\n`) back to back in one shared buffer, and the same events as HTTP/1.1 chunks
    /// (one per event) in another, so a storm (thousands of channels expiring in one sweep)
    /// costs each worker one piece of mail, not one per event.
    fn send_presence(&mut self, events: Vec<Presence>) {
        if events.is_empty() || self.shared.counters_ref().listeners() == 0 {
            return;
        }
        let len: usize = events.iter().map(|e| e.name().len() + 3).sum();
        let mut lines = Vec::with_capacity(len);
        let mut chunks = Vec::with_capacity(len + len / 2 + 8 * events.len());
        for event in &events {
            let start = lines.len();
            event.write_line(&mut lines);
            let line = lines.get(start..).unwrap_or_default();
            crate::api::frame::write_chunk(true, line, &mut chunks);
        }
        let lines: Arc<[u8]> = lines.into();
        let chunks: Arc<[u8]> = chunks.into();
        for w in 0..self.workers() {
            let (lines, chunks) = (Arc::clone(&lines), Arc::clone(&chunks));
            self.mail(w, Msg::Presence { lines, chunks });
        }
    }

    /// Routes one piece of mail.
    pub(super) fn on_mail(&mut self, msg: Msg) {
        match msg {
            Msg::Subscribe(m) => self.home_subscribe(*m),
            Msg::Subscribed {
                token,
                name,
                result,
            } => self.on_subscribed(token, name, result),
            Msg::Unsubscribe {
                from,
                name,
                epoch,
                count,
                none_left,
            } => self
                .hub
                .unsubscribe_many(&name, epoch, from, count, none_left),
            Msg::Home {
                from,
                token,
                number,
                request,
            } => self.home_request(from, token, number, request),
            Msg::HomeReply {
                token,
                number,
                reply,
            } => self.on_home_reply(token, number, reply),
            Msg::Publish { cname, content } => self.home_publish(cname, content),
            Msg::Deliver {
                name,
                msg,
                first,
                epoch,
            } => self.on_deliver(&name, msg, first, epoch),
            Msg::Closed { name, json, epoch } => self.on_closed(&name, &json, epoch),
            Msg::Broadcast { content } => {
                // What was published before the broadcast reaches its channels first.
                self.release_held(true);
                self.home_broadcast(&content);
            }
            Msg::Presence { lines, chunks } => self.on_presence(&lines, Some(&chunks)),
            Msg::Spread { name } => self.on_spread(name),
            Msg::Cluster(events) => self.on_cluster(events),
            Msg::Gap { name, seq, epoch } => self.on_gap(&name, seq, epoch),
            // Handled in `Worker::handle_mail`, in order with the hand-overs and shutdown.
            Msg::Adopt(_) | Msg::Shutdown | Msg::Reload(_) => {}
        }
    }
}
