//! The live admin page on the admin port: `/admin` serves the compiled-in HTML page, and
//! `/stats/stream` is an endless text/event-stream with one `data: <the /stats JSON>` event at once
//! and then one a second, whose per-worker counters show pushes as they happen; both sit behind
//! the allow/deny list like every admin path, take GET (and HEAD) only, and a reader that leaves
//! is forgotten. (The browser side — the page drawing a push within a second — is checked in
//! tests/browser.rs.)
//!
//! Depends on tests/support only (the real binary over raw sockets), plus socket2 to bind a client
//! to another loopback address.
mod support;

use std::time::{Duration, Instant};
use support::json::Json;
use support::*;

/// One stats event from the stream: the JSON of its `data:` line.
fn next_event(c: &mut Conn) -> Json {
    let chunk = c.read_chunk().expect("a stats event");
    let text = String::from_utf8(chunk).expect("UTF-8 event");
    let data = text
        .strip_prefix("data: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("not one data event: {text:?}"));
    assert!(!data.contains('\n'), "one line of data: {text:?}");
    Json::parse(data).unwrap_or_else(|e| panic!("{e}: {data}"))
}

engine_tests!(the_admin_page_is_served_on_the_admin_port);
fn the_admin_page_is_served_on_the_admin_port(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let r = get(server.admin, "/admin");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let page = r.text();
    assert!(page.starts_with("<!doctype html>"), "{page:.80}");
    assert!(page.contains("<title>rcomet admin</title>"));
    assert!(page.contains("new EventSource(\"/stats/stream\")"));
    assert_eq!(
        r.header("content-length").as_deref(),
        Some(page.len().to_string().as_str())
    );
    // Not on the front port.
    assert_eq!(get(server.front, "/admin").status, 404);
    assert_eq!(get(server.front, "/stats/stream").status, 404);
}

engine_tests!(the_stats_stream_sends_an_event_a_second_that_counts_pushes);
fn the_stats_stream_sends_an_event_a_second_that_counts_pushes(engine: &'static str) {
    let server = Server::start(Opts::new(engine).threads(2));
    let mut c = Conn::open(server.admin);
    c.get("/stats/stream");
    let (status, head) = c.read_head();
    assert_eq!(status, 200, "{head}");
    let normal = normalize_date(&head);
    assert!(
        normal.contains("Content-Type: text/event-stream; charset=utf-8\r\n"),
        "{normal}"
    );
    assert!(normal.contains("Cache-Control: no-cache\r\n"), "{normal}");
    assert!(
        normal.contains("Transfer-Encoding: chunked\r\n"),
        "{normal}"
    );
    // The first event comes with the head.
    let first = next_event(&mut c);
    assert_eq!(
        first
            .get("workers")
            .and_then(|w| w.as_array())
            .map(Vec::len),
        Some(2)
    );
    assert!(
        first.count("connections") >= 1,
        "the reader itself: {first:?}"
    );
    let pushed_before = first.sum("workers", "pushes");

    for i in 0..3 {
        let r = get(server.admin, &format!("/push?cname=room{i}&content=hi"));
        assert_eq!(r.status, 200);
    }
    // The next events (one a second) count them, on whichever worker is each channel's home.
    let started = Instant::now();
    let mut events = 0;
    loop {
        let e = next_event(&mut c);
        events += 1;
        if e.sum("workers", "pushes") >= pushed_before + 3 {
            assert!(e.count("channels") >= 3, "{e:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no event counted the 3 pushes within 5 s ({events} events, last {e:?})"
        );
    }
    // Events keep coming four times a second: five more take four intervals or a little more.
    let t = Instant::now();
    for _ in 0..5 {
        next_event(&mut c);
    }
    let five = t.elapsed();
    assert!(
        five >= Duration::from_millis(700) && five < Duration::from_millis(2500),
        "five events took {five:?}"
    );

    // A reader that leaves is forgotten: the connection count falls back.
    drop(c);
    let gone = eventually(Duration::from_secs(5), || {
        let s = Json::parse(&get(server.admin, "/stats").text()).expect("stats JSON");
        // Only the /stats request's own connection is left.
        s.count("connections") == 1
    });
    assert!(gone, "the stream's connection is still counted");
}

engine_tests!(the_stats_stream_takes_get_and_head_only);
fn the_stats_stream_takes_get_and_head_only(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.admin);
    c.send(b"POST /stats/stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_head().0, 405);
    // HEAD: the stream's head, then the connection closes without a body.
    let mut h = Conn::open(server.admin);
    h.send(b"HEAD /stats/stream HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, head) = h.read_head();
    assert_eq!(status, 200);
    assert!(head.contains("text/event-stream"), "{head}");
    assert!(h.closed_by_peer(), "HEAD of the stream ends");
}

engine_tests!(the_admin_page_and_stream_follow_allow_and_deny);
fn the_admin_page_and_stream_follow_allow_and_deny(engine: &'static str) {
    const CONFIG: &str = "admin:\n\tallow: 127.0.0.2\n\tdeny: all\n";
    let server = Server::start(Opts::new(engine).config(CONFIG));
    for path in ["/admin", "/stats/stream"] {
        let mut refused = Conn::open_from("127.0.0.1", server.admin);
        refused.get(path);
        assert_eq!(refused.read_head().0, 403, "{path} from 127.0.0.1");
        assert!(refused.closed_by_peer());
        let mut allowed = Conn::open_from("127.0.0.2", server.admin);
        allowed.get(path);
        assert_eq!(allowed.read_head().0, 200, "{path} from 127.0.0.2");
    }
}
