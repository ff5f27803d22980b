//! Giving freed memory back to the OS from an idle thread. The binary's allocator (mimalloc, set
//! in `main.rs`) returns pages a thread freed only from inside a later allocation of that same
//! thread, a second or more after the free. A worker holding a million idle subscribers allocates
//! nothing for minutes, so what it freed while they connected (grown tables' old copies, request
//! transients) would stay resident. `release_freed` asks for that purge explicitly; workers call it
//! once per clock tick. The cluster thread, whose live heap is small next to the replies and state
//! reads it handles, forces a whole collection once a second instead (`release_all_freed`).
//!
//! A collection of work in flight (requests waiting for a reply, subscriptions waiting for their
//! channel) grows with a burst and keeps its capacity after it drains; `ShrinkIdle` gives most of
//! it back, on the same once-a-second schedule.
//!
//! Depends on: std and the allocator's C interface only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Purges what this thread freed more than the allocator's purge delay ago (a no-op for memory
/// still in use, and when mimalloc is not the global allocator, as in unit tests).
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and has no preconditions: it may be called from any
    // thread at any time, and only visits the calling thread's own mimalloc heap (an
    // uninitialised heap makes it return at once).
    unsafe { libmimalloc_sys::mi_collect(false) };
}

/// Like [`release_freed`], and also returns every page this thread's heap no longer uses, at
/// once (a forced collection: it visits all of the thread's pages). For a thread whose live heap
/// is small next to the transients it handles, as the cluster thread's (its state reads and
/// replies for thousands of channels at a time).
pub fn release_all_freed() {
    // SAFETY: as for `release_freed`: no pointers, no preconditions, only the calling thread's
    // own heap is visited.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Capacity below this is never given back (a few small allocations are cheaper to keep).
const KEEP: usize = 32;

/// Shrinks a collection holding less than a quarter of its capacity to twice what it holds
/// (amortised: growing back costs no more than the growth that was given back).
pub trait ShrinkIdle {
    fn shrink_idle(&mut self);
}

fn shrunk_capacity(len: usize, capacity: usize) -> Option<usize> {
    (capacity > KEEP && len < capacity / 4).then(|| (len * 2).max(KEEP / 4))
}

impl<K: Eq + Hash, V, S: BuildHasher> ShrinkIdle for HashMap<K, V, S> {
    fn shrink_idle(&mut self) {
        if let Some(to) = shrunk_capacity(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<K: Eq + Hash, S: BuildHasher> ShrinkIdle for HashSet<K, S> {
    fn shrink_idle(&mut self) {
        if let Some(to) = shrunk_capacity(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T> ShrinkIdle for VecDeque<T> {
    fn shrink_idle(&mut self) {
        if let Some(to) = shrunk_capacity(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T> ShrinkIdle for Vec<T> {
    fn shrink_idle(&mut self) {
        if let Some(to) = shrunk_capacity(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_collection_gives_back_most_of_its_capacity() {
        let mut map: HashMap<u64, u64> = (0..10_000).map(|i| (i, i)).collect();
        map.retain(|&k, _| k < 10);
        map.shrink_idle();
        assert!(map.capacity() < 64, "{}", map.capacity());
        assert_eq!(map.len(), 10);

        let mut queue: VecDeque<u64> = (0..10_000).collect();
        queue.drain(..9_990);
        queue.shrink_idle();
        assert!(queue.capacity() < 64, "{}", queue.capacity());
        assert_eq!(
            queue.iter().copied().collect::<Vec<_>>(),
            (9_990..10_000).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_busy_or_small_collection_keeps_its_capacity() {
        let mut busy: Vec<u64> = Vec::with_capacity(1024);
        busy.extend(0..300);
        busy.shrink_idle();
        assert_eq!(busy.capacity(), 1024, "a quarter or more in use");
        let mut small: Vec<u64> = Vec::with_capacity(KEEP);
        small.shrink_idle();
        assert_eq!(small.capacity(), KEEP);
    }
}
