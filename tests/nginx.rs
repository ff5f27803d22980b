//! rcomet behind Debian's real nginx, configured by the shipped contrib/nginx/rcomet.conf
//! (tests/nginx_support starts it on free loopback ports in front of the real server). Every
//! subscriber and every push goes through nginx: long-poll (a message pushed while the poll
//! waits arrives, and the next poll goes out on the same upstream connection), /stream, /sse and
//! /iframe (each message arrives promptly, while the response stays open: nginx does not buffer
//! them), /sse resumed by Last-Event-ID, /ws (the upgrade, and frames both ways), subscribers idle
//! longer than nginx's read timeout kept alive by rcomet's heartbeats (while a /psub stream, which
//! has none, is cut at that timeout), a stalled reader's backlog staying in rcomet (which cuts it
//! at limits.max_output_size), the restricted admin listener, and the request nginx sends
//! upstream (HTTP/1.1, no `Connection: close`, X-Forwarded-For, Last-Event-ID, the upgrade).
//!
//! Prerequisite: nginx (`apt-get install -y nginx`; `.ci/run` installs it); without it every
//! test fails with that command.
//!
//! Depends on tests/support (the server, raw connections, WebSocket frames) and
//! tests/nginx_support (the nginx process).
mod nginx_support;
mod support;

use nginx_support::{Nginx, Upstreams};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::front::{msg, wait_subscribers};
use support::ws::{client_frame, upgrade_request, ACCEPT};
use support::*;

/// How soon a message pushed to an open subscription must arrive through nginx: far beyond a
/// loopback delivery, and a buffering proxy holds a small frame forever (until the response ends
/// or a buffer fills).
const PROMPT: Duration = Duration::from_secs(3);

/// nginx in front of `server`, the shipped file as it is.
fn behind(server: &Server) -> Nginx {
    Nginx::start(upstreams(server))
}

fn upstreams(server: &Server) -> Upstreams {
    Upstreams {
        front: server.front,
        admin: server.admin,
    }
}

/// One request to nginx's admin listener; asserts 200 and returns the body.
fn admin(ngx: &Nginx, path: &str) -> String {
    let r = get(ngx.admin, path);
    assert_eq!(
        r.status,
        200,
        "{path} through nginx: {}{}",
        r.head,
        r.text()
    );
    r.text()
}

/// Publishes through nginx's admin listener.
fn push(ngx: &Nginx, cname: &str, content: &str) {
    let body = admin(ngx, &format!("/push?cname={cname}&content={content}"));
    assert_eq!(body, "{\"type\":\"ok\"}\n");
}

/// A header's value in a response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The local ports of the established connections to `to` from this host: nginx's upstream
/// connections to rcomet's port (no test client connects to it directly).
fn connections_to(to: SocketAddr) -> Vec<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
            // 01 = ESTABLISHED; 0100007F = 127.0.0.1.
            let to_it = remote.starts_with("0100007F:") && port(remote)? == to.port();
            (to_it && *state == "01").then(|| port(local)).flatten()
        })
        .collect();
    ports.sort_unstable();
    ports
}

/// What one read of a streaming body gave.
enum Pull {
    Data(Vec<u8>),
    /// The last chunk, or the connection closed.
    Ended,
    /// Nothing within the time given.
    Silent,
}

/// A chunked response body as it arrives through nginx (which re-frames rcomet's chunks, so a
/// frame may span chunks and a chunk hold several frames), de-chunked into `text`.
struct Body {
    conn: Conn,
    text: Vec<u8>,
}

impl Body {
    /// Sends `GET path` with `extra` header lines (each ending in CRLF) as a browser would (with
    /// Accept-Encoding), checks the 200 head: chunked, not compressed.
    fn open(to: SocketAddr, path: &str, extra: &str) -> Body {
        Body::on(Conn::open(to), path, extra)
    }

    /// [`open`](Self::open) on a connection of the caller's.
    fn on(mut conn: Conn, path: &str, extra: &str) -> Body {
        conn.send(
            format!(
                "GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip, deflate\r\n{extra}\r\n"
            )
            .as_bytes(),
        );
        let (status, head) = conn.read_head();
        assert_eq!(status, 200, "{path}: {head}");
        assert_eq!(
            header(&head, "Transfer-Encoding").as_deref(),
            Some("chunked"),
            "{path}: {head}"
        );
        assert_eq!(header(&head, "Content-Encoding"), None, "{path}: {head}");
        Body {
            conn,
            text: Vec::new(),
        }
    }

    /// One whole chunk's payload from the connection's buffer, if one is there.
    fn buffered_chunk(&mut self) -> Option<Pull> {
        let buf = &self.conn.buf;
        let eol = buf.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8_lossy(&buf[..eol]).into_owned();
        let size = usize::from_str_radix(line.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        let total = eol + 2 + size + 2;
        if buf.len() < total {
            return None;
        }
        assert_eq!(
            &buf[total - 2..total],
            b"\r\n",
            "chunk not followed by CRLF"
        );
        let data = buf[eol + 2..eol + 2 + size].to_vec();
        self.conn.buf.drain(..total);
        Some(if size == 0 {
            Pull::Ended
        } else {
            Pull::Data(data)
        })
    }

    /// The next chunk, waiting at most `within`.
    fn pull(&mut self, within: Duration) -> Pull {
        let deadline = Instant::now() + within;
        loop {
            if let Some(p) = self.buffered_chunk() {
                return p;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Pull::Silent;
            }
            self.conn.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 16384];
            match self.conn.stream.read(&mut chunk) {
                Ok(0) => return Pull::Ended,
                Ok(n) => self.conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Pull::Silent
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Pull::Ended,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Reads until `want` has arrived, within `within`, with the response still open; consumes
    /// the body through it and returns what came before it.
    fn expect_within(&mut self, want: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self
                .text
                .windows(want.len())
                .position(|w| w == want.as_bytes())
            {
                let before: Vec<u8> = self.text.drain(..at + want.len()).collect();
                return String::from_utf8_lossy(&before[..at]).into_owned();
            }
            let got = String::from_utf8_lossy(&self.text).into_owned();
            match self.pull(deadline.saturating_duration_since(Instant::now())) {
                Pull::Data(d) => self.text.extend_from_slice(&d),
                Pull::Ended => panic!("the response ended before {want:?} arrived; got {got:?}"),
                Pull::Silent => panic!(
                    "{want:?} did not arrive within {within:?} through nginx (held in a buffer?); \
                     got {got:?}"
                ),
            }
        }
    }

    /// [`expect_within`](Self::expect_within) [`PROMPT`].
    fn expect(&mut self, want: &str) {
        self.expect_within(want, PROMPT);
    }

    /// Reads until the response ends (within IO_TIMEOUT); returns what was left.
    fn expect_end(&mut self) -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            match self.pull(deadline.saturating_duration_since(Instant::now())) {
                Pull::Data(d) => self.text.extend_from_slice(&d),
                Pull::Ended => return String::from_utf8_lossy(&self.text).into_owned(),
                Pull::Silent => panic!("the response did not end within {IO_TIMEOUT:?}"),
            }
        }
    }
}

/// How `path`'s transport frames one message object.
fn frame(path: &str, json: &str) -> String {
    if path.starts_with("/sse") {
        format!("data: {json}\n\n")
    } else if path.starts_with("/iframe") {
        format!("<script>parent.icomet_cb({json});</script>\n")
    } else {
        format!("{json}\n")
    }
}

/// Opens `/ws...` through nginx and checks the 101 nginx relays.
fn ws_open(ngx: &Nginx, path: &str) -> Conn {
    let mut c = Conn::open(ngx.front);
    c.send(upgrade_request(path, "").as_bytes());
    let (status, head) = c.read_head();
    assert_eq!(status, 101, "{head}");
    assert_eq!(
        header(&head, "Sec-WebSocket-Accept").as_deref(),
        Some(ACCEPT),
        "{head}"
    );
    assert_eq!(
        header(&head, "Upgrade").map(|u| u.to_ascii_lowercase()),
        Some("websocket".into()),
        "{head}"
    );
    c
}

/// The `"epoch":N` at the end of a position marker.
fn epoch_in(text: &str) -> u32 {
    text.split("\"epoch\":")
        .nth(1)
        .and_then(|e| e.split('}').next())
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("no epoch in {text:?}"))
}

/// A connection to `to` from another loopback address, `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> Conn {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::from((from, 0)).into())
        .expect("bind a loopback source");
    s.connect(&to.into()).expect("connect");
    let stream: TcpStream = s.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    Conn {
        stream,
        buf: Vec::new(),
    }
}

engine_tests!(
    long_poll_waits_through_nginx_on_a_kept_upstream_connection,
    streams_arrive_through_nginx_unbuffered,
    sse_resumes_by_last_event_id_through_nginx,
    websocket_upgrades_and_carries_frames_both_ways_through_nginx,
    heartbeats_keep_idle_subscribers_past_nginx_read_timeout,
    a_stalled_reader_backs_up_into_rcomet_which_cuts_it,
    the_admin_listener_admits_only_allowed_addresses
);

fn long_poll_waits_through_nginx_on_a_kept_upstream_connection(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let ngx = behind(&server);
    let mut c = Conn::open(ngx.front);
    c.get("/sub?cname=lp&seq=0");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), format!("{}\n", msg("next_seq", "lp", 1, "")));
    let kept = connections_to(server.front);
    assert_eq!(kept.len(), 1, "nginx keeps its upstream connection open");
    let cycles = [
        ("/sub?cname=lp&seq=1", "", ""),
        ("/poll?cname=lp&seq=2&cb=icomet_cb_2", "icomet_cb_2(", ");"),
    ];
    for (seq, (path, open, close)) in (1..).zip(cycles) {
        // The client's connection to nginx is kept too: every poll goes out on `c`.
        c.get(path);
        wait_subscribers(&server, "lp", 1);
        assert_eq!(
            connections_to(server.front),
            kept,
            "poll {seq} waits on the upstream connection the previous reply came back on"
        );
        let content = format!("m{seq}");
        push(&ngx, "lp", &content);
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(
            r.text(),
            format!("{open}{}{close}\n", msg("data", "lp", seq, &content))
        );
    }
}

fn streams_arrive_through_nginx_unbuffered(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let ngx = behind(&server);
    for path in ["/stream?cname=st", "/sse?cname=ss", "/iframe?cname=si"] {
        let cname = path.split("cname=").nth(1).unwrap();
        let mut body = Body::open(ngx.front, path, "");
        body.expect(&frame(path, &msg("next_seq", cname, 1, "")));
        wait_subscribers(&server, cname, 1);
        for seq in 1..=2 {
            let content = format!("m{seq}");
            push(&ngx, cname, &content);
            body.expect(&frame(path, &msg("data", cname, seq, &content)));
        }
        // /close ends the response, through nginx too: the close message, then the last chunk.
        assert!(admin(&ngx, &format!("/close?cname={cname}")).starts_with("ok "));
        body.expect(&frame(path, &msg("close", cname, 3, "")));
        assert_eq!(
            body.expect_end(),
            "",
            "{path}: nothing after the close message"
        );
    }
}

fn sse_resumes_by_last_event_id_through_nginx(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let ngx = behind(&server);
    let path = "/sse?cname=r&id=1";
    let mut body = Body::open(ngx.front, path, "");
    body.expect("retry: 2000\n\n");
    let marker = body.expect_within("}\n\n", PROMPT);
    let epoch = epoch_in(&marker);
    let event = |seq: i64, content: &str| {
        format!(
            "id: {epoch}:{seq}\ndata: {}\n\n",
            msg("data", "r", seq, content)
        )
    };
    wait_subscribers(&server, "r", 1);
    for (seq, content) in [(1, "m1"), (2, "m2"), (3, "m3")] {
        push(&ngx, "r", content);
        body.expect(&event(seq, content));
    }
    // The browser goes away: nginx closes its upstream connection and rcomet sees it leave.
    drop(body);
    wait_subscribers(&server, "r", 0);
    push(&ngx, "r", "m4");
    push(&ngx, "r", "m5");
    // EventSource reconnects with the last id it saw.
    let mut body = Body::open(ngx.front, path, &format!("Last-Event-ID: {epoch}:3\r\n"));
    body.expect("retry: 2000\n\n");
    body.expect(&event(4, "m4"));
    body.expect(&event(5, "m5"));
    wait_subscribers(&server, "r", 1);
    push(&ngx, "r", "m6");
    assert_eq!(
        body.expect_within(&event(6, "m6"), PROMPT),
        "",
        "m4, m5, m6 and nothing else: no reset, no repeat"
    );
}

fn websocket_upgrades_and_carries_frames_both_ways_through_nginx(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let ngx = behind(&server);
    let mut c = ws_open(&ngx, "/ws?cname=w");
    let first = c.read_text();
    let epoch = epoch_in(&first);
    assert_eq!(
        first,
        format!(
            "{{\"type\":\"next_seq\",\"cname\":\"w\",\"seq\":1,\"content\":\"\",\"epoch\":{epoch}}}"
        )
    );
    wait_subscribers(&server, "w", 1);
    push(&ngx, "w", "down");
    assert_eq!(c.read_text(), msg("data", "w", 1, "down"));
    // Client to server: a command (a second channel), then a ping.
    c.send_text("{\"cmd\":\"sub\",\"cname\":\"w2\"}");
    assert!(
        c.read_text()
            .starts_with("{\"type\":\"next_seq\",\"cname\":\"w2\",\"seq\":1,"),
        "the sub command went up and its answer came down"
    );
    wait_subscribers(&server, "w2", 1);
    push(&ngx, "w2", "second");
    assert_eq!(c.read_text(), msg("data", "w2", 1, "second"));
    c.send(&client_frame(true, 0x9, b"are you there"));
    let pong = c.read_frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (0xA, &b"are you there"[..])
    );
    // The closing handshake, both ways, then nginx closes the client's connection.
    c.send(&client_frame(true, 0x8, &1000u16.to_be_bytes()));
    assert_eq!(c.read_frame().close_code(), Some(1000));
    assert!(c.closed_by_peer(), "the connection ends after the close");
}

/// Publishes `content` with a POST through nginx's admin listener.
fn push_body(ngx: &Nginx, cname: &str, content: &str) {
    let body = format!("cname={cname}&content={content}");
    let mut c = Conn::open(ngx.admin);
    c.send(
        format!(
            "POST /push HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}{}", r.head, r.text());
}

fn a_stalled_reader_backs_up_into_rcomet_which_cuts_it(engine: &'static str) {
    let limit = 1 << 20;
    let server = Server::start(
        Opts::new(engine)
            .arg("--max-output-size")
            .arg(&limit.to_string()),
    );
    let ngx = behind(&server);
    // A subscriber with a small receive buffer that reads its opening and then nothing.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.connect(&ngx.front.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let conn = Conn {
        stream,
        buf: Vec::new(),
    };
    let path = "/stream?cname=slow";
    let mut body = Body::on(conn, path, "");
    body.expect(&frame(path, &msg("next_seq", "slow", 1, "")));
    wait_subscribers(&server, "slow", 1);
    // Unbuffered, nginx stops reading from rcomet once the reader's socket is full: the socket
    // buffers on the way hold a few MiB, then rcomet's queue passes its limit and rcomet cuts
    // the subscriber. A buffering nginx would take all of it into a temporary file instead.
    let content = "a".repeat(limit / 4);
    let most = 256;
    let mut pushed = 0;
    while pushed < most && support::front::info_subscribers(&server, "slow") == 1 {
        push_body(&ngx, "slow", &content);
        pushed += 1;
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            support::front::info_subscribers(&server, "slow") == 0
        }),
        "rcomet never cut the stalled reader: nginx took {} MiB off it",
        pushed / 4
    );
    eprintln!("the stalled reader was cut after {} KiB", pushed * 256);
    drop(body);
}

/// Heartbeats each idle subscriber must see before the message is pushed: with polling_timeout
/// 1 s, more than the 3 s read timeout nginx runs with in that test.
const HEARTBEATS: usize = 5;

/// A /stream or /sse subscriber's side: counts heartbeats, tells `beat` when it has seen
/// [`HEARTBEATS`], then waits for the message `want`; returns the heartbeats it saw.
fn idle_stream(mut body: Body, want: String, beat: mpsc::Sender<()>) -> usize {
    let mut text = String::new();
    let mut told = false;
    loop {
        match body.pull(IO_TIMEOUT) {
            Pull::Data(d) => text.push_str(&String::from_utf8_lossy(&d)),
            Pull::Ended => panic!("the idle subscriber was cut; it had {text:?}"),
            Pull::Silent => panic!("nothing for {IO_TIMEOUT:?}; it had {text:?}"),
        }
        let seen = text.matches("\"type\":\"noop\"").count();
        if seen >= HEARTBEATS && !told {
            told = true;
            let _ = beat.send(());
        }
        if text.contains(&want) {
            return seen;
        }
    }
}

/// A /ws subscriber's side: answers every ping, counts heartbeats (noop objects) as
/// [`idle_stream`] does, then waits for the message `want`.
fn idle_ws(mut c: Conn, want: String, beat: mpsc::Sender<()>) -> usize {
    let mut seen = 0;
    loop {
        let f = c.read_frame();
        match f.opcode {
            0x9 => c.send(&client_frame(true, 0xA, &f.payload)),
            0x1 if f.text().contains("\"type\":\"noop\"") => {
                seen += 1;
                if seen == HEARTBEATS {
                    let _ = beat.send(());
                }
            }
            0x1 => {
                assert_eq!(f.text(), want);
                return seen;
            }
            _ => panic!("unexpected frame {f:?}"),
        }
    }
}

fn heartbeats_keep_idle_subscribers_past_nginx_read_timeout(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--polling-timeout").arg("1"));
    // The shipped relation, scaled down: read timeout 3 s above polling_timeout 1 s.
    let read_timeout = Duration::from_secs(3);
    let ngx = Nginx::start_with(upstreams(&server), Some("3s"));
    let (beat, beats) = mpsc::channel();
    let mut subscribers = Vec::new();
    for path in ["/stream?cname=i1", "/sse?cname=i2"] {
        let cname = path.split("cname=").nth(1).unwrap();
        let mut body = Body::open(ngx.front, path, "");
        body.expect(&frame(path, &msg("next_seq", cname, 1, "")));
        let want = msg("data", cname, 1, "late");
        let beat = beat.clone();
        subscribers.push((
            cname,
            std::thread::spawn(move || idle_stream(body, want, beat)),
        ));
    }
    let mut ws = ws_open(&ngx, "/ws?cname=i3");
    assert!(ws.read_text().contains("\"type\":\"next_seq\""));
    let want = msg("data", "i3", 1, "late");
    subscribers.push(("i3", std::thread::spawn(move || idle_ws(ws, want, beat))));
    let idle_since = Instant::now();
    for (cname, _) in &subscribers {
        wait_subscribers(&server, cname, 1);
    }
    // The control: /psub says nothing while no channel comes or goes, and has no heartbeat, so
    // nginx's read timeout is live and cuts it.
    let opened = Instant::now();
    let mut psub = Body::open(ngx.admin, "/psub", "");
    psub.expect_end();
    assert!(
        opened.elapsed() >= read_timeout - Duration::from_millis(100),
        "nginx cut /psub after {:?}, before its read timeout",
        opened.elapsed()
    );
    for _ in &subscribers {
        beats
            .recv_timeout(Duration::from_secs(20))
            .expect("every idle subscriber gets its heartbeats");
    }
    assert!(idle_since.elapsed() > read_timeout);
    for (cname, _) in &subscribers {
        push(&ngx, cname, "late");
    }
    for (cname, handle) in subscribers {
        let seen = handle.join().expect("the subscriber's thread");
        assert!(
            seen >= HEARTBEATS,
            "{cname}: still connected after {seen} heartbeats"
        );
    }
}

fn the_admin_listener_admits_only_allowed_addresses(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let ngx = behind(&server);
    // 127.0.0.2 is a client like any other on the public listener ...
    let mut c = connect_from([127, 0, 0, 2], ngx.front);
    c.get("/sub?cname=a&seq=0");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.head);
    // ... and not allowed on the admin listener: refused by nginx, never reaching rcomet.
    let mut c = connect_from([127, 0, 0, 2], ngx.admin);
    c.get("/push?cname=a&content=no");
    let r = c.read_response();
    assert_eq!(r.status, 403, "{}", r.head);
    // The channel has no message: its next seq is still 1.
    let r = get(ngx.front, "/sub?cname=a&seq=0");
    assert_eq!(r.text(), format!("{}\n", msg("next_seq", "a", 1, "")));
    // From 127.0.0.1, the same push goes through.
    push(&ngx, "a", "yes");
    let r = get(ngx.front, "/sub?cname=a&seq=0");
    assert_eq!(r.text(), format!("{}\n", msg("next_seq", "a", 2, "")));
}

/// Accepts one connection on `listener` (nonblocking), within IO_TIMEOUT.
fn accept_one(listener: &TcpListener) -> TcpStream {
    let mut got = None;
    assert!(
        eventually(IO_TIMEOUT, || {
            got = listener.accept().ok();
            got.is_some()
        }),
        "nginx never connected upstream"
    );
    let (stream, _) = got.unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// The request head nginx sends upstream on `stream`.
fn request_head(stream: TcpStream) -> String {
    let mut c = Conn {
        stream,
        buf: Vec::new(),
    };
    while !c.buf.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(c.fill(), "nginx closed before a whole request head");
    }
    String::from_utf8_lossy(&c.buf).into_owned()
}

/// The request nginx makes of rcomet, seen by a plain listener in rcomet's place: HTTP/1.1 with
/// no `Connection: close` (keep-alive), the client's address appended to X-Forwarded-For,
/// Last-Event-ID passed on; and for a WebSocket handshake the Upgrade and Connection headers.
#[test]
fn nginx_sends_http11_keep_alive_forwarded_headers_and_the_upgrade() {
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").unwrap();
    front.set_nonblocking(true).unwrap();
    let ngx = Nginx::start(Upstreams {
        front: front.local_addr().unwrap(),
        admin: admin.local_addr().unwrap(),
    });
    let mut client = Conn::open(ngx.front);
    client.send(
        b"GET /sse?cname=x&id=1 HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 7:3\r\n\
          X-Forwarded-For: 10.9.8.7\r\nConnection: keep-alive\r\n\r\n",
    );
    let head = request_head(accept_one(&front));
    assert!(
        head.starts_with("GET /sse?cname=x&id=1 HTTP/1.1\r\n"),
        "{head}"
    );
    assert_eq!(header(&head, "Connection"), None, "{head}");
    assert_eq!(header(&head, "Upgrade"), None, "{head}");
    assert_eq!(header(&head, "Last-Event-ID").as_deref(), Some("7:3"));
    assert_eq!(
        header(&head, "X-Forwarded-For").as_deref(),
        Some("10.9.8.7, 127.0.0.1")
    );
    let mut ws = Conn::open(ngx.front);
    ws.send(upgrade_request("/ws?cname=x", "").as_bytes());
    let head = request_head(accept_one(&front));
    assert!(head.starts_with("GET /ws?cname=x HTTP/1.1\r\n"), "{head}");
    assert_eq!(header(&head, "Connection").as_deref(), Some("upgrade"));
    assert_eq!(header(&head, "Upgrade").as_deref(), Some("websocket"));
    assert_eq!(
        header(&head, "Sec-WebSocket-Key").as_deref(),
        Some(support::ws::KEY)
    );
}
