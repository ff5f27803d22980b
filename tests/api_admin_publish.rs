//! Publishing on the admin port, byte for byte against the iComet replies: /sign (JSON, JSONP,
//! expires, seq, tokens), /push and /pub (GET and POST form bodies, escaping, /pub's content check),
//! /broadcast, and how query parameters are read where rcomet differs from iComet.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use support::admin::{admin_head, admin_head_default, stream, JS, UTF8};
use support::front::{chunk, expect, msg, END};
use support::*;

/// The channel incarnation at the end of a /sign reply body (an rcomet addition).
fn epoch_of(body: &str) -> u32 {
    body.split("\"epoch\":")
        .nth(1)
        .and_then(|e| e.split('}').next())
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("no epoch in {body:?}"))
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

engine_tests!(sign_json_jsonp_expires_and_seq);
fn sign_json_jsonp_expires_and_seq(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut a = Conn::open(server.admin);
    a.get("/sign?cname=alice");
    let r = a.read_response();
    let token = token_of(&r.text());
    let epoch = epoch_of(&r.text());
    let body = format!(
        "{{\"type\":\"sign\",\"cname\":\"alice\",\"seq\":1,\"token\":\"{token}\",\"expires\":30,\"sub_timeout\":30,\"epoch\":{epoch}}}\n"
    );
    assert_eq!(
        normalize_date(&r.head),
        admin_head("200 OK", UTF8, body.len())
    );
    assert_eq!(r.text(), body);

    a.get("/sign?cname=alice&expires=60&cb=icomet_cb_0");
    let r = a.read_response();
    let body = format!(
        "icomet_cb_0({{\"type\":\"sign\",\"cname\":\"alice\",\"seq\":1,\"token\":\"{token}\",\"expires\":60,\"sub_timeout\":30,\"epoch\":{epoch}}});\n"
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
            format!("{{\"type\":\"sign\",\"cname\":\"alice\",\"seq\":1,\"token\":\"{token}\",\"expires\":30,\"sub_timeout\":30,\"epoch\":{epoch}}}\n"),
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
