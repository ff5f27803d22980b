//! Engine backends under one set of test bodies: each body drives a tiny line server (see
//! `engine_support`) with real loopback clients, as two tests, `NAME_epoll` and `NAME_io_uring`
//! (`engine_tests!` in `support`). The io_uring runs are skipped, with the probe's reason, where
//! io_uring is unavailable; `RCOMET_TEST_ENGINES` narrows the run to one backend, the tests for one
//! backend's own limits included.
//!
//! Depends on: rcomet::engine, engine_support, support (the per-engine test macro only).

mod engine_support;
mod support;

use engine_support::{pattern, Client, Cmd, Event, Server, Stats, LISTENER_TAG, PEER_LISTENER_TAG};
use rcomet::engine::epoll::Epoll;
use rcomet::engine::uring::{Uring, UringConfig};
use rcomet::engine::{ConnId, Token};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use support::{engine_tests, runs_on};

/// Larger than a loopback socket's send plus receive buffers (4 MiB each at most here), so a
/// client that does not read forces the server's flush to go Pending.
const BIG: usize = 12 * 1024 * 1024;
/// Long enough for bytes that were going to arrive to arrive, when a test shows an absence.
const QUIET: Duration = Duration::from_millis(300);

/// A server on `engine` (uring with [`uring_defaults`]); with `peer_listener`, it also listens on
/// a port that wants peer addresses.
fn start_server(engine: &str, peer_listener: bool) -> Server {
    match engine {
        "epoll" => Server::start_with(Epoll::new, peer_listener),
        "io_uring" => Server::start_with(|| Uring::new(uring_defaults()), peer_listener),
        other => panic!("no backend {other}"),
    }
}

/// A uring server for the io_uring-only test `test`, or `None` (with the reason printed) when
/// this run leaves io_uring out.
fn uring_server(test: &str, config: UringConfig, peer_listener: bool) -> Option<Server> {
    runs_on("io_uring", test).then(|| Server::start_with(move || Uring::new(config), peer_listener))
}

/// Defaults with multishot accepts on (and a headroom small enough that they are in use), and few
/// small receive buffers so that bursts need several receives and connections wait for a free
/// buffer.
fn uring_defaults() -> UringConfig {
    UringConfig {
        multishot_accept: true,
        accept_headroom: 256,
        recv_buffers: 4,
        recv_buffer_size: 512,
        ..UringConfig::new(4096)
    }
}

fn assert_clean(stats: &Stats) {
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
}

engine_tests!(
    a_listener_that_wants_peers_reports_each_client_address,
    accepts_echoes_and_sees_the_peer_close,
    a_large_response_goes_pending_then_writable,
    pause_holds_input_until_resume,
    close_with_a_send_in_flight,
    wakes_from_other_threads,
    a_stale_token_after_close_and_reuse_gets_nothing,
    refusing_an_accepted_connection_closes_it,
    bursts_from_many_clients_arrive_whole_and_in_order,
);

fn accepts_echoes_and_sees_the_peer_close(engine: &'static str) {
    let server = start_server(engine, false);
    let (mut client, token, _) = server.connect_with_id();
    client.echo("hello");
    client.echo(&"x".repeat(3000));
    client.send("echo a\necho b\n");
    assert_eq!((client.line(), client.line()), ("a".into(), "b".into()));
    drop(client);
    server.expect("peer close", |e| *e == Event::PeerClosed { token });
    server.expect("close", |e| *e == Event::Closed { token });
    assert_clean(&server.stats());
}

fn a_large_response_goes_pending_then_writable(engine: &'static str) {
    let server = start_server(engine, false);
    let (mut client, token, _) = server.connect_with_id();
    client.send(&format!("big {BIG}\n"));
    // The client reads nothing until the server saw its flush go Pending.
    server.expect("pending flush", |e| *e == Event::BigPending { token });
    let bytes = client.read_exact(BIG + 1);
    let wrong = bytes[..BIG]
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern(i));
    assert_eq!(wrong, None, "first wrong byte");
    assert_eq!(bytes[BIG], b'\n');
    server.expect("flush done", |e| *e == Event::BigDone { token });
    client.echo("after");
    let stats = server.stats();
    assert!(stats.writable >= 1, "{stats:?}");
    assert_clean(&stats);
}

fn pause_holds_input_until_resume(engine: &'static str) {
    let server = start_server(engine, false);
    let (mut client, token, _) = server.connect_with_id();
    client.send("pause\necho a\n");
    server.expect("pause", |e| *e == Event::Paused { token });
    client.send("echo b\n");
    assert!(client.silent_for(QUIET), "input was processed while paused");
    server.send(Cmd::Resume(token));
    assert_eq!((client.line(), client.line()), ("a".into(), "b".into()));
    client.echo("c");
    assert_clean(&server.stats());
}

fn close_with_a_send_in_flight(engine: &'static str) {
    let server = start_server(engine, false);
    let (mut client, token, _) = server.connect_with_id();
    client.send(&format!("bigclose {}\n", 4 * BIG));
    server.expect("close", |e| *e == Event::Closed { token });
    let received = client.read_until_closed();
    assert!(received < 4 * BIG + 1, "got all {received} bytes");
    let mut next = server.connect();
    next.echo("still serving");
    assert_clean(&server.stats());
}

fn wakes_from_other_threads(engine: &'static str) {
    let server = start_server(engine, false);
    let before = server.stats().wakes;
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let (cmds, waker) = (server.commands(), server.waker());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let (tx, rx) = crossbeam_channel::unbounded();
                    cmds.send(Cmd::Snapshot(tx)).expect("send");
                    waker.wake();
                    rx.recv_timeout(engine_support::PATIENCE)
                        .expect("woken server answers");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("sender thread");
    }
    let stats = server.stats();
    assert!(stats.wakes > before, "{stats:?}");
    assert_clean(&stats);
}

fn a_stale_token_after_close_and_reuse_gets_nothing(engine: &'static str) {
    let server = start_server(engine, false);
    let (mut first, old, _) = server.connect_with_id();
    // Input queued behind the close must never surface under the old token.
    first.send("close\necho late\n");
    server.expect("close", |e| *e == Event::Closed { token: old });
    assert_eq!(first.read_until_closed(), 0);
    let (mut second, new, _) = server.connect_with_id();
    assert_eq!(new.slot, old.slot, "the worker slot is reused");
    assert_eq!(new.generation, old.generation + 1);
    second.echo("fresh");
    drop(first);
    second.echo("again");
    assert_clean(&server.stats());
}

fn refusing_an_accepted_connection_closes_it(engine: &'static str) {
    let server = start_server(engine, false);
    server.send(Cmd::Refuse(1));
    server.stats();
    let mut refused = server.connect();
    server.expect("refusal", |e| matches!(e, Event::Refused { .. }));
    assert_eq!(refused.read_until_closed(), 0);
    server.connect().echo("welcome");
    assert_clean(&server.stats());
}

fn bursts_from_many_clients_arrive_whole_and_in_order(engine: &'static str) {
    const LINES: usize = 400;
    let server = start_server(engine, false);
    let mut clients: Vec<Client> = (0..6).map(|_| server.connect()).collect();
    for (c, client) in clients.iter_mut().enumerate() {
        let burst: String = (0..LINES).map(|i| format!("echo {c}-{i}\n")).collect();
        client.send(&burst);
    }
    for (c, client) in clients.iter_mut().enumerate() {
        for i in 0..LINES {
            assert_eq!(client.line(), format!("{c}-{i}"));
        }
    }
    assert_clean(&server.stats());
}

/// The `Accepted` events of `tokens` (listener tag and peer), in any order.
fn accepted_events(server: &Server, tokens: &[Token]) -> HashMap<Token, (u32, Option<SocketAddr>)> {
    let mut seen = HashMap::new();
    while seen.len() < tokens.len() {
        let event = server.expect(
            "accept",
            |e| matches!(e, Event::Accepted { token, .. } if tokens.contains(token)),
        );
        if let Event::Accepted {
            token,
            listener,
            peer,
            ..
        } = event
        {
            seen.insert(token, (listener, peer));
        }
    }
    seen
}

fn a_listener_that_wants_peers_reports_each_client_address(engine: &'static str) {
    let server = start_server(engine, true);
    let peer_listener = server.peer_addr.expect("peer listener");
    let from_ip = |ip: Ipv4Addr| Client::connect_from(IpAddr::V4(ip), peer_listener);
    for ip in [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::LOCALHOST] {
        let mut client = from_ip(ip);
        let (token, _) = client.id();
        let seen = accepted_events(&server, &[token]);
        let want = client.local_addr();
        assert_eq!(want.ip(), IpAddr::V4(ip));
        assert_eq!(seen.get(&token), Some(&(PEER_LISTENER_TAG, Some(want))));
        client.echo("served");
    }
    // A burst larger than any accept window: every connection still comes with its address.
    let mut burst: Vec<Client> = (0..24u8)
        .map(|i| from_ip(Ipv4Addr::new(127, 0, 0, 2 + i % 3)))
        .collect();
    let tokens: Vec<Token> = burst.iter_mut().map(|c| c.id().0).collect();
    let seen = accepted_events(&server, &tokens);
    for (client, token) in burst.iter_mut().zip(&tokens) {
        let want = (PEER_LISTENER_TAG, Some(client.local_addr()));
        assert_eq!(seen.get(token), Some(&want));
        client.echo("burst");
    }
    // The plain listener keeps working; whatever peer it reports must be the real one.
    let (mut plain, token, _) = server.connect_with_id();
    let seen = accepted_events(&server, &[token]);
    let (listener, peer) = seen.get(&token).copied().expect("plain accept");
    assert_eq!(listener, LISTENER_TAG);
    if let Some(peer) = peer {
        assert_eq!(peer, plain.local_addr());
    }
    plain.echo("plain");
    assert_clean(&server.stats());
}

/// Opens `count` connections one after the other (each proven by an echo), echoes on all of them
/// again, then closes them all. Returns the connection ids the server saw.
fn holds_many_connections(server: &Server, count: usize) -> Vec<ConnId> {
    let mut clients: Vec<Client> = (0..count)
        .map(|i| {
            let mut client = server.connect();
            client.echo(&format!("hello {i}"));
            client
        })
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.echo(&format!("again {i}"));
    }
    let stats = server.stats();
    assert_eq!(stats.live, count);
    drop(clients);
    let stats = server.await_stats("all closed", |s| s.live == 0);
    assert_clean(&stats);
    stats.conns_seen
}

#[test]
fn epoll_holds_more_connections_than_a_small_table() {
    if !runs_on("epoll", "epoll_holds_more_connections_than_a_small_table") {
        return;
    }
    let server = start_server("epoll", false);
    let seen = holds_many_connections(&server, 200);
    assert_eq!(seen.len(), 200);
}

#[test]
fn uring_holds_more_connections_than_a_small_table() {
    let config = UringConfig {
        table_size: Some(64),
        multishot_accept: true,
        accept_headroom: 16,
        // Each table after the first is opened while clients keep arriving.
        open_next_table_below: 8,
        ..UringConfig::new(256)
    };
    let Some(server) = uring_server(
        "uring_holds_more_connections_than_a_small_table",
        config,
        false,
    ) else {
        return;
    };
    let seen = holds_many_connections(&server, 200);
    let mut ids = seen.clone();
    ids.sort_unstable_by_key(|c| c.0);
    ids.dedup();
    assert_eq!(ids.len(), 200, "every live connection has its own id");
    let tables: std::collections::BTreeSet<usize> =
        seen.iter().map(|&c| Uring::table_of(c)).collect();
    assert_eq!(
        tables.len(),
        4,
        "connections spread over every table: {tables:?}"
    );
}

#[test]
fn uring_full_backend_refuses_new_clients_until_a_slot_frees() {
    let config = UringConfig {
        table_size: Some(4),
        multishot_accept: true,
        accept_headroom: 2,
        ..UringConfig::new(8)
    };
    let Some(server) = uring_server(
        "uring_full_backend_refuses_new_clients_until_a_slot_frees",
        config,
        false,
    ) else {
        return;
    };
    let mut held: Vec<Client> = (0..8)
        .map(|i| {
            let mut client = server.connect();
            client.echo(&format!("{i}"));
            client
        })
        .collect();
    // Every slot is taken: the next client is closed at once, unserved, not left waiting.
    let mut refused = server.connect();
    refused.try_send("echo refused\n");
    assert_eq!(refused.line_or_closed(), None, "served past the capacity");
    let stats = server.await_stats("the refusal", |s| s.refused_by_backend == 1);
    assert_eq!(stats.accepted, 8);
    // A slot frees: new clients are served again (one may still meet the refusal in flight).
    held.pop();
    let mut served = None;
    for _ in 0..3 {
        let mut client = server.connect();
        client.try_send("echo again\n");
        if let Some(line) = client.line_or_closed() {
            assert_eq!(line, "again");
            served = Some(client);
            break;
        }
    }
    assert!(served.is_some(), "no client served after a slot freed");
    for client in held.iter_mut() {
        client.echo("still here");
    }
    assert_clean(&server.stats());
}

#[test]
fn uring_sizes_its_tables_for_the_capacity() {
    if !runs_on("io_uring", "uring_sizes_its_tables_for_the_capacity") {
        return;
    }
    let config = UringConfig {
        table_size: Some(100),
        ..UringConfig::new(250)
    };
    let backend = Uring::new(config).expect("uring");
    assert_eq!((backend.tables(), backend.capacity()), (3, 250));
    // Tables smaller than the margin for opening the next one are all opened at once.
    assert_eq!(backend.tables_open(), 3);
}

#[test]
fn uring_opens_a_table_only_when_the_open_ones_are_nearly_full() {
    if !runs_on(
        "io_uring",
        "uring_opens_a_table_only_when_the_open_ones_are_nearly_full",
    ) {
        return;
    }
    let config = UringConfig {
        table_size: Some(5000),
        ..UringConfig::new(20_000)
    };
    let backend = Uring::new(config).expect("uring");
    assert_eq!((backend.tables(), backend.tables_open()), (4, 1));
    assert_eq!(backend.capacity(), 20_000);
}

#[test]
fn uring_full_backend_shared_with_a_peer_listener_loses_no_client() {
    // Multishot accepts off (the default): every accept, on either listener, reserves its slot,
    // so a burst larger than the backend is refused by the backend, never dropped by the kernel.
    let config = UringConfig {
        table_size: Some(4),
        ..UringConfig::new(8)
    };
    let Some(server) = uring_server(
        "uring_full_backend_shared_with_a_peer_listener_loses_no_client",
        config,
        true,
    ) else {
        return;
    };
    let peer_listener = server.peer_addr.expect("peer listener");
    let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    // Twice the capacity, half on each listener: only eight can be held at once.
    let mut clients: Vec<Client> = (0..16)
        .map(|i| {
            if i % 2 == 0 {
                Client::connect_from(local, peer_listener)
            } else {
                server.connect()
            }
        })
        .collect();
    let stats = server.await_stats("a full backend", |s| {
        s.accepted + s.refused_by_backend == 16
    });
    assert_eq!(stats.accepted, 8);
    let held = clients
        .iter_mut()
        .filter_map(|c| {
            c.try_send("echo held\n");
            c.line_or_closed()
        })
        .count();
    assert_eq!(held, 8, "the clients not accepted were closed");
    let mut late = server.connect();
    late.try_send("echo late\n");
    assert_eq!(late.line_or_closed(), None, "served past the capacity");
    // Closing the clients frees every slot; the harness checks that each peer-listener
    // connection came with its address.
    drop(clients);
    drop(late);
    let stats = server.await_stats("every client accepted or refused, and closed", |s| {
        s.accepted == 8 && s.refused_by_backend == 9 && s.live == 0
    });
    assert_clean(&stats);
}

#[test]
fn uring_burst_into_a_tiny_table_loses_no_client() {
    // The server's configuration (multishot accepts off) and a burst four times the capacity
    // arriving at once: the kernel must never take a connection it has no slot for (it would
    // close it). Each client is served or refused by the backend, none is left waiting.
    let config = UringConfig {
        table_size: Some(4),
        ..UringConfig::new(8)
    };
    let Some(server) = uring_server(
        "uring_burst_into_a_tiny_table_loses_no_client",
        config,
        false,
    ) else {
        return;
    };
    // One client first: the backend arms its accepts for an empty table, then the burst comes.
    let mut first = server.connect();
    first.echo("armed");
    let mut clients: Vec<Client> = (0..31).map(|_| server.connect()).collect();
    clients.push(first);
    for client in clients.iter_mut() {
        client.try_send("echo hi\n");
    }
    let mut served = 0;
    for client in clients.iter_mut() {
        if let Some(line) = client.line_or_closed() {
            assert_eq!(line, "hi");
            served += 1;
        }
    }
    assert_eq!(served, 8, "the table's eight slots were served");
    let stats = server.await_stats("every client accepted or refused", |s| {
        s.accepted + s.refused_by_backend == 32
    });
    assert_eq!((stats.accepted, stats.refused_by_backend), (8, 24));
    drop(clients);
    let stats = server.await_stats("every client closed", |s| s.live == 0);
    assert_clean(&stats);
}
