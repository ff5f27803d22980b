//! The readiness backend: one edge-triggered epoll instance per worker. Each connection is
//! registered once for input, output and peer hang-up and never modified again (no epoll_ctl per
//! message); readable sockets are drained into one per-worker scratch buffer that is lent to the
//! handler, so idle connections own no buffer.
//!
//! Out of file descriptors (EMFILE/ENFILE), a connection would wait in the accept queue, its client
//! left hanging, and the edge-triggered listener would not report it again. So each backend keeps
//! one spare descriptor (`/dev/null`): it gives it up, accepts the connection, closes it at once
//! (a [`Completion::Refused`]), and takes the spare back, until the queue is empty.
//!
//! A peer's hang-up is read (its last bytes, then the end of file) only after every other event
//! of the turn, at most [`HANGUPS_PER_TURN`] a turn: the edge of each of the ten thousand sockets
//! of a mass disconnect is kept in a queue, so a client still talking never waits behind them.
//!
//! Depends on: engine (Token, Completion, OutQueue), sys, slab (the per-slot table), libc.

use super::out::MAX_IOVECS;
use super::sys::{self, EventFd};
use super::{Backend, Completion, ConnId, Detach, Flush, OutQueue, ReadControl, Token};
use crate::slab::ChunkTable;
use crate::syscall;
use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Size of the per-worker read buffer. One read of a whole 64 KiB request head fits.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Events taken from the kernel per wait.
const EVENTS_PER_WAIT: usize = 1024;
/// Reads of one connection per turn before it yields to the others (fairness under floods).
const READS_PER_TURN: usize = 8;
/// Accepts per listener per turn before the other events get their turn.
const ACCEPTS_PER_TURN: usize = 512;
/// Hung-up connections read per turn (see the module doc).
const HANGUPS_PER_TURN: usize = 64;

pub struct Epoll {
    epfd: OwnedFd,
    listeners: Vec<(TcpListener, u32)>,
    listening: bool,
    waker: Arc<EventFd>,
    events: Vec<libc::epoll_event>,
    scratch: Box<[u8]>,
    /// Connections with input that was not read yet (yielded, or resumed after a pause).
    ready: Vec<(ConnId, Token)>,
    /// Listeners whose accept queue may still hold connections.
    ready_listeners: Vec<usize>,
    /// The fd and token generation of each attached slot (epoll user data carries the token, not
    /// the fd).
    attached: ChunkTable<Attached>,
    /// Connections whose peer hung up, oldest first, read [`HANGUPS_PER_TURN`] a turn.
    hangups: VecDeque<(ConnId, Token)>,
    /// Slots whose handler returned Pause: their input waits in the kernel until resume.
    paused: Vec<bool>,
    /// Accepting failed for lack of descriptors or memory: try again at this instant.
    accept_paused_until: Option<Instant>,
    /// The current accept-failure episode was logged.
    accept_failing: bool,
    /// Accepts that failed (for the metrics).
    accept_errors: u64,
    /// The spare descriptor given up to refuse a connection when none is left (`None`: it could
    /// not be taken back yet).
    spare_fd: Option<OwnedFd>,
}

/// What the backend remembers about one worker slot.
#[derive(Clone, Copy, Debug)]
struct Attached {
    /// The connection's descriptor, or -1 when the slot has none attached.
    fd: RawFd,
    /// The token generation it was attached under, so a queued hang-up of a connection that is
    /// gone is never read from the next one in its slot (which may even have the same fd).
    generation: u32,
}

impl Default for Attached {
    fn default() -> Attached {
        Attached {
            fd: -1,
            generation: 0,
        }
    }
}

/// A descriptor to hold in reserve (`/dev/null`, read-only, close-on-exec).
fn open_spare() -> Option<OwnedFd> {
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

/// How long accepting pauses after it failed for lack of descriptors or memory.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes only a flags word and touches no memory of ours.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: epoll_create1 just returned this fd and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let waker = Arc::new(EventFd::new()?);
        let backend = Epoll {
            epfd,
            listeners: Vec::new(),
            listening: true,
            waker,
            events: Vec::with_capacity(EVENTS_PER_WAIT),
            scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
            ready: Vec::new(),
            ready_listeners: Vec::new(),
            attached: ChunkTable::new(),
            hangups: VecDeque::new(),
            paused: Vec::new(),
            accept_paused_until: None,
            accept_failing: false,
            accept_errors: 0,
            spare_fd: open_spare(),
        };
        // Edge-triggered: every write to an eventfd is a new edge, so the counter need not be
        // read back (one system call less per wake-up; `EventFd::wake` resets a full counter).
        let waker_fd = backend.waker.raw();
        backend.ctl(
            libc::EPOLL_CTL_ADD,
            waker_fd,
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            Token::WAKER,
        )?;
        Ok(backend)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a live, initialised epoll_event on this stack frame that the kernel only
        // reads during the call; `epfd` is the epoll fd this backend owns.
        syscall!(epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev))?;
        Ok(())
    }

    /// Accepts until the queue is empty or the per-turn budget is spent.
    fn accept_from(
        &mut self,
        index: usize,
        handler: &mut dyn FnMut(Completion<'_>) -> ReadControl,
    ) {
        let Some((listener, tag)) = self.listeners.get(index) else {
            return;
        };
        let (fd, tag) = (listener.as_raw_fd(), *tag);
        for _ in 0..ACCEPTS_PER_TURN {
            match sys::accept(fd) {
                Ok(Some((conn, peer))) => {
                    handler(Completion::Accepted {
                        listener: tag,
                        conn: ConnId(conn as u32),
                        peer,
                    });
                }
                Ok(None) => {
                    self.accept_failing = false;
                    return;
                }
                Err(e) => {
                    self.accept_errors += 1;
                    if sys::out_of_descriptors(&e) {
                        match self.refuse(fd, tag, handler) {
                            Some(true) => {
                                if !self.accept_failing {
                                    log::warn!("{e}: refusing new connections");
                                }
                                self.accept_failing = true;
                                continue;
                            }
                            // The queue is empty: the next connection is reported again.
                            Some(false) => return,
                            None => {}
                        }
                    }
                    // EMFILE/ENFILE/ENOBUFS: the connection stays queued in the kernel. Retrying
                    // every turn would spin (and flood the log), so accepting pauses briefly;
                    // the first failure of an episode is logged.
                    if !self.accept_failing {
                        log::warn!("accept failed: {e}; retrying every {ACCEPT_RETRY:?}");
                    }
                    self.accept_failing = true;
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
        if !self.ready_listeners.contains(&index) {
            self.ready_listeners.push(index);
        }
    }

    /// Refuses the connection at the head of listener `fd`'s queue in the spare descriptor's
    /// room, then takes the spare back (or again at the next retry). `Some(true)`: one was
    /// refused; `Some(false)`: the queue is empty; `None`: no spare, or the accept failed anyway.
    fn refuse(
        &mut self,
        fd: RawFd,
        tag: u32,
        handler: &mut dyn FnMut(Completion<'_>) -> ReadControl,
    ) -> Option<bool> {
        drop(self.spare_fd.take()?);
        let refused = sys::refuse_one(fd).ok();
        self.spare_fd = open_spare();
        if refused == Some(true) {
            handler(Completion::Refused { listener: tag });
        }
        refused
    }

    /// Reads a connection until the kernel has nothing more, the handler pauses it, or it used up
    /// its share of this turn (then it is queued to continue next turn).
    fn read_from(
        &mut self,
        conn: ConnId,
        token: Token,
        handler: &mut dyn FnMut(Completion<'_>) -> ReadControl,
    ) {
        if self.is_paused(token) {
            return;
        }
        for _ in 0..READS_PER_TURN {
            // SAFETY: `scratch` is a boxed slice this backend owns, borrowed exclusively here, and
            // the kernel writes at most `scratch.len()` bytes from its start.
            let res = syscall!(read(
                conn.0 as RawFd,
                self.scratch.as_mut_ptr() as *mut libc::c_void,
                self.scratch.len()
            ));
            match res {
                Ok(0) => {
                    handler(Completion::PeerClosed { token });
                    return;
                }
                Ok(n) => {
                    let n = n as usize;
                    let bytes = &self.scratch[..n];
                    if handler(Completion::Data { token, bytes }) == ReadControl::Pause {
                        self.set_paused(token, true);
                        return;
                    }
                    if n < self.scratch.len() {
                        // A short read almost always means the socket is drained; one more read
                        // would just return EAGAIN. Edge-triggered epoll reports new data anyway.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    handler(Completion::PeerClosed { token });
                    return;
                }
            }
        }
        self.ready.push((conn, token));
    }
}

impl Epoll {
    /// Reads up to [`HANGUPS_PER_TURN`] queued hang-ups of connections still attached.
    fn read_hangups(&mut self, handler: &mut dyn FnMut(Completion<'_>) -> ReadControl) {
        for _ in 0..HANGUPS_PER_TURN {
            let Some((conn, token)) = self.hangups.pop_front() else {
                return;
            };
            let slot = token.slot as usize;
            let attached = self
                .attached
                .get(slot)
                .is_some_and(|a| a.fd == conn.0 as RawFd && a.generation == token.generation);
            if attached {
                self.read_from(conn, token, handler);
            }
        }
    }

    fn is_paused(&self, token: Token) -> bool {
        self.paused
            .get(token.slot as usize)
            .copied()
            .unwrap_or(false)
    }

    fn set_paused(&mut self, token: Token, paused: bool) {
        let slot = token.slot as usize;
        if paused && self.paused.len() <= slot {
            self.paused.resize(slot + 1, false);
        }
        if let Some(flag) = self.paused.get_mut(slot) {
            *flag = paused;
        }
    }
}

impl Backend for Epoll {
    /// Every accept returns the peer address here, so `want_peer` changes nothing.
    fn listen(&mut self, listener: TcpListener, tag: u32, _want_peer: bool) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let index = self.listeners.len();
        self.ctl(
            libc::EPOLL_CTL_ADD,
            listener.as_raw_fd(),
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            Token::listener_word(index),
        )?;
        self.listeners.push((listener, tag));
        Ok(())
    }

    fn attach(&mut self, conn: ConnId, token: Token) -> io::Result<()> {
        let slot = token.slot as usize;
        *self.attached.grow_to(slot) = Attached {
            fd: conn.0 as RawFd,
            generation: token.generation,
        };
        self.set_paused(token, false);
        let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        self.ctl(
            libc::EPOLL_CTL_ADD,
            conn.0 as RawFd,
            events as u32,
            token.pack(),
        )
    }

    fn flush(&mut self, conn: ConnId, _token: Token, out: &mut OutQueue) -> io::Result<Flush> {
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        while !out.is_empty() {
            let count = out.iovecs(&mut iov);
            // SAFETY: the first `count` (<= MAX_IOVECS) entries of `iov` were just filled by
            // `iovecs`, each a pointer and length into a segment of `out`, which is not touched
            // until the call returns; the kernel only reads them.
            let res = syscall!(writev(conn.0 as RawFd, iov.as_ptr(), count as libc::c_int));
            match res {
                Ok(n) => out.advance(n as usize),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Flush::Done)
    }

    fn resume(&mut self, conn: ConnId, token: Token) {
        self.set_paused(token, false);
        if !self.ready.iter().any(|(_, t)| *t == token) {
            self.ready.push((conn, token));
        }
    }

    fn close(&mut self, conn: ConnId, token: Token) {
        self.ready.retain(|(_, t)| *t != token);
        if let Some(a) = self.attached.get_mut(token.slot as usize) {
            a.fd = -1;
        }
        self.set_paused(token, false);
        // Closing the fd also removes it from the epoll set.
        sys::close_fd(conn.0 as RawFd);
    }

    fn can_detach(&self) -> bool {
        true
    }

    fn accept_errors(&self) -> u64 {
        self.accept_errors
    }

    /// The fd is process-wide: taking it out of this epoll set is all a hand-over needs. Input
    /// already waiting in the kernel is reported by the adopting epoll as soon as it registers it.
    fn detach(&mut self, conn: ConnId, token: Token) -> Detach {
        self.ready.retain(|(_, t)| *t != token);
        if let Some(a) = self.attached.get_mut(token.slot as usize) {
            a.fd = -1;
        }
        self.set_paused(token, false);
        let _ = self.ctl(libc::EPOLL_CTL_DEL, conn.0 as RawFd, 0, 0);
        // SAFETY: the fd was accepted by this backend and attached under `token`; its slot entry
        // was just cleared, so nothing here uses or closes it again and the caller owns it now.
        Detach::Now(unsafe { OwnedFd::from_raw_fd(conn.0 as RawFd) })
    }

    fn adopt(&mut self, socket: OwnedFd, _tag: u64) -> io::Result<Option<ConnId>> {
        Ok(Some(ConnId(socket.into_raw_fd() as u32)))
    }

    fn stop_listening(&mut self) {
        for (listener, _) in &self.listeners {
            let _ = self.ctl(libc::EPOLL_CTL_DEL, listener.as_raw_fd(), 0, 0);
        }
        self.listeners.clear();
        self.ready_listeners.clear();
        self.listening = false;
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut dyn FnMut(Completion<'_>) -> ReadControl,
    ) -> io::Result<()> {
        if let Some(until) = self.accept_paused_until {
            if Instant::now() >= until {
                self.accept_paused_until = None;
                if self.spare_fd.is_none() {
                    self.spare_fd = open_spare();
                }
                for index in 0..self.listeners.len() {
                    if !self.ready_listeners.contains(&index) {
                        self.ready_listeners.push(index);
                    }
                }
            }
        }
        let has_backlog =
            !self.ready.is_empty() || !self.ready_listeners.is_empty() || !self.hangups.is_empty();
        let timeout = match self.accept_paused_until {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                Some(timeout.map_or(left, |t| t.min(left)))
            }
            None => timeout,
        };
        let timeout_ms = match timeout {
            _ if has_backlog => 0,
            None => -1,
            Some(d) => d.as_millis().min(i32::MAX as u128) as i32,
        };
        // Work carried over from the last turn runs first, before new events are taken.
        for index in std::mem::take(&mut self.ready_listeners) {
            if self.listening && self.accept_paused_until.is_none() {
                self.accept_from(index, handler);
            }
        }
        for (conn, token) in std::mem::take(&mut self.ready) {
            self.read_from(conn, token, handler);
        }
        self.events.clear();
        // SAFETY: `events` was allocated with a capacity of at least EVENTS_PER_WAIT entries and
        // is borrowed exclusively here; the kernel writes at most that many from its start.
        let n = match syscall!(epoll_wait(
            self.epfd.as_raw_fd(),
            self.events.as_mut_ptr(),
            EVENTS_PER_WAIT as libc::c_int,
            timeout_ms
        )) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        // SAFETY: epoll_wait initialised the first n entries, n <= capacity.
        unsafe { self.events.set_len(n) };
        for i in 0..n {
            let ev = self.events[i];
            let (bits, word) = (ev.events, ev.u64);
            if word == Token::WAKER {
                handler(Completion::Wake);
                continue;
            }
            let token = Token::unpack(word);
            if token.slot >= Token::RESERVED_SLOTS {
                let index = (u64::MAX - 1 - word) as usize;
                if self.listening && self.accept_paused_until.is_none() {
                    self.accept_from(index, handler);
                }
                continue;
            }
            let Some(&Attached { fd, .. }) = self.attached.get(token.slot as usize) else {
                continue;
            };
            if fd < 0 {
                continue;
            }
            if bits & (libc::EPOLLOUT as u32) != 0 {
                handler(Completion::Writable { token });
            }
            let hangup = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
            if bits & hangup != 0 {
                self.hangups.push_back((ConnId(fd as u32), token));
            } else if bits & (libc::EPOLLIN as u32) != 0 {
                self.read_from(ConnId(fd as u32), token, handler);
            }
        }
        self.read_hangups(handler);
        Ok(())
    }

    fn waker(&self) -> Arc<EventFd> {
        Arc::clone(&self.waker)
    }
}
