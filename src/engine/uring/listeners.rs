//! The listeners of the uring backend and how their accepts are armed, moved and cancelled: the
//! backend carries out the plan of `accept` against the real tables, and cancels every accept when
//! it stops listening. A single-shot accept on a listener that wants peer addresses gets an address
//! buffer (`buffers::PeerAddr`) that lives until its completion, whether it accepted or was
//! cancelled. While every table is full, an idle listener gets a readiness poll instead, and what
//! it reports is refused (`refuse_queued`).
//!
//! Depends on: engine::uring internals, io-uring, libc.

use super::accept::{self, Action, Multishot, Room};
use super::buffers::PeerAddr;
use super::complete::Handler;
use super::user_data::Op;
use super::Uring;
use crate::engine::{sys, Completion};
use io_uring::types::{CancelBuilder, DestinationSlot, Fd};
use io_uring::{opcode, squeue};
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;

/// Connections one refusing poll's completion refuses at most (the poll fires again at once
/// when more wait).
const REFUSALS_PER_TURN: usize = 512;

impl Uring {
    /// Carries out the accept plan: arms or cancels accepts so no table can overflow. Returns
    /// true when something was queued.
    pub(super) fn plan_accepts(&mut self) -> bool {
        self.accepts_dirty = false;
        if !self.listening || self.listeners.is_empty() {
            return false;
        }
        let mut rooms: Vec<Room> = self
            .rings
            .iter()
            .map(|r| Room {
                spare: r.table.spare(),
                multishots: r.table.multishots,
            })
            .collect();
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        let listeners = &self.listeners;
        let mut queued = |l: usize| {
            listeners
                .get(l)
                .and_then(|l| l.socket.as_ref())
                .map_or(0, accept_queue_len)
        };
        let states = self.listeners.iter().map(|l| &l.accept);
        let starved = accept::plan(states, &mut rooms, self.headroom, &mut queued, &mut actions);
        for action in &actions {
            if let Err(e) = self.carry_out(*action) {
                log::warn!("accept not armed: {e}");
            }
        }
        let quiet = self
            .full_logged
            .is_some_and(|at| at.elapsed() < super::FULL_LOG_EVERY);
        if starved && !quiet {
            log::warn!(
                "all {} connection slots are in use: new connections are refused",
                self.capacity
            );
            self.full_logged = Some(std::time::Instant::now());
        }
        let mut queued_any = !actions.is_empty();
        self.actions = actions;
        if starved && !self.has_room() {
            queued_any |= self.arm_refusals();
        }
        queued_any
    }

    /// Whether some ring can take one more connection with a single-shot accept (or a table
    /// not opened yet can).
    pub(super) fn has_room(&self) -> bool {
        let headroom = self.headroom.max(1);
        !self.unopened.is_empty()
            || self
                .rings
                .iter()
                .any(|r| r.table.spare() > headroom.saturating_mul(r.table.multishots))
    }

    /// Arms a readiness poll on every listener with no accept in flight (every table is full).
    /// Returns true when one was queued.
    fn arm_refusals(&mut self) -> bool {
        let mut queued = false;
        for l in 0..self.listeners.len() {
            let Some(listener) = self.listeners.get(l) else {
                continue;
            };
            let Some(fd) = listener.socket.as_ref().map(AsRawFd::as_raw_fd) else {
                continue;
            };
            if listener.accept.refusing || !listener.accept.idle() {
                continue;
            }
            let entry = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
                .build()
                .user_data(Op::Refuse { listener: l as u32 }.encode());
            // SAFETY: the poll uses no buffer; the kernel holds its own reference to the
            // listening socket while the poll is armed, and `cancel_accepts` cancels it.
            match unsafe { self.push(0, &entry) } {
                Ok(()) => {
                    queued = true;
                    if let Some(listener) = self.listeners.get_mut(l) {
                        listener.accept.refusing = true;
                    }
                }
                Err(e) => log::warn!("refusing poll not armed: {e}"),
            }
        }
        queued
    }

    /// The refusing poll of listener `l` fired: while no table has room and the listener has no
    /// accept in flight, its queued connections are accepted as ordinary descriptors and closed
    /// at once (each a [`Completion::Refused`]); then the plan runs again (arming accepts if a
    /// slot freed meanwhile, or the poll again).
    pub(super) fn refuse_queued(&mut self, l: usize, res: i32, handler: Handler<'_>) {
        let Some(listener) = self.listeners.get_mut(l) else {
            return;
        };
        listener.accept.refusing = false;
        if res < 0 {
            if res != -libc::ECANCELED {
                log::warn!("refusing poll: {}", io::Error::from_raw_os_error(-res));
            }
            return;
        }
        self.accepts_dirty = true;
        let Some(fd) = listener.socket.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        let (tag, idle) = (listener.tag, listener.accept.idle());
        if !idle || self.has_room() || !self.listening {
            return;
        }
        for _ in 0..REFUSALS_PER_TURN {
            match sys::refuse_one(fd) {
                Ok(true) => {
                    handler(Completion::Refused { listener: tag });
                }
                Ok(false) => return,
                Err(e) => {
                    self.accept_errors += 1;
                    log::warn!("refusing a connection: {e}");
                    return;
                }
            }
        }
    }

    fn carry_out(&mut self, action: Action) -> io::Result<()> {
        let (listener, ring) = match action {
            Action::ArmMultishot { listener, ring }
            | Action::ArmSingle { listener, ring }
            | Action::CancelMultishot { listener, ring } => (listener, ring),
        };
        let (fd, want_peer) = self
            .listeners
            .get(listener)
            .and_then(|l| Some((l.socket.as_ref()?.as_raw_fd(), l.accept.want_peer)))
            .ok_or_else(|| io::Error::other("listener closed"))?;
        if want_peer && matches!(action, Action::ArmSingle { .. }) {
            self.arm_peer_accept(listener, ring, fd)?;
            return Ok(());
        }
        let word = |multishot| {
            Op::Accept {
                listener: listener as u32,
                multishot,
            }
            .encode()
        };
        let entry = match action {
            Action::ArmMultishot { .. } => opcode::AcceptMulti::new(Fd(fd))
                .allocate_file_index(true)
                .build()
                .user_data(word(true)),
            Action::ArmSingle { .. } => {
                opcode::Accept::new(Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
                    .file_index(Some(DestinationSlot::auto_target()))
                    .build()
                    .user_data(word(false))
            }
            Action::CancelMultishot { .. } => opcode::AsyncCancel::new(word(true))
                .build()
                .user_data(Op::Cancel.encode()),
        };
        // SAFETY: accepts and cancels use no buffer (no peer address is asked for); the kernel
        // holds its own reference to the listening socket while an accept is armed.
        unsafe { self.push(ring, &entry)? };
        let (Some(l), Some(r)) = (self.listeners.get_mut(listener), self.rings.get_mut(ring))
        else {
            return Ok(());
        };
        match action {
            Action::ArmMultishot { .. } => {
                r.table.multishots += 1;
                l.accept.multishot = Some(Multishot {
                    ring,
                    cancelling: false,
                });
            }
            Action::ArmSingle { .. } => {
                r.table.reserved += 1;
                l.accept.singles += 1;
            }
            Action::CancelMultishot { .. } => {
                if let Some(ms) = l.accept.multishot.as_mut() {
                    ms.cancelling = true;
                }
            }
        }
        Ok(())
    }

    /// Arms a single-shot accept on listener `listener` (socket `fd`) that writes the peer address
    /// into a buffer of its own, reserving a slot on ring `ring` like every single-shot accept.
    fn arm_peer_accept(&mut self, listener: usize, ring: usize, fd: i32) -> io::Result<()> {
        let id = self.peer_addrs.insert(PeerAddr::new(listener as u32, ring));
        let (addr, len) = self
            .peer_addrs
            .get_mut(id)
            .map(|record| record.as_accept_args())
            .ok_or_else(|| io::Error::other("address buffer vanished"))?;
        let entry = opcode::Accept::new(Fd(fd), addr, len)
            .file_index(Some(DestinationSlot::auto_target()))
            .build()
            .user_data(Op::AcceptPeer { addr: id }.encode());
        // SAFETY: the address buffer is boxed in `self.peer_addrs` and removed only when this
        // accept's completion arrives (or, at drop, after the kernel gave it back); the kernel
        // holds its own reference to the listening socket while the accept is armed.
        if let Err(e) = unsafe { self.push(ring, &entry) } {
            self.peer_addrs.remove(id);
            return Err(e);
        }
        if let (Some(l), Some(r)) = (self.listeners.get_mut(listener), self.rings.get_mut(ring)) {
            r.table.reserved += 1;
            l.accept.singles += 1;
        }
        Ok(())
    }

    /// Cancels every accept in flight and closes the listening sockets.
    pub(super) fn cancel_accepts(&mut self) {
        for l in 0..self.listeners.len() {
            let Some(listener) = self.listeners.get_mut(l) else {
                continue;
            };
            listener.socket = None;
            let multishot = listener
                .accept
                .multishot
                .as_mut()
                .filter(|ms| !ms.cancelling);
            let multishot_ring = multishot.map(|ms| {
                ms.cancelling = true;
                ms.ring
            });
            // (A listener that wants peers has only accepts with address buffers, cancelled below.)
            let singles = listener.accept.singles > 0 && !listener.accept.want_peer;
            let refusing = std::mem::take(&mut listener.accept.refusing);
            let word = |multishot| {
                Op::Accept {
                    listener: l as u32,
                    multishot,
                }
                .encode()
            };
            let mut cancels: Vec<(usize, squeue::Entry)> = Vec::new();
            if let Some(ring) = multishot_ring {
                let entry = opcode::AsyncCancel::new(word(true)).build();
                cancels.push((ring, entry));
            }
            if refusing {
                let word = Op::Refuse { listener: l as u32 }.encode();
                cancels.push((0, opcode::AsyncCancel::new(word).build()));
            }
            if singles {
                for (ring, r) in self.rings.iter().enumerate() {
                    if r.table.reserved > 0 {
                        let builder = CancelBuilder::user_data(word(false)).all();
                        cancels.push((ring, opcode::AsyncCancel2::new(builder).build()));
                    }
                }
            }
            // Accepts with an address buffer each carry their own user data: cancel them one by
            // one. Their buffers stay in `peer_addrs` until the cancelled completions arrive.
            for (id, addr) in self.peer_addrs.iter() {
                if addr.listener as usize == l {
                    let word = Op::AcceptPeer { addr: id }.encode();
                    cancels.push((addr.ring, opcode::AsyncCancel::new(word).build()));
                }
            }
            for (ring, entry) in cancels {
                let entry = entry.user_data(Op::Cancel.encode());
                // SAFETY: a cancel uses no buffer.
                if let Err(e) = unsafe { self.push(ring, &entry) } {
                    log::warn!("accept cancel not queued: {e}");
                }
            }
        }
    }
}

/// The number of connections waiting in a listener's accept queue (TCP_INFO `tcpi_unacked` of a
/// listening socket), or 0 when unknown.
fn accept_queue_len(listener: &TcpListener) -> u32 {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a live tcp_info on this stack frame and `len` holds its size, so the kernel
    // writes at most that many bytes into it (and the written length into `len`).
    let res = crate::syscall!(getsockopt(
        listener.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_INFO,
        &mut info as *mut libc::tcp_info as *mut libc::c_void,
        &mut len,
    ));
    res.map_or(0, |_| info.tcpi_unacked)
}
