//! A `/broadcast` stored channel by channel, a bounded number per call (`broadcast_step`), so
//! that a hub with hundreds of thousands of channels never spends one long loop turn on it (it
//! costs ≈ 0.1–0.25 µs per channel: the message's JSON and, the first time, the channel's ring).
//! A child of `hub` (it uses the hub's private state).
//!
//! Order stays what it would be if the broadcast were stored everywhere at once:
//! * the channels at indices below `next` have it; the walk goes up from 0;
//! * an operation on a channel the walk has not reached yet (a push, a subscription, a sign, a
//!   close, a clear) first stores the broadcast there (`broadcast_settle`, which the worker calls
//!   before the operation) and remembers it in `ahead`, which the walk then skips;
//! * a removal moves the last entry into the hole (`NameMap`): when that moves a channel the
//!   walk has not reached to below `next`, the broadcast is stored there first
//!   (`broadcast_before_remove`);
//! * channels created after the broadcast started sit at `end` or above and do not get it; when a
//!   removal moves one below `end`, where the walk has not been yet, its name goes into `ahead`
//!   so that neither the walk nor a settle stores it there.
//!
//! A second broadcast while one is being stored waits behind it (`MAX_WAITING` may wait; past
//! that the oldest is finished at once): its walk starts when the first is done, and settling a
//! channel stores every broadcast under way that has not reached it, oldest first. What the walk
//! stores is delivered by the worker (`take_broadcast_deliveries`), in the order it was stored.
//!
//! Depends on `comet::{channel, message}`, its sibling `broadcast_state` and std.

use super::broadcast_state::{BroadcastOut, BroadcastRun};
use super::{Hub, Published};
use crate::comet::channel::Channel;
use crate::comet::message::{Message, MsgType};
use crate::comet::name::Name;
use std::collections::HashSet;

fn store(buffer: usize, name: &Name, ch: &mut Channel, content: &[u8], out: &mut BroadcastOut) {
    let seq = ch.take_seq();
    let msg = Message::new(MsgType::Broadcast, name, seq, content);
    ch.ring.push(msg.clone(), buffer);
    out.stored += 1;
    if ch.workers != 0 {
        out.deliveries
            .push((Name::clone(name), msg, ch.workers, Some(ch.epoch())));
    }
}

/// Broadcasts that may wait behind the one being stored; a further one first finishes the
/// oldest at once (so a flood of `/broadcast`s holds bounded memory).
const MAX_WAITING: usize = 16;

impl Hub {
    /// Starts storing a broadcast in every channel of this hub, behind the ones under way, if
    /// any. Countdowns are left alone (see the module doc of `hub`).
    pub fn broadcast_start(&mut self, content_inner: &[u8]) {
        while self.broadcast_runs.len() > MAX_WAITING {
            let len = self.channels.len();
            let Some(left) = self
                .broadcast_runs
                .front()
                .map(|run| run.end.min(len).saturating_sub(run.next))
            else {
                break;
            };
            if left == 0 {
                self.broadcast_runs.pop_front();
            } else {
                // Exactly what the oldest has left: it is done and popped, the next not begun.
                self.broadcast_step(left);
            }
        }
        if self.channels.is_empty() {
            return;
        }
        self.broadcast_runs.push_back(BroadcastRun {
            content: content_inner.into(),
            next: 0,
            end: self.channels.len(),
            ahead: HashSet::new(),
        });
    }

    /// Stores the broadcasts under way, oldest first, in up to `limit` more channels. True while
    /// some are left.
    pub fn broadcast_step(&mut self, limit: usize) -> bool {
        let buffer = self.config.buffer();
        let mut left = limit;
        while left > 0 {
            let Some(run) = self.broadcast_runs.front_mut() else {
                break;
            };
            let end = run.end.min(self.channels.len());
            let stop = run.next.saturating_add(left).min(end);
            left -= stop.saturating_sub(run.next).min(left);
            while run.next < stop {
                let index = run.next;
                run.next += 1;
                let Some((name, ch)) = self.channels.entry_at_mut(index) else {
                    continue;
                };
                if !run.ahead.remove(name) {
                    store(buffer, name, ch, &run.content, &mut self.broadcast_out);
                }
            }
            if run.next < end {
                break;
            }
            self.broadcast_runs.pop_front();
        }
        !self.broadcast_runs.is_empty()
    }

    /// Before an operation on `cname`: stores the broadcasts under way there that have not
    /// reached it yet, oldest first, so the operation comes after them, as it would have.
    pub fn broadcast_settle(&mut self, cname: &[u8]) {
        let Some(index) = self.channels.index_of(cname) else {
            return;
        };
        self.broadcast_settle_at(index);
    }

    pub(super) fn broadcast_settle_at(&mut self, index: usize) {
        if self.broadcast_runs.is_empty() {
            return;
        }
        let buffer = self.config.buffer();
        let Some((name, ch)) = self.channels.entry_at_mut(index) else {
            return;
        };
        for run in self.broadcast_runs.iter_mut() {
            if index < run.next || index >= run.end {
                continue;
            }
            if run.ahead.insert(Name::clone(name)) {
                store(buffer, name, ch, &run.content, &mut self.broadcast_out);
            }
        }
    }

    /// Before the entry at `index` is removed (the last entry then takes its index): a channel
    /// a walk has not reached must not move below its `next` without the broadcast, and one
    /// created after a broadcast started must not move to where that walk will store it. (Only
    /// the oldest broadcast has started walking; the others have `next` 0.)
    pub(super) fn broadcast_before_remove(&mut self, index: usize) {
        let Some(first) = self.broadcast_runs.front() else {
            return;
        };
        let last = self.channels.len().saturating_sub(1);
        if index < first.next && last != index {
            self.broadcast_settle_at(last);
        }
        let removed = self.channels.entry_at(index).map(|(name, _)| name);
        let moved = (last != index)
            .then(|| self.channels.entry_at(last).map(|(name, _)| name))
            .flatten();
        for run in self.broadcast_runs.iter_mut() {
            // A channel created after this broadcast started, moved to where its walk has not
            // been yet: it must not get it there.
            let unreached = run.next <= index && index < run.end;
            if let Some(name) = moved.filter(|_| unreached && last >= run.end) {
                run.ahead.insert(Name::clone(name));
            }
            // The removed entry's own name no longer needs skipping (the moved one keeps its
            // place in `ahead` if it had one: its name is what is remembered).
            if let Some(name) = removed {
                run.ahead.remove(name);
            }
            // The last index goes away.
            run.end = run.end.min(last);
        }
    }

    /// True while a broadcast is being stored.
    pub fn broadcasting(&self) -> bool {
        !self.broadcast_runs.is_empty()
    }

    /// What broadcasts stored since the last call: how many channels, and the messages to
    /// deliver (channels with subscribers), in the order stored.
    pub fn take_broadcast_deliveries(&mut self) -> (u64, Vec<Published>) {
        let out = std::mem::take(&mut self.broadcast_out);
        let deliveries = out.deliveries.into_iter();
        let deliveries = deliveries.map(|(name, msg, workers, epoch)| Published {
            name,
            msg,
            workers,
            subscribers: 0,
            epoch,
        });
        (out.stored, deliveries.collect())
    }
}
