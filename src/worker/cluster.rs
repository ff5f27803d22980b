//! Cluster mode on a worker: admin operations go to Redis through the cluster thread and are
//! answered when it replies (503 at once when the channel's Redis is down); a subscription to a
//! channel this home does not mirror yet waits (parked here) until the cluster thread has
//! subscribed to it and sent its state — or is refused (`503` in its transport's framing) when
//! the channel's Redis is down, at once or as soon as the link is seen down while it waits, and
//! after `polling_timeout` seconds of waiting; the thread's events then feed the hub's mirror, and
//! deliveries, catch-ups and fan-out run exactly as in single-node mode. The mirror keeps the
//! channel's order: a message Redis published that does not follow it (one was missed) makes the
//! home ask for the state again (`Request::Resync`, once per gap), and after a reconnect the home
//! asks again for every mirror of that shard. Once a second each home reports the subscriber
//! counts that changed (for `/info` over all nodes; every count when the node asks, after Redis
//! lost them) and the mirrors that expired (at once, too, before it asks for a channel again);
//! when the node asks (every third of `channel_timeout`) it names its mirrors so their keys in
//! Redis live on.
//!
//! Nothing here runs in single-node mode (`Worker::cluster` is `None`), and nothing is added to
//! connections or subscriptions.
//!
//! Depends on: worker (Worker, Msg, subs, home), cluster (requests, events), comet (the mirror),
//! api (admin replies, subscriptions), memory (shrinking drained tables).

use super::cluster_side::ClusterSide;
use super::conn::Conns;
use super::msg::{Msg, SubscribeMsg};
use super::ws_channels::sub_for;
use super::Worker;
use crate::api::home::Effect;
use crate::api::{admin, subscribe, HomeOp, HomeRequest};
use crate::cluster::{wire, Entry, Event, LinkStats, Op, OpResult, Request, State};
use crate::comet::auth::Credential;
use crate::comet::hub::{Gapped, MirrorState, MirrorStep, Resynced, SubscribeError};
use crate::comet::message::MsgType;
use crate::comet::name::Name;
use crate::engine::Token;
use crate::memory::ShrinkIdle;
use std::sync::atomic::{AtomicU64, Ordering};

/// The operation Redis runs for an admin request (its content moved out).
fn op_of(request: &mut HomeRequest) -> Op {
    match &mut request.op {
        HomeOp::Publish { content } => Op::Publish {
            content: std::mem::take(content),
        },
        HomeOp::Sign { expires } => Op::Sign { expires: *expires },
        HomeOp::Close => Op::Close,
        HomeOp::Clear => Op::Clear,
        HomeOp::Info => Op::Info,
        HomeOp::Check => Op::Check,
        HomeOp::Totals => Op::Totals,
        HomeOp::Broadcast { content } => Op::Broadcast {
            content: std::mem::take(content),
        },
    }
}

/// An admin reply from what Redis answered.
fn write_reply(req: &HomeRequest, result: &OpResult, date: &[u8], sub_timeout: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    match result {
        OpResult::Published => admin::ok_reply(&mut out, req, date),
        OpResult::Signed {
            seq_oldest,
            token_hex,
            expires,
            epoch,
        } => {
            let fields = admin::SignFields {
                seq: *seq_oldest,
                token_hex,
                expires: *expires,
                sub_timeout,
                epoch: *epoch,
            };
            admin::sign_reply(&mut out, req, date, fields);
        }
        OpResult::SeqNext(seq) => admin::ok_seq_or_missing(&mut out, req, date, *seq),
        OpResult::Info(n) => admin::info_reply(&mut out, req, date, *n as usize),
        OpResult::Check(exists) => admin::check_reply(&mut out, req, date, *exists),
        OpResult::Totals {
            channels,
            subscribers,
        } => {
            let (c, s) = (*channels as usize, *subscribers as usize);
            admin::totals(&mut out, &req.style, date, c, s);
        }
        OpResult::Broadcasted => admin::broadcast_ok(&mut out, &req.style, date),
        OpResult::Unavailable => admin::unavailable(&mut out, req, date),
    }
    out
}

/// A state as the hub's mirror takes it, with its `entries_of`.
fn mirror_of<'a>(state: &State, entries: &'a [(u32, MsgType, &'a [u8])]) -> MirrorState<'a> {
    MirrorState {
        epoch: state.epoch,
        seq_next: state.seq_next,
        token: state.token,
        entries,
    }
}

/// The entries of a state as the hub's mirror takes them.
fn entries_of(state: &State) -> Vec<(u32, MsgType, &[u8])> {
    state
        .entries
        .iter()
        .map(|e| (e.seq, e.kind, &e.content[..]))
        .collect()
}

impl Worker {
    fn side(&mut self) -> Option<&mut ClusterSide> {
        self.cluster.as_deref_mut()
    }

    /// An admin operation in cluster mode: sent to Redis, answered when Redis replies.
    pub(crate) fn cluster_admin(&mut self, token: Token, mut request: HomeRequest) {
        // Totals and broadcasts need every shard; a channel's operation, its own.
        let every = matches!(request.op, HomeOp::Totals | HomeOp::Broadcast { .. });
        let up = self.side().is_some_and(|s| {
            if every {
                s.handle.stats.connected()
            } else {
                s.handle.up_for(&request.cname)
            }
        });
        if !up {
            let date = self.date.get();
            let mut out = Vec::with_capacity(256);
            admin::unavailable(&mut out, &request, date);
            return self.respond(token, &out);
        }
        let Some(number) = self.conns.at(token).and_then(|c| c.replies_mut()) else {
            return;
        };
        let number = number.reserve();
        let worker = self.id;
        let op = op_of(&mut request);
        let cname: Name = Name::from(&request.cname[..]);
        let Some(side) = self.side() else {
            return;
        };
        let ticket = side.next_ticket;
        side.next_ticket += 1;
        side.tickets
            .insert(ticket, (token, number, Box::new(request)));
        side.out.push(Request::Op {
            worker,
            ticket,
            cname,
            op,
        });
    }

    /// Cluster mode: a subscription to a channel this home does not mirror waits for the
    /// mirror. Returns the request when it can go on at once.
    pub(super) fn cluster_park(&mut self, m: SubscribeMsg) -> Option<SubscribeMsg> {
        if self.cluster.is_none() || self.hub.exists(&m.name) {
            return Some(m);
        }
        let create = self.creates(&m.credential);
        let now = self.date.unix_secs();
        let side = self.side()?;
        if side.handle.down_for(&m.name) {
            // Redis is down: a clear refusal now rather than a wait of unknown length. (A node
            // still making its first connection parks it: the link is up within milliseconds.)
            self.refuse_unavailable(vec![m]);
            return None;
        }
        let (_, waiting) = side
            .parked
            .entry(Name::clone(&m.name))
            .or_insert_with(|| (now, Vec::new()));
        let first = waiting.is_empty();
        let name = Name::clone(&m.name);
        waiting.push(m);
        if first {
            // An earlier mirror of this name that expired is let go first.
            self.cluster_unwatch_expired();
            if let Some(side) = self.side() {
                side.out.push(Request::Watch { name, create });
            }
        }
        None
    }

    /// Parked subscriptions whose channel's Redis went down, or that waited `polling_timeout`
    /// seconds, are refused (`503` in their transport's framing) instead of waiting on.
    fn expire_parked(&mut self) {
        let now = self.date.unix_secs();
        let bound = u64::from(self.config.front.polling_timeout.max(1));
        let Some(side) = self.side() else {
            return;
        };
        let handle = side.handle.clone();
        let due: Vec<Name> = side
            .parked
            .iter()
            .filter(|(name, (since, _))| {
                now.saturating_sub(*since) >= bound || handle.down_for(name)
            })
            .map(|(name, _)| Name::clone(name))
            .collect();
        let mut refused = Vec::new();
        for name in due {
            if let Some((_, subs)) = side.parked.remove(&name) {
                refused.extend(subs);
            }
        }
        self.refuse_unavailable(refused);
    }

    /// Tells each subscription's worker it was refused: the store cannot be reached.
    fn refuse_unavailable(&mut self, subs: Vec<SubscribeMsg>) {
        for m in subs {
            self.answer_subscribe(m, Err(SubscribeError::Unavailable));
        }
    }

    /// Sends this turn's requests to the cluster thread.
    pub(super) fn cluster_flush(&mut self) {
        if let Some(side) = self.side() {
            if !side.out.is_empty() {
                let batch = std::mem::take(&mut side.out);
                side.handle.send(batch);
            }
        }
    }

    /// Once a second: mirrors that expired are let go; changed subscriber counts are reported.
    pub(super) fn cluster_tick(&mut self) {
        if self.cluster.is_none() {
            return;
        }
        self.expire_parked();
        if let Some(side) = self.side() {
            // A burst of subscriptions or signs waiting for Redis grew these (`ShrinkIdle`).
            side.parked.shrink_idle();
            side.tickets.shrink_idle();
            side.resyncing.shrink_idle();
        }
        self.cluster_unwatch_expired();
        let full = self.side().is_some_and(|side| side.counts_wanted);
        let counts = if full {
            self.hub.subscriber_counts()
        } else {
            self.hub.take_count_changes()
        };
        let worker = self.id;
        let Some(side) = self.side() else {
            return;
        };
        if full || !counts.is_empty() {
            side.counts_wanted = false;
            side.out.push(Request::Counts {
                worker,
                counts,
                full,
            });
        }
    }

    /// Events from the cluster thread.
    pub(super) fn on_cluster(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Done { ticket, result } => self.cluster_done(ticket, &result),
                Event::Synced { name, state } => self.cluster_synced(&name, state.as_ref()),
                Event::Message { name, epoch, entry } => {
                    self.cluster_message(&name, epoch, &entry);
                }
                Event::Closed { name, epoch } => self.cluster_closed(&name, epoch),
                Event::Cleared { name, epoch } => {
                    if self.hub.mirror_epoch(&name) == Some(epoch) {
                        self.hub.clear(&name);
                    }
                }
                Event::Resync { name, state } => self.cluster_resync(&name, &state),
                Event::Resubscribe { shard, shards } => self.cluster_resubscribe(shard, shards),
                Event::RefreshWanted => self.cluster_refresh(),
                Event::Refused { name } => {
                    let parked = self.side().and_then(|side| {
                        side.resyncing.remove(&name);
                        side.parked.remove(&name)
                    });
                    if let Some((_, subs)) = parked {
                        self.refuse_unavailable(subs);
                    }
                }
                Event::CountsWanted => {
                    if let Some(side) = self.side() {
                        side.counts_wanted = true;
                    }
                }
                Event::Presence { lines } => self.on_presence(&lines, None),
            }
        }
    }

    fn cluster_done(&mut self, ticket: u64, result: &OpResult) {
        let Some((token, number, request)) = self.side().and_then(|s| s.tickets.remove(&ticket))
        else {
            return;
        };
        if *result == OpResult::Published {
            self.stats().pushes.fetch_add(1, Ordering::Relaxed);
        }
        let date = self.date.get();
        let sub_timeout = self.config.front.polling_timeout;
        let reply = write_reply(&request, result, date, sub_timeout);
        self.on_home_reply(token, number, reply);
    }

    /// Whether a subscription with `credential` may create its channel in Redis: always
    /// without `auth: token`; under it only with a valid stateless token (a `/sign` channel
    /// exists only through `/sign`, and a refused token creates nothing).
    fn creates(&self, credential: &Credential) -> bool {
        !self.hub.config().auth_token || matches!(credential, Credential::Stateless { valid: true })
    }

    fn cluster_synced(&mut self, name: &Name, state: Option<&State>) {
        // A new mirror: whatever an earlier one of this name asked for is answered.
        let parked = self.side().and_then(|side| {
            side.resyncing.remove(name);
            side.parked.remove(name)
        });
        let (since, parked) = parked.unwrap_or_default();
        let Some(state) = state else {
            // Absent, and the first waiting subscription could not create it (`auth: token`):
            // those that can (a valid stateless token) ask again with creation; the rest are
            // refused as on a single node, and nothing is created here.
            let (create, refuse): (Vec<_>, Vec<_>) = parked
                .into_iter()
                .partition(|m| self.creates(&m.credential));
            for m in refuse {
                self.answer_subscribe(m, Err(SubscribeError::TokenError));
            }
            if let Some(side) = self.side().filter(|_| !create.is_empty()) {
                side.out.push(Request::Watch {
                    name: Name::clone(name),
                    create: true,
                });
                side.parked.insert(Name::clone(name), (since, create));
            }
            return;
        };
        if self.hub.exists(name) {
            // A second first state (the channel was asked for again while its first state was
            // on its way): the live mirror takes it as a re-read, so nothing it holds is lost.
            self.cluster_resync(name, state);
            for m in parked {
                self.home_subscribe_now(m);
            }
            return;
        }
        let entries = entries_of(state);
        let mirror = mirror_of(state, &entries);
        if !self.hub.mirror_sync(name, mirror) {
            // No room (`max_channels`): the node stops listening, and the waiting subscriptions
            // are refused here (none may create a channel nobody listens for).
            if let Some(side) = self.side() {
                side.out.push(Request::Unwatch {
                    name: Name::clone(name),
                });
            }
            for m in parked {
                self.answer_subscribe(m, Err(SubscribeError::TooManyChannels));
            }
            return;
        }
        for m in parked {
            self.home_subscribe_now(m);
        }
        self.announce_presence();
    }

    /// Whether a channel this home asks Redis for again is to be created when absent: under
    /// `auth: token` without stateless tokens channels exist only through `/sign`, so one gone
    /// from Redis is closed; with stateless tokens a subscriber may have created it, and it is
    /// created again (its subscribers are told of the gap).
    fn create_on_resync(&self) -> bool {
        !self.hub.config().auth_token || self.config.front.auth_secret.is_some()
    }

    /// A message Redis published: the mirror takes it if it is the next one.
    fn cluster_message(&mut self, name: &Name, epoch: u32, entry: &Entry) {
        match self
            .hub
            .mirror_message(name, epoch, entry.seq, entry.kind, &entry.content)
        {
            MirrorStep::Deliver(p) => {
                self.count(|s| &s.messages_in, 1);
                self.apply(Effect::Deliver(p));
            }
            MirrorStep::Jump => self.ask_resync(name),
            MirrorStep::Duplicate | MirrorStep::Unknown => {}
        }
    }

    /// Adds `n` to one of the node's link counters (`/stats`).
    fn count(&self, counter: impl Fn(&LinkStats) -> &AtomicU64, n: u64) {
        if let Some(side) = self.cluster.as_deref() {
            counter(&side.handle.stats).fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The mirror missed something: the state is asked for once, until it comes.
    fn ask_resync(&mut self, name: &Name) {
        let create = self.create_on_resync();
        let Some(side) = self.side() else {
            return;
        };
        if side.resyncing.insert(Name::clone(name)) {
            side.out.push(Request::Resync {
                name: Name::clone(name),
                create,
            });
        }
    }

    /// The channel was closed in Redis (in `epoch`; `None`: it is gone whatever the
    /// incarnation): the mirror goes, and the node stops listening to it.
    fn cluster_closed(&mut self, name: &Name, epoch: Option<u32>) {
        let mine = self.hub.mirror_epoch(name);
        let closes = mine.is_some() && (epoch.is_none() || epoch == mine);
        if let Some(side) = self.side() {
            if closes || epoch.is_none() {
                // Without an epoch the node ended the join (and let the channel go) already.
                side.resyncing.remove(name);
            }
            if closes && epoch.is_some() {
                side.out.push(Request::Unwatch {
                    name: Name::clone(name),
                });
            }
        }
        if !closes {
            return;
        }
        if let Some(closed) = self.hub.close(name) {
            self.apply(Effect::Closed(closed));
        }
        self.announce_presence();
    }

    /// The state a resync asked for: the mirror takes what it missed, or its subscribers are
    /// told of a gap.
    fn cluster_resync(&mut self, name: &Name, state: &State) {
        if let Some(side) = self.side() {
            side.resyncing.remove(name);
        }
        let entries = entries_of(state);
        let mirror = mirror_of(state, &entries);
        match self.hub.mirror_resync(name, mirror) {
            Resynced::Unknown | Resynced::Current => {}
            Resynced::Filled(missed) => {
                self.count(|s| &s.messages_in, missed.len() as u64);
                for p in missed {
                    self.apply(Effect::Deliver(p));
                }
            }
            Resynced::Gap(gap, stored) => {
                self.count(|s| &s.gaps, 1);
                self.cluster_gap(gap, stored);
            }
        }
    }

    /// Subscribers on every worker are told that delivery jumps; then the stored messages.
    fn cluster_gap(&mut self, gap: Gapped, stored: Vec<crate::comet::Published>) {
        let Gapped {
            name,
            seq,
            epoch,
            workers,
        } = gap;
        self.mail_workers(workers, || Msg::Gap {
            name: Name::clone(&name),
            seq,
            epoch,
        });
        for p in stored {
            self.apply(Effect::Deliver(p));
        }
    }

    /// Shard `shard` reconnected: every mirror of it is joined again.
    fn cluster_resubscribe(&mut self, shard: usize, shards: usize) {
        let names = self
            .hub
            .mirror_names(|name| wire::shard_of(name, shards) == shard);
        let create = self.create_on_resync();
        let Some(side) = self.side() else {
            return;
        };
        for name in names {
            side.resyncing.insert(Name::clone(&name));
            side.out.push(Request::Resync { name, create });
        }
    }

    /// The node asks: the names of this home's mirrors, whose keys in Redis it keeps alive.
    fn cluster_refresh(&mut self) {
        let names = self.hub.mirror_names(|_| true);
        if let Some(side) = self.side().filter(|_| !names.is_empty()) {
            side.out.push(Request::Refresh { names });
        }
    }

    /// Mirrors that expired are let go: the node stops listening to them. Also before a
    /// channel is asked for again, so that its `Unwatch` never follows the new `Watch`.
    fn cluster_unwatch_expired(&mut self) {
        let expired = self.hub.take_expired();
        let Some(side) = self.side() else {
            return;
        };
        for name in expired {
            side.resyncing.remove(&name);
            side.out.push(Request::Unwatch { name });
        }
    }

    /// Delivery jumps for this worker's subscribers of `name`: each is told (`reset` or
    /// `next_seq`); a long-poll ends with it.
    pub(super) fn gap_now(&mut self, name: &Name, seq: u32, epoch: u32) {
        let mut keys = Vec::new();
        self.hub.local_keys_into(name, &mut keys);
        self.gap_each(name, seq, epoch, &keys);
    }

    /// The same for the subscribers `keys` of `name` here (a part of them, from the lane).
    pub(super) fn gap_each(&mut self, name: &Name, seq: u32, epoch: u32, keys: &[u64]) {
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
            out.clear();
            let ends = subscribe::gap(sub, seq, epoch, &mut out);
            self.queue(token, &out);
            if ends {
                if let Some(sub) = self.take_sub(token) {
                    self.unsubscribe_left(&sub);
                }
                self.end_subscription(token);
            }
        }
    }
}
