//! Test support: start the real `rcomet` binary on 127.0.0.1 with port 0, find its ports from its
//! ready line, and talk to it over real sockets with raw bytes. Every read has a timeout; nothing
//! sleeps to synchronise.
#![allow(dead_code)]

pub mod admin;
pub mod cluster;
pub mod front;
pub mod json;
pub mod loadgen;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any single read waits before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the test `test` runs on `engine` in this run. When it does not, it says why on stderr
/// and the caller returns at once (the test passes): `RCOMET_TEST_ENGINES=epoll` (or `io_uring`)
/// names the only engine to run, and io_uring runs only where this kernel passes the server's own
/// start-up probe.
pub fn runs_on(engine: &str, test: &str) -> bool {
    static URING: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Ok(only) = std::env::var("RCOMET_TEST_ENGINES") {
        if only != engine {
            eprintln!("{test}: not run on {engine} (RCOMET_TEST_ENGINES={only})");
            return false;
        }
    }
    if engine == "io_uring" {
        let probe = URING.get_or_init(rcomet::engine::probe::uring_available);
        if let Err(reason) = probe {
            eprintln!("{test}: skipped on io_uring: {reason}");
            return false;
        }
    }
    true
}

/// One test per engine for each body: `engine_tests!(name);` above `fn name(engine: &'static str)`
/// makes the tests `name_epoll` and `name_io_uring`, which call the body with that engine name
/// (as `--engine` takes it) unless [`runs_on`] says the run leaves the engine out. Several names
/// may be listed at once. The bodies stay ordinary functions, so rustfmt and the compiler see
/// them whole; a body left out of every list is dead code, which clippy refuses.
#[allow(unused_macros)] // not every test file has per-engine tests
macro_rules! engine_tests {
    ($($name:ident),+ $(,)?) => {$(
        ::paste::paste! {
            #[test]
            fn [<$name _epoll>]() {
                if $crate::support::runs_on("epoll", stringify!($name)) {
                    $name("epoll");
                }
            }

            #[test]
            fn [<$name _io_uring>]() {
                if $crate::support::runs_on("io_uring", stringify!($name)) {
                    $name("io_uring");
                }
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use engine_tests;

/// A running server process, killed on drop.
pub struct Server {
    child: Option<Child>,
    pub admin: SocketAddr,
    pub front: SocketAddr,
    pub pid: u32,
    pub engine: &'static str,
    /// The server's log lines (stderr), when started with [`Opts::capture_log`].
    log: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
    _dir: Option<TempDir>,
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("rcomet-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Options for starting a server.
pub struct Opts<'a> {
    pub engine: &'static str,
    pub threads: usize,
    /// Extra command-line flags.
    pub args: Vec<String>,
    /// A config file body (TAB-indented iComet format), if any.
    pub config: Option<&'a str>,
    /// RLIMIT_NOFILE (soft and hard) for the server process.
    pub nofile: Option<u64>,
    /// Keep the server's stderr lines (see [`Server::log_lines`]); still echoed to stderr.
    pub capture_log: bool,
}

impl<'a> Opts<'a> {
    pub fn new(engine: &'static str) -> Opts<'a> {
        Opts {
            engine,
            threads: 2,
            args: Vec::new(),
            config: None,
            nofile: None,
            capture_log: false,
        }
    }

    /// Starts the server with at most `n` open file descriptors.
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Keeps the server's log lines for [`Server::log_lines`].
    pub fn capture_log(mut self) -> Self {
        self.capture_log = true;
        self
    }

    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn config(mut self, body: &'a str) -> Self {
        self.config = Some(body);
        self
    }
}

/// The value of the word of a ready line `line` that starts with `name` (panics without one).
pub fn ready_field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// The server's `rcomet ready ...` line (its ports, engine and pid as `name=value` words).
pub struct ReadyLine(pub String);

impl ReadyLine {
    /// Takes `child`'s stdout and waits up to `timeout` for its ready line; None when none came
    /// in time (or stdout closed first). A thread keeps draining stdout afterwards.
    pub fn wait(child: &mut Child, timeout: Duration) -> Option<ReadyLine> {
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("rcomet ready") {
                    let _ = tx.send(line);
                }
            }
        });
        rx.recv_timeout(timeout).ok().map(ReadyLine)
    }

    /// The value of the word that starts with `name` (`"admin="`, `"pid="`, ...).
    pub fn field(&self, name: &str) -> &str {
        ready_field(&self.0, name)
    }

    /// The address in the word that starts with `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        let value = self.field(name);
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}{value} is not an address"))
    }
}

impl Server {
    pub fn start(opts: Opts<'_>) -> Server {
        let dir = TempDir::new("srv");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcomet"));
        if let Some(body) = opts.config {
            let path = dir.0.join("icomet.conf");
            std::fs::write(&path, body).unwrap();
            cmd.arg(&path);
        }
        cmd.args([
            "--admin-listen",
            "127.0.0.1:0",
            "--front-listen",
            "127.0.0.1:0",
            "--threads",
            &opts.threads.to_string(),
            "--engine",
            opts.engine,
            "--log-level",
            "warn",
            "--log-output",
            "stderr",
        ]);
        cmd.args(&opts.args);
        cmd.stdout(Stdio::piped()).stderr(if opts.capture_log {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        if let Some(n) = opts.nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: n as libc::rlim_t,
            };
            // SAFETY: the closure runs in the forked child before exec and calls only setrlimit,
            // which is async-signal-safe, on a value copied into the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("start rcomet");
        let log = child.stderr.take().map(|stderr| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let keep = std::sync::Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("{line}");
                    keep.lock().unwrap().push(line);
                }
            });
            lines
        });
        let ready = ReadyLine::wait(&mut child, Duration::from_secs(20))
            .expect("rcomet did not print its ready line");
        assert_eq!(
            ready.field("engine="),
            opts.engine,
            "the server runs on the engine asked for"
        );
        let admin = ready.addr("admin=");
        let front = ready.addr("front=");
        let pid = child.id();
        Server {
            child: Some(child),
            admin,
            front,
            pid,
            engine: opts.engine,
            log,
            _dir: Some(dir),
        }
    }

    /// The log lines the server wrote so far (needs [`Opts::capture_log`]).
    pub fn log_lines(&self) -> Vec<String> {
        let log = self
            .log
            .as_ref()
            .expect("started without Opts::capture_log");
        log.lock().unwrap().clone()
    }

    /// Open file descriptors of the server process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }

    /// The sum over workers (and labels) of a `/metrics` family, e.g.
    /// `rcomet_connections_refused_total`.
    pub fn metric(&self, family: &str) -> u64 {
        let r = get(self.admin, "/metrics");
        assert_eq!(r.status, 200, "/metrics: {}", r.head);
        metric_sum(&r.text(), family)
    }

    /// Resident set size of the server process, in bytes.
    pub fn rss(&self) -> u64 {
        proc_status_kb(self.pid, "VmRSS:") * 1024
    }

    /// Anonymous resident memory of the server process, in bytes.
    pub fn rss_anon(&self) -> u64 {
        proc_status_kb(self.pid, "RssAnon:") * 1024
    }

    /// Sends SIGTERM and waits (bounded) for the exit status code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_bounded(&mut child, within)
    }
}

/// Waits for `child` to exit within `limit` (killed and reaped otherwise); its exit code.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a run of the binary left behind.
pub struct Exit {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Reads `r` to its end on a thread of its own (a child's stdout or stderr, so neither pipe
/// fills while the other is read); the text, lossy only in that a read error ends it.
pub fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = r.read_to_string(&mut text);
        text
    })
}

/// Runs the `rcomet` binary with `args` to its end (killed after `limit`), stdin closed and
/// stdout and stderr captured apart.
pub fn run_binary(args: &[&str], limit: Duration) -> Exit {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcomet"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rcomet");
    let out = read_all(child.stdout.take().expect("stdout"));
    let err = read_all(child.stderr.take().expect("stderr"));
    let code = wait_bounded(&mut child, limit);
    Exit {
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn proc_status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Polls `cond` until it holds or `within` passes; returns whether it held.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A raw client connection with a read buffer.
pub struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// A connection to `to` from the local address `source` (port chosen by the kernel), for
    /// tests of access rules by source address (127.0.0.0/8 is all loopback).
    pub fn open_from(source: &str, to: SocketAddr) -> Conn {
        use socket2::{Domain, SockAddr, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let from: SocketAddr = format!("{source}:0").parse().expect("address");
        s.bind(&SockAddr::from(from)).expect("bind");
        s.connect(&SockAddr::from(to)).expect("connect");
        let stream: TcpStream = s.into();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends bytes the server may refuse to read; false once it has closed its side.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Sends `GET path HTTP/1.1` with a Host header.
    pub fn get(&mut self, path: &str) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }

    /// Reads more bytes into the buffer; false on EOF.
    pub fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) => panic!(
                "read failed (timeout?): {e}; have {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads until `n` bytes are buffered (or EOF); returns the first n (consumed).
    pub fn read_exact_n(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            if !self.fill() {
                break;
            }
        }
        let n = n.min(self.buf.len());
        self.buf.drain(..n).collect()
    }

    /// Reads until the peer closes; returns everything buffered.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// True if the peer closes the connection (EOF or reset) before the timeout.
    pub fn closed_by_peer(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    fn find(&self, pat: &[u8]) -> Option<usize> {
        self.buf.windows(pat.len()).position(|w| w == pat)
    }

    /// Reads a response head (through the blank line).
    pub fn read_head(&mut self) -> (u16, String) {
        loop {
            if let Some(end) = self.find(b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                let head = String::from_utf8_lossy(&head).into_owned();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return (status, head);
            }
            assert!(
                self.fill(),
                "EOF before a full head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads one HTTP chunk's payload; `None` for the terminating zero chunk.
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(eol) = self.find(b"\r\n") {
                let size_line = String::from_utf8_lossy(&self.buf[..eol]).into_owned();
                let size = usize::from_str_radix(size_line.trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
                let total = eol + 2 + size + 2;
                while self.buf.len() < total {
                    assert!(self.fill(), "EOF inside a chunk");
                }
                let data = self.buf[eol + 2..eol + 2 + size].to_vec();
                assert_eq!(
                    &self.buf[eol + 2 + size..total],
                    b"\r\n",
                    "chunk not followed by CRLF"
                );
                self.buf.drain(..total);
                return if size == 0 { None } else { Some(data) };
            }
            assert!(self.fill(), "EOF before a chunk");
        }
    }

    /// Reads one whole response: Content-Length, chunked (all chunks joined) or until close.
    pub fn read_response(&mut self) -> Response {
        let (status, head) = self.read_head();
        let lower = head.to_ascii_lowercase();
        let body = if lower.contains("transfer-encoding: chunked") {
            let mut body = Vec::new();
            while let Some(c) = self.read_chunk() {
                body.extend_from_slice(&c);
            }
            body
        } else if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            self.read_exact_n(len)
        } else {
            self.read_to_close()
        };
        Response { status, head, body }
    }
}

/// One request on a fresh connection; returns the response.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let mut c = Conn::open(addr);
    c.get(path);
    c.read_response()
}

/// The head of a response with its Date value replaced by `D`, for byte-exact comparisons.
pub fn normalize_date(head: &str) -> String {
    head.lines()
        .map(|l| {
            if l.starts_with("Date: ") {
                "Date: D"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The sum over every series (workers, labels) of the family `family` in a `/metrics` text.
pub fn metric_sum(text: &str, family: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
