//! The completion backend: io_uring with direct descriptors, so one process can hold far more
//! connections than its open-file limit allows (a registered file table may hold up to the soft
//! RLIMIT_NOFILE entries, and there is no process-wide cap on tables).
//!
//! - Connections are accepted straight into direct descriptors (multishot accept with file-index
//!   allocation while a table has room, single-shot accepts that reserve a slot near the end; see
//!   `accept`). A listener that wants peer addresses gets single-shot accepts only, each writing
//!   the address into a buffer it owns until its completion. A [`ConnId`] names the ring and the
//!   index (see `table`). The capacity given to [`Uring::new`] is spread over as many rings as
//!   the per-table limit requires, each opened when the ones before it are nearly full (an idle
//!   server holds one); the first ring waits, and polls the other rings' file descriptors.
//! - An idle connection waits on a multishot poll (≈0.27 KB of kernel memory, against ≈0.8 KB for
//!   a posted read). When it is readable, one non-blocking receive into a per-worker receive buffer
//!   is issued and its bytes are lent to the worker.
//! - A flush moves the queued segments into a send record that owns them until its send
//!   completes (a plain Send of one buffer: the segment itself, or a copy of several small ones;
//!   a SendMsg of iovecs beyond 1 KiB); sends are queued during the turn and submitted together
//!   by the next wait.
//! - Every user-data word is a named layout (`user_data`); a completion whose slot generation moved
//!   on is dropped. A closed connection's operations are cancelled and its descriptor closed; its
//!   buffers live until their completions arrive.
//!
//! Depends on: engine (Backend, Token, Completion, OutQueue, sys), io-uring, libc.

mod accept;
mod buffers;
mod complete;
mod handover;
mod listeners;
mod read_queue;
mod ring;
mod table;
mod user_data;

use self::accept::{AcceptState, Action};
use self::buffers::{
    AdoptRecord, PeerAddrs, Prepared, RecvPool, SendRecord, SendSlab, Slab as Records,
};
use self::read_queue::{ReadClass, ReadQueues};
use self::ring::{soft_nofile_limit, table_sizes, Ring};
use self::table::{flag, split, SlotState, MAX_TABLE};
use self::user_data::Op;
use super::out::MAX_IOVECS;
use super::sys::{self, EventFd};
use super::{Backend, Completion, ConnId, Detach, Flush, OutQueue, ReadControl, Token};
use io_uring::types::{CancelBuilder, Fd, Fixed};
use io_uring::{cqueue, opcode, squeue};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default accept headroom: connections the kernel may accept into a ring between two turns of
/// the worker, after the ring's spare slots reached the point where its multishot accept is
/// cancelled. 4096 covers a 75 ms turn at the fastest ramp measured on the 2-core VM (≈54k
/// connections/s).
pub const DEFAULT_ACCEPT_HEADROOM: u32 = 4096;
/// Default [`UringConfig::open_next_table_below`]: more than a turn of the fastest connect ramp
/// measured takes (a table smaller than this is followed by the next one at once).
pub const DEFAULT_OPEN_NEXT_TABLE_BELOW: u32 = 4096;
/// How often the "every table is full" warning may be repeated.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long dropping the backend waits for the kernel to give back buffers of operations in flight.
const DROP_GRACE: Duration = Duration::from_secs(1);

/// How to build a [`Uring`].
#[derive(Clone, Debug)]
pub struct UringConfig {
    /// Connections this backend can hold at once, over all its tables.
    pub capacity: u32,
    /// Submission-queue entries per ring; each completion queue gets four times as many.
    pub entries: u32,
    /// Largest table per ring. `None`: the soft RLIMIT_NOFILE (the most the kernel allows).
    pub table_size: Option<u32>,
    /// Use multishot accepts while a ring has room (off by default). They are cheaper during a
    /// ramp, but the kernel runs them whenever the worker enters it, so a long loop turn (a
    /// million clients leaving at once) can let one take more connections than its table has
    /// slots, and the kernel closes the connection it took last. Off, every accept reserves its
    /// slot first: exact whatever the accept queue does.
    pub multishot_accept: bool,
    /// See [`DEFAULT_ACCEPT_HEADROOM`]. With `multishot_accept`, a multishot accept runs on a ring
    /// only while it has more spare slots than this; below, exact single-shot accepts fill it.
    pub accept_headroom: u32,
    /// Receive buffers per worker; at most this many receives are in flight at once.
    pub recv_buffers: u16,
    /// Bytes per receive buffer (one read of a request head should fit).
    pub recv_buffer_size: u32,
    /// The next table is opened once the open ones have fewer spare slots than this between
    /// them, so an idle server holds one table and its ring.
    pub open_next_table_below: u32,
}

impl UringConfig {
    /// Defaults for a backend holding `capacity` connections.
    pub fn new(capacity: u32) -> UringConfig {
        UringConfig {
            capacity,
            entries: 1024,
            table_size: None,
            multishot_accept: false,
            accept_headroom: DEFAULT_ACCEPT_HEADROOM,
            recv_buffers: 64,
            recv_buffer_size: 16 * 1024,
            open_next_table_below: DEFAULT_OPEN_NEXT_TABLE_BELOW,
        }
    }
}

/// A listening socket of the backend and the accepts it has in flight (armed, moved and cancelled
/// by `listeners`).
struct Listener {
    /// `None` once the backend stopped listening (the socket is closed).
    socket: Option<TcpListener>,
    tag: u32,
    accept: AcceptState,
}

/// The io_uring backend. One per worker thread.
pub struct Uring {
    rings: Vec<Ring>,
    /// Sizes of the tables still to open, the next one last.
    unopened: Vec<u32>,
    /// See [`UringConfig::open_next_table_below`].
    open_next_below: u32,
    /// Submission entries of each ring.
    entries: u32,
    listeners: Vec<Listener>,
    listening: bool,
    /// Occupancy or listener state changed: the accept plan must run again.
    accepts_dirty: bool,
    headroom: u32,
    capacity: u32,
    /// When the "every table is full" warning was last logged (at most once per
    /// [`FULL_LOG_EVERY`]: at the limit, tables fill and free many times a second).
    full_logged: Option<Instant>,
    /// Accepts that completed with an error other than a cancellation (for the metrics).
    accept_errors: u64,
    recv: RecvPool,
    sends: SendSlab,
    /// Address buffers of single-shot accepts in flight on listeners that want peer addresses.
    peer_addrs: PeerAddrs,
    /// Handed-over sockets being registered into a table (see `handover`).
    adopting: Records<AdoptRecord>,
    /// Connections to receive from when a receive buffer is free, live ones first (`read_queue`).
    want_read: ReadQueues,
    cqes: Vec<cqueue::Entry>,
    actions: Vec<Action>,
    waker: Arc<EventFd>,
}

impl Uring {
    /// Sets up `ceil(capacity / table size)` rings with sparse file tables, the receive buffers
    /// and the waker. Fails when io_uring is unavailable (see [`crate::engine::probe`]).
    pub fn new(config: UringConfig) -> io::Result<Uring> {
        let per_table = config
            .table_size
            .unwrap_or(u32::MAX)
            .min(soft_nofile_limit())
            .min(MAX_TABLE);
        let sizes = table_sizes(config.capacity, per_table);
        if sizes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "capacity {} needs more than {} tables of {per_table}",
                    config.capacity,
                    table::MAX_RINGS
                ),
            ));
        }
        let entries = config.entries.max(8);
        let capacity = sizes.iter().sum();
        let mut unopened = sizes;
        unopened.reverse();
        let first = unopened.pop().unwrap_or(1);
        let rings = vec![Ring::new(entries, first)?];
        let mut backend = Uring {
            rings,
            unopened,
            open_next_below: config.open_next_table_below,
            entries,
            listeners: Vec::new(),
            listening: true,
            accepts_dirty: false,
            // Without multishot accepts no ring ever has room for one.
            headroom: if config.multishot_accept {
                config.accept_headroom.max(1)
            } else {
                u32::MAX
            },
            capacity,
            full_logged: None,
            accept_errors: 0,
            recv: RecvPool::new(config.recv_buffers, config.recv_buffer_size),
            sends: SendSlab::default(),
            peer_addrs: PeerAddrs::default(),
            adopting: Records::default(),
            want_read: ReadQueues::default(),
            cqes: Vec::new(),
            actions: Vec::new(),
            waker: Arc::new(EventFd::new()?),
        };
        backend.arm_waker()?;
        backend.open_tables_as_needed();
        Ok(backend)
    }

    /// Opens the next tables while the open ones have fewer than `open_next_table_below` spare
    /// slots between them. A table the kernel refuses (out of memory, say) is given up with the
    /// rest of the plan: the capacity shrinks to the tables open, and the log says so.
    fn open_tables_as_needed(&mut self) {
        while !self.unopened.is_empty() {
            let spare: u32 = self.rings.iter().map(|r| r.table.spare()).sum();
            if spare >= self.open_next_below {
                return;
            }
            let Some(size) = self.unopened.pop() else {
                return;
            };
            let opened = Ring::new(self.entries, size).and_then(|ring| {
                self.rings.push(ring);
                self.arm_ring_ready(self.rings.len() - 1)
            });
            if let Err(e) = opened {
                let lost = size + self.unopened.iter().sum::<u32>();
                self.unopened.clear();
                self.capacity = self.capacity.saturating_sub(lost);
                log::error!(
                    "io_uring: a connection table could not be opened ({e}): this worker holds \
                     at most {} connections",
                    self.capacity
                );
                return;
            }
            self.accepts_dirty = true;
        }
    }

    /// Connections this backend can hold (the sum of its table sizes).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Registered file tables (one ring each) the capacity needs, open or not yet.
    pub fn tables(&self) -> usize {
        self.rings.len() + self.unopened.len()
    }

    /// Tables open so far (each opened when the ones before it are nearly full).
    pub fn tables_open(&self) -> usize {
        self.rings.len()
    }

    /// The table (ring) a connection's direct descriptor lives in.
    pub fn table_of(conn: ConnId) -> usize {
        split(conn).0
    }

    /// Operations in flight that own memory the kernel may still write or read.
    fn buffers_in_flight(&self) -> usize {
        self.recv.in_flight()
            + self.sends.in_flight()
            + self.peer_addrs.in_flight()
            + self.adopting.in_flight()
    }

    /// Queues an operation on ring `ring`.
    ///
    /// # Safety
    /// Every buffer and descriptor the entry points to must stay valid until its completion.
    unsafe fn push(&mut self, ring: usize, entry: &squeue::Entry) -> io::Result<()> {
        let ring = self
            .rings
            .get_mut(ring)
            .ok_or_else(|| io::Error::other("no such ring"))?;
        // SAFETY: forwarded from the caller.
        unsafe { ring.push(entry) }
    }

    fn arm_waker(&mut self) -> io::Result<()> {
        let entry = opcode::PollAdd::new(Fd(self.waker.raw()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(Op::Waker.encode());
        // SAFETY: the poll uses no buffer; the eventfd lives as long as `self.waker`, and the
        // kernel holds its own file reference while the poll is armed.
        unsafe { self.push(0, &entry) }
    }

    fn arm_ring_ready(&mut self, ring: usize) -> io::Result<()> {
        let Some(fd) = self.rings.get(ring).map(Ring::fd) else {
            return Ok(());
        };
        let entry = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(Op::RingReady { ring: ring as u32 }.encode());
        // SAFETY: the poll uses no buffer; the polled ring is owned by `self.rings`, and the
        // kernel holds its own file reference while the poll is armed.
        unsafe { self.push(0, &entry) }
    }

    /// Arms the multishot readiness poll of an attached connection.
    fn arm_poll(&mut self, conn: ConnId, generation: u32) -> io::Result<()> {
        let (ring, index) = split(conn);
        let events = (libc::POLLIN | libc::POLLRDHUP) as u32;
        let entry = opcode::PollAdd::new(Fixed(index), events)
            .multi(true)
            .build()
            .user_data(Op::Poll { conn, generation }.encode());
        // SAFETY: the poll uses no buffer; the descriptor stays registered until the close,
        // which cancels the poll first.
        unsafe { self.push(ring, &entry) }
    }

    /// Issues receives for connections waiting for one, while receive buffers are free, in the
    /// order of `read_queue` (live connections, then new ones, then those that hung up).
    fn start_reads(&mut self) {
        for _ in 0..self.want_read.len() {
            if !self.recv.has_free() {
                return;
            }
            let Some((class, next)) = self.want_read.pop() else {
                return;
            };
            let (conn, generation) = next;
            let (r, index) = split(conn);
            let Some(ring) = self.rings.get_mut(r) else {
                continue;
            };
            let Some(slot) = ring.table.get_mut(index) else {
                continue;
            };
            let ready =
                slot.attached() && !slot.any(flag::READING | flag::PAUSED | flag::PEER_CLOSED);
            if !ready || !user_data::same_generation(slot.generation, generation) {
                continue;
            }
            let Some((buffer, ptr, len)) = self.recv.take(conn, slot.generation) else {
                self.want_read.push_front(class, next);
                return;
            };
            let entry = opcode::Recv::new(Fixed(index), ptr, len)
                .flags(libc::MSG_DONTWAIT)
                .build()
                .user_data(Op::Recv { buffer }.encode());
            slot.set(flag::READING, true);
            // SAFETY: the buffer belongs to the receive pool and is not lent out again until
            // this receive's completion releases it; the descriptor stays registered until the
            // connection's close, which cancels this receive first.
            match unsafe { ring.push(&entry) } {
                Ok(()) => {}
                Err(e) => {
                    log::warn!("receive not queued: {e}");
                    if let Some(slot) = ring.table.get_mut(index) {
                        slot.set(flag::READING, false);
                    }
                    self.recv.release(buffer);
                    self.want_read.push(class, next);
                    return;
                }
            }
        }
    }

    /// Queues the send of record `id` (first send or the rest after a short one).
    fn submit_send(&mut self, id: u32) -> io::Result<()> {
        let record = self
            .sends
            .get_mut(id)
            .ok_or_else(|| io::Error::other("no such send"))?;
        let (ring, index) = split(record.conn);
        let entry = match record.prepare() {
            Prepared::Msg(msg) => opcode::SendMsg::new(Fixed(index), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
            Prepared::Flat(ptr, len) => opcode::Send::new(Fixed(index), ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
        }
        .user_data(Op::Send { record: id }.encode());
        // SAFETY: the record is boxed in `self.sends` and is removed only when this send's
        // completion arrives (or, at drop, after the kernel gave it back); its msghdr, iovecs,
        // copied bytes and segments stay put meanwhile (see `SendRecord`'s invariant).
        unsafe { self.push(ring, &entry) }
    }

    /// Cancels what is pending on a connection, then closes its descriptor (linked, so the close
    /// runs even when there was nothing to cancel). The slot stays Closing until the close completes.
    fn close_slot(&mut self, conn: ConnId) {
        let (r, index) = split(conn);
        let Some(ring) = self.rings.get_mut(r) else {
            return;
        };
        let Some(slot) = ring.table.get_mut(index) else {
            return;
        };
        slot.state = SlotState::Closing;
        let generation = slot.generation;
        // Cancelling by descriptor makes the kernel walk every pending request of the ring, so a
        // mass disconnect of N connections cost N² (25 s for 100,000). The readiness poll is
        // cancelled by its own user data instead, a hash lookup. Receives never wait (they are
        // MSG_DONTWAIT); only a send still in flight (a slow reader) needs the full sweep.
        let target = if slot.has(flag::SENDING) {
            CancelBuilder::fd(Fixed(index)).all()
        } else {
            CancelBuilder::user_data(Op::Poll { conn, generation }.encode())
        };
        let cancel = opcode::AsyncCancel2::new(target)
            .build()
            .flags(squeue::Flags::IO_HARDLINK)
            .user_data(Op::Cancel.encode());
        let close = opcode::Close::new(Fixed(index))
            .build()
            .user_data(Op::Close { conn, generation }.encode());
        // SAFETY: neither operation uses a buffer; the operations they cancel keep their own
        // buffers (receive pool, send records) until their completions arrive.
        if let Err(e) = unsafe { ring.push_pair(&cancel, &close) } {
            log::error!("close of connection {conn:?} not queued, its slot stays taken: {e}");
        }
    }
}

impl Backend for Uring {
    fn listen(&mut self, listener: TcpListener, tag: u32, want_peer: bool) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        // Accepted sockets inherit TCP_NODELAY from the listener; a direct descriptor cannot be
        // given socket options by an ordinary syscall.
        sys::set_nodelay(listener.as_raw_fd());
        self.listeners.push(Listener {
            socket: Some(listener),
            tag,
            accept: AcceptState {
                want_peer,
                ..AcceptState::default()
            },
        });
        self.accepts_dirty = true;
        Ok(())
    }

    fn attach(&mut self, conn: ConnId, token: Token) -> io::Result<()> {
        let (r, index) = split(conn);
        let slot = self
            .rings
            .get_mut(r)
            .and_then(|ring| ring.table.get_mut(index))
            .filter(|slot| slot.state == SlotState::Accepted)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no accepted connection"))?;
        slot.state = SlotState::Attached;
        slot.token = token;
        slot.set(flag::SPOKEN, false);
        let generation = slot.generation;
        self.arm_poll(conn, generation)
    }

    fn flush(&mut self, conn: ConnId, token: Token, out: &mut OutQueue) -> io::Result<Flush> {
        let (r, index) = split(conn);
        let slot = self
            .rings
            .get_mut(r)
            .and_then(|ring| ring.table.get_mut(index))
            .filter(|slot| slot.attached() && slot.token == token)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not attached"))?;
        if slot.has(flag::SENDING) {
            return Ok(Flush::Pending);
        }
        if out.is_empty() {
            return Ok(Flush::Done);
        }
        let record = SendRecord::new(conn, slot.generation, out.take_front(MAX_IOVECS));
        let id = self.sends.insert(record);
        if let Err(e) = self.submit_send(id) {
            self.sends.remove(id);
            return Err(e);
        }
        if let Some(slot) = self.rings.get_mut(r).and_then(|r| r.table.get_mut(index)) {
            slot.set(flag::SENDING, true);
        }
        Ok(Flush::Pending)
    }

    fn resume(&mut self, conn: ConnId, token: Token) {
        let (r, index) = split(conn);
        let Some(slot) = self.rings.get_mut(r).and_then(|r| r.table.get_mut(index)) else {
            return;
        };
        if slot.attached() && slot.token == token && slot.has(flag::PAUSED) {
            slot.set(flag::PAUSED, false);
            self.want_read
                .push(ReadClass::Live, (conn, slot.generation));
        }
    }

    fn close(&mut self, conn: ConnId, token: Token) {
        let (r, index) = split(conn);
        let Some(slot) = self.rings.get(r).and_then(|r| r.table.get(index)) else {
            return;
        };
        let closable = match slot.state {
            SlotState::Accepted => true,
            SlotState::Attached => slot.token == token,
            SlotState::Free | SlotState::Closing => false,
        };
        if closable {
            self.close_slot(conn);
        }
    }

    fn stop_listening(&mut self) {
        self.listening = false;
        self.cancel_accepts();
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut dyn FnMut(Completion<'_>) -> ReadControl,
    ) -> io::Result<()> {
        self.recv.trim_idle(Instant::now());
        self.open_tables_as_needed();
        self.start_reads();
        if self.accepts_dirty {
            self.plan_accepts();
        }
        let mut busy = false;
        for ring in self.rings.iter_mut().skip(1) {
            if ring.pending {
                ring.submit()?;
            }
            busy |= ring.has_completions();
        }
        let timeout = if busy { Some(Duration::ZERO) } else { timeout };
        if let Some(first) = self.rings.first_mut() {
            first.submit_and_wait(timeout)?;
        }
        for ring in 0..self.rings.len() {
            self.drain_ring(ring, handler);
        }
        // Arm or cancel accepts at once: a cancel that waits a whole turn eats into the headroom.
        if self.accepts_dirty && self.plan_accepts() {
            for ring in self.rings.iter_mut().filter(|r| r.pending) {
                ring.submit()?;
            }
        }
        Ok(())
    }

    fn can_detach(&self) -> bool {
        true
    }

    fn accept_errors(&self) -> u64 {
        self.accept_errors
    }

    fn detach(&mut self, conn: ConnId, token: Token) -> Detach {
        self.start_detach(conn, token)
    }

    fn adopt(&mut self, socket: OwnedFd, tag: u64) -> io::Result<Option<ConnId>> {
        self.start_adopt(socket, tag)
    }

    fn waker(&self) -> Arc<EventFd> {
        Arc::clone(&self.waker)
    }
}

impl Drop for Uring {
    /// Cancels every operation and waits (briefly) until the kernel gave back the buffers of
    /// receives, sends and accepts in flight. Whatever it did not give back in time is leaked,
    /// never freed under the kernel.
    fn drop(&mut self) {
        for ring in &mut self.rings {
            let entry = opcode::AsyncCancel2::new(CancelBuilder::any())
                .build()
                .user_data(Op::Cancel.encode());
            // SAFETY: a cancel uses no buffer.
            if unsafe { ring.push(&entry) }.is_ok() {
                let _ = ring.submit();
            }
        }
        let deadline = Instant::now() + DROP_GRACE;
        let mut cqes = Vec::new();
        while self.buffers_in_flight() > 0 && Instant::now() < deadline {
            for ring in &mut self.rings {
                cqes.clear();
                ring.drain(&mut cqes);
                for cqe in &cqes {
                    match Op::decode(cqe.user_data()) {
                        Some(Op::Recv { buffer }) => self.recv.release(buffer),
                        Some(Op::Send { record }) => drop(self.sends.remove(record)),
                        Some(Op::AcceptPeer { addr }) => drop(self.peer_addrs.remove(addr)),
                        Some(Op::Adopt { record }) => drop(self.adopting.remove(record)),
                        _ => {}
                    }
                }
            }
            if let Some(first) = self.rings.first_mut() {
                let _ = first.submit_and_wait(Some(Duration::from_millis(5)));
            }
        }
        if self.buffers_in_flight() > 0 {
            log::error!("io_uring operations still in flight at shutdown: leaking their buffers");
            std::mem::forget(std::mem::take(&mut self.recv));
            std::mem::forget(std::mem::take(&mut self.sends));
            std::mem::forget(std::mem::take(&mut self.peer_addrs));
            std::mem::forget(std::mem::take(&mut self.adopting));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_can_move_to_its_worker_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Uring>();
    }

    #[test]
    fn the_default_config_takes_its_tables_from_the_open_file_limit() {
        let config = UringConfig::new(1_000_000);
        assert_eq!(config.table_size, None);
        assert_eq!(config.accept_headroom, DEFAULT_ACCEPT_HEADROOM);
        let per_table = soft_nofile_limit().min(MAX_TABLE);
        let tables = table_sizes(config.capacity, per_table);
        assert_eq!(tables.iter().sum::<u32>(), 1_000_000);
        assert!(tables.iter().all(|&size| size <= per_table));
    }
}
