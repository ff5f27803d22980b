//! The cluster thread: every Redis connection of this node, one loop. It waits in poll(2) on its
//! eventfd (workers' requests) and its sockets, with a short timeout for its timers (PING for
//! latency and liveness, reconnect backoff, count and TTL refreshes).
//!
//! Per shard: a command link, where requests are pipelined and their replies paired with a FIFO
//! of what each was for, and a pub/sub link. A shard whose link breaks, or whose oldest command
//! waits past its deadline (a stopped Redis accepts connections and answers nothing), is *down*:
//! what was in flight fails (pushes get 503), the channels it was joining start over, and it is
//! connected again with exponential backoff; once connected it asks every worker for the
//! channels of that shard it mirrors (`Event::Resubscribe`), and each is subscribed again and
//! its state read again; the shard is up once a PING is answered.
//!
//! Per channel the thread keeps a record only while joining it (`join`): its SUBSCRIBE not
//! confirmed, or its state read in flight, with what was published meanwhile held. Every
//! payload of a live channel goes to its home as published; the home's mirror keeps the order.
//!
//! Depends on: cluster (links, replies, scripts, keys, joins), comet (routing, tokens, names),
//! memory (giving freed memory back).

use super::join::Join;
use super::link::Link;
use super::resp::{self, Reply};
use super::scripts::{self, Script};
use super::types::{Entry, Event, LinkStats, Op, OpResult, Request, Settings, Sink, State};
use super::wire::{self, Payload};
use crate::comet::auth::{to_hex, AuthTokenSource};
use crate::comet::hub::Counters;
use crate::comet::name::Name;
use crate::comet::route::home_worker;
use crate::comet::seq::seq_after;
use crate::engine::sys::EventFd;
use crate::memory::ShrinkIdle;
use crossbeam_channel::{Receiver, TryRecvError};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a command may wait for its reply before the shard is taken for down.
const REPLY_TIMEOUT: Duration = Duration::from_millis(1000);
/// A broadcast walks every channel of a shard: it may take longer.
const BROADCAST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_millis(500);
/// Subscriber counts: sent at most this often when they changed, refreshed at least every
/// `COUNTS_REFRESH`, and forgotten by Redis after `COUNTS_TTL` seconds without a refresh.
const COUNTS_EVERY: Duration = Duration::from_millis(250);
const COUNTS_REFRESH: Duration = Duration::from_secs(3);
const COUNTS_TTL: u32 = 10;
/// The presence sweep is asked for this often (Redis runs it at most once a second per shard).
const SWEEP_EVERY: Duration = Duration::from_millis(1000);

/// What a command's reply is for.
enum Pending {
    Ignore,
    Ping(Instant),
    Op {
        worker: usize,
        ticket: u64,
        op: OpKind,
    },
    /// State read number `read` of a channel being joined.
    State {
        name: Name,
        read: u32,
    },
    /// One shard's part of an operation over every shard.
    Part {
        gather: u64,
    },
    /// A report of worker `worker`'s subscriber counts (a 0 reply: Redis lost them).
    Counts {
        worker: usize,
    },
}

/// An operation over every shard (`/info` totals, `/broadcast`), answered once each replied.
struct Gather {
    worker: usize,
    ticket: u64,
    left: usize,
    failed: bool,
    totals: Option<(u64, u64)>,
}

#[derive(Clone, Copy)]
enum OpKind {
    Publish,
    Sign { expires: i32 },
    SeqNext,
    Info,
    Check,
}

struct Shard {
    addr: String,
    cmd: Option<Link>,
    sub: Option<Link>,
    pending: VecDeque<(Pending, Instant)>,
    /// A PING was answered on the current links.
    up: bool,
    retry_at: Instant,
    backoff: Duration,
    ping_at: Instant,
    to_subscribe: Vec<Name>,
    /// Joins whose state read Redis refused: subscribed again (and read again) a second later.
    to_retry: Vec<Name>,
    /// A mirror may rely on this shard's subscriptions (the shard was up, or a state was
    /// handed to a home, since the workers were last asked to join their mirrors again): the
    /// next connection asks them (`Event::Resubscribe`), once per outage.
    served: bool,
    /// The instance refused to serve (loading, a replica, scripts gone): set when its links are
    /// taken down for that, cleared by the next state read it answers. While set, coming up
    /// neither resets the backoff nor counts as serving, so a replica is tried every 2 s and
    /// not every 50 ms with the mirrors asked again each time.
    refusing: bool,
    /// Why the links are to be taken down once the replies already read are handled (a reply
    /// refused by the whole instance): replies that follow it in the same read still count.
    down_after: Option<String>,
    to_unsubscribe: Vec<Name>,
    /// Links connected once already (a new connection counts as a reconnect).
    connected_before: bool,
    /// The presence subject is to be subscribed on the new pub/sub link.
    presence_pending: bool,
    /// Redis confirmed the presence subscription, and a PING was answered, on the current links
    /// (the shard is up once both are true, so nothing published after that is missed).
    presence_ok: bool,
    ping_ok: bool,
    sweep_at: Instant,
}

/// One worker's subscriber counts not yet reported to Redis.
#[derive(Default)]
struct Counts {
    /// Oldest first: the changes the worker reported, or (`full`) its whole list followed by
    /// later changes.
    pending: Vec<(Name, u32)>,
    full: bool,
    sent: Option<Instant>,
}

pub struct Node {
    s: Settings,
    rx: Receiver<Vec<Request>>,
    waker: Arc<EventFd>,
    stats: Arc<LinkStats>,
    sink: Sink,
    shards: Vec<Shard>,
    /// Channels being joined (see `join`); none once their state went to the home.
    joining: HashMap<Name, Join>,
    /// Payloads of channels being joined (bounded by what Redis publishes during one round
    /// trip), handed to the home after the state.
    held: HashMap<Name, Vec<Payload>>,
    outbox: Vec<Vec<Event>>,
    digests: Vec<String>,
    tokens: AuthTokenSource,
    counts: Vec<Counts>,
    /// When the homes are next asked to name their mirrors (`Event::RefreshWanted`).
    ttl_refresh_at: Instant,
    /// The last state read number given (`next_read`).
    reads: u32,
    scratch: Vec<Reply>,
    /// The node's shared counters: presence events are forwarded while `/psub` listeners exist.
    pub counters: Arc<Counters>,
    presence_subject: Vec<u8>,
    gathers: HashMap<u64, Gather>,
    next_gather: u64,
}

impl Node {
    pub fn new(
        s: Settings,
        rx: Receiver<Vec<Request>>,
        waker: Arc<EventFd>,
        stats: Arc<LinkStats>,
        sink: Sink,
    ) -> Node {
        let now = Instant::now();
        let shards = s
            .redis
            .iter()
            .map(|addr| Shard {
                addr: addr.clone(),
                cmd: None,
                sub: None,
                pending: VecDeque::new(),
                up: false,
                retry_at: now,
                backoff: BACKOFF_MIN,
                ping_at: now,
                to_subscribe: Vec::new(),
                to_retry: Vec::new(),
                served: false,
                refusing: false,
                down_after: None,
                to_unsubscribe: Vec::new(),
                connected_before: false,
                presence_pending: false,
                presence_ok: false,
                ping_ok: false,
                sweep_at: now,
            })
            .collect();
        let workers = s.workers.max(1);
        Node {
            outbox: (0..workers).map(|_| Vec::new()).collect(),
            counts: (0..workers).map(|_| Counts::default()).collect(),
            digests: scripts::digests(),
            tokens: AuthTokenSource::new(),
            scratch: Vec::new(),
            ttl_refresh_at: now,
            reads: 0,
            joining: HashMap::new(),
            held: HashMap::new(),
            counters: Counters::new(),
            presence_subject: wire::presence_subject(&s.prefix),
            gathers: HashMap::new(),
            next_gather: 0,
            shards,
            s,
            rx,
            waker,
            stats,
            sink,
        }
    }

    /// Runs until every handle is gone.
    pub fn run(&mut self) {
        let mut released_at = Instant::now();
        loop {
            // The counts reports and replies of thousands of channels are transients: give what
            // they freed back once a second (see `memory`).
            if released_at.elapsed() >= Duration::from_secs(1) {
                self.retry_refused();
                self.shrink_idle();
                crate::memory::release_all_freed();
                released_at = Instant::now();
            }
            self.connect_due();
            self.wait();
            if !self.take_requests() {
                log::debug!("cluster thread stops");
                return;
            }
            for i in 0..self.shards.len() {
                self.read_shard(i);
            }
            self.timers();
            self.flush_all();
            self.send_events();
        }
    }

    /// Joins whose state read Redis refused subscribe (and read) again.
    fn retry_refused(&mut self) {
        for sh in &mut self.shards {
            let retry = std::mem::take(&mut sh.to_retry);
            sh.to_subscribe.extend(retry);
        }
    }

    fn shard_of(&self, name: &[u8]) -> usize {
        wire::shard_of(name, self.shards.len())
    }

    /// What a burst grew (commands in flight, replies read at once) and has drained gives its
    /// capacity back (`memory::ShrinkIdle`).
    fn shrink_idle(&mut self) {
        for sh in &mut self.shards {
            sh.pending.shrink_idle();
        }
        self.scratch.shrink_idle();
        self.gathers.shrink_idle();
        self.held.shrink_idle();
        self.joining.shrink_idle();
        for c in &mut self.counts {
            c.pending.shrink_idle();
        }
    }

    fn home(&self, name: &[u8]) -> usize {
        home_worker(name, self.s.workers.max(1))
    }

    fn emit(&mut self, worker: usize, event: Event) {
        if let Some(batch) = self.outbox.get_mut(worker) {
            batch.push(event);
        }
    }

    /// One event to every worker.
    fn emit_all(&mut self, event: impl Fn() -> Event) {
        for w in 0..self.outbox.len() {
            self.emit(w, event());
        }
    }

    fn send_events(&mut self) {
        for (w, batch) in self.outbox.iter_mut().enumerate() {
            if !batch.is_empty() {
                (self.sink)(w, std::mem::take(batch));
            }
        }
    }

    /// poll(2) on the waker and every link, until something is ready or a timer is due.
    fn wait(&mut self) {
        let mut fds = vec![libc::pollfd {
            fd: self.waker.raw(),
            events: libc::POLLIN,
            revents: 0,
        }];
        for shard in &self.shards {
            for link in [&shard.cmd, &shard.sub].into_iter().flatten() {
                let mut events = libc::POLLIN;
                if link.wants_write() {
                    events |= libc::POLLOUT;
                }
                fds.push(libc::pollfd {
                    fd: link.fd(),
                    events,
                    revents: 0,
                });
            }
        }
        // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` pollfd structs.
        let _ = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        self.waker.drain();
    }

    /// Handles every request the workers sent; false when they are all gone.
    fn take_requests(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(batch) => {
                    for r in batch {
                        self.request(r);
                    }
                }
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn request(&mut self, r: Request) {
        match r {
            Request::Op {
                worker,
                ticket,
                cname,
                op,
            } => self.op(worker, ticket, &cname, op),
            Request::Watch { name, create } => self.join(name, create, false),
            Request::Resync { name, create } => self.join(name, create, true),
            Request::Unwatch { name } => self.unwatch(&name),
            Request::Refresh { names } => self.refresh_ttls(&names),
            Request::Counts {
                worker,
                counts,
                full,
            } => {
                let up = self.shards.iter().all(|s| s.up);
                let Some(c) = self.counts.get_mut(worker) else {
                    return;
                };
                if !up {
                    // A shard coming up asks every worker for its whole list again.
                    *c = Counts::default();
                } else if full {
                    c.pending = counts;
                    c.full = true;
                } else {
                    c.pending.extend(counts);
                }
            }
        }
    }

    /// A fresh epoch and token for a channel a script may create.
    fn fresh_identity(&mut self) -> (String, [u8; 32]) {
        let mut b = [0u8; 4];
        let epoch = match getrandom::fill(&mut b) {
            Ok(()) => u32::from_le_bytes(b).max(1),
            Err(_) => 1,
        };
        (epoch.to_string(), to_hex(&self.tokens.fresh()))
    }

    /// Queues `EVALSHA script keys... args...` on the shard's command link.
    fn eval(&mut self, shard: usize, script: Script, keys: &[&[u8]], args: &[&[u8]], p: Pending) {
        let timeout = match script {
            Script::Broadcast => BROADCAST_TIMEOUT,
            _ => REPLY_TIMEOUT,
        };
        let index = scripts::ALL.iter().position(|s| *s == script).unwrap_or(0);
        let sha = self.digests[index].clone();
        let nkeys = keys.len().to_string();
        let mut all: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), nkeys.as_bytes()];
        all.extend_from_slice(keys);
        all.extend_from_slice(args);
        self.queue(shard, &all, p, timeout);
    }

    /// Queues a command; without a link its reply is "unavailable" at once.
    fn queue(&mut self, shard: usize, args: &[&[u8]], p: Pending, timeout: Duration) {
        let Some(sh) = self.shards.get_mut(shard) else {
            return;
        };
        match &mut sh.cmd {
            Some(link) => {
                link.command(args);
                sh.pending.push_back((p, Instant::now() + timeout));
                self.stats.pending.fetch_add(1, Ordering::Relaxed);
            }
            None => self.fail(p),
        }
    }

    /// What a command that will get no reply owes.
    fn fail(&mut self, p: Pending) {
        match p {
            Pending::Op { worker, ticket, .. } => {
                let result = OpResult::Unavailable;
                self.emit(worker, Event::Done { ticket, result });
            }
            Pending::State { name, .. } => {
                if let Some(j) = self.joining.get_mut(&name) {
                    j.unsubscribed();
                    self.held.remove(&name);
                }
            }
            Pending::Part { gather } => self.part_done(gather, None),
            Pending::Ignore | Pending::Ping(_) | Pending::Counts { .. } => {}
        }
    }

    /// One shard's reply to a gathered operation (`None`: it got none).
    fn part_done(&mut self, id: u64, reply: Option<&Reply>) {
        let Some(g) = self.gathers.get_mut(&id) else {
            return;
        };
        g.left = g.left.saturating_sub(1);
        match reply {
            None | Some(Reply::Error(_)) => g.failed = true,
            Some(r) => {
                if let Some(t) = &mut g.totals {
                    let items = resp::items(r).unwrap_or_default();
                    let n = |i: usize| items.get(i).and_then(resp::int).unwrap_or(0).max(0) as u64;
                    t.0 += n(0);
                    t.1 += n(1);
                }
            }
        }
        if g.left > 0 {
            return;
        }
        let Some(g) = self.gathers.remove(&id) else {
            return;
        };
        let result = match g.totals {
            _ if g.failed => OpResult::Unavailable,
            Some((channels, subscribers)) => OpResult::Totals {
                channels,
                subscribers,
            },
            None => OpResult::Broadcasted,
        };
        let ticket = g.ticket;
        self.emit(g.worker, Event::Done { ticket, result });
    }

    fn channel_keys(&self, name: &[u8]) -> [Vec<u8>; 4] {
        let p = &self.s.prefix;
        [
            wire::key(p, "ch", name),
            wire::key(p, "buf", name),
            wire::shard_key(p, "channels"),
            wire::key(p, "sub", name),
        ]
    }

    fn op(&mut self, worker: usize, ticket: u64, name: &[u8], op: Op) {
        if matches!(op, Op::Totals | Op::Broadcast { .. }) {
            return self.gathered(worker, ticket, &op);
        }
        let shard = self.shard_of(name);
        if !self.shards[shard].up {
            let result = OpResult::Unavailable;
            return self.emit(worker, Event::Done { ticket, result });
        }
        let [meta, buf, set, subject] = self.channel_keys(name);
        let keys: [&[u8]; 3] = [&meta, &buf, &set];
        let pending = |op| Pending::Op { worker, ticket, op };
        let ttl = self.s.channel_timeout.max(1).to_string();
        match op {
            Op::Publish { content } => {
                let (epoch, token) = self.fresh_identity();
                let size = self.s.buffer.to_string();
                let args: [&[u8]; 8] = [
                    name,
                    &subject,
                    b"d",
                    &content,
                    size.as_bytes(),
                    ttl.as_bytes(),
                    epoch.as_bytes(),
                    &token,
                ];
                self.eval(
                    shard,
                    Script::Publish,
                    &keys,
                    &args,
                    pending(OpKind::Publish),
                );
            }
            Op::Sign { expires } => {
                let expires = if expires <= 0 {
                    self.s.channel_timeout as i32
                } else {
                    expires
                };
                let (epoch, token) = self.fresh_identity();
                let e = expires.to_string();
                let args: [&[u8]; 5] = [name, &subject, e.as_bytes(), epoch.as_bytes(), &token];
                let p = pending(OpKind::Sign { expires });
                self.eval(shard, Script::Sign, &keys, &args, p);
            }
            Op::Close | Op::Clear => {
                let script = match op {
                    Op::Close => Script::Close,
                    _ => Script::Clear,
                };
                let args: [&[u8]; 2] = [name, &subject];
                self.eval(shard, script, &keys, &args, pending(OpKind::SeqNext));
            }
            Op::Check => {
                let args: [&[u8]; 2] = [b"EXISTS", &meta];
                self.queue(shard, &args, pending(OpKind::Check), REPLY_TIMEOUT);
            }
            Op::Totals | Op::Broadcast { .. } => {}
            Op::Info => {
                let nodes = wire::shard_key(&self.s.prefix, "nodes");
                let prefix = self.s.prefix.clone();
                let ttl = COUNTS_TTL.to_string();
                let args: [&[u8]; 3] = [prefix.as_bytes(), name, ttl.as_bytes()];
                self.eval(shard, Script::Info, &[&nodes], &args, pending(OpKind::Info));
            }
        }
    }

    /// `/info` totals or `/broadcast`: one script per shard, answered when all replied (503
    /// when a shard is down; a broadcast is then stored on none).
    fn gathered(&mut self, worker: usize, ticket: u64, op: &Op) {
        if !self.shards.iter().all(|s| s.up) {
            let result = OpResult::Unavailable;
            return self.emit(worker, Event::Done { ticket, result });
        }
        let id = self.next_gather;
        self.next_gather += 1;
        let totals = matches!(op, Op::Totals).then_some((0, 0));
        let left = self.shards.len();
        let (worker, failed) = (worker, false);
        let gather = Gather {
            worker,
            ticket,
            left,
            failed,
            totals,
        };
        self.gathers.insert(id, gather);
        let set = wire::shard_key(&self.s.prefix, "channels");
        let nodes = wire::shard_key(&self.s.prefix, "nodes");
        let prefix = self.s.prefix.clone();
        let size = self.s.buffer.to_string();
        let ttl = COUNTS_TTL.to_string();
        for shard in 0..left {
            let p = Pending::Part { gather: id };
            match op {
                Op::Broadcast { content } => {
                    let args: [&[u8]; 3] = [prefix.as_bytes(), content, size.as_bytes()];
                    self.eval(shard, Script::Broadcast, &[&set], &args, p);
                }
                _ => {
                    let args: [&[u8]; 2] = [prefix.as_bytes(), ttl.as_bytes()];
                    self.eval(shard, Script::Totals, &[&nodes, &set], &args, p);
                }
            }
        }
    }

    /// Starts joining a channel (subscribe, then read its state), or updates the join under way.
    fn join(&mut self, name: Name, create: bool, resync: bool) {
        if let Some(j) = self.joining.get_mut(&name) {
            return j.update(create, resync);
        }
        let shard = self.shard_of(&name);
        self.joining
            .insert(Name::clone(&name), Join::new(create, resync));
        self.stats.joining.fetch_add(1, Ordering::Relaxed);
        self.shards[shard].to_subscribe.push(name);
    }

    /// The joins of shard `i` start over (its subscriptions are gone, or going): a state read
    /// in flight is void. Returns their names.
    fn void_joins(&mut self, i: usize) -> Vec<Name> {
        let shards = self.shards.len();
        self.joining
            .iter_mut()
            .filter(|(n, _)| wire::shard_of(n, shards) == i)
            .map(|(n, j)| {
                j.unsubscribed();
                Name::clone(n)
            })
            .collect()
    }

    /// The join of `name` ended (its state went to the home, or it was let go).
    fn joined(&mut self, name: &[u8]) -> Option<Join> {
        let (_, j) = self.joining.remove_entry(name)?;
        self.stats.joining.fetch_sub(1, Ordering::Relaxed);
        Some(j)
    }

    fn unwatch(&mut self, name: &Name) {
        self.held.remove(name);
        self.joined(name);
        let shard = self.shard_of(name);
        self.shards[shard].to_unsubscribe.push(Name::clone(name));
    }

    /// Read number `read` of the state of a channel being joined (after its subscription was
    /// confirmed).
    fn fetch(&mut self, name: &Name, read: u32) {
        let Some(j) = self.joining.get(name) else {
            return;
        };
        let create = if j.create { "1" } else { "0" };
        let shard = self.shard_of(name);
        let [meta, buf, set, subject] = self.channel_keys(name);
        let (epoch, token) = self.fresh_identity();
        let ttl = self.s.channel_timeout.max(1).to_string();
        let args: [&[u8]; 6] = [
            name,
            &subject,
            create.as_bytes(),
            ttl.as_bytes(),
            epoch.as_bytes(),
            &token,
        ];
        let p = Pending::State {
            name: Name::clone(name),
            read,
        };
        self.eval(shard, Script::State, &[&meta, &buf, &set], &args, p);
    }

    /// Connects the shards that are down and due.
    fn connect_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.shards.len() {
            let sh = &mut self.shards[i];
            if sh.cmd.is_some() || now < sh.retry_at {
                continue;
            }
            let links = Link::connect(&sh.addr, CONNECT_TIMEOUT)
                .and_then(|c| Ok((c, Link::connect(&sh.addr, CONNECT_TIMEOUT)?)));
            match links {
                Ok((cmd, sub)) => {
                    sh.cmd = Some(cmd);
                    sh.sub = Some(sub);
                    self.on_connected(i);
                }
                Err(e) => {
                    log::debug!("cluster: Redis {} unreachable: {e}", sh.addr);
                    self.stats.settled[i].store(true, Ordering::Relaxed);
                    sh.retry_at = now + sh.backoff;
                    sh.backoff = (sh.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// New links: load the scripts, PING, subscribe the channels being joined again, and ask
    /// every worker for the channels of the shard it mirrors (they are joined again).
    fn on_connected(&mut self, i: usize) {
        for script in scripts::ALL {
            let text = script.text();
            let args: [&[u8]; 3] = [b"SCRIPT", b"LOAD", text.as_bytes()];
            self.queue(i, &args, Pending::Ignore, REPLY_TIMEOUT);
        }
        self.queue(i, &[b"PING"], Pending::Ping(Instant::now()), REPLY_TIMEOUT);
        let names = self.void_joins(i);
        for n in &names {
            self.held.remove(n);
        }
        if std::mem::take(&mut self.shards[i].served) {
            let shards = self.shards.len();
            self.emit_all(|| Event::Resubscribe { shard: i, shards });
        }
        let sh = &mut self.shards[i];
        sh.to_unsubscribe.clear();
        sh.to_retry.clear();
        sh.to_subscribe = names;
        sh.presence_pending = true;
        sh.presence_ok = false;
        sh.ping_ok = false;
    }

    /// The shard's links are lost.
    fn down(&mut self, i: usize, why: &str) {
        let sh = &mut self.shards[i];
        if sh.up {
            log::warn!("cluster: Redis {} lost: {why}", sh.addr);
        }
        sh.cmd = None;
        sh.sub = None;
        sh.up = false;
        sh.down_after = None;
        self.stats.up[i].store(false, Ordering::Relaxed);
        self.stats.settled[i].store(true, Ordering::Relaxed);
        sh.retry_at = Instant::now() + sh.backoff;
        sh.backoff = (sh.backoff * 2).min(BACKOFF_MAX);
        let pending = std::mem::take(&mut sh.pending);
        self.stats
            .pending
            .fetch_sub(pending.len() as u64, Ordering::Relaxed);
        for (p, _) in pending {
            self.fail(p);
        }
        self.void_joins(i);
        let shards = self.shards.len();
        self.held.retain(|n, _| wire::shard_of(n, shards) != i);
    }

    /// The pub/sub link first: a confirmed UNSUBSCRIBE must void a state read before that
    /// read's reply, read in the same round, is taken (payloads held meanwhile follow the state
    /// either way). Then the command link, even when the pub/sub link failed (its replies are
    /// answers Redis gave: a push it stored is not to be answered 503); the shard is taken down
    /// last.
    fn read_shard(&mut self, i: usize) {
        let mut replies = std::mem::take(&mut self.scratch);
        replies.clear();
        let sub_read = match &mut self.shards[i].sub {
            Some(link) => link.read(&mut replies),
            None => Ok(()),
        };
        for r in replies.drain(..) {
            self.on_push(i, r);
        }
        if sub_read.is_err() {
            // The subscriptions went with the link: a state reply read below is void.
            self.void_joins(i);
        }
        let cmd_read = match &mut self.shards[i].cmd {
            Some(link) => link.read(&mut replies),
            None => Ok(()),
        };
        for r in replies.drain(..) {
            self.on_reply(i, r);
        }
        self.scratch = replies;
        let why = match (sub_read, cmd_read) {
            (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
            _ => self.shards[i].down_after.take(),
        };
        if let Some(why) = why {
            self.down(i, &why);
        }
    }

    fn on_reply(&mut self, i: usize, reply: Reply) {
        let Some((p, _)) = self.shards[i].pending.pop_front() else {
            return;
        };
        self.stats.pending.fetch_sub(1, Ordering::Relaxed);
        if let Reply::Error(e) = &reply {
            log::warn!("cluster: Redis {} error: {e}", self.shards[i].addr);
            if refused_by_the_instance(e) || matches!(p, Pending::Ping(_)) {
                // Not serving (loading its data, a replica, its scripts flushed, busy): connect
                // again after the backoff, scripts and all, once this read is handled.
                let sh = &mut self.shards[i];
                sh.refusing = true;
                sh.down_after = Some(format!("refused: {e}"));
            }
        }
        match p {
            Pending::Ignore => {}
            Pending::Ping(_) if matches!(reply, Reply::Error(_)) => {}
            Pending::Ping(sent) => {
                let us = sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                self.stats.latency_us.store(us, Ordering::Relaxed);
                self.shards[i].ping_ok = true;
                self.shard_up(i);
            }
            Pending::Op { worker, ticket, op } => {
                let result = op_result(op, &reply);
                self.emit(worker, Event::Done { ticket, result });
            }
            Pending::State { name, read } => self.on_state(i, &name, read, &reply),
            Pending::Part { gather } => self.part_done(gather, Some(&reply)),
            Pending::Counts { worker } => {
                // 0: Redis lost what was reported; an error: this report may be lost or half
                // applied. Either way only the whole list sets it right.
                if !matches!(reply, Reply::Integer(1)) {
                    log::info!(
                        "cluster: Redis {} does not hold the subscriber counts of worker {worker}; reporting them all",
                        self.shards[i].addr
                    );
                    self.emit(worker, Event::CountsWanted);
                }
            }
        }
    }

    fn shard_up(&mut self, i: usize) {
        let sh = &mut self.shards[i];
        if sh.up || !sh.ping_ok || !sh.presence_ok {
            return;
        }
        sh.up = true;
        if !sh.refusing {
            sh.served = true;
            sh.backoff = BACKOFF_MIN;
        }
        if sh.connected_before {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            log::warn!("cluster: Redis {} reconnected", sh.addr);
        }
        sh.connected_before = true;
        self.stats.up[i].store(true, Ordering::Relaxed);
        self.stats.settled[i].store(true, Ordering::Relaxed);
        // Redis may have restarted empty: every worker reports its whole list again.
        for w in 0..self.counts.len() {
            self.counts[w] = Counts::default();
            self.emit(w, Event::CountsWanted);
        }
    }

    /// The state read of a channel being joined: it goes to the home, then what was published
    /// meanwhile (the home's mirror skips what the state holds already), and the join ends.
    fn on_state(&mut self, shard: usize, name: &Name, read: u32, reply: &Reply) {
        let home = self.home(name);
        if !self.joining.get(name).is_some_and(|j| j.answers(read)) {
            // Lost, or void (an UNSUBSCRIBE was confirmed since it was sent): not this read.
            return;
        }
        if let Reply::Error(e) = reply {
            return self.state_refused(shard, name, e);
        }
        let Some(join) = self.joined(name) else {
            return;
        };
        let held = self.held.remove(name).unwrap_or_default();
        let sh = &mut self.shards[shard];
        if std::mem::take(&mut sh.refusing) {
            // Serving again: the next loss reconnects at once.
            sh.backoff = BACKOFF_MIN;
        }
        let Some(state) = parse_state(reply) else {
            if join.create && !join.resync {
                // To be created, yet no state: the channel's keys in Redis are not ours to
                // read (altered by hand). The waiting subscriptions are refused.
                log::warn!("cluster: a channel's state in Redis cannot be read");
                self.unwatch(name);
                let name = Name::clone(name);
                return self.emit(home, Event::Refused { name });
            }
            // Absent and not to be created, or gone from Redis: the mirror goes.
            self.unwatch(name);
            let name = Name::clone(name);
            let event = if join.resync {
                Event::Closed { name, epoch: None }
            } else {
                Event::Synced { name, state: None }
            };
            return self.emit(home, event);
        };
        let event = if join.resync {
            self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
            Event::Resync {
                name: Name::clone(name),
                state,
            }
        } else {
            Event::Synced {
                name: Name::clone(name),
                state: Some(state),
            }
        };
        self.shards[shard].served = true;
        self.emit(home, event);
        for p in held {
            self.forward(home, Name::clone(name), p);
        }
    }

    /// Redis refused a state read. A refusal of the whole instance (loading its data, a
    /// replica, scripts flushed, busy) takes the shard down: it is connected again, scripts and
    /// all, and every join starts over. Any other (a key of the wrong type, out of memory) is
    /// tried again a second later, `MAX_REFUSALS` times in all; then the join ends and the home
    /// is told (`Event::Refused`), with the payloads held meanwhile.
    fn state_refused(&mut self, shard: usize, name: &Name, e: &str) {
        if refused_by_the_instance(e) {
            // The shard goes down after this read (`on_reply`); the join starts over then.
            if let Some(j) = self.joining.get_mut(name) {
                j.unsubscribed();
            }
            return;
        }
        let again = self.joining.get_mut(name).is_some_and(Join::refused);
        if again {
            // What was held stays held: the next state covers it or it follows that state.
            self.shards[shard].to_retry.push(Name::clone(name));
            return;
        }
        let home = self.home(name);
        let Some(join) = self.joined(name) else {
            return;
        };
        let held = self.held.remove(name).unwrap_or_default();
        self.emit(
            home,
            Event::Refused {
                name: Name::clone(name),
            },
        );
        if join.resync {
            // The mirror lives on: what came meanwhile goes to it (a missed seq asks again).
            for p in held {
                self.forward(home, Name::clone(name), p);
            }
        } else {
            self.unwatch(name);
        }
    }

    /// A state read number never used before (0 means none).
    fn next_read(&mut self) -> u32 {
        self.reads = self.reads.wrapping_add(1).max(1);
        self.reads
    }

    /// A payload of a live channel, to its home as published.
    fn forward(&mut self, home: usize, name: Name, p: Payload) {
        let event = match p {
            Payload::Message { epoch, entry } => Event::Message { name, epoch, entry },
            Payload::Closed { epoch } => Event::Closed {
                name,
                epoch: Some(epoch),
            },
            Payload::Cleared { epoch } => Event::Cleared { name, epoch },
        };
        self.emit(home, event);
    }

    /// A reply on a pub/sub link: a subscription confirmed, or a message.
    fn on_push(&mut self, i: usize, reply: Reply) {
        let Some(items) = resp::items(&reply) else {
            return;
        };
        let kind = items.first().and_then(resp::bytes).unwrap_or_default();
        let Some(subject) = items.get(1).and_then(resp::bytes) else {
            return;
        };
        if subject == &self.presence_subject[..] {
            if kind == b"subscribe" {
                self.shards[i].presence_ok = true;
                self.shard_up(i);
            } else if kind == b"message" && self.counters.listeners() > 0 {
                if let Some(lines) = items.get(2).and_then(resp::bytes) {
                    self.presence(lines);
                }
            }
            return;
        }
        let Some(name) = wire::name_of_subject(&self.s.prefix, subject) else {
            return;
        };
        match kind {
            b"subscribe" => {
                let Some((key, _)) = self.joining.get_key_value(name) else {
                    return;
                };
                let key = Name::clone(key);
                let read = self.next_read();
                if self
                    .joining
                    .get_mut(&key)
                    .is_some_and(|j| j.subscribed(read))
                {
                    self.fetch(&key, read);
                }
            }
            b"unsubscribe" => {
                // An UNSUBSCRIBE of a channel let go before this join began: whatever the join
                // saw confirmed may have come before it, so it subscribes once more and reads
                // the state after that confirmation.
                let Some((key, _)) = self.joining.get_key_value(name) else {
                    return;
                };
                let key = Name::clone(key);
                if let Some(j) = self.joining.get_mut(&key) {
                    j.unsubscribed();
                }
                self.held.remove(&key);
                self.shards[i].to_subscribe.push(key);
            }
            b"message" => {
                let payload = items.get(2).and_then(resp::bytes);
                let Some(p) = payload.and_then(wire::parse_payload) else {
                    return;
                };
                if let Some((key, _)) = self.joining.get_key_value(name) {
                    let key = Name::clone(key);
                    self.held.entry(key).or_default().push(p);
                    return;
                }
                let name = Name::from(name);
                let home = self.home(&name);
                self.forward(home, name, p);
            }
            _ => {}
        }
    }

    /// Presence lines from Redis, to every worker (each sends them to its own `/psub` readers).
    fn presence(&mut self, lines: &[u8]) {
        let lines: Arc<[u8]> = Arc::from(lines);
        self.emit_all(|| Event::Presence {
            lines: Arc::clone(&lines),
        });
    }

    fn timers(&mut self) {
        let now = Instant::now();
        for i in 0..self.shards.len() {
            let sh = &mut self.shards[i];
            if sh.cmd.is_none() {
                continue;
            }
            if sh
                .pending
                .front()
                .is_some_and(|(_, deadline)| now > *deadline)
            {
                self.down(i, "no reply in time");
                continue;
            }
            if sh.up && now >= sh.ping_at {
                sh.ping_at = now + PING_EVERY;
                self.queue(i, &[b"PING"], Pending::Ping(now), REPLY_TIMEOUT);
            }
            let sh = &mut self.shards[i];
            if sh.up && now >= sh.sweep_at {
                sh.sweep_at = now + SWEEP_EVERY;
                self.sweep(i);
            }
        }
        self.send_counts(now);
        if now >= self.ttl_refresh_at {
            // Every third of the keys' life, the homes name the channels they mirror.
            let every = u64::from(self.s.channel_timeout.max(3) / 3);
            self.ttl_refresh_at = now + Duration::from_secs(every);
            self.emit_all(|| Event::RefreshWanted);
        }
    }

    /// Asks shard `i` for its presence sweep.
    fn sweep(&mut self, i: usize) {
        let set = wire::shard_key(&self.s.prefix, "channels");
        let cursor = wire::shard_key(&self.s.prefix, "sweep");
        let prefix = self.s.prefix.clone();
        let period = self.s.channel_timeout.max(1).to_string();
        let args: [&[u8]; 2] = [prefix.as_bytes(), period.as_bytes()];
        self.eval(i, Script::Sweep, &[&set, &cursor], &args, Pending::Ignore);
    }

    /// Each worker's subscriber counts not yet reported (or a refresh of what Redis holds),
    /// split by shard, at most every `COUNTS_EVERY` and at least every `COUNTS_REFRESH`.
    fn send_counts(&mut self, now: Instant) {
        if !self.shards.iter().all(|s| s.up) {
            return;
        }
        let shards = self.shards.len();
        let nodes = wire::shard_key(&self.s.prefix, "nodes");
        let ttl = COUNTS_TTL.to_string();
        for w in 0..self.counts.len() {
            let c = &mut self.counts[w];
            let due = c.sent.is_none_or(|t| {
                let since = now.duration_since(t);
                (!c.pending.is_empty() && since >= COUNTS_EVERY) || since >= COUNTS_REFRESH
            });
            if !due {
                continue;
            }
            c.sent = Some(now);
            let mode: &[u8] = if std::mem::take(&mut c.full) {
                b"full"
            } else {
                b"delta"
            };
            let pending = fold_counts(std::mem::take(&mut c.pending), mode == b"full");
            let numbers: Vec<String> = pending.iter().map(|(_, n)| n.to_string()).collect();
            let member = format!("{}:{w}", self.s.node);
            let hash = wire::key(&self.s.prefix, "n", member.as_bytes());
            let total = wire::key(&self.s.prefix, "t", member.as_bytes());
            let head: [&[u8]; 3] = [member.as_bytes(), ttl.as_bytes(), mode];
            let mut per_shard: Vec<Vec<&[u8]>> = vec![head.to_vec(); shards];
            for ((name, _), n) in pending.iter().zip(&numbers) {
                let args = &mut per_shard[wire::shard_of(name, shards)];
                args.push(name);
                args.push(n.as_bytes());
            }
            for (i, args) in per_shard.iter().enumerate() {
                let keys: [&[u8]; 3] = [&nodes, &hash, &total];
                self.eval(
                    i,
                    Script::Counts,
                    &keys,
                    args,
                    Pending::Counts { worker: w },
                );
            }
        }
    }

    /// Channels a home still mirrors live on in Redis (it names them when asked,
    /// `Event::RefreshWanted`).
    fn refresh_ttls(&mut self, names: &[Name]) {
        let ttl = self.s.channel_timeout.max(1).to_string();
        for name in names {
            let shard = self.shard_of(name);
            if !self.shards[shard].up {
                continue;
            }
            let [meta, buf, ..] = self.channel_keys(name);
            for key in [meta, buf] {
                let args: [&[u8]; 3] = [b"EXPIRE", &key, ttl.as_bytes()];
                self.queue(shard, &args, Pending::Ignore, REPLY_TIMEOUT);
            }
        }
    }

    /// Subscription changes (one command per shard and kind), then every link's output.
    fn flush_all(&mut self) {
        let prefix = self.s.prefix.clone();
        for i in 0..self.shards.len() {
            let sh = &mut self.shards[i];
            let Some(sub) = &mut sh.sub else {
                continue;
            };
            if std::mem::take(&mut sh.presence_pending) {
                sub.command(&[b"SUBSCRIBE", &self.presence_subject]);
            }
            // A channel let go after its join was asked for is not subscribed. (One subscribed
            // twice is harmless: its second confirmation is ignored.)
            let mut to_subscribe = std::mem::take(&mut sh.to_subscribe);
            to_subscribe.retain(|n| self.joining.contains_key(n));
            for (verb, names) in [
                (&b"UNSUBSCRIBE"[..], std::mem::take(&mut sh.to_unsubscribe)),
                (&b"SUBSCRIBE"[..], to_subscribe),
            ] {
                if names.is_empty() {
                    continue;
                }
                let subjects: Vec<Vec<u8>> =
                    names.iter().map(|n| wire::key(&prefix, "sub", n)).collect();
                let mut args: Vec<&[u8]> = vec![verb];
                args.extend(subjects.iter().map(Vec::as_slice));
                sub.command(&args);
            }
            let mut failed = None;
            for link in [&mut sh.cmd, &mut sh.sub].into_iter().flatten() {
                if let Err(e) = link.flush() {
                    failed = Some(e);
                }
            }
            if let Some(e) = failed {
                self.down(i, &e.to_string());
            }
        }
    }
}

/// An operation's result from its reply.
fn op_result(op: OpKind, reply: &Reply) -> OpResult {
    if matches!(reply, Reply::Error(_)) {
        return OpResult::Unavailable;
    }
    match op {
        OpKind::Publish => OpResult::Published,
        OpKind::SeqNext => OpResult::SeqNext(match reply {
            Reply::Null => None,
            r => resp::int(r).map(|s| seq_after(s as u32)),
        }),
        OpKind::Check => OpResult::Check(resp::int(reply).unwrap_or(0) > 0),
        OpKind::Info => OpResult::Info(resp::int(reply).unwrap_or(0).max(0) as u64),
        OpKind::Sign { expires } => sign_result(reply, expires).unwrap_or(OpResult::Unavailable),
    }
}

fn sign_result(reply: &Reply, expires: i32) -> Option<OpResult> {
    let items = resp::items(reply)?;
    let epoch = resp::int(items.first()?)? as u32;
    let last = resp::int(items.get(1)?)? as u32;
    let token = resp::bytes(items.get(2)?)?;
    let first = items.get(3).and_then(resp::bytes).unwrap_or_default();
    let seq_oldest = wire::parse_entry(first).map_or(seq_after(last), |e| e.seq);
    Some(OpResult::Signed {
        seq_oldest,
        token_hex: token.try_into().ok()?,
        expires,
        epoch,
    })
}

/// A `STATE` script's reply.
/// An error reply that says the instance, not the command, is the trouble: it is loading its
/// data, is a replica, lost our scripts, is busy with another script, or its cluster is down.
fn refused_by_the_instance(e: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "LOADING",
        "NOSCRIPT",
        "READONLY",
        "MASTERDOWN",
        "BUSY",
        "TRYAGAIN",
        "CLUSTERDOWN",
    ];
    PREFIXES.iter().any(|p| e.starts_with(p))
}

fn parse_state(reply: &Reply) -> Option<State> {
    let items = resp::items(reply)?;
    let epoch = resp::int(items.first()?)? as u32;
    let last = resp::int(items.get(1)?)? as u32;
    let token = wire::token_from_hex(resp::bytes(items.get(2)?)?)?;
    let entries: Vec<Entry> = resp::items(items.get(3)?)?
        .iter()
        .filter_map(|e| wire::parse_entry(resp::bytes(e)?))
        .collect();
    Some(State {
        epoch,
        seq_next: seq_after(last),
        token,
        entries,
    })
}

/// One report from what a worker sent since the last: each channel once with its latest count
/// (a count is the channel's number now, so the last one wins); a whole list (`full`) also
/// leaves out the channels that have none.
fn fold_counts(mut pending: Vec<(Name, u32)>, full: bool) -> Vec<(Name, u32)> {
    // Stable: equal names keep their order, so the last of each run is the latest.
    pending.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Name, u32)> = Vec::with_capacity(pending.len());
    for (name, n) in pending {
        match out.last_mut() {
            Some(last) if last.0 == name => last.1 = n,
            _ => out.push((name, n)),
        }
    }
    if full {
        out.retain(|(_, n)| *n > 0);
    }
    out
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
