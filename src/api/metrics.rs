//! `/metrics`: the server's counters in the Prometheus text exposition format (version 0.0.4),
//! from a [`Snapshot`] the worker layer fills at scrape time by reading each worker's counters
//! (no shared atomic is written on the per-connection path). Counters and gauges are summed over
//! the workers here, one series each (or one per port, transport or status class); only the
//! loop-turn histogram keeps a series per worker. Names start with `rcomet_`, units are in the
//! names, every family has its HELP and TYPE lines.
//!
//! Depends on: nothing of the crate (plain numbers in, text out).

use std::fmt::Write;

/// The upper bounds (microseconds) of the loop-turn duration histogram's buckets; `+Inf` follows.
pub const TURN_BUCKETS_US: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000,
];

/// Names of the subscription transports, in the order of their counters.
pub const TRANSPORTS: [&str; 5] = ["long_poll", "stream", "sse", "iframe", "websocket"];

/// One worker's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerSnapshot {
    pub front_connections: u64,
    pub admin_connections: u64,
    pub accepted: u64,
    pub refused: u64,
    pub accept_errors: u64,
    /// Open subscriptions by transport (the order of [`TRANSPORTS`]).
    pub subscribers: [u64; 5],
    pub pushes: u64,
    pub deliveries: u64,
    pub replays: u64,
    /// Pushes whose reply waited for their channel's home (its mailbox was full of them).
    pub push_waits: u64,
    /// Publishes to big channels that waited for the channel's fan-out to catch up.
    pub pushes_held: u64,
    pub noops: u64,
    pub bytes_out: u64,
    pub requests: u64,
    /// Responses by status class: 1xx … 5xx.
    pub responses: [u64; 5],
    pub timers: u64,
    pub mail: u64,
    /// Connections waiting in the fan-out backlog (a big channel's frames not written yet).
    pub backlog: u64,
    /// Deliveries (and closes) of big channels waiting in the fan-out lane.
    pub lane: u64,
    /// Loop turns per bucket of [`TURN_BUCKETS_US`] (not cumulative), the last one `+Inf`.
    pub turn_buckets: [u64; 13],
    pub turn_seconds_sum: f64,
}

/// The whole server's numbers.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub channels: u64,
    pub max_connections: u64,
    pub presence_readers: u64,
    pub slow_consumers_closed: u64,
    pub budget_refusals: u64,
    pub uptime_seconds: u64,
    pub workers: Vec<WorkerSnapshot>,
}

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn new<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &str, value: impl std::fmt::Display) {
        let name = self.name;
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }
}

fn sum(workers: &[WorkerSnapshot], value: impl Fn(&WorkerSnapshot) -> u64) -> u64 {
    workers.iter().map(value).sum()
}

/// Appends the exposition of `s`.
pub fn write(s: &Snapshot, out: &mut Vec<u8>) {
    let mut t = String::with_capacity(8192);
    let w = &s.workers;
    let mut f = Family::new(
        &mut t,
        "rcomet_connections",
        "gauge",
        "Open connections by port.",
    );
    f.sample("port=\"front\"", sum(w, |w| w.front_connections));
    f.sample("port=\"admin\"", sum(w, |w| w.admin_connections));
    let help = "Connections the server may hold (server.max_connections, or fewer when the open-file limit allows fewer on epoll).";
    Family::new(&mut t, "rcomet_connections_max", "gauge", help).sample("", s.max_connections);
    let help = "Connections accepted.";
    Family::new(&mut t, "rcomet_connections_accepted_total", "counter", help)
        .sample("", sum(w, |w| w.accepted));
    let help = "Connections closed unserved at accept (max_connections, shutdown, out of file descriptors or direct-descriptor slots).";
    Family::new(&mut t, "rcomet_connections_refused_total", "counter", help)
        .sample("", sum(w, |w| w.refused));
    let help = "Accept calls that failed (descriptor or table limits).";
    Family::new(&mut t, "rcomet_accept_errors_total", "counter", help)
        .sample("", sum(w, |w| w.accept_errors));
    let help = "Requests or connections refused because a worker's buffer budget was spent.";
    Family::new(&mut t, "rcomet_budget_refusals_total", "counter", help)
        .sample("", s.budget_refusals);
    let help = "Open subscriptions by transport.";
    let mut f = Family::new(&mut t, "rcomet_subscribers", "gauge", help);
    for (i, name) in TRANSPORTS.iter().enumerate() {
        f.sample(
            &format!("transport=\"{name}\""),
            sum(w, |w| w.subscribers[i]),
        );
    }
    let help = "Channels that exist (with creations in progress).";
    Family::new(&mut t, "rcomet_channels", "gauge", help).sample("", s.channels);
    let help = "Open /psub presence streams.";
    Family::new(&mut t, "rcomet_presence_readers", "gauge", help).sample("", s.presence_readers);
    let help = "Messages stored in a channel (push, pub, broadcast per channel).";
    Family::new(&mut t, "rcomet_pushes_total", "counter", help).sample("", sum(w, |w| w.pushes));
    let help = "Messages written to subscribers (live and replayed).";
    Family::new(&mut t, "rcomet_deliveries_total", "counter", help)
        .sample("", sum(w, |w| w.deliveries));
    let help = "Stored messages sent in subscriptions' catch-up.";
    Family::new(&mut t, "rcomet_replays_total", "counter", help).sample("", sum(w, |w| w.replays));
    let help = "Pushes answered only once their channel's home stored them, because the home was \
                behind with the pushes answered before (a publisher faster than the fan-out).";
    Family::new(&mut t, "rcomet_push_waits_total", "counter", help)
        .sample("", sum(w, |w| w.push_waits));
    let help = "Operations on a channel with many subscribers that waited at its home until the \
                channel's fan-out caught up (a publisher faster than the fan-out).";
    Family::new(&mut t, "rcomet_pushes_held_total", "counter", help)
        .sample("", sum(w, |w| w.pushes_held));
    let help = "Heartbeats (noop) sent.";
    Family::new(&mut t, "rcomet_noops_total", "counter", help).sample("", sum(w, |w| w.noops));
    let help = "Bytes queued for clients.";
    Family::new(&mut t, "rcomet_bytes_out_total", "counter", help)
        .sample("", sum(w, |w| w.bytes_out));
    let help = "Subscribers closed because their unsent output passed limits.max_output_size.";
    Family::new(
        &mut t,
        "rcomet_slow_consumers_closed_total",
        "counter",
        help,
    )
    .sample("", s.slow_consumers_closed);
    let help = "Requests parsed.";
    Family::new(&mut t, "rcomet_requests_total", "counter", help)
        .sample("", sum(w, |w| w.requests));
    let help = "Responses by status class.";
    let mut f = Family::new(&mut t, "rcomet_responses_total", "counter", help);
    for class in 0..5 {
        let n = sum(w, |w| w.responses[class]);
        f.sample(&format!("code=\"{}xx\"", class + 1), n);
    }
    let help = "Connections with a timer armed (keep-alive, header, heartbeat), as each worker's last sweep counted them.";
    Family::new(&mut t, "rcomet_timers", "gauge", help).sample("", sum(w, |w| w.timers));
    let help =
        "Messages between workers waiting to be handled, at the end of each worker's last turn.";
    Family::new(&mut t, "rcomet_mailbox_depth", "gauge", help).sample("", sum(w, |w| w.mail));
    let help = "Connections whose frames of a big fan-out (a channel with many subscribers on one worker, a broadcast) wait to be written, a bounded number per loop turn.";
    Family::new(&mut t, "rcomet_fanout_backlog", "gauge", help).sample("", sum(w, |w| w.backlog));
    let help = "Deliveries to channels with many subscribers on a worker waiting to be queued, a bounded part per loop turn.";
    Family::new(&mut t, "rcomet_fanout_lane_depth", "gauge", help).sample("", sum(w, |w| w.lane));
    write_turns(&mut t, w);
    let help = "Seconds since the server started.";
    Family::new(&mut t, "rcomet_uptime_seconds", "gauge", help).sample("", s.uptime_seconds);
    out.extend_from_slice(t.as_bytes());
}

/// The loop-turn duration histogram, one series per worker.
fn write_turns(t: &mut String, workers: &[WorkerSnapshot]) {
    let help = "Time one loop turn spent working (from the first event to the end of the turn).";
    let mut f = Family::new(t, "rcomet_loop_turn_seconds", "histogram", help);
    f.name = "rcomet_loop_turn_seconds_bucket";
    for (i, w) in workers.iter().enumerate() {
        let mut cumulative = 0;
        for (b, n) in w.turn_buckets.iter().enumerate() {
            cumulative += n;
            let le = match TURN_BUCKETS_US.get(b) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            f.sample(&format!("worker=\"{i}\",le=\"{le}\""), cumulative);
        }
    }
    f.name = "rcomet_loop_turn_seconds_sum";
    for (i, w) in workers.iter().enumerate() {
        f.sample(&format!("worker=\"{i}\""), w.turn_seconds_sum);
    }
    f.name = "rcomet_loop_turn_seconds_count";
    for (i, w) in workers.iter().enumerate() {
        f.sample(
            &format!("worker=\"{i}\""),
            w.turn_buckets.iter().sum::<u64>(),
        );
    }
}

/// The bucket of a turn that took `us` microseconds.
pub fn turn_bucket(us: u64) -> usize {
    TURN_BUCKETS_US
        .iter()
        .position(|&bound| us <= bound)
        .unwrap_or(TURN_BUCKETS_US.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_samples() {
        let mut w = WorkerSnapshot {
            front_connections: 3,
            subscribers: [1, 2, 0, 0, 4],
            ..WorkerSnapshot::default()
        };
        w.turn_buckets[0] = 5;
        w.turn_buckets[12] = 1;
        let s = Snapshot {
            workers: vec![w.clone(), w],
            ..Snapshot::default()
        };
        let mut out = Vec::new();
        write(&s, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("# TYPE rcomet_connections gauge\n"));
        assert!(text.contains("rcomet_connections{port=\"front\"} 6\n"));
        assert!(text.contains("rcomet_subscribers{transport=\"websocket\"} 8\n"));
        assert!(text.contains("rcomet_loop_turn_seconds_bucket{worker=\"1\",le=\"0.00001\"} 5\n"));
        assert!(text.contains("rcomet_loop_turn_seconds_bucket{worker=\"1\",le=\"+Inf\"} 6\n"));
        assert!(text.contains("rcomet_loop_turn_seconds_count{worker=\"0\"} 6\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("rcomet_"), "{line}");
        }
    }

    #[test]
    fn turn_buckets_cover_every_duration() {
        assert_eq!(turn_bucket(0), 0);
        assert_eq!(turn_bucket(10), 0);
        assert_eq!(turn_bucket(11), 1);
        assert_eq!(turn_bucket(250_000), 11);
        assert_eq!(turn_bucket(u64::MAX), 12);
    }
}
