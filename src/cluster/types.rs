//! The cluster's plain data: settings, the requests workers send, the events they get back,
//! Redis's view of a channel, and the link counters `/stats` shows.
//!
//! Depends on: comet (message kinds).

use crate::comet::message::MsgType;
use crate::comet::name::Name;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Channel settings the cluster thread needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Redis instances (shards), `HOST:PORT`.
    pub redis: Vec<String>,
    pub prefix: String,
    pub node: String,
    /// Workers of this node (events go to a channel's home worker).
    pub workers: usize,
    /// Messages kept per channel.
    pub buffer: u32,
    /// Seconds an idle channel lives in Redis.
    pub channel_timeout: u32,
}

/// An admin operation run against Redis.
#[derive(Debug, Clone)]
pub enum Op {
    /// `/push`, `/pub`: the JSON string's inside.
    Publish {
        content: Vec<u8>,
    },
    Sign {
        expires: i32,
    },
    Close,
    Clear,
    Info,
    Check,
    /// `/info` without `cname`: channels and subscribers over every shard and node.
    Totals,
    /// `/broadcast` on every channel of every shard: the JSON string's inside.
    Broadcast {
        content: Vec<u8>,
    },
}

/// What a worker asks of the cluster thread.
#[derive(Debug)]
pub enum Request {
    /// Run `op` on channel `cname`; answer `Event::Done { ticket }` to worker `worker`.
    Op {
        worker: usize,
        ticket: u64,
        cname: Name,
        op: Op,
    },
    /// The home worker mirrors this channel from now on: subscribe to its subject and send its
    /// state (`Event::Synced`). `create`: create it in Redis when absent.
    Watch { name: Name, create: bool },
    /// The home worker's mirror of this channel missed something (a seq jumped), or the
    /// channel's shard reconnected (`Event::Resubscribe`): subscribe to its subject again and
    /// send its state (`Event::Resync`). `create` as for `Watch`.
    Resync { name: Name, create: bool },
    /// The home worker stopped mirroring the channel.
    Unwatch { name: Name },
    /// The answer to `Event::RefreshWanted`: the home worker still mirrors these channels, so
    /// their Redis keys live on (TTL refresh).
    Refresh { names: Vec<Name> },
    /// Worker `worker`'s subscriber counts of channels it is home of: with `full`, every channel
    /// with subscribers (what Redis held for the worker is replaced); otherwise the channels
    /// whose count changed since the last report (0: none left).
    Counts {
        worker: usize,
        counts: Vec<(Name, u32)>,
        full: bool,
    },
}

/// The result of an [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Published,
    Signed {
        seq_oldest: u32,
        token_hex: [u8; 32],
        expires: i32,
        epoch: u32,
    },
    /// `/close` and `/clear`: the channel's next seq, `None` when it does not exist.
    SeqNext(Option<u32>),
    /// Subscribers over all nodes.
    Info(u64),
    Check(bool),
    /// `/info` without `cname`: channels in Redis, subscribers on every node.
    Totals {
        channels: u64,
        subscribers: u64,
    },
    /// `/broadcast` was stored on every shard.
    Broadcasted,
    /// Redis could not be reached (or did not answer in time): 503.
    Unavailable,
}

/// A stored message as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u32,
    pub kind: MsgType,
    /// The JSON string's inside.
    pub content: Vec<u8>,
}

/// A channel's state in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub epoch: u32,
    /// The seq the next message gets.
    pub seq_next: u32,
    /// The `/sign` token (16 bytes).
    pub token: [u8; 16],
    /// The replay buffer, oldest first.
    pub entries: Vec<Entry>,
}

/// What the cluster thread tells a worker.
#[derive(Debug)]
pub enum Event {
    /// The answer to `Request::Op { ticket }`.
    Done { ticket: u64, result: OpResult },
    /// A watched channel's state (`None`: it does not exist and was not to be created).
    Synced { name: Name, state: Option<State> },
    /// A message Redis published on a channel this node listens to, as published: the home's
    /// mirror delivers it, skips it (it has it already) or asks for the state again
    /// (`Request::Resync`: something was missed).
    Message {
        name: Name,
        epoch: u32,
        entry: Entry,
    },
    /// The channel was closed (on any node), in incarnation `epoch` (`None`: it is gone from
    /// Redis, whatever the incarnation); its mirror goes.
    Closed { name: Name, epoch: Option<u32> },
    /// The channel's buffer was cleared, in incarnation `epoch`.
    Cleared { name: Name, epoch: u32 },
    /// The state a `Request::Resync` asked for: the mirror takes what it missed, or tells its
    /// subscribers of a gap (history fell off the buffer, or Redis came back empty).
    Resync { name: Name, state: State },
    /// Redis refused the state of a channel being joined, again and again (a key of the wrong
    /// type, out of memory): subscriptions waiting for it are refused (503); a mirror of it lives
    /// on and asks again at its next missed seq.
    Refused { name: Name },
    /// Shard `shard` of `shards` is connected again: send `Request::Resync` for every channel of
    /// that shard this worker mirrors.
    Resubscribe { shard: usize, shards: usize },
    /// Name every mirrored channel (`Request::Refresh`): sent every third of `channel_timeout`.
    RefreshWanted,
    /// Redis does not hold this worker's subscriber counts (it restarted, or they expired):
    /// the next report must be the whole list.
    CountsWanted,
    /// `/psub` events from Redis (any node's): lines `1 NAME` / `0 NAME`, each ending in `\n`.
    Presence { lines: Arc<[u8]> },
}

/// Where the cluster thread sends events: worker id and one batch for it.
pub type Sink = Box<dyn FnMut(usize, Vec<Event>) + Send>;

/// The Redis links' health, for `/stats` and the 503 decision.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Per shard: connected and answering.
    pub up: Vec<AtomicBool>,
    /// Per shard: its state is known (it was up once, or a connection failed or was lost): from
    /// then on a shard that is not up is down. Before, the node is still starting.
    pub settled: Vec<AtomicBool>,
    pub reconnects: AtomicU64,
    /// Commands sent and not answered yet.
    pub pending: AtomicU64,
    /// The last PING round trip, microseconds.
    pub latency_us: AtomicU64,
    /// Messages Redis published that the workers' mirrors took, and messages fetched on resync.
    pub messages_in: AtomicU64,
    pub resyncs: AtomicU64,
    pub gaps: AtomicU64,
    /// Channels whose subscription or state read is under way (the cluster thread keeps a record
    /// of a channel only then).
    pub joining: AtomicU64,
}

impl LinkStats {
    /// True when every shard is up.
    pub fn connected(&self) -> bool {
        self.up.iter().all(|u| u.load(Ordering::Relaxed))
    }

    /// Writes the link object of `/stats` (`"cluster": {...}`'s inside, without braces).
    pub fn write_json(&self, node: &str, out: &mut Vec<u8>) {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let up = self.up.iter().filter(|u| u.load(Ordering::Relaxed)).count();
        let text = format!(
            "\"node\": \"{node}\", \"connected\": {}, \"shards\": {}, \"shards_up\": {up}, \
             \"latency_us\": {}, \"reconnects\": {}, \"pending_commands\": {}, \
             \"messages_in\": {}, \"resyncs\": {}, \"gaps\": {}, \"joining\": {}",
            self.connected(),
            self.up.len(),
            n(&self.latency_us),
            n(&self.reconnects),
            n(&self.pending),
            n(&self.messages_in),
            n(&self.resyncs),
            n(&self.gaps),
            n(&self.joining),
        );
        out.extend_from_slice(text.as_bytes());
    }
}
