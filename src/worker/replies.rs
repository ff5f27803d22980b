//! Pipelined admin requests answered in order: a request whose reply is computed on another core
//! takes a numbered place, later requests answered at once queue behind it, and replies go out as
//! soon as everything before them is known. Plain data, no I/O.
//!
//! Depends on: std only.

use std::collections::VecDeque;

/// Replies owed to one admin connection, oldest first.
#[derive(Debug, Default)]
pub struct ReplyQueue {
    /// The number of the oldest reply owed.
    front: u32,
    waiting: VecDeque<Option<Vec<u8>>>,
}

impl ReplyQueue {
    /// Replies owed (known or not).
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A place for a reply that arrives later; its number goes with the request.
    pub fn reserve(&mut self) -> u32 {
        let number = self.front.wrapping_add(self.waiting.len() as u32);
        self.waiting.push_back(None);
        number
    }

    /// A reply known now, owed after every earlier one.
    pub fn push_ready(&mut self, reply: Vec<u8>) {
        self.waiting.push_back(Some(reply));
    }

    /// Fills place `number`; false when no such place is owed.
    pub fn fill(&mut self, number: u32, reply: Vec<u8>) -> bool {
        let index = number.wrapping_sub(self.front) as usize;
        match self.waiting.get_mut(index) {
            Some(place @ None) => {
                *place = Some(reply);
                true
            }
            _ => false,
        }
    }

    /// The oldest reply, once it is known.
    pub fn pop_ready(&mut self) -> Option<Vec<u8>> {
        if !matches!(self.waiting.front(), Some(Some(_))) {
            return None;
        }
        self.front = self.front.wrapping_add(1);
        self.waiting.pop_front().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_leave_in_request_order_whatever_order_they_arrive_in() {
        let mut q = ReplyQueue::default();
        let a = q.reserve();
        q.push_ready(b"b".to_vec());
        let c = q.reserve();
        assert_eq!(q.pop_ready(), None, "a is not known yet");
        assert!(q.fill(c, b"c".to_vec()));
        assert_eq!(q.pop_ready(), None);
        assert!(q.fill(a, b"a".to_vec()));
        assert!(!q.fill(a, b"again".to_vec()), "a place is filled once");
        let order: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop_ready()).collect();
        assert_eq!(order, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(q.is_empty());
        assert!(!q.fill(c, b"late".to_vec()), "nothing is owed any more");
    }

    #[test]
    fn numbers_keep_counting_across_wraparound() {
        let mut q = ReplyQueue {
            front: u32::MAX,
            waiting: VecDeque::new(),
        };
        let first = q.reserve();
        let second = q.reserve();
        assert_eq!((first, second), (u32::MAX, 0));
        assert!(q.fill(second, vec![2]));
        assert!(q.fill(first, vec![1]));
        assert_eq!(q.pop_ready(), Some(vec![1]));
        assert_eq!(q.pop_ready(), Some(vec![2]));
    }
}
