//! `/metrics` on the admin port: the exposition parses with the official Prometheus parser (the
//! Python client's, `tests/metrics/parse.py`), and its counters move as pushes, subscriptions,
//! heartbeats and slow-consumer closes happen. Behind the admin allow/deny list like every admin
//! path.
//!
//! Depends on tests/support (the real binary over raw sockets) and python3 with
//! prometheus-client (`.ci/run` installs it: `python3 -m pip install -r tests/requirements.txt`).
mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use support::front::{admin_ok, subscribe, wait_subscribers};
use support::*;

/// Scrapes /metrics and parses it with the Prometheus client's parser.
fn scrape(server: &Server) -> HashMap<String, f64> {
    let r = admin_ok(server, "/metrics");
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/metrics/parse.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (see .ci/run)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&r.body)
        .expect("exposition written to the parser");
    let out = child.wait_with_output().expect("parser finished");
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics (is prometheus-client installed? \
         python3 -m pip install -r tests/requirements.txt): {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.text()
    );
    let parsed: HashMap<String, f64> =
        serde_json::from_slice(&out.stdout).expect("the parser's JSON");
    parsed
}

/// The sum of every sample of `name` whose labels contain `label` (all of them for "").
fn total(samples: &HashMap<String, f64>, name: &str, label: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(label))
        .map(|(_, v)| v)
        .sum()
}

engine_tests!(metrics_parse_and_move);
fn metrics_parse_and_move(engine: &'static str) {
    let config = "front:\n\tpolling_timeout: 1\nlimits:\n\tmax_output_size: 65536\n";
    let server = Server::start(Opts::new(engine).config(config));
    let before = scrape(&server);
    for family in [
        "rcomet_connections",
        "rcomet_subscribers",
        "rcomet_pushes_total",
        "rcomet_deliveries_total",
        "rcomet_loop_turn_seconds_bucket",
        "rcomet_responses_total",
        "rcomet_timers",
        "rcomet_mailbox_depth",
        "rcomet_fanout_backlog",
    ] {
        assert!(
            before.keys().any(|k| k.starts_with(&format!("{family}{{"))),
            "{family} is exposed"
        );
    }
    assert_eq!(total(&before, "rcomet_pushes_total", ""), 0.0);

    let mut stream = subscribe(server.front, "/stream?cname=m");
    let _slow = subscribe(server.front, "/sse?cname=m");
    wait_subscribers(&server, "m", 2);
    let during = scrape(&server);
    assert_eq!(
        total(&during, "rcomet_subscribers", "transport=stream"),
        1.0
    );
    assert_eq!(total(&during, "rcomet_subscribers", "transport=sse"), 1.0);
    assert!(total(&during, "rcomet_connections", "port=front") >= 2.0);
    assert!(total(&during, "rcomet_connections", "port=admin") >= 1.0);

    // Pushes big enough that the /sse reader, which never reads, passes its output cap.
    let content = "y".repeat(30_000);
    let body = format!("cname=m&content={content}");
    let request = format!(
        "POST /push HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut admin = Conn::open(server.admin);
    let mut pushes = 0.0;
    let cut = eventually(std::time::Duration::from_secs(20), || {
        admin.send(request.as_bytes());
        assert_eq!(admin.read_response().status, 200);
        pushes += 1.0;
        // Skip heartbeats up to this push's frame, so the reading subscriber never lags.
        while stream.read_chunk().expect("the stream goes on").len() < 30_000 {}
        support::front::info_subscribers(&server, "m") < 2
    });
    assert!(cut, "the reader that never reads is closed");
    wait_subscribers(&server, "m", 1);
    let after = scrape(&server);
    assert_eq!(total(&after, "rcomet_pushes_total", ""), pushes);
    assert!(total(&after, "rcomet_deliveries_total", "") >= pushes);
    assert!(
        total(&after, "rcomet_bytes_out_total", "") >= pushes * 30_000.0,
        "bytes out counts the frames"
    );
    assert_eq!(total(&after, "rcomet_subscribers", "transport=sse"), 0.0);
    assert_eq!(total(&after, "rcomet_slow_consumers_closed_total", ""), 1.0);
    assert!(
        total(&after, "rcomet_responses_total", "code=2xx")
            > total(&before, "rcomet_responses_total", "code=2xx")
    );
    let turns = total(&after, "rcomet_loop_turn_seconds_count", "");
    let inf = total(&after, "rcomet_loop_turn_seconds_bucket", "le=+Inf");
    assert!(
        turns > 0.0 && turns == inf,
        "the histogram's +Inf bucket counts every turn"
    );
    // A heartbeat moves the noop counter (polling_timeout is 1 s).
    let noops = eventually(std::time::Duration::from_secs(5), || {
        total(&scrape(&server), "rcomet_noops_total", "") >= 1.0
    });
    assert!(noops, "heartbeats are counted");
    // A 404 is a 4xx.
    assert_eq!(get(server.admin, "/nope").status, 404);
    let last = scrape(&server);
    assert!(total(&last, "rcomet_responses_total", "code=4xx") >= 1.0);
}

engine_tests!(metrics_behind_the_admin_filter);
fn metrics_behind_the_admin_filter(engine: &'static str) {
    let config = "admin:\n\tallow: 10.0.0.1\n\tdeny: all\n";
    let server = Server::start(Opts::new(engine).config(config));
    assert_eq!(get(server.admin, "/metrics").status, 403);
}

/// The Grafana dashboard in contrib/ only charts series the server exports.
#[test]
fn the_grafana_dashboard_uses_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/rcomet-dashboard.json"
    );
    let text = std::fs::read_to_string(path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    let mut exposition = Vec::new();
    let snapshot = rcomet::api::metrics::Snapshot {
        workers: vec![Default::default()],
        ..Default::default()
    };
    rcomet::api::metrics::write(&snapshot, &mut exposition);
    let exposition = String::from_utf8(exposition).expect("UTF-8");
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let names = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("rcomet_"));
            for name in names {
                assert!(
                    exposition.contains(&format!("\n{name}{{"))
                        || exposition.contains(&format!("\n{name} ")),
                    "{name} (panel {:?}) is not exported",
                    panel["title"]
                );
            }
        }
    }
}
