//! A big channel's fan-out and the worker's buffer budget: subscribers that keep reading are never
//! closed as slow consumers for the server's own pace, also when the budget is small against what
//! a fast publisher queues. Runs the real server and the real load generator (`rcomet-loadgen
//! fanout`). Depends only on `tests/support`.
mod support;

use support::loadgen::run_loadgen;
use support::{engine_tests, Opts, Server};

/// Subscribers of the one channel: the fan-out goes through the backlog on every worker.
const SUBSCRIBERS: usize = 4000;
/// Pushes, pipelined on one admin connection, 32 in flight.
const PUSHES: usize = 300;
/// A worker's buffer budget: far less than the pushes' frames for every subscriber (about 1.3
/// GB), so the budget, not the lane's count of deliveries, is what must bound the backlog.
const BUDGET: &str = "33554432";

engine_tests!(a_fast_publisher_of_large_messages_cuts_no_subscriber_that_keeps_up);
fn a_fast_publisher_of_large_messages_cuts_no_subscriber_that_keeps_up(engine: &'static str) {
    let server = Server::start(
        Opts::new(engine)
            .arg("--max-subscribers-per-channel")
            .arg(&SUBSCRIBERS.to_string())
            .arg("--buffer-budget")
            .arg(BUDGET),
    );
    let r = run_loadgen(
        &server,
        server.front,
        &[
            "fanout",
            "-n",
            &SUBSCRIBERS.to_string(),
            "--per-channel",
            &SUBSCRIBERS.to_string(),
            "--transport",
            "stream",
            "--msg-rate",
            "0",
            "--in-flight",
            "32",
            "--admin-conns",
            "1",
            "--msg-size",
            "1024",
            "--messages",
            &PUSHES.to_string(),
            "--drain",
            "20",
        ],
    );
    let ctx = format!("[{engine}] {r:?}");
    let closed = server.metric("rcomet_slow_consumers_closed_total");
    assert_eq!(closed, 0, "[{engine}] subscribers closed as slow consumers");
    assert_eq!(r.count("pushes_ok"), PUSHES as u64, "{ctx}");
    assert_eq!(r.count("pushes_failed"), 0, "{ctx}");
    let expected = (PUSHES * SUBSCRIBERS) as u64;
    assert_eq!(r.count("expected_deliveries"), expected, "{ctx}");
    assert_eq!(r.count("deliveries"), expected, "{ctx}");
    assert_eq!(r.count("undelivered"), 0, "{ctx}");
    assert_eq!(r.count("lost"), 0, "{ctx}");
    assert_eq!(r.count("duplicated"), 0, "{ctx}");
    assert_eq!(r.count("out_of_order"), 0, "{ctx}");
    assert_eq!(r.count("errors_total"), 0, "{ctx}");
    assert!(
        server.metric("rcomet_pushes_held_total") > 0,
        "[{engine}] no publish was held: the test did not outrun the fan-out"
    );
}
