//! `Hub`: the home table of one worker — the authoritative state of every channel whose name
//! hashes to this worker (see `route`). Plain data in, plain data out: operations return what must
//! be sent where (a message and a bitmask of workers with subscribers) and never touch I/O.
//! Work over every channel is bounded per call where the server asks for it: the once-a-second
//! tick (presence re-announcements, countdowns, freeing expired channels) is walked by
//! `tick_step` after `begin_tick` (child `tick_walk`), and a `/broadcast` is stored by
//! `broadcast_step` (children `broadcast_run`, `broadcast_state`). The hub also keeps this
//! worker's index of its own subscribers (child `local_keys`): for its own channels inside their
//! records, so a channel and the subscriber living with it are one entry.
//! Depends on `comet::{auth, channel, keys, local, message, table}` and std.
//!
//! Cross-core contract (the worker moves the results between cores):
//! * every operation on a channel runs on its home hub; mailboxes between two workers are FIFO;
//! * `subscribe` registers the subscriber (count + its worker's bit) and returns the channel's
//!   `epoch`; the subscriber's worker reports its departure with `unsubscribe(name, epoch, ..)`;
//!   an epoch that no longer matches (the channel was closed or expired and maybe re-created
//!   since) is ignored, so a stale departure never corrupts a newer channel's count;
//! * `worker_has_none_left` clears the worker's bit; the bit is what `publish`/`close` report.
//!
//! Choices that differ from iComet (README.md, Differences from iComet):
//! * `/broadcast`: a broadcast is not activity of the channel, so it leaves every idle
//!   countdown alone; unsubscribed channels still expire on schedule. (Channels with subscribers
//!   never expire anyway.)
//! * `/sign`: `seq` is the oldest seq actually stored, which reflects the real
//!   `channel_buffer_size` rather than a compiled-in 10.
//! * Catch-up: see `Channel::catch_up`.
//! * Presence re-announcement: instead of a per-channel counter, a channel is re-announced on the
//!   ticks where `(tick + epoch) % channel_timeout == 0`. Consecutive creations get consecutive
//!   epochs, so announcements spread evenly over the period; each live channel is still announced
//!   once every `channel_timeout` ticks, the first time within `channel_timeout` ticks of its
//!   creation (never later than iComet, sometimes earlier).

use crate::comet::name::Name;
use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use self::broadcast_state::{BroadcastOut, BroadcastRun};
use self::mirror_log::MirrorLog;
use self::tick_state::TickWalk;
use super::auth::{AuthTokenSource, Credential};
use super::channel::{CatchUp, Channel, Resume};
use super::local::LocalSubs;
use super::message::{
    encode, Message, MsgType, TOKEN_ERROR, TOO_MANY_CHANNELS, TOO_MANY_SUBSCRIBERS, UNAVAILABLE,
};
use super::snapshot::SavedChannel;
use super::table::NameMap;

/// Channel settings a hub needs (from the `front` section of the configuration).
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Cap on live channels across all hubs.
    pub max_channels: usize,
    /// Cap on subscribers of one channel (0: every subscription is refused, as iComet).
    pub max_subscribers_per_channel: u32,
    /// Messages kept per channel for replay (B).
    pub channel_buffer_size: u32,
    /// Idle life of an unsubscribed channel, presence period and default `expires`, in ticks.
    pub channel_timeout: i32,
    /// Heartbeat period; reported as `sub_timeout` (the hub itself does not use it).
    pub polling_timeout: i32,
    /// `auth: token`: subscriptions never create channels and must present the token.
    pub auth_token: bool,
}

impl HubConfig {
    fn buffer(&self) -> usize {
        self.channel_buffer_size as usize
    }

    fn presence_period(&self) -> u32 {
        self.channel_timeout.max(1) as u32
    }
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded<T>(T);

/// Counters shared by all hubs, each on its own cache line: channels (live ones in the low 32
/// bits, creations reserved by publishers in flight in the high 32 bits, so the cap is checked
/// against both in one atomic step), subscribers (for `/info`) and `/psub` listeners (presence
/// events are recorded only while there is one).
#[derive(Debug, Default)]
pub struct Counters {
    channels: Padded<AtomicU64>,
    subscribers: Padded<AtomicUsize>,
    listeners: Padded<AtomicUsize>,
}

const LIVE: u64 = 1;
const RESERVED: u64 = 1 << 32;

impl Counters {
    /// Fresh zeroed counters, to be shared by every hub.
    pub fn new() -> Arc<Counters> {
        Arc::new(Counters::default())
    }

    /// Channels in all hubs, counting those whose creation a publisher reserved and its home has
    /// not carried out yet: a publisher answered on its own worker sees its channel counted at
    /// once (a publish in flight to a channel that exists counts it twice, until its home sees it).
    pub fn channels(&self) -> usize {
        let n = self.channels.0.load(Ordering::Acquire);
        ((n & 0xffff_ffff) + (n >> 32)) as usize
    }

    /// Registered subscribers in all hubs.
    pub fn subscribers(&self) -> usize {
        self.subscribers.0.load(Ordering::Relaxed)
    }

    /// Open `/psub` streams over all workers.
    pub fn listeners(&self) -> usize {
        self.listeners.0.load(Ordering::Acquire)
    }

    /// A `/psub` stream opened. Called before its response head is sent, so every event after the
    /// head is recorded.
    pub fn add_listener(&self) {
        self.listeners.0.fetch_add(1, Ordering::AcqRel);
    }

    /// A `/psub` stream closed.
    pub fn remove_listener(&self) {
        Counters::sub(&self.listeners.0, 1);
    }

    /// Adds `step` to the channel word when live + reserved stays within `max`.
    fn try_take(&self, max: usize, step: u64) -> bool {
        let max = max.min(u32::MAX as usize) as u64;
        self.channels
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                let used = (n & 0xffff_ffff) + (n >> 32);
                (used < max).then_some(n + step)
            })
            .is_ok()
    }

    fn try_add_channel(&self, max: usize) -> bool {
        self.try_take(max, LIVE)
    }

    /// Reserves the creation of one channel for a publish that travels to the channel's home (so
    /// its publisher can be answered at once): false when `max` channels exist or are reserved.
    /// The home settles it with `Hub::publish_reserved`.
    pub fn reserve_channel(&self, max: usize) -> bool {
        self.try_take(max, RESERVED)
    }

    /// A reservation turned into a live channel.
    fn commit_reservation(&self) {
        self.channels.0.fetch_sub(RESERVED - LIVE, Ordering::AcqRel);
    }

    /// A reservation was not needed (the channel existed).
    fn release_reservation(&self) {
        self.channels.0.fetch_sub(RESERVED, Ordering::AcqRel);
    }

    fn remove_channel(&self) {
        let _ = self
            .channels
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n & 0xffff_ffff != 0).then_some(n - LIVE)
            });
    }

    fn sub(counter: &AtomicUsize, n: usize) {
        // Saturating: never wraps even if callers were out of step.
        let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            Some(v.saturating_sub(n))
        });
    }
}

/// `max_channels` channels exist and a new one was needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyChannels;

/// Result of `/sign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignReply {
    /// Oldest replayable seq (`seq_next` when nothing is stored).
    pub seq_oldest: u32,
    /// The channel token, 32 lowercase hex digits.
    pub token_hex: [u8; 32],
    /// The idle countdown that was set (`channel_timeout` when the request gave ≤ 0).
    pub expires: i32,
    /// The channel's incarnation (resumable clients quote it).
    pub epoch: u32,
}

/// A stored message and where it must go.
#[derive(Debug, Clone)]
pub struct Published {
    /// The channel name (the hub's shared copy).
    pub name: Name,
    /// The stored message with its encoded JSON.
    pub msg: Message,
    /// Workers that have subscribers of the channel (bit per worker).
    pub workers: u64,
    /// The channel's subscribers on all workers when the message was stored (0 where not
    /// counted: broadcasts, cluster mirrors).
    pub subscribers: u32,
    /// The channel's incarnation: the message reaches only subscriptions of the same one
    /// (`None`: any, for a cluster mirror, whose subscriptions learn a new incarnation from a
    /// gap in order with its messages).
    pub epoch: Option<u32>,
}

/// A closed channel: every subscriber on `workers` gets `json` and its response ends.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The channel name.
    pub name: Name,
    /// The channel's `seq_next` at close time (the `close` message's seq and `/close`'s `ok N`).
    pub seq_next: u32,
    /// Workers that had subscribers (bit per worker).
    pub workers: u64,
    /// The encoded `close` message.
    pub json: Arc<[u8]>,
    /// The incarnation closed: subscriptions of a later one of the same name stay (`None`: a
    /// cluster mirror's, closing every subscription of the name).
    pub epoch: Option<u32>,
}

/// Why a subscription was refused; each maps to an error message sent with HTTP 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// `401` / `Token error`: wrong token, or (auth token) no such channel.
    TokenError,
    /// `429` / `Too many channels`.
    TooManyChannels,
    /// `429` / `Too many subscribers`.
    TooManySubscribers,
    /// `503` / `Cluster store unavailable`: cluster mode, the channel's Redis cannot be reached.
    Unavailable,
}

impl SubscribeError {
    /// Message type of the error reply.
    pub fn kind(self) -> MsgType {
        match self {
            SubscribeError::TokenError => MsgType::TokenError,
            SubscribeError::Unavailable => MsgType::Unavailable,
            _ => MsgType::TooMany,
        }
    }

    /// Content of the error reply (plain text, needs no escaping).
    pub fn content(self) -> &'static [u8] {
        match self {
            SubscribeError::TokenError => TOKEN_ERROR,
            SubscribeError::TooManyChannels => TOO_MANY_CHANNELS,
            SubscribeError::TooManySubscribers => TOO_MANY_SUBSCRIBERS,
            SubscribeError::Unavailable => UNAVAILABLE,
        }
    }
}

/// An accepted subscription.
#[derive(Debug, Clone)]
pub struct Subscribed {
    /// The hub's copy of the channel name: the subscriber's worker keys `LocalSubs` with it, so
    /// one name buffer serves every worker.
    pub name: Name,
    /// The channel incarnation to quote in `unsubscribe`.
    pub epoch: u32,
    /// What to send first.
    pub catch_up: CatchUp,
    /// Whether the subscriber was registered (always for a stream; for a long-poll
    /// only when it must wait). An unregistered subscriber must not be unsubscribed.
    pub registered: bool,
}

/// A subscription request as the channel's home sees it.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub cname: &'a [u8],
    /// The next data seq the subscriber wants (0: tell me where the channel is).
    pub seq: u32,
    /// What it presented: a `/sign` token, or the verdict on a stateless one.
    pub credential: &'a Credential,
    /// The worker holding the subscriber's connection.
    pub worker: usize,
    /// A long-poll: registered only when it must wait.
    pub long_poll: bool,
    /// A resumable transport (WebSocket, SSE with ids): told of a new incarnation or of a gap
    /// with `CatchUp::Reset` instead of iComet's `next_seq`.
    pub resume: Option<Resume>,
}

/// Presence event for `/psub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// `1 <cname>`: created, or periodically re-announced while alive.
    Online(Name),
    /// `0 <cname>`: freed by expiry or `/close`.
    Offline(Name),
}

impl Presence {
    /// The channel name.
    pub fn name(&self) -> &Name {
        match self {
            Presence::Online(n) | Presence::Offline(n) => n,
        }
    }

    /// Appends the `/psub` line: `1 <cname>\n` or `0 <cname>\n` (name raw, as iComet).
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self {
            Presence::Online(_) => b"1 ",
            Presence::Offline(_) => b"0 ",
        });
        out.extend_from_slice(self.name());
        out.push(b'\n');
    }
}

/// The home table of one worker.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    counters: Arc<Counters>,
    channels: NameMap<Channel>,
    /// This worker's subscribers of channels homed elsewhere (those of its own channels are in
    /// the channel records; child `local_keys`).
    elsewhere: LocalSubs,
    auth_tokens: AuthTokenSource,
    events: Vec<Presence>,
    /// `None`: record presence events while `/psub` listeners exist (the server); `Some`: a
    /// fixed choice (tests, tools).
    presence: Option<bool>,
    now: u32,
    next_epoch: u32,
    /// Cluster mode (`mirror`): what the node is told at the next report (expiries, changed
    /// subscriber counts).
    mirror: Option<MirrorLog>,
    /// The once-a-second tick being walked (`tick_walk`).
    tick_walk: Option<TickWalk>,
    /// The `/broadcast`s being stored channel by channel, oldest first (`broadcast_run`).
    broadcast_runs: VecDeque<BroadcastRun>,
    broadcast_out: BroadcastOut,
}

/// Where a hub's epochs start: random (never 0), so the channels of a restarted server are new
/// incarnations to the clients that knew the old ones. Consecutive creations then get
/// consecutive epochs, which spreads presence re-announcements evenly.
fn first_epoch() -> u32 {
    let mut bytes = [0u8; 4];
    let random = getrandom::fill(&mut bytes).is_ok();
    let epoch = if random {
        u32::from_le_bytes(bytes)
    } else {
        // No OS randomness: the clock still tells one start from the next.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32)
    };
    epoch.max(1)
}

impl Hub {
    /// An empty hub sharing `counters` with the other hubs. Presence events are recorded.
    pub fn new(config: HubConfig, counters: Arc<Counters>) -> Hub {
        Hub {
            config,
            counters,
            channels: NameMap::new(),
            elsewhere: LocalSubs::new(),
            auth_tokens: AuthTokenSource::new(),
            events: Vec::new(),
            presence: None,
            now: 0,
            next_epoch: first_epoch(),
            mirror: None,
            tick_walk: None,
            broadcast_runs: VecDeque::new(),
            broadcast_out: BroadcastOut::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// New limits from a reload; they apply to what happens from now on (a smaller ring is
    /// trimmed at the channel's next message).
    pub fn set_config(&mut self, config: HubConfig) {
        self.config = config;
    }

    /// The shared counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Records presence events always (`true`) or never (`false`), instead of while `/psub`
    /// listeners exist.
    pub fn set_presence(&mut self, on: bool) {
        self.presence = Some(on);
        if !on {
            self.events = Vec::new();
        }
    }

    /// Whether presence events are recorded now. Read at the moment of each event, so a `/psub`
    /// stream sees everything that happens after it registered (not from the next tick on).
    fn recording(&self) -> bool {
        self.presence
            .unwrap_or_else(|| self.counters.listeners() > 0)
    }

    fn announce(&mut self, event: Presence) {
        if self.recording() {
            self.events.push(event);
        }
    }

    /// Index of `cname`, creating the channel if needed.
    fn find_or_create(&mut self, cname: &[u8]) -> Result<usize, TooManyChannels> {
        self.find_or_create_with(cname, false, None)
    }

    /// `find_or_create`; `reserved`: the caller holds a reservation from
    /// `Counters::reserve_channel`, which a creation uses and an existing channel gives back;
    /// `shared`: the name already held elsewhere (`cname`'s bytes), which a creation keeps
    /// instead of a copy.
    fn find_or_create_with(
        &mut self,
        cname: &[u8],
        reserved: bool,
        shared: Option<&Name>,
    ) -> Result<usize, TooManyChannels> {
        if let Some(index) = self.channels.index_of(cname) {
            if reserved {
                self.counters.release_reservation();
            }
            return Ok(index);
        }
        if reserved {
            self.counters.commit_reservation();
        } else if !self.counters.try_add_channel(self.config.max_channels) {
            return Err(TooManyChannels);
        }
        let epoch = self.next_epoch;
        self.next_epoch = match epoch.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        let channel = Channel::new(self.auth_tokens.fresh(), epoch, self.config.channel_timeout);
        let name: Name = shared.map_or_else(|| Name::from(cname), Name::clone);
        match self.channels.insert_new(Name::clone(&name), channel) {
            Ok(index) => {
                self.channel_created(index);
                self.announce(Presence::Online(name));
                Ok(index)
            }
            Err(_) => {
                self.counters.remove_channel();
                Err(TooManyChannels)
            }
        }
    }

    fn at(&mut self, index: usize) -> Option<(&Name, &mut Channel)> {
        self.channels.entry_at_mut(index)
    }

    /// `/sign`: creates the channel if needed and sets its idle countdown to `expires`
    /// (`channel_timeout` when `expires` ≤ 0; this may shorten it).
    pub fn sign(&mut self, cname: &[u8], expires: i32) -> Result<SignReply, TooManyChannels> {
        let expires = if expires <= 0 {
            self.config.channel_timeout
        } else {
            expires
        };
        let index = self.find_or_create(cname)?;
        let (_, ch) = self.at(index).ok_or(TooManyChannels)?;
        ch.countdown = expires;
        Ok(SignReply {
            seq_oldest: ch.seq_oldest(),
            token_hex: ch.token_hex(),
            expires,
            epoch: ch.epoch(),
        })
    }

    /// `/pub`, `/push` (kind `Data`) or a broadcast to one channel (kind `Broadcast`; any other
    /// kind is stored as `Data`): creates the channel if needed, raises its countdown to
    /// `channel_timeout`, assigns the seq, encodes once and stores the message.
    pub fn publish(
        &mut self,
        cname: &[u8],
        content_inner: &[u8],
        kind: MsgType,
    ) -> Result<Published, TooManyChannels> {
        let kind = match kind {
            MsgType::Broadcast => MsgType::Broadcast,
            _ => MsgType::Data,
        };
        self.publish_with(cname, content_inner, kind, false)
    }

    /// `publish` for a publisher that was answered before the message reached the home: it
    /// reserved the channel's creation with `Counters::reserve_channel`, so this cannot fail.
    pub fn publish_reserved(&mut self, cname: &[u8], content_inner: &[u8]) -> Option<Published> {
        self.publish_with(cname, content_inner, MsgType::Data, true)
            .ok()
    }

    fn publish_with(
        &mut self,
        cname: &[u8],
        content_inner: &[u8],
        kind: MsgType,
        reserved: bool,
    ) -> Result<Published, TooManyChannels> {
        let timeout = self.config.channel_timeout;
        let buffer = self.config.buffer();
        let index = self.find_or_create_with(cname, reserved, None)?;
        let (name, ch) = self.at(index).ok_or(TooManyChannels)?;
        ch.raise_countdown(timeout);
        let seq = ch.take_seq();
        let msg = Message::new(kind, name, seq, content_inner);
        ch.ring.push(msg.clone(), buffer);
        Ok(Published {
            name: Name::clone(name),
            msg,
            workers: ch.workers,
            subscribers: ch.subscribers,
            epoch: Some(ch.epoch()),
        })
    }

    /// `/broadcast` on this hub all at once: stores a broadcast message (own seq) in every
    /// channel and hands each stored in a channel with subscribers to `deliver(name, message,
    /// workers)`. Countdowns are left alone (see module doc). The server stores it a bounded
    /// number of channels per loop turn instead (`broadcast_start`, `broadcast_step`).
    pub fn broadcast_each(
        &mut self,
        content_inner: &[u8],
        mut deliver: impl FnMut(&Name, &Message, u64),
    ) {
        self.broadcast_start(content_inner);
        self.broadcast_step(usize::MAX);
        for p in self.take_broadcast_deliveries().1 {
            deliver(&p.name, &p.msg, p.workers);
        }
    }

    /// `broadcast_each` collected into a list of `(name, message, workers)` (channels with
    /// subscribers).
    #[cfg(test)]
    pub fn broadcast(&mut self, content_inner: &[u8]) -> Vec<(Name, Message, u64)> {
        let mut out = Vec::with_capacity(self.channels.len());
        self.broadcast_each(content_inner, |name, msg, workers| {
            out.push((Name::clone(name), msg.clone(), workers));
        });
        out
    }

    /// `/close`: frees the channel at once (history, token, seq) and reports who must get the
    /// `close` message. `None` when the channel does not exist.
    pub fn close(&mut self, cname: &[u8]) -> Option<Closed> {
        let index = self.channels.index_of(cname)?;
        self.broadcast_settle_at(index);
        let (name, mut ch) = self.remove_channel_at(index)?;
        self.channel_freed(&name, &mut ch);
        if let Some(log) = self.mirror.as_mut().filter(|_| ch.subscribers > 0) {
            log.count_changed(&name);
        }
        self.counters.remove_channel();
        Counters::sub(&self.counters.subscribers.0, ch.subscribers as usize);
        self.announce(Presence::Offline(Name::clone(&name)));
        let json = encode(MsgType::Close, &name, ch.seq_next(), b"");
        Some(Closed {
            seq_next: ch.seq_next(),
            workers: ch.workers,
            json,
            name,
            epoch: self.mirror.is_none().then(|| ch.epoch()),
        })
    }

    /// `/clear`: empties the message ring (seq numbering continues); returns `seq_next`.
    pub fn clear(&mut self, cname: &[u8]) -> Option<u32> {
        let ch = self.channels.get_mut(cname)?;
        ch.ring.clear();
        Some(ch.seq_next())
    }

    /// Subscribes a client of worker `ask.worker` (0..64) asking for seq `ask.seq` with
    /// `ask.credential`: creates the channel under `auth: none`; under `auth: token` checks a
    /// `/sign` token against the channel's (no channel: refused), refuses a stateless token
    /// found invalid and creates the channel for a valid one; enforces the per-channel cap, raises the countdown, registers the
    /// subscriber and returns its catch-up. A long-poll ends with its catch-up unless that is
    /// `Wait`, so it is registered only when it has to wait (saving a register/unregister round
    /// trip for every poll answered at once).
    pub fn subscribe(&mut self, ask: Ask<'_>) -> Result<Subscribed, SubscribeError> {
        let Ask {
            cname,
            seq,
            credential,
            worker,
            long_poll,
            resume,
        } = ask;
        let always_register = !long_poll;
        let index = match credential {
            Credential::Signed(_) if self.config.auth_token => self
                .channels
                .index_of(cname)
                .ok_or(SubscribeError::TokenError)?,
            Credential::Stateless { valid: false } if self.config.auth_token => {
                return Err(SubscribeError::TokenError)
            }
            _ => self
                .find_or_create(cname)
                .map_err(|TooManyChannels| SubscribeError::TooManyChannels)?,
        };
        let auth = self.config.auth_token;
        let max = self.config.max_subscribers_per_channel;
        let timeout = self.config.channel_timeout;
        let (name, ch) = self.at(index).ok_or(SubscribeError::TokenError)?;
        let name = Name::clone(name);
        if let Credential::Signed(auth_token) = credential {
            if auth && !ch.token_matches(auth_token) {
                return Err(SubscribeError::TokenError);
            }
        }
        if ch.subscribers >= max {
            return Err(SubscribeError::TooManySubscribers);
        }
        ch.raise_countdown(timeout);
        let catch_up = match resume {
            Some(resume) => ch.catch_up_resuming(seq, resume),
            None => ch.catch_up(seq),
        };
        let registered = always_register || matches!(catch_up, CatchUp::Wait);
        if registered {
            ch.subscribers += 1;
            ch.workers |= worker_bit(worker);
        }
        let epoch = ch.epoch();
        if registered {
            self.counters.subscribers.0.fetch_add(1, Ordering::AcqRel);
            if let Some(log) = self.mirror.as_mut() {
                log.count_changed(&name);
            }
        }
        Ok(Subscribed {
            name,
            epoch,
            catch_up,
            registered,
        })
    }

    /// A registered subscriber of worker `worker` left. `worker_has_none_left`: it was that
    /// worker's last subscriber of the channel. Ignored when the channel is gone or `epoch` names
    /// an older incarnation.
    #[cfg(test)]
    pub fn unsubscribe(
        &mut self,
        cname: &[u8],
        epoch: u32,
        worker: usize,
        worker_has_none_left: bool,
    ) {
        self.unsubscribe_many(cname, epoch, worker, 1, worker_has_none_left);
    }

    /// `count` registered subscribers of worker `worker` left at once (a fan-out that ended many
    /// long-polls). With `count == 0` only the worker's bit is cleared — a worker that got a
    /// delivery without having subscribers corrects the home this way, whatever the epoch.
    pub fn unsubscribe_many(
        &mut self,
        cname: &[u8],
        epoch: u32,
        worker: usize,
        count: u32,
        worker_has_none_left: bool,
    ) {
        let Some((name, ch)) = self
            .channels
            .index_of(cname)
            .and_then(|i| self.channels.entry_at_mut(i))
        else {
            return;
        };
        if count == 0 {
            if worker_has_none_left {
                ch.workers &= !worker_bit(worker);
            }
            return;
        }
        if ch.epoch() != epoch {
            return;
        }
        let gone = count.min(ch.subscribers);
        ch.subscribers -= gone;
        Counters::sub(&self.counters.subscribers.0, gone as usize);
        if let Some(log) = self.mirror.as_mut().filter(|_| gone > 0) {
            log.count_changed(name);
        }
        if worker_has_none_left {
            ch.workers &= !worker_bit(worker);
        }
        if ch.subscribers == 0 {
            ch.workers = 0;
        }
    }

    /// Once per second: presence re-announcements, countdown and expiry of channels without
    /// subscribers (freed when the countdown drops below zero, i.e. N..N+1 ticks after the last
    /// activity for countdown N); channels with subscribers are held at `channel_timeout`.
    /// Returns every presence event queued since the last drain, in order. All at once: the
    /// server uses `begin_tick` and a bounded `tick_step` per loop turn instead (`tick_walk`).
    pub fn tick(&mut self) -> Vec<Presence> {
        self.begin_tick();
        self.tick_step(usize::MAX);
        self.drain_presence()
    }

    /// Removes the channel at `index` (the last entry takes its index), after telling the walks
    /// under way (the broadcasts', the tick's) what moves: every removal goes through here.
    fn remove_channel_at(&mut self, index: usize) -> Option<(Name, Channel)> {
        self.broadcast_before_remove(index);
        self.tick_before_remove(index);
        self.channels.remove_at(index)
    }

    /// Frees the expired channel at `index` for the tick's walk (`tick_walk`): the last entry
    /// takes its index.
    fn free_expired_at(&mut self, index: usize) {
        let Some((name, mut ch)) = self.remove_channel_at(index) else {
            return;
        };
        self.channel_freed(&name, &mut ch);
        if self.recording() {
            self.events.push(Presence::Offline(Name::clone(&name)));
        }
        if let Some(log) = self.mirror.as_mut() {
            log.expired.push(name);
        }
        self.counters.remove_channel();
    }

    /// Presence events queued since the last drain (creations happen outside `tick`).
    pub fn drain_presence(&mut self) -> Vec<Presence> {
        std::mem::take(&mut self.events)
    }

    /// True when the channel exists here.
    pub fn exists(&self, cname: &[u8]) -> bool {
        self.channels.contains_key(cname)
    }

    /// Subscribers of the channel (0 when it does not exist).
    pub fn subscribers(&self, cname: &[u8]) -> u32 {
        self.channels.get(cname).map_or(0, |ch| ch.subscribers)
    }

    /// Read access to a channel.
    pub fn channel(&self, cname: &[u8]) -> Option<&Channel> {
        self.channels.get(cname)
    }

    /// The hub's shared copy of a channel name (to reuse instead of allocating another).
    pub fn name(&self, cname: &[u8]) -> Option<Name> {
        self.channels
            .get_key_value(cname)
            .map(|(k, _)| Name::clone(k))
    }

    /// Channels held by this hub.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Every channel's state, for a snapshot.
    pub fn save(&self) -> Vec<SavedChannel> {
        self.channels
            .iter()
            .map(|(name, ch)| ch.save(name))
            .collect()
    }

    /// Puts back a channel a snapshot saved (no presence event: it never went away). Refused
    /// beyond `max_channels`, or when the channel exists already.
    pub fn restore(&mut self, saved: &SavedChannel) -> Result<(), TooManyChannels> {
        if self.channels.index_of(&saved.name).is_some()
            || !self.counters.try_add_channel(self.config.max_channels)
        {
            return Err(TooManyChannels);
        }
        let channel = Channel::restore(saved, self.config.buffer());
        let name: Name = Name::from(&saved.name[..]);
        match self.channels.insert_new(name, channel) {
            Ok(index) => self.channel_created(index),
            Err(_) => {
                self.counters.remove_channel();
                return Err(TooManyChannels);
            }
        }
        Ok(())
    }

    /// True when this hub holds no channel.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Estimated heap bytes owned by the hub: table, channel names, rings (not the shared message
    /// buffers), queued events and the subscriber index (`local_keys`).
    pub fn heap_bytes(&self) -> usize {
        self.channels
            .heap_bytes_with(|ch| ch.ring.heap_bytes() + ch.local.heap_bytes())
            + self.channels.names_heap_bytes()
            + self.events.capacity() * size_of::<Presence>()
            + self.elsewhere.heap_bytes()
    }
}

/// Bit of worker `worker` in a worker mask (workers are numbered 0..64).
pub fn worker_bit(worker: usize) -> u64 {
    1u64.wrapping_shl(worker as u32)
}

#[path = "broadcast_run.rs"]
mod broadcast_run;
#[path = "broadcast_state.rs"]
mod broadcast_state;
#[path = "local_keys.rs"]
mod local_keys;
#[path = "mirror.rs"]
mod mirror;
#[path = "mirror_log.rs"]
mod mirror_log;
#[path = "tick_state.rs"]
mod tick_state;
#[path = "tick_walk.rs"]
mod tick_walk;
pub use mirror::{Gapped, MirrorState, MirrorStep, Resynced};

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
