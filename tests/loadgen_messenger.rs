//! rcomet-loadgen's messenger-layout measurements against the real rcomet binary: a closed-loop
//! fan-out with 32 pipelined pushes on one admin connection is lossless and reports pushes/s and
//! server CPU per push; the admin scenario's /push, /sign and /info?cname= each reach their own
//! channel (checked with the server's /info), and 429 replies past max_channels are counted as
//! non-200. Small and bounded (a few hundred connections, a few thousand requests).
//!
//! Depends on tests/support (server process, HTTP GET, loadgen runs) and std.

mod support;

use support::json::Json;
use support::loadgen::run_loadgen;
use support::{engine_tests, get, Opts, Server};

/// The server's admin `/info` object.
fn info(server: &Server) -> Json {
    let r = get(server.admin, "/info");
    assert_eq!(r.status, 200, "/info: {}", r.text());
    Json::parse(r.text().trim()).unwrap_or_else(|e| panic!("/info JSON ({e}): {}", r.text()))
}

engine_tests!(closed_loop_fanout_is_lossless_and_reports_server_cpu);
fn closed_loop_fanout_is_lossless_and_reports_server_cpu(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let pid = server.pid.to_string();
    let r = run_loadgen(
        &server,
        server.front,
        &[
            "fanout",
            "-n",
            "200",
            "--transport",
            "stream",
            "--messages",
            "4000",
            "--msg-rate",
            "0",
            "--in-flight",
            "32",
            "--admin-conns",
            "1",
            "--msg-size",
            "100",
            "--pid",
            &pid,
        ],
    );
    let ctx = format!("[{engine}] {r:?}");
    assert_eq!(r.count("pushes_ok"), 4000, "{ctx}");
    assert_eq!(r.count("non_200"), 0, "{ctx}");
    assert_eq!(r.count("deliveries"), 4000, "{ctx}");
    assert_eq!(r.count("undelivered"), 0, "{ctx}");
    for k in ["lost", "duplicated", "out_of_order", "errors_total"] {
        assert_eq!(r.count(k), 0, "{k} {ctx}");
    }
    assert_eq!(
        (r.count("msg_rate"), r.count("in_flight")),
        (0, 32),
        "{ctx}"
    );
    assert!(r.num("pushes_per_s") > 0.0, "{ctx}");
    let (p50, p99) = (r.count("latency_us.p50"), r.count("latency_us.p99"));
    assert!(p50 > 0 && p50 <= p99, "{ctx}");
    // CPU time has 10 ms ticks: present and consistent, maybe 0 for so short a run.
    let cpu = r.num("server_cpu_us");
    assert!(cpu >= 0.0, "{ctx}");
    assert!(
        (r.num("server_cpu_us_per_push") - cpu / 4000.0).abs() < 1e-6,
        "{ctx}"
    );
    assert!(r.num("server_cpu_window_s") > 0.0, "{ctx}");
}

engine_tests!(admin_requests_each_reach_their_own_channel);
fn admin_requests_each_reach_their_own_channel(engine: &'static str) {
    const N: u64 = 600;
    let server = Server::start(Opts::new(engine));
    let pid = server.pid.to_string();
    let n = N.to_string();
    let admin = |op: &str, prefix: &str| {
        run_loadgen(
            &server,
            server.front,
            &[
                "admin",
                "--op",
                op,
                "--requests",
                &n,
                "--in-flight",
                "64",
                "--channel-prefix",
                prefix,
                "--msg-size",
                "100",
                "--pid",
                &pid,
            ],
        )
    };
    let mut channels = info(&server).count("channels");
    for (op, prefix, creates) in [
        ("push", "p", true),
        ("sign", "s", true),
        ("info", "i", false),
    ] {
        let r = admin(op, prefix);
        let ctx = format!("[{engine} {op}] {r:?}");
        assert_eq!(r.str("op"), Some(op), "{ctx}");
        assert_eq!(r.count("requests"), N, "{ctx}");
        assert_eq!(r.count("requests_failed"), 0, "{ctx}");
        assert_eq!(r.count("non_200"), 0, "{ctx}");
        assert_eq!(r.count("errors_total"), 0, "{ctx}");
        assert_eq!(r.count("latency_us.count"), N, "{ctx}");
        assert!(r.num("requests_per_s") > 0.0, "{ctx}");
        assert!(r.num("server_cpu_us") >= 0.0, "{ctx}");
        let now = info(&server).count("channels");
        let added = if creates { N } else { 0 };
        assert_eq!(
            now,
            channels + added,
            "[{engine} {op}] channels {channels} → {now}"
        );
        channels = now;
    }
}

engine_tests!(admin_counts_429_past_max_channels);
fn admin_counts_429_past_max_channels(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--max-channels").arg("100"));
    let r = run_loadgen(
        &server,
        server.front,
        &[
            "admin",
            "--op",
            "sign",
            "--requests",
            "300",
            "--in-flight",
            "16",
        ],
    );
    let ctx = format!("[{engine}] {r:?}");
    assert_eq!(r.count("requests"), 100, "{ctx}");
    assert_eq!(r.count("non_200"), 200, "{ctx}");
    assert_eq!(r.count("requests_failed"), 200, "{ctx}");
    assert_eq!(r.count("errors.http_status"), 200, "{ctx}");
    assert_eq!(info(&server).count("channels"), 100, "[{engine}]");
}
