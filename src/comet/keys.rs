//! `Keys`: the keys of one worker's subscribers of one channel (keys are the worker's opaque `u64`
//! connection references). A channel's record at its home holds the home's own subscribers in
//! one (`Channel::local`); `LocalSubs` holds them for channels homed on other workers.
//! Depends on `comet::route` (the key mixer) and std.
//!
//! Shaped for the two extremes: no subscriber or one (a million messenger channels) costs the
//! 16 bytes of the value itself, no allocation; a channel with 100,000 subscribers uses a hash set
//! so adding and removing stay O(1). In between, up to `SMALL_MAX` keys live in a plain vector.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::size_of;

/// Lists longer than this become hash sets.
const SMALL_MAX: usize = 32;
/// Hash sets shorter than this become lists again.
const SMALL_AGAIN: usize = 16;

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

/// The subscriber keys of one channel on one worker.
#[derive(Debug, Default)]
pub struct Keys(Inner);

#[derive(Debug, Default)]
enum Inner {
    #[default]
    Empty,
    One(u64),
    Many(Box<Many>),
}

impl Keys {
    /// Number of keys.
    pub fn len(&self) -> usize {
        match &self.0 {
            Inner::Empty => 0,
            Inner::One(_) => 1,
            Inner::Many(m) => match &**m {
                Many::Small(v) => v.len(),
                Many::Large(s) => s.len(),
            },
        }
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Inner::Empty)
    }

    /// Adds `key`; false when it was already there.
    pub fn add(&mut self, key: u64) -> bool {
        match &mut self.0 {
            Inner::Empty => {
                self.0 = Inner::One(key);
                true
            }
            Inner::One(k) if *k == key => false,
            Inner::One(k) => {
                self.0 = Inner::Many(Box::new(Many::Small(vec![*k, key])));
                true
            }
            Inner::Many(m) => match &mut **m {
                Many::Small(v) if v.contains(&key) => false,
                Many::Small(v) if v.len() < SMALL_MAX => {
                    v.push(key);
                    true
                }
                Many::Small(v) => {
                    let mut set = KeySet::with_capacity_and_hasher(v.len() * 2, Default::default());
                    set.extend(v.iter().copied());
                    set.insert(key);
                    **m = Many::Large(set);
                    true
                }
                Many::Large(s) => s.insert(key),
            },
        }
    }

    /// Removes `key`; false when it was not there. Shrinks back towards the inline forms.
    pub fn remove(&mut self, key: u64) -> bool {
        let m = match &mut self.0 {
            Inner::Empty => return false,
            Inner::One(k) => {
                let found = *k == key;
                if found {
                    self.0 = Inner::Empty;
                }
                return found;
            }
            Inner::Many(m) => m,
        };
        let removed = match &mut **m {
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
                    **m = Many::Small(s.iter().copied().collect());
                } else if removed && s.len() * 4 < s.capacity() {
                    s.shrink_to(s.len() * 2);
                }
                removed
            }
        };
        if let Many::Small(v) = &**m {
            match v.as_slice() {
                [only] => self.0 = Inner::One(*only),
                [] => self.0 = Inner::Empty,
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
        match &self.0 {
            Inner::Empty => KeysIter::One(None),
            Inner::One(k) => KeysIter::One(Some(*k)),
            Inner::Many(m) => match &**m {
                Many::Small(v) => KeysIter::Slice(v.iter()),
                Many::Large(s) => KeysIter::Set(s.iter()),
            },
        }
    }

    /// The keys as a vector.
    pub fn into_vec(self) -> Vec<u64> {
        match self.0 {
            Inner::Empty => Vec::new(),
            Inner::One(k) => vec![k],
            Inner::Many(m) => match *m {
                Many::Small(v) => v,
                Many::Large(s) => s.into_iter().collect(),
            },
        }
    }

    /// Estimated heap bytes owned beyond the value itself.
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Inner::Empty | Inner::One(_) => 0,
            Inner::Many(m) => {
                size_of::<Many>()
                    + match &**m {
                        Many::Small(v) => v.capacity() * size_of::<u64>(),
                        // hashbrown: one slot plus one control byte per bucket (+ a group).
                        Many::Large(s) => {
                            let buckets = (s.capacity() * 8 / 7).next_power_of_two();
                            buckets * (size_of::<u64>() + 1) + 16
                        }
                    }
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
    fn keys_fit_sixteen_bytes() {
        assert_eq!(size_of::<Keys>(), 16);
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
