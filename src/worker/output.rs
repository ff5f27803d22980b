//! Writing side of a connection: output is queued during the turn and flushed once per connection
//! at the end of it (one writev for everything a turn produced); connections are torn down after.
//!
//! Depends on: worker (Worker, Conn), engine (Backend, OutQueue), http (error pages).

use super::conn::{flags, Conn, Conns, Phase, Port};
use super::frame_batch::FirstFrame;
use super::out_pool::OutPool;
use super::Worker;
use crate::comet::name::Name;
use crate::engine::{Backend, Flush, OutQueue, Token};
use crate::slab::Slab;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Over the worker's buffer budget, connections with more than this unsent are closed first, and
/// input is refused to connections with more than this unparsed (`input::keep`): the budget is
/// enforced on the connections that fill it, not on every connection of a worker that is full.
pub(super) const HEAVY_BUFFER_BYTES: usize = 64 * 1024;

impl Worker {
    /// Marks the connection for the end-of-turn flush (in the fan-out backlog while a big
    /// fan-out is being queued: `backlog`).
    pub(super) fn mark_dirty(&mut self, token: Token) {
        if let Some(conn) = self.conns.at(token) {
            if !conn.has(flags::DIRTY) {
                conn.set(flags::DIRTY);
                if self.marking_backlog {
                    self.backlog.push_back(token);
                } else {
                    self.dirty.push(token);
                }
            }
        }
    }

    /// Queues a copy of `bytes` for the connection. Returns false if the connection is gone or was
    /// closed for holding too much unsent output.
    pub(crate) fn queue(&mut self, token: Token, bytes: &[u8]) -> bool {
        let Some(out) = open_queue(&mut self.conns, &mut self.out_pool, token) else {
            return false;
        };
        out.push_bytes(bytes);
        self.count_queued(token, bytes.len())
    }

    /// Queues one delivered frame: the subscriber's own `head`, the message's JSON shared by
    /// reference (never copied), a fixed `tail`.
    pub(crate) fn queue_frame(
        &mut self,
        token: Token,
        head: &[u8],
        shared: &Arc<[u8]>,
        tail: &'static [u8],
    ) -> bool {
        let Some(out) = open_queue(&mut self.conns, &mut self.out_pool, token) else {
            return false;
        };
        out.push_frame(head, shared, tail);
        self.count_queued(token, head.len() + shared.len() + tail.len())
    }

    /// Queues one delivered frame of a channel with several subscribers: the subscriber's queue
    /// takes the range of the frame the channel's home wrote (`first`) or, when there is none for
    /// its framing, of the frame stored once in this worker's batch of (`channel`, `class`)
    /// (`frame_batch`; on the home, the frame it offers the others). `class` must tell apart
    /// framings whose frames of one message differ.
    pub(crate) fn queue_batched(
        &mut self,
        token: Token,
        (channel, class, first): (&Name, u8, Option<&FirstFrame>),
        frame: (&[u8], &Arc<[u8]>, &'static [u8]),
    ) -> bool {
        let Some(out) = open_queue(&mut self.conns, &mut self.out_pool, token) else {
            return false;
        };
        let (head, json, tail) = frame;
        let range = match first.and_then(|f| f.matching(class, head, json.len(), tail)) {
            Some(written) => Some(written),
            None => {
                let stored = self.batches.store(channel, class, head, json, tail);
                if let (Some(f), Some(range)) = (first, stored) {
                    f.offer(self.id, class, head.len(), range);
                }
                stored
            }
        };
        match range {
            Some(range) => out.push_range(range),
            None => out.push_frame(head, json, tail),
        }
        self.count_queued(token, head.len() + json.len() + tail.len())
    }

    /// Accounts `len` bytes just queued for the connection, then applies its output cap.
    fn count_queued(&mut self, token: Token, len: usize) -> bool {
        self.buffered += len;
        self.stats()
            .bytes_out
            .fetch_add(len as u64, Ordering::Relaxed);
        self.after_queue(token)
    }

    /// Applies the per-connection output cap and schedules the flush.
    fn after_queue(&mut self, token: Token) -> bool {
        let max = self.config.limits.max_output_bytes;
        let queued = self
            .conns
            .peek(token)
            .and_then(|c| c.out.as_ref())
            .map_or(0, |o| o.queued());
        // A connection past its own cap, or a heavy one while the worker is over its budget, is a
        // slow consumer: closed and counted (a subscriber resumes by seq when it comes back).
        let budget = self.config.limits.buffer_budget_bytes;
        if queued > max || (self.buffered > budget && queued > HEAVY_BUFFER_BYTES) {
            self.shared
                .slow_consumers_closed
                .fetch_add(1, Ordering::Relaxed);
            log::debug!("closing a slow consumer with {queued} bytes unsent");
            self.close(token);
            return false;
        }
        self.mark_dirty(token);
        true
    }

    /// Writes an error page and closes the connection once it is sent.
    pub(crate) fn reject(&mut self, token: Token, status: u16, uri: &[u8]) {
        let mut page = Vec::with_capacity(256);
        let version = match self.conns.peek(token) {
            Some(c) if c.has(flags::HTTP10) => crate::http::Version::Http10,
            Some(_) => crate::http::Version::Http11,
            None => return,
        };
        crate::http::response::error_page(&mut page, version, status, uri, self.date.get());
        self.stats().count_response(&page);
        self.queue(token, &page);
        self.close_after_flush(token);
    }

    /// Closes the connection once its queued output is sent (bounded by the header timeout).
    pub(crate) fn close_after_flush(&mut self, token: Token) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        conn.set(flags::CLOSE_AFTER_FLUSH);
        // `out` is dropped only when the backend reports everything sent (for io_uring: the send
        // completed), so `None` is the one safe moment to close.
        if conn.out.is_none() {
            self.close(token);
        } else {
            self.mark_dirty(token);
            let d = self.after(self.config.server.header_timeout);
            self.arm(token, d);
        }
    }

    /// Tears the connection down at the end of this turn; nothing more is sent.
    pub(crate) fn close(&mut self, token: Token) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        let was = conn.phase;
        conn.phase = Phase::Closing;
        self.leave_phase(token, was);
        self.closing.push_back(token);
    }

    /// The peer closed its side. Subscribers are removed at once; a connection with a response
    /// still queued gets it flushed first.
    pub(super) fn on_peer_closed(&mut self, token: Token) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        conn.set(flags::PEER_CLOSED);
        let has_output = conn.out.is_some();
        match conn.phase {
            // Admin replies are still being computed on another core: send them, then close
            // (`replies_drained`).
            Phase::Idle | Phase::Reading if conn.replies_owed() > 0 => {}
            Phase::Idle | Phase::Reading if has_output => self.close_after_flush(token),
            _ => self.close(token),
        }
    }

    /// Flushes every connection that got output this turn, then a bounded part of the fan-out
    /// backlog (`backlog`).
    pub(super) fn flush_dirty<B: Backend>(&mut self, backend: &mut B) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &token in &dirty {
            self.flush_one(backend, token);
        }
        if self.backlogged() {
            self.flush_backlog(backend);
        }
        // After the sends: a batch whose bytes were all written is let go.
        self.batches.finish_turn();
        // Reuse the list's allocation.
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Writes what the connection has queued (it leaves the flush lists); true when a write was
    /// attempted.
    pub(super) fn flush_one<B: Backend>(&mut self, backend: &mut B, token: Token) -> bool {
        let Some(conn) = self.conns.at(token) else {
            return false;
        };
        conn.clear(flags::DIRTY);
        if conn.phase == Phase::Closing {
            return false;
        }
        let Some(mut out) = conn.out.take() else {
            return false;
        };
        let before = out.queued();
        let result = backend.flush(conn.id, token, &mut out);
        self.buffered = self.buffered.saturating_sub(before - out.queued());
        match result {
            Ok(Flush::Done) => {
                // The connection gives its queue back: an idle connection owns no output
                // buffer, and the next one to write reuses it without allocating.
                self.out_pool.give(out);
                let close = conn.has(flags::CLOSE_AFTER_FLUSH);
                let resume = conn.has(flags::PAUSED);
                if close {
                    self.close(token);
                } else if resume {
                    self.to_resume.push(token);
                }
            }
            Ok(Flush::Pending) => conn.out = Some(out),
            Err(_) => {
                self.buffered = self.buffered.saturating_sub(out.queued());
                self.close(token);
            }
        }
        true
    }

    /// Frees the slots of the `limit` connections closed longest ago. Closing a socket is the
    /// kernel's most expensive step of a connection's life (the TCP close, the descriptor's
    /// release): ten thousand of them in one turn would hold every other client of this worker for
    /// a large fraction of a second, so a mass disconnect is taken `CLOSES_PER_TURN` (worker/mod.rs) at a time.
    /// A connection waiting here is already out of its channel and sends nothing more.
    pub(super) fn free_closed<B: Backend>(&mut self, backend: &mut B, limit: usize) {
        for _ in 0..limit {
            let Some(token) = self.closing.pop_front() else {
                return;
            };
            let Some(conn) = self.conns.remove(token.slot, token.generation) else {
                continue;
            };
            self.buffered = self.buffered.saturating_sub(conn.buffered());
            backend.close(conn.id, token);
            self.shared.release_connection();
            let stats = self.stats();
            stats.connections.fetch_sub(1, Ordering::Relaxed);
            if conn.port == Port::Admin {
                stats.admin_connections.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// The output queue of a connection that may still be sent bytes (taken from the pool when it
/// has none). Once the last bytes are decided (a WebSocket close frame, the end of a response
/// that closes), nothing may follow them: a message delivered meanwhile is dropped (`None`).
fn open_queue<'a>(
    conns: &'a mut Slab<Conn>,
    pool: &'a mut OutPool,
    token: Token,
) -> Option<&'a mut OutQueue> {
    let conn = conns.at(token)?;
    if conn.phase == Phase::Closing || conn.has(flags::CLOSE_AFTER_FLUSH) {
        return None;
    }
    Some(conn.out.get_or_insert_with(|| pool.take()))
}
