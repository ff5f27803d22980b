//! Connection management seen from raw sockets: the request-head timeout against slowloris and
//! silent clients, the idle keep-alive timeout (which must spare busy connections and
//! subscribers), and 10,000 concurrent idle connections spread over the workers by SO_REUSEPORT
//! and released without keeping their memory, and heartbeats of thousands of subscribers due
//! together. Depends only on `tests/support`.
//!
//! Timeouts are checked on several connections opened a quarter of a second apart, so a server
//! that rounds its deadlines to a coarse clock is caught whatever the phase of that clock.
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use support::*;

/// A connection being watched until the server closes it.
struct Watched {
    stream: TcpStream,
    /// When the connection's timeout started counting (its last byte exchanged).
    since: Instant,
    /// Bytes the server sent while watched.
    bytes: Vec<u8>,
    /// How long after `since` the server closed it.
    closed_after: Option<Duration>,
}

impl Watched {
    fn new(stream: TcpStream, since: Instant) -> Watched {
        stream.set_nonblocking(true).expect("nonblocking");
        Watched {
            stream,
            since,
            bytes: Vec::new(),
            closed_after: None,
        }
    }

    /// Reads what is there; records the close on EOF or reset.
    fn poll(&mut self) {
        if self.closed_after.is_some() {
            return;
        }
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.closed_after = Some(self.since.elapsed());
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Polls every watched connection until all are closed or `limit` passes, calling `each_round`
/// between rounds (about every 10 ms).
fn watch(conns: &mut [Watched], limit: Duration, mut each_round: impl FnMut(&mut [Watched])) {
    let deadline = Instant::now() + limit;
    loop {
        for c in conns.iter_mut() {
            c.poll();
        }
        if conns.iter().all(|c| c.closed_after.is_some()) || Instant::now() > deadline {
            return;
        }
        each_round(conns);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Problems with the close times: each connection must be closed no earlier than `timeout`
/// (less 100 ms of measuring slack) and within `timeout + 3 s`.
fn close_time_problems(what: &str, conns: &[Watched], timeout: Duration) -> Vec<String> {
    let times: Vec<Option<Duration>> = conns.iter().map(|c| c.closed_after).collect();
    println!("{what}: closed after {times:?} (timeout {timeout:?})");
    let mut problems = Vec::new();
    for (i, t) in times.iter().enumerate() {
        match t {
            None => problems.push(format!("{what} #{i} never closed")),
            Some(t) if *t + Duration::from_millis(100) < timeout => problems.push(format!(
                "{what} #{i} closed after {t:?}, before its {timeout:?} timeout"
            )),
            Some(t) if *t > timeout + Duration::from_secs(3) => problems.push(format!(
                "{what} #{i} closed after {t:?}, long after its {timeout:?} timeout"
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Fails the test with every problem found.
fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Per-worker `connections` values from `/stats`.
fn worker_connections(server: &Server) -> Vec<u64> {
    let text = get(server.admin, "/stats").text();
    let workers = text
        .split_once("\"workers\"")
        .map(|(_, w)| w)
        .unwrap_or_else(|| panic!("no workers in /stats: {text}"));
    workers
        .split("\"connections\":")
        .skip(1)
        .map(|piece| {
            let digits: String = piece
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits
                .parse()
                .unwrap_or_else(|_| panic!("bad /stats: {text}"))
        })
        .collect()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("set timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("set timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Waits until a quarter of a second has passed since `last` (staggering connections).
fn stagger(last: &mut Instant) {
    let next = *last + Duration::from_millis(250);
    while Instant::now() < next {
        std::thread::sleep(next - Instant::now());
    }
    *last = next;
}

const REQUEST_TIMEOUT_PAGE: &str =
    "<HTML><HEAD>\n<TITLE>408 Request Timeout</TITLE>\n</HEAD><BODY>\n<H1>Request Timeout</H1>\n</BODY></HTML>\n";

engine_tests!(slowloris_and_silent_clients_are_cut_off_after_the_header_timeout);
fn slowloris_and_silent_clients_are_cut_off_after_the_header_timeout(engine: &'static str) {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let server = Server::start(
        Opts::new(engine)
            .arg("--header-timeout")
            .arg("2")
            .arg("--keepalive-timeout")
            .arg("30"),
    );
    // Four slowloris clients (a header line every 200 ms, never the blank line) and two
    // clients that send nothing at all, opened a quarter of a second apart.
    let mut slow = Vec::new();
    let mut silent = Vec::new();
    let mut last = Instant::now();
    for i in 0..6 {
        if i > 0 {
            stagger(&mut last);
        }
        let mut s = connect(server.front);
        let since = Instant::now();
        if i % 3 == 2 {
            silent.push(Watched::new(s, since));
        } else {
            s.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n")
                .expect("send");
            slow.push(Watched::new(s, since));
        }
    }
    let mut round = 0u32;
    let mut all: Vec<Watched> = slow.into_iter().chain(silent).collect();
    watch(&mut all, TIMEOUT + Duration::from_secs(6), |conns| {
        round += 1;
        if round.is_multiple_of(20) {
            for c in conns
                .iter_mut()
                .take(4)
                .filter(|c| c.closed_after.is_none())
            {
                // A write error means the server already closed; poll() will see it.
                let _ = c
                    .stream
                    .write_all(format!("X-{round}: slow\r\n").as_bytes());
            }
        }
    });
    let (slow, silent) = all.split_at(4);
    for (i, c) in slow.iter().chain(silent).enumerate() {
        let text = c.text();
        if text.is_empty() {
            continue;
        }
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        assert_eq!(
            normalize_date(head),
            format!(
                "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/html\r\nConnection: close\r\nDate: D\r\nContent-Length: {}",
                REQUEST_TIMEOUT_PAGE.len()
            ),
            "client #{i}"
        );
        assert_eq!(body, REQUEST_TIMEOUT_PAGE, "client #{i}");
    }
    assert!(
        slow.iter().all(|c| !c.bytes.is_empty()),
        "a slowloris client was closed without its 408"
    );
    // The server is fine afterwards.
    assert_eq!(get(server.front, "/ping").status, 200);
    let mut problems = close_time_problems(&format!("{engine}: silent client"), silent, TIMEOUT);
    problems.extend(close_time_problems(
        &format!("{engine}: slowloris client"),
        slow,
        TIMEOUT,
    ));
    assert_no_problems(&problems);
}

engine_tests!(idle_keep_alive_connections_are_closed_but_busy_ones_and_subscribers_are_not);
fn idle_keep_alive_connections_are_closed_but_busy_ones_and_subscribers_are_not(
    engine: &'static str,
) {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let server = Server::start(
        Opts::new(engine)
            .arg("--keepalive-timeout")
            .arg("1")
            .arg("--header-timeout")
            .arg("30"),
    );
    // A subscriber idle for longer than the keep-alive timeout must stay.
    let mut sub = Conn::open(server.front);
    sub.get("/stream?cname=stay");
    assert_eq!(sub.read_head().0, 200);
    assert!(sub.read_chunk().is_some(), "no next_seq chunk");

    // A busy connection: a request every 300 ms, never idle for a whole timeout.
    let mut busy = Busy::new(Conn::open(server.front).stream);

    // Four idle keep-alive connections, a quarter of a second apart.
    let mut idle = Vec::new();
    let mut last = Instant::now();
    for i in 0..4 {
        if i > 0 {
            stagger(&mut last);
        }
        let mut c = Conn::open(server.front);
        c.get("/ping?cb=i");
        assert_eq!(c.read_response().status, 200);
        idle.push(Watched::new(c.stream, Instant::now()));
    }
    watch(&mut idle, TIMEOUT + Duration::from_secs(6), |_| {
        busy.round()
    });
    // Keep the busy connection going for a while past the last idle close.
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until && busy.closed_at.is_none() {
        busy.round();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        idle.iter().all(|c| c.bytes.is_empty()),
        "idle connections got bytes"
    );
    let mut problems = close_time_problems(&format!("{engine}: idle keep-alive"), &idle, TIMEOUT);
    if let Some(at) = busy.closed_at {
        problems.push(format!(
            "a connection sending a request every 300 ms was closed {at:?} after it opened, after {} requests",
            busy.requests
        ));
    }

    // The subscriber is still served.
    let r = get(server.admin, "/push?cname=stay&content=still");
    assert_eq!(r.text(), "{\"type\":\"ok\"}\n");
    let msg = sub.read_chunk().expect("subscriber stream ended");
    assert_eq!(
        String::from_utf8_lossy(&msg),
        "{\"type\":\"data\",\"cname\":\"stay\",\"seq\":1,\"content\":\"still\"}\n"
    );
    assert_no_problems(&problems);
}

/// A keep-alive connection that sends a `/ping` every 300 ms.
struct Busy {
    stream: TcpStream,
    start: Instant,
    next: Instant,
    requests: u32,
    /// When the server closed it instead of answering, after `start`.
    closed_at: Option<Duration>,
}

impl Busy {
    fn new(stream: TcpStream) -> Busy {
        let start = Instant::now();
        Busy {
            stream,
            start,
            next: start,
            requests: 0,
            closed_at: None,
        }
    }

    /// Sends the next request if it is due.
    fn round(&mut self) {
        if self.closed_at.is_some() || Instant::now() < self.next {
            return;
        }
        self.next += Duration::from_millis(300);
        if try_ping(&mut self.stream) {
            self.requests += 1;
        } else {
            self.closed_at = Some(self.start.elapsed());
        }
    }
}

/// One `/ping` on `s`; false if the server closed the connection instead of answering.
fn try_ping(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /ping?cb=b HTTP/1.1\r\nHost: t\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !got.ends_with(b"});\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200 OK\r\n")
}

/// Opens `n` connections to the front port; every tenth sends one `/ping`.
fn open_many(server: &Server, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = connect(server.front);
        if i.is_multiple_of(10) {
            s.write_all(b"GET /ping?cb=many HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("send");
        }
        conns.push(s);
    }
    conns
}

/// Waits until `/stats` counts at least `n` connections; returns the per-worker counts.
fn wait_for_connections(server: &Server, n: u64) -> Vec<u64> {
    let mut per_worker = Vec::new();
    let all_there = eventually(Duration::from_secs(20), || {
        per_worker = worker_connections(server);
        per_worker.iter().sum::<u64>() >= n
    });
    assert!(
        all_there,
        "/stats never showed {n} connections: {per_worker:?}"
    );
    per_worker
}

/// Closes the connections and waits until `/stats` counts about none.
fn close_all(server: &Server, conns: Vec<TcpStream>) {
    drop(conns);
    let mut total = 0;
    let released = eventually(Duration::from_secs(20), || {
        total = worker_connections(server).iter().sum::<u64>();
        total <= 3
    });
    assert!(released, "connections never returned to ~0: {total}");
}

/// The test process's open-file limit (20,000 here) holds one engine's 10,000 client sockets at a
/// time, so the two runs of the test below take turns.
static TEN_THOUSAND_SOCKETS: Mutex<()> = Mutex::new(());

engine_tests!(ten_thousand_idle_connections_spread_over_workers_and_are_released);
fn ten_thousand_idle_connections_spread_over_workers_and_are_released(engine: &'static str) {
    const N: usize = 10_000;
    const MB: u64 = 1024 * 1024;
    // A run that failed still hands its turn on.
    let _turn = TEN_THOUSAND_SOCKETS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let server = Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--header-timeout")
            .arg("120")
            .arg("--keepalive-timeout")
            .arg("120"),
    );
    // Warm up the request path once before taking the baseline.
    assert_eq!(get(server.front, "/ping").status, 200);
    let rss_start = server.rss();

    let opened = Instant::now();
    let mut conns = open_many(&server, N);
    println!("{engine}: opened {N} connections in {:?}", opened.elapsed());
    let per_worker = wait_for_connections(&server, N as u64);
    println!("{engine}: connections per worker {per_worker:?}");
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
    for (w, n) in per_worker.iter().enumerate() {
        assert!(
            *n >= N as u64 / 5,
            "worker {w} holds only {n} of {N}: {per_worker:?}"
        );
    }
    // The ones that asked got their answer.
    let want = b"many({\"type\":\"ping\",\"sub_timeout\":30});\n";
    for s in conns.iter_mut().step_by(10) {
        let mut c = Conn {
            stream: s.try_clone().expect("clone"),
            buf: Vec::new(),
        };
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, want);
    }
    let rss_peak = server.rss();
    close_all(&server, conns);
    let rss_after_one = server.rss();

    // A second round must reuse what the first one left, not grow again.
    let conns = open_many(&server, N);
    wait_for_connections(&server, N as u64);
    let rss_peak_two = server.rss();
    close_all(&server, conns);
    let rss_end = server.rss();
    println!(
        "{engine}: RSS start {} KB; round 1 peak {} KB, after {} KB; round 2 peak {} KB, after {} KB",
        rss_start / 1024,
        rss_peak / 1024,
        rss_after_one / 1024,
        rss_peak_two / 1024,
        rss_end / 1024
    );
    assert_eq!(get(server.front, "/ping").status, 200);
    assert!(
        rss_peak_two < rss_peak + 2 * MB,
        "RSS grows with every round: peak {} KB then {} KB",
        rss_peak / 1024,
        rss_peak_two / 1024
    );
    assert!(
        rss_end < rss_start + 8 * MB,
        "RSS did not come back: start {} KB, peak {} KB, end {} KB",
        rss_start / 1024,
        rss_peak / 1024,
        rss_end / 1024
    );
}

engine_tests!(heartbeats_due_together_all_arrive);
/// Five thousand `/stream` subscribers on one worker, opened within a second or two, have their
/// heartbeats due in the same seconds; the worker handles a bounded number of due timers per
/// loop turn, and every one of them must still get its heartbeats.
fn heartbeats_due_together_all_arrive(engine: &'static str) {
    const N: usize = 5_000;
    let _turn = TEN_THOUSAND_SOCKETS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let server = Server::start(
        Opts::new(engine)
            .threads(1)
            .arg("--polling-timeout")
            .arg("1")
            .arg("--channel-timeout")
            .arg("30"),
    );
    let mut subs: Vec<(TcpStream, Vec<u8>)> = (0..N)
        .map(|i| {
            let mut s = connect(server.front);
            let req = format!("GET /stream?cname=hb{i} HTTP/1.1\r\nHost: t\r\n\r\n");
            s.write_all(req.as_bytes()).expect("send");
            s.set_nonblocking(true).expect("nonblocking");
            (s, Vec::new())
        })
        .collect();
    // Two heartbeats each: the second shows the timers came due together again and were served.
    let heartbeats = |b: &[u8]| b.windows(6).filter(|w| w == b"\"noop\"").count();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    loop {
        let mut missing = 0;
        for (s, got) in subs.iter_mut() {
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            if heartbeats(got) < 2 {
                missing += 1;
            }
        }
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {N} subscribers are still without two heartbeats"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
