//! WebSocket on the front port (`/ws`), over raw sockets on both engines: the handshake (good
//! and bad), deliveries and replay as `/stream` JSON in text frames, channels added and dropped
//! with commands, ping/pong both ways and the dead-peer close, the closing handshake, protocol
//! errors with their close codes, refusals, `/close`, a slow consumer cut at its cap, and the
//! `reset` a resuming client gets from a re-created channel or a seq off the replay ring.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use support::front::{admin_ok, msg, wait_subscribers};
use support::ws::{client_frame, open, upgrade_request, Frame};
use support::*;

fn push(server: &Server, cname: &str, content: &str) {
    admin_ok(server, &format!("/push?cname={cname}&content={content}"));
}

/// The `next_seq` marker a fresh WebSocket subscription starts with; returns its epoch.
fn next_seq_marker(c: &mut Conn, cname: &str, seq: i64) -> u32 {
    let text = c.read_text();
    let prefix = format!(
        "{{\"type\":\"next_seq\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"\",\"epoch\":"
    );
    let epoch = text
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|e| e.parse().ok());
    epoch.unwrap_or_else(|| panic!("not a next_seq marker for {cname}: {text}"))
}

/// The `reset` marker a resuming WebSocket gets when the channel cannot continue where it left
/// off; returns its epoch.
fn reset_marker(c: &mut Conn, cname: &str, seq: i64) -> u32 {
    let text = c.read_text();
    let prefix = format!(
        "{{\"type\":\"reset\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"\",\"epoch\":"
    );
    let epoch = text
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|e| e.parse().ok());
    epoch.unwrap_or_else(|| panic!("not a reset marker for {cname} at {seq}: {text}"))
}

fn expect_close(c: &mut Conn, code: u16) {
    let frame = c.read_frame();
    assert_eq!(frame.close_code(), Some(code), "{frame:?}");
    assert!(
        c.closed_by_peer(),
        "the server closes the TCP connection after its close frame"
    );
}

engine_tests!(
    handshake_delivery_and_replay,
    bad_handshakes_are_refused,
    protocol_errors_close_with_their_codes,
    several_channels_on_one_socket,
    pings_pongs_and_a_dead_peer,
    closing_handshake_and_fragmented_commands,
    refusals_and_channel_close,
    a_slow_websocket_consumer_is_cut,
    nothing_follows_the_close_frame,
    resuming_a_recreated_channel_is_a_reset,
    resuming_a_seq_off_the_ring_is_a_gap_reset,
    a_full_channel_refuses_a_websocket_like_a_stream
);

fn handshake_delivery_and_replay(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = open(server.front, "/ws?cname=alice");
    next_seq_marker(&mut c, "alice", 1);
    wait_subscribers(&server, "alice", 1);
    push(&server, "alice", "hello");
    assert_eq!(c.read_text(), msg("data", "alice", 1, "hello"));
    push(&server, "alice", "again");
    assert_eq!(c.read_text(), msg("data", "alice", 2, "again"));
    // A second subscriber resuming from seq 1 gets both from the ring, then live ones.
    let mut r = open(server.front, "/ws?cname=alice&seq=1");
    assert_eq!(r.read_text(), msg("data", "alice", 1, "hello"));
    assert_eq!(r.read_text(), msg("data", "alice", 2, "again"));
    wait_subscribers(&server, "alice", 2);
    push(&server, "alice", "both");
    assert_eq!(c.read_text(), msg("data", "alice", 3, "both"));
    assert_eq!(r.read_text(), msg("data", "alice", 3, "both"));
}

fn bad_handshakes_are_refused(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let cases = [
        (
            "no key",
            "GET /ws?cname=a HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
                .to_string(),
            400,
        ),
        (
            "wrong version",
            upgrade_request("/ws?cname=a", "").replace("Version: 13", "Version: 8"),
            426,
        ),
        (
            "no upgrade",
            "GET /ws?cname=a HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            400,
        ),
        (
            "POST",
            upgrade_request("/ws?cname=a", "").replacen("GET", "POST", 1),
            405,
        ),
        ("unknown path", upgrade_request("/wsx", ""), 404),
        ("bad cname", upgrade_request("/ws?cname=a&seq=x", ""), 400),
    ];
    for (what, request, status) in cases {
        let mut c = Conn::open(server.front);
        c.send(request.as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, status, "{what}: {}", r.text());
        if status == 426 {
            assert_eq!(r.header("Sec-WebSocket-Version").as_deref(), Some("13"));
        }
        assert!(c.closed_by_peer(), "{what}: closed after the refusal");
    }
}

fn protocol_errors_close_with_their_codes(engine: &'static str) {
    let config = "limits:\n\tmax_ws_message_size: 200\n";
    let server = Server::start(Opts::new(engine).config(config));
    let unmasked = {
        let mut f = vec![0x81, 0x02];
        f.extend_from_slice(b"{}");
        f
    };
    let big = client_frame(true, 1, &[b' '; 201]);
    let bad_utf8 = client_frame(true, 1, &[b'"', 0xff, b'"']);
    let binary = client_frame(true, 2, b"{}");
    let reserved_opcode = client_frame(true, 3, b"");
    for (what, bytes, code) in [
        ("unmasked", unmasked, 1002),
        ("oversized", big, 1009),
        ("invalid UTF-8", bad_utf8, 1007),
        ("binary", binary, 1003),
        ("reserved opcode", reserved_opcode, 1002),
    ] {
        let mut c = open(server.front, "/ws?cname=e");
        next_seq_marker(&mut c, "e", 1);
        c.send(&bytes);
        let frame = c.read_frame();
        assert_eq!(frame.close_code(), Some(code), "{what}: {frame:?}");
        assert!(c.closed_by_peer(), "{what}");
    }
    wait_subscribers(&server, "e", 0);
}

fn several_channels_on_one_socket(engine: &'static str) {
    let config = "limits:\n\tmax_ws_channels: 3\n";
    let server = Server::start(Opts::new(engine).config(config));
    let mut c = open(server.front, "/ws?cname=one");
    next_seq_marker(&mut c, "one", 1);
    // Channels homed on every worker: enough names that both workers are homes of some.
    c.send_text(r#"{"cmd":"sub","cname":"two"}"#);
    next_seq_marker(&mut c, "two", 1);
    c.send_text(r#"{"cmd":"sub","cname":"three"}"#);
    next_seq_marker(&mut c, "three", 1);
    c.send_text(r#"{"cmd":"sub","cname":"four"}"#);
    assert_eq!(
        c.read_text(),
        msg("429", "four", 0, "Too many channels on this connection")
    );
    c.send_text(r#"{"cmd":"sub","cname":"two"}"#);
    assert_eq!(
        c.read_text(),
        msg("400", "two", 0, "already subscribed to this channel")
    );
    c.send_text(r#"{"cmd":"dance"}"#);
    assert_eq!(
        c.read_text(),
        msg("400", "", 0, "unknown command \\\"dance\\\"")
    );
    for name in ["one", "two", "three"] {
        wait_subscribers(&server, name, 1);
        push(&server, name, &format!("to-{name}"));
        assert_eq!(c.read_text(), msg("data", name, 1, &format!("to-{name}")));
    }
    // Leaving the first channel keeps the others.
    c.send_text(r#"{"cmd":"unsub","cname":"one"}"#);
    wait_subscribers(&server, "one", 0);
    c.send_text(r#"{"cmd":"unsub","cname":"three"}"#);
    wait_subscribers(&server, "three", 0);
    push(&server, "one", "gone");
    push(&server, "three", "gone");
    push(&server, "two", "still");
    assert_eq!(c.read_text(), msg("data", "two", 2, "still"));
    // A resumed `sub` replays from the ring.
    c.send_text(r#"{"cmd":"sub","cname":"one","seq":2}"#);
    assert_eq!(c.read_text(), msg("data", "one", 2, "gone"));
    c.send_text(r#"{"cmd":"unsub","cname":"nope"}"#);
    assert_eq!(
        c.read_text(),
        msg("400", "nope", 0, "not subscribed to this channel")
    );
    // Dropping the last channel ends the connection with 1000.
    c.send_text(r#"{"cmd":"unsub","cname":"one"}"#);
    c.send_text(r#"{"cmd":"unsub","cname":"two"}"#);
    expect_close(&mut c, 1000);
    for name in ["one", "two", "three"] {
        wait_subscribers(&server, name, 0);
    }
}

fn pings_pongs_and_a_dead_peer(engine: &'static str) {
    let config = "front:\n\tpolling_timeout: 1\n";
    let server = Server::start(Opts::new(engine).config(config));
    let mut c = open(server.front, "/ws?cname=p");
    next_seq_marker(&mut c, "p", 1);
    // The client pings; the server answers with the same payload.
    c.send(&client_frame(true, 9, b"abc"));
    assert_eq!(
        c.read_frame(),
        Frame {
            fin: true,
            opcode: 10,
            payload: b"abc".to_vec()
        }
    );
    // Each heartbeat is a noop object and a ping; answering keeps the connection.
    for seq in 0..2 {
        assert_eq!(c.read_text(), msg("noop", "p", seq, ""));
        let ping = c.read_frame();
        assert_eq!(ping.opcode, 9, "{ping:?}");
        c.send(&client_frame(true, 10, &ping.payload));
    }
    // A client that stops answering is closed at the next heartbeat (1001).
    assert_eq!(c.read_text(), msg("noop", "p", 2, ""));
    assert_eq!(c.read_frame().opcode, 9);
    expect_close(&mut c, 1001);
    wait_subscribers(&server, "p", 0);
}

fn closing_handshake_and_fragmented_commands(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = open(server.front, "/ws?cname=f");
    next_seq_marker(&mut c, "f", 1);
    // A command in three fragments with a ping between them.
    c.send(&client_frame(false, 1, br#"{"cmd":"#));
    c.send(&client_frame(true, 9, b"mid"));
    c.send(&client_frame(false, 0, br#""sub","cna"#));
    c.send(&client_frame(true, 0, br#"me":"g"}"#));
    assert_eq!(c.read_frame().payload, b"mid", "the pong comes first");
    next_seq_marker(&mut c, "g", 1);
    // The client closes: its code is echoed and the server closes the TCP connection.
    let mut close = 4321u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    c.send(&client_frame(true, 8, &close));
    expect_close(&mut c, 4321);
    wait_subscribers(&server, "f", 0);
    wait_subscribers(&server, "g", 0);
}

fn refusals_and_channel_close(engine: &'static str) {
    let config = "front:\n\tauth: token\n";
    let server = Server::start(Opts::new(engine).config(config));
    let mut c = open(server.front, "/ws?cname=secret&token=nope");
    assert_eq!(c.read_text(), msg("401", "secret", 0, "Token error"));
    expect_close(&mut c, 1008);
    // With /sign's token it subscribes; /close sends `close` and ends it with 1000.
    let sign = admin_ok(&server, "/sign?cname=secret").text();
    let token = sign
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.get(..32))
        .expect("token")
        .to_string();
    let mut c = open(server.front, &format!("/ws?cname=secret&token={token}"));
    next_seq_marker(&mut c, "secret", 1);
    wait_subscribers(&server, "secret", 1);
    admin_ok(&server, "/close?cname=secret");
    assert_eq!(c.read_text(), msg("close", "secret", 1, ""));
    expect_close(&mut c, 1000);
}

fn a_slow_websocket_consumer_is_cut(engine: &'static str) {
    let config = "limits:\n\tmax_output_size: 65536\n";
    let server = Server::start(Opts::new(engine).config(config));
    let slow = open(server.front, "/ws?cname=slow");
    let mut fast = open(server.front, "/ws?cname=slow");
    wait_subscribers(&server, "slow", 2);
    next_seq_marker(&mut fast, "slow", 1);
    let content = "x".repeat(4000);
    let mut admin = Conn::open(server.admin);
    let mut seq = 0;
    let cut = eventually(std::time::Duration::from_secs(20), || {
        seq += 1;
        admin.get(&format!("/push?cname=slow&content={content}"));
        assert_eq!(admin.read_response().status, 200);
        assert_eq!(
            fast.read_text(),
            msg("data", "slow", seq, &content),
            "the reading subscriber gets every push"
        );
        info_count(&server) < 2
    });
    assert!(
        cut,
        "the subscriber that never reads is cut at its output cap"
    );
    drop(slow);
}

/// After the server's close frame no frame may follow (RFC 6455 §5.5.1), even when messages
/// reach the channel while the close frame still waits behind unsent output.
fn nothing_follows_the_close_frame(engine: &'static str) {
    let config = "limits:\n\tmax_output_size: 67108864\n";
    let server = Server::start(Opts::new(engine).config(config));
    let mut c = open(server.front, "/ws?cname=late");
    next_seq_marker(&mut c, "late", 1);
    wait_subscribers(&server, "late", 1);
    // The client stops reading until the loopback buffers are full and the server holds output.
    let content = "y".repeat(4000);
    let mut admin = Conn::open(server.admin);
    let before = 2500;
    for _ in 0..before {
        admin.get(&format!("/push?cname=late&content={content}"));
        assert_eq!(admin.read_response().status, 200);
    }
    c.send(&client_frame(true, 8, &1000u16.to_be_bytes()));
    // More pushes while the echoed close frame still waits behind the unsent output.
    for _ in 0..20 {
        admin.get("/push?cname=late&content=after");
        assert_eq!(admin.read_response().status, 200);
    }
    let mut texts = 0;
    loop {
        let frame = c.read_frame();
        if frame.opcode == 8 {
            assert_eq!(frame.close_code(), Some(1000));
            break;
        }
        assert_eq!(frame.opcode, 1, "{frame:?}");
        texts += 1;
    }
    assert!(texts <= before + 20, "{texts} text frames");
    let rest = c.read_to_close();
    assert!(
        rest.is_empty(),
        "{} bytes followed the close frame",
        rest.len()
    );
}

/// A WebSocket that resumes (seq and epoch) a channel that was closed and created again since
/// gets a `reset` with the new epoch, then everything the new incarnation stored, then live
/// messages; the same for a `sub` command with seq and epoch.
fn resuming_a_recreated_channel_is_a_reset(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let mut c = open(server.front, "/ws?cname=r");
    let old = next_seq_marker(&mut c, "r", 1);
    wait_subscribers(&server, "r", 1);
    push(&server, "r", "old");
    assert_eq!(c.read_text(), msg("data", "r", 1, "old"));
    admin_ok(&server, "/close?cname=r");
    assert_eq!(c.read_text(), msg("close", "r", 2, ""));
    expect_close(&mut c, 1000);
    push(&server, "r", "new");
    // Reconnecting with the seq after the last one seen and the old epoch.
    let mut c = open(server.front, &format!("/ws?cname=r&seq=2&epoch={old}"));
    let new = reset_marker(&mut c, "r", 1);
    assert_ne!(new, old, "a new incarnation gets a new epoch");
    assert_eq!(c.read_text(), msg("data", "r", 1, "new"));
    wait_subscribers(&server, "r", 1);
    push(&server, "r", "live");
    assert_eq!(c.read_text(), msg("data", "r", 2, "live"));
    // The same through a `sub` command on a socket opened on another channel.
    let mut d = open(server.front, "/ws?cname=other");
    next_seq_marker(&mut d, "other", 1);
    d.send_text(&format!(
        r#"{{"cmd":"sub","cname":"r","seq":2,"epoch":{old}}}"#
    ));
    assert_eq!(reset_marker(&mut d, "r", 1), new);
    assert_eq!(d.read_text(), msg("data", "r", 1, "new"));
    assert_eq!(d.read_text(), msg("data", "r", 2, "live"));
    // With the new epoch there is nothing to reset.
    let mut e = open(server.front, &format!("/ws?cname=r&seq=2&epoch={new}"));
    assert_eq!(e.read_text(), msg("data", "r", 2, "live"));
}

/// A WebSocket that resumes from a seq the replay ring no longer holds gets a `reset` naming the
/// oldest stored seq (same epoch), then what is stored.
fn resuming_a_seq_off_the_ring_is_a_gap_reset(engine: &'static str) {
    let config = "front:\n\tchannel_buffer_size: 2\n";
    let server = Server::start(Opts::new(engine).config(config));
    let mut c = open(server.front, "/ws?cname=g");
    let epoch = next_seq_marker(&mut c, "g", 1);
    wait_subscribers(&server, "g", 1);
    push(&server, "g", "m1");
    assert_eq!(c.read_text(), msg("data", "g", 1, "m1"));
    drop(c);
    wait_subscribers(&server, "g", 0);
    for content in ["m2", "m3", "m4", "m5"] {
        push(&server, "g", content);
    }
    // m2 and m3 fell off the ring of 2.
    let mut c = open(server.front, &format!("/ws?cname=g&seq=2&epoch={epoch}"));
    assert_eq!(reset_marker(&mut c, "g", 4), epoch, "the same incarnation");
    assert_eq!(c.read_text(), msg("data", "g", 4, "m4"));
    assert_eq!(c.read_text(), msg("data", "g", 5, "m5"));
    wait_subscribers(&server, "g", 1);
    push(&server, "g", "m6");
    assert_eq!(c.read_text(), msg("data", "g", 6, "m6"));
    // The same through a `sub` command.
    let mut d = open(server.front, "/ws?cname=other");
    next_seq_marker(&mut d, "other", 1);
    d.send_text(&format!(
        r#"{{"cmd":"sub","cname":"g","seq":2,"epoch":{epoch}}}"#
    ));
    assert_eq!(reset_marker(&mut d, "g", 5), epoch);
    assert_eq!(d.read_text(), msg("data", "g", 5, "m5"));
    assert_eq!(d.read_text(), msg("data", "g", 6, "m6"));
    // A seq the ring still holds is a plain replay.
    let mut e = open(server.front, &format!("/ws?cname=g&seq=6&epoch={epoch}"));
    assert_eq!(e.read_text(), msg("data", "g", 6, "m6"));
}

fn info_count(server: &Server) -> usize {
    support::front::info_subscribers(server, "slow")
}

engine_tests!(a_shutdown_tells_websockets_it_is_going_away);
fn a_shutdown_tells_websockets_it_is_going_away(engine: &'static str) {
    let mut server = Server::start(Opts::new(engine));
    let mut c = open(server.front, "/ws?cname=bye");
    next_seq_marker(&mut c, "bye", 1);
    wait_subscribers(&server, "bye", 1);
    let stopping = std::thread::spawn(move || server.terminate(std::time::Duration::from_secs(15)));
    expect_close(&mut c, 1001);
    assert_eq!(stopping.join().expect("terminated"), Some(0));
}

fn a_full_channel_refuses_a_websocket_like_a_stream(engine: &'static str) {
    // The per-channel cap holds for /ws as for /stream: the refused socket gets the same 429
    // object, then close 1013 (try again later); the subscriber already there keeps its channel.
    let config = "front:\n\tmax_subscribers_per_channel: 1\n";
    let server = Server::start(Opts::new(engine).threads(2).config(config));
    let mut first = open(server.front, "/ws?cname=full");
    next_seq_marker(&mut first, "full", 1);
    wait_subscribers(&server, "full", 1);
    let mut second = open(server.front, "/ws?cname=full");
    assert_eq!(
        second.read_text(),
        msg("429", "full", 0, "Too many subscribers")
    );
    expect_close(&mut second, 1013);
    let mut stream = Conn::open(server.front);
    stream.get("/stream?cname=full");
    assert_eq!(stream.read_head().0, 200);
    let refused = String::from_utf8(stream.read_chunk().expect("a refusal")).unwrap();
    assert_eq!(
        refused.trim_end(),
        msg("429", "full", 0, "Too many subscribers"),
        "the same object as on /stream"
    );
    push(&server, "full", "still_here");
    assert_eq!(first.read_text(), msg("data", "full", 1, "still_here"));
}
