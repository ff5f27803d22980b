//! Thin, argued wrappers over the few syscalls the engine uses: one `syscall!` macro that maps -1
//! to `io::Error`, listener setup (SO_REUSEPORT, non-blocking, backlog) and the eventfd waker.
//!
//! Depends on: libc, socket2.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Calls a libc function and turns a `-1` result into the thread's `errno` as an `io::Error`.
#[macro_export]
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe, clippy::macro_metavars_in_unsafe)]
        // SAFETY: the caller passes arguments that satisfy the libc function's contract; each call
        // site says why in its own `// SAFETY:` line (valid fds, pointers to live buffers of the
        // stated length), and tests/layering.rs fails on a call site without one.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// The listen backlog: large, because a ramp of tens of thousands of connections per second must
/// not overflow the accept queue. The kernel caps it at net.core.somaxconn.
pub const LISTEN_BACKLOG: i32 = 65535;

/// Opens a non-blocking TCP listener with SO_REUSEADDR and SO_REUSEPORT, so every worker can own
/// its own listener on the same address and the kernel spreads connections over them.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = Domain::for_address(addr);
    let socket = Socket::new(
        domain,
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Accepts one connection as a non-blocking, close-on-exec fd with TCP_NODELAY set.
/// Returns `Ok(None)` when the accept queue is empty.
pub fn accept(listener: RawFd) -> io::Result<Option<(RawFd, Option<SocketAddr>)>> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is a live sockaddr_storage on this stack frame and `len` holds its size, so
    // the kernel writes at most that many bytes of address into it (and the length into `len`).
    let res = syscall!(accept4(
        listener,
        &mut storage as *mut _ as *mut libc::sockaddr,
        &mut len,
        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
    ));
    match res {
        Ok(fd) => {
            set_nodelay(fd);
            Ok(Some((fd, sockaddr_to_std(&storage))))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes one connection off a listener's accept queue and closes it at once, unserved (a
/// refusal: the client sees its connection closed). Returns `Ok(false)` when the queue is empty.
pub fn refuse_one(listener: RawFd) -> io::Result<bool> {
    // SAFETY: null address arguments ask the kernel for no peer address; nothing is written.
    let res = syscall!(accept4(
        listener,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
    ));
    match res {
        Ok(fd) => {
            close_fd(fd);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// True for the accept errors that mean "no descriptor left" (per process or system-wide).
pub fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Descriptors this process may still open: the soft RLIMIT_NOFILE less the descriptors below it
/// that are open now. `None` when either is unknown (no /proc).
pub fn descriptors_left() -> Option<usize> {
    // SAFETY: rlimit is plain old data; all-zero is a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a live rlimit on this stack frame; the kernel writes exactly one.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit)).ok()?;
    let soft = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
    let open = std::fs::read_dir("/proc/self/fd")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .filter(|&fd| fd < soft)
        .count();
    // The directory being read was one of them.
    Some(soft.saturating_sub(open.saturating_sub(1)))
}

/// Sets TCP_NODELAY: comet frames are small and must leave at once.
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // The result is ignored on purpose: a socket without NODELAY still works, only slower.
    // SAFETY: the option value points to `one`, a live c_int, and the length passed is its size;
    // the kernel only reads it.
    let _ = syscall!(setsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_NODELAY,
        &one as *const _ as *const libc::c_void,
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ));
}

/// Converts a kernel socket address into a std one (IPv4 and IPv6 only).
pub fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: ss_family says the storage holds a sockaddr_in, which fits inside it.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: ss_family says the storage holds a sockaddr_in6, which fits inside it.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
        }
        _ => None,
    }
}

/// Closes a raw fd, ignoring errors (there is nothing useful to do about them).
pub fn close_fd(fd: RawFd) {
    // SAFETY: close touches no memory of ours; callers pass an fd they own and never use again.
    let _ = syscall!(close(fd));
}

/// An eventfd used as a cross-core waker. Writing makes the owning backend's wait return.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes an initial count and flags and touches no memory of ours.
        let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
        // SAFETY: eventfd just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Makes the eventfd readable, and is a new edge for an edge-triggered watcher. Never
    /// blocks: a counter that is full (a watcher that never reads it, after 2^64 - 2 wakes) is
    /// reset and written again, so the write still happens.
    pub fn wake(&self) {
        if self.add_one().is_err() {
            self.drain();
            let _ = self.add_one();
        }
    }

    fn add_one(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: the fd is a live eventfd and the buffer is 8 readable bytes.
        syscall!(write(
            self.fd.as_raw_fd(),
            &one as *const u64 as *const libc::c_void,
            8
        ))
        .map(drop)
    }

    /// Resets the counter so the next wake is seen again.
    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: the fd is a live eventfd and the buffer is 8 writable bytes.
        let _ = syscall!(read(
            self.fd.as_raw_fd(),
            &mut value as *mut u64 as *mut libc::c_void,
            8
        ));
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(fd: &EventFd) -> u64 {
        let mut value: u64 = 0;
        // SAFETY: the fd is a live eventfd and the buffer is 8 writable bytes.
        let _ = syscall!(read(
            fd.raw(),
            &mut value as *mut u64 as *mut libc::c_void,
            8
        ));
        value
    }

    /// A wake always writes, even into a counter nobody read back until it was full.
    #[test]
    fn a_wake_writes_even_when_the_counter_is_full() {
        let fd = EventFd::new().unwrap();
        fd.wake();
        fd.wake();
        assert_eq!(count(&fd), 2);
        let full: u64 = u64::MAX - 1;
        // SAFETY: the fd is a live eventfd and the buffer is 8 readable bytes.
        syscall!(write(
            fd.raw(),
            &full as *const u64 as *const libc::c_void,
            8
        ))
        .unwrap();
        fd.wake();
        assert_eq!(count(&fd), 1, "reset, then written once");
    }
}
