//! In-process fan-out of one push to 10,000 local subscribers of one channel, as a worker does it
//! for a delivered message: encode the message once (`Message::new`), look up the channel's keys
//! in `LocalSubs`, and for each subscriber decide its frame with `api::subscribe::deliver` and
//! queue it into that subscriber's own `OutQueue` with `push_frame` (the JSON shared by
//! reference). Subscribers use `/stream` framing, chunked (HTTP/1.1). This is the per-subscriber
//! path; the server itself stores the frames of a channel with several subscribers on a worker
//! once per turn (`worker/frame_batch.rs`), which `make messenger`'s fan-out cases measure.
//!
//! Each timed iteration is one whole push (10,000 deliveries; divan reports items/s); the queues
//! are emptied with `advance` between iterations, outside the timed part.

use std::cell::RefCell;

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use rcomet::api::frame::{Framing, Transport};
use rcomet::api::subscribe::{deliver, Delivery, Subscription};
use rcomet::comet::{LocalSubs, Message, MsgType, Name};
use rcomet::engine::OutQueue;

fn main() {
    divan::main();
}

const SUBSCRIBERS: usize = 10_000;
const CONTENT: &[u8] =
    b"hello world, this is a chat message of about one hundred bytes, give or take a few more";

/// One worker's view of the channel: its subscribers (indexed by key), their output queues, the
/// channel's entry in the local index, and the reused key and head buffers.
struct Worker {
    name: Name,
    subs: Vec<Subscription>,
    queues: Vec<OutQueue>,
    local: LocalSubs,
    keys: Vec<u64>,
    head: Vec<u8>,
    seq: u32,
}

impl Worker {
    fn new() -> Worker {
        let name: Name = Name::from(&b"channel-42"[..]);
        let mut local = LocalSubs::new();
        let subs = (0..SUBSCRIBERS)
            .map(|key| {
                local.add(&name, key as u64);
                let framing = Framing::new(Transport::Stream, true, None);
                let mut sub = Subscription::pending(name.clone(), framing, 1, 0);
                // As after the home's answer: registered and waiting for live messages.
                sub.pending = false;
                sub.registered = true;
                sub
            })
            .collect();
        assert_eq!(local.count(&name), SUBSCRIBERS);
        Worker {
            name,
            subs,
            queues: (0..SUBSCRIBERS).map(|_| OutQueue::default()).collect(),
            local,
            keys: Vec::with_capacity(SUBSCRIBERS),
            head: Vec::with_capacity(64),
            seq: 0,
        }
    }

    /// One push: encode once, then one delivery per local subscriber. Returns the deliveries.
    fn push(&mut self, content: &[u8]) -> usize {
        self.seq += 1;
        let msg = Message::new(MsgType::Data, &self.name, self.seq, content);
        self.keys.clear();
        self.local.keys_into(&self.name, &mut self.keys);
        let mut delivered = 0;
        for &key in &self.keys {
            let (Some(sub), Some(queue)) = (
                self.subs.get_mut(key as usize),
                self.queues.get_mut(key as usize),
            ) else {
                continue;
            };
            self.head.clear();
            match deliver(sub, &msg, None, &mut self.head) {
                Delivery::Shared { tail, .. } => queue.push_frame(&self.head, &msg.json, tail),
                Delivery::Owned { .. } => queue.push_bytes(&self.head),
                Delivery::Skip => continue,
            }
            delivered += 1;
        }
        delivered
    }

    /// Empties every queue (as if each socket took its bytes).
    fn drain(&mut self) {
        for queue in &mut self.queues {
            queue.advance(usize::MAX);
        }
    }
}

// One push per sample, so every timed push starts from empty queues.
#[divan::bench(sample_size = 1, sample_count = 200)]
fn push_to_10k_stream_subscribers(bencher: Bencher) {
    let worker = RefCell::new(Worker::new());
    {
        // Warm-up push: every queue's segment list gets its storage, kept across drains.
        let mut w = worker.borrow_mut();
        assert_eq!(w.push(CONTENT), SUBSCRIBERS);
        let frame = w.queues[0].queued();
        assert!(w.queues.iter().all(|q| q.queued() == frame));
    }
    bencher
        .counter(ItemsCount::new(SUBSCRIBERS))
        .with_inputs(|| worker.borrow_mut().drain())
        .bench_local_values(|()| worker.borrow_mut().push(black_box(CONTENT)));
    let w = worker.borrow();
    assert!(w.subs.iter().all(|s| s.next_seq == w.seq + 1));
}
