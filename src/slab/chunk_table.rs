//! `ChunkTable<T>`: per-slot records indexed by a small dense integer (a connection's slot), in
//! fixed-size chunks that are allocated as the indices grow and never move.
//!
//! Why not a `Vec` grown to `index + 1`: it doubles, so right after a doubling half of it is
//! empty, and at tens of thousands of connections the slack alone costs as much as the records
//! (an engine's 8–20-byte record cost 14–34 bytes per connection). Here the slack is at most one
//! chunk, and growing never copies. Depends on: std only.

/// Records per chunk.
const CHUNK: usize = 1024;

/// A table of `T` by index, default-filled as it grows; see the module doc.
#[derive(Debug, Default)]
pub struct ChunkTable<T> {
    chunks: Vec<Box<[T]>>,
}

impl<T: Default> ChunkTable<T> {
    /// An empty table; allocates nothing.
    pub fn new() -> ChunkTable<T> {
        ChunkTable { chunks: Vec::new() }
    }

    /// The record at `index`, if the table has grown that far.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// Mutable access to the record at `index`, if the table has grown that far.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.chunks.get_mut(index / CHUNK)?.get_mut(index % CHUNK)
    }

    /// The record at `index`, growing the table (with default records) to hold it.
    pub fn grow_to(&mut self, index: usize) -> &mut T {
        while self.chunks.len() <= index / CHUNK {
            self.chunks.push((0..CHUNK).map(|_| T::default()).collect());
        }
        &mut self.chunks[index / CHUNK][index % CHUNK]
    }

    /// Indices the table holds records for (a multiple of the chunk size).
    pub fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_whole_chunks_that_keep_their_place() {
        let mut t: ChunkTable<u32> = ChunkTable::new();
        assert_eq!(t.get(0), None);
        assert_eq!(t.capacity(), 0);
        *t.grow_to(5) = 7;
        assert_eq!(t.capacity(), CHUNK);
        let addr = t.get(5).unwrap() as *const u32;
        assert_eq!(t.get(4), Some(&0), "default-filled");
        *t.grow_to(3 * CHUNK + 1) = 9;
        assert_eq!(t.capacity(), 4 * CHUNK);
        assert_eq!(
            t.get(5).unwrap() as *const u32,
            addr,
            "earlier records never move"
        );
        assert_eq!(t.get(3 * CHUNK + 1), Some(&9));
        assert_eq!(t.get(4 * CHUNK), None);
        if let Some(r) = t.get_mut(5) {
            *r += 1;
        }
        assert_eq!(t.get(5), Some(&8));
    }
}
