//! /psub sees every presence event from its first moment: a reader that opens the stream on a
//! server that has been idle (nobody listening, so channels record no events) gets the creation
//! event of every channel signed after its response head arrived, on every worker.

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
    let server = Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--channel-timeout")
            .arg("3600"),
    );
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
