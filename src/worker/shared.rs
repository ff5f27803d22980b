//! State shared by every worker of one server: the configuration (read-only), the clock origin,
//! and a few process-wide counters kept as atomics (never a lock on the per-connection path).
//!
//! Depends on: config, comet (hub configuration, counters, the stateless-token key), api (the
//! CORS lines).

use crate::api::cors::CorsHeads;
use crate::comet::auth::StatelessKey;
use crate::comet::hub::{Counters, HubConfig};
use crate::config::{Auth, Config};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters one worker updates (relaxed atomics on their own cache line) and anyone may read.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerStats {
    pub connections: AtomicUsize,
    pub accepted: AtomicU64,
    /// Subscribers with an open response on this worker.
    pub subscribers: AtomicUsize,
    /// Messages written to subscribers.
    pub deliveries: AtomicU64,
    /// Requests parsed.
    pub requests: AtomicU64,
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
    /// Subscribers closed because their output queue passed `max_output_bytes`.
    pub slow_consumers_closed: AtomicU64,
    /// Connections refused or closed because a worker's buffer budget was spent.
    pub budget_refusals: AtomicU64,
}

/// Connection slots one worker of `workers` holds: its share of `max_connections` plus room for
/// the uneven spread SO_REUSEPORT gives (the process-wide limit is checked separately).
pub fn connections_per_worker(max_connections: usize, workers: usize) -> usize {
    let share = max_connections / workers.max(1);
    share + share / 8 + 1024
}

impl Shared {
    pub fn new(config: Config, workers: usize) -> Shared {
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
            slow_consumers_closed: AtomicU64::new(0),
            budget_refusals: AtomicU64::new(0),
        }
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
        let front = &self.config.front;
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

    /// Counts a new connection; false when the process is at `max_connections`.
    pub fn admit_connection(&self) -> bool {
        let max = self.config.server.max_connections;
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
            self.config.server.max_connections,
            load64(&self.slow_consumers_closed),
            load64(&self.budget_refusals),
            self.counters.listeners(),
        );
        for (i, w) in self.stats.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"connections\": {}, \"accepted\": {}, \"subscribers\": {}, \"deliveries\": {}, \"requests\": {}}}",
                if i == 0 { "" } else { ", " },
                load(&w.connections),
                load64(&w.accepted),
                load(&w.subscribers),
                load64(&w.deliveries),
                load64(&w.requests),
            );
        }
        s.push_str("]}\n");
        out.extend_from_slice(s.as_bytes());
    }
}
