//! Wire details iComet clients and the proxies in front of them see, byte for byte: the `/iframe`
//! preamble before a refusal (401/429), what an HTTP/1.0 request with `Connection: close` (nginx's
//! default upstream request) gets back on every front endpoint and on the admin port, and a
//! `Date` header that is the wall clock's current second.
//!
//! Depends on tests/support only (the real binary over raw sockets), plus socket2 to bind a client
//! to another loopback address.
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::front::*;
use support::*;

const PREAMBLE: &str = "<html><head><meta http-equiv='Content-Type' content='text/html; charset=utf-8'><meta http-equiv='Cache-Control' content='no-store'><meta http-equiv='Cache-Control' content='no-cache'><meta http-equiv='Pragma' content='no-cache'><meta http-equiv=' Expires' content='Thu, 1 Jan 1970 00:00:00 GMT'><script type='text/javascript'>window.onError = null;try{document.domain = window.location.hostname.split('.').slice(-2).join('.');}catch(e){};</script></head><body>\n";

fn script(m: &str) -> String {
    format!("<script>parent.icomet_cb({m});</script>\n")
}

/// The head of an HTTP/1.0 subscription reply to a request that said `Connection: close`.
fn head10_close(path: &str) -> String {
    format!("{}Connection: close\r\n\r\n", sub_head(path, false, false))
}

engine_tests!(iframe_refusals_start_with_the_preamble);
fn iframe_refusals_start_with_the_preamble(engine: &'static str) {
    // 401: token auth, unknown channel, on HTTP/1.1 and HTTP/1.0.
    let server = Server::start(Opts::new(engine).arg("--auth").arg("token"));
    let err = msg("401", "gina", 0, "Token error");
    let mut c = Conn::open(server.front);
    c.get("/iframe?cname=gina&token=x");
    let (_, head) = c.read_head();
    assert_eq!(normalize_date(&head), sub_head("/iframe", false, true));
    expect(&mut c, &chunk(PREAMBLE));
    expect(&mut c, &chunk(&script(&err)));
    expect(&mut c, END);
    let mut c = Conn::open(server.front);
    c.send(b"GET /iframe?cname=gina HTTP/1.0\r\n\r\n");
    let all = c.read_to_close();
    assert_eq!(
        String::from_utf8_lossy(&all),
        format!(
            "{}\r\n{PREAMBLE}{}",
            sub_head("/iframe", false, false),
            script(&err)
        )
    );
    drop(server);

    // 429: too many subscribers, then too many channels.
    let server = Server::start(
        Opts::new(engine)
            .arg("--max-subscribers-per-channel")
            .arg("1")
            .arg("--max-channels")
            .arg("1"),
    );
    let _first = subscribe(server.front, "/stream?cname=jack");
    wait_subscribers(&server, "jack", 1);
    for (path, content) in [
        ("/iframe?cname=jack", "Too many subscribers"),
        ("/iframe?cname=jill", "Too many channels"),
    ] {
        let mut c = Conn::open(server.front);
        c.get(path);
        let (_, head) = c.read_head();
        assert_eq!(normalize_date(&head), sub_head(path, false, true), "{path}");
        expect(&mut c, &chunk(PREAMBLE));
        let cname = path.rsplit('=').next().unwrap_or_default();
        expect(&mut c, &chunk(&script(&msg("429", cname, 0, content))));
        expect(&mut c, END);
    }
}

engine_tests!(http10_connection_close_is_answered_with_connection_close);
fn http10_connection_close_is_answered_with_connection_close(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let ask = |path: &str| format!("GET {path} HTTP/1.0\r\nConnection: close\r\n\r\n");

    // Long-poll: the head says close, one raw frame, then the server closes.
    let mut c = Conn::open(server.front);
    c.send(ask("/sub?cname=ned&cb=f").as_bytes());
    let all = c.read_to_close();
    assert_eq!(
        String::from_utf8_lossy(&all),
        format!(
            "{}f({});\n",
            head10_close("/sub"),
            msg("next_seq", "ned", 1, "")
        )
    );

    // Streams: the same head; frames until /close.
    let mut s = Conn::open(server.front);
    s.send(ask("/stream?cname=ned").as_bytes());
    expect(&mut s, &head10_close("/stream"));
    expect(&mut s, &format!("{}\n", msg("next_seq", "ned", 1, "")));
    let mut e = Conn::open(server.front);
    e.send(ask("/sse?cname=ned").as_bytes());
    expect(&mut e, &head10_close("/sse"));
    expect(
        &mut e,
        &format!("data: {}\n\n", msg("next_seq", "ned", 1, "")),
    );
    let mut f = Conn::open(server.front);
    f.send(ask("/iframe?cname=ned").as_bytes());
    expect(&mut f, &head10_close("/iframe"));
    expect(&mut f, PREAMBLE);
    expect(&mut f, &script(&msg("next_seq", "ned", 1, "")));
    admin_ok(&server, "/close?cname=ned");
    let close = msg("close", "ned", 1, "");
    assert_eq!(
        String::from_utf8_lossy(&s.read_to_close()),
        format!("{close}\n")
    );
    assert_eq!(
        String::from_utf8_lossy(&e.read_to_close()),
        format!("data: {close}\n\n")
    );
    assert_eq!(String::from_utf8_lossy(&f.read_to_close()), script(&close));

    // /ping: `Connection: close` after the default content type, no Content-Length.
    let mut c = Conn::open(server.front);
    c.send(ask("/ping?cb=p").as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&c.read_to_close()),
        "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\nConnection: close\r\n\r\np({\"type\":\"ping\",\"sub_timeout\":30});\n"
    );
    // The admin port: the same rule.
    let mut c = Conn::open(server.admin);
    c.send(ask("/check?cname=ned").as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&c.read_to_close()),
        "HTTP/1.0 200 OK\r\nServer: icomet 0.2.5\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n\r\n{}\n"
    );
}

engine_tests!(http10_connection_close_on_a_refused_subscription);
fn http10_connection_close_on_a_refused_subscription(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--auth").arg("token"));
    let err = msg("401", "gina", 0, "Token error");
    let mut c = Conn::open(server.front);
    c.send(b"GET /sub?cname=gina HTTP/1.0\r\nConnection: close\r\n\r\n");
    assert_eq!(
        String::from_utf8_lossy(&c.read_to_close()),
        format!("{}{err}\n", head10_close("/sub"))
    );
    let mut c = Conn::open(server.front);
    c.send(b"GET /iframe?cname=gina HTTP/1.0\r\nConnection: close\r\n\r\n");
    assert_eq!(
        String::from_utf8_lossy(&c.read_to_close()),
        format!("{}{PREAMBLE}{}", head10_close("/iframe"), script(&err))
    );
}

engine_tests!(admin_403_follows_the_request_connection_header);
fn admin_403_follows_the_request_connection_header(engine: &'static str) {
    const CONFIG: &str = "admin:\n\tallow: 127.0.0.2\n\tdeny: all\n";
    let server = Server::start(Opts::new(engine).config(CONFIG));
    let tail = "Content-Type: text/html; charset=ISO-8859-1\r\n";
    for (request, want) in [
        (
            "GET /info HTTP/1.1\r\nConnection: close\r\n\r\n",
            format!("HTTP/1.1 403 Forbidden\r\nServer: icomet 0.2.5\r\nDate: D\r\nContent-Length: 0\r\n{tail}Connection: close"),
        ),
        (
            "GET /info HTTP/1.0\r\nConnection: close\r\n\r\n",
            format!("HTTP/1.0 403 Forbidden\r\nServer: icomet 0.2.5\r\n{tail}Connection: close"),
        ),
        (
            "GET /info HTTP/1.0\r\n\r\n",
            format!("HTTP/1.0 403 Forbidden\r\nServer: icomet 0.2.5\r\nConnection: Close\r\n{tail}"),
        ),
    ] {
        let mut c = Conn::open_from("127.0.0.1", server.admin);
        c.send(request.as_bytes());
        let all = String::from_utf8_lossy(&c.read_to_close()).into_owned();
        assert_eq!(
            normalize_date(&all),
            format!("{}\r\n", want.trim_end_matches("\r\n")),
            "{request:?}"
        );
    }
}

/// The Unix second of an RFC 1123 `Date` value (`Wed, 25 Nov 2026 18:24:50 GMT`).
fn unix_secs_of(date: &str) -> u64 {
    let f: Vec<&str> = date.split_whitespace().collect();
    assert_eq!(f.len(), 6, "{date}");
    let day: u64 = f[1].parse().unwrap();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == f[2])
    .unwrap() as u64
        + 1;
    let year: u64 = f[3].parse().unwrap();
    let hms: Vec<u64> = f[4].split(':').map(|x| x.parse().unwrap()).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
}

/// The wall clock as the kernel's coarse clock (what the server reads) has it.
fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64
}

engine_tests!(date_is_the_current_wall_clock_second);
fn date_is_the_current_wall_clock_second(engine: &'static str) {
    assert_eq!(unix_secs_of("Wed, 25 Nov 2026 18:24:50 GMT"), 1_795_631_090);
    let server = Server::start(Opts::new(engine));
    let mut front = Conn::open(server.front);
    let mut admin = Conn::open(server.admin);
    // Sample for a little over a second so that the wall clock's second changes at least once
    // while the server's one-second tick has its own phase; every reply must carry the second
    // between the moments before the request and after the reply.
    let start = Instant::now();
    let mut samples = 0;
    while start.elapsed() < Duration::from_millis(1300) {
        for (c, path) in [(&mut front, "/ping?cb=d"), (&mut admin, "/info")] {
            let before = coarse_now();
            c.get(path);
            let r = c.read_response();
            let after = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let date = unix_secs_of(&r.header("Date").expect("a Date header"));
            assert!(
                before <= date && date <= after,
                "Date {date} outside [{before}, {after}] after {samples} samples"
            );
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(samples > 100, "only {samples} samples");
}
