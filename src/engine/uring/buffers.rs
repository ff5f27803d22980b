//! Memory the kernel reads or writes while an operation is in flight, owned here until the
//! operation's completion arrives: a per-worker pool of receive buffers (idle connections own
//! none) and the records of sends in flight (the queued bytes moved out of the worker's queue, plus
//! the msghdr and iovecs that describe them).
//!
//! Depends on: engine (ConnId, OutQueue), libc.

use crate::engine::out::MAX_IOVECS;
use crate::engine::{ConnId, OutQueue};

/// Receive buffers of one worker. Each buffer is its own allocation, so lending one to the worker
/// never creates a reference to memory the kernel may be writing for another receive.
#[derive(Default)]
pub(crate) struct RecvPool {
    buffers: Vec<Box<[u8]>>,
    /// The connection (and slot generation) each buffer is receiving for, while in flight.
    owners: Vec<Option<(ConnId, u32)>>,
    free: Vec<u32>,
}

impl RecvPool {
    pub fn new(count: u16, size: u32) -> RecvPool {
        let count = count.max(1);
        let size = size.max(1) as usize;
        RecvPool {
            buffers: (0..count)
                .map(|_| vec![0u8; size].into_boxed_slice())
                .collect(),
            owners: vec![None; usize::from(count)],
            free: (0..u32::from(count)).rev().collect(),
        }
    }

    /// Bytes in each buffer.
    pub fn buffer_len(&self) -> usize {
        self.buffers.first().map_or(0, |b| b.len())
    }

    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.buffers.len() - self.free.len()
    }

    /// Takes a free buffer for a receive on `conn`: its index, address and length.
    /// INVARIANT: the buffer is not touched here again until [`RecvPool::finish`] returns it.
    pub fn take(&mut self, conn: ConnId, generation: u32) -> Option<(u32, *mut u8, u32)> {
        let index = self.free.pop()?;
        let buffer = self.buffers.get_mut(index as usize)?;
        if let Some(owner) = self.owners.get_mut(index as usize) {
            *owner = Some((conn, generation));
        }
        let len = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        Some((index, buffer.as_mut_ptr(), len))
    }

    /// The owner of a buffer whose receive completed, and the first `len` bytes it received.
    /// The buffer goes back to the pool when the returned borrow ends and [`RecvPool::release`]
    /// is called.
    pub fn finish(&self, index: u32, len: usize) -> Option<((ConnId, u32), &[u8])> {
        let owner = (*self.owners.get(index as usize)?)?;
        let buffer = self.buffers.get(index as usize)?;
        Some((owner, buffer.get(..len.min(buffer.len()))?))
    }

    pub fn release(&mut self, index: u32) {
        if let Some(owner) = self.owners.get_mut(index as usize) {
            if owner.take().is_some() {
                self.free.push(index);
            }
        }
    }
}

/// One send in flight: the bytes it sends and the msghdr/iovecs describing them.
///
/// INVARIANT: while the send is in flight the record stays boxed at the same address, `msg`
/// points at `iov`, and `iov` points into the segments `chunk` owns, which are not modified.
pub(crate) struct SendRecord {
    pub conn: ConnId,
    pub generation: u32,
    pub chunk: OutQueue,
    iov: [libc::iovec; MAX_IOVECS],
    msg: libc::msghdr,
}

// SAFETY: the raw pointers in `iov` and `msg` point only into memory this record owns (`chunk`'s
// segments and `iov` itself); moving the record to another thread moves that memory with it.
unsafe impl Send for SendRecord {}

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

    /// Points the msghdr at the unsent bytes and returns it for a SendMsg operation.
    pub fn prepare(&mut self) -> *const libc::msghdr {
        let count = self.chunk.iovecs(&mut self.iov);
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = count as _;
        &self.msg
    }
}

/// Send records in flight, indexed by the number carried in their operation's user data.
#[derive(Default)]
pub(crate) struct SendSlab {
    records: Vec<Option<Box<SendRecord>>>,
    free: Vec<u32>,
}

impl SendSlab {
    pub fn insert(&mut self, record: Box<SendRecord>) -> u32 {
        if let Some(index) = self.free.pop() {
            if let Some(entry) = self.records.get_mut(index as usize) {
                *entry = Some(record);
                return index;
            }
        }
        self.records.push(Some(record));
        (self.records.len() - 1) as u32
    }

    pub fn get_mut(&mut self, index: u32) -> Option<&mut SendRecord> {
        self.records.get_mut(index as usize)?.as_deref_mut()
    }

    /// Removes a record whose send completed for good.
    pub fn remove(&mut self, index: u32) -> Option<Box<SendRecord>> {
        let record = self.records.get_mut(index as usize)?.take()?;
        self.free.push(index);
        Some(record)
    }

    pub fn in_flight(&self) -> usize {
        self.records.len() - self.free.len()
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
    fn send_records_describe_their_bytes_and_reuse_indices() {
        let mut q = OutQueue::new();
        q.push_bytes(b"hello");
        let mut record = SendRecord::new(ConnId(7), 1, q.take_front(MAX_IOVECS));
        let msg = record.prepare();
        // SAFETY: `msg` points into `record`, which is alive and not moved.
        let (iovlen, first_len) = unsafe { ((*msg).msg_iovlen, (*(*msg).msg_iov).iov_len) };
        assert_eq!((iovlen, first_len), (1, 5));
        let mut slab = SendSlab::default();
        let first = slab.insert(record);
        assert_eq!(slab.get_mut(first).map(|r| r.conn), Some(ConnId(7)));
        assert!(slab.remove(first).is_some());
        assert!(slab.remove(first).is_none());
        let again = slab.insert(SendRecord::new(ConnId(8), 1, OutQueue::new()));
        assert_eq!(again, first);
        assert_eq!(slab.in_flight(), 1);
    }
}
