//! Integration tests of `rcomet-loadgen ping` and `churn` against the in-test fake server.

mod support;

use support::{num, run_loadgen, FakeServer, Faults};

#[test]
fn ping_counts_pipelined_requests() {
    let server = FakeServer::start(Faults::default());
    let r = run_loadgen(
        &server,
        &["ping", "-c", "8", "--pipeline", "2", "--duration", "1"],
    );
    assert_eq!(num(&r, "connections_held"), 8, "{r}");
    assert!(num(&r, "requests") > 8, "{r}");
    assert_eq!(num(&r["latency_us"], "count"), num(&r, "requests"));
    assert_eq!(num(&r, "errors_total"), 0, "{r}");
    assert!(r["requests_per_s"].as_f64().unwrap_or(0.0) > 0.0);
}

#[test]
fn churn_connects_subscribes_and_disconnects() {
    let server = FakeServer::start(Faults::default());
    let r = run_loadgen(
        &server,
        &[
            "churn",
            "--rate",
            "200",
            "--duration",
            "1",
            "--channels",
            "5",
        ],
    );
    let cycles = num(&r, "cycles");
    assert!((100..=220).contains(&cycles), "{r}");
    assert_eq!(num(&r, "errors_total"), 0, "{r}");
    assert!(server.subscriptions() >= cycles);
}
