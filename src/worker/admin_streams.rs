//! `/stats/stream` readers on the admin port: each worker sends its own readers one event with
//! the `/stats` object every `STATS_STREAM_INTERVAL` (a quarter of a second, so a push shows on
//! the admin page well within a second); a worker without readers never wakes for them. A reader is an endless admin stream
//! like a `/psub` one (phase `Presence`, flag `STATS_STREAM`); one that does not read is closed
//! at the output cap like any slow consumer (`output::after_queue`).
//!
//! Depends on: worker (Worker, Conn), api (the event bytes, the `/stats` JSON).

use super::conn::{flags, Conns, Phase};
use super::Worker;
use crate::api::Metrics;
use crate::engine::Token;
use std::time::{Duration, Instant};

/// How often a `/stats/stream` reader gets an event.
pub(crate) const STATS_STREAM_INTERVAL: Duration = Duration::from_millis(250);

impl Worker {
    /// The connection becomes a `/stats/stream` reader (its head and first event are queued).
    pub(crate) fn start_stats_stream(&mut self, token: Token) {
        if let Some(conn) = self.conns.at(token) {
            conn.phase = Phase::Presence;
            conn.set(flags::STATS_STREAM);
            self.stats_streams.push(token);
            self.disarm(token);
        }
    }

    /// A reader left (it is closing).
    pub(super) fn end_stats_stream(&mut self, token: Token) {
        self.stats_streams.retain(|t| *t != token);
    }

    /// How long the loop may sleep before the next stats event is due (`None`: no readers).
    pub(super) fn stats_wait(&self) -> Option<Duration> {
        (!self.stats_streams.is_empty())
            .then(|| self.stats_next.saturating_duration_since(Instant::now()))
    }

    /// One stats event for every reader of this worker, once `STATS_STREAM_INTERVAL` passed.
    pub(super) fn send_stats_when_due(&mut self) {
        if self.stats_streams.is_empty() {
            return;
        }
        let now = Instant::now();
        if now < self.stats_next {
            return;
        }
        self.stats_next = now + STATS_STREAM_INTERVAL;
        let mut json = Vec::with_capacity(1024);
        self.shared.write_json(&mut json);
        let readers = std::mem::take(&mut self.stats_streams);
        let mut chunked = Vec::with_capacity(json.len() + 16);
        let mut raw = Vec::new();
        crate::api::admin::stats_event(true, &json, &mut chunked);
        for &token in &readers {
            let http10 = self.conns.peek(token).is_none_or(|c| c.has(flags::HTTP10));
            if http10 && raw.is_empty() {
                crate::api::admin::stats_event(false, &json, &mut raw);
            }
            self.queue(token, if http10 { &raw } else { &chunked });
        }
        // A reader closed for holding too much unsent output leaves the list here.
        let conns = &self.conns;
        self.stats_streams = readers;
        self.stats_streams
            .retain(|&t| conns.peek(t).is_some_and(|c| c.phase == Phase::Presence));
    }
}
