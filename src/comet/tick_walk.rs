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
//!   passes over it once (`tick_before_remove`, which every removal runs: `remove_channel_at`);
//! * new channels are appended at the end, above the position.
//!
//! A tick that begins while the previous one is still being walked waits for it (`behind`
//! counts such ticks) and is walked right after it: countdowns always move by one per tick, and
//! a walk that fell behind never makes one long turn to catch up.
//!
//! Depends on `comet::name`, its sibling `tick_state` and std.

use super::tick_state::TickWalk;
use super::{Hub, Presence};
use crate::comet::name::Name;
use std::collections::HashSet;

/// What `walk_some` leaves: the rest of the walk, or, when it is done, how many ticks are queued
/// behind it.
enum Walked {
    Part(TickWalk),
    Done { behind: u32 },
}

/// What freeing a channel counts against a step's budget, where a visit counts 1: freeing (its
/// ring, its name, a presence line) costs about that many visits.
pub(super) const FREE_COST: usize = 16;

impl Hub {
    /// Starts the once-a-second tick, or queues it behind the tick still being walked. The work
    /// is done by `tick_step`, a bounded amount per call.
    pub fn begin_tick(&mut self) {
        match self.tick_walk.as_mut() {
            Some(walk) => walk.behind = walk.behind.saturating_add(1),
            None => self.start_walk(0),
        }
    }

    fn start_walk(&mut self, behind: u32) {
        self.now = self.now.wrapping_add(1);
        self.tick_walk = (!self.channels.is_empty() || behind > 0).then(|| TickWalk {
            below: self.channels.len(),
            skip: HashSet::new(),
            behind,
        });
    }

    /// Walks the tick `begin_tick` started (and those queued behind it) for up to `budget` (a
    /// visit counts 1, freeing a channel `FREE_COST`). Returns true while there is more to walk.
    pub fn tick_step(&mut self, budget: usize) -> bool {
        let mut spent = 0usize;
        while spent < budget {
            let Some(walk) = self.tick_walk.take() else {
                break;
            };
            let (walked, used) = self.walk_some(walk, budget - spent);
            spent = spent.saturating_add(used.max(1));
            match walked {
                Walked::Part(walk) => self.tick_walk = Some(walk),
                Walked::Done { behind: 0 } => {}
                Walked::Done { behind } => self.start_walk(behind - 1),
            }
        }
        self.tick_walk.is_some()
    }

    /// Walks `walk` for up to `budget`: each visited channel is re-announced on its tick of the
    /// presence period; a channel with subscribers has its countdown held at `channel_timeout`,
    /// one without counts down and is freed once below zero. Returns what is left, and what it
    /// spent.
    fn walk_some(&mut self, mut walk: TickWalk, budget: usize) -> (Walked, usize) {
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
            return (Walked::Part(walk), spent);
        }
        (
            Walked::Done {
                behind: walk.behind,
            },
            spent,
        )
    }

    /// True while a tick is being walked.
    pub fn ticking(&self) -> bool {
        self.tick_walk.is_some()
    }

    /// Before the entry at `index` is removed (the last entry then takes its index): a visited
    /// entry moved below the walk's position must not be visited again. (During the walk's own
    /// frees the walk is out of `tick_walk`, and this does nothing: the entry moved there is at
    /// or above the position already.)
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
