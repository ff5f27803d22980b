//! What a reload (SIGHUP, `-s reload`) may change while the server runs: the configuration read
//! again is compared with the running one, key by key. Addresses, threads, the engine, the
//! connection limit, the pidfile and the cluster block are fixed at start (their change is reported and waits for a
//! restart), and so are the CORS settings and the stateless-token secret, compiled once at
//! start; everything else — log level and output, admin allow/deny, channel and subscriber
//! limits, timeouts, request and output limits, WebSocket limits, SSE ids, auth — applies at once.
//!
//! Depends on: config (the settings).

use super::Config;

/// The keys that differ between the running configuration and the one read again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Applied by the reload.
    pub live: Vec<&'static str>,
    /// Kept at the running value until a restart.
    pub need_restart: Vec<&'static str>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.need_restart.is_empty()
    }
}

/// A setting: its file key and whether two configurations differ in it.
type Key = (&'static str, fn(&Config, &Config) -> bool);

/// Fixed at start: listeners, threads and their tables are built from these.
const AT_START: &[Key] = &[
    ("admin.listen", |a, b| a.admin.listen != b.admin.listen),
    ("front.listen", |a, b| a.front.listen != b.front.listen),
    ("server.threads", |a, b| {
        a.server.threads != b.server.threads
    }),
    ("server.engine", |a, b| a.server.engine != b.server.engine),
    ("server.max_connections", |a, b| {
        a.server.max_connections != b.server.max_connections
    }),
    ("server.uring_slots", |a, b| {
        a.server.uring_slots != b.server.uring_slots
    }),
    ("server.uring_table_size", |a, b| {
        a.server.uring_table_size != b.server.uring_table_size
    }),
    ("pidfile", |a, b| a.pidfile != b.pidfile),
    // Compiled once at start (the CORS header lines, the stateless-token key).
    ("front.cors_*", |a, b| a.front.cors != b.front.cors),
    ("front.auth_secret", |a, b| {
        a.front.auth_secret != b.front.auth_secret
    }),
    // The cluster thread and its Redis links are set up once.
    ("cluster.*", |a, b| a.cluster != b.cluster),
];

/// Applied while running.
const LIVE: &[Key] = &[
    ("logger.level", |a, b| a.logger.level != b.logger.level),
    ("logger.output", |a, b| a.logger.output != b.logger.output),
    ("logger.rotate.size", |a, b| {
        a.logger.rotate_size != b.logger.rotate_size
    }),
    ("admin.allow/deny", |a, b| a.admin.filter != b.admin.filter),
    ("front.auth", |a, b| a.front.auth != b.front.auth),
    ("front.max_channels", |a, b| {
        a.front.max_channels != b.front.max_channels
    }),
    ("front.max_subscribers_per_channel", |a, b| {
        a.front.max_subscribers_per_channel != b.front.max_subscribers_per_channel
    }),
    ("front.channel_buffer_size", |a, b| {
        a.front.channel_buffer_size != b.front.channel_buffer_size
    }),
    ("front.channel_timeout", |a, b| {
        a.front.channel_timeout != b.front.channel_timeout
    }),
    ("front.polling_timeout", |a, b| {
        a.front.polling_timeout != b.front.polling_timeout
    }),
    ("front.sse_ids", |a, b| a.front.sse_ids != b.front.sse_ids),
    ("server.header_timeout", |a, b| {
        a.server.header_timeout != b.server.header_timeout
    }),
    ("server.keepalive_timeout", |a, b| {
        a.server.keepalive_timeout != b.server.keepalive_timeout
    }),
    ("server.shutdown_timeout", |a, b| {
        a.server.shutdown_timeout != b.server.shutdown_timeout
    }),
    ("server.snapshot", |a, b| {
        a.server.snapshot != b.server.snapshot
    }),
    ("limits", |a, b| a.limits != b.limits),
];

/// Compares the running configuration with the one read again. A difference in a `front:` key
/// not named above is reported as `front (other keys)`, applied live.
pub fn changes(running: &Config, read: &Config) -> Changes {
    let pick = |keys: &[Key]| -> Vec<&'static str> {
        keys.iter()
            .filter(|(_, differs)| differs(running, read))
            .map(|(key, _)| *key)
            .collect()
    };
    let mut live = pick(LIVE);
    let need_restart = pick(AT_START);
    let mut front = read.front.clone();
    front.listen = running.front.listen;
    front.cors.clone_from(&running.front.cors);
    front.auth_secret.clone_from(&running.front.auth_secret);
    let named = LIVE
        .iter()
        .any(|(key, differs)| key.starts_with("front.") && differs(running, read));
    if front != running.front && !named {
        live.push("front (other keys)");
    }
    Changes { live, need_restart }
}

/// The configuration a reload runs with: what was read, except the keys fixed at start, which
/// keep their running values.
pub fn applied(running: &Config, read: &Config) -> Config {
    let mut next = read.clone();
    next.admin.listen = running.admin.listen;
    next.front.listen = running.front.listen;
    next.server.threads = running.server.threads;
    next.server.engine = running.server.engine;
    next.server.max_connections = running.server.max_connections;
    next.server.uring_slots = running.server.uring_slots;
    next.server.uring_table_size = running.server.uring_table_size;
    next.pidfile.clone_from(&running.pidfile);
    next.front.cors.clone_from(&running.front.cors);
    next.front
        .auth_secret
        .clone_from(&running.front.auth_secret);
    next.cluster.clone_from(&running.cluster);
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineKind;

    #[test]
    fn live_and_restart_keys_are_told_apart() {
        let running = Config::default();
        assert!(changes(&running, &running.clone()).is_empty());
        let mut read = running.clone();
        read.front.max_subscribers_per_channel = 3;
        read.limits.max_cname_bytes = 8;
        read.logger.level = log::LevelFilter::Debug;
        read.server.threads = running.server.threads + 1;
        read.server.engine = EngineKind::IoUring;
        let c = changes(&running, &read);
        assert_eq!(
            c.live,
            [
                "logger.level",
                "front.max_subscribers_per_channel",
                "limits"
            ]
        );
        assert_eq!(c.need_restart, ["server.threads", "server.engine"]);
        let next = applied(&running, &read);
        assert_eq!(next.server.threads, running.server.threads);
        assert_eq!(next.server.engine, running.server.engine);
        assert_eq!(next.front.max_subscribers_per_channel, 3);
        assert_eq!(next.limits.max_cname_bytes, 8);
    }
}
