//! Channel operations and reports on the admin port, byte for byte against the iComet replies:
//! /close and /clear, /info and /check, the /psub presence stream (creation and close, HTTP/1.1
//! chunks and HTTP/1.0 lines), and /stats listing every worker.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use std::time::Duration;
use support::admin::{admin_head, stream, UTF8};
use support::front::{chunk, expect, msg, END};
use support::*;

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
