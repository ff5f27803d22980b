//! Cross-core messages: one crossbeam channel per receiving worker plus that worker's eventfd.
//!
//! Wake-up protocol (no lost wake-ups, at most one eventfd write per sleep): before sleeping the
//! receiver stores `awake = false`, issues a SeqCst fence and looks at its inbox once more; a sender
//! pushes, fences, and writes the eventfd only if it is the one that flipped `awake` back to true.
//!
//! `Post` batches one worker's outgoing mail: everything addressed to one worker during a turn
//! travels as one batch, with one channel send and at most one eventfd write.
//!
//! Depends on: crossbeam-channel, engine::sys::EventFd.

use crate::engine::sys::EventFd;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

/// The sending end of one worker's mailbox; cheap to clone, usable from any thread.
pub struct Outbox<M> {
    tx: Sender<M>,
    awake: Arc<AtomicBool>,
    waker: Arc<EventFd>,
}

impl<M> Clone for Outbox<M> {
    fn clone(&self) -> Self {
        Outbox {
            tx: self.tx.clone(),
            awake: Arc::clone(&self.awake),
            waker: Arc::clone(&self.waker),
        }
    }
}

impl<M> Outbox<M> {
    /// Delivers `msg` and wakes the receiver if it may be asleep. Returns false when the receiving
    /// worker is gone.
    pub fn send(&self, msg: M) -> bool {
        if self.tx.send(msg).is_err() {
            return false;
        }
        fence(Ordering::SeqCst);
        if !self.awake.swap(true, Ordering::SeqCst) {
            self.waker.wake();
        }
        true
    }
}

/// The receiving end, owned by one worker.
pub struct Inbox<M> {
    rx: Receiver<M>,
    awake: Arc<AtomicBool>,
}

impl<M> Inbox<M> {
    /// Takes the next message without blocking.
    pub fn try_recv(&self) -> Option<M> {
        match self.rx.try_recv() {
            Ok(m) => Some(m),
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
        }
    }

    /// Call right before blocking in the backend. Returns false when messages are already waiting,
    /// in which case the caller must not block.
    pub fn prepare_sleep(&self) -> bool {
        self.awake.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.rx.is_empty() {
            true
        } else {
            self.awake.store(true, Ordering::SeqCst);
            false
        }
    }

    /// Call after the backend returned from waiting.
    pub fn woke(&self) {
        self.awake.store(true, Ordering::SeqCst);
    }
}

/// A mailbox for one worker whose waker is `waker` (the worker backend's eventfd).
pub fn mailbox<M>(waker: Arc<EventFd>) -> (Outbox<M>, Inbox<M>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let awake = Arc::new(AtomicBool::new(true));
    (
        Outbox {
            tx,
            awake: Arc::clone(&awake),
            waker,
        },
        Inbox { rx, awake },
    )
}

/// One worker's outgoing mail, held until the end of the turn.
pub struct Post<M> {
    peers: Vec<Outbox<Vec<M>>>,
    pending: Vec<Vec<M>>,
}

impl<M> Post<M> {
    /// Mail for `peers` (indexed by worker id).
    pub fn new(peers: Vec<Outbox<Vec<M>>>) -> Post<M> {
        let pending = peers.iter().map(|_| Vec::new()).collect();
        Post { peers, pending }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.peers.len()
    }

    /// Adds `msg` to the batch for worker `to`.
    pub fn add(&mut self, to: usize, msg: M) {
        if let Some(batch) = self.pending.get_mut(to) {
            batch.push(msg);
        }
    }

    /// Sends every non-empty batch; returns the number of batches sent.
    pub fn send_all(&mut self) -> usize {
        let mut sent = 0;
        for (batch, peer) in self.pending.iter_mut().zip(&self.peers) {
            if !batch.is_empty() {
                peer.send(std::mem::take(batch));
                sent += 1;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::epoll::Epoll;
    use crate::engine::uring::{Uring, UringConfig};
    use crate::engine::{Backend, Completion, ReadControl};
    use std::time::{Duration, Instant};

    /// A worker asleep in epoll_wait is woken by a message from another thread, and every message
    /// arrives exactly once.
    #[test]
    fn a_message_from_another_thread_wakes_a_sleeping_epoll_backend() {
        messages_from_another_thread_wake(Epoll::new().unwrap());
    }

    /// The same asleep in io_uring_enter: the waker's multishot poll reports every wake-up
    /// although the eventfd's counter is never read back.
    #[test]
    fn a_message_from_another_thread_wakes_a_sleeping_io_uring_backend() {
        let backend = Uring::new(UringConfig::new(64))
            .expect("io_uring (the tests run on a kernel that has it)");
        messages_from_another_thread_wake(backend);
    }

    fn messages_from_another_thread_wake(mut backend: impl Backend) {
        let (outbox, inbox) = mailbox::<u32>(backend.waker());
        let sender = std::thread::spawn(move || {
            for i in 0..1000 {
                assert!(outbox.send(i));
                if i % 100 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < 1000 {
            assert!(
                Instant::now() < deadline,
                "timed out with {} messages",
                got.len()
            );
            if inbox.prepare_sleep() {
                // The inbox was empty and messages are still to come, so the next send finds
                // `awake == false` and must write the eventfd: the sleep ends with a Wake.
                let mut woke = false;
                while !woke && Instant::now() < deadline {
                    backend
                        .wait(Some(Duration::from_secs(5)), &mut |c| {
                            if matches!(c, Completion::Wake) {
                                woke = true;
                            }
                            ReadControl::Continue
                        })
                        .unwrap();
                }
                inbox.woke();
                assert!(
                    woke,
                    "slept with {} messages and was never woken",
                    got.len()
                );
            }
            while let Some(m) = inbox.try_recv() {
                got.push(m);
            }
        }
        sender.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    /// Everything posted to one worker in a turn arrives as one batch, in order, with one wake.
    #[test]
    fn a_turns_mail_to_one_worker_is_one_batch() {
        let mut backend = Epoll::new().unwrap();
        let (outbox, inbox) = mailbox::<Vec<u32>>(backend.waker());
        let mut post = Post::new(vec![outbox]);
        assert_eq!(post.send_all(), 0, "nothing to send");
        assert!(inbox.prepare_sleep());
        for i in 0..100 {
            post.add(0, i);
        }
        post.add(5, 999); // no such worker: dropped
        assert_eq!(post.send_all(), 1);
        let mut wakes = 0;
        backend
            .wait(Some(Duration::from_secs(5)), &mut |c| {
                if matches!(c, Completion::Wake) {
                    wakes += 1;
                }
                ReadControl::Continue
            })
            .unwrap();
        inbox.woke();
        assert_eq!(wakes, 1);
        assert_eq!(inbox.try_recv(), Some((0..100).collect::<Vec<_>>()));
        assert_eq!(inbox.try_recv(), None);
    }
}
