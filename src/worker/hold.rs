//! Back-pressure for big channels: an operation that publishes to a channel whose fan-out is
//! behind waits at the channel's home (`held`) until the fan-out catches up, and every later
//! operation on that channel waits behind it, in order.
//!
//! The fan-out lane (`fanout_lane`) and the backlog (`backlog`) give a big channel's fan-out a
//! bounded time per turn, so a home stores pushes far faster than their frames can be queued
//! and sent. Without a hold, a fast publisher would grow the lanes without limit. Behind means:
//! the channel's messages waiting in the home's lane times its subscribers, plus the
//! subscribers of every big channel published to on this home whose deliveries are still in its
//! own mail (they reach the lane when the turn handles its mail), reach `limits.fanout_ahead`;
//! or the lane of another worker with subscribers of the channel holds `LANE_BEHIND` items; or a
//! worker with subscribers of the channel is still writing its backlog with more than half its
//! `limits.buffer_budget` buffered. The last bounds bytes, not deliveries: over its budget a
//! worker closes the subscribers with most queued, and without it a fast publisher of large
//! messages got subscribers that kept up closed for the backlog's own pace. It lets go as soon
//! as the backlog is written, so connections that stopped reading (they leave the backlog for
//! the kernel's readiness) slow a publisher but never hold it for good.
//!
//! The lane's frames then wait in the backlog, which writes fewer subscribers a turn than the
//! lane queues frames for; a subscriber's frames of the messages that arrive meanwhile extend
//! one range of a shared batch (`frame_batch`), so each subscriber holds about 16 frames at
//! most (the ratio of the two budgets), whatever the publisher does.
//!
//! A held publish makes its publisher wait:
//! - An admin operation's reply waits with it. A publisher on the home gets a numbered reply, and
//!   its next requests wait for that reply (`flags::WINDOW_WAIT`).
//! - A publish already answered on another worker (`Msg::Publish`) keeps counting against that
//!   worker's `limits.publish_ahead` window until it runs. So that publisher's next pushes wait
//!   for their replies too.
//!
//! Released: in order, each once its channel is no longer behind. Everything is released at once
//! before a `/broadcast` (it must reach the channel after what was published before it) and at
//! shutdown. While operations are held the loop wakes every `HOLD_POLL` to look at the other
//! workers' lanes.
//!
//! Depends on: worker (Worker, held, lane, channel_queue, home's operations, shared counters),
//! comet (worker bits).

use super::backlog::BIG_FANOUT;
use super::channel_queue::OfChannel;
use super::conn::{flags, Conns};
use super::held::HeldOp;
use super::Worker;
use crate::api::HomeRequest;
use crate::comet::hub::worker_bit;
use crate::engine::Token;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Items another worker's lane may hold before publishes to its big channels wait.
const LANE_BEHIND: usize = 64;

/// How often a worker holding operations looks at the other workers' lanes when it has nothing
/// else to do.
const HOLD_POLL: Duration = Duration::from_millis(1);

impl Worker {
    /// Whether an operation on `cname` must wait: operations of the channel are held already,
    /// or it publishes (`publishes`) while the channel's fan-out is behind. Never while shutting
    /// down (what is held was released when it began).
    pub(super) fn must_hold(&self, cname: &[u8], publishes: bool) -> bool {
        self.shutting_down.is_none()
            && (self.held.holds(cname) || (publishes && self.fanout_behind(cname)))
    }

    /// Whether the channel's fan-out is behind (see the module doc).
    fn fanout_behind(&self, cname: &[u8]) -> bool {
        let Some(channel) = self.hub.channel(cname) else {
            return false;
        };
        let subscribers = channel.subscribers() as usize;
        if subscribers < BIG_FANOUT {
            return false;
        }
        // `limits.fanout_ahead` (65,536 by default: ≈ 30 ms of queuing frames at this machine's
        // 0.5 µs each). One publish always goes ahead when the lane has none of the channel's,
        // however many subscribers it has.
        let ahead = self.lane.depth(cname).saturating_mul(subscribers);
        if ahead.saturating_add(self.big_published) >= self.config.limits.fanout_ahead {
            return true;
        }
        let workers = channel.workers();
        let half_budget = self.config.limits.buffer_budget_bytes / 2;
        if workers & worker_bit(self.id) != 0 && self.backlogged() && self.buffered > half_budget {
            return true;
        }
        (0..self.workers().min(64)).any(|w| {
            w != self.id
                && workers & worker_bit(w) != 0
                && self.shared.stats.get(w).is_some_and(|s| {
                    s.lane.load(Ordering::Relaxed) >= LANE_BEHIND
                        || (s.backlog.load(Ordering::Relaxed) > 0
                            && s.buffered.load(Ordering::Relaxed) > half_budget)
                })
        })
    }

    /// Counts the deliveries of a publish to a big channel: they reach this worker's lane through
    /// its own mail (emptied once a turn, `Worker::handle_mail`), so they count against
    /// `limits.fanout_ahead` until then.
    pub(super) fn count_big_publish(&mut self, p: &crate::comet::hub::Published) {
        let subscribers = p.subscribers as usize;
        if subscribers >= BIG_FANOUT {
            self.big_published = self.big_published.saturating_add(subscribers);
        }
    }

    /// Holds an operation (see the module doc).
    pub(super) fn hold(&mut self, op: HeldOp) {
        if op.publishes() {
            self.stats().pushes_held.fetch_add(1, Ordering::Relaxed);
        }
        self.held.push(op);
    }

    /// Holds an admin operation of this worker's connection `token`: it gets a numbered reply,
    /// which its next requests wait for.
    pub(super) fn hold_local(&mut self, token: Token, request: HomeRequest) {
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        conn.set(flags::WINDOW_WAIT);
        let Some(replies) = conn.replies_mut() else {
            return;
        };
        let number = replies.reserve();
        let from = self.id;
        let request = Box::new(request);
        self.hold(HeldOp::Home {
            from,
            token,
            number,
            request,
        });
    }

    /// Whether operations are held (the loop wakes every `HOLD_POLL`).
    pub(super) fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// How long the loop may sleep, at most `timeout`: `HOLD_POLL` while operations are held.
    pub(super) fn hold_wait(&self, timeout: Duration) -> Duration {
        if self.holding() {
            timeout.min(HOLD_POLL)
        } else {
            timeout
        }
    }

    /// Runs the held operations whose channel caught up, in order (`all`: every one, now).
    pub(super) fn release_held(&mut self, all: bool) {
        while let Some(front) = self.held.front() {
            if !all && front.publishes() && self.fanout_behind(front.channel()) {
                return;
            }
            match self.held.pop() {
                Some(HeldOp::Publish { cname, content }) => self.home_publish_now(&cname, &content),
                Some(HeldOp::Home {
                    from,
                    token,
                    number,
                    request,
                }) => self.home_request_now(from, token, number, &request),
                None => return,
            }
        }
    }
}
