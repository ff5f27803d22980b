//! Memory the kernel reads or writes while an operation is in flight, owned here until the
//! operation's completion arrives: a per-worker pool of receive buffers (idle connections own
//! none), the records of sends in flight (the queued bytes moved out of the worker's queue, plus
//! the msghdr and iovecs that describe them) and the address buffers of accepts that return the
//! peer's address.
//!
//! Depends on: engine (ConnId, OutQueue, sys), libc.

use crate::engine::out::MAX_IOVECS;
use crate::engine::sys::sockaddr_to_std;
use crate::engine::{ConnId, OutQueue};
use std::cell::UnsafeCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Receive buffers of one worker. Each buffer is its own allocation, so lending one to the worker
/// never creates a reference to memory the kernel may be writing for another receive.
///
/// Each buffer starts on a page boundary (its allocation is a page longer than the buffer), so
/// the pages of a buffer that was not used for a second or more can be given back to the kernel
/// (`trim_idle`): a burst of requests touches every buffer of the pool (up to
/// `count × size` bytes per worker), and without this an idle server would keep those pages
/// forever. A buffer given back costs a page fault or two when it is next used.
pub(crate) struct RecvPool {
    buffers: Vec<Box<[u8]>>,
    /// Bytes in each buffer (its allocation is one page longer).
    size: usize,
    /// The system's page size.
    page: usize,
    /// The connection (and slot generation) each buffer is receiving for, while in flight.
    owners: Vec<Option<(ConnId, u32)>>,
    free: Vec<u32>,
    /// Buffers used since their pages were last given back.
    dirty: Vec<bool>,
    /// Buffers used since the last `trim_idle` pass.
    recent: Vec<bool>,
    /// When `trim_idle` looks at the buffers next.
    next_trim: Instant,
}

/// How often idle receive buffers are looked at: a buffer not used for a whole period gives its
/// pages back.
const TRIM_PERIOD: Duration = Duration::from_secs(1);

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}

/// A pool without buffers (what is left after a shutdown hands the buffers to the kernel).
impl Default for RecvPool {
    fn default() -> RecvPool {
        RecvPool {
            buffers: Vec::new(),
            size: 0,
            page: page_size(),
            owners: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            recent: Vec::new(),
            next_trim: Instant::now() + TRIM_PERIOD,
        }
    }
}

impl RecvPool {
    pub fn new(count: u16, size: u32) -> RecvPool {
        let count = usize::from(count.max(1));
        let size = size.max(1) as usize;
        let page = page_size();
        RecvPool {
            buffers: (0..count)
                .map(|_| vec![0u8; size + page].into_boxed_slice())
                .collect(),
            size,
            page,
            owners: vec![None; count],
            free: (0..count as u32).rev().collect(),
            dirty: vec![false; count],
            recent: vec![false; count],
            next_trim: Instant::now() + TRIM_PERIOD,
        }
    }

    /// Bytes in each buffer.
    pub fn buffer_len(&self) -> usize {
        self.size
    }

    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.buffers.len() - self.free.len()
    }

    /// The page-aligned part of buffer `index`'s allocation that is the buffer.
    fn span(&self, index: u32) -> Option<std::ops::Range<usize>> {
        let buffer = self.buffers.get(index as usize)?;
        let start = buffer.as_ptr().align_offset(self.page).min(buffer.len());
        let end = start
            .checked_add(self.size)
            .filter(|&e| e <= buffer.len())?;
        Some(start..end)
    }

    /// Takes a free buffer for a receive on `conn`: its index, address and length.
    /// INVARIANT: the buffer is not touched here again until [`RecvPool::finish`] returns it.
    pub fn take(&mut self, conn: ConnId, generation: u32) -> Option<(u32, *mut u8, u32)> {
        let index = self.free.pop()?;
        let span = self.span(index)?;
        let i = index as usize;
        let buffer = self.buffers.get_mut(i)?.get_mut(span)?;
        if let Some(owner) = self.owners.get_mut(i) {
            *owner = Some((conn, generation));
        }
        if let (Some(d), Some(r)) = (self.dirty.get_mut(i), self.recent.get_mut(i)) {
            (*d, *r) = (true, true);
        }
        let len = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        Some((index, buffer.as_mut_ptr(), len))
    }

    /// The owner of a buffer whose receive completed, and the first `len` bytes it received.
    /// The buffer goes back to the pool when the returned borrow ends and [`RecvPool::release`]
    /// is called.
    pub fn finish(&self, index: u32, len: usize) -> Option<((ConnId, u32), &[u8])> {
        let owner = (*self.owners.get(index as usize)?)?;
        let span = self.span(index)?;
        let buffer = self.buffers.get(index as usize)?.get(span)?;
        Some((owner, buffer.get(..len.min(buffer.len()))?))
    }

    pub fn release(&mut self, index: u32) {
        if let Some(owner) = self.owners.get_mut(index as usize) {
            if owner.take().is_some() {
                self.free.push(index);
            }
        }
    }

    /// Once a [`TRIM_PERIOD`]: gives back to the kernel the pages of every free buffer that was
    /// used before the last period but not during it. Returns how many buffers it gave back.
    pub fn trim_idle(&mut self, now: Instant) -> usize {
        if now < self.next_trim {
            return 0;
        }
        self.next_trim = now + TRIM_PERIOD;
        let mut trimmed = 0;
        for k in 0..self.free.len() {
            let Some(&index) = self.free.get(k) else {
                break;
            };
            let i = index as usize;
            let idle = self.dirty.get(i) == Some(&true) && self.recent.get(i) == Some(&false);
            let Some(span) = self.span(index).filter(|_| idle) else {
                continue;
            };
            let Some(buffer) = self.buffers.get_mut(i).and_then(|b| b.get_mut(span)) else {
                continue;
            };
            // SAFETY: the range is a whole number of pages (page-aligned start, and the madvise
            // length is rounded down to pages) inside a live allocation this pool owns
            // exclusively (`&mut`); the buffer is free, so no receive is in flight into it and
            // nothing reads it. MADV_DONTNEED on private anonymous memory only makes those
            // pages read as zeros when next touched, which is a valid value for `[u8]`.
            let done = unsafe {
                libc::madvise(
                    buffer.as_mut_ptr().cast(),
                    buffer.len() / self.page * self.page,
                    libc::MADV_DONTNEED,
                )
            };
            if done == 0 {
                if let Some(d) = self.dirty.get_mut(i) {
                    *d = false;
                }
                trimmed += 1;
            }
        }
        self.recent.fill(false);
        trimmed
    }
}

/// One send in flight: the bytes it sends and the msghdr/iovecs describing them, or, for a
/// small send, a copy of its bytes.
///
/// INVARIANT: while the send is in flight the record stays boxed at the same address and, as the
/// last [`SendRecord::prepare`] said, either `msg` points at `iov` and `iov` points into the
/// segments `chunk` owns, which are not modified ([`Prepared::Msg`]), or the memory of `iov`
/// holds a copy of the bytes to send and is not touched ([`Prepared::Flat`]).
pub(crate) struct SendRecord {
    pub conn: ConnId,
    pub generation: u32,
    pub chunk: OutQueue,
    iov: [libc::iovec; MAX_IOVECS],
    msg: libc::msghdr,
}

// SAFETY: the raw pointers in `iov` and `msg` point only into memory this record owns or keeps
// alive (`chunk`'s segments, `iov` itself): owned buffers move with the record; shared ones
// (`Arc`s, `SharedRange`s of an `AppendBuf`) stay alive while the record holds them, and the bytes
// a range covers are never written again, even while the buffer's owner appends after them.
unsafe impl Send for SendRecord {}

/// What one send operation sends (see [`SendRecord::prepare`]).
pub(crate) enum Prepared {
    /// A SendMsg of the msghdr: several segments, more bytes than a copy is worth.
    Msg(*const libc::msghdr),
    /// A plain Send of `len` contiguous bytes at the pointer.
    Flat(*const u8, u32),
}

/// Bytes of a record's iovec array, which holds the copy of a small send of several segments.
const FLAT_MAX: usize = MAX_IOVECS * std::mem::size_of::<libc::iovec>();

impl SendRecord {
    pub fn new(conn: ConnId, generation: u32, chunk: OutQueue) -> Box<SendRecord> {
        Box::new(SendRecord {
            conn,
            generation,
            chunk,
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOVECS],
            // SAFETY: msghdr is plain old data; all-zero is a valid (empty) value.
            msg: unsafe { std::mem::zeroed() },
        })
    }

    /// Describes the unsent bytes for one send operation. One segment is sent where it lies;
    /// several that fit in the iovec array's own memory are copied there and sent as one buffer
    /// (a plain Send: the kernel then imports no msghdr and no iovec array, and copies one
    /// range — the common case of a delivered frame, an inline head, the shared JSON and a static
    /// tail); anything larger goes as a SendMsg of iovecs.
    pub fn prepare(&mut self) -> Prepared {
        let count = self.chunk.iovecs(&mut self.iov);
        let parts = self.iov.get(..count).unwrap_or_default();
        let total: usize = parts.iter().map(|v| v.iov_len).sum();
        // A longer single segment goes in part: the completion says how much, the rest follows.
        let len = total.min(u32::MAX as usize) as u32;
        if let [only] = parts {
            return Prepared::Flat(only.iov_base as *const u8, len);
        }
        if total <= FLAT_MAX {
            // The descriptions move to the stack: their own memory receives the bytes.
            let iov = self.iov;
            let parts = iov.get(..count).unwrap_or_default();
            let flat = self.iov.as_mut_ptr().cast::<u8>();
            let mut at = 0;
            for part in parts {
                // SAFETY: each source range is one the OutQueue just described (bytes of segments
                // `chunk` owns, alive and unmodified), and none lies in `self.iov`, which no
                // segment points into; the destination is `self.iov`'s own memory, `FLAT_MAX`
                // bytes of plain data (an iovec is a pointer and a length, no padding, valid for
                // any bit pattern), and `at + len <= total <= FLAT_MAX`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        part.iov_base as *const u8,
                        flat.add(at),
                        part.iov_len,
                    );
                }
                at += part.iov_len;
            }
            return Prepared::Flat(flat as *const u8, len);
        }
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = count as _;
        Prepared::Msg(&self.msg)
    }
}

/// Where an accept that asks for the peer has the kernel write the client's address.
///
/// INVARIANT: while the accept is in flight the record stays boxed at the same address and only
/// the kernel touches `raw` (it sits in an `UnsafeCell`, so references to the record say nothing
/// about it); `raw` is read only after the completion arrived.
pub(crate) struct PeerAddr {
    /// Index of the listener the accept waits on.
    pub listener: u32,
    /// The ring the accept was submitted to.
    pub ring: usize,
    raw: UnsafeCell<RawAddr>,
}

/// The address and its length, as accept(2) fills them in.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl PeerAddr {
    pub fn new(listener: u32, ring: usize) -> Box<PeerAddr> {
        Box::new(PeerAddr {
            listener,
            ring,
            raw: UnsafeCell::new(RawAddr {
                // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC)
                // value.
                storage: unsafe { std::mem::zeroed() },
                len: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
            }),
        })
    }

    /// The address and length-in/out pointers an accept operation takes.
    pub fn as_accept_args(&self) -> (*mut libc::sockaddr, *mut libc::socklen_t) {
        let raw = self.raw.get();
        // SAFETY: `raw` points into this live record; only field addresses are taken, nothing is
        // read or written.
        unsafe {
            (
                std::ptr::addr_of_mut!((*raw).storage) as *mut libc::sockaddr,
                std::ptr::addr_of_mut!((*raw).len),
            )
        }
    }

    /// The address the kernel wrote (`None` when it wrote nothing usable).
    ///
    /// # Safety
    /// No accept using this record's buffer may be in flight: its completion must have arrived.
    pub unsafe fn peer(&self) -> Option<SocketAddr> {
        // SAFETY: the caller guarantees the kernel no longer writes `raw`.
        let raw = unsafe { &*self.raw.get() };
        if raw.len == 0 {
            return None;
        }
        sockaddr_to_std(&raw.storage)
    }
}

/// A handed-over socket being registered into a ring's table.
pub(crate) struct AdoptRecord {
    /// The kernel reads the descriptor from here and writes the allocated slot index back.
    /// INVARIANT: stays at this address until the operation's completion (the record is boxed
    /// in the backend's adoption records and removed only then).
    pub fds: [std::os::fd::RawFd; 1],
    /// Kept open until the kernel took its own reference.
    pub _socket: std::os::fd::OwnedFd,
    pub tag: u64,
    pub ring: usize,
}

/// Records of operations in flight, each boxed (it never moves while the kernel uses it) and
/// indexed by the number carried in its operation's user data.
pub(crate) struct Slab<T> {
    records: Vec<Option<Box<T>>>,
    free: Vec<u32>,
}

/// Send records in flight.
pub(crate) type SendSlab = Slab<SendRecord>;
/// Address buffers of accepts in flight.
pub(crate) type PeerAddrs = Slab<PeerAddr>;

impl<T> Default for Slab<T> {
    fn default() -> Slab<T> {
        Slab {
            records: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, record: Box<T>) -> u32 {
        if let Some(index) = self.free.pop() {
            if let Some(entry) = self.records.get_mut(index as usize) {
                *entry = Some(record);
                return index;
            }
        }
        self.records.push(Some(record));
        (self.records.len() - 1) as u32
    }

    pub fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        self.records.get_mut(index as usize)?.as_deref_mut()
    }

    /// Removes a record whose operation completed for good.
    pub fn remove(&mut self, index: u32) -> Option<Box<T>> {
        let record = self.records.get_mut(index as usize)?.take()?;
        self.free.push(index);
        Some(record)
    }

    pub fn in_flight(&self) -> usize {
        self.records.len() - self.free.len()
    }

    /// Every record in flight with its index.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i as u32, r.as_deref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_buffers_are_lent_once_and_come_back() {
        let mut pool = RecvPool::new(2, 8);
        let a = pool.take(ConnId(1), 3).map(|(i, _, len)| (i, len));
        let b = pool.take(ConnId(2), 4).map(|(i, _, _)| i);
        assert_eq!(a.map(|(_, len)| len), Some(8));
        assert!(!pool.has_free());
        assert!(pool.take(ConnId(3), 1).is_none());
        let (a, b) = (a.map(|(i, _)| i).unwrap_or(99), b.unwrap_or(99));
        assert_eq!(
            pool.finish(b, 100).map(|(o, bytes)| (o, bytes.len())),
            Some(((ConnId(2), 4), 8))
        );
        pool.release(b);
        pool.release(b);
        assert_eq!(pool.in_flight(), 1, "a double release frees once");
        assert!(pool.finish(b, 1).is_none());
        pool.release(a);
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn buffers_start_on_a_page_and_idle_ones_give_their_pages_back() {
        let mut pool = RecvPool::new(3, 8192);
        let page = page_size();
        let (a, ptr, len) = pool.take(ConnId(1), 1).expect("a free buffer");
        assert_eq!(ptr as usize % page, 0, "page-aligned");
        assert_eq!(len, 8192);
        // SAFETY: the buffer is lent to this test (as to the kernel); no reference to it exists.
        unsafe { ptr.write_bytes(7, 8192) };
        pool.release(a);
        let start = Instant::now();
        assert_eq!(pool.trim_idle(start), 0, "not before a period has passed");
        // Used during the period that ends now: kept one more period.
        assert_eq!(pool.trim_idle(start + TRIM_PERIOD), 0);
        assert_eq!(pool.trim_idle(start + 2 * TRIM_PERIOD), 1);
        let (b, ptr, _) = pool.take(ConnId(2), 1).expect("a free buffer");
        assert_eq!(b, a, "the same buffer, reused first");
        // SAFETY: as above.
        let first = unsafe { ptr.read() };
        assert_eq!(first, 0, "its pages were given back (they read as zeros)");
        // A buffer in flight is never given back.
        assert_eq!(pool.trim_idle(start + 4 * TRIM_PERIOD), 0);
        assert_eq!(pool.trim_idle(start + 6 * TRIM_PERIOD), 0);
        assert!(pool.finish(b, 3).is_some());
    }

    #[test]
    fn send_records_describe_their_bytes_and_reuse_indices() {
        let mut q = OutQueue::default();
        q.push_bytes(b"hello");
        let mut record = SendRecord::new(ConnId(7), 1, q.take_front(MAX_IOVECS));
        let Prepared::Flat(ptr, len) = record.prepare() else {
            panic!("one segment is sent where it lies");
        };
        // SAFETY: `ptr` points at the 5 queued bytes, owned by `record`, alive and not moved.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len as usize) };
        assert_eq!(bytes, b"hello");
        let mut slab = SendSlab::default();
        let first = slab.insert(record);
        assert_eq!(slab.get_mut(first).map(|r| r.conn), Some(ConnId(7)));
        assert!(slab.remove(first).is_some());
        assert!(slab.remove(first).is_none());
        let again = slab.insert(SendRecord::new(ConnId(8), 1, OutQueue::default()));
        assert_eq!(again, first);
        assert_eq!(slab.in_flight(), 1);
    }

    /// Several small segments are sent as one copy of their bytes; many large ones as iovecs;
    /// after a short send the rest is described again from where it stopped.
    #[test]
    fn small_sends_of_several_segments_are_one_contiguous_copy() {
        let shared: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"{\"seq\":1}"[..]);
        let mut q = OutQueue::default();
        q.push_frame(b"head|", &shared, b"|tail");
        let mut record = SendRecord::new(ConnId(1), 1, q.take_front(MAX_IOVECS));
        let flat = |record: &mut SendRecord| match record.prepare() {
            Prepared::Flat(ptr, len) => {
                // SAFETY: the bytes lie in `record`'s own memory or its segments, alive and
                // unmoved.
                let bytes = unsafe { std::slice::from_raw_parts(ptr, len as usize) };
                bytes.to_vec()
            }
            Prepared::Msg(_) => panic!("a small send went as iovecs"),
        };
        assert_eq!(flat(&mut record), b"head|{\"seq\":1}|tail");
        record.chunk.advance(7);
        assert_eq!(flat(&mut record), b"seq\":1}|tail");
        let mut big = OutQueue::default();
        for i in 0..8u8 {
            big.push_shared(&std::sync::Arc::from(vec![i; 4000]));
        }
        let mut record = SendRecord::new(ConnId(2), 1, big.take_front(MAX_IOVECS));
        let Prepared::Msg(msg) = record.prepare() else {
            panic!("32,000 bytes were copied");
        };
        // SAFETY: `msg` points into `record`, which is alive and not moved.
        let (iovlen, first) = unsafe { ((*msg).msg_iovlen, *(*msg).msg_iov) };
        assert_eq!((iovlen, first.iov_len), (8, 4000));
    }

    #[test]
    fn peer_address_buffers_decode_what_the_kernel_wrote() {
        let mut addrs = PeerAddrs::default();
        let record = PeerAddr::new(3, 1);
        // SAFETY: the record was never handed to the kernel.
        let before = unsafe { record.peer() };
        assert_eq!(before, None, "nothing written yet");
        let (addr, len) = record.as_accept_args();
        let written: SocketAddr = "127.0.0.2:4567".parse().expect("addr");
        let raw = socket2::SockAddr::from(written);
        // SAFETY: both pointers point into `record`, which is alive; the copy stays within the
        // sockaddr_storage the address pointer names.
        unsafe {
            std::ptr::copy_nonoverlapping(
                raw.as_ptr() as *const u8,
                addr as *mut u8,
                raw.len() as usize,
            );
            *len = raw.len();
        }
        // SAFETY: as above; only this test wrote the buffer.
        let after = unsafe { record.peer() };
        assert_eq!(after, Some(written));
        let index = addrs.insert(record);
        assert_eq!(
            addrs
                .iter()
                .map(|(i, r)| (i, r.listener))
                .collect::<Vec<_>>(),
            vec![(index, 3)]
        );
        assert_eq!(addrs.remove(index).map(|r| r.ring), Some(1));
        assert_eq!(addrs.in_flight(), 0);
        assert_eq!(addrs.iter().count(), 0);
    }
}
