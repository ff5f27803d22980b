//! Integration tests of `rcomet-loadgen connect` against the in-test fake server: counts, worker
//! processes under a low --fd-limit with several source addresses, signed subscriptions, and
//! several servers (a cluster's nodes) taken in turn.

mod support;

use support::{num, run_loadgen, run_loadgen_at, run_loadgen_on, FakeServer, Faults};

#[test]
fn holds_every_long_poll_subscriber() {
    let server = FakeServer::start(Faults::default());
    let r = run_loadgen(&server, &["connect", "-n", "200", "--hold", "1"]);
    assert_eq!(num(&r, "connections_target"), 200);
    assert_eq!(num(&r, "connections_held"), 200);
    assert_eq!(num(&r, "connections_held_at_ready"), 200);
    assert_eq!(num(&r, "errors_total"), 0, "{r}");
    assert_eq!(num(&r, "processes"), 1);
    assert_eq!(r["scenario"], "connect");
    assert_eq!(r["transport"], "poll");
    // seq=0 gets next_seq at once, then each subscriber re-polls with the seq it was told.
    assert!(server.subscriptions() >= 400, "{}", server.subscriptions());
    assert!(num(&r["latency_us"], "count") == 200, "{r}");
}

#[test]
fn low_fd_limit_spreads_over_workers_and_sources() {
    let server = FakeServer::start(Faults::default());
    let r = run_loadgen(
        &server,
        &[
            "connect",
            "-n",
            "300",
            "--transport",
            "stream",
            "--hold",
            "1",
            "--fd-limit",
            "120",
            "--sources",
            "127.0.0.2-127.0.0.4",
        ],
    );
    assert!(num(&r, "processes") >= 2, "{r}");
    assert_eq!(num(&r, "fd_limit"), 120);
    assert_eq!(num(&r, "sources"), 3);
    assert_eq!(num(&r, "connections_held"), 300, "{r}");
    assert_eq!(num(&r, "errors_total"), 0, "{r}");
    assert!(server.peers() >= 2, "peers {}", server.peers());
}

#[test]
fn signs_each_subscriber_and_passes_the_token() {
    let server = FakeServer::start(Faults::default());
    let r = run_loadgen(
        &server,
        &[
            "connect",
            "-n",
            "60",
            "--per-channel",
            "3",
            "--sign",
            "--transport",
            "sse",
            "--hold",
            "1",
        ],
    );
    assert_eq!(num(&r, "connections_held"), 60, "{r}");
    assert_eq!(num(&r, "errors_total"), 0, "{r}");
    assert_eq!(server.signs(), 60);
    assert_eq!(server.bad_tokens(), 0);
}

#[test]
fn memory_guard_stops_the_ramp() {
    let server = FakeServer::start(Faults::default());
    let r = run_loadgen(
        &server,
        &[
            "connect",
            "-n",
            "50",
            "--hold",
            "0",
            "--min-free-mb",
            "100000000",
        ],
    );
    assert_eq!(r["memory_guard_hit"], true, "{r}");
    assert_eq!(num(&r, "connections_held"), 0, "{r}");
    assert_eq!(server.subscriptions(), 0);
}

#[test]
fn silent_server_times_out_and_the_run_still_ends() {
    // The kernel completes connects into the backlog, but nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let r = run_loadgen_at(
        addr,
        addr,
        &[
            "connect",
            "-n",
            "5",
            "--hold",
            "0",
            "--timeout",
            "1",
            "--ramp-timeout",
            "10",
        ],
    );
    assert_eq!(num(&r["errors"], "timeout"), 5, "{r}");
    assert_eq!(num(&r, "connections_held"), 0, "{r}");
}

/// Checks the `samples` of a report: time moves forward, the first is the empty baseline, one is
/// taken at the end of the ramp with every connection held, and the server (this test process,
/// which runs the fake server) has an RSS in each.
fn check_samples(r: &serde_json::Value, held: u64) {
    let samples = r["samples"].as_array().expect("samples array");
    assert!(samples.len() >= 3, "{r}");
    assert_eq!(r["sample_interval_s"], 0.1, "{r}");
    assert_eq!(samples[0]["stage"], "ramp", "{r}");
    assert_eq!(num(&samples[0], "connections_held"), 0, "{r}");
    let ready: Vec<_> = samples.iter().filter(|s| s["stage"] == "ready").collect();
    assert_eq!(ready.len(), 1, "{r}");
    assert_eq!(num(ready[0], "connections_held"), held, "{r}");
    assert!(samples.iter().any(|s| s["stage"] == "measure"), "{r}");
    let mut t = -1.0;
    for s in samples {
        let ts = s["t_s"].as_f64().expect("t_s");
        assert!(ts >= t, "{r}");
        t = ts;
        assert!(num(s, "server_rss_bytes") > 0, "{s}");
        assert!(s["server_rss_anon_bytes"].is_u64(), "{s}");
        assert!(s["kernel_sunreclaim_bytes"].is_u64(), "{s}");
        assert!(num(s, "connections_held") <= held, "{s}");
    }
}

#[test]
fn samples_memory_and_connections_over_the_run() {
    let server = FakeServer::start(Faults::default());
    let pid = std::process::id().to_string();
    let args = ["--hold", "1", "--sample-interval-ms", "100", "--pid", &pid];
    let one = run_loadgen(&server, &[&["connect", "-n", "150"][..], &args].concat());
    assert_eq!(num(&one, "processes"), 1, "{one}");
    check_samples(&one, 150);
    // Worker processes: the parent samples with their summed connections.
    let many = run_loadgen(
        &server,
        &[&["connect", "-n", "300", "--fd-limit", "120"][..], &args].concat(),
    );
    assert!(num(&many, "processes") >= 2, "{many}");
    check_samples(&many, 300);
    // Off when asked.
    let off = run_loadgen(
        &server,
        &[
            "connect",
            "-n",
            "10",
            "--hold",
            "0",
            "--sample-interval-ms",
            "0",
        ],
    );
    assert_eq!(off["samples"], serde_json::json!([]), "{off}");
}

#[test]
fn subscribers_and_admin_connections_are_spread_over_several_servers() {
    let a = FakeServer::start(Faults::default());
    let b = FakeServer::start(Faults::default());
    let fronts = format!("{},{}", a.front, b.front);
    let admins = format!("{},{}", a.admin, b.admin);
    let pid = std::process::id().to_string();
    let pids = format!("{pid},{pid}");
    let args = [
        "connect",
        "-n",
        "10",
        "--transport",
        "stream",
        "--hold",
        "0",
        "--pid",
        &pids,
    ];
    let r = run_loadgen_on(&fronts, &admins, &args);
    assert_eq!(num(&r, "connections_held_at_ready"), 10, "{r}");
    // Subscriber i on server i mod 2.
    assert_eq!((a.subscriptions(), b.subscriptions()), (5, 5));
    // Both --pid processes are measured, each on its own; the server numbers are their sums.
    let each = r["server_processes"].as_array().expect("server_processes");
    assert_eq!(each.len(), 2, "{r}");
    let one = num(&each[0], "rss_bytes");
    assert!(one > 0, "{r}");
    assert_eq!(
        num(&r, "server_rss_bytes"),
        one + num(&each[1], "rss_bytes"),
        "{r}"
    );
    // Admin connection k of the pool on server k mod 2.
    let args = [
        "admin",
        "--op",
        "push",
        "--requests",
        "40",
        "--admin-conns",
        "2",
        "--in-flight",
        "4",
    ];
    let r = run_loadgen_on(&fronts, &admins, &args);
    assert_eq!(num(&r, "requests"), 40, "{r}");
    assert!(
        a.pushes() > 0 && b.pushes() > 0,
        "{} {}",
        a.pushes(),
        b.pushes()
    );
    assert_eq!(a.pushes() + b.pushes(), 40);
}
