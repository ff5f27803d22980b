//! CORS on the front port end to end: by default every request without `Origin` gets iComet's
//! bytes (only `/sse` says `Access-Control-Allow-Origin: *`), a request with `Origin` is answered
//! with `*`; with `front.cors_origins` listing origins the matching one is echoed with
//! `Vary: Origin` (and `Access-Control-Allow-Credentials` when configured), on subscriptions
//! answered on any worker; `OPTIONS` preflights get 204 on the front port, 501 on the admin port.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use support::front::*;
use support::*;

const ACAO_ANY: &str = "Access-Control-Allow-Origin: *\r\n";

/// `GET path` with an `Origin` header.
fn get_from(c: &mut Conn, path: &str, origin: &str) {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n\r\n").as_bytes());
}

/// The successful subscription head for `path` with `cors` lines instead of the default ones.
fn head_with(path: &str, cors: &str) -> String {
    let plain = sub_head(path, true, true).replace(ACAO_ANY, "");
    plain.replacen(
        "Connection: keep-alive",
        &format!("{cors}Connection: keep-alive"),
        1,
    )
}

engine_tests!(default_replies_answer_an_origin_with_star_and_keep_icomet_bytes_otherwise);
fn default_replies_answer_an_origin_with_star_and_keep_icomet_bytes_otherwise(
    engine: &'static str,
) {
    let server = Server::start(Opts::new(engine));
    // Without Origin: iComet's heads (checked by subscribe_on), /ping without CORS.
    let mut c = subscribe(server.front, "/sse?cname=o1");
    expect(
        &mut c,
        &chunk(&format!("data: {}\n\n", msg("next_seq", "o1", 1, ""))),
    );
    let r = get(server.front, "/ping");
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);

    // With Origin: /sse is unchanged, the others say `*`.
    let mut c = Conn::open(server.front);
    get_from(&mut c, "/sse?cname=o1", "https://app.example");
    let (_, head) = c.read_head();
    assert_eq!(normalize_date(&head), sub_head("/sse", true, true));
    for path in ["/sub?cname=o1", "/stream?cname=o1", "/iframe?cname=o1"] {
        let mut c = Conn::open(server.front);
        get_from(&mut c, path, "https://app.example");
        let (_, head) = c.read_head();
        assert_eq!(normalize_date(&head), head_with(path, ACAO_ANY), "{path}");
    }
    let mut c = Conn::open(server.front);
    get_from(&mut c, "/ping?cb=p", "null");
    let r = c.read_response();
    assert_eq!(
        normalize_date(&r.head),
        "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nDate: D\r\nContent-Length: 37\r\nContent-Type: text/html; charset=ISO-8859-1\r\n"
    );
    // A refused method too, so a browser can read the status.
    let mut c = Conn::open(server.front);
    c.send(b"POST /sub HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\nContent-Length: 0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 405);
    assert_eq!(
        r.header("Access-Control-Allow-Origin").as_deref(),
        Some("*")
    );
}

engine_tests!(preflights_get_204_on_the_front_port);
fn preflights_get_204_on_the_front_port(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.front);
    c.send(
        b"OPTIONS /sse?cname=p HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\
          Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: last-event-id\r\n\r\n",
    );
    let (status, head) = c.read_head();
    assert_eq!(status, 204);
    assert_eq!(
        normalize_date(&head),
        "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n\
         Access-Control-Allow-Methods: GET, OPTIONS\r\nAccess-Control-Allow-Headers: last-event-id\r\n\
         Access-Control-Max-Age: 86400\r\nDate: D\r\n"
    );
    // No body, and the connection goes on.
    c.get("/ping?cb=after");
    let r = c.read_response();
    assert_eq!(r.text(), "after({\"type\":\"ping\",\"sub_timeout\":30});\n");
    // /ping too; HTTP/1.0 with Connection: close is answered and closed.
    let mut c = Conn::open(server.front);
    c.send(b"OPTIONS /ping HTTP/1.0\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n");
    let all = String::from_utf8_lossy(&c.read_to_close()).into_owned();
    assert!(
        all.starts_with("HTTP/1.0 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n"),
        "{all}"
    );
    assert!(
        all.ends_with("Access-Control-Max-Age: 86400\r\nConnection: close\r\n\r\n"),
        "{all}"
    );
    // Unknown paths stay 404; nobody was subscribed by a preflight.
    let mut c = Conn::open(server.front);
    c.send(b"OPTIONS /nope HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n");
    assert_eq!(c.read_response().status, 404);
    assert_eq!(info_subscribers(&server, "p"), 0);
    // The admin port has no preflight: iComet's 501.
    let mut c = Conn::open(server.admin);
    c.send(b"OPTIONS /info HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 501);
    assert!(c.closed_by_peer());
}

const LIST: &str =
    "front:\n\tcors_origins: https://app.example, http://localhost:3000\n\tcors_credentials: yes\n\tcors_max_age: 600\n";

engine_tests!(a_list_of_origins_is_echoed_with_vary_and_credentials);
fn a_list_of_origins_is_echoed_with_vary_and_credentials(engine: &'static str) {
    let server = Server::start(Opts::new(engine).threads(2).config(LIST));
    let allowed = "Access-Control-Allow-Origin: http://localhost:3000\r\n\
                   Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n";
    // Several channels, so that some live on the other worker (their subscribers are handed over
    // before the head is written there).
    for n in 0..8 {
        for path in [format!("/sse?cname=l{n}"), format!("/sub?cname=l{n}&seq=1")] {
            let mut c = Conn::open(server.front);
            get_from(&mut c, &path, "http://localhost:3000");
            let (_, head) = c.read_head();
            assert_eq!(normalize_date(&head), head_with(&path, allowed), "{path}");
        }
    }
    // Another origin, or none: only `Vary: Origin`, and no `*` even on /sse.
    for origin in [Some("https://evil.example"), None] {
        let mut c = Conn::open(server.front);
        match origin {
            Some(o) => get_from(&mut c, "/sse?cname=l0", o),
            None => c.get("/sse?cname=l0"),
        }
        let (_, head) = c.read_head();
        assert_eq!(normalize_date(&head), head_with("/sse", "Vary: Origin\r\n"));
    }
    let mut c = Conn::open(server.front);
    get_from(&mut c, "/ping", "https://app.example");
    let r = c.read_response();
    assert_eq!(
        r.header("Access-Control-Allow-Origin").as_deref(),
        Some("https://app.example")
    );
    assert_eq!(
        r.header("Access-Control-Allow-Credentials").as_deref(),
        Some("true")
    );
    assert_eq!(r.header("Vary").as_deref(), Some("Origin"));
    // Preflights: the allowed origin gets the methods, another one nothing to go on.
    let mut c = Conn::open(server.front);
    c.send(b"OPTIONS /stream HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n");
    let (_, head) = c.read_head();
    assert_eq!(
        normalize_date(&head),
        "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: https://app.example\r\n\
         Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n\
         Access-Control-Allow-Methods: GET, OPTIONS\r\n\
         Access-Control-Allow-Headers: Cache-Control, Content-Type, Last-Event-ID, X-Requested-With\r\n\
         Access-Control-Max-Age: 600\r\nDate: D\r\n"
    );
    c.send(b"OPTIONS /stream HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n\r\n");
    let (status, head) = c.read_head();
    assert_eq!(status, 204);
    assert_eq!(
        normalize_date(&head),
        "HTTP/1.1 204 No Content\r\nVary: Origin\r\nDate: D\r\n"
    );
}

#[test]
fn credentials_with_star_do_not_start() {
    let dir = TempDir::new("cors");
    let path = dir.0.join("icomet.conf");
    std::fs::write(&path, "front:\n\tcors_credentials: yes\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcomet"))
        .arg(&path)
        .output()
        .expect("run rcomet");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("front.cors_credentials"), "{err}");
}
