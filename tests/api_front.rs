//! The front (subscriber) port end to end, byte for byte against the iComet wire format: JSON and
//! JSONP long-poll framing, `/stream`, `/sse`, `/iframe`, heartbeats and HTTP/1.0 subscribers.
//! Semantics (replay, auth, limits, errors) are in api_front_semantics.rs.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use std::time::{Duration, Instant};
use support::front::*;
use support::*;

engine_tests!(long_poll_json_and_jsonp_framing);
fn long_poll_json_and_jsonp_framing(engine: &'static str) {
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

engine_tests!(next_seq_on_seq_zero_ahead_and_after_live_broadcast);
fn next_seq_on_seq_zero_ahead_and_after_live_broadcast(engine: &'static str) {
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

engine_tests!(stream_next_seq_data_broadcast_noops_and_close);
fn stream_next_seq_data_broadcast_noops_and_close(engine: &'static str) {
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

engine_tests!(sse_iframe_and_http10_heartbeats);
fn sse_iframe_and_http10_heartbeats(engine: &'static str) {
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

engine_tests!(long_poll_noop_after_polling_timeout);
fn long_poll_noop_after_polling_timeout(engine: &'static str) {
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

engine_tests!(sse_frames);
fn sse_frames(engine: &'static str) {
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

engine_tests!(iframe_preamble_and_script_frames);
fn iframe_preamble_and_script_frames(engine: &'static str) {
    const PREAMBLE: &str = "<html><head><meta http-equiv='Content-Type' content='text/html; charset=utf-8'><meta http-equiv='Cache-Control' content='no-store'><meta http-equiv='Cache-Control' content='no-cache'><meta http-equiv='Pragma' content='no-cache'><meta http-equiv=' Expires' content='Thu, 1 Jan 1970 00:00:00 GMT'><script type='text/javascript'>window.onError = null;try{document.domain = window.location.hostname.split('.').slice(-2).join('.');}catch(e){};</script></head><body>\n";
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

engine_tests!(http10_subscribers_get_raw_frames_and_are_closed);
fn http10_subscribers_get_raw_frames_and_are_closed(engine: &'static str) {
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
