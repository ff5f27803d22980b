//! Helpers for the front-port tests: expected message and chunk bytes, subscription heads, and
//! waiting for subscriber counts. Depends on the parent support module.
#![allow(dead_code)]

use super::*;
use std::net::SocketAddr;
use std::time::Duration;

/// The JSON object of one message (protocol §3).
pub fn msg(kind: &str, cname: &str, seq: i64, content: &str) -> String {
    format!("{{\"type\":\"{kind}\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"{content}\"}}")
}

/// One HTTP chunk holding `body`.
pub fn chunk(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n", body.len())
}

pub const END: &str = "0\r\n\r\n";

/// The head of a subscription reply to `path` with its Date normalised (protocol §4.2; rcomet
/// serves `/iframe` as HTML so browsers run its scripts).
pub fn sub_head(path: &str, ok: bool, http11: bool) -> String {
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
pub fn expect(c: &mut Conn, expected: &str) {
    let got = c.read_exact_n(expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

/// Sends `GET path` on `c` and checks the successful subscription head.
pub fn subscribe_on(c: &mut Conn, path: &str) {
    c.get(path);
    let (_, head) = c.read_head();
    assert_eq!(normalize_date(&head), sub_head(path, true, true), "{path}");
}

/// Opens a subscription on a new connection and checks its head.
pub fn subscribe(front: SocketAddr, path: &str) -> Conn {
    let mut c = Conn::open(front);
    subscribe_on(&mut c, path);
    c
}

/// One admin request on a fresh connection; asserts 200.
pub fn admin_ok(server: &Server, path: &str) -> Response {
    let r = get(server.admin, path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r
}

/// Number of subscribers of `cname` as /info reports it.
pub fn info_subscribers(server: &Server, cname: &str) -> usize {
    info_subscribers_at(server.admin, cname)
}

/// [`info_subscribers`] of the server whose admin port is `admin`.
pub fn info_subscribers_at(admin: SocketAddr, cname: &str) -> usize {
    let r = get(admin, &format!("/info?cname={cname}"));
    assert_eq!(r.status, 200, "/info: {}", r.text());
    let body = r.text();
    let tail = body.rsplit("\"subscribers\": ").next().unwrap_or("");
    tail.trim_end_matches(['}', '\n'])
        .parse()
        .unwrap_or(usize::MAX)
}

pub fn wait_subscribers(server: &Server, cname: &str, n: usize) {
    wait_subscribers_at(server.admin, cname, n);
}

/// [`wait_subscribers`] on the server whose admin port is `admin`.
pub fn wait_subscribers_at(admin: SocketAddr, cname: &str, n: usize) {
    assert!(
        eventually(Duration::from_secs(10), || info_subscribers_at(
            admin, cname
        ) == n),
        "{cname} never had {n} subscribers"
    );
}
