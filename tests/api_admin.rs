//! The admin (publisher) port end to end, byte for byte against the iComet replies: /sign, /push,
//! /pub (GET and POST form bodies), /broadcast, /close, /clear, /info, /check, /psub, /stats, the
//! allow/deny filter, wrong methods, HEAD and bad parameters.
//!
//! Depends on tests/support only (the real binary over raw sockets), plus socket2 to bind a client
//! to another loopback address.
mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::*;

/// The JSON object of one message (protocol §3).
fn msg(kind: &str, cname: &str, seq: i64, content: &str) -> String {
    format!("{{\"type\":\"{kind}\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"{content}\"}}")
}

fn chunk(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n", body.len())
}

const END: &str = "0\r\n\r\n";

/// The head of an admin reply with a handler content type (Date normalised).
fn admin_head(status: &str, content_type: &str, len: usize) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: icomet 0.2.5\r\nContent-Type: {content_type}\r\nDate: D\r\nContent-Length: {len}\r\n"
    )
}

/// The head of an admin reply that relies on the default content type.
fn admin_head_default(status: &str, len: usize) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: icomet 0.2.5\r\nDate: D\r\nContent-Length: {len}\r\nContent-Type: text/html; charset=ISO-8859-1\r\n"
    )
}

const UTF8: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

fn expect(c: &mut Conn, expected: &str) {
    let got = c.read_exact_n(expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

/// Opens a `/stream` subscriber and consumes its head and `next_seq` frame.
fn stream(server: &Server, cname: &str, next: i64) -> Conn {
    let mut c = Conn::open(server.front);
    c.get(&format!("/stream?cname={cname}"));
    let (status, _) = c.read_head();
    assert_eq!(status, 200);
    expect(
        &mut c,
        &chunk(&format!("{}\n", msg("next_seq", cname, next, ""))),
    );
    c
}

/// The token in a /sign reply body.
fn token_of(body: &str) -> String {
    let t = body
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.get(..32))
        .unwrap_or_else(|| panic!("no token in {body:?}"))
        .to_string();
    assert!(
        t.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "token {t:?}"
    );
    t
}

/// A client connection whose source address is `source`.
fn conn_from(source: &str, to: SocketAddr) -> Conn {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let from: SocketAddr = format!("{source}:0").parse().expect("address");
    s.bind(&SockAddr::from(from)).expect("bind");
    s.connect(&SockAddr::from(to)).expect("connect");
    let stream: TcpStream = s.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    Conn {
        stream,
        buf: Vec::new(),
    }
}

engine_tests!(sign_json_jsonp_expires_and_seq);
fn sign_json_jsonp_expires_and_seq(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut a = Conn::open(server.admin);
    a.get("/sign?cname=alice");
    let r = a.read_response();
    let token = token_of(&r.text());
    let body = format!(
        "{{\"type\":\"sign\",\"cname\":\"alice\",\"seq\":1,\"token\":\"{token}\",\"expires\":30,\"sub_timeout\":30}}\n"
    );
    assert_eq!(
        normalize_date(&r.head),
        admin_head("200 OK", UTF8, body.len())
    );
    assert_eq!(r.text(), body);

    a.get("/sign?cname=alice&expires=60&cb=icomet_cb_0");
    let r = a.read_response();
    let body = format!(
        "icomet_cb_0({{\"type\":\"sign\",\"cname\":\"alice\",\"seq\":1,\"token\":\"{token}\",\"expires\":60,\"sub_timeout\":30}});\n"
    );
    assert_eq!(
        normalize_date(&r.head),
        admin_head("200 OK", UTF8, body.len())
    );
    assert_eq!(r.text(), body);

    // An empty cb= means plain JSON; expires <= 0 means channel_timeout.
    for path in [
        "/sign?cname=alice&cb=",
        "/sign?cname=alice&expires=0",
        "/sign?cname=alice&expires=-5",
    ] {
        a.get(path);
        let r = a.read_response();
        assert_eq!(
            r.text(),
            format!("{{\"type\":\"sign\",\"cname\":\"alice\",\"seq\":1,\"token\":\"{token}\",\"expires\":30,\"sub_timeout\":30}}\n"),
            "{path}"
        );
    }
    // Another channel has another token; any method works, POST form bodies too.
    a.send(b"POST /sign HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\ncname=bob");
    let r = a.read_response();
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .starts_with("{\"type\":\"sign\",\"cname\":\"bob\",\"seq\":1,"),
        "{}",
        r.text()
    );
    assert_ne!(token_of(&r.text()), token);

    // seq = the oldest replayable message.
    for i in 0..3 {
        a.get(&format!("/push?cname=alice&content={i}"));
        assert_eq!(a.read_response().status, 200);
    }
    a.get("/sign?cname=alice");
    let text = a.read_response().text();
    assert!(text.contains("\"seq\":1,"), "{text}");
    assert_eq!(token_of(&text), token);
    for i in 3..12 {
        a.get(&format!("/push?cname=alice&content={i}"));
        assert_eq!(a.read_response().status, 200);
    }
    // 12 messages, a ring of 10: 3..12 are replayable.
    a.get("/sign?cname=alice");
    let text = a.read_response().text();
    assert!(text.contains("\"seq\":3,"), "{text}");
}

engine_tests!(push_and_pub_replies_and_content);
fn push_and_pub_replies_and_content(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut s = stream(&server, "alice", 1);
    let mut a = Conn::open(server.admin);

    a.get("/push?cname=alice&content=say+%22hi%22");
    let r = a.read_response();
    assert_eq!(normalize_date(&r.head), admin_head("200 OK", JS, 14));
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("data", "alice", 1, "say \\\"hi\\\""))),
    );

    a.get("/pub?cname=alice&content=%5Cu4f60&cb=jQuery1910_42");
    let r = a.read_response();
    assert_eq!(normalize_date(&r.head), admin_head("200 OK", JS, 30));
    assert_eq!(r.text(), "jQuery1910_42({\"type\":\"ok\"});\n");
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("data", "alice", 2, "\\u4f60"))),
    );

    // /push escapes quote, backslash, CR, LF and every other control byte; UTF-8 passes.
    a.get("/push?cname=alice&content=%09t%01%22%5C%0D%0A%E4%BD%A0%7F&cb=");
    assert_eq!(a.read_response().text(), "{\"type\":\"ok\"}\n");
    expect(
        &mut s,
        &chunk(&format!(
            "{}\n",
            msg("data", "alice", 3, "\\tt\\u0001\\\"\\\\\\r\\n你\u{7f}")
        )),
    );
    // /pub keeps valid escapes as they are.
    a.get("/pub?cname=alice&content=a%5C%22b%5Cn%5C%5C&cb=");
    assert_eq!(a.read_response().text(), "{\"type\":\"ok\"}\n");
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("data", "alice", 4, "a\\\"b\\n\\\\"))),
    );
    // Missing content is the empty string.
    a.get("/push?cname=alice");
    assert_eq!(a.read_response().status, 200);
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("data", "alice", 5, ""))),
    );

    // POST form body (the reference exchange).
    let mut h = stream(&server, "henry", 1);
    a.send(b"POST /pub HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 28\r\n\r\ncname=henry&content=hi+there");
    let r = a.read_response();
    assert_eq!(normalize_date(&r.head), admin_head("200 OK", JS, 14));
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
    expect(
        &mut h,
        &chunk(&format!("{}\n", msg("data", "henry", 1, "hi there"))),
    );
    // A body parameter wins over the query; the query fills in the rest.
    let body = "content=from+body";
    a.send(
        format!(
            "POST /push?cname=henry&content=from+query HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(a.read_response().status, 200);
    expect(
        &mut h,
        &chunk(&format!("{}\n", msg("data", "henry", 2, "from body"))),
    );
    // A form body is not character-checked: raw JSON and UTF-8 are read.
    let body = "cname=henry&content={\"a\":\"ü\"}";
    a.send(
        format!(
            "POST /push HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(a.read_response().status, 200);
    expect(
        &mut h,
        &chunk(&format!(
            "{}\n",
            msg("data", "henry", 3, "{\\\"a\\\":\\\"ü\\\"}")
        )),
    );

    // Raw non-RFC-3986 bytes in the query are still read.
    a.send(b"GET /push?cname=henry&content={a:1}|^ HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.read_response().status, 200);
    expect(
        &mut h,
        &chunk(&format!("{}\n", msg("data", "henry", 4, "{a:1}|^"))),
    );

    // Missing cname: the channel named "".
    let mut e = stream(&server, "", 1);
    a.get("/push?content=anon");
    assert_eq!(a.read_response().status, 200);
    expect(&mut e, &chunk(&format!("{}\n", msg("data", "", 1, "anon"))));
}

engine_tests!(pub_refuses_content_that_is_not_a_json_string_inside);
fn pub_refuses_content_that_is_not_a_json_string_inside(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut s = stream(&server, "p", 1);
    let mut a = Conn::open(server.admin);
    for content in ["a%22b", "a%5Cx", "tab%09", "%5Cu12", "%FF", "end%5C"] {
        a.get(&format!("/pub?cname=p&content={content}"));
        let r = a.read_response();
        assert_eq!(r.status, 400, "{content}: {}", r.text());
        assert!(r.text().contains("content"), "{content}: {}", r.text());
    }
    // Nothing was published: the next message is seq 1, on the same admin connection.
    a.get("/pub?cname=p&content=fine");
    assert_eq!(a.read_response().text(), "{\"type\":\"ok\"}\n");
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("data", "p", 1, "fine"))),
    );
}

engine_tests!(broadcast_reaches_every_channel);
fn broadcast_reaches_every_channel(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut a = Conn::open(server.admin);
    let mut sa = stream(&server, "a", 1);
    a.get("/push?cname=b&content=one");
    assert_eq!(a.read_response().status, 200);
    a.get("/sign?cname=c");
    assert_eq!(a.read_response().status, 200);

    a.get("/broadcast?content=to+%22all%22");
    let r = a.read_response();
    assert_eq!(normalize_date(&r.head), admin_head_default("200 OK", 3));
    assert_eq!(r.text(), "ok\n");
    // Live: broadcast with the channel's own seq, then next_seq.
    expect(
        &mut sa,
        &chunk(&format!("{}\n", msg("broadcast", "a", 1, "to \\\"all\\\""))),
    );
    expect(
        &mut sa,
        &chunk(&format!("{}\n", msg("next_seq", "a", 2, ""))),
    );
    // Channels without subscribers buffered it.
    for (cname, from, expected) in [
        (
            "b",
            1,
            vec![
                msg("data", "b", 1, "one"),
                msg("broadcast", "b", 2, "to \\\"all\\\""),
                msg("next_seq", "b", 3, ""),
            ],
        ),
        (
            "c",
            1,
            vec![
                msg("broadcast", "c", 1, "to \\\"all\\\""),
                msg("next_seq", "c", 2, ""),
            ],
        ),
    ] {
        let mut c = Conn::open(server.front);
        c.get(&format!("/sub?cname={cname}&seq={from}"));
        assert_eq!(c.read_head().0, 200);
        expect(&mut c, &chunk(&format!("[{}]\n", expected.join(","))));
        expect(&mut c, END);
    }
    // GET only.
    a.send(b"POST /broadcast HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\ncontent=x");
    let r = a.read_response();
    assert_eq!(
        normalize_date(&r.head),
        admin_head_default("405 Invalid Method", 0)
    );
    a.get("/info");
    assert!(a.read_response().text().contains("\"channels\": 3,"));
}

engine_tests!(close_and_clear);
fn close_and_clear(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut a = Conn::open(server.admin);
    for path in ["/close?cname=alice", "/clear?cname=alice"] {
        a.get(path);
        let r = a.read_response();
        let body = "channel[alice] not connected\n";
        assert_eq!(
            normalize_date(&r.head),
            admin_head("404 Not Found", UTF8, body.len()),
            "{path}"
        );
        assert_eq!(r.text(), body);
    }
    for i in 1..=3 {
        a.get(&format!("/push?cname=alice&content=m{i}"));
        assert_eq!(a.read_response().status, 200);
    }
    a.get("/clear?cname=alice");
    let r = a.read_response();
    assert_eq!(normalize_date(&r.head), admin_head("200 OK", UTF8, 5));
    assert_eq!(r.text(), "ok 4\n");
    // The history is gone; a stale seq is told where the channel is.
    let mut c = Conn::open(server.front);
    c.get("/sub?cname=alice&seq=2");
    assert_eq!(c.read_head().0, 200);
    expect(
        &mut c,
        &chunk(&format!("{}\n", msg("next_seq", "alice", 4, ""))),
    );
    expect(&mut c, END);
    a.get("/sign?cname=alice");
    assert!(a.read_response().text().contains("\"seq\":4,"));
    // Numbering continues after /clear.
    a.get("/push?cname=alice&content=m4");
    assert_eq!(a.read_response().status, 200);
    c.get("/sub?cname=alice&seq=2");
    assert_eq!(c.read_head().0, 200);
    expect(
        &mut c,
        &chunk(&format!("[{}]\n", msg("data", "alice", 4, "m4"))),
    );
    expect(&mut c, END);

    a.get("/close?cname=alice");
    let r = a.read_response();
    assert_eq!(normalize_date(&r.head), admin_head("200 OK", UTF8, 5));
    assert_eq!(r.text(), "ok 5\n");
    a.get("/check?cname=alice");
    assert_eq!(a.read_response().text(), "{}\n");
    a.get("/close?cname=alice");
    assert_eq!(a.read_response().status, 404);
}

engine_tests!(info_and_check);
fn info_and_check(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut a = Conn::open(server.admin);
    a.get("/info");
    let r = a.read_response();
    let body = "{\"version\": \"0.2.5\", \"channels\": 0, \"subscribers\": 0}\n";
    assert_eq!(
        normalize_date(&r.head),
        admin_head("200 OK", UTF8, body.len())
    );
    assert_eq!(r.text(), body);
    for name in ["alice", "bob", "carol"] {
        a.get(&format!("/sign?cname={name}"));
        assert_eq!(a.read_response().status, 200);
    }
    let _s = stream(&server, "alice", 1);
    let _t = stream(&server, "alice", 1);
    assert!(eventually(Duration::from_secs(10), || {
        a.get("/info");
        a.read_response().text()
            == "{\"version\": \"0.2.5\", \"channels\": 3, \"subscribers\": 2}\n"
    }));
    a.get("/info?cname=alice");
    let r = a.read_response();
    let body = "{\"cname\": \"alice\", \"subscribers\": 2}\n";
    assert_eq!(
        normalize_date(&r.head),
        admin_head("200 OK", UTF8, body.len())
    );
    assert_eq!(r.text(), body);
    a.get("/info?cname=bob");
    assert_eq!(
        a.read_response().text(),
        "{\"cname\": \"bob\", \"subscribers\": 0}\n"
    );
    // A missing channel: 0, no 404, and it is not created.
    a.get("/info?cname=nobody");
    assert_eq!(
        a.read_response().text(),
        "{\"cname\": \"nobody\", \"subscribers\": 0}\n"
    );
    // An empty cname is the global form.
    a.get("/info?cname=");
    assert!(a
        .read_response()
        .text()
        .starts_with("{\"version\": \"0.2.5\", \"channels\": 3,"));

    a.get("/check?cname=alice");
    let r = a.read_response();
    assert_eq!(normalize_date(&r.head), admin_head("200 OK", UTF8, 13));
    assert_eq!(r.text(), "{\"alice\": 1}\n");
    a.get("/check?cname=nobody");
    let r = a.read_response();
    assert_eq!(normalize_date(&r.head), admin_head("200 OK", UTF8, 3));
    assert_eq!(r.text(), "{}\n");
    // Names are JSON-escaped in these bodies.
    a.get("/sign?cname=q%22x");
    assert_eq!(a.read_response().status, 200);
    a.get("/check?cname=q%22x");
    assert_eq!(a.read_response().text(), "{\"q\\\"x\": 1}\n");
    a.get("/info?cname=q%22x");
    assert_eq!(
        a.read_response().text(),
        "{\"cname\": \"q\\\"x\", \"subscribers\": 0}\n"
    );
}

engine_tests!(psub_announces_creation_and_close);
fn psub_announces_creation_and_close(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut p = Conn::open(server.admin);
    p.get("/psub");
    let (status, head) = p.read_head();
    assert_eq!(status, 200);
    assert_eq!(
        normalize_date(&head),
        "HTTP/1.1 200 OK\r\nServer: icomet 0.2.5\r\nTransfer-Encoding: chunked\r\nDate: D\r\nContent-Type: text/html; charset=ISO-8859-1\r\n"
    );
    assert!(eventually(Duration::from_secs(10), || {
        get(server.admin, "/stats")
            .text()
            .contains("\"presence_clients\": 1,")
    }));
    get(server.admin, "/sign?cname=frank");
    expect(&mut p, "8\r\n1 frank\n\r\n");
    get(server.admin, "/close?cname=frank");
    expect(&mut p, "8\r\n0 frank\n\r\n");
    // Creation by /push and by a subscription is announced too; /sign of a live channel is not.
    get(server.admin, "/push?cname=gus&content=x");
    expect(&mut p, &chunk("1 gus\n"));
    get(server.admin, "/sign?cname=gus");
    let mut s = stream(&server, "hal", 1);
    expect(&mut p, &chunk("1 hal\n"));
    get(server.admin, "/close?cname=hal");
    expect(&mut p, &chunk("0 hal\n"));
    expect(&mut s, &chunk(&format!("{}\n", msg("close", "hal", 1, ""))));
    // HTTP/1.0: raw event lines, no chunks.
    let mut old = Conn::open(server.admin);
    old.send(b"GET /psub HTTP/1.0\r\n\r\n");
    expect(
        &mut old,
        "HTTP/1.0 200 OK\r\nServer: icomet 0.2.5\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n",
    );
    assert!(eventually(Duration::from_secs(10), || {
        get(server.admin, "/stats")
            .text()
            .contains("\"presence_clients\": 2,")
    }));
    get(server.admin, "/sign?cname=ian");
    expect(&mut old, "1 ian\n");
    expect(&mut p, &chunk("1 ian\n"));
}

engine_tests!(admin_allow_and_deny_by_source_address);
fn admin_allow_and_deny_by_source_address(engine: &'static str) {
    const CONFIG: &str = "admin:\n\tallow: 127.0.0.2\n\tdeny: all\n";
    let server = Server::start(Opts::new(engine).config(CONFIG));
    // From 127.0.0.1: refused with the exact 403 and closed.
    let mut c = conn_from("127.0.0.1", server.admin);
    c.get("/info");
    let (status, head) = c.read_head();
    assert_eq!(status, 403);
    assert_eq!(
        normalize_date(&head),
        "HTTP/1.1 403 Forbidden\r\nServer: icomet 0.2.5\r\nConnection: Close\r\nDate: D\r\nContent-Length: 0\r\nContent-Type: text/html; charset=ISO-8859-1\r\n"
    );
    assert!(c.closed_by_peer());
    assert!(c.buf.is_empty(), "{:?}", String::from_utf8_lossy(&c.buf));
    // Publishing is refused too, and nothing is created.
    let mut c = conn_from("127.0.0.1", server.admin);
    c.get("/push?cname=x&content=y");
    assert_eq!(c.read_head().0, 403);
    // Unknown admin paths are 404 even for refused addresses.
    let mut c = conn_from("127.0.0.1", server.admin);
    c.get("/nope");
    assert_eq!(c.read_response().status, 404);

    // From 127.0.0.2: allowed, on a keep-alive connection.
    let mut ok = conn_from("127.0.0.2", server.admin);
    ok.get("/check?cname=x");
    assert_eq!(ok.read_response().text(), "{}\n");
    ok.get("/push?cname=x&content=y");
    assert_eq!(ok.read_response().text(), "{\"type\":\"ok\"}\n");
    ok.get("/info");
    let r = ok.read_response();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"channels\": 1,"), "{}", r.text());
    // The front port has no filter.
    let r = get(server.front, "/ping");
    assert_eq!(r.status, 200);
}

engine_tests!(admin_allow_list_without_deny_rejects_others);
fn admin_allow_list_without_deny_rejects_others(engine: &'static str) {
    const CONFIG: &str = "admin:\n\tallow: 127.0.0.1\n";
    let server = Server::start(Opts::new(engine).config(CONFIG));
    let mut c = conn_from("127.0.0.1", server.admin);
    c.get("/info");
    assert_eq!(c.read_response().status, 200);
    let mut c = conn_from("127.0.0.2", server.admin);
    c.get("/info");
    assert_eq!(c.read_head().0, 403);
    assert!(c.closed_by_peer());
}

engine_tests!(wrong_methods_and_head);
fn wrong_methods_and_head(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut a = Conn::open(server.admin);
    for req in [
        "PUT /pub?cname=x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
        "DELETE /push?cname=x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        "PUT /broadcast?content=x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    ] {
        a.send(req.as_bytes());
        let r = a.read_response();
        assert_eq!(
            normalize_date(&r.head),
            admin_head_default("405 Invalid Method", 0),
            "{req}"
        );
        assert!(r.body.is_empty());
    }
    // Nothing was published or created by them.
    a.get("/check?cname=x");
    assert_eq!(a.read_response().text(), "{}\n");
    // Other admin endpoints take any allowed method.
    a.send(b"PUT /sign?cname=x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(a.read_response().status, 200);
    a.send(b"DELETE /check?cname=x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.read_response().text(), "{\"x\": 1}\n");

    // HEAD: the head (with the body's length) and no body; the next reply follows cleanly.
    a.send(b"HEAD /info HTTP/1.1\r\nHost: t\r\n\r\n");
    let (status, head) = a.read_head();
    assert_eq!(status, 200);
    let body = "{\"version\": \"0.2.5\", \"channels\": 1, \"subscribers\": 0}\n";
    assert_eq!(
        normalize_date(&head),
        admin_head("200 OK", UTF8, body.len())
    );
    a.send(b"HEAD /check?cname=x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.read_head().0, 200);
    a.get("/info");
    let r = a.read_response();
    assert_eq!(r.text(), body);
    assert!(a.buf.is_empty());
    // HEAD on /pub is not an allowed method.
    a.send(b"HEAD /pub?cname=x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.read_head().0, 405);
    a.get("/info");
    assert_eq!(a.read_response().text(), body);
}

engine_tests!(bad_parameters_get_400_and_the_connection_goes_on);
fn bad_parameters_get_400_and_the_connection_goes_on(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--max-cname-length").arg("8"));
    let mut a = Conn::open(server.admin);
    for (path, word) in [
        ("/sign?cname=123456789", "cname"),
        ("/push?cname=123456789&content=x", "cname"),
        ("/close?cname=123456789", "cname"),
        ("/info?cname=123456789", "cname"),
        ("/sign?cname=a&cb=alert(1)", "cb"),
        ("/push?cname=a&content=x&cb=a%20b", "cb"),
        ("/sign?cname=a&expires=soon", "expires"),
    ] {
        a.get(path);
        let r = a.read_response();
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert!(
            r.text().contains(word) && r.text().ends_with('\n'),
            "{path}: {:?}",
            r.text()
        );
    }
    a.get("/info");
    assert_eq!(
        a.read_response().text(),
        "{\"version\": \"0.2.5\", \"channels\": 0, \"subscribers\": 0}\n"
    );
    a.get("/sign?cname=12345678&cb=ok.cb$1");
    let r = a.read_response();
    assert!(
        r.text()
            .starts_with("ok.cb$1({\"type\":\"sign\",\"cname\":\"12345678\""),
        "{}",
        r.text()
    );
}

engine_tests!(admin_400_replies_start_with_the_server_header);
fn admin_400_replies_start_with_the_server_header(engine: &'static str) {
    // Protocol §5: every admin reply starts with `Server: icomet 0.2.5`, the 400s included.
    let server = Server::start(Opts::new(engine));
    let r = get(server.admin, "/sign?cname=a&expires=soon");
    assert_eq!(r.status, 400);
    let body = "bad request: expires must be an integer\n";
    assert_eq!(r.text(), body);
    assert_eq!(
        normalize_date(&r.head),
        admin_head("400 Bad Request", "text/plain; charset=utf-8", body.len())
    );
}

engine_tests!(http10_admin_replies);
fn http10_admin_replies(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.admin);
    c.send(b"GET /push?cname=z&content=1 HTTP/1.0\r\n\r\n");
    assert_eq!(
        String::from_utf8_lossy(&c.read_to_close()),
        "HTTP/1.0 200 OK\r\nServer: icomet 0.2.5\r\nContent-Type: text/javascript; charset=utf-8\r\n\r\n{\"type\":\"ok\"}\n"
    );
    let mut c = Conn::open(server.admin);
    c.send(b"GET /check?cname=z HTTP/1.0\r\n\r\n");
    assert_eq!(
        String::from_utf8_lossy(&c.read_to_close()),
        "HTTP/1.0 200 OK\r\nServer: icomet 0.2.5\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{\"z\": 1}\n"
    );
    // HTTP/1.0 keep-alive: one Connection header, a real Content-Length, and the connection
    // stays open for the next request.
    let mut c = Conn::open(server.admin);
    for _ in 0..2 {
        c.send(b"GET /check?cname=z HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let (_, head) = c.read_head();
        assert_eq!(
            head,
            "HTTP/1.0 200 OK\r\nServer: icomet 0.2.5\r\nContent-Type: text/html; charset=utf-8\r\nConnection: keep-alive\r\nContent-Length: 9\r\n\r\n"
        );
        assert_eq!(c.read_exact_n(9), b"{\"z\": 1}\n");
    }
}

engine_tests!(parameter_parsing_differences_from_icomet);
fn parameter_parsing_differences_from_icomet(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut s = stream(&server, "x", 1);
    let mut a = Conn::open(server.admin);
    // %00 is kept (escaped), not a truncation.
    a.get("/push?cname=x&content=a%00b");
    assert_eq!(a.read_response().status, 200);
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("data", "x", 1, "a\\u0000b"))),
    );
    // A piece without '=' does not make the other parameters vanish.
    a.get("/push?cname=x&flag&content=y");
    assert_eq!(a.read_response().status, 200);
    expect(&mut s, &chunk(&format!("{}\n", msg("data", "x", 2, "y"))));
    // Names are case-insensitive and the first occurrence wins.
    a.get("/push?CNAME=x&Content=first&content=second");
    assert_eq!(a.read_response().status, 200);
    expect(
        &mut s,
        &chunk(&format!("{}\n", msg("data", "x", 3, "first"))),
    );
    a.get("/check?cname=");
    assert_eq!(a.read_response().text(), "{}\n");
}

engine_tests!(admin_filter_entries_match_at_dot_boundaries_and_never_shadow);
fn admin_filter_entries_match_at_dot_boundaries_and_never_shadow(engine: &'static str) {
    const CONFIG: &str =
        "admin:\n\tallow: 127.0.0.1\n\tallow: 127.0.0.10\n\tallow: 127.0.1\n\tallow: 127.1.0.0/16\n\tdeny: all\n";
    let server = Server::start(Opts::new(engine).config(CONFIG));
    for (source, allowed) in [
        ("127.0.0.1", true),
        ("127.0.0.10", true),
        ("127.0.0.2", false),
        ("127.0.1.5", true),
        ("127.0.10.1", false),
        ("127.1.200.3", true),
        ("127.2.0.1", false),
    ] {
        let mut c = conn_from(source, server.admin);
        c.get("/check?cname=q");
        let r = c.read_response();
        let want = if allowed { 200 } else { 403 };
        assert_eq!(r.status, want, "{source}");
    }
}

engine_tests!(stats_lists_every_worker);
fn stats_lists_every_worker(engine: &'static str) {
    let server = Server::start(Opts::new(engine).threads(2));
    let _s = stream(&server, "st", 1);
    let r = get(server.admin, "/stats");
    assert_eq!(r.status, 200);
    let text = r.text();
    let workers = text
        .split("\"workers\": [")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(workers.matches("\"connections\": ").count(), 2, "{text}");
    assert_eq!(workers.matches("\"subscribers\": ").count(), 2, "{text}");
    assert!(
        text.starts_with("{\"channels\": 1, \"subscribers\": 1,"),
        "{text}"
    );
}
