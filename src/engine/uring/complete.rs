//! Completion handling of the uring backend: each completion is matched to what it completes by
//! its user-data word, checked against the slot's generation, and turned into at most one
//! [`Completion`] for the worker.
//!
//! Depends on: engine (Completion, ReadControl), engine::uring internals, io-uring, libc.

use super::read_queue::ReadClass;
use super::table::{conn_id, flag, split, ConnSlot, SlotState};
use super::user_data::{same_generation, Op};
use super::Uring;
use crate::engine::{Completion, ConnId, ReadControl};
use io_uring::cqueue;
use std::io;
use std::net::SocketAddr;

/// Completion batches taken from one ring per turn before the other rings get their turn.
const BATCHES_PER_TURN: usize = 4;

pub(super) type Handler<'h> = &'h mut dyn FnMut(Completion<'_>) -> ReadControl;

/// Which accept completed, and the peer address it returned (only accepts with an address buffer
/// return one).
struct AcceptDone {
    listener: usize,
    multishot: bool,
    peer: Option<SocketAddr>,
}

impl Uring {
    /// Handles every completion waiting on ring `ring`.
    pub(super) fn drain_ring(&mut self, ring: usize, handler: Handler<'_>) {
        for _ in 0..BATCHES_PER_TURN {
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.clear();
            if let Some(r) = self.rings.get_mut(ring) {
                r.drain(&mut cqes);
            }
            if cqes.is_empty() {
                self.cqes = cqes;
                return;
            }
            for cqe in &cqes {
                self.dispatch(ring, cqe.user_data(), cqe.result(), cqe.flags(), handler);
            }
            self.cqes = cqes;
        }
    }

    fn dispatch(&mut self, ring: usize, word: u64, res: i32, flags: u32, handler: Handler<'_>) {
        let more = cqueue::more(flags);
        match Op::decode(word) {
            Some(Op::Waker) => {
                // The poll is multishot and every eventfd write wakes its watchers, so the
                // counter is never read back (no read syscall per wake-up), as with epoll's
                // edge-triggered registration; `EventFd::wake` copes with a full counter.
                handler(Completion::Wake);
                if !more {
                    self.rearm("waker", res, Uring::arm_waker);
                }
            }
            Some(Op::RingReady { ring: other }) => {
                // The ring itself is drained in the same turn; only the poll may need re-arming
                // (a poll on a ring's fd turns one-shot after its first event).
                if !more {
                    self.rearm("ring poll", res, |b| b.arm_ring_ready(other as usize));
                }
            }
            Some(Op::Accept {
                listener,
                multishot,
            }) => {
                let accept = AcceptDone {
                    listener: listener as usize,
                    multishot,
                    peer: None,
                };
                self.on_accept(ring, accept, res, more, handler)
            }
            Some(Op::AcceptPeer { addr }) => {
                // The kernel is done with the address buffer: it can go.
                let Some(record) = self.peer_addrs.remove(addr) else {
                    log::error!("accept completion for unknown address buffer {addr}");
                    return;
                };
                let peer = if res >= 0 {
                    // SAFETY: this is the accept's completion: the kernel is done with the record.
                    unsafe { record.peer() }
                } else {
                    None
                };
                if res >= 0 && peer.is_none() {
                    log::warn!("accepted a connection without a usable peer address");
                }
                let accept = AcceptDone {
                    listener: record.listener as usize,
                    multishot: false,
                    peer,
                };
                self.on_accept(ring, accept, res, more, handler)
            }
            Some(Op::Poll { conn, generation }) => self.on_poll(conn, generation, res, more),
            Some(Op::Recv { buffer }) => self.on_recv(buffer, res, flags, handler),
            Some(Op::Send { record }) => self.on_send(record, res, handler),
            Some(Op::Close { conn, generation }) => self.on_close(conn, generation, res),
            Some(Op::Install { conn, generation }) => {
                self.on_install(conn, generation, res, handler)
            }
            Some(Op::Adopt { record }) => self.on_adopt(record, res, handler),
            Some(Op::Refuse { listener }) => self.refuse_queued(listener as usize, res, handler),
            Some(Op::Cancel) => {}
            None => log::debug!("completion with unknown user data {word:#x}"),
        }
    }

    fn rearm(&mut self, what: &str, res: i32, arm: impl FnOnce(&mut Uring) -> io::Result<()>) {
        if res < 0 && -res != libc::ECANCELED {
            log::warn!("{what} ended: {}", io::Error::from_raw_os_error(-res));
        }
        if res == -libc::ECANCELED {
            return;
        }
        if let Err(e) = arm(self) {
            log::error!("{what} not re-armed: {e}");
        }
    }

    fn on_accept(
        &mut self,
        ring: usize,
        accept: AcceptDone,
        res: i32,
        more: bool,
        handler: Handler<'_>,
    ) {
        let AcceptDone {
            listener,
            multishot,
            peer,
        } = accept;
        let (Some(l), Some(r)) = (self.listeners.get_mut(listener), self.rings.get_mut(ring))
        else {
            return;
        };
        if multishot && !more {
            l.accept.multishot = None;
            r.table.multishots = r.table.multishots.saturating_sub(1);
        } else if !multishot {
            l.accept.singles = l.accept.singles.saturating_sub(1);
            r.table.reserved = r.table.reserved.saturating_sub(1);
        }
        let tag = l.tag;
        if res < 0 && -res != libc::ECANCELED {
            self.accept_errors += 1;
        }
        if res < 0 {
            match -res {
                libc::ECANCELED => {}
                libc::ENFILE => log::error!("ring {ring}: direct-descriptor table full on accept"),
                e @ (libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP) => {
                    // Re-arming at once would fail the same way, turn after turn: the next close
                    // or accept re-plans.
                    log::error!(
                        "accept on listener {tag}: {}",
                        io::Error::from_raw_os_error(e)
                    );
                    return;
                }
                e => log::debug!("accept failed: {}", io::Error::from_raw_os_error(e)),
            }
            self.accepts_dirty = true;
            return;
        }
        let index = res as u32;
        if r.table.install(index).is_none() {
            log::error!("accept returned slot {index} outside table {ring}");
            return;
        }
        // Every accept moves the ring's occupancy: let the plan see whether to cancel.
        self.accepts_dirty = true;
        let conn = conn_id(ring, index);
        if !self.listening {
            self.close_slot(conn);
            return;
        }
        handler(Completion::Accepted {
            listener: tag,
            conn,
            peer,
        });
    }

    fn on_poll(&mut self, conn: ConnId, generation: u32, res: i32, more: bool) {
        let Some(slot) = self.live_slot(conn, generation) else {
            return;
        };
        if res >= 0 && !slot.has(flag::PEER_CLOSED) && !slot.has(flag::PAUSED) {
            let hangup = (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as i32;
            let class = if res & hangup != 0 {
                ReadClass::Hangup
            } else if slot.has(flag::SPOKEN) {
                ReadClass::Live
            } else {
                ReadClass::New
            };
            if slot.has(flag::READING) {
                slot.set(flag::READ_AGAIN, true);
            } else {
                self.want_read.push(class, (conn, generation));
            }
        }
        if more {
            return;
        }
        // The poll ended (a full completion queue, or an error): arm it again.
        match -res {
            libc::ECANCELED | libc::EBADF => {
                log::warn!("poll of {conn:?} ended for good: receive once to learn why");
                self.want_read.push(ReadClass::Live, (conn, generation));
            }
            _ => {
                if let Err(e) = self.arm_poll(conn, generation) {
                    log::error!("poll of {conn:?} not re-armed: {e}");
                }
            }
        }
    }

    fn on_recv(&mut self, buffer: u32, res: i32, flags: u32, handler: Handler<'_>) {
        let len = usize::try_from(res).unwrap_or(0);
        let Some(((conn, generation), bytes)) = self.recv.finish(buffer, len) else {
            return;
        };
        let (r, index) = split(conn);
        let slot = self
            .rings
            .get_mut(r)
            .and_then(|r| r.table.get_mut(index))
            .filter(|slot| same_generation(slot.generation, generation));
        let Some(slot) = slot else {
            self.recv.release(buffer);
            return;
        };
        slot.set(flag::READING, false);
        let read_again = slot.take(flag::READ_AGAIN);
        if !slot.attached() {
            self.recv.release(buffer);
            return;
        }
        let token = slot.token;
        let full = bytes.len() == self.recv.buffer_len() || cqueue::sock_nonempty(flags);
        let mut again = read_again;
        let mut peer_closed = false;
        if res > 0 {
            slot.set(flag::SPOKEN, true);
            let control = handler(Completion::Data { token, bytes });
            if control == ReadControl::Pause {
                slot.set(flag::PAUSED, true);
                again = false;
            } else {
                again |= full;
            }
        } else {
            match -res {
                0 => peer_closed = true,
                libc::EAGAIN | libc::ENOBUFS => {}
                libc::EINTR => again = true,
                _ => peer_closed = true,
            }
            if peer_closed && !slot.has(flag::PEER_CLOSED) {
                slot.set(flag::PEER_CLOSED, true);
                handler(Completion::PeerClosed { token });
            }
        }
        self.recv.release(buffer);
        if again && !peer_closed {
            self.want_read.push(ReadClass::Live, (conn, generation));
        }
    }

    fn on_send(&mut self, id: u32, res: i32, handler: Handler<'_>) {
        let Some(record) = self.sends.get_mut(id) else {
            return;
        };
        let (conn, generation) = (record.conn, record.generation);
        if res > 0 {
            record.chunk.advance(res as usize);
        }
        let left = !record.chunk.is_empty();
        if self.live_slot(conn, generation).is_none() {
            self.sends.remove(id);
            return;
        }
        let retry = res == -libc::EINTR || res == -libc::EAGAIN || (res > 0 && left);
        if retry && self.submit_send(id).is_ok() {
            return;
        }
        self.sends.remove(id);
        let Some(slot) = self.live_slot(conn, generation) else {
            return;
        };
        slot.set(flag::SENDING, false);
        let token = slot.token;
        if res >= 0 && !left {
            handler(Completion::Writable { token });
        } else if !slot.has(flag::PEER_CLOSED) {
            slot.set(flag::PEER_CLOSED, true);
            handler(Completion::PeerClosed { token });
        }
    }

    /// The slot of an attached connection, when `generation` is still its generation.
    pub(super) fn live_slot(&mut self, conn: ConnId, generation: u32) -> Option<&mut ConnSlot> {
        let (r, index) = split(conn);
        self.rings
            .get_mut(r)?
            .table
            .get_mut(index)
            .filter(|slot| slot.attached() && same_generation(slot.generation, generation))
    }

    fn on_close(&mut self, conn: ConnId, generation: u32, res: i32) {
        let (r, index) = split(conn);
        let Some(ring) = self.rings.get_mut(r) else {
            return;
        };
        // The kernel freed the table entry when the close ran, whatever its result.
        ring.table.release();
        self.accepts_dirty = true;
        if res < 0 {
            log::debug!("close of {conn:?}: {}", io::Error::from_raw_os_error(-res));
        }
        if let Some(slot) = ring.table.get_mut(index) {
            if slot.state == SlotState::Closing && same_generation(slot.generation, generation) {
                slot.state = SlotState::Free;
            }
        }
    }
}
