//! Full tables: at `server.max_connections`, at the open-file limit (epoll) and with every io_uring
//! direct-descriptor table full, a new connection is closed at once, unserved (the client reads
//! EOF or a reset, never waits), and counted in `rcomet_connections_refused_total`; established
//! connections keep working (a subscriber still receives a push, the admin connection still
//! answers), and the server accepts again as soon as a connection closes. A burst of connects
//! through a tiny io_uring table never makes the kernel close a connection it accepted.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::front::{chunk, expect, msg};
use support::*;

/// Long enough that idle connections held by a test are never cut by the header timeout.
const CONFIG: &str = "server:\n\theader_timeout: 120\n";

/// What a client saw on a fresh connection after sending `GET /ping`.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A response arrived.
    Served,
    /// The server closed the connection (EOF or reset) without a byte.
    Refused,
}

/// Connects, sends a request that keeps the connection open (`/ping` on the front port, `/stats`
/// on the admin port), reads: served or refused. Panics when nothing happens within
/// [`IO_TIMEOUT`] (a connection left hanging).
fn attempt(server: &Server, addr: SocketAddr) -> (Outcome, Option<TcpStream>) {
    let path = if addr == server.admin {
        "/stats"
    } else {
        "/ping"
    };
    let mut s = TcpStream::connect(addr).expect("connect (the kernel completes the handshake)");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    // A refused connection may already be closed: the write may fail, the read says what happened.
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => (Outcome::Refused, None),
        Ok(_) => (Outcome::Served, Some(s)),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
            (Outcome::Refused, None)
        }
        Err(e) => panic!("a new connection was left hanging: {e}"),
    }
}

/// A new front connection served within 10 s of attempts (room may come back a turn late).
fn served_within(server: &Server, what: &str) -> Option<TcpStream> {
    let mut served = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            match attempt(server, server.front) {
                (Outcome::Served, s) => {
                    served = s;
                    true
                }
                (Outcome::Refused, _) => false,
            }
        }),
        "{what}"
    );
    served
}

/// Asserts that a new connection is refused at once.
fn assert_refused(server: &Server, addr: SocketAddr, what: &str) {
    let (outcome, _) = attempt(server, addr);
    assert_eq!(outcome, Outcome::Refused, "{what}");
}

/// A family of `/metrics` summed over its series, read on an open admin connection (a new one
/// would be refused while the tables are full).
fn metric_on(admin: &mut Conn, family: &str) -> u64 {
    admin.get("/metrics");
    let r = admin.read_response();
    assert_eq!(r.status, 200, "/metrics: {}", r.head);
    metric_sum(&r.text(), family)
}

/// Open connections as the server counts them.
fn connections(admin: &mut Conn) -> u64 {
    metric_on(admin, "rcomet_connections")
}

/// A `/stream` subscriber of `cname` that got its head and `next_seq` frame.
fn subscriber(server: &Server, cname: &str) -> Conn {
    support::admin::stream(server, cname, 1)
}

/// Opens connections (each served a ping, then idle) until one is refused; returns the served
/// ones. The server must be full within `most` connections.
fn fill(server: &Server, most: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    loop {
        assert!(held.len() < most, "{most} connections and none refused");
        match attempt(server, server.front) {
            (Outcome::Served, Some(s)) => held.push(s),
            _ => return held,
        }
    }
}

/// What every full-table test checks once the server is full: new connections on both ports are
/// refused and counted, the subscriber still gets a push, and the server recovers when two idle
/// connections close. With `admin_slots`, the last slots may still be promised to accepts waiting
/// on the admin port (io_uring reserves a slot for each accept it arms, at most 8 on the admin
/// port), so the admin port may serve a few more connections before it refuses.
fn refuses_keeps_and_recovers(
    server: &Server,
    admin: &mut Conn,
    sub: &mut Conn,
    mut idle: Vec<TcpStream>,
    admin_slots: bool,
) {
    let refused_before = metric_on(admin, "rcomet_connections_refused_total");
    for i in 0..3 {
        assert_refused(
            server,
            server.front,
            &format!("front connection {i} at full"),
        );
    }
    let mut extra_admin = Vec::new();
    if admin_slots {
        loop {
            assert!(extra_admin.len() <= 8, "the admin port never refused");
            match attempt(server, server.admin) {
                (Outcome::Served, s) => extra_admin.push(s),
                (Outcome::Refused, _) => break,
            }
        }
    } else {
        assert_refused(server, server.admin, "admin connection at full");
    }
    assert_eq!(
        metric_on(admin, "rcomet_connections_refused_total") - refused_before,
        4,
        "every refusal is counted"
    );
    drop(extra_admin);
    // Established connections keep working.
    admin.get("/push?cname=full&content=still");
    let r = admin.read_response();
    assert_eq!(r.status, 200, "{}", r.text());
    expect(
        sub,
        &chunk(&format!("{}\n", msg("data", "full", 1, "still"))),
    );
    // Room returns: two connections close and new ones are served again.
    idle.truncate(idle.len() - 2);
    let served = served_within(server, "no new connection was served after two closed");
    // The two closes may be handled in different turns: the second room can come a little later.
    let second = served_within(server, "a second new connection is served too");
    drop(second);
    drop(served);
    drop(idle);
}

engine_tests!(at_max_connections_new_ones_are_refused_and_counted);
fn at_max_connections_new_ones_are_refused_and_counted(engine: &'static str) {
    let server = Server::start(
        Opts::new(engine)
            .config(CONFIG)
            .arg("--max-connections")
            .arg("6"),
    );
    let mut admin = Conn::open(server.admin);
    let mut sub = subscriber(&server, "full");
    let idle = fill(&server, 10);
    assert_eq!(idle.len(), 4, "admin, subscriber and four more make six");
    assert_eq!(connections(&mut admin), 6);
    refuses_keeps_and_recovers(&server, &mut admin, &mut sub, idle, false);
}

#[test]
fn at_the_open_file_limit_new_connections_are_refused_epoll() {
    if !runs_on(
        "epoll",
        "at_the_open_file_limit_new_connections_are_refused",
    ) {
        return;
    }
    const NOFILE: u64 = 64;
    let server = Server::start(Opts::new("epoll").config(CONFIG).nofile(NOFILE));
    let mut admin = Conn::open(server.admin);
    let mut sub = subscriber(&server, "full");
    // Epoll holds a descriptor per connection: the open-file limit, less a few descriptors kept
    // for the server's own files, is the connection limit.
    let limit = metric_on(&mut admin, "rcomet_connections_max");
    assert!((10..NOFILE - 10).contains(&limit), "limit {limit}");
    let idle = fill(&server, NOFILE as usize);
    assert_eq!(idle.len() as u64 + 2, limit);
    assert_eq!(connections(&mut admin), limit);
    let below_limit = std::fs::read_dir(format!("/proc/{}/fd", server.pid))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .filter(|&fd| fd < NOFILE)
        .count() as u64;
    assert!(
        below_limit < NOFILE,
        "descriptors are left for the server's own files"
    );
    refuses_keeps_and_recovers(&server, &mut admin, &mut sub, idle, false);
}

/// A server with `slots` direct descriptors in tables of `table` slots, one worker.
fn tiny_uring(slots: u32, table: u32) -> Server {
    let config = format!(
        "server:\n\theader_timeout: 120\n\turing_slots: {slots}\n\turing_table_size: {table}\n"
    );
    Server::start(
        Opts::new("io_uring")
            .threads(1)
            .config(&config)
            .capture_log(),
    )
}

fn no_table_overflow(server: &Server, admin: &mut Conn) {
    let lines = server.log_lines();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("direct-descriptor table full on accept")),
        "the kernel found a table full: {lines:?}"
    );
    assert_eq!(metric_on(admin, "rcomet_accept_errors_total"), 0);
}

#[test]
fn with_every_uring_table_full_new_connections_are_refused_io_uring() {
    if !runs_on(
        "io_uring",
        "with_every_uring_table_full_new_connections_are_refused",
    ) {
        return;
    }
    let server = tiny_uring(6, 2);
    let mut admin = Conn::open(server.admin);
    let mut sub = subscriber(&server, "full");
    let idle = fill(&server, 10);
    // The last free slot may be promised to an accept waiting on the admin port.
    assert!((2..=4).contains(&idle.len()), "{} held", idle.len());
    assert!(connections(&mut admin) >= 4);
    refuses_keeps_and_recovers(&server, &mut admin, &mut sub, idle, true);
    no_table_overflow(&server, &mut admin);
}

#[test]
fn a_burst_through_a_tiny_uring_table_is_served_or_refused_never_dropped_io_uring() {
    if !runs_on("io_uring", "a_burst_through_a_tiny_uring_table") {
        return;
    }
    const CLIENTS: usize = 16;
    // Until the 8-slot table has been filled and refilled twice over (bounded in attempts and
    // time: a refused attempt takes microseconds, a served one a round trip, so how many
    // attempts that takes depends on the machine's scheduling).
    const SERVED_TARGET: usize = 24;
    const MAX_EACH: usize = 500;
    let server = tiny_uring(8, 3);
    let mut admin = Conn::open(server.admin);
    let accepted_before = metric_on(&mut admin, "rcomet_connections_accepted_total");
    let served = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let attempts = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            let (served, refused, attempts, server) = (&served, &refused, &attempts, &server);
            scope.spawn(move || {
                for _ in 0..MAX_EACH {
                    if served.load(Ordering::Relaxed) >= SERVED_TARGET || Instant::now() > deadline
                    {
                        return;
                    }
                    attempts.fetch_add(1, Ordering::Relaxed);
                    match attempt(server, server.front).0 {
                        Outcome::Served => served.fetch_add(1, Ordering::Relaxed),
                        Outcome::Refused => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
    });
    let (served, refused) = (
        served.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    eprintln!("burst: {served} served, {refused} refused");
    assert_eq!(served + refused, attempts.load(Ordering::Relaxed));
    // The table filled and was refilled as clients left.
    assert!(served >= SERVED_TARGET, "only {served} served");
    // Every connection the clients saw closed unserved was one the server refused: none was
    // accepted by the kernel and then closed by it.
    let accepted = metric_on(&mut admin, "rcomet_connections_accepted_total") - accepted_before;
    assert_eq!(accepted as usize, served);
    assert_eq!(
        metric_on(&mut admin, "rcomet_connections_refused_total") as usize,
        refused
    );
    no_table_overflow(&server, &mut admin);
    // Everyone left: the slots came back.
    assert!(eventually(Duration::from_secs(10), || connections(
        &mut admin
    ) == 1));
    let r = get(server.front, "/ping");
    assert_eq!(r.status, 200);
}
