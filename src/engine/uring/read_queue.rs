//! The order in which readable connections get one of the worker's few receive buffers.
//!
//! A turn issues at most one receive per free buffer, so when tens of thousands of connections
//! become readable at once (a connect storm's first requests, a mass disconnect's end-of-files)
//! the rest wait here. One first-in-first-out queue would put a client that is still talking —
//! a publisher's next push, a long-poller's next poll — behind all of them. Three queues, served
//! strictly in this order, keep that wait to about one turn:
//!
//! 1. [`ReadClass::Live`]: connections that have sent bytes before (or were resumed);
//! 2. [`ReadClass::New`]: connections that have not sent their first bytes yet;
//! 3. [`ReadClass::Hangup`]: connections whose peer hung up (the poll said so) — teardown, which
//!    nobody waits for. Their last bytes are still read before the end of file is reported.
//!
//! Depends on: engine (ConnId). Nothing else.

use crate::engine::ConnId;
use std::collections::VecDeque;

/// Which queue a readable connection waits in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ReadClass {
    Live,
    New,
    Hangup,
}

/// A connection waiting for a receive: its id and the slot generation it was queued for.
pub(super) type Waiting = (ConnId, u32);

/// The three queues, see the module doc.
#[derive(Default)]
pub(super) struct ReadQueues {
    live: VecDeque<Waiting>,
    new: VecDeque<Waiting>,
    hangup: VecDeque<Waiting>,
}

impl ReadQueues {
    fn queue(&mut self, class: ReadClass) -> &mut VecDeque<Waiting> {
        match class {
            ReadClass::Live => &mut self.live,
            ReadClass::New => &mut self.new,
            ReadClass::Hangup => &mut self.hangup,
        }
    }

    /// Queues `waiting` last in its class.
    pub fn push(&mut self, class: ReadClass, waiting: Waiting) {
        self.queue(class).push_back(waiting);
    }

    /// Puts `waiting` back first in its class (it was popped but could not be served).
    pub fn push_front(&mut self, class: ReadClass, waiting: Waiting) {
        self.queue(class).push_front(waiting);
    }

    /// The next connection to serve: the oldest of the first non-empty class.
    pub fn pop(&mut self) -> Option<(ReadClass, Waiting)> {
        for class in [ReadClass::Live, ReadClass::New, ReadClass::Hangup] {
            if let Some(waiting) = self.queue(class).pop_front() {
                return Some((class, waiting));
            }
        }
        None
    }

    /// Connections waiting in all classes.
    pub fn len(&self) -> usize {
        self.live.len() + self.new.len() + self.hangup.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(n: u32) -> Waiting {
        (ConnId(n), 0)
    }

    #[test]
    fn live_before_new_before_hangup_each_in_arrival_order() {
        let mut q = ReadQueues::default();
        q.push(ReadClass::Hangup, w(1));
        q.push(ReadClass::New, w(2));
        q.push(ReadClass::Hangup, w(3));
        q.push(ReadClass::Live, w(4));
        q.push(ReadClass::New, w(5));
        q.push(ReadClass::Live, w(6));
        assert_eq!(q.len(), 6);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop().map(|(_, (c, _))| c.0)).collect();
        assert_eq!(order, vec![4, 6, 2, 5, 1, 3]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_connection_put_back_is_served_first_in_its_class() {
        let mut q = ReadQueues::default();
        q.push(ReadClass::New, w(1));
        q.push(ReadClass::New, w(2));
        let (class, first) = q.pop().expect("one waits");
        assert_eq!(class, ReadClass::New);
        q.push_front(class, first);
        assert_eq!(q.pop().map(|(_, (c, _))| c.0), Some(1));
    }
}
