//! The worker's index of its own subscribers, kept by its hub: the keys of subscribers of a
//! channel this hub is home of live in the channel's record (`Channel::local`), those of every
//! other channel in the hub's `LocalSubs` (`elsewhere`). In the messenger layout (a channel of
//! one's own, its subscriber moved to the channel's home) the channel and its subscriber are one
//! record: no second map entry, hash slot or name pointer per subscriber.
//!
//! Keys move with the channel: created here, it takes the keys `elsewhere` held for its name
//! (a subscription registered before its channel existed); freed (`/close`, expiry), it hands
//! the keys it still holds back to `elsewhere`, so the worker finds them until it ends them.
//! So a name's keys are in one place, never both: in its channel's record while the hub holds
//! the channel, in `elsewhere` otherwise (one lookup for the home's own channels).
//!
//! A child of `hub` (it reaches the hub's private state). Depends on `comet::{keys, local}`.

use super::Hub;
use crate::comet::channel::Channel;
use crate::comet::keys::KeysIter;
use crate::comet::name::Name;

impl Hub {
    /// Adds this worker's subscriber `key` of channel `name`.
    pub fn add_local(&mut self, name: &Name, key: u64) {
        match self.channels.get_mut(name) {
            Some(ch) => {
                ch.local.add(key);
            }
            None => {
                self.elsewhere.add(name, key);
            }
        }
    }

    /// Removes this worker's subscriber `key` of channel `name` (unknown keys change nothing).
    pub fn remove_local(&mut self, name: &[u8], key: u64) {
        match self.channels.get_mut(name) {
            Some(ch) => {
                ch.local.remove(key);
            }
            None => {
                self.elsewhere.remove(name, key);
            }
        }
    }

    /// The keys of this worker's subscribers of `name`.
    pub fn local_keys(&self, name: &[u8]) -> KeysIter<'_> {
        match self.channels.get(name) {
            Some(ch) => ch.local.iter(),
            None => self.elsewhere.get(name),
        }
    }

    /// Appends the keys of this worker's subscribers of `name` to `out`.
    pub fn local_keys_into(&self, name: &[u8], out: &mut Vec<u64>) {
        out.extend(self.local_keys(name));
    }

    /// Number of this worker's subscribers of `name`.
    pub fn local_count(&self, name: &[u8]) -> usize {
        match self.channels.get(name) {
            Some(ch) => ch.local.len(),
            None => self.elsewhere.count(name),
        }
    }

    /// True when `key` is one of this worker's subscribers of `name`.
    #[cfg(test)]
    pub fn is_local(&self, name: &[u8], key: u64) -> bool {
        self.local_keys(name).any(|k| k == key)
    }

    /// The stored name of a channel this worker has subscribers of, homed elsewhere.
    pub fn elsewhere_name(&self, name: &[u8]) -> Option<&Name> {
        self.elsewhere.name(name)
    }

    /// Keys the keys of channel `name`, homed elsewhere, under `name` itself (the home's copy of
    /// the name, so this worker keeps no second one). Nothing for a channel homed here.
    pub fn rekey_elsewhere(&mut self, name: &Name) {
        if let Some(keys) = self.elsewhere.take_keys(name) {
            self.elsewhere.put_keys(name, keys);
        }
    }

    /// Subscribers of this worker over all channels (walks every channel).
    #[cfg(test)]
    pub fn local_subscribers(&self) -> usize {
        self.channels
            .iter()
            .map(|(_, ch)| ch.local.len())
            .sum::<usize>()
            + self.elsewhere.subscribers()
    }

    /// A channel was just stored at `index`: it takes the keys held for its name elsewhere.
    pub(super) fn channel_created(&mut self, index: usize) {
        if self.elsewhere.is_empty() {
            return;
        }
        let Some((name, _)) = self.channels.entry_at(index) else {
            return;
        };
        let Some(keys) = self.elsewhere.take_keys(name) else {
            return;
        };
        if let Some((_, ch)) = self.channels.entry_at_mut(index) {
            ch.local.absorb(keys);
        }
    }

    /// A channel was just freed: the keys it still held are kept elsewhere.
    pub(super) fn channel_freed(&mut self, name: &Name, ch: &mut Channel) {
        let keys = std::mem::take(&mut ch.local);
        self.elsewhere.put_keys(name, keys);
    }
}
