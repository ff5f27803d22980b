//! Reading side of a connection: bytes from the backend → complete requests → the API layer.
//!
//! Bytes are parsed straight from the backend's scratch buffer; only what is left of an incomplete
//! request (or pipelined requests that must wait their turn) is copied into a borrowed `inbuf`.
//!
//! Admin requests are pipelined: while replies computed on other cores are owed, later requests
//! still run (their replies queue behind), up to `MAX_REPLIES_OWED`; a request that must see
//! every earlier reply sent first (one that ends the connection, or turns it into a /psub stream)
//! waits until they are.
//!
//! Depends on: worker (Worker, Conn), http (parse), api (dispatch).

use super::conn::{flags, Conns, InBuf, Phase, Port};
use super::output::HEAVY_BUFFER_BYTES;
use super::Worker;
use crate::api::{self, Outcome};
use crate::engine::{Backend, ReadControl, Token};
use crate::http::{self, HttpLimits, Parsed};

/// Reading pauses while a connection has more than this much output queued (a client pipelining
/// requests without reading the answers); it resumes when the queue drains.
const PAUSE_OUTPUT_BYTES: usize = 256 * 1024;

/// Admin replies a connection may owe before its later requests wait.
const MAX_REPLIES_OWED: usize = 1024;

/// Whether a complete admin request must wait until the replies its connection owes are sent:
/// the last one was the connection's final request, too many are owed, a push waits for a home
/// that is behind (`flags::WINDOW_WAIT`), or this one ends the connection or is not an operation
/// whose reply can queue behind them.
fn must_wait_for_replies(conn: &super::conn::Conn, req: &http::Request<'_>) -> bool {
    let owed = conn.replies_owed();
    owed > 0
        && (!conn.has(flags::KEEP_ALIVE)
            || conn.has(flags::WINDOW_WAIT)
            || owed >= MAX_REPLIES_OWED
            || !req.keep_alive
            || !api::admin::pipelines(&req.path))
}

impl Worker {
    fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            max_header_bytes: self.config.limits.max_header_bytes,
            max_body_bytes: self.config.limits.max_body_bytes,
        }
    }

    pub(super) fn on_data(&mut self, token: Token, bytes: &[u8]) -> ReadControl {
        self.take_inbox();
        let websocket = self.is_open_websocket(token);
        let Some(conn) = self.conns.at(token) else {
            return ReadControl::Pause;
        };
        match conn.phase {
            Phase::Closing => return ReadControl::Pause,
            Phase::Idle | Phase::Reading if conn.inbuf.is_none() => {
                let mut scan = http::HeadScan::default();
                let used = self.process(token, bytes, &mut scan);
                if let Some(rest) = bytes.get(used..).filter(|r| !r.is_empty()) {
                    self.keep(token, rest);
                    if let Some(buf) = self.conns.at(token).and_then(|c| c.inbuf.as_mut()) {
                        buf.scan = scan;
                    }
                }
            }
            Phase::Idle | Phase::Reading => {
                let Some(mut buf) = conn.inbuf.take() else {
                    return ReadControl::Continue;
                };
                if self.over_budget(buf.len() + bytes.len(), bytes.len()) {
                    self.buffered = self.buffered.saturating_sub(buf.capacity());
                    drop(buf);
                    self.refuse_over_budget(token);
                    return ReadControl::Pause;
                }
                let before = buf.capacity();
                buf.extend_from_slice(bytes);
                self.buffered += buf.capacity() - before;
                let mut scan = buf.scan;
                let used = self.process(token, &buf, &mut scan);
                buf.scan = scan;
                self.put_back(token, buf, used);
            }
            Phase::Subscribed if websocket => self.on_ws_data(token, bytes),
            // A request is in progress elsewhere: hold what arrives (bounded) until it is done.
            Phase::Waiting | Phase::Subscribed | Phase::Presence | Phase::Moving => {
                self.keep(token, bytes);
            }
        }
        self.read_control(token)
    }

    /// Whether the backend should keep reading this connection.
    fn read_control(&mut self, token: Token) -> ReadControl {
        let max_hold = self.config.limits.max_header_bytes;
        let Some(conn) = self.conns.at(token) else {
            return ReadControl::Pause;
        };
        let held = conn.inbuf.as_ref().map_or(0, |b| b.len());
        let busy = matches!(
            conn.phase,
            Phase::Waiting | Phase::Subscribed | Phase::Presence | Phase::Moving
        ) || conn.replies_owed() > 0;
        let queued = conn.out.as_ref().map_or(0, |o| o.queued());
        if conn.phase == Phase::Closing
            || (busy && held >= max_hold)
            || queued > PAUSE_OUTPUT_BYTES
            || conn.has(flags::CLOSE_AFTER_FLUSH)
        {
            conn.set(flags::PAUSED);
            ReadControl::Pause
        } else {
            ReadControl::Continue
        }
    }

    /// Whether adding `adding` bytes of input, leaving a connection with `pending` unparsed,
    /// breaks the worker's buffer budget. Over the budget a connection whose unparsed input would
    /// pass `HEAVY_BUFFER_BYTES` is refused; one with a request or two pending (an admin connection
    /// while a big fan-out fills the budget with output) goes on, its input bounded by the header
    /// and body limits.
    fn over_budget(&self, pending: usize, adding: usize) -> bool {
        self.buffered + adding > self.config.limits.buffer_budget_bytes
            && pending > HEAVY_BUFFER_BYTES
    }

    /// Answers 503 and closes: the connection's input would break the buffer budget.
    fn refuse_over_budget(&mut self, token: Token) {
        self.shared
            .budget_refusals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.reject(token, 503, b"");
    }

    /// Appends bytes to the connection's borrowed input buffer (within the budget: `over_budget`).
    pub(super) fn keep(&mut self, token: Token, bytes: &[u8]) {
        let Some(conn) = self.conns.peek(token) else {
            return;
        };
        let pending = conn.inbuf.as_ref().map_or(0, |b| b.len()) + bytes.len();
        if self.over_budget(pending, bytes.len()) {
            self.refuse_over_budget(token);
            return;
        }
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        let buf = conn.inbuf.get_or_insert_with(Default::default);
        let before = buf.capacity();
        buf.extend_from_slice(bytes);
        self.buffered += buf.capacity() - before;
    }

    /// Returns the unparsed tail of `buf` to the connection (or frees the buffer when all was used).
    /// `buf.scan` must describe the bytes from `used` on (as `process` leaves it).
    pub(super) fn put_back(&mut self, token: Token, mut buf: Box<InBuf>, used: usize) {
        let capacity = buf.capacity();
        let used = used.min(buf.len());
        let Some(conn) = self.conns.at(token) else {
            self.buffered = self.buffered.saturating_sub(capacity);
            return;
        };
        if used == buf.len() {
            self.buffered = self.buffered.saturating_sub(capacity);
            return;
        }
        buf.drain(..used);
        // Anything that arrived while the buffer was out is appended after the remainder.
        if let Some(newer) = conn.inbuf.take() {
            self.buffered = self.buffered.saturating_sub(newer.capacity());
            buf.extend_from_slice(&newer);
        }
        if buf.capacity() > 4 * buf.len().max(4096) {
            let keep = buf.len().max(4096);
            buf.shrink_to(keep);
        }
        self.buffered = self.buffered.saturating_sub(capacity) + buf.capacity();
        conn.inbuf = Some(buf);
    }

    /// Parses and handles every complete request at the front of `buf`, in order, while the
    /// connection stays ready for the next one. Returns the bytes consumed. `scan` is the parse's
    /// progress on the request at the start of `buf`, and is left describing the one at the
    /// returned offset (see `http::resume`).
    pub(super) fn process(&mut self, token: Token, buf: &[u8], scan: &mut http::HeadScan) -> usize {
        let limits = self.http_limits();
        let mut pos = 0;
        loop {
            let Some(conn) = self.conns.at(token) else {
                return buf.len();
            };
            if !matches!(conn.phase, Phase::Idle | Phase::Reading)
                || conn.has(flags::CLOSE_AFTER_FLUSH)
                || conn
                    .out
                    .as_ref()
                    .is_some_and(|o| o.queued() > PAUSE_OUTPUT_BYTES)
            {
                return pos;
            }
            let rest = buf.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                if conn.phase == Phase::Reading {
                    conn.phase = Phase::Idle;
                }
                let keepalive = self.after(self.config.server.keepalive_timeout);
                self.arm(token, keepalive);
                return pos;
            }
            match http::parse_resuming(rest, &limits, scan) {
                Parsed::Partial { send_continue } => {
                    self.partial_request(token, send_continue);
                    return pos;
                }
                Parsed::Reject(reject) => {
                    self.reject(token, reject.status(), b"");
                    return buf.len();
                }
                Parsed::Complete { req, used } => {
                    if must_wait_for_replies(conn, &req) {
                        // Runs once the replies owed are sent (`replies_drained` resumes it).
                        return pos;
                    }
                    pos += used;
                    conn.phase = Phase::Idle;
                    conn.clear(flags::CONTINUE_SENT);
                    let port = conn.port;
                    let allowed = conn.has(flags::ADMIN_ALLOWED);
                    self.handle_request(token, port, allowed, &req);
                }
            }
        }
    }

    /// Part of a request has arrived: the header timer runs, and a client that asked for it gets
    /// `100 Continue` once.
    fn partial_request(&mut self, token: Token, send_continue: bool) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        if conn.phase == Phase::Idle {
            conn.phase = Phase::Reading;
            let d = self.after(self.config.server.header_timeout);
            self.arm(token, d);
        }
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        if send_continue && !conn.has(flags::CONTINUE_SENT) {
            conn.set(flags::CONTINUE_SENT);
            self.queue(token, crate::http::response::CONTINUE);
        }
    }

    /// Hands one complete request to the API layer and carries out what it asks for.
    fn handle_request(&mut self, token: Token, port: Port, allowed: bool, req: &http::Request<'_>) {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.stats()
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.date.unix_secs();
        let ctx = api::Ctx {
            config: &self.config,
            date: self.date.get(),
            now,
            stateless: self.shared.stateless.as_ref(),
            admin_allowed: allowed,
            channels: self.shared.channels(),
            subscribers: self.shared.subscribers(),
            cluster: self.cluster.is_some(),
            metrics: &*self.shared,
            cors: &self.shared.cors,
        };
        let outcome = match port {
            Port::Front => api::front::handle(req, &ctx, &mut out),
            Port::Admin => api::admin::handle(req, &ctx, &mut out),
        };
        self.note_request_style(token, req);
        if !out.is_empty() {
            if port == Port::Admin {
                self.respond(token, &out);
            } else {
                self.stats().count_response(&out);
                self.queue(token, &out);
            }
        }
        self.scratch = out;
        self.carry_out(token, outcome, req.keep_alive);
    }

    /// Remembers how the current request wants its response (HTTP version, keep-alive).
    fn note_request_style(&mut self, token: Token, req: &http::Request<'_>) {
        if let Some(conn) = self.conns.at(token) {
            if req.version == http::Version::Http10 {
                conn.set(flags::HTTP10);
            } else {
                conn.clear(flags::HTTP10);
            }
            if req.keep_alive {
                conn.set(flags::KEEP_ALIVE);
            } else {
                conn.clear(flags::KEEP_ALIVE);
            }
            if req.asks_close {
                conn.set(flags::ASKS_CLOSE);
            } else {
                conn.clear(flags::ASKS_CLOSE);
            }
        }
    }

    /// Carries out what the API layer asked for after a request.
    fn carry_out(&mut self, token: Token, outcome: Outcome, keep_alive: bool) {
        match outcome {
            Outcome::Done { close } => {
                if close || !keep_alive {
                    self.close_after_flush(token);
                }
            }
            Outcome::Subscribe(request) => self.subscribe(token, request),
            Outcome::Home(request) => {
                self.admin_op(token, request);
                let answered = self
                    .conns
                    .peek(token)
                    .is_some_and(|c| c.replies_owed() == 0);
                // A last request still being answered elsewhere closes in `replies_drained`.
                if !keep_alive && answered {
                    self.close_after_flush(token);
                }
            }
            Outcome::Broadcast { content, close } => {
                self.broadcast(content);
                if close || !keep_alive {
                    self.close_after_flush(token);
                }
            }
            Outcome::Presence => self.start_presence(token),
            Outcome::StatsStream => self.start_stats_stream(token),
        }
    }

    /// Processes requests that waited in a connection's buffer (its previous request finished), and
    /// lets the backend read again.
    pub(super) fn resume_buffered<B: Backend>(&mut self, backend: &mut B) {
        // Handling a request can queue more resumes; loop until none are left, bounded.
        for _ in 0..4 {
            let list = std::mem::take(&mut self.to_resume);
            if list.is_empty() {
                return;
            }
            for token in list {
                let Some(conn) = self.conns.at(token) else {
                    continue;
                };
                if !matches!(conn.phase, Phase::Idle | Phase::Reading) {
                    continue;
                }
                if let Some(mut buf) = conn.inbuf.take() {
                    let mut scan = buf.scan;
                    let used = self.process(token, &buf, &mut scan);
                    buf.scan = scan;
                    self.put_back(token, buf, used);
                }
                if self.read_control(token) == ReadControl::Continue {
                    if let Some(conn) = self.conns.at(token) {
                        if conn.has(flags::PAUSED) {
                            conn.clear(flags::PAUSED);
                            backend.resume(conn.id, token);
                        }
                    }
                }
            }
        }
    }

    /// Marks a connection whose current request just finished, so buffered requests run next.
    pub(crate) fn request_done(&mut self, token: Token) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        conn.phase = Phase::Idle;
        if !conn.has(flags::KEEP_ALIVE) {
            self.close_after_flush(token);
            return;
        }
        let keepalive = self.after(self.config.server.keepalive_timeout);
        self.arm(token, keepalive);
        self.to_resume.push(token);
    }
}
