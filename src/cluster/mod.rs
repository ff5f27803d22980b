//! Cluster mode: several rcomet nodes serving the same channels through Redis.
//!
//! A channel's authoritative state (seq counter, replay buffer, token, expiry) lives in Redis; a
//! node's hubs hold a *mirror* of the channels it serves. One thread per node (`node`) owns every
//! Redis connection, so Redis I/O never blocks a worker: workers hand it [`Request`]s (a channel
//! send plus an eventfd wake, batched per loop turn) and it answers through the workers' own
//! mailboxes with [`Event`]s (a sink closure given at start, so this module knows nothing of the
//! worker). Per Redis instance (shard) it keeps one command connection, where every command is
//! pipelined, and one pub/sub connection.
//!
//! * A push runs one Lua script (EVALSHA): take the next seq, append to the capped buffer list,
//!   PUBLISH on the channel's subject — so every node sees a channel's messages in seq order.
//! * A node SUBSCRIBEs to a channel's subject while its home hub mirrors the channel (it has or
//!   recently had subscribers there), then reads the channel's state once; messages published
//!   from then on arrive by pub/sub and go to the home, whose mirror checks each against its seq
//!   and epoch (`comet::mirror`) and asks for the state again when one jumps. The thread keeps a
//!   record of a channel only while joining it (`join`): a live channel costs it nothing.
//! * `/psub` events come from Redis: the scripts publish a channel's creation and `/close` on
//!   `P:presence`, a sweep re-announces live channels and reports expired ones; every node
//!   subscribes to that subject and forwards its lines to the workers while it has listeners.
//! * A lost link fails what was in flight (pushes get 503), reconnects with backoff, and asks
//!   every worker for the channels of that shard it mirrors (`Event::Resubscribe`); each is
//!   subscribed again and its state read again: the home takes what it missed from the buffer, in
//!   order, or tells its subscribers of a gap (another incarnation when Redis came back empty).
//!
//! Files: `types` (requests, events, settings, counters), `resp` (commands out, replies in),
//! `scripts` (the Lua scripts), `wire` (key names and the formats of stored entries and pub/sub
//! payloads), `join` (a channel whose subscription or state read is under way), `link` (one
//! Redis connection), `node` (the thread).
//!
//! Depends on: comet (messages, seq order, routing, tokens), config (the cluster block), engine
//! (the eventfd waker).

mod join;
mod link;
mod node;
pub mod resp;
pub mod scripts;
mod types;
pub mod wire;

pub use types::{Entry, Event, LinkStats, Op, OpResult, Request, Settings, Sink, State};

pub use crate::comet::hub::Counters;
use crate::engine::sys::EventFd;
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A worker's way to the cluster thread; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: Sender<Vec<Request>>,
    waker: Arc<EventFd>,
    pub stats: Arc<LinkStats>,
    pub node: Arc<str>,
    shards: usize,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cluster::Handle({})", self.node)
    }
}

impl Handle {
    /// Sends one turn's requests and wakes the thread.
    pub fn send(&self, requests: Vec<Request>) {
        if !requests.is_empty() && self.tx.send(requests).is_ok() {
            self.waker.wake();
        }
    }

    /// Whether the shard that holds `cname` is reachable now.
    pub fn up_for(&self, cname: &[u8]) -> bool {
        let shard = wire::shard_of(cname, self.shards);
        self.stats
            .up
            .get(shard)
            .is_some_and(|u| u.load(Ordering::Relaxed))
    }

    /// Whether the shard that holds `cname` is known to be down: not up, and not merely still
    /// making its first connection (a node that has just started).
    pub fn down_for(&self, cname: &[u8]) -> bool {
        let shard = wire::shard_of(cname, self.shards);
        let settled = self
            .stats
            .settled
            .get(shard)
            .is_none_or(|s| s.load(Ordering::Relaxed));
        settled && !self.up_for(cname)
    }
}

/// The default node name: the host name and the process id.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "rcomet".into()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Starts the cluster thread. It runs until every `Handle` is dropped. `counters`: the node's
/// shared counters, whose `/psub` listeners say whether presence events are forwarded.
pub fn start(settings: Settings, sink: Sink, counters: Arc<Counters>) -> std::io::Result<Handle> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let waker = Arc::new(EventFd::new()?);
    let stats = Arc::new(LinkStats {
        up: settings
            .redis
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect(),
        settled: settings
            .redis
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect(),
        ..LinkStats::default()
    });
    let handle = Handle {
        tx,
        waker: Arc::clone(&waker),
        stats: Arc::clone(&stats),
        node: Arc::from(settings.node.as_str()),
        shards: settings.redis.len().max(1),
    };
    let mut node = node::Node::new(settings, rx, waker, stats, sink);
    node.counters = counters;
    std::thread::Builder::new()
        .name("rcomet-cluster".into())
        .spawn(move || node.run())?;
    Ok(handle)
}
