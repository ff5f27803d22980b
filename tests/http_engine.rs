//! The HTTP engine seen from a raw socket: keep-alive and `Connection: close`, pipelining,
//! HTTP/1.0, every error status with its exact bytes (400, 501, 404, 431, 413, 405), request
//! bodies (Content-Length, chunked, `Expect: 100-continue`) and a 200 KB message carried from a
//! POST body to a `/stream` subscriber. Depends only on `tests/support`.
mod support;

use std::time::Duration;
use support::*;

/// The `/ping` body for callback `cb` and the default polling timeout.
fn ping_body(cb: &str) -> String {
    format!("{cb}({{\"type\":\"ping\",\"sub_timeout\":30}});\n")
}

/// The libevent-style error page body for `code` (the 400/501/413/431/408 shape).
fn error_body(code: u16, reason: &str) -> String {
    format!("<HTML><HEAD>\n<TITLE>{code} {reason}</TITLE>\n</HEAD><BODY>\n<H1>{reason}</H1>\n</BODY></HTML>\n")
}

/// The head every HTTP/1.1 error page carries (Date normalised), ending with one CRLF.
fn error_head(code: u16, reason: &str, body_len: usize) -> String {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/html\r\nConnection: close\r\nDate: D\r\nContent-Length: {body_len}\r\n"
    )
}

/// Reads one response and checks it is the exact error page for `code`, then that the server
/// closes the connection.
fn expect_error_page(c: &mut Conn, code: u16, reason: &str, what: &str) {
    let r = c.read_response();
    let body = error_body(code, reason);
    assert_eq!(r.status, code, "{what}: {:?}", r.head);
    assert_eq!(
        normalize_date(&r.head),
        error_head(code, reason, body.len()),
        "{what}"
    );
    assert_eq!(r.text(), body, "{what}");
    assert!(
        c.closed_by_peer(),
        "{what}: connection left open after {code}"
    );
}

/// A fresh connection still gets a correct `/ping` answer.
fn assert_still_fine(server: &Server, after: &str) {
    let r = get(server.front, "/ping?cb=ok");
    assert_eq!(r.status, 200, "server unhealthy after {after}");
    assert_eq!(r.text(), ping_body("ok"), "server unhealthy after {after}");
}

/// Sends a POST with a Content-Length body to the admin port and returns the reply.
fn post_form(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> Response {
    let mut c = Conn::open(addr);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    c.send(&req);
    c.read_response()
}

/// Opens `/stream?cname=<cname>`, reads its head and `next_seq` chunk, and waits until the
/// admin port reports the subscriber.
fn subscribe_stream(server: &Server, cname: &str) -> Conn {
    let mut c = Conn::open(server.front);
    c.get(&format!("/stream?cname={cname}"));
    let (status, head) = c.read_head();
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let first = c.read_chunk().expect("next_seq chunk");
    assert_eq!(
        String::from_utf8_lossy(&first),
        format!("{{\"type\":\"next_seq\",\"cname\":\"{cname}\",\"seq\":1,\"content\":\"\"}}\n")
    );
    let info = format!("/info?cname={cname}");
    let want = format!("{{\"cname\": \"{cname}\", \"subscribers\": 1}}\n");
    assert!(
        eventually(Duration::from_secs(5), || get(server.admin, &info).text()
            == want),
        "subscriber of {cname} never registered"
    );
    c
}

/// Reads chunks until one whole message line (ending in `\n`) has arrived.
fn read_message(c: &mut Conn) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        let chunk = c.read_chunk().expect("stream ended before a message");
        line.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&line).into_owned()
}

engine_tests!(keep_alive_serves_many_requests_and_connection_close_is_honoured);
fn keep_alive_serves_many_requests_and_connection_close_is_honoured(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.front);
    for i in 0..5 {
        let cb = format!("k{i}");
        c.get(&format!("/ping?cb={cb}"));
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), ping_body(&cb));
        assert_eq!(r.header("Connection"), None, "{}", r.head);
    }
    c.send(b"GET /ping?cb=last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), ping_body("last"));
    assert_eq!(
        r.header("Connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    assert!(
        c.closed_by_peer(),
        "server kept the connection after Connection: close"
    );
    assert_still_fine(&server, "Connection: close");
}

engine_tests!(pipelined_requests_in_one_write_are_answered_in_order);
fn pipelined_requests_in_one_write_are_answered_in_order(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.front);
    let mut wire = Vec::new();
    for i in 1..=10 {
        let req = match i % 3 {
            // A POST with a Content-Length body the parser must step over.
            1 => format!("POST /ping?cb=a{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\nx=1&y=2"),
            // A POST with a chunked body.
            2 => format!(
                "POST /ping?cb=a{i} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nx=1\r\n0\r\n\r\n"
            ),
            _ => format!("GET /ping?cb=a{i} HTTP/1.1\r\nHost: t\r\n\r\n"),
        };
        wire.extend_from_slice(req.as_bytes());
    }
    c.send(&wire);
    for i in 1..=10 {
        let r = c.read_response();
        assert_eq!(r.status, 200, "response {i}: {}", r.head);
        assert_eq!(
            r.text(),
            ping_body(&format!("a{i}")),
            "response {i} out of order"
        );
    }
    // The connection is still usable after the batch.
    c.get("/ping?cb=after");
    assert_eq!(c.read_response().text(), ping_body("after"));
}

engine_tests!(http10_closes_unless_keep_alive_is_asked);
fn http10_closes_unless_keep_alive_is_asked(engine: &'static str) {
    let server = Server::start(Opts::new(engine));

    let mut c = Conn::open(server.front);
    c.send(b"GET /ping?cb=p HTTP/1.0\r\n\r\n");
    let all = c.read_to_close();
    // Byte for byte as the reference: no Date, no Content-Length, then close.
    assert_eq!(
        String::from_utf8_lossy(&all),
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n{}",
            ping_body("p")
        )
    );

    let mut c = Conn::open(server.front);
    for i in 0..3 {
        c.send(format!("GET /ping?cb=q{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        let r = c.read_response();
        assert!(r.head.starts_with("HTTP/1.0 200 OK\r\n"), "{:?}", r.head);
        assert_eq!(
            r.header("Connection").as_deref(),
            Some("keep-alive"),
            "{:?}",
            r.head
        );
        assert_eq!(
            r.header("Content-Length"),
            Some(ping_body(&format!("q{i}")).len().to_string())
        );
        assert_eq!(r.text(), ping_body(&format!("q{i}")));
    }
    // A keep-alive HTTP/1.0 connection then closes when the next request does not ask again.
    c.send(b"GET /ping?cb=end HTTP/1.0\r\n\r\n");
    let all = c.read_to_close();
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.0 200 OK\r\n"));
    assert!(all.ends_with(ping_body("end").as_bytes()));
}

engine_tests!(malformed_request_line_is_400_and_closes);
fn malformed_request_line_is_400_and_closes(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let cases: [&[u8]; 5] = [
        b"hello\r\n\r\n",
        b"GET /ping\r\n\r\n",
        b"GET  /ping HTTP/1.1\r\n\r\n",
        b"GET /ping HTTP/2.0\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nNoColonHere\r\n\r\n",
    ];
    for req in cases {
        let what = format!("{:?}", String::from_utf8_lossy(req));
        let mut c = Conn::open(server.front);
        c.send(req);
        expect_error_page(&mut c, 400, "Bad Request", &what);
        assert_still_fine(&server, &what);
    }
    assert_eq!(error_body(400, "Bad Request").len(), 94);
}

engine_tests!(unsupported_methods_are_501_and_close);
fn unsupported_methods_are_501_and_close(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    for (addr, req) in [
        // OPTIONS is a CORS preflight on the front port (tests/api_cors.rs), 501 on the admin port.
        (server.front, "PATCH /ping HTTP/1.1\r\nHost: t\r\n\r\n"),
        (server.front, "BREW /ping HTTP/1.1\r\nHost: t\r\n\r\n"),
        (server.admin, "OPTIONS /info HTTP/1.1\r\nHost: t\r\n\r\n"),
        (server.admin, "OPTIONS /nope HTTP/1.1\r\nHost: t\r\n\r\n"),
    ] {
        let mut c = Conn::open(addr);
        c.send(req.as_bytes());
        expect_error_page(&mut c, 501, "Not Implemented", req);
        assert_still_fine(&server, req);
    }
    assert_eq!(error_body(501, "Not Implemented").len(), 102);
}

engine_tests!(unknown_path_is_404_with_the_escaped_uri_and_closes);
fn unknown_path_is_404_with_the_escaped_uri_and_closes(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    for (addr, uri, escaped) in [
        (server.front, "/foo?a=1&b=<2>", "/foo?a=1&amp;b=&lt;2&gt;"),
        (server.front, "/sub/?q=\"'", "/sub/?q=&quot;&#039;"),
        // Admin routes do not exist on the front port.
        (server.front, "/info", "/info"),
        (server.admin, "/nope", "/nope"),
    ] {
        let mut c = Conn::open(addr);
        c.get(uri);
        let r = c.read_response();
        let body = format!(
            "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>The requested URL {escaped} was not found on this server.</p></body></html>\n"
        );
        assert_eq!(r.status, 404, "{uri}");
        assert_eq!(
            normalize_date(&r.head),
            error_head(404, "Not Found", body.len()),
            "{uri}"
        );
        assert_eq!(r.text(), body, "{uri}");
        assert!(c.closed_by_peer(), "{uri}: connection left open after 404");
        assert_still_fine(&server, uri);
    }
}

engine_tests!(request_head_over_max_header_size_is_431);
fn request_head_over_max_header_size_is_431(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--max-header-size").arg("4096"));
    // A head just under the limit is fine.
    let mut c = Conn::open(server.front);
    let filler = "v".repeat(3900);
    c.send(format!("GET /ping?cb=big HTTP/1.1\r\nHost: t\r\nX-Fill: {filler}\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 200, "a 3.9 KB head was refused: {}", r.head);
    assert_eq!(r.text(), ping_body("big"));

    // A complete head over the limit.
    let mut c = Conn::open(server.front);
    let filler = "v".repeat(5000);
    c.send(format!("GET /ping HTTP/1.1\r\nHost: t\r\nX-Fill: {filler}\r\n\r\n").as_bytes());
    expect_error_page(
        &mut c,
        431,
        "Request Header Fields Too Large",
        "complete 5 KB head",
    );
    assert_still_fine(&server, "431 (complete head)");

    // A head that never ends is refused as soon as it passes the limit.
    let mut c = Conn::open(server.front);
    c.send(format!("GET /ping HTTP/1.1\r\nHost: t\r\nX-Fill: {filler}").as_bytes());
    expect_error_page(
        &mut c,
        431,
        "Request Header Fields Too Large",
        "unfinished 5 KB head",
    );
    assert_still_fine(&server, "431 (unfinished head)");

    // A request line that alone passes the limit is 414 (RFC 9110: URI Too Long).
    let mut c = Conn::open(server.front);
    c.get(&format!("/ping?cb=x&pad={filler}"));
    expect_error_page(&mut c, 414, "URI Too Long", "5 KB URI");
    assert_still_fine(&server, "414 (long URI)");
}

engine_tests!(request_body_over_max_body_size_is_413);
fn request_body_over_max_body_size_is_413(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--max-body-size").arg("1024"));
    // Exactly at the limit is accepted.
    let content = "y".repeat(1024 - "cname=lim&content=".len());
    let r = post_form(
        server.admin,
        "/push",
        format!("cname=lim&content={content}").as_bytes(),
    );
    assert_eq!(r.status, 200, "a body at the limit was refused: {}", r.head);
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");

    // A Content-Length over the limit is refused before the body is sent.
    let mut c = Conn::open(server.admin);
    c.send(b"POST /push HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n");
    expect_error_page(&mut c, 413, "Payload Too Large", "Content-Length 2000");
    assert_still_fine(&server, "413 (Content-Length)");

    // A chunked body whose chunks add up past the limit.
    let mut c = Conn::open(server.admin);
    let half = "z".repeat(600);
    c.send(
        format!(
            "POST /push HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{half}\r\n258\r\n{half}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    expect_error_page(&mut c, 413, "Payload Too Large", "chunked 1200 bytes");
    assert_still_fine(&server, "413 (chunked)");

    // On the front port too.
    let mut c = Conn::open(server.front);
    c.send(b"POST /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n");
    expect_error_page(
        &mut c,
        413,
        "Payload Too Large",
        "front Content-Length 1025",
    );
    assert_still_fine(&server, "413 (front)");
}

engine_tests!(wrong_methods_are_405_and_keep_the_connection);
fn wrong_methods_are_405_and_keep_the_connection(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.front);
    c.send(b"POST /sub?cname=x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(
        normalize_date(&r.head),
        "HTTP/1.1 405 Method Not Allowed\r\nDate: D\r\nContent-Length: 0\r\nContent-Type: text/html; charset=ISO-8859-1\r\n"
    );
    assert!(r.body.is_empty());
    c.get("/ping?cb=same");
    assert_eq!(
        c.read_response().text(),
        ping_body("same"),
        "connection unusable after 405"
    );

    let mut c = Conn::open(server.admin);
    c.send(b"PUT /pub?cname=x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(
        normalize_date(&r.head),
        "HTTP/1.1 405 Invalid Method\r\nServer: icomet 0.2.5\r\nDate: D\r\nContent-Length: 0\r\nContent-Type: text/html; charset=ISO-8859-1\r\n"
    );
    assert!(r.body.is_empty());
    assert_still_fine(&server, "405");
}

engine_tests!(post_bodies_with_content_length_and_chunked_are_read);
fn post_bodies_with_content_length_and_chunked_are_read(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut sub = subscribe_stream(&server, "bodies");

    let r = post_form(server.admin, "/push", b"cname=bodies&content=plain+body");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
    assert_eq!(
        read_message(&mut sub),
        "{\"type\":\"data\",\"cname\":\"bodies\",\"seq\":1,\"content\":\"plain body\"}\n"
    );

    // Chunked, with the chunks split across writes and a chunk extension.
    let mut c = Conn::open(server.admin);
    c.send(b"POST /push HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(b"7\r\ncname=b\r\n");
    c.send(b"5;ext=1\r\nodies\r\n");
    c.send(b"e\r\n&content=chunk\r\n0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
    assert_eq!(
        read_message(&mut sub),
        "{\"type\":\"data\",\"cname\":\"bodies\",\"seq\":2,\"content\":\"chunk\"}\n"
    );
    // The same connection carries on after a chunked body.
    c.get("/info?cname=bodies");
    assert_eq!(
        c.read_response().text(),
        "{\"cname\": \"bodies\", \"subscribers\": 1}\n"
    );
}

engine_tests!(expect_100_continue_gets_the_interim_response_first);
fn expect_100_continue_gets_the_interim_response_first(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut sub = subscribe_stream(&server, "expect");
    let body = b"cname=expect&content=after+continue";
    let mut c = Conn::open(server.admin);
    c.send(
        format!(
            "POST /push HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = c.read_exact_n(b"HTTP/1.1 100 Continue\r\n\r\n".len());
    assert_eq!(
        String::from_utf8_lossy(&interim),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    c.send(body);
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
    assert_eq!(
        read_message(&mut sub),
        "{\"type\":\"data\",\"cname\":\"expect\",\"seq\":1,\"content\":\"after continue\"}\n"
    );
}

engine_tests!(a_200_kb_message_posted_is_delivered_intact_to_a_stream);
fn a_200_kb_message_posted_is_delivered_intact_to_a_stream(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut sub = subscribe_stream(&server, "big");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let content: String = (0..200 * 1024)
        .map(|i| char::from(alphabet[(i * 7 + i / 62) % alphabet.len()]))
        .collect();
    let r = post_form(
        server.admin,
        "/push",
        format!("cname=big&content={content}").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
    let got = read_message(&mut sub);
    let want =
        format!("{{\"type\":\"data\",\"cname\":\"big\",\"seq\":1,\"content\":\"{content}\"}}\n");
    assert_eq!(
        got.len(),
        want.len(),
        "delivered message has the wrong length"
    );
    assert!(got == want, "delivered message differs from the one pushed");
}

engine_tests!(a_request_trickled_byte_by_byte_with_bare_lf_is_answered);
fn a_request_trickled_byte_by_byte_with_bare_lf_is_answered(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.front);
    for b in b"GET /%70ing?cb=slow HTTP/1.1\nHost: t\nX-A: b\n\n" {
        c.send(&[*b]);
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), ping_body("slow"));
    c.get("/ping?cb=next");
    assert_eq!(c.read_response().text(), ping_body("next"));
}

engine_tests!(a_long_pipeline_larger_than_the_socket_buffers_is_answered_in_order);
fn a_long_pipeline_larger_than_the_socket_buffers_is_answered_in_order(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let c = Conn::open(server.front);
    let mut writer = c.stream.try_clone().expect("clone");
    const N: usize = 5000;
    let send = std::thread::spawn(move || {
        use std::io::Write;
        let mut wire = Vec::new();
        for i in 0..N {
            wire.extend_from_slice(
                format!("GET /ping?cb=p{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
            );
        }
        writer.write_all(&wire)
    });
    let mut c = c;
    for i in 0..N {
        let r = c.read_response();
        assert_eq!(r.status, 200, "response {i}");
        assert_eq!(
            r.text(),
            ping_body(&format!("p{i}")),
            "response {i} out of order"
        );
    }
    send.join()
        .expect("writer thread")
        .expect("write the pipeline");
}

engine_tests!(a_pipeline_stops_at_connection_close_and_at_an_error);
fn a_pipeline_stops_at_connection_close_and_at_an_error(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.front);
    c.send(
        b"GET /ping?cb=a1 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /ping?cb=a2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n\
          GET /ping?cb=a3 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(c.read_response().text(), ping_body("a1"));
    let r = c.read_response();
    assert_eq!(r.text(), ping_body("a2"));
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert!(
        c.closed_by_peer(),
        "the request after Connection: close was served"
    );
    assert!(
        c.buf.is_empty(),
        "bytes after the close: {:?}",
        String::from_utf8_lossy(&c.buf)
    );

    let mut c = Conn::open(server.front);
    c.send(
        b"GET /ping?cb=b1 HTTP/1.1\r\nHost: t\r\n\r\nhello\r\n\r\nGET /ping?cb=b3 HTTP/1.1\r\n\r\n",
    );
    assert_eq!(c.read_response().text(), ping_body("b1"));
    expect_error_page(&mut c, 400, "Bad Request", "400 inside a pipeline");
    assert!(
        c.buf.is_empty(),
        "bytes after the 400: {:?}",
        String::from_utf8_lossy(&c.buf)
    );
    assert_still_fine(&server, "400 inside a pipeline");
}

engine_tests!(a_request_pipelined_behind_a_long_poll_waits_for_it);
fn a_request_pipelined_behind_a_long_poll_waits_for_it(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.front);
    c.send(b"GET /sub?cname=lp&seq=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /ping?cb=behind HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        eventually(Duration::from_secs(5), || {
            get(server.admin, "/info?cname=lp").text()
                == "{\"cname\": \"lp\", \"subscribers\": 1}\n"
        }),
        "long-poll never registered"
    );
    assert_eq!(
        get(server.admin, "/push?cname=lp&content=first").text(),
        "{\"type\":\"ok\"}\n"
    );
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains("{\"type\":\"data\",\"cname\":\"lp\",\"seq\":1,\"content\":\"first\"}"),
        "long-poll answer: {:?}",
        r.text()
    );
    let r = c.read_response();
    assert_eq!(
        r.text(),
        ping_body("behind"),
        "the pipelined request after the long-poll"
    );
}

engine_tests!(a_post_body_trickled_byte_by_byte_is_read);
fn a_post_body_trickled_byte_by_byte_is_read(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut sub = subscribe_stream(&server, "trickle");
    let body = b"cname=trickle&content=one+byte+at+a+time";
    let mut c = Conn::open(server.admin);
    c.send(
        format!(
            "POST /push HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    for b in body {
        c.send(&[*b]);
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
    assert_eq!(
        read_message(&mut sub),
        "{\"type\":\"data\",\"cname\":\"trickle\",\"seq\":1,\"content\":\"one byte at a time\"}\n"
    );
}

engine_tests!(stricter_http_where_the_rfc_says_so);
fn stricter_http_where_the_rfc_says_so(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let cases: [(&[u8], u16); 5] = [
        (b"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /ping HTTP/1.1\rHost: a\r\r", 400),
        (b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"POST /ping HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\0b\r\nabc\r\n0\r\n\r\n", 400),
        (b"POST /ping HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n14 \r\n", 400),
    ];
    for (request, status) in cases {
        let mut c = Conn::open(server.front);
        c.send(request);
        // Answered at once (within the read timeout, far below the 10 s header timeout).
        let r = c.read_response();
        assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(request));
    }
    assert_still_fine(&server, "after the refusals");
}
