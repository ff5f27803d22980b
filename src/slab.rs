//! `Slab<T>`: fixed-size slots in chunks that never move, addressed by index + generation, with a
//! free list so freed slots are reused first (keeping the working set dense).
//!
//! A chunk is allocated when the previous ones are full and is never reallocated, so growing to a
//! million connections copies nothing and never needs twice the memory. Depends on: std only.

/// Slots per chunk: 1024 connection slots of 48 bytes are 48 KiB, small enough that the last,
/// partly used chunk of each worker adds little per connection at tens of thousands.
const CHUNK: usize = 1024;

pub mod chunk_table;
pub use chunk_table::ChunkTable;

enum Entry<T> {
    Occupied(T),
    /// Index of the next free slot, or `u32::MAX` at the end of the list.
    Vacant(u32),
}

struct Slot<T> {
    generation: u32,
    entry: Entry<T>,
}

/// A slab of `T` with stable slots. Keys are `(index, generation)`; a key whose generation does not
/// match the slot's current one is stale and finds nothing.
pub struct Slab<T> {
    chunks: Vec<Box<[Slot<T>]>>,
    free_head: u32,
    len: usize,
    /// INVARIANT: never exceeds `max_slots`, which is below `engine::Token::RESERVED_SLOTS`.
    max_slots: usize,
}

impl<T> Slab<T> {
    /// A slab that will never hold more than `max_slots` entries.
    pub fn with_max(max_slots: usize) -> Slab<T> {
        Slab {
            chunks: Vec::new(),
            free_head: u32::MAX,
            len: 0,
            max_slots: max_slots.min(0x7fff_ffff),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated so far (occupied or free).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    fn slot(&self, index: u32) -> Option<&Slot<T>> {
        let i = index as usize;
        self.chunks.get(i / CHUNK).and_then(|c| c.get(i % CHUNK))
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        let i = index as usize;
        self.chunks
            .get_mut(i / CHUNK)
            .and_then(|c| c.get_mut(i % CHUNK))
    }

    /// Stores `value` and returns its `(index, generation)`, or gives the value back when full.
    pub fn insert(&mut self, value: T) -> Result<(u32, u32), T> {
        if self.len >= self.max_slots {
            return Err(value);
        }
        if self.free_head == u32::MAX {
            self.grow();
        }
        let index = self.free_head;
        let Some(slot) = self.slot_mut(index) else {
            return Err(value);
        };
        let next = match slot.entry {
            Entry::Vacant(next) => next,
            Entry::Occupied(_) => return Err(value),
        };
        slot.entry = Entry::Occupied(value);
        let generation = slot.generation;
        self.free_head = next;
        self.len += 1;
        Ok((index, generation))
    }

    fn grow(&mut self) {
        let base = (self.chunks.len() * CHUNK) as u32;
        let chunk: Box<[Slot<T>]> = (0..CHUNK as u32)
            .map(|i| Slot {
                generation: 0,
                entry: Entry::Vacant(if i + 1 == CHUNK as u32 {
                    u32::MAX
                } else {
                    base + i + 1
                }),
            })
            .collect();
        self.chunks.push(chunk);
        self.free_head = base;
    }

    pub fn get(&self, index: u32, generation: u32) -> Option<&T> {
        let slot = self.slot(index).filter(|s| s.generation == generation)?;
        let Entry::Occupied(v) = &slot.entry else {
            return None;
        };
        Some(v)
    }

    pub fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        let slot = self
            .slot_mut(index)
            .filter(|s| s.generation == generation)?;
        let Entry::Occupied(v) = &mut slot.entry else {
            return None;
        };
        Some(v)
    }

    /// Removes and returns the value; the slot's generation moves on so old keys go stale.
    pub fn remove(&mut self, index: u32, generation: u32) -> Option<T> {
        let free_head = self.free_head;
        let slot = self.slot_mut(index)?;
        if slot.generation != generation || matches!(slot.entry, Entry::Vacant(_)) {
            return None;
        }
        let old = std::mem::replace(&mut slot.entry, Entry::Vacant(free_head));
        slot.generation = slot.generation.wrapping_add(1);
        self.free_head = index;
        self.len -= 1;
        match old {
            Entry::Occupied(v) => Some(v),
            Entry::Vacant(_) => None,
        }
    }

    /// Visits the occupied slots from index `start` on, in index order, looking at no more than
    /// `budget` slots (occupied or free): `visit(index, generation, value)` returns false to stop
    /// after that slot. Returns the index to continue from, or `None` once past the last slot.
    pub fn scan(
        &self,
        start: u32,
        budget: usize,
        mut visit: impl FnMut(u32, u32, &T) -> bool,
    ) -> Option<u32> {
        let end = self.chunks.len() * CHUNK;
        let mut i = start as usize;
        let stop = end.min(i.saturating_add(budget));
        while i < stop {
            let slot = &self.chunks[i / CHUNK][i % CHUNK];
            i += 1;
            if let Entry::Occupied(v) = &slot.entry {
                if !visit((i - 1) as u32, slot.generation, v) {
                    break;
                }
            }
        }
        (i < end).then_some(i as u32)
    }

    /// Keys of every occupied slot.
    pub fn keys(&self) -> Vec<(u32, u32)> {
        let mut keys = Vec::with_capacity(self.len);
        for (c, chunk) in self.chunks.iter().enumerate() {
            for (i, slot) in chunk.iter().enumerate() {
                if let Entry::Occupied(_) = slot.entry {
                    keys.push(((c * CHUNK + i) as u32, slot.generation));
                }
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_freed_slots_with_a_new_generation() {
        let mut slab = Slab::with_max(10_000);
        let a = slab.insert("a").unwrap();
        let b = slab.insert("b").unwrap();
        assert_eq!(slab.get(a.0, a.1), Some(&"a"));
        assert_eq!(slab.remove(a.0, a.1), Some("a"));
        assert_eq!(slab.get(a.0, a.1), None, "stale key finds nothing");
        let c = slab.insert("c").unwrap();
        assert_eq!(c.0, a.0, "freed slot reused first");
        assert_ne!(c.1, a.1);
        assert_eq!(slab.remove(a.0, a.1), None, "stale key removes nothing");
        assert_eq!(slab.get(b.0, b.1), Some(&"b"));
        assert_eq!(slab.len(), 2);
    }

    #[test]
    fn a_scan_visits_occupied_slots_in_order_within_its_budget() {
        let mut slab = Slab::with_max(3 * CHUNK);
        let keys: Vec<_> = (0..CHUNK + 5).map(|i| slab.insert(i).unwrap()).collect();
        slab.remove(keys[1].0, keys[1].1);
        let mut seen = Vec::new();
        let next = slab.scan(0, 4, |index, generation, v| {
            seen.push((index, generation, *v));
            true
        });
        assert_eq!(next, Some(4));
        assert_eq!(
            seen,
            vec![(0, keys[0].1, 0), (2, keys[2].1, 2), (3, keys[3].1, 3)]
        );
        // Stopping early continues right after the slot that said stop.
        let mut n = 0;
        assert_eq!(
            slab.scan(4, usize::MAX, |_, _, _| {
                n += 1;
                n < 2
            }),
            Some(6)
        );
        // Past the last chunk the scan is over.
        let mut count = 0;
        assert_eq!(
            slab.scan(6, usize::MAX, |_, _, _| {
                count += 1;
                true
            }),
            None
        );
        assert_eq!(count, CHUNK + 5 - 6);
        assert_eq!(slab.scan(u32::MAX, 10, |_, _, _| true), None);
    }

    #[test]
    fn grows_in_chunks_that_do_not_move_and_respects_the_maximum() {
        let mut slab = Slab::with_max(CHUNK + 10);
        let first = slab.insert(0usize).unwrap();
        let addr = slab.get(first.0, first.1).unwrap() as *const usize;
        for i in 1..CHUNK + 10 {
            slab.insert(i).unwrap();
        }
        assert_eq!(slab.get(first.0, first.1).unwrap() as *const usize, addr);
        assert!(slab.insert(99).is_err(), "full at the maximum");
        assert_eq!(slab.capacity(), 2 * CHUNK);
        assert_eq!(slab.keys().len(), CHUNK + 10);
    }
}
