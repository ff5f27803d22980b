//! How work is placed between two workers: subscribers of a small channel live on its home (their
//! sockets are handed over on both engines), a big channel spreads
//! its subscribers over both workers, and pipelined admin requests to channels homed on either
//! worker are answered in request order without waiting for each other.
//!
//! Depends on tests/support only (the real binary over raw sockets).

mod support;

use std::time::Duration;
use support::json::Json;
use support::{engine_tests, eventually, get, Conn, Opts, Server};

/// Subscribers per worker, from /stats.
fn subscribers_per_worker(server: &Server) -> Vec<u64> {
    let stats = Json::parse(&get(server.admin, "/stats").text()).expect("stats JSON");
    let workers = stats.get("workers").and_then(|w| w.as_array()).cloned();
    workers
        .unwrap_or_default()
        .iter()
        .map(|w| w.get("subscribers").and_then(|s| s.as_u64()).unwrap_or(0))
        .collect()
}

fn open_stream(server: &Server, cname: &str) -> Conn {
    let mut c = Conn::open(server.front);
    c.get(&format!("/stream?cname={cname}"));
    assert_eq!(c.read_head().0, 200);
    assert!(c.read_chunk().is_some(), "the first next_seq frame");
    c
}

engine_tests!(a_small_channels_subscribers_live_on_its_home);
fn a_small_channels_subscribers_live_on_its_home(engine: &'static str) {
    let server = Server::start(Opts::new(engine).threads(2));
    let subs: Vec<Conn> = (0..24).map(|_| open_stream(&server, "small")).collect();
    let mut per_worker = Vec::new();
    assert!(eventually(Duration::from_secs(10), || {
        per_worker = subscribers_per_worker(&server);
        per_worker.iter().sum::<u64>() == 24
    }));
    assert!(
        per_worker.contains(&24),
        "{engine}: every subscriber moved to the home: {per_worker:?}"
    );
    // Wherever they live, a push reaches every one of them, once.
    let r = get(server.admin, "/push?cname=small&content=hello");
    assert_eq!(r.status, 200);
    for mut c in subs {
        let frame = c.read_chunk().expect("the pushed frame");
        let text = String::from_utf8_lossy(&frame).into_owned();
        assert!(text.contains(r#""seq":1,"content":"hello""#), "{text}");
    }
}

engine_tests!(a_big_channel_spreads_over_both_workers);
fn a_big_channel_spreads_over_both_workers(engine: &'static str) {
    let server = Server::start(Opts::new(engine).threads(2));
    let mut subs = Vec::new();
    // Past the home's share (64), new subscribers stay on the worker that accepted them.
    while subscribers_per_worker(&server)
        .iter()
        .filter(|&&n| n > 0)
        .count()
        < 2
    {
        assert!(subs.len() < 300, "the channel never spread");
        subs.push(open_stream(&server, "big"));
    }
    assert!(subs.len() >= 2);
    let r = get(server.admin, "/push?cname=big&content=all");
    assert_eq!(r.status, 200);
    for c in &mut subs {
        let frame = c.read_chunk().expect("the pushed frame");
        assert!(String::from_utf8_lossy(&frame).contains(r#""content":"all""#));
    }
}

engine_tests!(pipelined_admin_requests_on_both_homes_answer_in_order);
fn pipelined_admin_requests_on_both_homes_answer_in_order(engine: &'static str) {
    let server = Server::start(Opts::new(engine).threads(2));
    let mut a = Conn::open(server.admin);
    let mut batch = String::new();
    let mut expect = Vec::new();
    for i in 0..150 {
        let (path, want) = match i % 3 {
            0 => (format!("/sign?cname=c{i}"), format!(r#""cname":"c{i}""#)),
            1 => (
                format!("/push?cname=c{}&content=m{i}", i - 1),
                r#"{"type":"ok"}"#.to_string(),
            ),
            _ => (
                format!("/info?cname=c{}", i - 2),
                format!(r#"{{"cname": "c{}", "subscribers": 0}}"#, i - 2),
            ),
        };
        batch.push_str(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        expect.push(want);
    }
    // One write: every request is parsed before the first reply from the other worker is back.
    a.send(batch.as_bytes());
    for (i, want) in expect.iter().enumerate() {
        let r = a.read_response();
        assert_eq!(r.status, 200, "reply {i}");
        assert!(
            r.text().contains(want.as_str()),
            "reply {i}: {:?}",
            r.text()
        );
    }
    // The pushes were stored where a subscriber finds them.
    let mut c = Conn::open(server.front);
    c.get("/sub?cname=c0&seq=1");
    let r = c.read_response();
    assert!(
        r.text().contains(r#""seq":1,"content":"m1""#),
        "{}",
        r.text()
    );
    // A final request waits for every earlier reply, then closes the connection.
    a.send(b"GET /sign?cname=z1 HTTP/1.1\r\nHost: t\r\n\r\nGET /info?cname=z2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(a.read_response().status, 200);
    let last = a.read_response();
    assert!(last.text().contains(r#""cname": "z2""#), "{}", last.text());
    assert!(a.closed_by_peer());
}
