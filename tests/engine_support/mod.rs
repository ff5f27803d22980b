//! A tiny line server over any engine `Backend`, run on its own thread, and loopback clients from
//! std::net. The server plays the worker's part exactly as the engine contract says: it attaches
//! accepted connections after `wait` returns, queues output in an `OutQueue` per connection,
//! flushes once per turn, flushes again on `Writable`, pauses and resumes reading, and closes.
//! It records every contract violation it sees (a completion for a token that is not live, data
//! while paused, a connection from the peer listener without its peer address) so tests can assert
//! there were none. Besides its plain listener it can listen on a second port that asks the backend
//! for peer addresses (`want_peer`).
//!
//! Commands, one per line: `echo TEXT`, `big N` (N pattern bytes then `\n`), `bigclose N` (the same,
//! closed right after the first flush), `pause`, `close`, `id` (answers `slot generation conn`).
//!
//! Depends on: rcomet::engine, crossbeam-channel, std.

#![allow(dead_code)]

use crossbeam_channel::{unbounded, Receiver, Sender};
use rcomet::engine::sys::EventFd;
use rcomet::engine::{Backend, Completion, ConnId, Flush, OutQueue, ReadControl, Token};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a test waits for anything before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// Tag of the plain listener (registered without `want_peer`).
pub const LISTENER_TAG: u32 = 7;
/// Tag of the listener registered with `want_peer`.
pub const PEER_LISTENER_TAG: u32 = 8;

/// The byte at offset `i` of a `big` response.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Commands from the test thread; each one is followed by a wake of the server's backend.
pub enum Cmd {
    Resume(Token),
    /// Close the next N accepted connections without attaching them.
    Refuse(usize),
    Snapshot(Sender<Stats>),
    Stop,
}

/// What the server tells the test as it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Accepted {
        token: Token,
        conn: ConnId,
        listener: u32,
        peer: Option<SocketAddr>,
    },
    Refused {
        conn: ConnId,
    },
    Paused {
        token: Token,
    },
    BigPending {
        token: Token,
    },
    BigDone {
        token: Token,
    },
    PeerClosed {
        token: Token,
    },
    Closed {
        token: Token,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub live: usize,
    pub accepted: usize,
    /// Connections the backend closed unserved for lack of room (`Completion::Refused`).
    pub refused_by_backend: usize,
    pub wakes: usize,
    pub writable: usize,
    pub violations: Vec<String>,
    pub conns_seen: Vec<ConnId>,
}

pub struct Server {
    /// The plain listener.
    pub addr: SocketAddr,
    /// The listener that wants peer addresses, when the server has one.
    pub peer_addr: Option<SocketAddr>,
    cmds: Sender<Cmd>,
    events: Receiver<Event>,
    waker: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server thread whose backend `make` builds (on that thread), with the plain
    /// listener only.
    pub fn start<B, F>(make: F) -> Server
    where
        B: Backend,
        F: FnOnce() -> io::Result<B> + Send + 'static,
    {
        Server::start_with(make, false)
    }

    /// As [`Server::start`]; with `peer_listener`, also listens on `peer_addr` with `want_peer`.
    pub fn start_with<B, F>(make: F, peer_listener: bool) -> Server
    where
        B: Backend,
        F: FnOnce() -> io::Result<B> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let peer_listener =
            peer_listener.then(|| TcpListener::bind("127.0.0.1:0").expect("bind peer listener"));
        let peer_addr = peer_listener
            .as_ref()
            .map(|l| l.local_addr().expect("local addr"));
        let (cmd_tx, cmd_rx) = unbounded();
        let (event_tx, event_rx) = unbounded();
        let (waker_tx, waker_rx) = unbounded();
        let thread = std::thread::spawn(move || {
            let mut backend = make().expect("backend");
            waker_tx.send(backend.waker()).expect("waker");
            backend
                .listen(listener, LISTENER_TAG, false)
                .expect("listen");
            if let Some(peer_listener) = peer_listener {
                backend
                    .listen(peer_listener, PEER_LISTENER_TAG, true)
                    .expect("listen with peer");
            }
            serve(backend, cmd_rx, event_tx);
        });
        let waker = waker_rx.recv_timeout(PATIENCE).expect("server started");
        Server {
            addr,
            peer_addr,
            cmds: cmd_tx,
            events: event_rx,
            waker,
            thread: Some(thread),
        }
    }

    /// Hands a command to the server and wakes it (it waits with no timeout).
    pub fn send(&self, cmd: Cmd) {
        self.cmds.send(cmd).expect("server gone");
        self.waker.wake();
    }

    pub fn waker(&self) -> Arc<EventFd> {
        Arc::clone(&self.waker)
    }

    pub fn commands(&self) -> Sender<Cmd> {
        self.cmds.clone()
    }

    pub fn stats(&self) -> Stats {
        let (tx, rx) = unbounded();
        self.send(Cmd::Snapshot(tx));
        rx.recv_timeout(PATIENCE).expect("snapshot")
    }

    /// Waits for the first event matching `want`, skipping others.
    pub fn expect(&self, what: &str, want: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if want(&event) => return event,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Waits until the server's stats satisfy `want`, polling by snapshot.
    pub fn await_stats(&self, what: &str, want: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stats = self.stats();
            if want(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {stats:?}"
            );
            std::thread::yield_now();
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Connects and learns the server-side token and connection id.
    pub fn connect_with_id(&self) -> (Client, Token, ConnId) {
        let mut client = self.connect();
        let (token, conn) = client.id();
        (client, token, conn)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.cmds.send(Cmd::Stop);
        self.waker.wake();
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Connects from source address `local` (any port), e.g. another loopback address.
    pub fn connect_from(local: IpAddr, addr: SocketAddr) -> Client {
        use socket2::{Domain, SockAddr, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
        socket
            .bind(&SockAddr::from(SocketAddr::new(local, 0)))
            .expect("bind client");
        socket.connect(&SockAddr::from(addr)).expect("connect");
        Client::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream.set_write_timeout(Some(PATIENCE)).expect("timeout");
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// The client's own address (what the server should see as the peer).
    pub fn local_addr(&self) -> SocketAddr {
        self.reader.get_ref().local_addr().expect("local addr")
    }

    pub fn send(&mut self, text: &str) {
        self.reader
            .get_mut()
            .write_all(text.as_bytes())
            .expect("client write");
    }

    /// The next line, without its `\n`.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("client read");
        assert!(n > 0 && line.ends_with('\n'), "connection ended: {line:?}");
        line.pop();
        line
    }

    pub fn echo(&mut self, text: &str) {
        self.send(&format!("echo {text}\n"));
        assert_eq!(self.line(), text);
    }

    pub fn id(&mut self) -> (Token, ConnId) {
        self.send("id\n");
        let line = self.line();
        let parts: Vec<u32> = line.split(' ').map(|p| p.parse().expect("id")).collect();
        let token = Token {
            slot: parts[0],
            generation: parts[1],
        };
        (token, ConnId(parts[2]))
    }

    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        self.reader.read_exact(&mut bytes).expect("client read");
        bytes
    }

    /// Reads until EOF or a reset; returns the bytes received.
    pub fn read_until_closed(&mut self) -> usize {
        let mut total = 0;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return total,
                Err(e) => panic!("read until closed: {e}"),
            }
        }
    }

    /// Sends what the peer may already have closed (a refused connection): errors are ignored.
    pub fn try_send(&mut self, text: &str) {
        let _ = self.reader.get_mut().write_all(text.as_bytes());
    }

    /// The next line, or `None` when the peer closed (EOF or reset) before one arrived. Panics
    /// when nothing happens within the patience (a connection left waiting).
    pub fn line_or_closed(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => {
                assert!(line.ends_with('\n'), "connection ended mid-line: {line:?}");
                line.pop();
                Some(line)
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("neither served nor closed: {e}"),
        }
    }

    /// True when nothing arrives within `wait` (used only to show an absence).
    pub fn silent_for(&mut self, wait: Duration) -> bool {
        self.reader
            .get_ref()
            .set_read_timeout(Some(wait))
            .expect("timeout");
        let silent = match self.reader.fill_buf() {
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        };
        self.reader
            .get_ref()
            .set_read_timeout(Some(PATIENCE))
            .expect("timeout");
        silent
    }
}

#[derive(Default)]
struct Conn {
    conn: Option<ConnId>,
    token: Option<Token>,
    out: OutQueue,
    inbuf: Vec<u8>,
    paused: bool,
    peer_closed: bool,
    want_flush: bool,
    close_now: bool,
    close_after_flush: bool,
    big_pending: bool,
    big_reported: bool,
}

/// A connection reported by `wait`, attached (or refused) after the turn.
struct Accepted {
    conn: ConnId,
    listener: u32,
    peer: Option<SocketAddr>,
}

struct Harness {
    slots: Vec<Conn>,
    generations: Vec<u32>,
    free: Vec<u32>,
    refuse: usize,
    stats: Stats,
    events: Sender<Event>,
}

fn serve<B: Backend>(mut backend: B, cmds: Receiver<Cmd>, events: Sender<Event>) {
    let mut h = Harness {
        slots: Vec::new(),
        generations: Vec::new(),
        free: Vec::new(),
        refuse: 0,
        stats: Stats::default(),
        events,
    };
    loop {
        let mut accepted = Vec::new();
        backend
            .wait(None, &mut |c| h.on_completion(c, &mut accepted))
            .expect("wait");
        for a in accepted {
            h.accept(&mut backend, a);
        }
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                Cmd::Stop => {
                    backend.stop_listening();
                    return;
                }
                Cmd::Resume(token) => h.resume(&mut backend, token),
                Cmd::Refuse(n) => h.refuse += n,
                Cmd::Snapshot(tx) => {
                    h.stats.live = h.slots.iter().filter(|c| c.token.is_some()).count();
                    let _ = tx.send(h.stats.clone());
                }
            }
        }
        h.after_turn(&mut backend);
    }
}

impl Harness {
    fn live(&mut self, token: Token) -> Option<&mut Conn> {
        self.slots
            .get_mut(token.slot as usize)
            .filter(|c| c.token == Some(token))
    }

    fn on_completion(&mut self, c: Completion<'_>, accepted: &mut Vec<Accepted>) -> ReadControl {
        match c {
            Completion::Accepted {
                listener,
                conn,
                peer,
            } => {
                if listener != LISTENER_TAG && listener != PEER_LISTENER_TAG {
                    self.stats
                        .violations
                        .push(format!("listener tag {listener}"));
                }
                if listener == PEER_LISTENER_TAG && peer.is_none() {
                    self.stats
                        .violations
                        .push(format!("no peer address for {conn:?}"));
                }
                accepted.push(Accepted {
                    conn,
                    listener,
                    peer,
                });
            }
            Completion::Data { token, bytes } => {
                let Some(conn) = self.live(token) else {
                    self.stats.violations.push(format!("data for {token:?}"));
                    return ReadControl::Continue;
                };
                let paused = conn.paused;
                conn.inbuf.extend_from_slice(bytes);
                if paused {
                    self.stats
                        .violations
                        .push(format!("data while paused {token:?}"));
                }
                return self.process_lines(token);
            }
            Completion::PeerClosed { token } => match self.live(token) {
                Some(conn) => {
                    conn.peer_closed = true;
                    let _ = self.events.send(Event::PeerClosed { token });
                }
                None => self.stats.violations.push(format!("peer closed {token:?}")),
            },
            Completion::Writable { token } => match self.live(token) {
                Some(conn) => {
                    conn.want_flush = true;
                    self.stats.writable += 1;
                }
                None => self.stats.violations.push(format!("writable {token:?}")),
            },
            Completion::Wake => self.stats.wakes += 1,
            Completion::Refused { .. } => self.stats.refused_by_backend += 1,
            // The harness never hands a connection over.
            Completion::Detached { token, .. } => {
                self.stats.violations.push(format!("detached {token:?}"))
            }
            Completion::Adopted { tag, .. } => self.stats.violations.push(format!("adopted {tag}")),
        }
        ReadControl::Continue
    }

    /// Runs every complete line of a connection's input, until it pauses or closes.
    fn process_lines(&mut self, token: Token) -> ReadControl {
        let events = self.events.clone();
        let Some(conn) = self.live(token) else {
            return ReadControl::Continue;
        };
        while !conn.paused && !conn.close_now {
            let Some(end) = conn.inbuf.iter().position(|&b| b == b'\n') else {
                break;
            };
            let line: Vec<u8> = conn.inbuf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match cmd {
                "echo" => conn.out.push_bytes(format!("{arg}\n").as_bytes()),
                "big" | "bigclose" => {
                    let n: usize = arg.parse().unwrap_or(0);
                    let bytes: Vec<u8> = (0..n).map(pattern).collect();
                    let half = n / 2;
                    let shared: Arc<[u8]> = Arc::from(&bytes[..half]);
                    conn.out.push_shared(&shared);
                    conn.out.push_vec(bytes[half..].to_vec());
                    conn.out.push_bytes(b"\n");
                    conn.big_pending = cmd == "big";
                    conn.big_reported = false;
                    conn.close_after_flush = cmd == "bigclose";
                }
                "pause" => {
                    conn.paused = true;
                    let _ = events.send(Event::Paused { token });
                }
                "close" => conn.close_now = true,
                "id" => {
                    let id = conn.conn.map_or(u32::MAX, |c| c.0);
                    let text = format!("{} {} {id}\n", token.slot, token.generation);
                    conn.out.push_bytes(text.as_bytes());
                }
                _ => conn.out.push_bytes(b"?\n"),
            }
        }
        if conn.paused {
            ReadControl::Pause
        } else {
            ReadControl::Continue
        }
    }

    fn accept<B: Backend>(&mut self, backend: &mut B, accepted: Accepted) {
        let Accepted {
            conn,
            listener,
            peer,
        } = accepted;
        self.stats.accepted += 1;
        self.stats.conns_seen.push(conn);
        if self.refuse > 0 {
            self.refuse -= 1;
            backend.close(
                conn,
                Token {
                    slot: 0,
                    generation: 0,
                },
            );
            let _ = self.events.send(Event::Refused { conn });
            return;
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Conn::default());
            self.generations.push(0);
            (self.slots.len() - 1) as u32
        });
        let generation = &mut self.generations[slot as usize];
        *generation += 1;
        let token = Token {
            slot,
            generation: *generation,
        };
        self.slots[slot as usize] = Conn {
            conn: Some(conn),
            token: Some(token),
            ..Conn::default()
        };
        if let Err(e) = backend.attach(conn, token) {
            self.stats.violations.push(format!("attach {conn:?}: {e}"));
        }
        let _ = self.events.send(Event::Accepted {
            token,
            conn,
            listener,
            peer,
        });
    }

    fn resume<B: Backend>(&mut self, backend: &mut B, token: Token) {
        let Some(conn) = self.live(token) else {
            return;
        };
        conn.paused = false;
        if self.process_lines(token) == ReadControl::Continue {
            if let Some(conn) = self.live(token).and_then(|c| c.conn) {
                backend.resume(conn, token);
            }
        }
    }

    fn close<B: Backend>(&mut self, backend: &mut B, slot: usize) {
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        if let (Some(id), Some(token)) = (conn.conn, conn.token) {
            backend.close(id, token);
            *conn = Conn::default();
            self.free.push(slot as u32);
            let _ = self.events.send(Event::Closed { token });
        }
    }

    fn after_turn<B: Backend>(&mut self, backend: &mut B) {
        for slot in 0..self.slots.len() {
            let conn = &mut self.slots[slot];
            let (Some(id), Some(token)) = (conn.conn, conn.token) else {
                continue;
            };
            if conn.close_now || conn.peer_closed {
                self.close(backend, slot);
                continue;
            }
            if conn.out.is_empty() && !conn.want_flush {
                continue;
            }
            conn.want_flush = false;
            match backend.flush(id, token, &mut conn.out) {
                Ok(Flush::Done) => {
                    if std::mem::take(&mut conn.big_pending) {
                        let _ = self.events.send(Event::BigDone { token });
                    }
                }
                Ok(Flush::Pending) => {
                    if conn.big_pending && !conn.big_reported {
                        conn.big_reported = true;
                        let _ = self.events.send(Event::BigPending { token });
                    }
                }
                Err(e) => {
                    // A reset or broken pipe is the peer's doing; anything else is a bug.
                    if e.kind() == io::ErrorKind::NotConnected {
                        self.stats.violations.push(format!("flush {token:?}: {e}"));
                    }
                    self.close(backend, slot);
                    continue;
                }
            }
            if self.slots[slot].close_after_flush {
                self.close(backend, slot);
            }
        }
    }
}
