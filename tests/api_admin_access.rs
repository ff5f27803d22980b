//! The admin port's allow/deny filter by source address: the exact 403 and close, allow lists with
//! and without `deny: all`, and entries that match at dot boundaries and never shadow each other.
//! The front port has no filter.
//!
//! Depends on tests/support only (the real binary over raw sockets), plus socket2 to bind a client
//! to another loopback address.
mod support;

use support::*;

engine_tests!(admin_allow_and_deny_by_source_address);
fn admin_allow_and_deny_by_source_address(engine: &'static str) {
    const CONFIG: &str = "admin:\n\tallow: 127.0.0.2\n\tdeny: all\n";
    let server = Server::start(Opts::new(engine).config(CONFIG));
    // From 127.0.0.1: refused with the exact 403 and closed.
    let mut c = Conn::open_from("127.0.0.1", server.admin);
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
    let mut c = Conn::open_from("127.0.0.1", server.admin);
    c.get("/push?cname=x&content=y");
    assert_eq!(c.read_head().0, 403);
    // Unknown admin paths are 404 even for refused addresses.
    let mut c = Conn::open_from("127.0.0.1", server.admin);
    c.get("/nope");
    assert_eq!(c.read_response().status, 404);

    // From 127.0.0.2: allowed, on a keep-alive connection.
    let mut ok = Conn::open_from("127.0.0.2", server.admin);
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
    let mut c = Conn::open_from("127.0.0.1", server.admin);
    c.get("/info");
    assert_eq!(c.read_response().status, 200);
    let mut c = Conn::open_from("127.0.0.2", server.admin);
    c.get("/info");
    assert_eq!(c.read_head().0, 403);
    assert!(c.closed_by_peer());
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
        let mut c = Conn::open_from(source, server.admin);
        c.get("/check?cname=q");
        let r = c.read_response();
        let want = if allowed { 200 } else { 403 };
        assert_eq!(r.status, want, "{source}");
    }
}
