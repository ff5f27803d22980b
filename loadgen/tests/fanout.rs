//! Integration tests of `rcomet-loadgen fanout` against the in-test fake server: every delivery is
//! counted with its latency on each transport, across worker processes, and a seq the server
//! skips is reported as lost.

mod support;

use support::{num, run_loadgen, FakeServer, Faults};

fn fanout(server: &FakeServer, transport: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "fanout",
        "-n",
        "100",
        "--per-channel",
        "10",
        "--messages",
        "40",
        "--msg-rate",
        "400",
        "--transport",
        transport,
    ];
    args.extend_from_slice(extra);
    run_loadgen(server, &args)
}

fn assert_complete(r: &serde_json::Value, deliveries: u64) {
    assert_eq!(num(r, "expected_deliveries"), deliveries, "{r}");
    assert_eq!(num(r, "deliveries"), deliveries, "{r}");
    assert_eq!(num(r, "undelivered"), 0, "{r}");
    assert_eq!(num(&r["latency_us"], "count"), deliveries, "{r}");
    assert_eq!(num(r, "lost"), 0, "{r}");
    assert_eq!(num(r, "duplicated"), 0, "{r}");
    assert_eq!(num(r, "out_of_order"), 0, "{r}");
    assert_eq!(num(r, "errors_total"), 0, "{r}");
}

#[test]
fn stream_fanout_counts_every_delivery() {
    let server = FakeServer::start(Faults::default());
    let r = fanout(&server, "stream", &[]);
    // 40 messages over 10 channels of 10 subscribers: 4 per channel, 40 × 10 deliveries.
    assert_complete(&r, 400);
    assert_eq!(num(&r, "pushes_ok"), 40);
    assert_eq!(server.pushes(), 40);
    assert!(r["deliveries_per_s"].as_f64().unwrap_or(0.0) > 0.0);
}

#[test]
fn long_poll_fanout_re_polls_without_loss() {
    let server = FakeServer::start(Faults::default());
    assert_complete(&fanout(&server, "poll", &[]), 400);
}

#[test]
fn sse_fanout_over_worker_processes() {
    let server = FakeServer::start(Faults::default());
    let r = fanout(&server, "sse", &["--fd-limit", "90"]);
    assert!(num(&r, "processes") >= 2, "{r}");
    assert_complete(&r, 400);
    assert_eq!(server.pushes(), 40, "only one process publishes");
}

#[test]
fn skipped_seq_is_counted_as_lost() {
    let server = FakeServer::start(Faults {
        skip_seq: Some(3),
        ..Faults::default()
    });
    let r = run_loadgen(
        &server,
        &[
            "fanout",
            "-n",
            "20",
            "--per-channel",
            "10",
            "--messages",
            "10",
            "--msg-rate",
            "200",
            "--transport",
            "stream",
        ],
    );
    // Two channels get 5 messages each, numbered 1 2 4 5 6: every subscriber misses seq 3.
    assert_eq!(num(&r, "deliveries"), 100, "{r}");
    assert_eq!(num(&r, "lost"), 20, "{r}");
    assert_eq!(num(&r, "duplicated"), 0, "{r}");
}
