//! Test support: a tiny iComet-like fake server (std::net, one thread per connection) that speaks
//! just what the load generator uses — front /sub /stream /sse /ping, admin /sign /push /info —
//! with optional faults (skip one seq number, answer every n-th admin request 429) to prove the
//! load generator's error detection, and a gate that holds admin replies to count how many
//! requests a client keeps pipelined; and a helper that runs the built rcomet-loadgen binary
//! against it with a time bound and parses its --json report.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Never hand out this seq number: the message that would get it gets the next one.
    pub skip_seq: Option<i32>,
    /// Answer every n-th admin request `429 Too Many Channels` (counting from 1).
    pub admin_429_every: Option<u64>,
    /// Hold the replies of an admin connection until more than this many requests wait, or none
    /// arrived for `GATE_QUIET`; the most requests seen waiting at once is `max_waiting`.
    pub admin_gate: Option<usize>,
}

/// How long a gated admin connection waits for another request before it answers those it holds.
pub const GATE_QUIET: Duration = Duration::from_millis(300);

#[derive(Default)]
struct Chan {
    seq_next: i32,
    history: Vec<(i32, String)>,
    subs: Vec<Sender<String>>,
    token: String,
}

#[derive(Default)]
struct State {
    channels: HashMap<String, Chan>,
    peers: HashSet<IpAddr>,
    subscriptions: u64,
    signs: u64,
    pushes: u64,
    bad_tokens: u64,
    admin_requests: u64,
    max_waiting: usize,
    faults: Faults,
}

pub struct FakeServer {
    pub front: SocketAddr,
    pub admin: SocketAddr,
    state: Arc<Mutex<State>>,
}

fn msg(kind: &str, cname: &str, seq: i32, content: &str) -> String {
    format!(r#"{{"type":"{kind}","cname":"{cname}","seq":{seq},"content":"{content}"}}"#)
}

impl FakeServer {
    pub fn start(faults: Faults) -> FakeServer {
        let state = Arc::new(Mutex::new(State {
            faults,
            ..State::default()
        }));
        let front_l = TcpListener::bind("127.0.0.1:0").expect("bind front");
        let admin_l = TcpListener::bind("127.0.0.1:0").expect("bind admin");
        let server = FakeServer {
            front: front_l.local_addr().expect("front addr"),
            admin: admin_l.local_addr().expect("admin addr"),
            state: state.clone(),
        };
        spawn_acceptor(front_l, state.clone(), front_conn);
        spawn_acceptor(admin_l, state, admin_conn);
        server
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Distinct client IP addresses seen on the front port.
    pub fn peers(&self) -> usize {
        self.lock().peers.len()
    }
    pub fn subscriptions(&self) -> u64 {
        self.lock().subscriptions
    }
    pub fn signs(&self) -> u64 {
        self.lock().signs
    }
    pub fn pushes(&self) -> u64 {
        self.lock().pushes
    }
    pub fn bad_tokens(&self) -> u64 {
        self.lock().bad_tokens
    }
    pub fn channels(&self) -> usize {
        self.lock().channels.len()
    }
    /// Most admin requests one gated connection held unanswered at once.
    pub fn max_waiting(&self) -> usize {
        self.lock().max_waiting
    }
}

type Handler = fn(TcpStream, Arc<Mutex<State>>);

fn spawn_acceptor(l: TcpListener, state: Arc<Mutex<State>>, handler: Handler) {
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(stream) = stream else { continue };
            let state = state.clone();
            std::thread::spawn(move || handler(stream, state));
        }
    });
}

/// Reads one request head; returns (path, params).
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, HashMap<String, String>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let target = line.split(' ').nth(1)?.to_string();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h.trim().is_empty() {
            break;
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some((path.to_string(), params))
}

fn fixed(w: &mut TcpStream, body: &str) -> std::io::Result<()> {
    w.write_all(fixed_reply(200, body).as_bytes())
}

fn fixed_reply(status: u16, body: &str) -> String {
    let reason = if status == 200 {
        "OK"
    } else {
        "Too Many Channels"
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn chunk(w: &mut TcpStream, data: &str) -> std::io::Result<()> {
    w.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
}

fn lock(state: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn front_conn(stream: TcpStream, state: Arc<Mutex<State>>) {
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let peer = stream.peer_addr().map(|a| a.ip()).ok();
    let mut r = BufReader::new(stream);
    while let Some((path, p)) = read_request(&mut r) {
        let get = |k: &str| p.get(k).cloned().unwrap_or_default();
        let done = match path.as_str() {
            "/ping" => fixed(
                &mut w,
                "icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n",
            )
            .is_err(),
            "/sub" | "/stream" | "/sse" => {
                let seq: i32 = get("seq").parse().unwrap_or(0);
                subscribe(
                    &mut w,
                    &state,
                    peer,
                    &path,
                    &get("cname"),
                    seq,
                    &get("cb"),
                    &get("token"),
                )
            }
            _ => true,
        };
        if done {
            return;
        }
    }
}

/// Serves one subscription; returns true when the connection must end.
#[allow(clippy::too_many_arguments)]
fn subscribe(
    w: &mut TcpStream,
    state: &Arc<Mutex<State>>,
    peer: Option<IpAddr>,
    path: &str,
    cname: &str,
    seq: i32,
    cb: &str,
    token: &str,
) -> bool {
    let poll = path == "/sub";
    let frame = |m: &str| -> String {
        match path {
            "/sse" => format!("data: {m}\n\n"),
            "/sub" if !cb.is_empty() => format!("{cb}({m});\n"),
            _ => format!("{m}\n"),
        }
    };
    let (catch_up, rx): (Vec<String>, Option<Receiver<String>>) = {
        let mut s = lock(state);
        if let Some(ip) = peer {
            s.peers.insert(ip);
        }
        s.subscriptions += 1;
        let bad_token = {
            let chan = s.channels.entry(cname.to_string()).or_insert_with(|| Chan {
                seq_next: 1,
                ..Chan::default()
            });
            !token.is_empty() && token != chan.token
        };
        if bad_token {
            s.bad_tokens += 1;
            drop(s);
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            let m = msg("401", cname, 0, "Token error");
            return w.write_all(head.as_bytes()).is_err()
                || chunk(w, &frame(&m)).is_err()
                || w.write_all(b"0\r\n\r\n").is_err();
        }
        let Some(chan) = s.channels.get_mut(cname) else {
            return true;
        };
        let catch_up: Vec<String> = if seq == 0 || seq > chan.seq_next {
            vec![msg("next_seq", cname, chan.seq_next, "")]
        } else {
            chan.history
                .iter()
                .filter(|(s, _)| *s >= seq)
                .map(|(_, m)| m.clone())
                .collect()
        };
        let rx = if catch_up.is_empty() || !poll {
            let (tx, rx) = channel();
            chan.subs.push(tx);
            Some(rx)
        } else {
            None
        };
        (catch_up, rx)
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";
    if w.write_all(head.as_bytes()).is_err() {
        return true;
    }
    if poll {
        let body = match catch_up.len() {
            0 => match rx.and_then(|rx| rx.recv().ok()) {
                Some(m) => frame(&m),
                None => return true,
            },
            1 => frame(&catch_up[0]),
            _ => frame(&format!("[{}]", catch_up.join(","))),
        };
        return chunk(w, &body).is_err() || w.write_all(b"0\r\n\r\n").is_err();
    }
    for m in &catch_up {
        if chunk(w, &frame(m)).is_err() {
            return true;
        }
    }
    let Some(rx) = rx else { return true };
    while let Ok(m) = rx.recv() {
        if chunk(w, &frame(&m)).is_err() {
            return true;
        }
    }
    true
}

type Request = (String, HashMap<String, String>);

fn admin_conn(stream: TcpStream, state: Arc<Mutex<State>>) {
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let gate = lock(&state).faults.admin_gate;
    let mut r = BufReader::new(stream);
    let Some(gate) = gate else {
        while let Some(req) = read_request(&mut r) {
            let Some(reply) = admin_reply(&state, req) else {
                return;
            };
            if w.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
        return;
    };
    let (tx, rx) = channel::<Request>();
    std::thread::spawn(move || {
        while let Some(req) = read_request(&mut r) {
            if tx.send(req).is_err() {
                return;
            }
        }
    });
    let mut waiting: Vec<Request> = Vec::new();
    loop {
        let wait = if waiting.is_empty() {
            Duration::from_secs(120)
        } else {
            GATE_QUIET
        };
        let (flush, end) = match rx.recv_timeout(wait) {
            Ok(req) => {
                waiting.push(req);
                let mut s = lock(&state);
                s.max_waiting = s.max_waiting.max(waiting.len());
                (waiting.len() > gate, false)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => (true, waiting.is_empty()),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => (true, true),
        };
        if flush {
            let mut out = String::new();
            for req in waiting.drain(..) {
                match admin_reply(&state, req) {
                    Some(reply) => out.push_str(&reply),
                    None => return,
                }
            }
            if w.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
        if end {
            return;
        }
    }
}

/// The whole reply to one admin request; None for a path the fake does not serve.
fn admin_reply(state: &Arc<Mutex<State>>, (path, p): Request) -> Option<String> {
    let cname = p.get("cname").cloned().unwrap_or_default();
    {
        let mut s = lock(state);
        s.admin_requests += 1;
        let n = s.admin_requests;
        if s.faults
            .admin_429_every
            .is_some_and(|every| n.is_multiple_of(every))
        {
            return Some(fixed_reply(429, ""));
        }
    }
    let body = match path.as_str() {
        "/sign" => {
            let mut s = lock(state);
            s.signs += 1;
            let n = s.channels.len();
            let chan = s.channels.entry(cname.clone()).or_insert_with(|| Chan {
                seq_next: 1,
                token: format!("{:032x}", 0xabcdef_u64 + n as u64),
                ..Chan::default()
            });
            if chan.token.is_empty() {
                chan.token = format!("{:032x}", 0x123456_u64 + n as u64);
            }
            format!(
                "{{\"type\":\"sign\",\"cname\":\"{cname}\",\"seq\":1,\"token\":\"{}\",\"expires\":30,\"sub_timeout\":30}}\n",
                chan.token
            )
        }
        "/push" => {
            let content = p.get("content").cloned().unwrap_or_default();
            let mut s = lock(state);
            s.pushes += 1;
            let skip = s.faults.skip_seq;
            let chan = s.channels.entry(cname.clone()).or_insert_with(|| Chan {
                seq_next: 1,
                ..Chan::default()
            });
            let mut seq = chan.seq_next;
            if Some(seq) == skip {
                seq += 1;
            }
            chan.seq_next = seq + 1;
            let m = msg("data", &cname, seq, &content);
            chan.history.push((seq, m.clone()));
            chan.subs.retain(|tx| tx.send(m.clone()).is_ok());
            "{\"type\":\"ok\"}\n".to_string()
        }
        "/info" => {
            let s = lock(state);
            let subs = s.channels.get(&cname).map_or(0, |c| c.subs.len());
            format!("{{\"cname\": \"{cname}\", \"subscribers\": {subs}}}\n")
        }
        _ => return None,
    };
    Some(fixed_reply(200, &body))
}

/// Runs rcomet-loadgen with `args` against `server` and returns its JSON report.
pub fn run_loadgen(server: &FakeServer, args: &[&str]) -> serde_json::Value {
    run_loadgen_at(server.front, server.admin, args)
}

/// Runs rcomet-loadgen with `args` against the given ports and returns its JSON report.
pub fn run_loadgen_at(front: SocketAddr, admin: SocketAddr, args: &[&str]) -> serde_json::Value {
    run_loadgen_on(&front.to_string(), &admin.to_string(), args)
}

/// Runs rcomet-loadgen with `args` and `--front front --admin admin` (each one address or a
/// comma-separated list) and returns its JSON report.
pub fn run_loadgen_on(front: &str, admin: &str, args: &[&str]) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcomet-loadgen"))
        .args(args)
        .args(["--front", front, "--admin", admin])
        .args(["--json", "--quiet"])
        .args(if args.contains(&"--timeout") {
            &[][..]
        } else {
            &["--timeout", "5"][..]
        })
        .args(if args.contains(&"--min-free-mb") {
            &[][..]
        } else {
            &["--min-free-mb", "0"][..]
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rcomet-loadgen");
    let limit = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rcomet-loadgen {args:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).expect("stdout");
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err).expect("stderr");
    }
    if std::env::var_os("LOADGEN_TEST_VERBOSE").is_some() {
        eprintln!("{args:?}\nstdout: {out}\nstderr: {err}");
    }
    assert!(
        status.success(),
        "{args:?} failed: {status}\nstderr:\n{err}"
    );
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{args:?}: bad JSON ({e}):\n{out}\nstderr:\n{err}"))
}

/// A u64 field of the report.
pub fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not a count in {v}"))
}
