//! The per-core loop. Each worker owns its backend, its connections, its timers, its share of the
//! channels (the ones whose home it is) and its local subscriber index; it talks to other workers
//! only through mailboxes. One turn: wait for events → attach accepted connections → drain the
//! mailbox → fire timers → flush every connection with new output once → free closed slots.
//!
//! This is the only module that sees every layer (engine, http, api, comet).

pub mod conn;
mod home;
mod input;
pub mod mailbox;
pub mod msg;
mod output;
pub mod shared;
pub mod subs;
pub mod timer;

pub use msg::Msg;
pub use shared::Shared;

use crate::comet::hub::Hub;
use crate::comet::local::LocalSubs;
use crate::engine::{Backend, Completion, ConnId, ReadControl, Token};
use crate::http::DateCache;
use crate::slab::Slab;
use conn::{flags, Conn, Phase, Port};
use mailbox::{Inbox, Outbox};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use timer::TimerWheel;

/// The token used to close a connection that never got a slot.
const REFUSED: Token = Token {
    slot: Token::RESERVED_SLOTS,
    generation: 0,
};

/// What a worker is given at start.
pub struct WorkerSetup {
    pub id: usize,
    pub inbox: Inbox<Msg>,
    /// Every worker's mailbox, indexed by worker id (including this one's).
    pub peers: Vec<Outbox<Msg>>,
    pub shared: Arc<Shared>,
}

/// Runs a worker until it is told to shut down and its connections are gone.
pub fn run<B: Backend>(mut backend: B, setup: WorkerSetup) {
    let mut state = State::new(setup);
    while !state.finished() {
        state.turn(&mut backend);
    }
    log::debug!("worker {} stopped", state.id);
}

/// Everything a worker owns except its backend (so completion handlers can borrow it mutably while
/// the backend is waiting).
pub struct State {
    pub(crate) id: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) conns: Slab<Conn>,
    inbox: Inbox<Msg>,
    peers: Vec<Outbox<Msg>>,
    /// Messages this worker sends to itself (it is the home of the channel): handled in the same
    /// turn, exactly like mail from other workers.
    self_mail: VecDeque<Msg>,
    pub(crate) hub: Hub,
    pub(crate) local: LocalSubs,
    timers: TimerWheel,
    pub(crate) date: DateCache,
    /// The current tick: whole seconds since the server started, plus one (0 means "no timer").
    pub(crate) now: u32,
    /// Connections accepted this turn, attached to the backend after the wait returns (`None`:
    /// refused — at the connection limit or shutting down — and closed instead).
    to_attach: Vec<(ConnId, Option<Token>)>,
    /// Connections with new output this turn.
    dirty: Vec<Token>,
    /// Connections whose buffered requests should be processed again (a reply arrived, a
    /// subscription ended, output drained).
    to_resume: Vec<Token>,
    /// Connections to tear down at the end of the turn.
    closing: Vec<Token>,
    /// Connections with an open /psub presence stream.
    pub(crate) presence: Vec<Token>,
    /// Bytes held in borrowed buffers by this worker's connections (bounded by the budget).
    pub(crate) buffered: usize,
    /// A reusable buffer responses are built in before they are queued.
    pub(crate) scratch: Vec<u8>,
    /// A reusable list of subscriber keys for one delivery's fan-out.
    pub(crate) fanout: Vec<u64>,
    /// Drained output queues, reused by the next connection that writes. Boxed: connections hold
    /// them as boxes, and moving the box in and out of the pool allocates nothing.
    #[allow(clippy::vec_box)]
    pub(crate) out_pool: Vec<Box<crate::engine::OutQueue>>,
    shutting_down: Option<Instant>,
}

impl State {
    fn new(setup: WorkerSetup) -> State {
        let shared = setup.shared;
        let hub = Hub::new(shared.hub_config(), shared.counters());
        let mut date = DateCache::new();
        date.update(SystemTime::now());
        let per_worker_cap = shared.config.server.max_connections / shared.workers + 1;
        State {
            id: setup.id,
            conns: Slab::with_max(per_worker_cap.max(1024)),
            inbox: setup.inbox,
            peers: setup.peers,
            self_mail: VecDeque::new(),
            hub,
            local: LocalSubs::new(),
            timers: TimerWheel::new(),
            date,
            now: shared.tick(),
            to_attach: Vec::new(),
            dirty: Vec::new(),
            to_resume: Vec::new(),
            closing: Vec::new(),
            presence: Vec::new(),
            buffered: 0,
            scratch: Vec::with_capacity(4096),
            fanout: Vec::new(),
            out_pool: Vec::new(),
            shutting_down: None,
            shared,
        }
    }

    fn finished(&self) -> bool {
        match self.shutting_down {
            None => false,
            Some(deadline) => self.conns.is_empty() || Instant::now() >= deadline,
        }
    }

    /// One turn of the loop.
    fn turn<B: Backend>(&mut self, backend: &mut B) {
        let may_sleep =
            self.self_mail.is_empty() && self.to_resume.is_empty() && self.inbox.prepare_sleep();
        let timeout = if may_sleep {
            self.shared.until_next_tick()
        } else {
            Duration::ZERO
        };
        let result = backend.wait(Some(timeout), &mut |c| self.on_completion(c));
        self.inbox.woke();
        if let Err(e) = result {
            log::error!("worker {}: wait failed: {e}", self.id);
        }
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
        self.drain_mail(backend);
        self.resume_buffered(backend);
        self.on_time();
        self.flush_dirty(backend);
        self.free_closed(backend);
        if let Some(deadline) = self.shutting_down {
            if Instant::now() >= deadline {
                for (slot, generation) in self.conns.keys() {
                    self.close(Token { slot, generation });
                }
                self.free_closed(backend);
            }
        }
    }

    fn on_completion(&mut self, c: Completion<'_>) -> ReadControl {
        match c {
            Completion::Accepted {
                listener,
                conn,
                peer,
            } => {
                self.on_accept(listener, conn, peer);
                ReadControl::Continue
            }
            Completion::Data { token, bytes } => self.on_data(token, bytes),
            Completion::PeerClosed { token } => {
                self.on_peer_closed(token);
                ReadControl::Pause
            }
            Completion::Writable { token } => {
                if let Some(conn) = self.conns.get_mut(token.slot, token.generation) {
                    if conn.out.is_some() && !conn.has(flags::DIRTY) {
                        conn.set(flags::DIRTY);
                        self.dirty.push(token);
                    }
                }
                ReadControl::Continue
            }
            Completion::Wake => ReadControl::Continue,
        }
    }

    fn on_accept(&mut self, listener: u32, id: ConnId, peer: Option<std::net::SocketAddr>) {
        let port = if listener == crate::server::ADMIN_TAG {
            Port::Admin
        } else {
            Port::Front
        };
        if self.shutting_down.is_some() || !self.shared.admit_connection() {
            self.to_attach.push((id, None));
            return;
        }
        let mut conn = Conn::new(id, port);
        if port == Port::Admin {
            let filter = &self.shared.config.admin.filter;
            // Without a peer address only an open filter can let the connection in.
            let allowed = match peer {
                Some(p) => filter.allows(p.ip()),
                None => *filter == crate::config::IpFilter::default(),
            };
            if allowed {
                conn.set(flags::ADMIN_ALLOWED);
            }
        }
        match self.conns.insert(conn) {
            Ok((slot, generation)) => {
                let token = Token { slot, generation };
                let stats = self.stats();
                stats
                    .accepted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                stats
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.to_attach.push((id, Some(token)));
                let deadline = self.after(self.shared.config.server.header_timeout);
                self.arm(token, deadline);
            }
            Err(_) => {
                self.shared.release_connection();
                self.to_attach.push((id, None));
            }
        }
    }

    /// This worker's public counters.
    pub(crate) fn stats(&self) -> &shared::WorkerStats {
        &self.shared.stats[self.id]
    }

    /// Sends a message to worker `to` (itself included).
    pub(crate) fn mail(&mut self, to: usize, msg: Msg) {
        if to == self.id {
            self.self_mail.push_back(msg);
        } else if let Some(peer) = self.peers.get(to) {
            peer.send(msg);
        }
    }

    /// Number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.peers.len()
    }

    fn drain_mail<B: Backend>(&mut self, _backend: &mut B) {
        // Bounded so a flood from other cores cannot starve this core's own sockets.
        for _ in 0..65_536 {
            let msg = match self.self_mail.pop_front() {
                Some(m) => m,
                None => match self.inbox.try_recv() {
                    Some(m) => m,
                    None => return,
                },
            };
            if let Msg::Shutdown = msg {
                self.begin_shutdown(_backend);
            } else {
                self.on_mail(msg);
            }
        }
    }

    fn begin_shutdown<B: Backend>(&mut self, backend: &mut B) {
        if self.shutting_down.is_some() {
            return;
        }
        backend.stop_listening();
        let grace = Duration::from_secs(u64::from(self.shared.config.server.shutdown_timeout));
        self.shutting_down = Some(Instant::now() + grace);
        // Idle connections and open streams end now; requests in progress get the grace period.
        for (slot, generation) in self.conns.keys() {
            let token = Token { slot, generation };
            let idle = self.conns.get(slot, generation).is_some_and(|c| {
                matches!(c.phase, Phase::Idle | Phase::Subscribed | Phase::Presence)
            });
            if idle {
                self.close_after_flush(token);
            }
        }
    }

    /// Advances the clock: the Date header, connection timers and the channels' once-a-second tick.
    fn on_time(&mut self) {
        let now = self.shared.tick();
        if now == self.now {
            return;
        }
        self.date.update(SystemTime::now());
        self.now = now;
        let mut due = Vec::new();
        self.timers.advance(now, |e| due.push(e));
        for e in due {
            let Some(conn) = self.conns.get_mut(e.slot, e.generation) else {
                continue;
            };
            if conn.wheel_at != e.tick {
                continue;
            }
            conn.wheel_at = 0;
            let deadline = conn.deadline;
            let token = Token {
                slot: e.slot,
                generation: e.generation,
            };
            if deadline == 0 {
                continue;
            }
            if deadline > now {
                self.arm(token, deadline);
            } else {
                if let Some(conn) = self.conns.get_mut(e.slot, e.generation) {
                    conn.deadline = 0;
                }
                self.on_timeout(token);
            }
        }
        self.tick_channels();
    }

    /// The tick at which a timer of `secs` seconds started now is due. Ticks are whole seconds, so
    /// one more tick is added: the timer fires between `secs` and `secs + 1` seconds from now,
    /// never early.
    /// The clock is read afresh (a vDSO call): the cached `now` may lag by the length of a turn.
    pub(crate) fn after(&self, secs: u32) -> u32 {
        self.shared.tick().saturating_add(secs).saturating_add(1)
    }

    /// Sets the connection's timer to fire at tick `deadline`.
    pub(crate) fn arm(&mut self, token: Token, deadline: u32) {
        let Some(conn) = self.conns.get_mut(token.slot, token.generation) else {
            return;
        };
        conn.deadline = deadline;
        if conn.wheel_at == 0 || deadline < conn.wheel_at {
            conn.wheel_at = deadline.max(self.now + 1);
            self.timers
                .schedule(token.slot, token.generation, conn.wheel_at);
        }
    }

    /// Clears the connection's timer.
    pub(crate) fn disarm(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(token.slot, token.generation) {
            conn.deadline = 0;
        }
    }

    fn on_timeout(&mut self, token: Token) {
        let Some(conn) = self.conns.get(token.slot, token.generation) else {
            return;
        };
        match conn.phase {
            Phase::Idle => self.close(token),
            Phase::Reading => self.reject(token, 408, b""),
            Phase::Waiting => {
                let d = self.after(self.shared.config.server.header_timeout);
                self.arm(token, d);
            }
            Phase::Subscribed => self.on_noop_due(token),
            Phase::Presence => {}
            Phase::Closing => self.close(token),
        }
    }
}
