//! `Keys`: the keys of one worker's subscribers of one channel (keys are the worker's opaque `u64`
//! connection references). A channel's record at its home holds the home's own subscribers in
//! one (`Channel::local`); `LocalSubs` holds them for channels homed on other workers.
//! Depends on `comet::route` (the key mixer) and std.
//!
//! Shaped for the two extremes: no subscriber or one (a million messenger channels) costs the
//! 8 bytes of the value itself, no allocation; a channel with 100,000 subscribers uses a hash set
//! so adding and removing stay O(1). In between, up to `SMALL_MAX` keys live in a plain vector.
//!
//! The 8 bytes are one word: a key whose bit 31 is clear is the one key itself (connection keys
//! always are: slot numbers stay below 2^31, see `engine::Token::RESERVED_SLOTS`); a word with
//! bit 31 set is the address of the boxed larger form, its bits moved up past bit 31 (0: none).
//! A key with bit 31 set is still kept correctly, in the boxed form, even when it is alone.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::size_of;

/// Lists longer than this become hash sets.
const SMALL_MAX: usize = 32;
/// Hash sets shorter than this become lists again.
const SMALL_AGAIN: usize = 16;

/// Set in every word that is not a key held inline.
const TAG: u64 = 1 << 31;
/// No key.
const NONE: u64 = TAG;
const LOW_BITS: u64 = TAG - 1;

/// Mixes a `u64` key (server-assigned, so a keyed hash is not needed).
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        super::route::mix64(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeySet = HashSet<u64, BuildHasherDefault<KeyHasher>>;

#[derive(Debug)]
enum Many {
    Small(Vec<u64>),
    Large(KeySet),
}

/// The subscriber keys of one channel on one worker (see the module doc for the word).
pub struct Keys(u64);

/// What a `Keys` word holds.
enum View<'a> {
    Empty,
    One(u64),
    Many(&'a Many),
}

/// The word of a boxed larger form.
fn encode(many: Box<Many>) -> u64 {
    let addr = Box::into_raw(many).expose_provenance() as u64;
    // User-space addresses on every 64-bit Linux target are far below 2^63, so the address fits
    // the 32 bits above bit 31 together with its low 31 bits; never 0 (a box is not null).
    assert!(addr >> 63 == 0, "address above 2^63");
    TAG | (addr & LOW_BITS) | ((addr >> 31) << 32)
}

/// The address `encode` put into `word` (0 for `NONE`).
fn address(word: u64) -> usize {
    ((word & LOW_BITS) | ((word >> 32) << 31)) as usize
}

impl Default for Keys {
    fn default() -> Keys {
        Keys(NONE)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        drop(self.take_many());
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Keys {
    /// The address of the boxed form, when the word holds one.
    fn boxed(&self) -> Option<usize> {
        let addr = address(self.0);
        (self.0 & TAG != 0 && addr != 0).then_some(addr)
    }

    fn view(&self) -> View<'_> {
        if self.0 & TAG == 0 {
            return View::One(self.0);
        }
        let Some(addr) = self.boxed() else {
            return View::Empty;
        };
        // SAFETY: a tagged word with a non-zero address was made by `encode` from a live
        // `Box<Many>` that this `Keys` owns alone (it is freed only by `take_many`, which resets
        // the word first); its provenance was exposed there. Shared for as long as `&self`.
        View::Many(unsafe { &*std::ptr::with_exposed_provenance::<Many>(addr) })
    }

    fn many_mut(&mut self) -> Option<&mut Many> {
        let addr = self.boxed()?;
        // SAFETY: as in `view`; `&mut self` makes this the only reference for its lifetime.
        Some(unsafe { &mut *std::ptr::with_exposed_provenance_mut::<Many>(addr) })
    }

    /// Takes the boxed form out, leaving no key; `None` when the keys were inline.
    fn take_many(&mut self) -> Option<Box<Many>> {
        let addr = self.boxed()?;
        self.0 = NONE;
        // SAFETY: the box `encode` leaked; the word no longer names it, so it is rebuilt once.
        Some(unsafe { Box::from_raw(std::ptr::with_exposed_provenance_mut::<Many>(addr)) })
    }

    fn set_many(&mut self, many: Many) {
        drop(self.take_many());
        self.0 = encode(Box::new(many));
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        match self.view() {
            View::Empty => 0,
            View::One(_) => 1,
            View::Many(Many::Small(v)) => v.len(),
            View::Many(Many::Large(s)) => s.len(),
        }
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.0 == NONE
    }

    /// Adds `key`; false when it was already there.
    pub fn add(&mut self, key: u64) -> bool {
        match self.view() {
            View::Empty if key & TAG == 0 => {
                self.0 = key;
                return true;
            }
            View::Empty => {
                self.set_many(Many::Small(vec![key]));
                return true;
            }
            View::One(k) if k == key => return false,
            View::One(k) => {
                self.set_many(Many::Small(vec![k, key]));
                return true;
            }
            View::Many(_) => {}
        }
        let Some(m) = self.many_mut() else {
            return false;
        };
        match m {
            Many::Small(v) if v.contains(&key) => false,
            Many::Small(v) if v.len() < SMALL_MAX => {
                v.push(key);
                true
            }
            Many::Small(v) => {
                let mut set = KeySet::with_capacity_and_hasher(v.len() * 2, Default::default());
                set.extend(v.iter().copied());
                set.insert(key);
                *m = Many::Large(set);
                true
            }
            Many::Large(s) => s.insert(key),
        }
    }

    /// Removes `key`; false when it was not there. Shrinks back towards the inline forms.
    pub fn remove(&mut self, key: u64) -> bool {
        match self.view() {
            View::Empty => return false,
            View::One(k) => {
                let found = k == key;
                if found {
                    self.0 = NONE;
                }
                return found;
            }
            View::Many(_) => {}
        }
        let Some(m) = self.many_mut() else {
            return false;
        };
        let removed = match m {
            Many::Small(v) => match v.iter().position(|&k| k == key) {
                Some(i) => {
                    v.swap_remove(i);
                    true
                }
                None => false,
            },
            Many::Large(s) => {
                let removed = s.remove(&key);
                if removed && s.len() < SMALL_AGAIN {
                    *m = Many::Small(s.iter().copied().collect());
                } else if removed && s.len() * 4 < s.capacity() {
                    s.shrink_to(s.len() * 2);
                }
                removed
            }
        };
        if let Many::Small(v) = m {
            match v.as_slice() {
                [only] if only & TAG == 0 => {
                    let only = *only;
                    drop(self.take_many());
                    self.0 = only;
                }
                [] => drop(self.take_many()),
                _ => {}
            }
        }
        removed
    }

    /// Moves every key of `other` in (duplicates count once).
    pub fn absorb(&mut self, other: Keys) {
        if self.is_empty() {
            *self = other;
            return;
        }
        for key in other.into_vec() {
            self.add(key);
        }
    }

    /// The keys, in no particular order.
    pub fn iter(&self) -> KeysIter<'_> {
        match self.view() {
            View::Empty => KeysIter::One(None),
            View::One(k) => KeysIter::One(Some(k)),
            View::Many(Many::Small(v)) => KeysIter::Slice(v.iter()),
            View::Many(Many::Large(s)) => KeysIter::Set(s.iter()),
        }
    }

    /// The keys as a vector.
    pub fn into_vec(mut self) -> Vec<u64> {
        if let View::One(k) = self.view() {
            return vec![k];
        }
        match self.take_many().map(|m| *m) {
            None => Vec::new(),
            Some(Many::Small(v)) => v,
            Some(Many::Large(s)) => s.into_iter().collect(),
        }
    }

    /// Estimated heap bytes owned beyond the value itself.
    pub fn heap_bytes(&self) -> usize {
        let View::Many(m) = self.view() else {
            return 0;
        };
        size_of::<Many>()
            + match m {
                Many::Small(v) => v.capacity() * size_of::<u64>(),
                // hashbrown: one slot plus one control byte per bucket (+ a group).
                Many::Large(s) => {
                    let buckets = (s.capacity() * 8 / 7).next_power_of_two();
                    buckets * (size_of::<u64>() + 1) + 16
                }
            }
    }
}

/// Iterator over the keys of one channel (order unspecified).
#[derive(Debug)]
pub enum KeysIter<'a> {
    /// No key, or one inline key.
    One(Option<u64>),
    /// A short list.
    Slice(std::slice::Iter<'a, u64>),
    /// A large set.
    Set(std::collections::hash_set::Iter<'a, u64>),
}

impl Iterator for KeysIter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match self {
            KeysIter::One(k) => k.take(),
            KeysIter::Slice(it) => it.next().copied(),
            KeysIter::Set(it) => it.next().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(it: impl Iterator<Item = u64>) -> Vec<u64> {
        let mut v: Vec<u64> = it.collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn keys_fit_eight_bytes() {
        assert_eq!(size_of::<Keys>(), 8);
    }

    #[test]
    fn a_key_with_bit_31_set_is_kept_boxed_even_alone() {
        let odd = (7 << 32) | TAG | 5;
        let mut keys = Keys::default();
        assert!(keys.add(odd));
        assert!(keys.heap_bytes() > 0, "boxed, not inline");
        assert_eq!(sorted(keys.iter()), vec![odd]);
        assert!(keys.add(3));
        assert!(keys.remove(odd));
        assert_eq!(keys.heap_bytes(), 0, "the plain key that is left is inline");
        assert_eq!(sorted(keys.iter()), vec![3]);
        assert!(keys.add(odd));
        assert!(keys.remove(3));
        assert_eq!(keys.len(), 1);
        assert!(keys.heap_bytes() > 0);
        assert!(keys.remove(odd));
        assert!(keys.is_empty());
        assert_eq!(keys.heap_bytes(), 0);
        // Keys in every form convert and drop (a leak or double free shows under a sanitizer).
        for n in [0u64, 1, 2, 40, 100] {
            let mut k = Keys::default();
            for i in 0..n {
                k.add(i | if i % 3 == 0 { TAG } else { 0 });
            }
            assert_eq!(k.len() as u64, n, "{k:?}");
            let mut v = k.into_vec();
            v.sort_unstable();
            assert_eq!(v.len() as u64, n);
        }
    }

    #[test]
    fn none_and_one_are_inline() {
        let mut keys = Keys::default();
        assert!(keys.is_empty());
        assert!(!keys.remove(1));
        assert!(keys.add(7));
        assert!(!keys.add(7), "duplicate add");
        assert_eq!(keys.heap_bytes(), 0);
        assert_eq!(sorted(keys.iter()), vec![7]);
        assert!(!keys.remove(8), "unknown key");
        assert!(keys.remove(7));
        assert!(keys.is_empty());
        assert_eq!(keys.iter().count(), 0);
    }

    #[test]
    fn grows_to_a_set_and_back_to_one_and_none() {
        let mut keys = Keys::default();
        let count = 100_000u64;
        for k in 0..count {
            assert!(keys.add(k * 1_000_003));
        }
        assert_eq!(keys.len(), count as usize);
        assert!(!keys.add(5 * 1_000_003), "duplicate in a set");
        let per_key = keys.heap_bytes() as f64 / count as f64;
        assert!(per_key < 24.0, "{per_key} bytes per key");
        for k in 0..count - 1 {
            assert!(keys.remove(k * 1_000_003));
        }
        assert_eq!(keys.heap_bytes(), 0, "back to one inline key");
        assert_eq!(sorted(keys.iter()), vec![(count - 1) * 1_000_003]);
        assert!(keys.remove((count - 1) * 1_000_003));
        assert!(keys.is_empty());
    }

    #[test]
    fn absorb_merges_without_duplicates() {
        let mut a = Keys::default();
        let mut b = Keys::default();
        a.absorb(Keys::default());
        assert!(a.is_empty());
        for k in 0..5 {
            b.add(k);
        }
        a.absorb(b);
        assert_eq!(a.len(), 5);
        let mut c = Keys::default();
        c.add(4);
        c.add(9);
        a.absorb(c);
        assert_eq!(sorted(a.iter()), vec![0, 1, 2, 3, 4, 9]);
    }
}
