//! Cluster-mode helpers: a real `redis-server` on a free loopback port (no persistence), rcomet
//! nodes started against it, and a subscriber client that reads JSON objects from any transport
//! (long-poll re-polling by seq, stream, SSE, WebSocket). Depends on the parent support module.
#![allow(dead_code)]

use super::*;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};

/// A redis-server process, killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

impl Redis {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server (Debian package redis-server)");
        self.child = Some(child);
        assert!(
            eventually(Duration::from_secs(10), || self.ping()),
            "redis-server did not answer on port {}",
            self.port
        );
    }

    /// `HOST:PORT` for `--cluster-redis`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// True when a PING is answered within a second.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// Runs one command; returns the start of its reply (one read, up to a second).
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("write to redis");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn signal(&self, sig: i32) {
        if let Some(child) = &self.child {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
    }

    /// SIGSTOP: Redis keeps its sockets and data but answers nothing.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGKILL, then a new redis-server on the same port: everything it held is gone.
    pub fn restart_empty(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signal(libc::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts one rcomet node of the cluster on `redis`, named `node`, with `extra` flags.
pub fn node(engine: &'static str, redis: &Redis, node: &str, extra: &[&str]) -> Server {
    let mut opts = Opts::new(engine)
        .arg("--cluster-redis")
        .arg(&redis.addr())
        .arg("--cluster-node")
        .arg(node);
    for a in extra {
        opts = opts.arg(a);
    }
    Server::start(opts)
}

/// Three nodes on one Redis.
pub fn three_nodes(engine: &'static str, redis: &Redis, extra: &[&str]) -> Vec<Server> {
    (1..=3)
        .map(|i| node(engine, redis, &format!("n{i}"), extra))
        .collect()
}

/// An admin request; returns (status, body).
pub fn admin(server: &Server, path: &str) -> (u16, String) {
    let r = get(server.admin, path);
    (r.status, r.text())
}

/// A subscriber's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LongPoll,
    Stream,
    Sse,
    Ws,
}

pub const ALL_KINDS: [Kind; 4] = [Kind::LongPoll, Kind::Stream, Kind::Sse, Kind::Ws];

/// A subscriber reading JSON objects, whatever its transport.
pub struct Sub {
    pub kind: Kind,
    pub conn: Conn,
    cname: String,
    /// The seq a long-poll asks for next.
    next: i64,
    queue: VecDeque<Value>,
}

impl Sub {
    /// Subscribes to `cname` from `seq` on the node whose front port is `front`; `extra` is
    /// appended to the query (`&token=...`, `&epoch=...`).
    pub fn open(front: SocketAddr, kind: Kind, cname: &str, seq: i64, extra: &str) -> Sub {
        let query = format!("cname={cname}&seq={seq}{extra}");
        let conn = match kind {
            Kind::Ws => ws::open(front, &format!("/ws?{query}")),
            _ => {
                let path = match kind {
                    Kind::LongPoll => "/sub",
                    Kind::Stream => "/stream",
                    _ => "/sse",
                };
                let mut c = Conn::open(front);
                c.get(&format!("{path}?{query}"));
                let (status, head) = c.read_head();
                assert_eq!(status, 200, "{head}");
                c
            }
        };
        Sub {
            kind,
            conn,
            cname: cname.to_string(),
            next: seq,
            queue: VecDeque::new(),
        }
    }

    /// The next object other than a heartbeat.
    pub fn next(&mut self) -> Value {
        loop {
            while let Some(v) = self.queue.pop_front() {
                if v["type"] != "noop" {
                    self.track(&v);
                    return v;
                }
            }
            self.read_more();
        }
    }

    /// The next `n` objects' (type, seq, content).
    pub fn take(&mut self, n: usize) -> Vec<(String, i64, String)> {
        (0..n).map(|_| triple(&self.next())).collect()
    }

    fn track(&mut self, v: &Value) {
        let seq = v["seq"].as_i64().unwrap_or(0);
        match v["type"].as_str() {
            Some("data") | Some("broadcast") => self.next = seq + 1,
            Some("next_seq") | Some("reset") => self.next = seq,
            _ => {}
        }
    }

    fn push_text(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.strip_prefix("data: ").unwrap_or(line).trim();
            if !(line.starts_with('{') || line.starts_with('[')) {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Array(items)) => self.queue.extend(items),
                Ok(v) => self.queue.push_back(v),
                Err(e) => panic!("not JSON ({e}): {line:?}"),
            }
        }
    }

    fn read_more(&mut self) {
        match self.kind {
            Kind::Ws => {
                let f = self.conn.read_frame();
                if f.opcode == 1 {
                    self.push_text(&f.text());
                }
            }
            Kind::Stream | Kind::Sse => {
                let chunk = self.conn.read_chunk().expect("the stream ended");
                self.push_text(&String::from_utf8_lossy(&chunk));
            }
            Kind::LongPoll => {
                let chunk = self.conn.read_chunk().expect("a long-poll frame");
                assert!(self.conn.read_chunk().is_none(), "one frame per long-poll");
                let text = String::from_utf8_lossy(&chunk).into_owned();
                self.push_text(&text);
                // Ask again from what this poll brought.
                let mut next = self.next;
                for v in &self.queue {
                    let seq = v["seq"].as_i64().unwrap_or(0);
                    match v["type"].as_str() {
                        Some("data") | Some("broadcast") => next = seq + 1,
                        Some("next_seq") | Some("reset") => next = seq,
                        _ => {}
                    }
                }
                let path = format!("/sub?cname={}&seq={next}", self.cname);
                self.conn.get(&path);
                let (status, head) = self.conn.read_head();
                assert_eq!(status, 200, "{head}");
            }
        }
    }
}

/// (type, seq, content) of a message object.
pub fn triple(v: &Value) -> (String, i64, String) {
    (
        v["type"].as_str().unwrap_or_default().to_string(),
        v["seq"].as_i64().unwrap_or(0),
        v["content"].as_str().unwrap_or_default().to_string(),
    )
}

/// `/info?cname=` on `server`: the subscribers over all nodes.
pub fn info(server: &Server, cname: &str) -> i64 {
    let (status, body) = admin(server, &format!("/info?cname={cname}"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(body.trim()).expect("info JSON");
    v["subscribers"].as_i64().unwrap_or(-1)
}

/// Waits until `/info?cname=` on `server` reports `n`.
pub fn wait_info(server: &Server, cname: &str, n: i64) {
    let mut last = -1;
    let ok = eventually(Duration::from_secs(15), || {
        last = info(server, cname);
        last == n
    });
    assert!(ok, "/info?cname={cname} stayed at {last}, not {n}");
}

/// Pushes `content` on `server` and returns the status.
pub fn push(server: &Server, cname: &str, content: &str) -> u16 {
    admin(server, &format!("/push?cname={cname}&content={content}")).0
}

/// Pushes and asserts 200.
pub fn push_ok(server: &Server, cname: &str, content: &str) {
    let (status, body) = admin(server, &format!("/push?cname={cname}&content={content}"));
    assert_eq!(status, 200, "push {content}: {body}");
}

/// Waits until `server`'s `/stats` says every Redis shard is connected.
pub fn wait_connected(server: &Server) {
    let ok = eventually(Duration::from_secs(15), || {
        let text = admin(server, "/stats").1;
        serde_json::from_str::<Value>(&text).is_ok_and(|v| v["cluster"]["connected"] == true)
    });
    assert!(ok, "node did not connect to Redis");
}

/// Opens `/psub` on `server` and reads its head.
pub fn psub(server: &Server) -> Conn {
    let mut c = Conn::open(server.admin);
    c.get("/psub");
    let (status, head) = c.read_head();
    assert_eq!(status, 200, "{head}");
    c
}

/// Reads `/psub` lines until every one of `want` was seen (other lines, such as
/// re-announcements, may come between); returns every line read, in order.
pub fn psub_until(reader: &mut Conn, want: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !want.iter().all(|w| seen.iter().any(|s: &String| s == w)) {
        assert!(
            Instant::now() < deadline,
            "/psub: {want:?} not all seen in {seen:?}"
        );
        let chunk = reader.read_chunk().expect("/psub ended");
        let text = String::from_utf8(chunk).expect("UTF-8 line");
        assert!(text.ends_with('\n'), "one line per chunk: {text:?}");
        seen.extend(text.lines().map(str::to_string));
    }
    seen
}
