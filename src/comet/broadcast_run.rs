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
//! * channels created after the broadcast started sit at `end` or above and do not get it
//!   (unless a removal moves one below `end`, which gives it the broadcast too).
//!
//! A second broadcast while one is being stored first finishes the first. What the walk stores is
//! delivered by the worker (`take_broadcast_deliveries`), in the order it was stored.
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
        out.deliveries.push((Name::clone(name), msg, ch.workers));
    }
}

impl Hub {
    /// Starts storing a broadcast in every channel of this hub (after finishing the one under
    /// way, if any). Countdowns are left alone (see the module doc of `hub`).
    pub fn broadcast_start(&mut self, content_inner: &[u8]) {
        self.broadcast_step(usize::MAX);
        if self.channels.is_empty() {
            return;
        }
        self.broadcast_run = Some(BroadcastRun {
            content: content_inner.into(),
            next: 0,
            end: self.channels.len(),
            ahead: HashSet::new(),
        });
    }

    /// Stores the broadcast under way in up to `limit` more channels. True while some are left.
    pub fn broadcast_step(&mut self, limit: usize) -> bool {
        let Some(run) = self.broadcast_run.as_mut() else {
            return false;
        };
        let buffer = self.config.buffer();
        let end = run.end.min(self.channels.len());
        let stop = run.next.saturating_add(limit).min(end);
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
        if run.next >= end {
            self.broadcast_run = None;
        }
        self.broadcast_run.is_some()
    }

    /// Before an operation on `cname`: stores the broadcast under way there if the walk has not
    /// reached it yet, so the operation comes after it, as it would have.
    pub fn broadcast_settle(&mut self, cname: &[u8]) {
        let Some(index) = self.channels.index_of(cname) else {
            return;
        };
        self.broadcast_settle_at(index);
    }

    pub(super) fn broadcast_settle_at(&mut self, index: usize) {
        let Some(run) = self.broadcast_run.as_mut() else {
            return;
        };
        if index < run.next || index >= run.end {
            return;
        }
        let buffer = self.config.buffer();
        let Some((name, ch)) = self.channels.entry_at_mut(index) else {
            return;
        };
        if run.ahead.insert(Name::clone(name)) {
            store(buffer, name, ch, &run.content, &mut self.broadcast_out);
        }
    }

    /// Before the entry at `index` is removed (the last entry then takes its index): a channel
    /// the walk has not reached must not move below `next` without the broadcast.
    pub(super) fn broadcast_before_remove(&mut self, index: usize) {
        let Some(run) = self.broadcast_run.as_ref() else {
            return;
        };
        let last = self.channels.len().saturating_sub(1);
        if index < run.next && last != index {
            self.broadcast_settle_at(last);
        }
        if let Some(run) = self.broadcast_run.as_mut() {
            // The removed entry's own name no longer needs skipping (the moved one keeps its
            // place in `ahead` if it had one: its name is what is remembered).
            if let Some((name, _)) = self.channels.entry_at(index) {
                run.ahead.remove(name);
            }
            // The last index goes away.
            run.end = run.end.min(last);
        }
    }

    /// True while a broadcast is being stored.
    pub fn broadcasting(&self) -> bool {
        self.broadcast_run.is_some()
    }

    /// What broadcasts stored since the last call: how many channels, and the messages to
    /// deliver (channels with subscribers), in the order stored.
    pub fn take_broadcast_deliveries(&mut self) -> (u64, Vec<Published>) {
        let out = std::mem::take(&mut self.broadcast_out);
        let deliveries = out.deliveries.into_iter();
        let deliveries = deliveries.map(|(name, msg, workers)| Published { name, msg, workers });
        (out.stored, deliveries.collect())
    }
}
