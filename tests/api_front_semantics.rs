//! The front (subscriber) port's semantics end to end: replay and seq continuity, long-poll
//! chains, pipelining, `Connection: close`, `/close` delivery, disconnects, token auth, subscriber
//! limits, wrong methods, bad parameters and `/ping`.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use support::front::*;
use support::*;

engine_tests!(stream_seq_continuity_and_replay_after_reconnect);
fn stream_seq_continuity_and_replay_after_reconnect(engine: &'static str) {
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

engine_tests!(long_poll_chain_never_misses_or_repeats);
fn long_poll_chain_never_misses_or_repeats(engine: &'static str) {
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

engine_tests!(pipelined_requests_are_answered_in_order);
fn pipelined_requests_are_answered_in_order(engine: &'static str) {
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

engine_tests!(subscription_asked_with_connection_close_says_close_and_closes);
fn subscription_asked_with_connection_close_says_close_and_closes(engine: &'static str) {
    // Protocol §2.4: when the request says `Connection: close`, the reply's Connection header is
    // replaced by a final `Connection: close` (streaming replies included), and the connection
    // closes after the response.
    let head = "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nDate: D\r\nConnection: close\r\n";
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

engine_tests!(close_ends_every_transport_and_forgets_the_channel);
fn close_ends_every_transport_and_forgets_the_channel(engine: &'static str) {
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

engine_tests!(client_disconnect_removes_the_subscriber);
fn client_disconnect_removes_the_subscriber(engine: &'static str) {
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

engine_tests!(cname_is_json_escaped_in_messages);
fn cname_is_json_escaped_in_messages(engine: &'static str) {
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

engine_tests!(token_auth);
fn token_auth(engine: &'static str) {
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
        if path.starts_with("/iframe") {
            // The preamble comes first, as for an accepted iframe (iComet's bytes).
            let preamble = c.read_chunk().expect("the iframe preamble");
            assert!(preamble.starts_with(b"<html><head>") && preamble.ends_with(b"<body>\n"));
        }
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

engine_tests!(max_subscribers_per_channel_gives_429_frames);
fn max_subscribers_per_channel_gives_429_frames(engine: &'static str) {
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

engine_tests!(wrong_methods_get_405_and_the_connection_goes_on);
fn wrong_methods_get_405_and_the_connection_goes_on(engine: &'static str) {
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

engine_tests!(bad_parameters_get_400_with_a_reason);
fn bad_parameters_get_400_with_a_reason(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--max-cname-length").arg("8"));
    let mut c = Conn::open(server.front);
    for (path, word) in [
        ("/sub?cname=123456789", "cname"),
        ("/stream?cname=a&seq=abc", "seq"),
        ("/sse?cname=a&seq=1x", "seq"),
        ("/sub?cname=a&noop=z", "noop"),
        ("/sub?cname=a&cb=alert(1)", "cb"),
        ("/poll?cname=a&cb=a%3Bb", "cb"),
        // 129 bytes: longer than any token (a stateless one is at most 84).
        (
            &*format!("/stream?cname=a&token={}", "0".repeat(129)),
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

engine_tests!(ping_and_unknown_paths);
fn ping_and_unknown_paths(engine: &'static str) {
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
