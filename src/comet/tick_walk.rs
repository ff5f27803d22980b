//! The once-a-second tick of a hub's channels, walked a bounded amount per call (`tick_step`)
//! so that a hub with hundreds of thousands of channels never spends one long loop turn on it:
//! presence re-announcements, idle countdowns, and freeing the channels whose countdown dropped
//! below zero (the visit costs a few nanoseconds, a free ≈ 0.3 µs). A child of `hub` (it uses the
//! hub's private state).
//!
//! Every channel that exists when a tick begins is visited exactly once by that tick, whatever
//! happens between the steps:
//! * the walk goes down from the last index; the entries at `below` and above have been visited
//!   (or were created since the tick began, and are not visited by it);
//! * a channel the walk frees is at its position: the last entry moves into the hole, and that
//!   entry is at or above the position already (visited, or created since);
//! * a removal between steps (`/close`) below the walk's position moves the last entry into the
//!   hole: when that entry was visited (or created since), its name goes into `skip`, and the walk
//!   passes over it once (`tick_before_remove`);
//! * new channels are appended at the end, above the position.
//!
//! A tick that begins while the previous one is still being walked first finishes that one, so
//! countdowns always move by one per tick.
//!
//! Depends on `comet::name`, its sibling `tick_state` and std.

use super::tick_state::TickWalk;
use super::{Hub, Presence};
use crate::comet::name::Name;
use std::collections::HashSet;

/// What freeing a channel counts against a step's budget, where a visit counts 1: freeing (its
/// ring, its name, a presence line) costs about that many visits.
pub(super) const FREE_COST: usize = 16;

impl Hub {
    /// Starts the once-a-second tick (finishing the previous one first if it is still being
    /// walked). The work is done by `tick_step`, a bounded amount per call.
    pub fn begin_tick(&mut self) {
        if self.tick_walk.is_some() {
            self.tick_step(usize::MAX);
        }
        self.now = self.now.wrapping_add(1);
        if !self.channels.is_empty() {
            self.tick_walk = Some(TickWalk {
                below: self.channels.len(),
                skip: HashSet::new(),
            });
        }
    }

    /// Walks the tick `begin_tick` started for up to `budget` (a visit counts 1, freeing a channel
    /// `FREE_COST`): each visited channel is re-announced on its tick of the presence period; a
    /// channel with subscribers has its countdown held at `channel_timeout`, one without counts
    /// down and is freed once below zero. Returns true while the tick has more to walk.
    pub fn tick_step(&mut self, budget: usize) -> bool {
        let Some(mut walk) = self.tick_walk.take() else {
            return false;
        };
        let now = self.now;
        let period = self.config.presence_period();
        let timeout = self.config.channel_timeout;
        let presence = self.recording();
        let mut index = walk.below.min(self.channels.len());
        let mut spent = 0usize;
        while index > 0 && spent < budget {
            index -= 1;
            spent += 1;
            let Some((name, ch)) = self.channels.entry_at_mut(index) else {
                continue;
            };
            if !walk.skip.is_empty() && walk.skip.remove(name) {
                continue;
            }
            if presence && now.wrapping_add(ch.epoch()) % period == 0 {
                self.events.push(Presence::Online(Name::clone(name)));
            }
            if ch.subscribers > 0 {
                ch.raise_countdown(timeout);
                continue;
            }
            ch.countdown = ch.countdown.saturating_sub(1);
            if ch.countdown >= 0 {
                continue;
            }
            spent = spent.saturating_add(FREE_COST - 1);
            self.free_expired_at(index);
        }
        if index > 0 {
            walk.below = index;
            self.tick_walk = Some(walk);
        }
        self.tick_walk.is_some()
    }

    /// True while a tick is being walked.
    pub fn ticking(&self) -> bool {
        self.tick_walk.is_some()
    }

    /// Before the entry at `index` is removed other than by the walk (the last entry then takes
    /// its index): a visited entry moved below the walk's position must not be visited again.
    pub(super) fn tick_before_remove(&mut self, index: usize) {
        let Some(walk) = self.tick_walk.as_mut() else {
            return;
        };
        let Some(last) = self.channels.len().checked_sub(1) else {
            return;
        };
        if index < walk.below && last >= walk.below && last != index {
            if let Some((name, _)) = self.channels.entry_at(last) {
                walk.skip.insert(Name::clone(name));
            }
        }
        if let Some((name, _)) = self.channels.entry_at(index) {
            walk.skip.remove(name);
        }
        // After the removal the map holds `last` entries: whatever is appended next is new.
        walk.below = walk.below.min(last);
    }
}
