//! Thin, argued wrappers over the Linux syscalls the load generator needs: edge-triggered epoll,
//! non-blocking TCP connects from a chosen source address, the open-file limit, CPU pinning, the
//! system-wide monotonic clock and the kernel's clock-tick rate. Depends on libc and std only.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Maps a libc return value of -1 to the thread's last OS error.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Nanoseconds of CLOCK_MONOTONIC. The clock is shared by every process on the machine, so a
/// timestamp written by a publisher can be compared with the time a subscriber process reads it.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if ret != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Clock ticks per second of /proc CPU times (sysconf(_SC_CLK_TCK)); None if unknown.
pub fn clock_ticks_per_s() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|&t| t > 0)
}

/// An epoll instance; closed on drop.
pub struct Epoll {
    fd: OwnedFd,
}

/// Readiness bits reported for one registered descriptor.
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    pub token: u64,
    pub bits: u32,
}

impl Ready {
    pub fn readable(&self) -> bool {
        self.bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }
    pub fn writable(&self) -> bool {
        self.bits & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }
}

/// Interest used for every socket: edge-triggered read, write and peer half-close.
pub const SOCKET_INTEREST: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// Interest for a pipe we only read from (edge-triggered).
pub const READ_INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a fresh descriptor.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    pub fn add(&self, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event that outlives the call; both fds are open.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Waits up to `timeout_ms` and appends the ready descriptors to `out` (cleared first).
    pub fn wait(
        &self,
        raw: &mut [libc::epoll_event],
        out: &mut Vec<Ready>,
        timeout_ms: i32,
    ) -> io::Result<()> {
        out.clear();
        let max = raw.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: `raw` is a writable buffer of `max` epoll_event entries.
        let ret =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), raw.as_mut_ptr(), max, timeout_ms) };
        match check(ret) {
            Ok(n) => {
                for ev in raw.iter().take(n as usize) {
                    out.push(Ready {
                        token: ev.u64,
                        bits: ev.events,
                    });
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Starts a non-blocking TCP connect to `dst`, first binding to `src` (port chosen at connect time
/// thanks to IP_BIND_ADDRESS_NO_PORT) when given. The connect is normally still in progress when
/// this returns; completion is reported as writability, then [`take_socket_error`] tells the result.
pub fn start_connect(dst: SocketAddrV4, src: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    // SAFETY: socket() takes no pointers; a non-negative result is a fresh descriptor.
    let raw = check(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `raw` was just returned by the kernel and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    let one_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `one` is a live c_int and `one_len` is its size.
    check(unsafe {
        libc::setsockopt(
            raw,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            one_len,
        )
    })?;
    if let Some(ip) = src {
        // SAFETY: `one` is a live c_int and `one_len` is its size.
        check(unsafe {
            libc::setsockopt(
                raw,
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                one_len,
            )
        })?;
        let local = sockaddr_in(SocketAddrV4::new(ip, 0));
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `local` is a valid sockaddr_in of `len` bytes that outlives the call.
        check(unsafe { libc::bind(raw, (&local as *const libc::sockaddr_in).cast(), len) })?;
    }
    let remote = sockaddr_in(dst);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `remote` is a valid sockaddr_in of `len` bytes that outlives the call.
    let ret = unsafe { libc::connect(raw, (&remote as *const libc::sockaddr_in).cast(), len) };
    if let Err(e) = check(ret) {
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from(fd))
}

/// Reads and clears SO_ERROR: `Ok(())` once a non-blocking connect has succeeded.
pub fn take_socket_error(stream: &TcpStream) -> io::Result<()> {
    match stream.take_error()? {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The soft RLIMIT_NOFILE of this process.
pub fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur
}

/// Lowers (or raises, where allowed) the soft RLIMIT_NOFILE to `n`, keeping the hard limit.
pub fn set_nofile_limit(n: u64) -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    lim.rlim_cur = n.min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    Ok(())
}

/// Pins the calling process to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` was checked against CPU_SETSIZE just above, so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed, alive for the call.
    check(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// Makes a descriptor (stdin of a worker) non-blocking.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL takes no pointers.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: fcntl F_SETFL takes no pointers.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Arms SIGALRM after `secs` seconds: the default action ends the process, a last-resort bound
/// for a run whose own deadline checks somehow did not fire.
pub fn arm_alarm(secs: u64) {
    let secs = secs.min(u32::MAX as u64) as libc::c_uint;
    // SAFETY: alarm takes no pointers and only schedules a signal.
    unsafe { libc::alarm(secs) };
}

/// Raw read on a descriptor we do not own as a stream (stdin).
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for `buf.len()` bytes for the duration of the call.
    let ret = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward() {
        let a = now_ns();
        let b = now_ns();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn connect_from_second_loopback_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dst = match listener.local_addr().expect("addr") {
            std::net::SocketAddr::V4(v4) => v4,
            std::net::SocketAddr::V6(_) => panic!("v4 expected"),
        };
        let stream = start_connect(dst, Some(Ipv4Addr::new(127, 0, 0, 2))).expect("connect");
        let (_peer, from) = listener.accept().expect("accept");
        assert_eq!(from.ip(), std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert!(take_socket_error(&stream).is_ok());
    }

    #[test]
    fn nofile_limit_is_positive() {
        assert!(nofile_limit() > 0);
    }
}
