//! `Name`: a channel name shared by reference count, held in one thin (8-byte) pointer.
//!
//! Every record that names a channel (the hub's entry, each subscription, the subscriber index,
//! mail between workers) holds a clone of the one copy the worker made when the name first
//! arrived. `Arc<[u8]>` would do the same with a 16-byte fat pointer and a 16-byte header; here
//! the length sits with the bytes and the header is 8 bytes (a 32-bit count and a 32-bit length),
//! which at one channel per idle subscriber (the messenger layout) is 8 bytes less in the hub's
//! entry, 8 in the subscription and 8 in the name itself.
//!
//! Depends on: std only.

use std::alloc::{self, Layout};
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{self, AtomicU32, Ordering};

/// The allocation's start: the count, the length, then `len` bytes of name.
#[repr(C)]
struct Header {
    count: AtomicU32,
    len: u32,
}

/// The longest name a `Name` can hold (names are far shorter: `limits.max_cname_length` in the
/// config, inside a request head of bounded size).
pub const MAX_LEN: usize = (u32::MAX as usize) - size_of::<Header>();

/// A shared, immutable channel name; clones share one allocation. See the module doc.
pub struct Name {
    /// INVARIANT: points at a live allocation made by `Name::new` with `layout(len)` whose
    /// `count` is at least 1 for as long as this `Name` exists.
    ptr: NonNull<Header>,
}

// SAFETY: the bytes behind a `Name` are never written after `Name::new`, and the count is only
// changed atomically, so sharing or sending a `Name` between threads is as safe as for
// `Arc<[u8]>`.
unsafe impl Send for Name {}
// SAFETY: as for `Send`: `&Name` only reads immutable bytes or clones (an atomic increment).
unsafe impl Sync for Name {}

fn layout(len: usize) -> Layout {
    // Never fails: `len <= MAX_LEN` (checked by `Name::new`) keeps the size below `u32::MAX`.
    match Layout::from_size_align(size_of::<Header>() + len, align_of::<Header>()) {
        Ok(layout) => layout,
        Err(_) => std::process::abort(),
    }
}

impl Name {
    /// A new name holding a copy of `bytes`.
    ///
    /// # Panics
    /// If `bytes` is longer than [`MAX_LEN`] (requests are refused long before that).
    pub fn new(bytes: &[u8]) -> Name {
        assert!(bytes.len() <= MAX_LEN, "channel name too long");
        let layout = layout(bytes.len());
        // SAFETY: the layout's size is at least `size_of::<Header>()` (8), never zero.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<Header>()) else {
            alloc::handle_alloc_error(layout);
        };
        // SAFETY: `raw` is a fresh allocation of `layout`: room for the header, aligned for it,
        // followed by `bytes.len()` bytes that nothing else refers to.
        unsafe {
            ptr.as_ptr().write(Header {
                count: AtomicU32::new(1),
                len: bytes.len() as u32,
            });
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                raw.add(size_of::<Header>()),
                bytes.len(),
            );
        }
        Name { ptr }
    }

    fn header(&self) -> &Header {
        // SAFETY: by the invariant the allocation is live while `self` is, and its header was
        // initialised by `new`.
        unsafe { self.ptr.as_ref() }
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.header().len as usize;
        // SAFETY: `new` wrote `len` bytes right after the header and they are never changed;
        // the allocation lives as long as `self`, which the returned borrow cannot outlive.
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>().add(size_of::<Header>()), len)
        }
    }

    /// True when both are clones of the same allocation.
    pub fn ptr_eq(a: &Name, b: &Name) -> bool {
        a.ptr == b.ptr
    }

    /// The allocation's address: the same for every clone (an identity, never dereferenced).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// How many clones share this allocation.
    pub fn count(this: &Name) -> usize {
        this.header().count.load(Ordering::Acquire) as usize
    }

    /// Heap bytes of a name of `len` bytes before allocator rounding.
    pub const fn heap_bytes(len: usize) -> usize {
        size_of::<Header>() + len
    }
}

impl Clone for Name {
    fn clone(&self) -> Name {
        // Relaxed is enough for an increment (as in `Arc`): the clone is made from a live
        // reference, so the allocation cannot go away meanwhile.
        let old = self.header().count.fetch_add(1, Ordering::Relaxed);
        // Far more clones than any server makes (one per subscriber and queued message): give
        // up rather than let the count wrap and free a name still in use.
        if old > u32::MAX / 2 {
            std::process::abort();
        }
        Name { ptr: self.ptr }
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        if self.header().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other clone's last use happens before the memory is freed (as in `Arc`).
        atomic::fence(Ordering::Acquire);
        let layout = layout(self.header().len as usize);
        // SAFETY: this was the last clone, so nothing refers to the allocation any more; it was
        // made by `alloc::alloc` with this same layout in `new`.
        unsafe { alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout) };
    }
}

impl Deref for Name {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Name {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        Name::ptr_eq(self, other) || self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

/// Hashes as the bytes do, so a `[u8]` can look a `Name` up (`Borrow<[u8]>`).
impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl From<&[u8]> for Name {
    fn from(bytes: &[u8]) -> Name {
        Name::new(bytes)
    }
}

impl From<Vec<u8>> for Name {
    fn from(bytes: Vec<u8>) -> Name {
        Name::new(&bytes)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s.as_bytes())
    }
}

impl<const N: usize> From<&[u8; N]> for Name {
    fn from(bytes: &[u8; N]) -> Name {
        Name::new(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_name_is_one_thin_pointer_with_an_eight_byte_header() {
        assert_eq!(size_of::<Name>(), 8);
        assert_eq!(size_of::<Option<Name>>(), 8);
        assert_eq!(Name::heap_bytes(10), 18);
    }

    #[test]
    fn clones_share_the_bytes_and_the_last_drop_frees_them() {
        let a = Name::new(b"user-42");
        assert_eq!(&*a, b"user-42");
        let b = a.clone();
        assert!(Name::ptr_eq(&a, &b));
        assert_eq!(Name::count(&a), 2);
        drop(a);
        assert_eq!(Name::count(&b), 1);
        assert_eq!(b.as_bytes(), b"user-42");
        let empty = Name::new(b"");
        assert!(empty.is_empty());
    }

    #[test]
    fn compares_and_hashes_as_its_bytes() {
        let a = Name::new(b"abc");
        let b = Name::from(b"abc".to_vec());
        assert_eq!(a, b);
        assert!(!Name::ptr_eq(&a, &b));
        assert!(Name::new(b"abd") > a);
        let set: HashSet<Name> = [a.clone()].into_iter().collect();
        assert!(set.contains(&b"abc"[..]), "found by its bytes");
        assert_eq!(format!("{a:?}"), "\"abc\"");
    }

    #[test]
    fn clones_cross_threads() {
        let a = Name::new(b"shared");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let n = a.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let c = n.clone();
                        assert_eq!(&*c, b"shared");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(Name::count(&a), 1);
    }
}
