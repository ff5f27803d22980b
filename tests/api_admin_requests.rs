//! Admin requests outside the happy path: wrong methods (405) and HEAD, bad parameters (400 with a
//! reason, the connection goes on, the Server header first), and HTTP/1.0 replies with and
//! without keep-alive.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use support::admin::{admin_head, admin_head_default, UTF8};
use support::*;

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
