//! `ChannelQueue`: a first-in-first-out queue of items that each belong to one channel, with a
//! count of the items of each channel waiting in it. The fan-out lane (`lane.rs`) and the
//! operations a home holds back (`held.rs`) are both this queue: a later item of a channel that
//! has one waiting must queue behind it (`holds`), and the hold bounds a channel by its depth.
//!
//! A channel's name is copied once, when its first item arrives; later items of the same channel
//! only count.
//!
//! Depends on: std only.

use std::collections::{HashMap, VecDeque};

/// The channel an item of a [`ChannelQueue`] belongs to.
pub(super) trait OfChannel {
    fn channel(&self) -> &[u8];
}

/// Channels counted that a queue keeps room for once it empties (the rest is given back).
const KEPT_CHANNELS: usize = 64;

/// See the module doc.
pub(super) struct ChannelQueue<T> {
    items: VecDeque<T>,
    counts: HashMap<Box<[u8]>, u32>,
}

impl<T> Default for ChannelQueue<T> {
    fn default() -> Self {
        ChannelQueue {
            items: VecDeque::new(),
            counts: HashMap::new(),
        }
    }
}

impl<T: OfChannel> ChannelQueue<T> {
    /// Queues `item` last.
    pub(super) fn push(&mut self, item: T) {
        match self.counts.get_mut(item.channel()) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(Box::from(item.channel()), 1);
            }
        }
        self.items.push_back(item);
    }

    /// Takes the first item out.
    pub(super) fn pop(&mut self) -> Option<T> {
        let item = self.items.pop_front()?;
        if let Some(n) = self.counts.get_mut(item.channel()) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(item.channel());
            }
        }
        if self.items.is_empty() && self.counts.capacity() > KEPT_CHANNELS {
            self.counts.shrink_to(KEPT_CHANNELS);
        }
        Some(item)
    }

    pub(super) fn front(&self) -> Option<&T> {
        self.items.front()
    }

    /// The first item, to carry on with in place (its channel stays the same).
    pub(super) fn front_mut(&mut self) -> Option<&mut T> {
        self.items.front_mut()
    }

    /// Whether an item of `channel` waits (a later one must queue behind it).
    pub(super) fn holds(&self, channel: &[u8]) -> bool {
        !self.counts.is_empty() && self.counts.contains_key(channel)
    }

    /// Items of `channel` waiting.
    pub(super) fn depth(&self, channel: &[u8]) -> usize {
        if self.counts.is_empty() {
            return 0;
        }
        self.counts.get(channel).map_or(0, |&n| n as usize)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items waiting in all.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(String, u32);

    impl OfChannel for Item {
        fn channel(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }

    fn item(channel: &str, n: u32) -> Item {
        Item(channel.to_string(), n)
    }

    fn drain(q: &mut ChannelQueue<Item>) -> Vec<(String, u32)> {
        std::iter::from_fn(|| q.pop().map(|Item(c, n)| (c, n))).collect()
    }

    fn pairs(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|&(c, n)| (c.to_string(), n)).collect()
    }

    #[test]
    fn items_leave_in_arrival_order_and_each_channel_is_counted_until_its_last_leaves() {
        let mut q = ChannelQueue::default();
        assert!(q.is_empty() && !q.holds(b"a") && q.depth(b"a") == 0 && q.pop().is_none());
        q.push(item("a", 1));
        q.push(item("b", 1));
        q.push(item("a", 2));
        q.push(item("a", 3));
        assert_eq!((q.len(), q.depth(b"a"), q.depth(b"b")), (4, 3, 1));
        assert!(q.holds(b"a") && q.holds(b"b") && !q.holds(b"c"));
        assert_eq!(q.front().map(|i| (i.0.as_str(), i.1)), Some(("a", 1)));
        assert_eq!(q.pop().map(|i| i.1), Some(1));
        assert_eq!(q.depth(b"a"), 2);
        assert_eq!(q.pop().map(|i| i.0), Some("b".to_string()));
        assert!(!q.holds(b"b"), "b left with its only item");
        assert_eq!(drain(&mut q), pairs(&[("a", 2), ("a", 3)]));
        assert!(q.is_empty() && !q.holds(b"a") && q.depth(b"a") == 0);
    }

    #[test]
    fn the_front_item_is_changed_in_place() {
        let mut q = ChannelQueue::default();
        q.push(item("a", 1));
        q.push(item("a", 2));
        if let Some(front) = q.front_mut() {
            front.1 = 10;
        }
        assert_eq!(drain(&mut q), pairs(&[("a", 10), ("a", 2)]));
    }

    #[test]
    fn an_emptied_queue_gives_back_the_room_of_many_channels() {
        let mut q = ChannelQueue::default();
        for i in 0..10_000 {
            q.push(item(&format!("c{i}"), i));
        }
        assert_eq!((q.len(), q.depth(b"c9999")), (10_000, 1));
        assert_eq!(drain(&mut q).len(), 10_000);
        assert!(
            q.counts.capacity() <= 2 * KEPT_CHANNELS,
            "{}",
            q.counts.capacity()
        );
    }
}
