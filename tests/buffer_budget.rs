//! The worker's buffer budget (`limits.buffer_budget`): a big channel's subscribers that keep
//! reading are never closed as slow consumers for the server's own pace, and its publisher is not
//! refused, also when the budget is small against what a fast publisher queues; a connection that
//! fills the budget with its own input is answered 503. Runs the real server and the real load
//! generator (`rcomet-loadgen fanout`). Depends only on `tests/support`.
mod support;

use std::time::Duration;
use support::loadgen::run_loadgen;
use support::{engine_tests, eventually, Conn, Opts, Server};

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

/// The smallest budget the server accepts (the default `limits.max_header_size`).
const SMALL_BUDGET: &str = "65536";
/// A form body well within `limits.max_body_size` (4 MiB) and far past the small budget.
const UPLOAD: usize = 1 << 20;

engine_tests!(an_upload_past_the_budget_is_refused_with_503);
fn an_upload_past_the_budget_is_refused_with_503(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--buffer-budget").arg(SMALL_BUDGET));
    let mut c = Conn::open(server.admin);
    c.send(
        format!(
            "POST /push HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\ncname=big&content=",
            UPLOAD + 18
        )
        .as_bytes(),
    );
    // The body in pieces, until the server answers (it may close before all of it is sent).
    let piece = vec![b'x'; 8192];
    for _ in 0..UPLOAD / piece.len() {
        if !c.try_send(&piece) {
            break;
        }
    }
    let (status, head) = c.read_head();
    assert_eq!(status, 503, "[{engine}] {head}");
    assert!(
        eventually(Duration::from_secs(5), || server
            .metric("rcomet_budget_refusals_total")
            >= 1),
        "[{engine}] the refusal was not counted"
    );
    // The worker is not left refusing: a small request on a new connection is served.
    let r = support::get(server.admin, "/push?cname=small&content=hi");
    assert_eq!(r.status, 200, "[{engine}] {}", r.text());
}
