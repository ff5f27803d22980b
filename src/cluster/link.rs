//! One Redis connection of the cluster thread: a non-blocking socket, the bytes waiting to be
//! written (every command is pipelined: written at once, answered in order) and the bytes read
//! but not yet decoded. Nothing here waits on the network except `connect`, bounded by a
//! timeout, on the cluster thread.
//!
//! Depends on: cluster (resp).

use super::resp::{self, Reply};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Most bytes a reply may take before the link is dropped as broken.
const MAX_INBUF: usize = 256 * 1024 * 1024;

/// Capacity an empty buffer keeps. A report of every channel's count or a resubscription of every
/// channel writes (and is answered with) hundreds of kilobytes at once; kept, that capacity would
/// cost every served channel tens of bytes for good.
const KEEP_CAPACITY: usize = 4 * 1024;

/// Gives back most of a buffer's capacity once it holds little.
fn trim(buf: &mut Vec<u8>) {
    if buf.capacity() > 2 * KEEP_CAPACITY && buf.len() <= KEEP_CAPACITY / 2 {
        buf.shrink_to(KEEP_CAPACITY);
    }
}

pub struct Link {
    stream: TcpStream,
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
}

impl Link {
    /// Connects to `addr` (`HOST:PORT`) within `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> io::Result<Link> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_nonblocking(true)?;
                    return Ok(Link {
                        stream,
                        out: Vec::with_capacity(4096),
                        written: 0,
                        inbuf: Vec::with_capacity(4096),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Queues one command.
    pub fn command(&mut self, args: &[&[u8]]) {
        resp::command(&mut self.out, args);
    }

    /// Bytes still to write.
    pub fn wants_write(&self) -> bool {
        self.written < self.out.len()
    }

    /// Writes what it can without blocking.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            trim(&mut self.out);
        }
        Ok(())
    }

    /// Reads what has arrived and decodes every complete reply, in order. An error (closed,
    /// reset, not RESP) means the link is dead.
    pub fn read(&mut self, replies: &mut Vec<Reply>) -> io::Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if self.inbuf.len() > MAX_INBUF {
                return Err(io::Error::other("reply too large"));
            }
        }
        let mut used = 0;
        while used < self.inbuf.len() {
            match resp::next_reply(&self.inbuf[used..]) {
                Ok(Some((reply, n))) => {
                    used += n;
                    replies.push(reply);
                }
                Ok(None) => break,
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        self.inbuf.drain(..used);
        trim(&mut self.inbuf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_that_held_a_big_burst_gives_its_capacity_back_once_drained() {
        let mut buf = Vec::with_capacity(1024 * 1024);
        buf.extend_from_slice(&[1u8; 100]);
        trim(&mut buf);
        assert!(buf.capacity() <= 2 * KEEP_CAPACITY, "{}", buf.capacity());
        assert_eq!(buf, vec![1u8; 100]);
        // A buffer still holding much, or small already, is left alone.
        let mut full = vec![0u8; 3 * KEEP_CAPACITY];
        let cap = full.capacity();
        trim(&mut full);
        assert_eq!(full.capacity(), cap);
        let mut small = Vec::<u8>::with_capacity(4096);
        trim(&mut small);
        assert_eq!(small.capacity(), 4096);
    }
}
