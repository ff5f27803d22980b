//! `NameMap<V>`: a compact hash map from channel name (`Name`) to `V`, used by the hub and
//! by the per-worker subscriber index. Depends on std only.
//!
//! Why not `std::collections::HashMap`: its table stores whole entries, so the empty buckets left
//! after a doubling cost as much as live ones; at 500,000 channels the table is less than half
//! full and a 72-byte entry costs ~150 bytes. Here the hash table holds only 8-byte slots
//! (32 hash bits + entry index) and the entries sit densely in fixed-size chunks that never move,
//! so the slack is ~8–21 bytes per entry and growing never copies the entries.
//!
//! * Slots: linear probing, power-of-two length, at most 4/5 full, backward-shift deletion (no
//!   tombstones). The home position is derived from the 32 stored hash bits, so resizing never
//!   re-hashes names. Names are client-chosen, so the hash is the keyed SipHash of `RandomState`.
//! * Entries: indices `0..len` stay dense; removal moves the last entry into the hole.
//!   Chunk 0 grows like a `Vec` up to `CHUNK` entries; later chunks are allocated at exactly
//!   `CHUNK`. At most one empty chunk is kept at the end to avoid churn at a boundary.
//! * Everything is freed when the map becomes empty: an empty map owns no heap memory.

use crate::comet::name::Name;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::mem::size_of;

const CHUNK_SHIFT: u32 = 9;
const CHUNK: usize = 1 << CHUNK_SHIFT;
const CHUNK_MASK: usize = CHUNK - 1;
const MIN_SLOTS: usize = 8;
/// Largest entry index a slot can hold (`u32::MAX` is reserved because slots store index + 1).
const MAX_ENTRIES: usize = (u32::MAX - 1) as usize;

const EMPTY: u64 = 0;

fn slot_hash(slot: u64) -> u32 {
    (slot >> 32) as u32
}

/// Entry index stored in an occupied slot.
fn slot_index(slot: u64) -> usize {
    (slot as u32 as usize).wrapping_sub(1)
}

fn make_slot(hash: u32, index: usize) -> u64 {
    (u64::from(hash) << 32) | (index as u64 + 1)
}

/// Estimated size of an allocation of `n` bytes after allocator rounding (mimalloc-like size
/// classes: multiples of 8 up to 64, then four classes per power of two).
pub fn alloc_estimate(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    if n <= 64 {
        return n.div_ceil(8) * 8;
    }
    let top = usize::BITS - 1 - n.leading_zeros();
    let step = 1usize << (top - 2);
    n.div_ceil(step) * step
}

/// Heap bytes of a [`Name`] holding `len` bytes (its 8-byte header plus the bytes, rounded).
pub fn name_bytes(len: usize) -> usize {
    alloc_estimate(Name::heap_bytes(len))
}

/// Compact map from name to `V`; see the module doc.
#[derive(Debug)]
pub struct NameMap<V> {
    /// INVARIANT: empty or a power of two ≥ `MIN_SLOTS`, with at least one `EMPTY` slot.
    slots: Vec<u64>,
    /// INVARIANT: entry `i` is `chunks[i >> CHUNK_SHIFT][i & CHUNK_MASK]` for `i < len`.
    chunks: Vec<Vec<(Name, V)>>,
    len: usize,
    hasher: RandomState,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> NameMap<V> {
    /// An empty map; allocates nothing.
    pub fn new() -> Self {
        NameMap {
            slots: Vec::new(),
            chunks: Vec::new(),
            len: 0,
            hasher: RandomState::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hash(&self, name: &[u8]) -> u32 {
        self.hasher.hash_one(name) as u32
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The entry at `index` (indices are dense, `0..len`, and change when entries are removed).
    pub fn entry_at(&self, index: usize) -> Option<(&Name, &V)> {
        let chunk = self
            .chunks
            .get(index >> CHUNK_SHIFT)
            .filter(|_| index < self.len)?;
        chunk.get(index & CHUNK_MASK).map(|(k, v)| (k, v))
    }

    /// Mutable access to the entry at `index`.
    pub fn entry_at_mut(&mut self, index: usize) -> Option<(&Name, &mut V)> {
        let len = self.len;
        let chunk = self
            .chunks
            .get_mut(index >> CHUNK_SHIFT)
            .filter(|_| index < len)?;
        chunk.get_mut(index & CHUNK_MASK).map(|(k, v)| (&*k, v))
    }

    /// Finds `name`: its slot position and entry index.
    fn find(&self, name: &[u8]) -> Option<(usize, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        let hash = self.hash(name);
        let pos = self.probe(hash, |slot| {
            slot_hash(slot) == hash
                && self
                    .entry_at(slot_index(slot))
                    .is_some_and(|(key, _)| **key == *name)
        })?;
        Some((pos, slot_index(*self.slots.get(pos)?)))
    }

    /// Slot position that refers to entry `index`, whose key hashes to `hash`.
    fn slot_of(&self, hash: u32, index: usize) -> Option<usize> {
        self.probe(hash, |slot| slot_index(slot) == index)
    }

    /// Walks the probe sequence of `hash` (from its home slot to the first empty one): the
    /// position of the first occupied slot that `hit` accepts.
    fn probe(&self, hash: u32, hit: impl Fn(u64) -> bool) -> Option<usize> {
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        for _ in 0..self.slots.len() {
            let slot = *self.slots.get(pos)?;
            if slot == EMPTY {
                return None;
            }
            if hit(slot) {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
        None
    }

    /// Entry index of `name`.
    pub fn index_of(&self, name: &[u8]) -> Option<usize> {
        self.find(name).map(|(_, index)| index)
    }

    /// True when `name` is present.
    pub fn contains_key(&self, name: &[u8]) -> bool {
        self.find(name).is_some()
    }

    /// The value for `name`.
    pub fn get(&self, name: &[u8]) -> Option<&V> {
        let (_, index) = self.find(name)?;
        self.entry_at(index).map(|(_, v)| v)
    }

    /// Mutable value for `name`.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut V> {
        let (_, index) = self.find(name)?;
        self.entry_at_mut(index).map(|(_, v)| v)
    }

    /// The stored key and value for `name`.
    pub fn get_key_value(&self, name: &[u8]) -> Option<(&Name, &V)> {
        let (_, index) = self.find(name)?;
        self.entry_at(index)
    }

    /// Inserts a key that is not present yet and returns its entry index. Fails (giving the
    /// entry back) when the key is already present or the map is at its entry limit.
    pub fn insert_new(&mut self, key: Name, value: V) -> Result<usize, (Name, V)> {
        if self.len >= MAX_ENTRIES || self.find(&key).is_some() {
            return Err((key, value));
        }
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            self.resize((self.slots.len() * 2).max(MIN_SLOTS));
        }
        let hash = self.hash(&key);
        let index = self.len;
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        while self.slots.get(pos).is_some_and(|&s| s != EMPTY) {
            pos = (pos + 1) & mask;
        }
        match self.slots.get_mut(pos) {
            Some(slot) => *slot = make_slot(hash, index),
            None => return Err((key, value)),
        }
        self.push_entry((key, value));
        Ok(index)
    }

    /// Removes `name`, returning its key and value.
    pub fn remove(&mut self, name: &[u8]) -> Option<(Name, V)> {
        let (pos, index) = self.find(name)?;
        self.remove_found(pos, index)
    }

    /// Removes the entry at `index` (the last entry then takes its index).
    pub fn remove_at(&mut self, index: usize) -> Option<(Name, V)> {
        let hash = self.hash(self.entry_at(index)?.0);
        let pos = self.slot_of(hash, index)?;
        self.remove_found(pos, index)
    }

    fn remove_found(&mut self, pos: usize, index: usize) -> Option<(Name, V)> {
        self.delete_slot(pos);
        let removed = self.swap_remove_entry(index)?;
        if self.len == 0 {
            self.slots = Vec::new();
            self.chunks = Vec::new();
        } else if self.slots.len() > MIN_SLOTS && self.len * 8 < self.slots.len() {
            self.resize(self.slots.len() / 2);
        }
        Some(removed)
    }

    /// Keeps the entries for which `keep` returns true; the others are dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&Name, &mut V) -> bool) {
        let mut index = 0;
        while index < self.len {
            let kept = match self.entry_at_mut(index) {
                Some((key, value)) => keep(key, value),
                None => true,
            };
            if kept || self.remove_at(index).is_none() {
                index += 1;
            }
        }
    }

    /// Every entry, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (&Name, &V)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .map(|(k, v)| (k, v))
    }

    /// Every entry with mutable values, in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Name, &mut V)> {
        self.chunks
            .iter_mut()
            .flat_map(|c| c.iter_mut())
            .map(|(k, v)| (&*k, v))
    }

    /// Heap bytes of the slots and entry chunks, plus `value_heap` for each value. Key name
    /// buffers are not included (they may be shared); see `names_heap_bytes`.
    pub fn heap_bytes_with(&self, value_heap: impl Fn(&V) -> usize) -> usize {
        let slots = self.slots.capacity() * size_of::<u64>();
        let outer = self.chunks.capacity() * size_of::<Vec<(Name, V)>>();
        let entries: usize = self
            .chunks
            .iter()
            .map(|c| c.capacity() * size_of::<(Name, V)>())
            .sum();
        let values: usize = self.iter().map(|(_, v)| value_heap(v)).sum();
        slots + outer + entries + values
    }

    /// Estimated heap bytes of the key name buffers.
    pub fn names_heap_bytes(&self) -> usize {
        self.iter().map(|(k, _)| name_bytes(k.len())).sum()
    }

    fn resize(&mut self, new_len: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; new_len]);
        let mask = self.mask();
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            let mut pos = slot_hash(slot) as usize & mask;
            while self.slots.get(pos).is_some_and(|&s| s != EMPTY) {
                pos = (pos + 1) & mask;
            }
            if let Some(target) = self.slots.get_mut(pos) {
                *target = slot;
            }
        }
    }

    /// Empties slot `pos`, shifting later members of the probe run back so lookups still find
    /// them without tombstones.
    fn delete_slot(&mut self, pos: usize) {
        let mask = self.mask();
        let mut hole = pos;
        if let Some(slot) = self.slots.get_mut(hole) {
            *slot = EMPTY;
        }
        let mut next = pos;
        loop {
            next = (next + 1) & mask;
            let slot = match self.slots.get(next) {
                Some(&s) if s != EMPTY => s,
                _ => break,
            };
            let home = slot_hash(slot) as usize & mask;
            // The slot may move into the hole when the hole lies between its home and `next`.
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.slots.swap(hole, next);
                hole = next;
            }
        }
    }

    fn push_entry(&mut self, entry: (Name, V)) {
        let chunk = self.len >> CHUNK_SHIFT;
        if chunk == self.chunks.len() {
            self.chunks.push(if chunk == 0 {
                Vec::new()
            } else {
                Vec::with_capacity(CHUNK)
            });
        }
        if let Some(c) = self.chunks.get_mut(chunk) {
            c.push(entry);
            self.len += 1;
        }
    }

    fn pop_entry(&mut self) -> Option<(Name, V)> {
        let last = self.len.checked_sub(1)?;
        let chunk = last >> CHUNK_SHIFT;
        // Keep at most one empty chunk at the end.
        self.chunks.truncate(chunk + 1);
        let entry = self.chunks.get_mut(chunk)?.pop()?;
        self.len = last;
        Some(entry)
    }

    /// Removes entry `index` by moving the last entry into its place and re-pointing that entry's
    /// slot. The slot of `index` itself must already be deleted.
    fn swap_remove_entry(&mut self, index: usize) -> Option<(Name, V)> {
        let last = self.len.checked_sub(1)?;
        if index == last {
            return self.pop_entry();
        }
        let moved = self.pop_entry()?;
        let hash = self.hash(&moved.0);
        if let Some(pos) = self.slot_of(hash, last) {
            if let Some(slot) = self.slots.get_mut(pos) {
                *slot = make_slot(hash, index);
            }
        }
        let place = self
            .chunks
            .get_mut(index >> CHUNK_SHIFT)?
            .get_mut(index & CHUNK_MASK)?;
        Some(std::mem::replace(place, moved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: usize) -> Name {
        Name::from(format!("ch{i}").into_bytes())
    }

    /// Checks every invariant the lookups rely on.
    fn check<V>(map: &NameMap<V>) {
        let occupied = map.slots.iter().filter(|&&s| s != EMPTY).count();
        assert_eq!(occupied, map.len);
        if map.len > 0 {
            assert!(map.slots.len().is_power_of_two());
            assert!(map.len * 5 <= map.slots.len() * 4);
        }
        for index in 0..map.len {
            let (key, _) = map.entry_at(index).unwrap();
            assert_eq!(map.index_of(key), Some(index));
        }
        assert!(map.chunks.iter().all(|c| c.capacity() <= CHUNK));
    }

    #[test]
    fn empty_map_owns_nothing() {
        let map: NameMap<u32> = NameMap::new();
        assert_eq!(map.heap_bytes_with(|_| 0), 0);
        assert!(map.get(b"x").is_none());
        assert!(map.is_empty());
    }

    #[test]
    fn insert_get_remove() {
        let mut map = NameMap::new();
        for i in 0..2000 {
            assert_eq!(map.insert_new(name(i), i), Ok(i));
        }
        check(&map);
        assert_eq!(map.len(), 2000);
        for i in 0..2000 {
            assert_eq!(map.get(&name(i)), Some(&i));
        }
        assert!(map.get(b"nope").is_none());
        assert!(map.insert_new(name(5), 0).is_err());
        for i in (0..2000).step_by(3) {
            let (k, v) = map.remove(&name(i)).unwrap();
            assert_eq!((&*k, v), (&*name(i), i));
        }
        check(&map);
        for i in 0..2000 {
            assert_eq!(map.get(&name(i)).is_some(), i % 3 != 0, "{i}");
        }
        assert!(map.remove(&name(0)).is_none());
    }

    #[test]
    fn empty_name_is_a_key() {
        let mut map = NameMap::new();
        map.insert_new(Name::from(&b""[..]), 7).unwrap();
        assert_eq!(map.get(b""), Some(&7));
        *map.get_mut(b"").unwrap() = 8;
        assert_eq!(map.remove(b"").map(|(_, v)| v), Some(8));
    }

    #[test]
    fn shrinks_and_frees() {
        let mut map = NameMap::new();
        for i in 0..5000 {
            map.insert_new(name(i), ()).unwrap();
        }
        let big = map.heap_bytes_with(|_| 0);
        for i in 0..4990 {
            map.remove(&name(i)).unwrap();
        }
        check(&map);
        assert!(map.heap_bytes_with(|_| 0) < big / 10);
        for i in 4990..5000 {
            map.remove(&name(i)).unwrap();
        }
        assert_eq!(map.heap_bytes_with(|_| 0), 0);
    }

    #[test]
    fn retain_removes_while_iterating() {
        let mut map = NameMap::new();
        for i in 0..1500 {
            map.insert_new(name(i), i).unwrap();
        }
        let mut seen = 0;
        map.retain(|_, v| {
            seen += 1;
            *v % 2 == 0
        });
        assert_eq!(seen, 1500);
        assert_eq!(map.len(), 750);
        check(&map);
        assert!(map.iter().all(|(_, v)| v % 2 == 0));
    }

    #[test]
    fn churn_at_chunk_boundary_keeps_invariants() {
        let mut map = NameMap::new();
        for i in 0..CHUNK + 1 {
            map.insert_new(name(i), i).unwrap();
        }
        for round in 0..4 {
            map.remove(&name(CHUNK)).unwrap();
            map.remove(&name(CHUNK - 1)).unwrap();
            check(&map);
            map.insert_new(name(CHUNK - 1), round).unwrap();
            map.insert_new(name(CHUNK), round).unwrap();
            check(&map);
        }
        assert!(map.chunks.len() <= 2);
    }

    #[test]
    fn alloc_estimates() {
        assert_eq!(alloc_estimate(0), 0);
        assert_eq!(alloc_estimate(1), 8);
        assert_eq!(alloc_estimate(30), 32);
        assert_eq!(alloc_estimate(65), 80);
        assert_eq!(alloc_estimate(129), 160);
        assert_eq!(name_bytes(14), 24);
    }
}
