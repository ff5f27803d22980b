//! The engine: file descriptors, tokens and bytes — nothing of HTTP or channels.
//!
//! A worker owns one [`Backend`]. It hands the backend its listeners and accepted connections, and
//! the backend reports what happened through [`Completion`]s passed to a handler during
//! [`Backend::wait`]. Reads land in memory the backend owns (a per-worker scratch buffer for epoll,
//! a per-worker pool of receive buffers for io_uring) and are lent to the handler for the duration
//! of the call, so an idle connection owns no buffer anywhere. Output is described by an [`OutQueue`] the worker
//! owns; the backend sends from it and, for completion backends, keeps the bytes alive until the
//! kernel is done with them.
//!
//! Depends on: libc, socket2, io-uring. Nothing else in the crate.

pub mod append_buf;
pub mod epoll;
pub mod out;
pub mod probe;
pub mod sys;
pub mod uring;

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

pub use out::OutQueue;

/// Names a connection slot in the worker: slot index plus the generation of the slot when the
/// connection was attached. A completion for a slot whose generation moved on is stale and dropped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Token {
    pub slot: u32,
    pub generation: u32,
}

impl Token {
    /// Packs the token into the 64-bit user data word of epoll and io_uring.
    pub fn pack(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.slot)
    }

    /// Slots at or above this index are never handed out: their user-data words name the waker and
    /// the listeners instead.
    pub const RESERVED_SLOTS: u32 = 0x8000_0000;

    /// The user-data word of the cross-core waker.
    pub const WAKER: u64 = u64::MAX;

    /// The user-data word of listener number `index`.
    pub fn listener_word(index: usize) -> u64 {
        u64::MAX - 1 - index as u64
    }

    pub fn unpack(word: u64) -> Token {
        Token {
            slot: word as u32,
            generation: (word >> 32) as u32,
        }
    }
}

/// The backend's handle for a connection: a plain fd for epoll, a direct-descriptor index for
/// io_uring. Opaque to everything above the engine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnId(pub u32);

/// What a handler tells the backend after it was given bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReadControl {
    /// Keep delivering whatever arrives on this connection.
    Continue,
    /// Stop reading this connection until [`Backend::resume`] (back-pressure or a closing slot).
    Pause,
}

/// One event reported by [`Backend::wait`].
#[derive(Debug)]
pub enum Completion<'a> {
    /// A new connection arrived on the listener registered with `listener` as its tag. `peer` is
    /// the client's address; it is always known when the listener was registered with `want_peer`
    /// (see [`Backend::listen`]), and may be `None` otherwise.
    Accepted {
        listener: u32,
        conn: ConnId,
        peer: Option<SocketAddr>,
    },
    /// Bytes arrived on a connection. The slice is only valid during the call.
    Data { token: Token, bytes: &'a [u8] },
    /// The peer closed its side (EOF, reset or error). The connection stays attached until the worker
    /// calls [`Backend::close`].
    PeerClosed { token: Token },
    /// The connection can take more output: the worker should flush it again.
    Writable { token: Token },
    /// The cross-core waker fired: the worker should drain its mailbox.
    Wake,
    /// A connection on the listener tagged `listener` was closed at once, unserved, because the
    /// backend had no room for it (epoll: the process is out of file descriptors; io_uring: every
    /// direct-descriptor table is full). The client sees its connection closed; nothing waits.
    Refused { listener: u32 },
    /// A [`Detach::Later`] finished: the connection's socket as an ordinary descriptor (`None`:
    /// it could not be had; the connection is unchanged).
    Detached {
        token: Token,
        socket: Option<OwnedFd>,
    },
    /// An adoption that returned `None` finished: the connection to attach (`None`: it failed and
    /// the socket is closed).
    Adopted { tag: u64, conn: Option<ConnId> },
}

/// How a hand-over of a socket started (see [`Backend::detach`]).
#[derive(Debug)]
pub enum Detach {
    /// Done: the socket, no longer watched by this backend.
    Now(OwnedFd),
    /// A [`Completion::Detached`] follows.
    Later,
    /// This backend (or this connection, now) cannot hand its socket over; nothing changed.
    Unsupported,
}

/// How a flush went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flush {
    /// Everything queued was handed to the kernel and no send is in flight (for io_uring: every
    /// send completed), so the worker may drop the queue or close the connection.
    Done,
    /// Some bytes remain queued or in flight; a [`Completion::Writable`] follows when more can be
    /// sent, and the worker flushes again then.
    Pending,
}

/// The small interface every engine backend implements. Everything about HTTP and comet lives above.
pub trait Backend {
    /// Watches a listening socket; accepted connections are reported with `tag`. With `want_peer`
    /// every [`Completion::Accepted`] of this listener carries the client's address (epoll always
    /// knows it; io_uring then accepts one connection per operation, which costs some throughput).
    fn listen(
        &mut self,
        listener: std::net::TcpListener,
        tag: u32,
        want_peer: bool,
    ) -> io::Result<()>;
    /// Starts watching an accepted connection under `token`.
    fn attach(&mut self, conn: ConnId, token: Token) -> io::Result<()>;
    /// Sends from `out` what the kernel takes now; what is sent (or, for io_uring, moved into a
    /// send in flight) is removed from the queue.
    fn flush(&mut self, conn: ConnId, token: Token, out: &mut OutQueue) -> io::Result<Flush>;
    /// Resumes reading a connection paused by [`ReadControl::Pause`]; bytes already waiting in the
    /// kernel are delivered on the next [`Backend::wait`].
    fn resume(&mut self, conn: ConnId, token: Token);
    /// Closes a connection. No completion for `token` is delivered afterwards.
    fn close(&mut self, conn: ConnId, token: Token);
    /// Stops accepting on every listener (graceful shutdown).
    fn stop_listening(&mut self);
    /// Waits up to `timeout` for events and reports each one to `handler`.
    fn wait(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut dyn FnMut(Completion<'_>) -> ReadControl,
    ) -> io::Result<()>;
    /// Whether [`Backend::detach`] can hand sockets to another worker's backend.
    fn can_detach(&self) -> bool {
        false
    }
    /// Accepts that failed so far (descriptor or table limits), for the metrics.
    fn accept_errors(&self) -> u64 {
        0
    }
    /// Starts handing a connection's socket to another worker's backend, which
    /// [`Backend::adopt`]s it. Only for a connection with no output in flight. With
    /// [`Detach::Now`] the connection is no longer watched here and no completion for `token`
    /// follows; with [`Detach::Later`] a [`Completion::Detached`] follows, after which the worker
    /// closes the connection here as usual (the socket lives on in the descriptor it got).
    fn detach(&mut self, _conn: ConnId, _token: Token) -> Detach {
        Detach::Unsupported
    }
    /// Takes a socket another worker's backend detached. `Some`: the connection, ready to
    /// [`Backend::attach`]; `None`: a [`Completion::Adopted`] with `tag` follows.
    fn adopt(&mut self, _socket: OwnedFd, _tag: u64) -> io::Result<Option<ConnId>> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// The fd that wakes this backend when written (an eventfd), for other cores' mailboxes.
    fn waker(&self) -> std::sync::Arc<sys::EventFd>;
}
