//! `LocalSubs`: one worker's index from channel name to the keys of its own subscribers of that
//! channel (keys are the worker's opaque `u64` connection references). Used to fan a delivered
//! message out locally and to end every local subscriber on `/close`.
//! Depends on `comet::table` and std.
//!
//! Shaped for the two extremes: one subscriber per channel (a million channels) costs one 32-byte
//! map entry with the key inline, no allocation beyond the map; a channel with 100,000
//! subscribers uses a hash set so adding and removing stay O(1). In between, up to `SMALL_MAX`
//! keys live in a plain vector.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::size_of;
use std::sync::Arc;

use super::table::NameMap;

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

/// The keys of one channel on this worker (never empty while stored).
#[derive(Debug)]
enum Subs {
    One(u64),
    Many(Box<Many>),
}

impl Subs {
    fn len(&self) -> usize {
        match self {
            Subs::One(_) => 1,
            Subs::Many(m) => match &**m {
                Many::Small(v) => v.len(),
                Many::Large(s) => s.len(),
            },
        }
    }

    /// Adds `key`; false when it was already there.
    fn add(&mut self, key: u64) -> bool {
        match self {
            Subs::One(k) if *k == key => false,
            Subs::One(k) => {
                *self = Subs::Many(Box::new(Many::Small(vec![*k, key])));
                true
            }
            Subs::Many(m) => match &mut **m {
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

    /// Removes `key`; returns (removed, now empty).
    fn remove(&mut self, key: u64) -> (bool, bool) {
        let Subs::Many(m) = self else {
            let found = matches!(self, Subs::One(k) if *k == key);
            return (found, found);
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
                [only] => *self = Subs::One(*only),
                [] => return (removed, true),
                _ => {}
            }
        }
        (removed, false)
    }

    fn iter(&self) -> SubsIter<'_> {
        match self {
            Subs::One(k) => SubsIter::One(Some(*k)),
            Subs::Many(m) => match &**m {
                Many::Small(v) => SubsIter::Slice(v.iter()),
                Many::Large(s) => SubsIter::Set(s.iter()),
            },
        }
    }

    fn into_vec(self) -> Vec<u64> {
        match self {
            Subs::One(k) => vec![k],
            Subs::Many(m) => match *m {
                Many::Small(v) => v,
                Many::Large(s) => s.into_iter().collect(),
            },
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Subs::One(_) => 0,
            Subs::Many(m) => {
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

/// Iterator over the subscriber keys of one channel (order unspecified).
#[derive(Debug)]
pub enum SubsIter<'a> {
    /// No subscriber.
    Empty,
    /// One inline key.
    One(Option<u64>),
    /// A short list.
    Slice(std::slice::Iter<'a, u64>),
    /// A large set.
    Set(std::collections::hash_set::Iter<'a, u64>),
}

impl Iterator for SubsIter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match self {
            SubsIter::Empty => None,
            SubsIter::One(k) => k.take(),
            SubsIter::Slice(it) => it.next().copied(),
            SubsIter::Set(it) => it.next().copied(),
        }
    }
}

/// One worker's channel → local subscriber keys index.
#[derive(Debug, Default)]
pub struct LocalSubs {
    map: NameMap<Subs>,
    subscribers: usize,
}

impl LocalSubs {
    /// An empty index; allocates nothing.
    pub fn new() -> LocalSubs {
        LocalSubs::default()
    }

    /// Adds subscriber `key` to channel `name`. Returns true when it is this worker's first
    /// subscriber of the channel (the name is then stored by sharing `name`). Adding a key that
    /// is already there changes nothing and returns false.
    pub fn add(&mut self, name: &Arc<[u8]>, key: u64) -> bool {
        if let Some(subs) = self.map.get_mut(name) {
            if subs.add(key) {
                self.subscribers += 1;
            }
            return false;
        }
        match self.map.insert_new(Arc::clone(name), Subs::One(key)) {
            Ok(_) => {
                self.subscribers += 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Removes subscriber `key` from channel `name`. Returns true when this removed the worker's
    /// last subscriber of the channel (the caller then tells the home hub
    /// `worker_has_none_left`). Unknown names or keys change nothing and return false.
    pub fn remove(&mut self, name: &[u8], key: u64) -> bool {
        let Some(subs) = self.map.get_mut(name) else {
            return false;
        };
        let (removed, empty) = subs.remove(key);
        if removed {
            self.subscribers -= 1;
        }
        if empty {
            self.map.remove(name);
        }
        removed && empty
    }

    /// The keys of channel `name` on this worker (empty when none). To end subscribers while
    /// walking them, copy the keys first (`keys_into`) or use `take`.
    pub fn get(&self, name: &[u8]) -> SubsIter<'_> {
        self.map.get(name).map_or(SubsIter::Empty, Subs::iter)
    }

    /// Appends the keys of channel `name` to `out` (reuse `out` across deliveries).
    pub fn keys_into(&self, name: &[u8], out: &mut Vec<u64>) {
        out.extend(self.get(name));
    }

    /// The stored name of channel `name`, to share instead of allocating another copy.
    pub fn name(&self, name: &[u8]) -> Option<&Arc<[u8]>> {
        self.map.get_key_value(name).map(|(k, _)| k)
    }

    /// Number of local subscribers of channel `name`.
    pub fn count(&self, name: &[u8]) -> usize {
        self.map.get(name).map_or(0, Subs::len)
    }

    /// True when `key` is a local subscriber of channel `name`.
    pub fn contains(&self, name: &[u8], key: u64) -> bool {
        self.get(name).any(|k| k == key)
    }

    /// Removes channel `name` and returns all its local keys (for `/close`).
    pub fn take(&mut self, name: &[u8]) -> Vec<u64> {
        match self.map.remove(name) {
            Some((_, subs)) => {
                self.subscribers -= subs.len();
                subs.into_vec()
            }
            None => Vec::new(),
        }
    }

    /// Channels with at least one local subscriber.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no channel has a local subscriber.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Local subscribers over all channels.
    pub fn subscribers(&self) -> usize {
        self.subscribers
    }

    /// Estimated heap bytes of the index, not counting the channel name buffers (usually shared
    /// with the hub; see `names_heap_bytes`).
    pub fn heap_bytes(&self) -> usize {
        self.map.heap_bytes_with(Subs::heap_bytes)
    }

    /// Estimated heap bytes of the channel names, if they are not shared.
    pub fn names_heap_bytes(&self) -> usize {
        self.map.names_heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    fn sorted(it: impl Iterator<Item = u64>) -> Vec<u64> {
        let mut v: Vec<u64> = it.collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn entry_sizes() {
        assert_eq!(size_of::<Subs>(), 16);
        assert_eq!(size_of::<(Arc<[u8]>, Subs)>(), 32);
    }

    #[test]
    fn one_subscriber_is_inline() {
        let mut local = LocalSubs::new();
        let n = name("a");
        assert!(local.add(&n, 7));
        assert_eq!(local.heap_bytes(), local.map.heap_bytes_with(|_| 0));
        assert_eq!(sorted(local.get(b"a")), vec![7]);
        assert!(!local.add(&n, 7), "duplicate add");
        assert_eq!(local.count(b"a"), 1);
        assert!(!local.remove(b"a", 8), "unknown key");
        assert!(local.remove(b"a", 7));
        assert!(local.is_empty());
        assert_eq!(local.subscribers(), 0);
        assert!(!local.remove(b"a", 7));
        assert_eq!(local.heap_bytes(), 0);
    }

    #[test]
    fn first_and_last_flags() {
        let mut local = LocalSubs::new();
        let n = name("c");
        assert!(local.add(&n, 1));
        assert!(!local.add(&n, 2));
        assert!(!local.add(&n, 3));
        assert!(!local.remove(b"c", 1));
        assert!(!local.remove(b"c", 3));
        assert!(local.contains(b"c", 2));
        assert!(local.remove(b"c", 2));
        assert_eq!(local.len(), 0);
    }

    #[test]
    fn grows_to_a_set_and_back() {
        let mut local = LocalSubs::new();
        let n = name("big");
        let count = 100_000u64;
        for k in 0..count {
            local.add(&n, k * 1_000_003);
        }
        assert_eq!(local.count(b"big"), count as usize);
        assert_eq!(local.subscribers(), count as usize);
        assert!(!local.add(&n, 5 * 1_000_003), "duplicate in a set");
        assert_eq!(local.get(b"big").count(), count as usize);
        let per_sub = local.heap_bytes() as f64 / count as f64;
        assert!(per_sub < 24.0, "{per_sub} bytes per subscriber");
        for k in 0..count - 3 {
            assert!(!local.remove(b"big", k * 1_000_003));
        }
        assert_eq!(
            sorted(local.get(b"big")),
            vec![
                (count - 3) * 1_000_003,
                (count - 2) * 1_000_003,
                (count - 1) * 1_000_003
            ]
        );
        assert!(local.heap_bytes() < 1024, "shrunk back to a list");
        assert!(!local.remove(b"big", (count - 3) * 1_000_003));
        assert!(!local.remove(b"big", (count - 2) * 1_000_003));
        assert!(local.remove(b"big", (count - 1) * 1_000_003));
        assert!(local.is_empty());
    }

    #[test]
    fn take_returns_everything() {
        let mut local = LocalSubs::new();
        let (a, b) = (name("a"), name("b"));
        for k in 0..40 {
            local.add(&a, k);
        }
        local.add(&b, 99);
        let mut taken = local.take(b"a");
        taken.sort_unstable();
        assert_eq!(taken, (0..40).collect::<Vec<_>>());
        assert_eq!(local.take(b"b"), vec![99]);
        assert!(local.take(b"zzz").is_empty());
        assert!(local.is_empty());
        assert_eq!(local.subscribers(), 0);
    }

    #[test]
    fn keys_into_and_empty_get() {
        let mut local = LocalSubs::new();
        local.add(&name("x"), 1);
        local.add(&name("x"), 2);
        let mut out = vec![0];
        local.keys_into(b"x", &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![0, 1, 2]);
        assert_eq!(local.get(b"none").count(), 0);
    }
}
