//! Resumable SSE: with `id=1` (or `front.sse_ids: yes`) every channel message carries
//! `id: <epoch>:<seq>`, the stream starts with a `retry:` hint, and a reconnecting EventSource's
//! `Last-Event-ID` resumes where it left off: nothing lost, nothing twice. A channel re-created
//! since (another epoch) or a seq that fell off the replay ring is announced with a `reset`
//! message. Without the switch `/sse` keeps iComet's bytes (tests/api_front.rs).
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use support::front::{msg, sub_head, subscribe};
use support::*;

/// One SSE event (one chunk), as text.
fn event(c: &mut Conn) -> String {
    let chunk = c.read_chunk().expect("an event, not the end of the stream");
    String::from_utf8(chunk).expect("UTF-8 event")
}

/// The text of a data event with an id.
fn data_event(epoch: u32, seq: i64, json: &str) -> String {
    format!("id: {epoch}:{seq}\ndata: {json}\n\n")
}

/// The `"epoch":N` field of a marker event.
fn epoch_in(event: &str) -> u32 {
    event
        .split("\"epoch\":")
        .nth(1)
        .and_then(|e| e.split('}').next())
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("no epoch in {event:?}"))
}

/// A resumable subscription's opening: the retry hint, then the `next_seq` marker; returns the
/// channel's epoch.
fn open_fresh(c: &mut Conn, cname: &str) -> u32 {
    assert_eq!(event(c), "retry: 2000\n\n");
    let marker = event(c);
    let epoch = epoch_in(&marker);
    let json = format!(
        "{{\"type\":\"next_seq\",\"cname\":\"{cname}\",\"seq\":1,\"content\":\"\",\"epoch\":{epoch}}}"
    );
    assert_eq!(
        marker,
        data_event(epoch, -1, &json),
        "id names the seq before 1"
    );
    epoch
}

/// Reconnects as EventSource does, with `Last-Event-ID`.
fn reconnect(server: &Server, path: &str, last_event_id: &str) -> Conn {
    let mut c = Conn::open(server.front);
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {last_event_id}\r\n\r\n")
            .as_bytes(),
    );
    let (status, head) = c.read_head();
    assert_eq!(status, 200);
    assert_eq!(normalize_date(&head), sub_head(path, true, true));
    assert_eq!(event(&mut c), "retry: 2000\n\n");
    c
}

fn push(server: &Server, cname: &str, content: &str) {
    support::front::admin_ok(server, &format!("/push?cname={cname}&content={content}"));
}

engine_tests!(
    last_event_id_resumes_without_loss,
    a_recreated_channel_is_a_reset,
    a_seq_off_the_ring_is_a_gap_reset,
    the_config_switch_makes_ids_the_default,
    a_malformed_last_event_id_is_refused
);

fn last_event_id_resumes_without_loss(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let path = "/sse?cname=r&id=1";
    let mut c = subscribe(server.front, path);
    let epoch = open_fresh(&mut c, "r");
    for (seq, content) in [(1, "m1"), (2, "m2"), (3, "m3")] {
        push(&server, "r", content);
        assert_eq!(
            event(&mut c),
            data_event(epoch, seq, &msg("data", "r", seq, content))
        );
    }
    drop(c);
    support::front::wait_subscribers(&server, "r", 0);
    push(&server, "r", "m4");
    push(&server, "r", "m5");
    let mut c = reconnect(&server, path, &format!("{epoch}:3"));
    for (seq, content) in [(4, "m4"), (5, "m5")] {
        assert_eq!(
            event(&mut c),
            data_event(epoch, seq, &msg("data", "r", seq, content))
        );
    }
    push(&server, "r", "m6");
    assert_eq!(
        event(&mut c),
        data_event(epoch, 6, &msg("data", "r", 6, "m6"))
    );
    // The query form (for polyfills) works the same and wins over seq=.
    let mut q = subscribe(
        server.front,
        &format!("/sse?cname=r&id=1&seq=1&last_event_id={epoch}:5"),
    );
    assert_eq!(event(&mut q), "retry: 2000\n\n");
    assert_eq!(
        event(&mut q),
        data_event(epoch, 6, &msg("data", "r", 6, "m6"))
    );
}

fn a_recreated_channel_is_a_reset(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let path = "/sse?cname=r&id=1";
    let mut c = subscribe(server.front, path);
    let old = open_fresh(&mut c, "r");
    push(&server, "r", "old");
    assert_eq!(
        event(&mut c),
        data_event(old, 1, &msg("data", "r", 1, "old"))
    );
    support::front::admin_ok(&server, "/close?cname=r");
    assert!(event(&mut c).contains("\"type\":\"close\""));
    drop(c);
    push(&server, "r", "new");
    let mut c = reconnect(&server, path, &format!("{old}:1"));
    let reset = event(&mut c);
    let new = epoch_in(&reset);
    assert_ne!(new, old, "a new incarnation gets a new epoch");
    let json = format!(
        "{{\"type\":\"reset\",\"cname\":\"r\",\"seq\":1,\"content\":\"\",\"epoch\":{new}}}"
    );
    assert_eq!(reset, data_event(new, -1, &json));
    assert_eq!(
        event(&mut c),
        data_event(new, 1, &msg("data", "r", 1, "new"))
    );
}

fn a_seq_off_the_ring_is_a_gap_reset(engine: &'static str) {
    let config = "front:\n\tchannel_buffer_size: 2\n";
    let server = Server::start(Opts::new(engine).config(config));
    let path = "/sse?cname=g&id=1";
    let mut c = subscribe(server.front, path);
    let epoch = open_fresh(&mut c, "g");
    push(&server, "g", "m1");
    assert_eq!(
        event(&mut c),
        data_event(epoch, 1, &msg("data", "g", 1, "m1"))
    );
    drop(c);
    support::front::wait_subscribers(&server, "g", 0);
    for content in ["m2", "m3", "m4", "m5"] {
        push(&server, "g", content);
    }
    let mut c = reconnect(&server, path, &format!("{epoch}:1"));
    let json = format!(
        "{{\"type\":\"reset\",\"cname\":\"g\",\"seq\":4,\"content\":\"\",\"epoch\":{epoch}}}"
    );
    assert_eq!(
        event(&mut c),
        data_event(epoch, 3, &json),
        "m2 and m3 are gone"
    );
    for (seq, content) in [(4, "m4"), (5, "m5")] {
        assert_eq!(
            event(&mut c),
            data_event(epoch, seq, &msg("data", "g", seq, content))
        );
    }
}

fn the_config_switch_makes_ids_the_default(engine: &'static str) {
    let config = "front:\n\tsse_ids: yes\n";
    let server = Server::start(Opts::new(engine).config(config));
    let mut c = subscribe(server.front, "/sse?cname=d");
    open_fresh(&mut c, "d");
    // id=0 gives iComet's bytes back.
    let mut plain = subscribe(server.front, "/sse?cname=d&id=0");
    assert_eq!(
        event(&mut plain),
        format!("data: {}\n\n", msg("next_seq", "d", 1, ""))
    );
}

fn a_malformed_last_event_id_is_refused(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = Conn::open(server.front);
    c.send(b"GET /sse?cname=m&id=1 HTTP/1.1\r\nHost: t\r\nLast-Event-ID: nonsense\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Last-Event-ID"), "{}", r.text());
}
