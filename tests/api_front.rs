//! The front (subscriber) port end to end, byte for byte against the iComet wire format: JSON and
//! JSONP long-poll framing, `/stream`, `/sse`, `/iframe`, HTTP/1.0 subscribers, replay and seq
//! continuity, `next_seq`, heartbeats, `/close` delivery, token auth, subscriber limits, wrong
//! methods and bad parameters.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;

/// The JSON object of one message (protocol §3).
fn msg(kind: &str, cname: &str, seq: i64, content: &str) -> String {
    format!("{{\"type\":\"{kind}\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"{content}\"}}")
}

/// One HTTP chunk holding `body`.
fn chunk(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n", body.len())
}

const END: &str = "0\r\n\r\n";

/// The head of a subscription reply to `path` with its Date normalised (protocol §4.2; rcomet
/// serves `/iframe` as HTML so browsers run its scripts).
fn sub_head(path: &str, ok: bool, http11: bool) -> String {
    let mut h = format!(
        "HTTP/1.{} 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n",
        u8::from(http11)
    );
    if path.starts_with("/sse") {
        h.push_str(
            "Content-Type: text/event-stream; charset=utf-8\r\nAccess-Control-Allow-Origin: *\r\n",
        );
    } else if path.starts_with("/iframe") {
        h.push_str("Content-Type: text/html; charset=utf-8\r\n");
    } else {
        h.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    if ok {
        h.push_str("Connection: keep-alive\r\n");
    }
    if http11 {
        h.push_str("Transfer-Encoding: chunked\r\nDate: D\r\n");
    }
    h
}

/// Reads exactly the bytes of `expected` and compares them.
fn expect(c: &mut Conn, expected: &str) {
    let got = c.read_exact_n(expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

/// Sends `GET path` on `c` and checks the successful subscription head.
fn subscribe_on(c: &mut Conn, path: &str) {
    c.get(path);
    let (_, head) = c.read_head();
    assert_eq!(normalize_date(&head), sub_head(path, true, true), "{path}");
}

/// Opens a subscription on a new connection and checks its head.
fn subscribe(front: SocketAddr, path: &str) -> Conn {
    let mut c = Conn::open(front);
    subscribe_on(&mut c, path);
    c
}

/// One admin request on a fresh connection; asserts 200.
fn admin_ok(server: &Server, path: &str) -> Response {
    let r = get(server.admin, path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r
}

/// Number of subscribers of `cname` as /info reports it.
fn info_subscribers(server: &Server, cname: &str) -> usize {
    let body = admin_ok(server, &format!("/info?cname={cname}")).text();
    let tail = body.rsplit("\"subscribers\": ").next().unwrap_or("");
    tail.trim_end_matches(['}', '\n'])
        .parse()
        .unwrap_or(usize::MAX)
}

fn wait_subscribers(server: &Server, cname: &str, n: usize) {
    assert!(
        eventually(Duration::from_secs(10), || info_subscribers(server, cname)
            == n),
        "{cname} never had {n} subscribers"
    );
}

#[test]
fn long_poll_json_and_jsonp_framing() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        admin_ok(&server, "/push?cname=alice&content=say+%22hi%22");
        admin_ok(&server, "/pub?cname=alice&content=%5Cu4f60");
        let mut c = Conn::open(server.front);

        // seq=0: where the channel is, JSONP.
        subscribe_on(&mut c, "/sub?cname=alice&seq=0&noop=0&cb=icomet_cb_0");
        let body = format!("icomet_cb_0({});\n", msg("next_seq", "alice", 3, ""));
        assert_eq!(body.len(), 0x47);
        expect(&mut c, &chunk(&body));
        expect(&mut c, END);

        // Replay: always an array, on the same keep-alive connection.
        subscribe_on(&mut c, "/sub?cname=alice&seq=1&noop=0&cb=icomet_cb_0");
        let m1 = msg("data", "alice", 1, "say \\\"hi\\\"");
        let m2 = msg("data", "alice", 2, "\\u4f60");
        let body = format!("icomet_cb_0([{m1},{m2}]);\n");
        assert_eq!(body.len(), 0x8a);
        expect(&mut c, &chunk(&body));
        expect(&mut c, END);

        // Plain JSON on /poll, and an empty cb= means no JSONP on /sub.
        subscribe_on(&mut c, "/poll?cname=alice&seq=1");
        expect(&mut c, &chunk(&format!("[{m1},{m2}]\n")));
        expect(&mut c, END);
        subscribe_on(&mut c, "/sub?cname=alice&seq=2&cb=");
        expect(&mut c, &chunk(&format!("[{m2}]\n")));
        expect(&mut c, END);

        // Waiting, then one live message: a single object, not an array.
        subscribe_on(&mut c, "/sub?cname=alice&seq=3&noop=3");
        admin_ok(&server, "/push?cname=alice&content=line1%0Aline2");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("data", "alice", 3, "line1\\nline2"))),
        );
        expect(&mut c, END);

        // Live JSONP.
        subscribe_on(&mut c, "/sub?cname=alice&seq=4&cb=jQuery1910_42");
        admin_ok(&server, "/push?cname=alice&content=x");
        expect(
            &mut c,
            &chunk(&format!(
                "jQuery1910_42({});\n",
                msg("data", "alice", 4, "x")
            )),
        );
        expect(&mut c, END);

        // The connection is still good for a plain request.
        c.get("/ping?cb=p");
        let r = c.read_response();
        assert_eq!(r.text(), "p({\"type\":\"ping\",\"sub_timeout\":30});\n");
    }
}

#[test]
fn next_seq_on_seq_zero_ahead_and_after_live_broadcast() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        for _ in 0..4 {
            admin_ok(&server, "/push?cname=bob&content=m");
        }
        for path in [
            "/sub?cname=bob",
            "/sub?cname=bob&seq=0",
            "/sub?cname=bob&seq=100",
        ] {
            let mut c = subscribe(server.front, path);
            expect(
                &mut c,
                &chunk(&format!("{}\n", msg("next_seq", "bob", 5, ""))),
            );
            expect(&mut c, END);
        }
        // A waiting long-poll gets a live broadcast as [broadcast, next_seq].
        let mut c = subscribe(server.front, "/sub?cname=bob&seq=5&cb=f");
        admin_ok(&server, "/broadcast?content=to+all");
        let body = format!(
            "f([{},{}]);\n",
            msg("broadcast", "bob", 5, "to all"),
            msg("next_seq", "bob", 6, "")
        );
        expect(&mut c, &chunk(&body));
        expect(&mut c, END);
        // The replayed broadcast is followed by its next_seq inside the array.
        let mut c = subscribe(server.front, "/sub?cname=bob&seq=4");
        let body = format!(
            "[{},{},{}]\n",
            msg("data", "bob", 4, "m"),
            msg("broadcast", "bob", 5, "to all"),
            msg("next_seq", "bob", 6, "")
        );
        expect(&mut c, &chunk(&body));
        expect(&mut c, END);
    }
}

#[test]
fn stream_next_seq_data_broadcast_noops_and_close() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine).arg("--polling-timeout").arg("1"));
        let mut c = subscribe(server.front, "/stream?cname=carol&noop=10");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "carol", 1, ""))),
        );
        admin_ok(&server, "/push?cname=carol&content=hello");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("data", "carol", 1, "hello"))),
        );
        admin_ok(&server, "/broadcast?content=to+all");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("broadcast", "carol", 2, "to all"))),
        );
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "carol", 3, ""))),
        );
        // Heartbeats: the counter starts at noop=10 and grows by one each time.
        for noop in [10, 11] {
            let start = Instant::now();
            expect(
                &mut c,
                &chunk(&format!("{}\n", msg("noop", "carol", noop, ""))),
            );
            let took = start.elapsed();
            assert!(
                took < Duration::from_millis(3500),
                "noop {noop} took {took:?}"
            );
        }
        let r = admin_ok(&server, "/close?cname=carol");
        assert_eq!(r.text(), "ok 3\n");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("close", "carol", 3, ""))),
        );
        expect(&mut c, END);
        // The HTTP/1.1 connection is ready for its next request.
        c.get("/ping");
        assert_eq!(c.read_response().status, 200);
    }
}

#[test]
fn sse_iframe_and_http10_heartbeats() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine).arg("--polling-timeout").arg("1"));
        let start = Instant::now();
        let mut e = subscribe(server.front, "/sse?cname=h&noop=7");
        expect(
            &mut e,
            &chunk(&format!("data: {}\n\n", msg("next_seq", "h", 1, ""))),
        );
        let mut f = subscribe(server.front, "/iframe?cname=h&noop=2");
        let _preamble = f.read_chunk().expect("preamble");
        let script = |m: String| chunk(&format!("<script>parent.icomet_cb({m});</script>\n"));
        expect(&mut f, &script(msg("next_seq", "h", 1, "")));
        let mut old = Conn::open(server.front);
        old.send(b"GET /sub?cname=h&seq=1&noop=4 HTTP/1.0\r\n\r\n");
        assert_eq!(old.read_head().0, 200);

        expect(
            &mut e,
            &chunk(&format!("data: {}\n\n", msg("noop", "h", 7, ""))),
        );
        expect(&mut f, &script(msg("noop", "h", 2, "")));
        let rest = old.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!("{}\n", msg("noop", "h", 4, ""))
        );
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(3500),
            "first noops took {took:?}"
        );
        let start = Instant::now();
        expect(
            &mut e,
            &chunk(&format!("data: {}\n\n", msg("noop", "h", 8, ""))),
        );
        expect(&mut f, &script(msg("noop", "h", 3, "")));
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(3500),
            "second noops took {took:?}"
        );
    }
}

#[test]
fn long_poll_noop_after_polling_timeout() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine).arg("--polling-timeout").arg("1"));
        let start = Instant::now();
        let mut c = subscribe(server.front, "/sub?cname=bob&seq=1&noop=3&cb=f");
        let body = format!("f({});\n", msg("noop", "bob", 3, ""));
        assert_eq!(body.len(), 0x37);
        expect(&mut c, &chunk(&body));
        expect(&mut c, END);
        let took = start.elapsed();
        assert!(took < Duration::from_millis(3500), "noop took {took:?}");
        // The long-poll is over: nobody is subscribed any more.
        wait_subscribers(&server, "bob", 0);
    }
}

#[test]
fn sse_frames() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        // seq=1 on a fresh channel (next seq 1): nothing to catch up, wait for live messages.
        let mut c = subscribe(server.front, "/sse?cname=dave&seq=1");
        admin_ok(&server, "/push?cname=dave&content=hi");
        let body = format!("data: {}\n\n", msg("data", "dave", 1, "hi"));
        assert_eq!(body.len(), 0x3d);
        expect(&mut c, &chunk(&body));
        admin_ok(&server, "/broadcast?content=b");
        expect(
            &mut c,
            &chunk(&format!("data: {}\n\n", msg("broadcast", "dave", 2, "b"))),
        );
        expect(
            &mut c,
            &chunk(&format!("data: {}\n\n", msg("next_seq", "dave", 3, ""))),
        );
        admin_ok(&server, "/close?cname=dave");
        expect(
            &mut c,
            &chunk(&format!("data: {}\n\n", msg("close", "dave", 3, ""))),
        );
        expect(&mut c, END);

        // seq=0 starts with next_seq; replay gives one event per message.
        let mut c = subscribe(server.front, "/sse?cname=dave2");
        expect(
            &mut c,
            &chunk(&format!("data: {}\n\n", msg("next_seq", "dave2", 1, ""))),
        );
        drop(c);
        admin_ok(&server, "/push?cname=dave2&content=a");
        admin_ok(&server, "/push?cname=dave2&content=b");
        let mut c = subscribe(server.front, "/sse?cname=dave2&seq=1");
        expect(
            &mut c,
            &chunk(&format!("data: {}\n\n", msg("data", "dave2", 1, "a"))),
        );
        expect(
            &mut c,
            &chunk(&format!("data: {}\n\n", msg("data", "dave2", 2, "b"))),
        );
    }
}

#[test]
fn iframe_preamble_and_script_frames() {
    const PREAMBLE: &str = "<html><head><meta http-equiv='Content-Type' content='text/html; charset=utf-8'><meta http-equiv='Cache-Control' content='no-store'><meta http-equiv='Cache-Control' content='no-cache'><meta http-equiv='Pragma' content='no-cache'><meta http-equiv=' Expires' content='Thu, 1 Jan 1970 00:00:00 GMT'><script type='text/javascript'>window.onError = null;try{document.domain = window.location.hostname.split('.').slice(-2).join('.');}catch(e){};</script></head><body>\n";
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        // The callback name is fixed: cb is ignored on /iframe.
        let mut c = subscribe(server.front, "/iframe?cname=erin&cb=ignored");
        assert_eq!(PREAMBLE.len(), 0x1cd);
        expect(&mut c, &format!("1cd\r\n{PREAMBLE}\r\n"));
        let frame = |m: String| chunk(&format!("<script>parent.icomet_cb({m});</script>\n"));
        let first = frame(msg("next_seq", "erin", 1, ""));
        assert!(first.starts_with("5c\r\n"));
        expect(&mut c, &first);
        admin_ok(&server, "/push?cname=erin&content=hi");
        let second = frame(msg("data", "erin", 1, "hi"));
        assert!(second.starts_with("5a\r\n"));
        expect(&mut c, &second);
        admin_ok(&server, "/close?cname=erin");
        expect(&mut c, &frame(msg("close", "erin", 2, "")));
        expect(&mut c, END);
    }
}

#[test]
fn http10_subscribers_get_raw_frames_and_are_closed() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        let head10 = |path: &str| format!("{}\r\n", sub_head(path, true, false));

        // /stream: raw lines, closed after /close.
        let mut c = Conn::open(server.front);
        c.send(b"GET /stream?cname=ivan HTTP/1.0\r\n\r\n");
        expect(&mut c, &head10("/stream"));
        expect(&mut c, &format!("{}\n", msg("next_seq", "ivan", 1, "")));
        admin_ok(&server, "/push?cname=ivan&content=x");
        expect(&mut c, &format!("{}\n", msg("data", "ivan", 1, "x")));
        admin_ok(&server, "/close?cname=ivan");
        let rest = c.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!("{}\n", msg("close", "ivan", 2, ""))
        );

        // Long-poll: one raw frame, then the connection closes.
        let mut c = Conn::open(server.front);
        c.send(b"GET /sub?cname=ivan&cb=f HTTP/1.0\r\n\r\n");
        expect(&mut c, &head10("/sub"));
        let rest = c.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!("f({});\n", msg("next_seq", "ivan", 1, ""))
        );

        // A waiting long-poll: the live message, then close.
        let mut c = Conn::open(server.front);
        c.send(b"GET /poll?cname=ivan&seq=1 HTTP/1.0\r\n\r\n");
        expect(&mut c, &head10("/poll"));
        wait_subscribers(&server, "ivan", 1);
        admin_ok(&server, "/push?cname=ivan&content=y");
        let rest = c.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!("{}\n", msg("data", "ivan", 1, "y"))
        );

        // SSE and iframe framing without chunks.
        let mut c = Conn::open(server.front);
        c.send(b"GET /sse?cname=ivan HTTP/1.0\r\n\r\n");
        expect(&mut c, &head10("/sse"));
        expect(
            &mut c,
            &format!("data: {}\n\n", msg("next_seq", "ivan", 2, "")),
        );
        let mut f = Conn::open(server.front);
        f.send(b"GET /iframe?cname=ivan HTTP/1.0\r\n\r\n");
        expect(&mut f, &head10("/iframe"));
        let preamble = f.read_exact_n(0x1cd);
        assert!(preamble.starts_with(b"<html><head>") && preamble.ends_with(b"<body>\n"));
        expect(
            &mut f,
            &format!(
                "<script>parent.icomet_cb({});</script>\n",
                msg("next_seq", "ivan", 2, "")
            ),
        );
        admin_ok(&server, "/close?cname=ivan");
        let rest = c.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!("data: {}\n\n", msg("close", "ivan", 2, ""))
        );
        let rest = f.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!(
                "<script>parent.icomet_cb({});</script>\n",
                msg("close", "ivan", 2, "")
            )
        );
    }
}

#[test]
fn stream_seq_continuity_and_replay_after_reconnect() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        let mut admin = Conn::open(server.admin);
        let mut push = |content: &str| {
            admin.get(&format!("/push?cname=kim&content={content}"));
            let r = admin.read_response();
            assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
        };
        let mut c = subscribe(server.front, "/stream?cname=kim");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "kim", 1, ""))),
        );
        for i in 1..=5 {
            push(&format!("m{i}"));
        }
        for i in 1..=5 {
            expect(
                &mut c,
                &chunk(&format!("{}\n", msg("data", "kim", i, &format!("m{i}")))),
            );
        }
        drop(c);
        wait_subscribers(&server, "kim", 0);
        // Missed while away: 6..8. Reconnecting with seq=6 replays exactly those, one frame each.
        for i in 6..=8 {
            push(&format!("m{i}"));
        }
        let mut c = subscribe(server.front, "/stream?cname=kim&seq=6");
        for i in 6..=8 {
            expect(
                &mut c,
                &chunk(&format!("{}\n", msg("data", "kim", i, &format!("m{i}")))),
            );
        }
        // Then live, continuing the sequence.
        push("m9");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("data", "kim", 9, "m9"))),
        );
        // A replayed broadcast is followed by its next_seq frame.
        drop(c);
        wait_subscribers(&server, "kim", 0);
        admin_ok(&server, "/broadcast?content=all");
        let mut c = subscribe(server.front, "/stream?cname=kim&seq=9");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("data", "kim", 9, "m9"))),
        );
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("broadcast", "kim", 10, "all"))),
        );
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "kim", 11, ""))),
        );
        // A seq that is current: nothing replayed, the next live message comes next.
        let mut d = subscribe(server.front, "/stream?cname=kim&seq=11");
        push("m11");
        expect(
            &mut d,
            &chunk(&format!("{}\n", msg("data", "kim", 11, "m11"))),
        );
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("data", "kim", 11, "m11"))),
        );
    }
}

#[test]
fn long_poll_chain_never_misses_or_repeats() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        let mut c = Conn::open(server.front);
        let mut admin = Conn::open(server.admin);
        let mut next = 1;
        for round in 0..20 {
            // Two pushes while no poll is pending, one while one is.
            for k in 0..2 {
                admin.get(&format!("/push?cname=lp&content=r{round}k{k}"));
                assert_eq!(admin.read_response().status, 200);
            }
            subscribe_on(&mut c, &format!("/sub?cname=lp&seq={next}"));
            let expected: Vec<String> = (0..2)
                .map(|k| msg("data", "lp", next + k, &format!("r{round}k{k}")))
                .collect();
            expect(&mut c, &chunk(&format!("[{}]\n", expected.join(","))));
            expect(&mut c, END);
            next += 2;
            subscribe_on(&mut c, &format!("/sub?cname=lp&seq={next}"));
            admin.get(&format!("/push?cname=lp&content=live{round}"));
            assert_eq!(admin.read_response().status, 200);
            expect(
                &mut c,
                &chunk(&format!(
                    "{}\n",
                    msg("data", "lp", next, &format!("live{round}"))
                )),
            );
            expect(&mut c, END);
            next += 1;
        }
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        admin_ok(&server, "/push?cname=pp&content=a");
        let mut c = Conn::open(server.front);
        c.send(b"GET /sub?cname=pp HTTP/1.1\r\nHost: t\r\n\r\nGET /sub?cname=pp&seq=1&cb=f HTTP/1.1\r\nHost: t\r\n\r\nGET /ping?cb=p HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.text(), format!("{}\n", msg("next_seq", "pp", 2, "")));
        let r = c.read_response();
        assert_eq!(r.text(), format!("f([{}]);\n", msg("data", "pp", 1, "a")));
        let r = c.read_response();
        assert_eq!(r.text(), "p({\"type\":\"ping\",\"sub_timeout\":30});\n");
        // A waiting long-poll holds back the request pipelined behind it.
        c.send(b"GET /sub?cname=pp&seq=2 HTTP/1.1\r\nHost: t\r\n\r\nGET /ping?cb=q HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.read_head().0, 200);
        wait_subscribers(&server, "pp", 1);
        admin_ok(&server, "/push?cname=pp&content=b");
        expect(&mut c, &chunk(&format!("{}\n", msg("data", "pp", 2, "b"))));
        expect(&mut c, END);
        let r = c.read_response();
        assert_eq!(r.text(), "q({\"type\":\"ping\",\"sub_timeout\":30});\n");
    }
}

#[test]
fn subscription_asked_with_connection_close_says_close_and_closes() {
    // Protocol §2.4: when the request says `Connection: close`, the reply's Connection header is
    // replaced by a final `Connection: close` (streaming replies included), and the connection
    // closes after the response.
    let head = "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nDate: D\r\nConnection: close\r\n";
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        let mut c = Conn::open(server.front);
        c.send(b"GET /sub?cname=cc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let (_, got) = c.read_head();
        let rest = c.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!(
                "{}{END}",
                chunk(&format!("{}\n", msg("next_seq", "cc", 1, "")))
            )
        );
        assert_eq!(normalize_date(&got), head);

        let mut c = Conn::open(server.front);
        c.send(b"GET /stream?cname=cc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let (_, got) = c.read_head();
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "cc", 1, ""))),
        );
        admin_ok(&server, "/close?cname=cc");
        let rest = c.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!(
                "{}{END}",
                chunk(&format!("{}\n", msg("close", "cc", 1, "")))
            )
        );
        assert_eq!(normalize_date(&got), head);
    }
}

#[test]
fn close_ends_every_transport_and_forgets_the_channel() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        admin_ok(&server, "/push?cname=zed&content=a");
        let mut s = subscribe(server.front, "/stream?cname=zed&seq=2");
        let mut l = subscribe(server.front, "/sub?cname=zed&seq=2&cb=cb");
        let mut e = subscribe(server.front, "/sse?cname=zed&seq=2");
        wait_subscribers(&server, "zed", 3);
        let r = admin_ok(&server, "/close?cname=zed");
        assert_eq!(r.text(), "ok 2\n");
        let close = msg("close", "zed", 2, "");
        expect(&mut s, &chunk(&format!("{close}\n")));
        expect(&mut s, END);
        expect(&mut l, &chunk(&format!("cb({close});\n")));
        expect(&mut l, END);
        expect(&mut e, &chunk(&format!("data: {close}\n\n")));
        expect(&mut e, END);
        // The channel is gone: a new subscriber re-creates it from seq 1.
        subscribe_on(&mut s, "/sub?cname=zed");
        expect(
            &mut s,
            &chunk(&format!("{}\n", msg("next_seq", "zed", 1, ""))),
        );
        expect(&mut s, END);
    }
}

#[test]
fn client_disconnect_removes_the_subscriber() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        let a = subscribe(server.front, "/stream?cname=gone");
        let b = subscribe(server.front, "/sub?cname=gone&seq=1");
        wait_subscribers(&server, "gone", 2);
        drop(a);
        wait_subscribers(&server, "gone", 1);
        // A half-close counts as leaving too.
        b.stream.shutdown(std::net::Shutdown::Write).unwrap();
        wait_subscribers(&server, "gone", 0);
        let r = admin_ok(&server, "/info");
        assert!(r.text().ends_with("\"subscribers\": 0}\n"), "{}", r.text());
    }
}

#[test]
fn cname_is_json_escaped_in_messages() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        let mut c = subscribe(server.front, "/stream?cname=a%22b%5Cc");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "a\\\"b\\\\c", 1, ""))),
        );
        admin_ok(&server, "/push?cname=a%22b%5Cc&content=x");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("data", "a\\\"b\\\\c", 1, "x"))),
        );
    }
}

#[test]
fn token_auth() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine).arg("--auth").arg("token"));
        let err = |cname: &str| msg("401", cname, 0, "Token error");
        // Unknown channel: 401 and the channel is not created.
        let mut c = Conn::open(server.front);
        c.get("/sub?cname=gina&cb=icomet_cb_0");
        let (_, head) = c.read_head();
        assert_eq!(normalize_date(&head), sub_head("/sub", false, true));
        let body = format!("icomet_cb_0({});\n", err("gina"));
        assert_eq!(body.len(), 0x4c);
        expect(&mut c, &chunk(&body));
        expect(&mut c, END);
        assert_eq!(admin_ok(&server, "/check?cname=gina").text(), "{}\n");

        let sign = admin_ok(&server, "/sign?cname=gina").text();
        let token = sign
            .split("\"token\":\"")
            .nth(1)
            .and_then(|t| t.get(..32))
            .expect("token in /sign")
            .to_string();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

        // Missing and wrong tokens on a known channel, on each framing.
        for (path, frame) in [
            ("/sub?cname=gina".to_string(), format!("{}\n", err("gina"))),
            (
                "/stream?cname=gina&token=00000000000000000000000000000000".to_string(),
                format!("{}\n", err("gina")),
            ),
            (
                "/sse?cname=gina&token=x".to_string(),
                format!("data: {}\n\n", err("gina")),
            ),
            (
                "/iframe?cname=gina&token=x".to_string(),
                format!("<script>parent.icomet_cb({});</script>\n", err("gina")),
            ),
        ] {
            let mut c = Conn::open(server.front);
            c.get(&path);
            let (status, head) = c.read_head();
            assert_eq!(status, 200);
            assert_eq!(
                normalize_date(&head),
                sub_head(&path, false, true),
                "{path}"
            );
            expect(&mut c, &chunk(&frame));
            expect(&mut c, END);
        }
        // The right token works.
        let mut c = subscribe(server.front, &format!("/stream?cname=gina&token={token}"));
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "gina", 1, ""))),
        );
        admin_ok(&server, "/push?cname=gina&content=ok");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("data", "gina", 1, "ok"))),
        );
        let mut l = subscribe(
            server.front,
            &format!("/sub?cname=gina&seq=1&token={token}"),
        );
        expect(
            &mut l,
            &chunk(&format!("[{}]\n", msg("data", "gina", 1, "ok"))),
        );
        expect(&mut l, END);
    }
}

#[test]
fn max_subscribers_per_channel_gives_429_frames() {
    for engine in engines() {
        let server = Server::start(
            Opts::new(engine)
                .arg("--max-subscribers-per-channel")
                .arg("2"),
        );
        let a = subscribe(server.front, "/stream?cname=jack");
        let _b = subscribe(server.front, "/sub?cname=jack&seq=1");
        wait_subscribers(&server, "jack", 2);
        let full = msg("429", "jack", 0, "Too many subscribers");
        let mut c = Conn::open(server.front);
        c.get("/stream?cname=jack");
        let (_, head) = c.read_head();
        assert_eq!(normalize_date(&head), sub_head("/stream", false, true));
        assert_eq!(full.len() + 1, 0x47);
        expect(&mut c, &chunk(&format!("{full}\n")));
        expect(&mut c, END);
        let mut c = Conn::open(server.front);
        c.get("/sub?cname=jack&cb=f");
        let (_, head) = c.read_head();
        assert_eq!(normalize_date(&head), sub_head("/sub", false, true));
        expect(&mut c, &chunk(&format!("f({full});\n")));
        expect(&mut c, END);
        // Another channel is not affected; a freed place can be taken again.
        let mut other = subscribe(server.front, "/sub?cname=jill");
        expect(
            &mut other,
            &chunk(&format!("{}\n", msg("next_seq", "jill", 1, ""))),
        );
        drop(a);
        wait_subscribers(&server, "jack", 1);
        let mut d = subscribe(server.front, "/stream?cname=jack");
        expect(
            &mut d,
            &chunk(&format!("{}\n", msg("next_seq", "jack", 1, ""))),
        );
    }
}

#[test]
fn wrong_methods_get_405_and_the_connection_goes_on() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine));
        let mut c = Conn::open(server.front);
        for path in ["/sub", "/poll", "/stream", "/sse", "/iframe"] {
            c.send(
                format!("POST {path}?cname=x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            );
            let r = c.read_response();
            assert_eq!(
                normalize_date(&r.head),
                "HTTP/1.1 405 Method Not Allowed\r\nDate: D\r\nContent-Length: 0\r\nContent-Type: text/html; charset=ISO-8859-1\r\n",
                "{path}"
            );
            assert!(r.body.is_empty());
        }
        // HEAD: same status, no body.
        c.send(b"HEAD /stream?cname=x HTTP/1.1\r\nHost: t\r\n\r\n");
        let (status, head) = c.read_head();
        assert_eq!(status, 405);
        assert!(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        // DELETE with a body, then a good request on the same connection.
        c.send(b"DELETE /sub?cname=x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(c.read_response().status, 405);
        subscribe_on(&mut c, "/sub?cname=x");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "x", 1, ""))),
        );
        expect(&mut c, END);
        // No subscription was made by the refused requests.
        assert_eq!(info_subscribers(&server, "x"), 0);
    }
}

#[test]
fn bad_parameters_get_400_with_a_reason() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine).arg("--max-cname-length").arg("8"));
        let mut c = Conn::open(server.front);
        for (path, word) in [
            ("/sub?cname=123456789", "cname"),
            ("/stream?cname=a&seq=abc", "seq"),
            ("/sse?cname=a&seq=1x", "seq"),
            ("/sub?cname=a&noop=z", "noop"),
            ("/sub?cname=a&cb=alert(1)", "cb"),
            ("/poll?cname=a&cb=a%3Bb", "cb"),
            (
                "/stream?cname=a&token=00000000001111111111222222222233333333334444444444555555555566666",
                "token",
            ),
        ] {
            c.get(path);
            let r = c.read_response();
            assert_eq!(r.status, 400, "{path}: {}", r.text());
            assert_eq!(
                r.header("Content-Type").as_deref(),
                Some("text/plain; charset=utf-8")
            );
            let text = r.text();
            assert!(
                text.contains(word) && text.ends_with('\n'),
                "{path}: {text:?}"
            );
            assert_eq!(r.header("Content-Length"), Some(r.body.len().to_string()));
        }
        // An 8-byte name is fine, and the connection still works after the refusals.
        subscribe_on(&mut c, "/sub?cname=12345678");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "12345678", 1, ""))),
        );
        expect(&mut c, END);
        // Nothing was created by the refused requests.
        let r = admin_ok(&server, "/info");
        assert!(r.text().contains("\"channels\": 1,"), "{}", r.text());
    }
}

#[test]
fn ping_and_unknown_paths() {
    for engine in engines() {
        let server = Server::start(Opts::new(engine).arg("--polling-timeout").arg("3"));
        // An empty cb= means plain JSON.
        let r = get(server.front, "/ping?cb=");
        assert_eq!(r.text(), "{\"type\":\"ping\",\"sub_timeout\":3}\n");
        let mut c = Conn::open(server.front);
        c.send(b"GET /ping?cb=p HTTP/1.0\r\n\r\n");
        let all = c.read_to_close();
        assert_eq!(
            String::from_utf8_lossy(&all),
            "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\np({\"type\":\"ping\",\"sub_timeout\":3});\n"
        );
        // Admin routes do not exist on the front port: the 404 page, and the connection closes.
        let mut c = Conn::open(server.front);
        c.get("/foo?a=1&b=<2>");
        let r = c.read_response();
        assert_eq!(
            normalize_date(&r.head),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nConnection: close\r\nDate: D\r\nContent-Length: 165\r\n"
        );
        assert_eq!(
            r.text(),
            "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>The requested URL /foo?a=1&amp;b=&lt;2&gt; was not found on this server.</p></body></html>\n"
        );
        assert!(c.closed_by_peer());
        let mut c = Conn::open(server.front);
        c.get("/push?cname=a&content=b");
        assert_eq!(c.read_response().status, 404);
        // A percent-encoded path reaches its route.
        let mut c = subscribe(server.front, "/%73ub?cname=enc");
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", "enc", 1, ""))),
        );
    }
}
