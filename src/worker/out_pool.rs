//! `OutPool`: the drained output queues a worker keeps so the next connection that writes
//! appends without allocating. Bounded twice: at most `MAX` queues, each keeping at most
//! `SPARE_KEPT` bytes of buffer and a short segment list; and once a second the queues nobody took during that second are
//! let go, so a burst's queues do not stay as memory per idle connection.
//!
//! Depends on: engine (OutQueue).

use crate::engine::OutQueue;

/// Most queues kept.
const MAX: usize = 256;
/// A pooled queue keeps an emptied buffer up to this capacity (a busy connection's larger one
/// goes back to the allocator).
const SPARE_KEPT: usize = 4 * 1024;

/// Drained output queues. Boxed: connections hold them as boxes, and moving a box in and out of
/// the pool allocates nothing.
#[derive(Debug, Default)]
pub struct OutPool {
    #[allow(clippy::vec_box)]
    queues: Vec<Box<OutQueue>>,
    /// The fewest queues the pool held since the last `tick`: that many were not needed.
    low: usize,
}

impl OutPool {
    /// A pooled queue, or a new one.
    pub fn take(&mut self) -> Box<OutQueue> {
        let q = self.queues.pop().unwrap_or_default();
        self.low = self.low.min(self.queues.len());
        q
    }

    /// Keeps a drained queue (dropped when the pool is full).
    pub fn give(&mut self, mut q: Box<OutQueue>) {
        if self.queues.len() < MAX {
            q.trim_for_reuse(SPARE_KEPT);
            self.queues.push(q);
        }
    }

    /// Once a second: lets go of the queues that stayed unused since the last tick.
    pub fn tick(&mut self) {
        let unused = self.low.min(self.queues.len());
        self.queues.drain(..unused);
        self.low = self.queues.len();
    }

    /// Queues held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queues.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_unused_for_a_second_are_let_go_and_used_ones_kept() {
        let mut pool = OutPool::default();
        let taken: Vec<_> = (0..10).map(|_| pool.take()).collect();
        for q in taken {
            pool.give(q);
        }
        pool.tick();
        assert_eq!(pool.len(), 10, "all ten were in use during the second");
        let q = pool.take();
        let r = pool.take();
        pool.give(q);
        pool.give(r);
        pool.tick();
        assert_eq!(pool.len(), 2, "eight stayed in the pool the whole second");
        pool.tick();
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn a_pooled_queue_keeps_a_small_buffer_only() {
        let mut pool = OutPool::default();
        let mut q = pool.take();
        // Larger than a pooled queue keeps, small enough for the queue's own spare.
        q.push_bytes(&vec![b'x'; 3 * SPARE_KEPT]);
        q.advance(3 * SPARE_KEPT);
        assert!(q.spare_capacity() >= 3 * SPARE_KEPT);
        // A backlog of many shared frames grew its segment list.
        let frame: std::sync::Arc<[u8]> = std::sync::Arc::from(&[b'y'; 2048][..]);
        for _ in 0..1000 {
            q.push_shared(&frame);
        }
        q.advance(2048 * 1000);
        assert!(q.segments_capacity() >= 1000);
        pool.give(q);
        let q = pool.take();
        assert!(q.spare_capacity() <= SPARE_KEPT, "{}", q.spare_capacity());
        assert!(q.segments_capacity() <= 8, "{}", q.segments_capacity());
    }
}
