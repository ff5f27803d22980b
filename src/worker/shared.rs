//! State shared by every worker of one server: the configuration (read-only), the clock origin,
//! and a few process-wide counters kept as atomics (never a lock on the per-connection path).
//!
//! Depends on: config, comet (hub configuration, counters, the stateless-token key), api (the
//! CORS lines), cluster (the handle and its link counters).

use crate::api::cors::CorsHeads;
use crate::comet::auth::StatelessKey;
use crate::comet::hub::{Counters, HubConfig};
use crate::config::{Auth, Config};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters one worker updates (relaxed atomics on their own cache lines, written by that
/// worker only) and anyone may read.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerStats {
    pub connections: AtomicUsize,
    pub admin_connections: AtomicUsize,
    pub accepted: AtomicU64,
    /// Connections refused at accept (max_connections, shutdown, no slot, no file descriptor or
    /// direct-descriptor table room: see `Completion::Refused`).
    pub refused: AtomicU64,
    /// Failed accepts the backend reported (copied from it once per turn).
    pub accept_errors: AtomicU64,
    /// Subscribers with an open response on this worker.
    pub subscribers: AtomicUsize,
    /// The same by transport (`api::metrics::TRANSPORTS` order).
    pub subscribers_by_transport: [AtomicUsize; 5],
    /// Messages stored at their home on this worker.
    pub pushes: AtomicU64,
    /// Messages written to subscribers.
    pub deliveries: AtomicU64,
    /// Stored messages sent in catch-ups.
    pub replays: AtomicU64,
    /// Pushes of this worker's publishers whose reply waited for the channel's home
    /// (`Shared::reserve_publish` said no).
    pub push_waits: AtomicU64,
    /// Publishes to a big channel that waited at its home for the channel's fan-out
    /// (`worker::hold`).
    pub pushes_held: AtomicU64,
    /// Heartbeats sent.
    pub noops: AtomicU64,
    /// Bytes queued for clients.
    pub bytes_out: AtomicU64,
    /// Requests parsed.
    pub requests: AtomicU64,
    /// Responses by status class (1xx … 5xx).
    pub responses: [AtomicU64; 5],
    /// Connections with a timer armed (last sweep) and unhandled mail at the end of the last turn.
    pub timers: AtomicUsize,
    pub mail: AtomicUsize,
    /// Connections waiting in the fan-out backlog at the end of the last turn (`worker::backlog`).
    pub backlog: AtomicUsize,
    /// Items in the fan-out lane at the end of the last turn (`worker::fanout_lane`); a channel's
    /// home reads the other workers' to hold publishes their fan-out is behind on.
    pub lane: AtomicUsize,
    /// Bytes the worker's connections held buffered (unsent output, unread input) at the end of
    /// the last turn; read with `backlog` to hold publishes while a fan-out is written past half
    /// the worker's budget (`worker::hold`).
    pub buffered: AtomicUsize,
    /// Loop turns per duration bucket (`api::metrics::TURN_BUCKETS_US`, then +Inf).
    pub turn_buckets: [AtomicU64; 13],
    pub turn_nanos: AtomicU64,
}

impl WorkerStats {
    /// Counts one response from the status line at the front of `reply` (`HTTP/1.x NNN`).
    pub fn count_response(&self, reply: &[u8]) {
        if let (Some(b"HTTP/1."), Some(&class)) = (reply.get(..7), reply.get(9)) {
            if (b'1'..=b'5').contains(&class) {
                let i = usize::from(class - b'1');
                if let Some(c) = self.responses.get(i) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// One loop turn's working time.
    pub fn count_turn(&self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = crate::api::metrics::turn_bucket(us);
        if let Some(b) = self.turn_buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.turn_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self) -> crate::api::metrics::WorkerSnapshot {
        let n = |a: &AtomicUsize| a.load(Ordering::Relaxed) as u64;
        let n64 = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let connections = n(&self.connections);
        let admin = n(&self.admin_connections).min(connections);
        crate::api::metrics::WorkerSnapshot {
            front_connections: connections - admin,
            admin_connections: admin,
            accepted: n64(&self.accepted),
            refused: n64(&self.refused),
            accept_errors: n64(&self.accept_errors),
            subscribers: self.subscribers_by_transport.each_ref().map(n),
            pushes: n64(&self.pushes),
            deliveries: n64(&self.deliveries),
            replays: n64(&self.replays),
            push_waits: n64(&self.push_waits),
            pushes_held: n64(&self.pushes_held),
            noops: n64(&self.noops),
            bytes_out: n64(&self.bytes_out),
            requests: n64(&self.requests),
            responses: self.responses.each_ref().map(n64),
            timers: n(&self.timers),
            mail: n(&self.mail),
            backlog: n(&self.backlog),
            lane: n(&self.lane),
            turn_buckets: self.turn_buckets.each_ref().map(n64),
            turn_seconds_sum: n64(&self.turn_nanos) as f64 / 1e9,
        }
    }
}

pub struct Shared {
    pub config: Config,
    /// The front port's CORS header lines, rendered from the configuration once.
    pub cors: CorsHeads,
    /// The key of stateless tokens (`front.auth_secret`, under `auth: token`).
    pub stateless: Option<StatelessKey>,
    pub stats: Vec<WorkerStats>,
    pub workers: usize,
    start: Instant,
    counters: Arc<Counters>,
    connections: AtomicUsize,
    /// Connections admitted at most: `server.max_connections`, or fewer when the engine cannot
    /// hold that many (epoll: the open-file limit).
    connection_limit: AtomicUsize,
    /// Subscribers closed because their output queue passed `max_output_bytes`.
    pub slow_consumers_closed: AtomicU64,
    /// Connections refused or closed because a worker's buffer budget was spent.
    pub budget_refusals: AtomicU64,
    /// Cluster mode: the way to the cluster thread (`None`: single-node, no Redis).
    pub cluster: Option<crate::cluster::Handle>,
    /// Per worker: bytes of publishes answered on their publisher's worker and on their way to
    /// this worker as their channels' home, not stored yet (`reserve_publish`).
    publish_ahead: Vec<PublishAhead>,
}

/// One worker's `Shared::publish_ahead` count, on its own cache line (every worker may add to
/// it; the home takes off what it stored).
#[derive(Debug, Default)]
#[repr(align(64))]
struct PublishAhead(AtomicUsize);

/// The hub settings a configuration gives.
pub fn hub_config(config: &Config) -> HubConfig {
    let front = &config.front;
    HubConfig {
        max_channels: front.max_channels,
        max_subscribers_per_channel: u32::try_from(front.max_subscribers_per_channel)
            .unwrap_or(u32::MAX),
        channel_buffer_size: u32::try_from(front.channel_buffer_size).unwrap_or(u32::MAX),
        channel_timeout: i32::try_from(front.channel_timeout).unwrap_or(i32::MAX),
        polling_timeout: i32::try_from(front.polling_timeout).unwrap_or(i32::MAX),
        auth_token: front.auth == Auth::Token,
    }
}

/// Connection slots one worker of `workers` holds: its share of `max_connections` plus room for
/// the uneven spread SO_REUSEPORT gives (the process-wide limit is checked separately).
pub fn connections_per_worker(max_connections: usize, workers: usize) -> usize {
    let share = max_connections / workers.max(1);
    share + share / 8 + 1024
}

impl Shared {
    pub fn new(config: Config, workers: usize) -> Shared {
        let config_limit = config.server.max_connections;
        Shared {
            cors: CorsHeads::new(&config.front.cors),
            stateless: config
                .front
                .auth_secret
                .as_ref()
                .filter(|_| config.front.auth == Auth::Token)
                .map(|secret| StatelessKey::new(&secret.0)),
            config,
            stats: (0..workers).map(|_| WorkerStats::default()).collect(),
            workers,
            start: Instant::now(),
            counters: Counters::new(),
            connections: AtomicUsize::new(0),
            connection_limit: AtomicUsize::new(config_limit),
            slow_consumers_closed: AtomicU64::new(0),
            budget_refusals: AtomicU64::new(0),
            cluster: None,
            publish_ahead: (0..workers).map(|_| PublishAhead::default()).collect(),
        }
    }

    /// Counts `bytes` of a publish sent ahead to `home` before it is stored there; false (nothing
    /// counted) when `home` already has `window` bytes or more of them waiting, or is unknown.
    pub fn reserve_publish(&self, home: usize, bytes: usize, window: usize) -> bool {
        self.publish_ahead.get(home).is_some_and(|ahead| {
            ahead
                .0
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < window).then_some(n.saturating_add(bytes))
                })
                .is_ok()
        })
    }

    /// `home` stored (or dropped) a publish of `bytes` that `reserve_publish` counted.
    pub fn publish_stored(&self, home: usize, bytes: usize) {
        if let Some(ahead) = self.publish_ahead.get(home) {
            let _ = ahead
                .0
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(bytes))
                });
        }
    }

    /// Bytes of publishes on their way to `home` (`reserve_publish`).
    #[cfg(test)]
    pub fn publish_ahead(&self, home: usize) -> usize {
        self.publish_ahead
            .get(home)
            .map_or(0, |a| a.0.load(Ordering::Relaxed))
    }

    /// Connection slots of each worker (see `connections_per_worker`).
    pub fn connections_per_worker(&self) -> usize {
        connections_per_worker(self.config.server.max_connections, self.workers)
    }

    /// Whole seconds since start, plus one: every worker ticks on the same second boundaries.
    pub fn tick(&self) -> u32 {
        self.start.elapsed().as_secs() as u32 + 1
    }

    /// Time until the next tick boundary.
    pub fn until_next_tick(&self) -> Duration {
        let elapsed = self.start.elapsed();
        let next = Duration::from_secs(elapsed.as_secs() + 1);
        next.saturating_sub(elapsed) + Duration::from_millis(1)
    }

    pub fn hub_config(&self) -> HubConfig {
        hub_config(&self.config)
    }

    /// The channel and subscriber counters every hub updates.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// The shared counters, borrowed.
    pub fn counters_ref(&self) -> &Counters {
        &self.counters
    }

    pub fn channels(&self) -> usize {
        self.counters.channels()
    }

    pub fn subscribers(&self) -> usize {
        self.counters.subscribers()
    }

    /// Lowers the connection limit below `server.max_connections` (never raises it).
    pub fn limit_connections(&self, most: usize) {
        self.connection_limit.fetch_min(most, Ordering::Relaxed);
    }

    /// Connections admitted at most (see [`Shared::limit_connections`]).
    pub fn connection_limit(&self) -> usize {
        self.connection_limit.load(Ordering::Relaxed)
    }

    /// Counts a new connection; false when the process is at its connection limit.
    pub fn admit_connection(&self) -> bool {
        let max = self.connection_limit();
        self.connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub fn release_connection(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl crate::api::Metrics for Shared {
    fn snapshot(&self) -> crate::api::metrics::Snapshot {
        crate::api::metrics::Snapshot {
            channels: self.channels() as u64,
            max_connections: self.connection_limit() as u64,
            presence_readers: self.counters.listeners() as u64,
            slow_consumers_closed: self.slow_consumers_closed.load(Ordering::Relaxed),
            budget_refusals: self.budget_refusals.load(Ordering::Relaxed),
            uptime_seconds: self.start.elapsed().as_secs(),
            workers: self.stats.iter().map(WorkerStats::snapshot).collect(),
        }
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        use std::fmt::Write;
        let mut s = String::with_capacity(512);
        let load = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        let load64 = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = write!(
            s,
            "{{\"channels\": {}, \"subscribers\": {}, \"connections\": {}, \"max_connections\": {}, \
             \"slow_consumers_closed\": {}, \"budget_refusals\": {}, \"presence_clients\": {}, \"workers\": [",
            self.channels(),
            self.subscribers(),
            self.connections(),
            self.connection_limit(),
            load64(&self.slow_consumers_closed),
            load64(&self.budget_refusals),
            self.counters.listeners(),
        );
        for (i, w) in self.stats.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"connections\": {}, \"accepted\": {}, \"subscribers\": {}, \"deliveries\": {}, \"requests\": {}, \"pushes\": {}}}",
                if i == 0 { "" } else { ", " },
                load(&w.connections),
                load64(&w.accepted),
                load(&w.subscribers),
                load64(&w.deliveries),
                load64(&w.requests),
                load64(&w.pushes),
            );
        }
        s.push(']');
        if let Some(cluster) = &self.cluster {
            let mut link = Vec::with_capacity(256);
            cluster.stats.write_json(&cluster.node, &mut link);
            s.push_str(", \"cluster\": {");
            s.push_str(&String::from_utf8_lossy(&link));
            s.push('}');
        }
        s.push_str("}\n");
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_go_ahead_until_the_window_is_reached_and_again_once_stored() {
        let shared = Shared::new(Config::default(), 2);
        assert!(shared.reserve_publish(1, 300, 1000));
        assert!(
            shared.reserve_publish(1, 800, 1000),
            "below the window before it"
        );
        assert_eq!(shared.publish_ahead(1), 1100);
        assert!(!shared.reserve_publish(1, 1, 1000), "at the window: wait");
        assert!(
            shared.reserve_publish(0, 1, 1000),
            "another home has its own window"
        );
        shared.publish_stored(1, 800);
        assert!(shared.reserve_publish(1, 10, 1000));
        assert_eq!(shared.publish_ahead(1), 310);
        shared.publish_stored(1, 10_000);
        assert_eq!(shared.publish_ahead(1), 0, "never below zero");
        assert!(
            !shared.reserve_publish(1, 1, 0),
            "a window of 0: every push waits"
        );
        assert!(!shared.reserve_publish(7, 1, 1000), "no such worker");
    }
}
