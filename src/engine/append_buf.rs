//! `AppendBuf`: a byte buffer of fixed capacity that one owner appends to, while the bytes
//! already written are shared, read-only, by any number of `SharedRange`s on any thread. The
//! buffer never moves or grows, so a range stays valid while the owner goes on appending after
//! it; two ranges that follow each other in one buffer merge into one (`SharedRange::extend`).
//!
//! Why: a channel's frames are written once into such a buffer and every subscriber's queue
//! takes its range. A subscriber that stops reading keeps one range that grows with each frame
//! it misses, turn after turn, instead of one reference per frame or per turn.
//!
//! Depends on: std only.

use std::fmt;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;

/// Largest capacity: ranges use 32-bit offsets.
const MAX_CAPACITY: usize = u32::MAX as usize;

/// The heap block behind an `AppendBuf` and its ranges.
struct Block {
    /// First of `cap` bytes, from a leaked `Box<[MaybeUninit<u8>]>`; freed in `drop`.
    ptr: NonNull<u8>,
    cap: usize,
}

// SAFETY: a `Block` is a heap allocation owned by its `Arc`. Its bytes are written only by the
// one `AppendBuf` that made it, only past every range handed out so far, and read only through
// `SharedRange`s, which cover bytes already written. A range reaches another thread only by
// being moved or cloned through something that synchronises (a channel send), so the writes of
// its bytes happen before any read of them on that thread, and no byte is ever written while a
// reader can see it.
unsafe impl Send for Block {}
// SAFETY: as for `Send`: shared access only ever reads bytes that are no longer written.
unsafe impl Sync for Block {}

impl Drop for Block {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(
            self.ptr.as_ptr().cast::<MaybeUninit<u8>>(),
            self.cap,
        );
        // SAFETY: `ptr` and `cap` are the leaked boxed slice `AppendBuf::with_capacity` made; the
        // last `Arc` of the block is going, so nothing reads it any more, and it is freed once.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// The writing end: appends into its block; hands out ranges of what it wrote.
pub struct AppendBuf {
    block: Arc<Block>,
    /// Bytes written; every range handed out ends at or before it.
    len: usize,
}

impl AppendBuf {
    /// An empty buffer of `capacity` bytes (at least 1, at most `u32::MAX`).
    pub fn with_capacity(capacity: usize) -> AppendBuf {
        let boxed: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(capacity.clamp(1, MAX_CAPACITY));
        let cap = boxed.len();
        let ptr = NonNull::from(Box::leak(boxed)).cast::<u8>();
        AppendBuf {
            block: Arc::new(Block { ptr, cap }),
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.block.cap
    }

    /// Bytes that can still be appended.
    pub fn room(&self) -> usize {
        self.block.cap - self.len
    }

    /// True when some range of this buffer is still alive somewhere.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.block) > 1
    }

    /// Appends `parts` one after another and returns the range they fill; `None` (nothing
    /// written) when they are empty or do not fit in the room left.
    pub fn append(&mut self, parts: &[&[u8]]) -> Option<SharedRange> {
        let total = parts
            .iter()
            .try_fold(0usize, |sum, p| sum.checked_add(p.len()))?;
        if total == 0 || total > self.room() {
            return None;
        }
        let start = self.len;
        for part in parts {
            // SAFETY: `len + part.len() <= cap` (the total, summed without overflow, fits in the
            // room), so the destination
            // lies inside the block, which this buffer's `Arc` keeps alive; it is past every
            // range handed out (they end at or before `len`), so no reference to these bytes
            // exists anywhere; source and destination are different allocations.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr(),
                    self.block.ptr.as_ptr().add(self.len),
                    part.len(),
                );
            }
            self.len += part.len();
        }
        Some(SharedRange {
            block: Arc::clone(&self.block),
            start: start as u32,
            end: self.len as u32,
        })
    }
}

/// Bytes `start..end` of an `AppendBuf`'s block: written, and never written again.
#[derive(Clone)]
pub struct SharedRange {
    block: Arc<Block>,
    start: u32,
    end: u32,
}

impl SharedRange {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `start..end` lies inside the block (checked by `append`), which this range's
        // `Arc` keeps alive; those bytes were written before the range existed and the writer
        // only ever writes past them, so they are initialised and immutable from now on.
        unsafe {
            std::slice::from_raw_parts(self.block.ptr.as_ptr().add(self.start as usize), self.len())
        }
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Takes `next` into this range when it starts where this one ends, in the same buffer.
    pub fn extend(&mut self, next: &SharedRange) -> bool {
        if Arc::ptr_eq(&self.block, &next.block) && self.end == next.start {
            self.end = next.end;
            return true;
        }
        false
    }
}

impl fmt::Debug for SharedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedRange({}..{})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_keep_their_bytes_while_the_buffer_goes_on_and_neighbours_merge() {
        let mut buf = AppendBuf::with_capacity(16);
        let mut first = buf.append(&[b"ab", b"c"]).expect("fits");
        assert_eq!(first.bytes(), b"abc");
        let second = buf.append(&[b"defg"]).expect("fits");
        assert_eq!(first.bytes(), b"abc", "unchanged by the next append");
        assert_eq!(second.bytes(), b"defg");
        assert!(first.extend(&second), "second starts where first ends");
        assert_eq!(first.bytes(), b"abcdefg");
        assert!(!second.clone().extend(&first), "not the other way round");
        assert_eq!(buf.room(), 9);
        assert!(buf.append(&[&[b'x'; 10]]).is_none(), "does not fit");
        assert!(buf.append(&[b"", b""]).is_none(), "empty");
        assert_eq!(buf.room(), 9, "a refused append writes nothing");
        let mut other = AppendBuf::with_capacity(16);
        let third = other.append(&[b"hij"]).expect("fits");
        let mut again = buf.append(&[b"h"]).expect("fits");
        assert!(!again.extend(&third), "another buffer, even right after");
        assert_eq!(again.bytes(), b"h");
    }

    #[test]
    fn the_block_lives_as_long_as_a_range_and_is_shared_only_while_one_lives() {
        let mut buf = AppendBuf::with_capacity(8);
        assert!(!buf.is_shared());
        let range = buf.append(&[b"kept"]).expect("fits");
        assert!(buf.is_shared());
        drop(buf);
        assert_eq!(range.bytes(), b"kept", "the range holds the block");
        let moved = std::thread::spawn(move || range.bytes().to_vec())
            .join()
            .expect("reader thread");
        assert_eq!(moved, b"kept");
    }

    #[test]
    fn a_reader_on_another_thread_sees_each_range_while_the_writer_appends() {
        let (tx, rx) = std::sync::mpsc::channel::<SharedRange>();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            for range in rx {
                all.extend_from_slice(range.bytes());
            }
            all
        });
        let mut buf = AppendBuf::with_capacity(4096);
        let mut want = Vec::new();
        for i in 0..1000u32 {
            let text = i.to_string();
            want.extend_from_slice(text.as_bytes());
            if let Some(range) = buf.append(&[text.as_bytes()]) {
                tx.send(range).expect("reader alive");
            } else {
                buf = AppendBuf::with_capacity(4096);
                let range = buf.append(&[text.as_bytes()]).expect("fits a new buffer");
                tx.send(range).expect("reader alive");
            }
        }
        drop(tx);
        assert_eq!(reader.join().expect("reader thread"), want);
    }
}
