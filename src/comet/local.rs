//! `LocalSubs`: an index from channel name to the keys of one worker's own subscribers of that
//! channel (keys are the worker's opaque `u64` connection references), for channels whose home is
//! another worker (spread channels, a WebSocket's further channels, a subscription still waiting
//! for its home). The home's own subscribers are kept in the channel's record instead
//! (`Channel::local`; the hub hands keys between the two when a channel is created or freed).
//! Used to fan a delivered message out locally and to end every local subscriber on `/close`.
//! Depends on `comet::{keys, table}` and std.
//!
//! One subscriber costs one 32-byte map entry with its key inline, no allocation beyond the map.

use crate::comet::name::Name;

use super::keys::{Keys, KeysIter};
use super::table::NameMap;

/// One worker's channel → local subscriber keys index (a stored entry is never empty).
#[derive(Debug, Default)]
pub struct LocalSubs {
    map: NameMap<Keys>,
}

impl LocalSubs {
    /// An empty index; allocates nothing.
    pub fn new() -> LocalSubs {
        LocalSubs::default()
    }

    /// Adds subscriber `key` to channel `name`. Returns true when it is this worker's first
    /// subscriber of the channel (the name is then stored by sharing `name`). Adding a key that
    /// is already there changes nothing and returns false.
    pub fn add(&mut self, name: &Name, key: u64) -> bool {
        if let Some(keys) = self.map.get_mut(name) {
            keys.add(key);
            return false;
        }
        let mut keys = Keys::default();
        keys.add(key);
        self.map.insert_new(Name::clone(name), keys).is_ok()
    }

    /// Removes subscriber `key` from channel `name`. Returns true when this removed the worker's
    /// last subscriber of the channel. Unknown names or keys change nothing and return false.
    pub fn remove(&mut self, name: &[u8], key: u64) -> bool {
        let Some(keys) = self.map.get_mut(name) else {
            return false;
        };
        let removed = keys.remove(key);
        let empty = keys.is_empty();
        if empty {
            self.map.remove(name);
        }
        removed && empty
    }

    /// The keys of channel `name` on this worker (empty when none). To end subscribers while
    /// walking them, copy the keys first (`keys_into`) or use `take`.
    pub fn get(&self, name: &[u8]) -> KeysIter<'_> {
        self.map.get(name).map_or(KeysIter::One(None), Keys::iter)
    }

    /// Appends the keys of channel `name` to `out` (reuse `out` across deliveries).
    pub fn keys_into(&self, name: &[u8], out: &mut Vec<u64>) {
        out.extend(self.get(name));
    }

    /// The stored name of channel `name`, to share instead of allocating another copy.
    pub fn name(&self, name: &[u8]) -> Option<&Name> {
        self.map.get_key_value(name).map(|(k, _)| k)
    }

    /// Number of local subscribers of channel `name`.
    pub fn count(&self, name: &[u8]) -> usize {
        self.map.get(name).map_or(0, Keys::len)
    }

    /// True when `key` is a local subscriber of channel `name`.
    #[cfg(test)]
    pub fn contains(&self, name: &[u8], key: u64) -> bool {
        self.get(name).any(|k| k == key)
    }

    /// Removes channel `name` and returns all its local keys.
    #[cfg(test)]
    pub fn take(&mut self, name: &[u8]) -> Vec<u64> {
        self.take_keys(name).map_or_else(Vec::new, Keys::into_vec)
    }

    /// Removes channel `name` and returns its keys as they are stored.
    pub fn take_keys(&mut self, name: &[u8]) -> Option<Keys> {
        self.map.remove(name).map(|(_, keys)| keys)
    }

    /// Adds every key of `keys` to channel `name` (nothing when `keys` is empty).
    pub fn put_keys(&mut self, name: &Name, keys: Keys) {
        if keys.is_empty() {
            return;
        }
        match self.map.get_mut(name) {
            Some(stored) => stored.absorb(keys),
            None => {
                let _ = self.map.insert_new(Name::clone(name), keys);
            }
        }
    }

    /// Channels with at least one local subscriber.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no channel has a local subscriber.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Local subscribers over all channels (walks every entry).
    #[cfg(test)]
    pub fn subscribers(&self) -> usize {
        self.map.iter().map(|(_, keys)| keys.len()).sum()
    }

    /// Estimated heap bytes of the index, not counting the channel name buffers (usually shared
    /// with the hub; see `names_heap_bytes`).
    pub fn heap_bytes(&self) -> usize {
        self.map.heap_bytes_with(Keys::heap_bytes)
    }

    /// Estimated heap bytes of the channel names, if they are not shared.
    #[cfg(test)]
    pub fn names_heap_bytes(&self) -> usize {
        self.map.names_heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from(s)
    }

    fn sorted(it: impl Iterator<Item = u64>) -> Vec<u64> {
        let mut v: Vec<u64> = it.collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn entry_sizes() {
        assert_eq!(std::mem::size_of::<(Name, Keys)>(), 16);
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
    fn keys_handed_out_and_back_keep_the_count() {
        let mut local = LocalSubs::new();
        let a = name("a");
        local.add(&a, 1);
        local.add(&a, 2);
        let keys = local.take_keys(b"a").expect("stored");
        assert_eq!(keys.len(), 2);
        assert!(local.is_empty());
        assert_eq!(local.subscribers(), 0);
        local.add(&a, 3);
        local.put_keys(&a, keys);
        local.put_keys(&a, Keys::default());
        assert_eq!(sorted(local.get(b"a")), vec![1, 2, 3]);
        assert_eq!(local.subscribers(), 3);
        assert!(local.take_keys(b"none").is_none());
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
