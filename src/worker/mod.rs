//! The per-core loop. Each worker owns its backend, its connections, its timers, its share of the
//! channels (the ones whose home it is) with its local subscriber index (kept by the hub); it
//! talks to other workers only through mailboxes. `Worker::turn` below is one whole turn, in order.
//!
//! This is the only module that sees every layer (engine, http, api, comet), and it only routes:
//! it looks connections up, hands requests to `api`, queues the bytes `api` returns, and moves
//! results between cores. Protocol decisions live in `api` and `comet`.
//!
//! Files: `conn` (the slot), `input` (bytes → requests), `output` (queueing, flushing, closing),
//! `fanout_lane` (deliveries to big channels, queued a bounded part a turn), `backlog` (big
//! fan-outs' output, written a bounded number of connections a turn), `hold` (publishes to a
//! big channel wait at its home while its fan-out is behind),
//! `subs` (the subscriber side), `home` (the channel-home side and admin operations), `handoff`
//! (subscribers moving to their channel's home), `cluster` (cluster mode: the way through Redis),
//! `admin_streams` (`/stats/stream` readers), `replies`
//! (pipelined admin replies in order), `deadlines` (timers and the clock), `deadline_sweep` (the once-a-second sweep of deadlines), `mailbox`/`msg` (mail
//! between cores), `shared` (what all workers share).

mod admin_streams;
mod backlog;
mod channel_queue;
mod cluster;
mod cluster_side;
pub mod conn;
mod deadline_sweep;
mod deadlines;
mod fanout_lane;
mod frame_batch;
mod handoff;
mod held;
mod hold;
mod home;
mod input;
mod lane;
pub mod mailbox;
pub mod msg;
mod out_pool;
mod output;
pub mod replies;
pub mod shared;
pub mod snapshot;
mod subs;
mod ws;
mod ws_channels;
mod ws_side;

pub use msg::{Batch, Msg};
pub use shared::Shared;

pub use crate::comet::hub::Hub;
use crate::comet::name::Name;
use crate::engine::{Backend, Completion, ConnId, ReadControl, Token};
use crate::http::DateCache;
use crate::slab::Slab;
use conn::{flags, Conn, Conns, Phase, Port};
use mailbox::{Inbox, Outbox, Post};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token used to close a connection that never got a slot.
const REFUSED: Token = Token {
    slot: Token::RESERVED_SLOTS,
    generation: 0,
};

/// Mail handled per turn at most, so a flood from other cores cannot starve this core's sockets.
const MAIL_PER_TURN: usize = 65_536;

/// Connections whose sockets are closed at the end of one turn at most (see
/// `Worker::free_closed`): a few hundred microseconds of kernel work, so a mass disconnect
/// delays nobody else by more than that per turn.
const CLOSES_PER_TURN: usize = 32;

/// What a worker is given at start.
pub struct WorkerSetup {
    pub id: usize,
    pub inbox: Inbox<Batch>,
    /// Every worker's mailbox, indexed by worker id (including this one's).
    pub peers: Vec<Outbox<Batch>>,
    pub shared: Arc<Shared>,
    /// The channels this worker is home of at start (`new_hub`).
    pub hub: Hub,
}

/// A worker's hub at start, holding the snapshot's channels whose home it is. Built before the
/// worker threads start, so the server is ready with every channel in place.
pub fn new_hub(shared: &Shared, id: usize, saved: &[crate::comet::snapshot::SavedChannel]) -> Hub {
    let mut hub = Hub::new(shared.hub_config(), shared.counters());
    if shared.config.cluster.enabled() {
        // Channels live in Redis; this hub mirrors the ones this node serves. Presence events
        // are Redis's (`Event::Presence`), not the mirrors'.
        hub.set_mirror();
        hub.set_presence(false);
        return hub;
    }
    let refused = snapshot::restore(&mut hub, saved);
    if refused > 0 {
        log::warn!("worker {id}: {refused} saved channels over max_channels");
    }
    hub
}

/// Runs a worker until it is told to shut down and its connections are gone; returns its hub
/// (the channels it was home of, for the snapshot).
pub fn run<B: Backend>(mut backend: B, setup: WorkerSetup) -> Hub {
    let mut worker = Worker::new(setup, backend.can_detach());
    while !worker.finished() {
        worker.turn(&mut backend);
    }
    log::debug!("worker {} stopped", worker.id);
    // A broadcast still being stored reaches every channel before they are saved.
    worker.hub.broadcast_step(usize::MAX);
    worker.hub
}

/// Everything a worker owns except its backend (so completion handlers can borrow it mutably while
/// the backend is waiting).
pub struct Worker {
    pub(crate) id: usize,
    pub(crate) shared: Arc<Shared>,
    /// The configuration in force: the start's, then each reload's (`Msg::Reload`).
    pub(crate) config: Arc<crate::config::Config>,
    pub(crate) conns: Slab<Conn>,
    inbox: Inbox<Batch>,
    post: Post<Msg>,
    /// Mail to handle this turn: this worker's own (it is the home of the channel) and the
    /// batches drained from the inbox, in arrival order.
    mail: VecDeque<Msg>,
    /// This worker's channels, and the index of its subscribers (`Hub::add_local` and friends).
    pub(crate) hub: Hub,
    /// The once-a-second sweep of the connections' deadlines (`deadlines`).
    deadlines: deadline_sweep::DeadlineSweep,
    pub(crate) date: DateCache,
    /// The current tick: whole seconds since the server started, plus one (0 means "no timer").
    pub(crate) now: u32,
    /// Connections accepted this turn, attached to the backend after the wait returns (`None`:
    /// refused — at the connection limit or shutting down — and closed instead).
    to_attach: Vec<(ConnId, Option<Token>)>,
    /// Connections with new output this turn.
    dirty: Vec<Token>,
    /// Connections with output from big fan-outs, oldest first, written a bounded number a turn
    /// after `dirty` (`backlog`).
    backlog: VecDeque<Token>,
    /// Output queued now goes to `backlog` (a big fan-out is being queued).
    marking_backlog: bool,
    /// Deliveries to channels with many subscribers here, carried out a bounded part a turn
    /// (`fanout_lane`).
    lane: lane::FanoutLane,
    /// Operations on big channels waiting for their fan-out to catch up (`hold`).
    held: held::HeldOps,
    /// Subscribers of the big channels published to whose deliveries to this worker may still be
    /// in its own mail, not in its lane yet (`hold`).
    big_published: usize,
    /// This turn's frames of channels with several subscribers here, each stored once.
    batches: frame_batch::FrameBatches,
    /// Connections whose buffered requests should be processed again (a reply arrived, a
    /// subscription ended, output drained).
    to_resume: Vec<Token>,
    /// Connections to tear down, oldest first: at most [`CLOSES_PER_TURN`] at the end of
    /// each turn (a mass disconnect is spread over many short turns).
    closing: VecDeque<Token>,
    /// Connections with an open /psub presence stream.
    pub(crate) presence: Vec<Token>,
    /// Connections reading `/stats/stream` (`admin_streams`).
    pub(crate) stats_streams: Vec<Token>,
    /// When the next `/stats/stream` event is due.
    stats_next: Instant,
    /// Bytes held in borrowed buffers by this worker's connections (bounded by the budget).
    pub(crate) buffered: usize,
    /// A reusable buffer responses are built in before they are queued.
    pub(crate) scratch: Vec<u8>,
    /// A reusable list of subscriber keys for one delivery's fan-out.
    pub(crate) fanout: Vec<u64>,
    /// Drained output queues, reused by the next connection that writes.
    pub(crate) out_pool: out_pool::OutPool,
    /// The backend can hand sockets to another worker (subscribers move to their channel's home).
    can_detach: bool,
    /// Subscribers to hand to their channel's home at the end of this turn.
    to_move: Vec<Token>,
    /// Handed-over connections waiting for the backend to register them, by tag.
    arriving: HashMap<u64, msg::Arriving>,
    next_arrival: u64,
    /// Handed-over connections registered during the wait, attached after it.
    arrived: Vec<(ConnId, msg::Arriving)>,
    /// Channels whose subscribers stay on this worker (big ones: see `handoff`).
    spread: HashSet<Name>,
    /// When this turn's first event was handled (the turn's working time starts there).
    turn_started: Option<Instant>,
    /// WebSocket connections' fragmented messages and channels beyond the first.
    ws: ws_side::WsSide,
    /// Cluster mode: requests to the cluster thread, parked subscriptions (`None`: single node).
    cluster: Option<Box<cluster_side::ClusterSide>>,
    shutting_down: Option<Instant>,
}

impl Worker {
    fn new(setup: WorkerSetup, can_detach: bool) -> Worker {
        let shared = setup.shared;
        let hub = setup.hub;
        let config = Arc::new(shared.config.clone());
        let date = DateCache::new();
        Worker {
            id: setup.id,
            conns: Slab::with_max(shared.connections_per_worker()),
            inbox: setup.inbox,
            post: Post::new(setup.peers),
            mail: VecDeque::new(),
            hub,
            deadlines: deadline_sweep::DeadlineSweep::default(),
            date,
            now: shared.tick(),
            to_attach: Vec::new(),
            dirty: Vec::new(),
            backlog: VecDeque::new(),
            marking_backlog: false,
            lane: lane::FanoutLane::default(),
            held: held::HeldOps::default(),
            big_published: 0,
            batches: frame_batch::FrameBatches::default(),
            to_resume: Vec::new(),
            closing: VecDeque::new(),
            presence: Vec::new(),
            stats_streams: Vec::new(),
            stats_next: Instant::now(),
            buffered: 0,
            scratch: Vec::with_capacity(4096),
            fanout: Vec::new(),
            out_pool: out_pool::OutPool::default(),
            can_detach,
            to_move: Vec::new(),
            arriving: HashMap::new(),
            next_arrival: 0,
            arrived: Vec::new(),
            spread: HashSet::new(),
            ws: ws_side::WsSide::default(),
            cluster: shared
                .cluster
                .clone()
                .map(|h| Box::new(cluster_side::ClusterSide::new(h))),
            turn_started: None,
            shutting_down: None,
            config,
            shared,
        }
    }

    fn finished(&self) -> bool {
        match self.shutting_down {
            None => false,
            Some(deadline) => self.conns.is_empty() || Instant::now() >= deadline,
        }
    }

    /// The connection in `token`'s slot, if it is still that connection.
    pub(crate) fn conn(&mut self, token: Token) -> Option<&mut Conn> {
        self.conns.at(token)
    }

    /// One turn of the loop: wait for events (handled as they are reported) → attach accepted
    /// and handed-over connections → handle mail → run requests that waited → timers → hand subscribers to their
    /// channels' homes → send this turn's mail → flush every connection with new output once →
    /// free closed slots.
    fn turn<B: Backend>(&mut self, backend: &mut B) {
        let may_sleep = self.mail.is_empty()
            && self.to_resume.is_empty()
            && self.closing.is_empty()
            && !self.hub.ticking()
            && !self.hub.broadcasting()
            && !self.deadlines.in_progress()
            && !self.backlogged()
            && !self.lane_busy()
            && self.inbox.prepare_sleep();
        let timeout = if may_sleep {
            let tick = self.shared.until_next_tick();
            let timeout = self.stats_wait().map_or(tick, |stats| stats.min(tick));
            self.hold_wait(timeout)
        } else {
            Duration::ZERO
        };
        self.turn_started = None;
        // The first reply of the turn reads the wall clock once (the Date header).
        self.date.expire();
        let result = backend.wait(Some(timeout), &mut |c| self.on_completion(c));
        let working_since = self.turn_started.unwrap_or_else(Instant::now);
        self.inbox.woke();
        if let Err(e) = result {
            log::error!("worker {}: wait failed: {e}", self.id);
        }
        self.attach_accepted(backend);
        self.attach_arrived(backend);
        self.handle_mail(backend);
        self.resume_buffered(backend);
        self.on_time();
        if self.deadlines.in_progress() {
            self.sweep_deadlines();
        }
        if self.hub.ticking() {
            self.tick_some_channels();
        }
        if self.hub.broadcasting() {
            self.broadcast_some();
        }
        if self.lane_busy() {
            self.deliver_some();
        }
        if self.holding() {
            self.release_held(false);
        }
        self.send_stats_when_due();
        self.move_out(backend);
        self.cluster_flush();
        self.post.send_all();
        self.flush_dirty(backend);
        self.free_closed(backend, CLOSES_PER_TURN);
        self.enforce_shutdown_deadline(backend);
        self.record_turn(backend, working_since);
    }

    /// The gauges and the turn-duration histogram `/metrics` reads, once per turn.
    fn record_turn<B: Backend>(&self, backend: &B, working_since: Instant) {
        let stats = self.stats();
        stats.count_turn(working_since.elapsed());
        stats
            .timers
            .store(self.deadlines.armed(), Ordering::Relaxed);
        stats.mail.store(self.mail.len(), Ordering::Relaxed);
        stats.lane.store(self.lane.len(), Ordering::Relaxed);
        stats.backlog.store(self.backlog.len(), Ordering::Relaxed);
        stats.buffered.store(self.buffered, Ordering::Relaxed);
        stats
            .accept_errors
            .store(backend.accept_errors(), Ordering::Relaxed);
    }

    fn on_completion(&mut self, c: Completion<'_>) -> ReadControl {
        if self.turn_started.is_none() {
            self.turn_started = Some(Instant::now());
        }
        match c {
            Completion::Accepted {
                listener,
                conn,
                peer,
            } => {
                self.on_accept(Port::from_tag(listener), conn, peer);
                ReadControl::Continue
            }
            Completion::Data { token, bytes } => self.on_data(token, bytes),
            Completion::PeerClosed { token } => {
                self.on_peer_closed(token);
                ReadControl::Pause
            }
            Completion::Writable { token } => {
                if self.conn(token).is_some_and(|c| c.out.is_some()) {
                    self.mark_dirty(token);
                }
                ReadControl::Continue
            }
            Completion::Wake => ReadControl::Continue,
            Completion::Refused { .. } => {
                self.stats().refused.fetch_add(1, Ordering::Relaxed);
                ReadControl::Continue
            }
            Completion::Detached { token, socket } => {
                self.on_detached(token, socket);
                ReadControl::Continue
            }
            Completion::Adopted { tag, conn } => {
                self.on_adopted(tag, conn);
                ReadControl::Continue
            }
        }
    }

    fn on_accept(&mut self, port: Port, id: ConnId, peer: Option<std::net::SocketAddr>) {
        if self.shutting_down.is_some() || !self.shared.admit_connection() {
            self.stats().refused.fetch_add(1, Ordering::Relaxed);
            self.to_attach.push((id, None));
            return;
        }
        let mut conn = Conn::new(id, port);
        if port == Port::Admin {
            let filter = &self.config.admin.filter;
            // Without a peer address only an open filter can let the connection in.
            let allowed = match peer {
                Some(p) => filter.allows(p.ip()),
                None => *filter == crate::config::IpFilter::default(),
            };
            if allowed {
                conn.set(flags::ADMIN_ALLOWED);
            }
        }
        let Ok((slot, generation)) = self.conns.insert(conn) else {
            self.shared.release_connection();
            self.stats().refused.fetch_add(1, Ordering::Relaxed);
            self.to_attach.push((id, None));
            return;
        };
        let token = Token { slot, generation };
        let stats = self.stats();
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        if port == Port::Admin {
            stats.admin_connections.fetch_add(1, Ordering::Relaxed);
        }
        self.to_attach.push((id, Some(token)));
        let deadline = self.after(self.config.server.header_timeout);
        self.arm(token, deadline);
    }

    fn attach_accepted<B: Backend>(&mut self, backend: &mut B) {
        for (conn, token) in std::mem::take(&mut self.to_attach) {
            let Some(token) = token else {
                backend.close(conn, REFUSED);
                continue;
            };
            if let Err(e) = backend.attach(conn, token) {
                log::warn!("attach failed: {e}");
                self.close(token);
            }
        }
    }

    /// This worker's public counters.
    pub(crate) fn stats(&self) -> &shared::WorkerStats {
        &self.shared.stats[self.id]
    }

    /// Sends a message to worker `to` (itself included: handled in this same turn, exactly like
    /// mail from other workers). Other workers get it at the end of the turn, in one batch.
    pub(crate) fn mail(&mut self, to: usize, msg: Msg) {
        if to == self.id {
            self.mail.push_back(msg);
        } else {
            self.post.add(to, msg);
        }
    }

    /// Number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.post.workers()
    }

    /// Handles the mail other workers have sent so far, before this worker acts on new socket
    /// input: whatever a peer sent before a client's next request arrived is seen by that
    /// request (a publisher answered on its own worker, then a subscriber here, sees the message
    /// stored). Hand-overs and shutdown need the backend and wait for `handle_mail`.
    pub(super) fn take_inbox(&mut self) {
        let mut handled = 0;
        while handled < MAIL_PER_TURN {
            let Some(batch) = self.inbox.try_recv() else {
                return;
            };
            handled += batch.len();
            for msg in batch {
                match msg {
                    Msg::Shutdown | Msg::Adopt(_) | Msg::Reload(_) => self.mail.push_back(msg),
                    msg => self.on_mail(msg),
                }
            }
        }
    }

    /// Handles this turn's mail: what the worker sent itself and what arrived, bounded.
    fn handle_mail<B: Backend>(&mut self, backend: &mut B) {
        let mut handled = 0;
        while handled < MAIL_PER_TURN {
            if self.mail.is_empty() {
                match self.inbox.try_recv() {
                    Some(batch) => self.mail.extend(batch),
                    None => {
                        // Every delivery this worker mailed itself is in its lane now.
                        self.big_published = 0;
                        return;
                    }
                }
            }
            let Some(msg) = self.mail.pop_front() else {
                continue;
            };
            handled += 1;
            match msg {
                Msg::Shutdown => self.begin_shutdown(backend),
                Msg::Reload(config) => self.reload(config),
                Msg::Adopt(a) => self.adopt(backend, *a),
                msg => self.on_mail(msg),
            }
        }
    }

    /// A reload: the configuration read again takes effect for everything this worker decides
    /// from now on (limits, timeouts, the admin filter of new connections, the hub's limits).
    fn reload(&mut self, config: Arc<crate::config::Config>) {
        self.hub.set_config(shared::hub_config(&config));
        self.config = config;
    }

    fn begin_shutdown<B: Backend>(&mut self, backend: &mut B) {
        if self.shutting_down.is_some() {
            return;
        }
        backend.stop_listening();
        // Held operations run now: their replies are owed before the connections may end.
        self.release_held(true);
        let grace = Duration::from_secs(u64::from(self.config.server.shutdown_timeout));
        self.shutting_down = Some(Instant::now() + grace);
        // Idle connections and open streams end now; requests in progress get the grace period.
        for (slot, generation) in self.conns.keys() {
            let token = Token { slot, generation };
            let idle = self.conns.peek(token).is_some_and(|c| {
                matches!(c.phase, Phase::Idle | Phase::Subscribed | Phase::Presence)
                    && c.replies_owed() == 0
            });
            if idle {
                self.ws_going_away(token);
                self.close_after_flush(token);
            }
        }
    }

    /// Past the shutdown grace period every connection left is closed.
    fn enforce_shutdown_deadline<B: Backend>(&mut self, backend: &mut B) {
        let Some(deadline) = self.shutting_down else {
            return;
        };
        if Instant::now() >= deadline {
            for (slot, generation) in self.conns.keys() {
                self.close(Token { slot, generation });
            }
            self.free_closed(backend, usize::MAX);
        }
    }
}
