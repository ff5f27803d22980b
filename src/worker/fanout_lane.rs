//! The fan-out lane: deliveries to a channel with `BIG_FANOUT` subscribers or more on this
//! worker are queued here and carried out within `LANE_TIME_PER_TURN` a turn, resuming where
//! the last turn stopped, instead of all at once in the turn their mail arrived.
//!
//! Queuing one frame costs 0.3–1.8 µs per subscriber on this machine (its slot, its
//! subscription, its output queue: mostly cache misses), so one push to 9,000 subscribers on a
//! worker was a turn of 3–17 ms before anything was sent (bench/RESULTS.md, `make
//! big-channel`). The frames queued here go out through the backlog (`backlog`), behind
//! everyone else's output.
//!
//! A channel's close, and in cluster mode a gap in its history, are carried out the same way
//! when the channel is big here (each subscriber gets its `close`, or its `reset` / `next_seq`,
//! and a long-poll's response ends, a part per turn).
//!
//! Order: once a channel has an item in the lane, every later delivery, close and cluster gap of
//! that channel on this worker goes into the lane behind it, so each subscriber still sees its
//! channel's messages in seq order with nothing in between. A subscription answered while a
//! message waits here already had that message in its catch-up (the home stored it before it
//! answered), and `api::subscribe::deliver` skips what a subscriber has seen, so nothing arrives
//! twice. The subscribers of a delivery are the channel's at the moment the lane starts it, of
//! the incarnation the message was published in: a channel closed and opened again by a new
//! subscriber while the old one's messages still wait here gives them to nobody of the new one
//! (the epoch tells them apart), and the old close closes only subscriptions of the old one.
//!
//! Depends on: worker (Worker, the lane's state in `lane`, subs' delivery of one subscriber,
//! backlog), comet (Name, Message).

use super::backlog::BIG_FANOUT;
use super::frame_batch::FirstFrame;
use super::lane::{Closing, Ended, Fanout, Gapping, Item, Progress};
use super::Worker;
use crate::comet::message::{follow_up, Message, MsgType};
use crate::comet::name::Name;
use crate::engine::Token;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the lane's front item does to each subscriber (`Worker::lane_step`).
enum Work {
    Deliver {
        msg: Message,
        first: Option<Arc<FirstFrame>>,
        epoch: Option<u32>,
        ended: Ended,
    },
    Close {
        json: Arc<[u8]>,
        epoch: Option<u32>,
    },
    Gap {
        seq: u32,
        epoch: u32,
    },
}

/// Wall time the lane queues frames for in one turn at most.
const LANE_TIME_PER_TURN: Duration = Duration::from_millis(1);

/// The clock is read once per this many subscribers.
const SUBSCRIBERS_PER_CLOCK_READ: usize = 64;

impl Worker {
    /// A new message for a channel with subscribers here: carried out now, or queued in the lane
    /// when the channel is big here or has items waiting there.
    pub(super) fn on_deliver(
        &mut self,
        name: &Name,
        msg: Message,
        first: Option<Arc<FirstFrame>>,
        epoch: Option<u32>,
    ) {
        let mut keys = std::mem::take(&mut self.fanout);
        keys.clear();
        let queued = self.lane.holds(name);
        if !queued {
            self.hub.local_keys_into(name, &mut keys);
        }
        if queued || keys.len() >= BIG_FANOUT {
            // The lane takes the channel's subscribers when it starts the delivery.
            self.lane.push(Item::Deliver(Box::new(Fanout {
                name: Name::clone(name),
                msg,
                first,
                epoch,
                progress: Progress::default(),
                ended: Ended::default(),
            })));
        } else if keys.is_empty() {
            // The home still thinks this worker has subscribers: correct it.
            self.unsubscribe_home(name, 0, 0, true);
        } else {
            let mut ended = Ended::default();
            // Several subscribers: their frames are stored once for the turn (`frame_batch`).
            // A broadcast's sends are many, whatever each channel has: behind everyone else's.
            let style = (keys.len() >= 2, msg.kind == MsgType::Broadcast);
            let what = (&msg, epoch, first.as_deref());
            self.deliver_to(name, what, &keys, style, &mut ended);
            self.after_fanout(name, &ended);
        }
        self.fanout = keys;
    }

    /// Incarnation `epoch` of the channel was closed: now, or in the lane when the channel is big
    /// here or has items waiting there.
    pub(super) fn on_closed(&mut self, name: &Name, json: &Arc<[u8]>, epoch: Option<u32>) {
        if self.lane_takes(name) {
            let (name, json) = (Name::clone(name), Arc::clone(json));
            let progress = Progress::default();
            let closing = Closing {
                name,
                json,
                epoch,
                progress,
            };
            return self.lane.push(Item::Closed(Box::new(closing)));
        }
        self.closed_now(name, json, epoch);
    }

    /// Cluster mode: a gap in the channel's history, now or in the lane when the channel is big
    /// here or has items waiting there.
    pub(super) fn on_gap(&mut self, name: &Name, seq: u32, epoch: u32) {
        if self.lane_takes(name) {
            let name = Name::clone(name);
            let progress = Progress::default();
            let gap = Gapping {
                name,
                seq,
                epoch,
                progress,
            };
            return self.lane.push(Item::Gap(Box::new(gap)));
        }
        self.gap_now(name, seq, epoch);
    }

    /// Whether an item for channel `name` goes into the lane: the channel is big here, or has
    /// items waiting there already (the new one must come after them).
    fn lane_takes(&self, name: &Name) -> bool {
        self.lane.holds(name) || self.hub.local_count(name) >= BIG_FANOUT
    }

    /// Whether the lane has work (the loop must not sleep).
    pub(super) fn lane_busy(&self) -> bool {
        !self.lane.is_empty()
    }

    /// Carries out the lane's items, oldest first, for at most `LANE_TIME_PER_TURN`.
    pub(super) fn deliver_some(&mut self) {
        let start = Instant::now();
        while !self.lane.is_empty() && start.elapsed() < LANE_TIME_PER_TURN {
            if !self.lane_step(start) {
                return;
            }
            match self.lane.pop() {
                Some(Item::Deliver(f)) => self.finish_fanout(*f),
                Some(Item::Closed(c)) => self.give_keys_back(c.progress),
                Some(Item::Gap(g)) => self.give_keys_back(g.progress),
                None => return,
            }
        }
    }

    /// Advances the lane's front item over the channel's subscribers until it is done (true) or
    /// the turn's time is up. The subscribers are the channel's when the item started.
    fn lane_step(&mut self, start: Instant) -> bool {
        let Some((name, mut work, progress)) = self.take_front_work() else {
            return true;
        };
        let mut at = progress.at;
        let keys = match progress.keys {
            Some(keys) => keys,
            None => {
                let mut keys = std::mem::take(&mut self.fanout);
                keys.clear();
                self.hub.local_keys_into(&name, &mut keys);
                keys
            }
        };
        let mut done = false;
        while !done {
            let end = (at + SUBSCRIBERS_PER_CLOCK_READ).min(keys.len());
            let part = keys.get(at..end).unwrap_or_default();
            self.work_on(&name, &mut work, part);
            at = end;
            done = at >= keys.len();
            if start.elapsed() >= LANE_TIME_PER_TURN {
                break;
            }
        }
        let progress = Progress {
            keys: Some(keys),
            at,
        };
        self.put_front_work(work, progress);
        done
    }

    /// What the lane's front item does, and how far it got (taken out while it runs; `None`:
    /// nothing to step over).
    fn take_front_work(&mut self) -> Option<(Name, Work, Progress)> {
        let item = self.lane.front_mut()?;
        let name = Name::clone(item.name());
        let work = match item {
            Item::Deliver(f) => Work::Deliver {
                msg: f.msg.clone(),
                first: f.first.clone(),
                epoch: f.epoch,
                ended: std::mem::take(&mut f.ended),
            },
            Item::Closed(c) => Work::Close {
                json: Arc::clone(&c.json),
                epoch: c.epoch,
            },
            Item::Gap(g) => Work::Gap {
                seq: g.seq,
                epoch: g.epoch,
            },
        };
        let progress = std::mem::take(item.progress_mut());
        Some((name, work, progress))
    }

    /// Puts back what `take_front_work` took, with the progress made.
    fn put_front_work(&mut self, work: Work, progress: Progress) {
        let Some(item) = self.lane.front_mut() else {
            return;
        };
        if let (Item::Deliver(f), Work::Deliver { ended, .. }) = (&mut *item, work) {
            f.ended = ended;
        }
        *item.progress_mut() = progress;
    }

    /// Carries out `work` for the subscribers `part` of channel `name`.
    fn work_on(&mut self, name: &Name, work: &mut Work, part: &[u64]) {
        match work {
            Work::Deliver {
                msg,
                first,
                epoch,
                ended,
            } => {
                let what = (&*msg, *epoch, first.as_deref());
                self.deliver_to(name, what, part, (true, true), ended);
            }
            Work::Close { json, epoch } => {
                let close = (&*json, *epoch);
                self.queue_in_backlog(true, |w| w.close_each(name, close, part));
            }
            Work::Gap { seq, epoch } => {
                let (seq, epoch) = (*seq, *epoch);
                self.queue_in_backlog(true, |w| w.gap_each(name, seq, epoch, part));
            }
        }
    }

    /// A delivery the lane finished: the unsubscribe it owes, its key list back for reuse.
    fn finish_fanout(&mut self, f: Fanout) {
        if f.progress.keys.as_ref().is_some_and(|k| k.is_empty()) {
            self.unsubscribe_home(&f.name, 0, 0, true);
        }
        self.after_fanout(&f.name, &f.ended);
        self.give_keys_back(f.progress);
    }

    /// A finished item's key list becomes the worker's reusable one when it is the larger.
    fn give_keys_back(&mut self, progress: Progress) {
        if let Some(keys) = progress.keys {
            if keys.capacity() >= self.fanout.capacity() {
                self.fanout = keys;
            }
        }
    }

    /// Queues `msg`'s frame (of incarnation `epoch`) for each of `keys` (subscribers of `name`
    /// here that subscribed to that incarnation), counting what was
    /// queued and the long-polls it ended into `ended`. `batch`: the frames are stored once for
    /// the turn (`frame_batch`); `big`: written through the backlog.
    fn deliver_to(
        &mut self,
        name: &Name,
        (msg, epoch, first): (&Message, Option<u32>, Option<&FirstFrame>),
        keys: &[u64],
        (batch, big): (bool, bool),
        ended: &mut Ended,
    ) {
        let next = (msg.kind == MsgType::Broadcast)
            .then(|| follow_up(name, msg))
            .flatten();
        let mut delivered = 0u64;
        // The worker's reusable buffer: a delivery allocates nothing for its heads.
        let mut head = std::mem::take(&mut self.scratch);
        self.queue_in_backlog(big, |w| {
            for &key in keys {
                if w.deliver_one(
                    Token::unpack(key),
                    (name, batch, first),
                    (msg, epoch),
                    next.as_deref(),
                    &mut head,
                    ended,
                ) {
                    delivered += 1;
                }
            }
        });
        self.scratch = head;
        self.stats()
            .deliveries
            .fetch_add(delivered, Ordering::Relaxed);
    }

    /// After a message's fan-out: one unsubscribe for every long-poll it ended.
    fn after_fanout(&mut self, name: &Name, ended: &Ended) {
        if ended.registered > 0 {
            let none_left = self.hub.local_count(name) == 0;
            self.unsubscribe_home(name, ended.epoch, ended.registered, none_left);
        }
    }
}
