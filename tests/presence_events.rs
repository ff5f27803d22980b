//! /psub sees every presence event from its first moment: a reader that opens the stream on a
//! server that has been idle (nobody listening, so channels record no events) gets the creation
//! event of every channel signed after its response head arrived, on every worker; and a storm
//! of events (a mass expiry) reaches every reader whole, one chunk per event.

mod support;

use std::time::Duration;
use support::{engine_tests, eventually, get, Conn, Opts, Server};

/// Proves the server has run its once-a-second channel tick with nobody listening: a channel
/// signed to live one second has expired.
fn wait_for_idle_ticks(server: &Server) {
    let r = get(server.admin, "/sign?cname=ticker&expires=1");
    assert_eq!(r.status, 200);
    assert!(
        eventually(Duration::from_secs(10), || get(
            server.admin,
            "/check?cname=ticker"
        )
        .text()
            == "{}\n"),
        "the channel tick never ran"
    );
}

/// A server with two workers whose live channels are re-announced only once an hour, so the lines
/// a test reads are the events it caused.
fn two_workers(engine: &'static str) -> Server {
    Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--channel-timeout")
            .arg("3600"),
    )
}

fn read_events(p: &mut Conn, want: usize) -> Vec<String> {
    let mut events = Vec::new();
    while events.len() < want {
        let Some(chunk) = p.read_chunk() else { break };
        events.push(String::from_utf8_lossy(&chunk).into_owned());
    }
    events
}

engine_tests!(a_new_psub_reader_gets_every_creation_from_its_first_moment);
fn a_new_psub_reader_gets_every_creation_from_its_first_moment(engine: &'static str) {
    // Live channels are re-announced once per channel_timeout: a long one makes sure every
    // line read here is the creation event itself.
    let server = two_workers(engine);
    wait_for_idle_ticks(&server);
    let mut p = Conn::open(server.admin);
    p.get("/psub");
    assert_eq!(p.read_head().0, 200);
    let names: Vec<String> = (0..40).map(|i| format!("fresh{i}")).collect();
    for name in &names {
        let r = get(server.admin, &format!("/sign?cname={name}"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let events = read_events(&mut p, names.len());
    for name in &names {
        let line = format!("1 {name}\n");
        assert!(
            events.contains(&line),
            "{engine}: {line:?} missing from {events:?}"
        );
    }
}

engine_tests!(a_mass_expiry_reaches_every_psub_reader_one_chunk_per_event);
fn a_mass_expiry_reaches_every_psub_reader_one_chunk_per_event(engine: &'static str) {
    // Thousands of channels expiring in the same sweep make one batch of lines per worker and
    // turn; a reader still gets one chunk per event (HTTP/1.1) or the bare lines (HTTP/1.0), each
    // event once, a channel's creation before its expiry.
    const N: usize = 3000;
    let server = two_workers(engine);
    let mut chunked = Conn::open(server.admin);
    chunked.get("/psub");
    assert_eq!(chunked.read_head().0, 200);
    let mut raw = Conn::open(server.admin);
    raw.send(b"GET /psub HTTP/1.0\r\n\r\n");
    assert_eq!(raw.read_head().0, 200);

    let mut admin = Conn::open(server.admin);
    let mut requests = Vec::new();
    for i in 0..N {
        requests.extend_from_slice(
            format!("GET /sign?cname=mass{i}&expires=1 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
    }
    admin.send(&requests);
    for _ in 0..N {
        assert_eq!(admin.read_response().status, 200);
    }

    // Every channel is announced when created, may be announced again (a re-announcement of a
    // live channel falls on some tick of every `channel_timeout`), and expires once.
    let expired = |lines: &[String]| lines.iter().filter(|l| l.starts_with("0 ")).count();
    let mut lines = Vec::new();
    while expired(&lines) < N {
        let chunk = chunked.read_chunk().expect("the stream ended");
        let text = String::from_utf8(chunk).expect("utf-8");
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{engine}: a chunk holds one line, got {text:?}"
        );
        lines.push(text);
    }
    let mut bare = String::new();
    while bare.matches("\n0 ").count() + usize::from(bare.starts_with("0 ")) < N {
        assert!(raw.fill(), "{engine}: the HTTP/1.0 stream ended");
        bare.push_str(std::str::from_utf8(&std::mem::take(&mut raw.buf)).expect("utf-8"));
    }
    let bare: Vec<String> = bare.split_inclusive('\n').map(str::to_owned).collect();
    for (who, got) in [("HTTP/1.1", &lines), ("HTTP/1.0", &bare)] {
        assert_eq!(expired(got), N, "{engine} {who}: an expiry came twice");
        let mut first_online = std::collections::HashMap::new();
        let mut offline = std::collections::HashMap::new();
        for (i, line) in got.iter().enumerate() {
            let (kind, name) = line.split_at(2);
            let seen = if kind == "1 " {
                &mut first_online
            } else {
                &mut offline
            };
            seen.entry(name.to_owned()).or_insert(i);
        }
        for i in 0..N {
            let name = format!("mass{i}\n");
            let (Some(on), Some(off)) = (first_online.get(&name), offline.get(&name)) else {
                panic!("{engine} {who}: {name:?} missing (created or expired)");
            };
            assert!(
                on < off,
                "{engine} {who}: {name:?} expired before it was created"
            );
        }
    }
}

engine_tests!(an_event_is_one_chunk_even_when_the_name_holds_a_line_break);
fn an_event_is_one_chunk_even_when_the_name_holds_a_line_break(engine: &'static str) {
    let server = two_workers(engine);
    let mut p = Conn::open(server.admin);
    p.get("/psub");
    assert_eq!(p.read_head().0, 200);
    let r = get(server.admin, "/sign?cname=line%0Abreak");
    assert_eq!(r.status, 200, "{}", r.text());
    let chunk = p.read_chunk().expect("an event");
    assert_eq!(
        String::from_utf8_lossy(&chunk),
        "1 line\nbreak\n",
        "{engine}: the event is one chunk"
    );
}
