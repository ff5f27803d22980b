//! Channel lifecycle end to end: expiry after channel_timeout without subscribers (and not with
//! them), /sign's expires, what refreshes the countdown and what does not (/broadcast), presence
//! events on creation, re-announcement, close and expiry, the replay ring's exact size, /sign's
//! seq, next_seq for stale seqs on an empty buffer, re-creation after /close, max_channels, and
//! a push right after a broadcast coming after it on a channel the broadcast had not reached.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use std::time::{Duration, Instant};
use support::*;

fn msg(kind: &str, cname: &str, seq: i64, content: &str) -> String {
    format!("{{\"type\":\"{kind}\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"{content}\"}}")
}

fn chunk(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n", body.len())
}

const END: &str = "0\r\n\r\n";

fn expect(c: &mut Conn, expected: &str) {
    let got = c.read_exact_n(expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

/// A keep-alive admin connection.
struct Admin(Conn);

impl Admin {
    fn new(server: &Server) -> Admin {
        Admin(Conn::open(server.admin))
    }

    fn call(&mut self, path: &str) -> Response {
        self.0.get(path);
        self.0.read_response()
    }

    fn ok(&mut self, path: &str) -> String {
        let r = self.call(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.text()
    }

    fn exists(&mut self, cname: &str) -> bool {
        let body = self.ok(&format!("/check?cname={cname}"));
        match body.as_str() {
            "{}\n" => false,
            b if b == format!("{{\"{cname}\": 1}}\n") => true,
            other => panic!("/check body {other:?}"),
        }
    }

    /// Waits until `cname` no longer exists; returns how long that took.
    fn wait_gone(&mut self, cname: &str, within: Duration) -> Duration {
        let start = Instant::now();
        assert!(
            eventually(within, || !self.exists(cname)),
            "{cname} still exists after {within:?}"
        );
        start.elapsed()
    }

    fn sign_seq(&mut self, cname: &str) -> i64 {
        let body = self.ok(&format!("/sign?cname={cname}"));
        body.split("\"seq\":")
            .nth(1)
            .and_then(|t| t.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no seq in {body}"))
    }
}

/// Opens a subscription and checks the 200 head (keep-alive form).
fn subscribe(server: &Server, path: &str) -> Conn {
    let mut c = Conn::open(server.front);
    c.get(path);
    let (status, head) = c.read_head();
    assert_eq!(status, 200);
    assert!(
        head.contains("Connection: keep-alive\r\n"),
        "{path}: {head}"
    );
    c
}

/// Opens /psub and reads its head.
fn presence(server: &Server) -> Conn {
    let mut p = Conn::open(server.admin);
    p.get("/psub");
    assert_eq!(p.read_head().0, 200);
    assert!(eventually(Duration::from_secs(10), || {
        get(server.admin, "/stats")
            .text()
            .contains("\"presence_clients\": 1,")
    }));
    p
}

/// Next presence event that is not `skip` (re-announcements of other live channels).
fn next_event(p: &mut Conn, skip: &[&str]) -> String {
    loop {
        let c = p.read_chunk().expect("presence stream ended");
        let line = String::from_utf8_lossy(&c).into_owned();
        if !skip.contains(&line.as_str()) {
            return line;
        }
    }
}

engine_tests!(unsubscribed_channels_expire_and_subscribed_ones_stay);
fn unsubscribed_channels_expire_and_subscribed_ones_stay(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--channel-timeout").arg("1"));
    let mut a = Admin::new(&server);
    let mut p = presence(&server);
    let sign = a.ok("/sign?cname=lost");
    assert!(sign.contains("\"expires\":1,"), "{sign}");
    assert_eq!(next_event(&mut p, &[]), "1 lost\n");
    let kept = subscribe(&server, "/stream?cname=kept");
    assert_eq!(next_event(&mut p, &["1 lost\n"]), "1 kept\n");
    assert!(a.exists("lost") && a.exists("kept"));

    let took = a.wait_gone("lost", Duration::from_secs(6));
    assert!(took < Duration::from_secs(4), "expiry took {took:?}");
    assert_eq!(next_event(&mut p, &["1 lost\n", "1 kept\n"]), "0 lost\n");
    // The subscribed channel outlived it, and is re-announced while it lives.
    assert!(a.exists("kept"));
    assert_eq!(next_event(&mut p, &[]), "1 kept\n");

    // Re-created after expiry: a fresh channel from seq 1.
    let mut again = subscribe(&server, "/stream?cname=lost");
    expect(
        &mut again,
        &chunk(&format!("{}\n", msg("next_seq", "lost", 1, ""))),
    );
    assert_eq!(next_event(&mut p, &["1 kept\n"]), "1 lost\n");
    a.ok("/push?cname=lost&content=x");
    expect(
        &mut again,
        &chunk(&format!("{}\n", msg("data", "lost", 1, "x"))),
    );

    // Once their subscribers leave, both channels expire.
    drop(kept);
    drop(again);
    a.wait_gone("kept", Duration::from_secs(6));
    a.wait_gone("lost", Duration::from_secs(6));
    let mut gone = Vec::new();
    while gone.len() < 2 {
        gone.push(next_event(&mut p, &["1 kept\n", "1 lost\n"]));
    }
    gone.sort();
    assert_eq!(gone, ["0 kept\n", "0 lost\n"]);
    assert_eq!(
        a.ok("/info"),
        "{\"version\": \"0.2.5\", \"channels\": 0, \"subscribers\": 0}\n"
    );
}

engine_tests!(sign_expires_sets_the_lifetime_and_push_raises_it);
fn sign_expires_sets_the_lifetime_and_push_raises_it(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut a = Admin::new(&server);
    let token_short = a.ok("/sign?cname=short&expires=1");
    assert!(token_short.contains("\"expires\":1,"), "{token_short}");
    a.ok("/sign?cname=raised&expires=1");
    a.ok("/push?cname=raised&content=keep");
    a.ok("/sign?cname=default");
    let took = a.wait_gone("short", Duration::from_secs(6));
    assert!(took < Duration::from_secs(4), "expiry took {took:?}");
    // /push raised the other countdown to channel_timeout (30 s).
    assert!(a.exists("raised"));
    assert!(a.exists("default"));
    // A re-created channel has a new token.
    let again = a.ok("/sign?cname=short");
    let token = |s: &str| s.split("\"token\":\"").nth(1).map(|t| t[..32].to_string());
    assert_ne!(token(&again), token(&token_short));
    assert!(again.contains("\"seq\":1,"));
}

engine_tests!(broadcast_does_not_keep_channels_alive);
fn broadcast_does_not_keep_channels_alive(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--channel-timeout").arg("2"));
    let mut a = Admin::new(&server);
    a.ok("/sign?cname=b");
    let start = Instant::now();
    let mut broadcasts = 0;
    while a.exists("b") {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "broadcasts kept the channel alive"
        );
        assert_eq!(a.ok("/broadcast?content=tick"), "ok\n");
        broadcasts += 1;
        // Pace the loop (this is a rate, not a synchronisation).
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(broadcasts > 5);
}

engine_tests!(replay_ring_keeps_exactly_channel_buffer_size);
fn replay_ring_keeps_exactly_channel_buffer_size(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--channel-buffer-size").arg("3"));
    let mut a = Admin::new(&server);
    for n in 1..=10 {
        a.ok(&format!("/push?cname=r&content=m{n}"));
        // After n pushes exactly min(n, 3) messages are replayable.
        let mut c = subscribe(&server, "/sub?cname=r&seq=1");
        let first = (n - 2).max(1);
        let expected: Vec<String> = (first..=n)
            .map(|i| msg("data", "r", i, &format!("m{i}")))
            .collect();
        expect(&mut c, &chunk(&format!("[{}]\n", expected.join(","))));
        expect(&mut c, END);
        assert_eq!(a.sign_seq("r"), first, "after {n} pushes");
    }
    // A stream replays frame by frame, then goes on live.
    let mut s = subscribe(&server, "/stream?cname=r&seq=9");
    for i in 9..=10 {
        expect(
            &mut s,
            &chunk(&format!("{}\n", msg("data", "r", i, &format!("m{i}")))),
        );
    }
    a.ok("/push?cname=r&content=m11");
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("data", "r", 11, "m11"))),
    );
}

engine_tests!(sign_seq_uses_the_real_buffer_size);
fn sign_seq_uses_the_real_buffer_size(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--channel-buffer-size").arg("20"));
    let mut a = Admin::new(&server);
    assert_eq!(a.sign_seq("big"), 1);
    for n in 1..=25 {
        a.ok(&format!("/push?cname=big&content={n}"));
        if n == 15 {
            assert_eq!(a.sign_seq("big"), 1);
        }
    }
    assert_eq!(a.sign_seq("big"), 6);
    let mut c = subscribe(&server, "/sub?cname=big&seq=1");
    let expected: Vec<String> = (6..=25)
        .map(|i| msg("data", "big", i, &i.to_string()))
        .collect();
    expect(&mut c, &chunk(&format!("[{}]\n", expected.join(","))));
    expect(&mut c, END);
}

engine_tests!(empty_buffer_gives_next_seq_to_stale_subscribers);
fn empty_buffer_gives_next_seq_to_stale_subscribers(engine: &'static str) {
    // No buffer at all: nothing replays, a stale seq learns where the channel is.
    let server = Server::start(Opts::new(engine).arg("--channel-buffer-size").arg("0"));
    let mut a = Admin::new(&server);
    a.ok("/push?cname=z&content=1");
    a.ok("/push?cname=z&content=2");
    assert_eq!(a.sign_seq("z"), 3);
    let mut c = subscribe(&server, "/sub?cname=z&seq=1");
    expect(
        &mut c,
        &chunk(&format!("{}\n", msg("next_seq", "z", 3, ""))),
    );
    expect(&mut c, END);
    // After /clear on a buffered channel: a stream with a stale seq gets next_seq, then live.
    let server = Server::start(Opts::new(engine));
    let mut a = Admin::new(&server);
    for i in 1..=3 {
        a.ok(&format!("/push?cname=c&content={i}"));
    }
    assert_eq!(a.ok("/clear?cname=c"), "ok 4\n");
    let mut s = subscribe(&server, "/stream?cname=c&seq=2");
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("next_seq", "c", 4, ""))),
    );
    a.ok("/push?cname=c&content=4");
    expect(&mut s, &chunk(&format!("{}\n", msg("data", "c", 4, "4"))));
    // A current seq on an empty buffer just waits.
    a.ok("/clear?cname=c");
    let mut w = subscribe(&server, "/sub?cname=c&seq=5");
    a.ok("/push?cname=c&content=5");
    expect(&mut w, &chunk(&format!("{}\n", msg("data", "c", 5, "5"))));
    expect(&mut w, END);
    // A subscriber that was there before the /clear goes on receiving.
    expect(&mut s, &chunk(&format!("{}\n", msg("data", "c", 5, "5"))));
}

engine_tests!(closed_channel_is_recreated_fresh);
fn closed_channel_is_recreated_fresh(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut a = Admin::new(&server);
    let first = a.ok("/sign?cname=f");
    a.ok("/push?cname=f&content=1");
    a.ok("/push?cname=f&content=2");
    assert_eq!(a.ok("/close?cname=f"), "ok 3\n");
    assert!(!a.exists("f"));
    let second = a.ok("/sign?cname=f");
    assert!(second.contains("\"seq\":1,"), "{second}");
    let token = |s: &str| s.split("\"token\":\"").nth(1).map(|t| t[..32].to_string());
    assert_ne!(token(&first), token(&second));
    // The old history is gone.
    let mut c = subscribe(&server, "/sub?cname=f&seq=0");
    expect(
        &mut c,
        &chunk(&format!("{}\n", msg("next_seq", "f", 1, ""))),
    );
    expect(&mut c, END);
}

engine_tests!(max_channels_refuses_new_channels_everywhere);
fn max_channels_refuses_new_channels_everywhere(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--max-channels").arg("3"));
    let mut a = Admin::new(&server);
    a.ok("/sign?cname=k1");
    a.ok("/push?cname=k2&content=x");
    let _s = subscribe(&server, "/stream?cname=k3");

    let mut c = Conn::open(server.front);
    c.get("/sse?cname=k4");
    let (status, head) = c.read_head();
    assert_eq!(status, 200);
    assert_eq!(
        normalize_date(&head),
        "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\nContent-Type: text/event-stream; charset=utf-8\r\nAccess-Control-Allow-Origin: *\r\nTransfer-Encoding: chunked\r\nDate: D\r\n"
    );
    let full = msg("429", "k4", 0, "Too many channels");
    assert_eq!(format!("data: {full}\n\n").len(), 0x49);
    expect(&mut c, &chunk(&format!("data: {full}\n\n")));
    expect(&mut c, END);
    let mut c = Conn::open(server.front);
    c.get("/sub?cname=k4&cb=f");
    assert_eq!(c.read_head().0, 200);
    expect(&mut c, &chunk(&format!("f({full});\n")));
    expect(&mut c, END);

    for path in [
        "/sign?cname=k4",
        "/push?cname=k4&content=x",
        "/pub?cname=k4&content=x",
    ] {
        let r = a.call(path);
        assert_eq!(
            normalize_date(&r.head),
            "HTTP/1.1 429 Too Many Channels\r\nServer: icomet 0.2.5\r\nDate: D\r\nContent-Length: 0\r\nContent-Type: text/html; charset=ISO-8859-1\r\n",
            "{path}"
        );
        assert!(r.body.is_empty());
    }
    assert!(!a.exists("k4"));
    // Existing channels keep working; closing one makes room.
    a.ok("/push?cname=k1&content=y");
    a.ok("/close?cname=k1");
    a.ok("/sign?cname=k4");
    assert!(a.exists("k4"));
    assert_eq!(a.call("/sign?cname=k5").status, 429);
}

engine_tests!(presence_streams_are_independent_and_survive_their_peers);
fn presence_streams_are_independent_and_survive_their_peers(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut p1 = presence(&server);
    let mut p2 = Conn::open(server.admin);
    p2.get("/psub");
    assert_eq!(p2.read_head().0, 200);
    assert!(eventually(Duration::from_secs(10), || {
        get(server.admin, "/stats")
            .text()
            .contains("\"presence_clients\": 2,")
    }));
    let mut a = Admin::new(&server);
    a.ok("/sign?cname=m");
    expect(&mut p1, &chunk("1 m\n"));
    expect(&mut p2, &chunk("1 m\n"));
    drop(p2);
    assert!(eventually(Duration::from_secs(10), || {
        get(server.admin, "/stats")
            .text()
            .contains("\"presence_clients\": 1,")
    }));
    a.ok("/close?cname=m");
    expect(&mut p1, &chunk("0 m\n"));
}

engine_tests!(a_push_right_after_a_broadcast_comes_after_it_on_every_channel);
/// Each worker stores a broadcast a bounded number of channels per loop turn; a push that comes
/// while it is being stored still comes after it, for a channel the broadcast had not reached
/// yet (the last one created) as for any other.
fn a_push_right_after_a_broadcast_comes_after_it_on_every_channel(engine: &'static str) {
    const CHANNELS: usize = 60_000;
    let server = Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--max-channels")
            .arg("100000"),
    );
    // The channels, by pipelined /sign on one connection.
    let mut a = Admin::new(&server);
    let mut batch = Vec::new();
    for i in 0..CHANNELS {
        batch.extend_from_slice(
            format!("GET /sign?cname=b{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        if i % 1000 == 999 {
            a.0.send(&batch);
            batch.clear();
            for _ in 0..1000 {
                assert_eq!(a.0.read_response().status, 200);
            }
        }
    }
    let last = format!("b{}", CHANNELS - 1);
    let mut sub = subscribe(&server, &format!("/stream?cname={last}&seq=1"));
    for round in 1..=3 {
        assert_eq!(a.ok(&format!("/broadcast?content=all{round}")), "ok\n");
        a.ok(&format!("/push?cname={last}&content=after{round}"));
        let seq = 2 * round as i64 - 1;
        let broadcast = msg("broadcast", &last, seq, &format!("all{round}"));
        expect(&mut sub, &chunk(&format!("{broadcast}\n")));
        // A live broadcast is followed by the seq that comes next (as iComet does).
        let next = msg("next_seq", &last, seq + 1, "");
        expect(&mut sub, &chunk(&format!("{next}\n")));
        let data = msg("data", &last, seq + 1, &format!("after{round}"));
        expect(&mut sub, &chunk(&format!("{data}\n")));
    }
}
