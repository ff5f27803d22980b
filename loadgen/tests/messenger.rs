//! Integration tests of what the messenger-layout benchmarks use, against the in-test fake
//! server: a closed-loop fan-out keeps exactly --in-flight pushes pipelined and stops at
//! --duration, the admin scenario sends each request to its own channel and counts non-200
//! replies, and --pid turns /proc CPU time into server CPU per request.

mod support;

use std::process::{Child, Command};

use support::{num, run_loadgen, FakeServer, Faults};

fn float(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

#[test]
fn closed_loop_keeps_exactly_in_flight_pushes_pipelined() {
    // The server holds replies while requests keep coming, so it sees all a client pipelines.
    let server = FakeServer::start(Faults {
        admin_gate: Some(32),
        ..Faults::default()
    });
    let r = run_loadgen(
        &server,
        &[
            "fanout",
            "-n",
            "8",
            "--transport",
            "stream",
            "--messages",
            "96",
            "--msg-rate",
            "0",
            "--in-flight",
            "32",
            "--admin-conns",
            "1",
            "--msg-size",
            "100",
        ],
    );
    assert_eq!(server.max_waiting(), 32, "pushes in flight at once: {r}");
    assert_eq!(num(&r, "pushes_ok"), 96, "{r}");
    assert_eq!(num(&r, "deliveries"), 96, "{r}");
    assert_eq!(num(&r, "undelivered"), 0, "{r}");
    assert_eq!(
        num(&r, "lost") + num(&r, "duplicated") + num(&r, "out_of_order"),
        0
    );
    assert_eq!((num(&r, "msg_rate"), num(&r, "in_flight")), (0, 32), "{r}");
    // Three rounds of 32, each answered only after the server's quiet time.
    let publish_s = float(&r, "publish_s");
    assert!(publish_s >= 0.8, "{r}");
    let rate = float(&r, "pushes_per_s");
    assert!((rate - 96.0 / publish_s).abs() < 1.0, "{r}");
    assert_eq!(r["publish_capped"], false, "{r}");
}

#[test]
fn closed_loop_stops_publishing_at_duration() {
    let server = FakeServer::start(Faults::default());
    let r = run_loadgen(
        &server,
        &[
            "fanout",
            "-n",
            "10",
            "--transport",
            "stream",
            "--messages",
            "100000000",
            "--msg-rate",
            "0",
            "--in-flight",
            "8",
            "--admin-conns",
            "1",
            "--duration",
            "1",
        ],
    );
    assert_eq!(r["publish_capped"], true, "{r}");
    let sent = num(&r, "pushes_sent");
    assert!(sent > 0 && sent < 100_000_000, "{r}");
    assert_eq!(num(&r, "pushes_ok"), sent, "{r}");
    // One subscriber per channel: every push sent is one expected delivery, and all arrived.
    assert_eq!(num(&r, "expected_deliveries"), sent, "{r}");
    assert_eq!(num(&r, "deliveries"), sent, "{r}");
    assert_eq!(num(&r, "undelivered"), 0, "{r}");
    let publish_s = float(&r, "publish_s");
    assert!((0.9..3.0).contains(&publish_s), "{r}");
}

fn admin(server: &FakeServer, op: &str, prefix: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "admin",
        "--op",
        op,
        "--requests",
        "300",
        "--in-flight",
        "16",
        "--channel-prefix",
        prefix,
    ];
    args.extend_from_slice(extra);
    run_loadgen(server, &args)
}

#[test]
fn admin_requests_go_to_distinct_channels() {
    let server = FakeServer::start(Faults::default());
    let r = admin(&server, "push", "p", &["--msg-size", "100"]);
    assert_eq!((num(&r, "requests"), num(&r, "non_200")), (300, 0), "{r}");
    assert_eq!(num(&r, "errors_total"), 0, "{r}");
    assert_eq!(r["op"], "push");
    assert_eq!((server.pushes(), server.channels()), (300, 300));

    let r = admin(&server, "sign", "s", &["--admin-conns", "3"]);
    assert_eq!(
        (num(&r, "requests"), num(&r, "requests_failed")),
        (300, 0),
        "{r}"
    );
    assert_eq!(num(&r, "admin_conns"), 3, "{r}");
    assert_eq!((server.signs(), server.channels()), (300, 600));

    let r = admin(&server, "info", "i", &[]);
    assert_eq!(num(&r, "requests"), 300, "{r}");
    assert_eq!(num(&r["latency_us"], "count"), 300, "{r}");
    assert_eq!(server.channels(), 600, "/info creates no channel");
    assert!(float(&r, "requests_per_s") > 0.0, "{r}");
}

#[test]
fn admin_counts_non_200_replies() {
    let server = FakeServer::start(Faults {
        admin_429_every: Some(10),
        ..Faults::default()
    });
    let r = admin(&server, "push", "q", &[]);
    assert_eq!(num(&r, "non_200"), 30, "{r}");
    assert_eq!(num(&r, "requests_failed"), 30, "{r}");
    assert_eq!(num(&r, "requests"), 270, "{r}");
    assert_eq!(num(&r["errors"], "http_status"), 30, "{r}");
}

/// A process that spins on one CPU until dropped.
struct Burner(Child);

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn server_cpu_comes_from_the_pid_given() {
    let burner = Burner(
        Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("start a spinning shell"),
    );
    let pid = burner.0.id().to_string();
    let server = FakeServer::start(Faults::default());
    // No --requests: the run lasts --duration, and the spinning process is "the server".
    let r = run_loadgen(
        &server,
        &["admin", "--op", "info", "--duration", "1", "--pid", &pid],
    );
    let window = float(&r, "server_cpu_window_s");
    assert!((0.9..2.0).contains(&window), "{r}");
    // One spinning thread on a shared machine: a share of one core, never more.
    let cores = float(&r, "server_cpu_cores");
    assert!((0.05..=1.05).contains(&cores), "{r}");
    let cpu = num(&r, "server_cpu_us") as f64;
    assert!((cpu / 1e6 / window - cores).abs() < 1e-6, "{r}");
    let requests = num(&r, "requests") as f64;
    assert!(requests > 0.0, "{r}");
    let per = float(&r, "server_cpu_us_per_request");
    assert!((per - cpu / requests).abs() < 1e-6 * per.max(1.0), "{r}");
    assert!(r["server_cpu_us_per_push"].is_null(), "{r}");
}
