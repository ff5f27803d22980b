//! rcomet-loadgen against the real rcomet binary: holding long-poll subscribers over several
//! worker processes and source addresses under a lowered open-file limit (checked from the
//! server's `/stats`, the kernel's socket table and the workers' `/proc` entries), lossless
//! fan-out on every transport (WebSocket among them), WebSocket subscribers answering the
//! server's heartbeat pings, lost-message detection through a relay that drops one real data
//! frame, and `/ping` throughput. Small and bounded (a few hundred connections, seconds each).
//!
//! Depends on tests/support (server process, raw HTTP helpers, loadgen runs), /proc and std.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::json::Json;
use support::loadgen::{run_loadgen, stats, Loadgen, RUN_LIMIT};
use support::{engine_tests, eventually, Opts, Server};

// ---------------------------------------------------------------------------------------------
// What the kernel shows while loadgen holds its connections
// ---------------------------------------------------------------------------------------------

fn parse_proc_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // /proc prints the network-order address as a host-order number.
    Some(SocketAddr::from((Ipv4Addr::from(ip.to_ne_bytes()), port)))
}

/// Established IPv4 client sockets connected to `target`, counted by source address. The table
/// is read in pieces while other sockets come and go, so one pass may list a socket twice or miss
/// it: sockets are told apart by their own address.
fn established_to(target: SocketAddr) -> BTreeMap<Ipv4Addr, usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let mut sockets = BTreeSet::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(SocketAddr::V4(local)), Some(remote), Some(&"01")) = (
            f.get(1).and_then(|a| parse_proc_addr(a)),
            f.get(2).and_then(|a| parse_proc_addr(a)),
            f.get(3),
        ) else {
            continue;
        };
        if remote == target {
            sockets.insert(local);
        }
    }
    let mut by_source = BTreeMap::new();
    for local in sockets {
        *by_source.entry(*local.ip()).or_insert(0) += 1;
    }
    by_source
}

/// Direct children of `pid` (from every process's /proc/PID/stat).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            after_comm.split_whitespace().nth(1) == Some(&pid.to_string())
        })
        .collect()
}

/// Soft RLIMIT_NOFILE of a process.
fn nofile_soft(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no open-file limit for {pid}"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// A front relay that can drop one data message of a chunked stream
// ---------------------------------------------------------------------------------------------

/// Longest head or chunk-size line the relay accepts.
const RELAY_MAX_LINE: usize = 64 * 1024;
/// Largest chunk the relay accepts.
const RELAY_MAX_CHUNK: usize = 1 << 20;

/// Listens on 127.0.0.1 and relays each connection to `upstream`; with `drop_nth` set, the n-th
/// (1-based) `"type":"data"` line of one response stream is removed, once over all connections.
struct Relay {
    addr: SocketAddr,
    dropped: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: SocketAddr, drop_nth: Option<usize>) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let dropped = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(drop_nth.is_some()));
        let (d, s) = (Arc::clone(&dropped), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let (d, armed) = (Arc::clone(&d), Arc::clone(&armed));
                std::thread::spawn(move || {
                    let _ = relay_conn(client, upstream, drop_nth.unwrap_or(0), &armed, &d);
                });
            }
        });
        Relay {
            addr,
            dropped,
            stop,
        }
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn relay_conn(
    client: TcpStream,
    upstream: SocketAddr,
    drop_nth: usize,
    armed: &AtomicBool,
    dropped: &AtomicUsize,
) -> std::io::Result<()> {
    let up = TcpStream::connect(upstream)?;
    for s in [&client, &up] {
        s.set_read_timeout(Some(RUN_LIMIT))?;
        s.set_nodelay(true)?;
    }
    let (mut req_in, mut req_out) = (client.try_clone()?, up.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut req_in, &mut req_out);
        let _ = req_out.shutdown(Shutdown::Both);
    });
    let mut from = BufReader::new(up);
    let mut to = client;
    let mut data_lines = 0usize;
    loop {
        // Response head, forwarded as is.
        let mut head = Vec::new();
        loop {
            let line = read_line(&mut from)?;
            if line.is_empty() {
                return Ok(());
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
            if head.len() > RELAY_MAX_LINE {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
        }
        to.write_all(&head)?;
        let chunked = String::from_utf8_lossy(&head)
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        if !chunked {
            // Fixed or read-until-close bodies pass through untouched.
            std::io::copy(&mut from, &mut to)?;
            return Ok(());
        }
        loop {
            let size_line = read_line(&mut from)?;
            let size = std::str::from_utf8(&size_line)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .filter(|&n| n <= RELAY_MAX_CHUNK)
                .ok_or(std::io::ErrorKind::InvalidData)?;
            let mut payload = vec![0u8; size + 2];
            from.read_exact(&mut payload)?;
            payload.truncate(size);
            if size == 0 {
                to.write_all(b"0\r\n\r\n")?;
                break;
            }
            let mut kept = Vec::with_capacity(size);
            for line in payload.split_inclusive(|&b| b == b'\n') {
                let is_data = line.windows(13).any(|w| w == b"\"type\":\"data\"");
                if is_data {
                    data_lines += 1;
                    if data_lines == drop_nth && armed.swap(false, Ordering::SeqCst) {
                        dropped.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                }
                kept.extend_from_slice(line);
            }
            if !kept.is_empty() {
                to.write_all(format!("{:x}\r\n", kept.len()).as_bytes())?;
                kept.extend_from_slice(b"\r\n");
                to.write_all(&kept)?;
            }
        }
    }
}

/// One line including its `\n` (empty at EOF), bounded.
fn read_line(r: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.by_ref()
        .take(RELAY_MAX_LINE as u64)
        .read_until(b'\n', &mut line)?;
    Ok(line)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

fn assert_no_errors(r: &Json) {
    assert_eq!(r.count("errors_total"), 0, "{r:?}");
    for kind in ["connect", "timeout", "http_status", "parse", "closed"] {
        assert_eq!(
            r.count(&format!("errors.{kind}")),
            0,
            "errors.{kind} in {r:?}"
        );
    }
}

engine_tests!(connect_holds_signed_long_polls_over_processes_and_sources);
fn connect_holds_signed_long_polls_over_processes_and_sources(engine: &'static str) {
    const N: usize = 600;
    const FD_LIMIT: u64 = 200;
    let server = Server::start(Opts::new(engine).arg("--auth").arg("token"));
    let n = N.to_string();
    let fd_limit = FD_LIMIT.to_string();
    let lg = Loadgen::spawn(
        server.front,
        server.admin,
        &[
            "connect",
            "-n",
            &n,
            "--sign",
            "--fd-limit",
            &fd_limit,
            "--sources",
            "127.0.0.2-127.0.0.3",
            "--hold",
            "6",
        ],
    );

    // While held: the server counts every subscriber and connection.
    let mut last = Json::default();
    let held = eventually(Duration::from_secs(30), || {
        last = stats(&server);
        // The channel homes and the connection workers count on their own: wait for both.
        last.count("subscribers") == N as u64 && last.sum("workers", "subscribers") == N as u64
    });
    assert!(
        held,
        "[{engine}] /stats never showed {N} subscribers: {last:?}"
    );
    assert!(last.count("connections") >= N as u64, "[{engine}] {last:?}");
    assert!(last.count("channels") >= N as u64, "[{engine}] {last:?}");

    // The kernel shows them coming from both source addresses.
    let mut by_source = BTreeMap::new();
    let counted = eventually(Duration::from_secs(3), || {
        by_source = established_to(server.front);
        by_source.values().sum::<usize>() == N
    });
    assert!(counted, "[{engine}] established sockets: {by_source:?}");
    let two: Vec<Ipv4Addr> = vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    assert_eq!(
        by_source.keys().copied().collect::<Vec<_>>(),
        two,
        "[{engine}] {by_source:?}"
    );
    assert!(
        by_source.values().all(|&c| c == N / 2),
        "[{engine}] round-robin over sources: {by_source:?}"
    );

    // Each worker process runs under the lowered limit and holds fewer descriptors.
    let workers = children_of(lg.pid());
    assert!(workers.len() >= 2, "[{engine}] workers {workers:?}");
    assert!(nofile_soft(lg.pid()) <= FD_LIMIT, "[{engine}] parent limit");
    for w in &workers {
        assert!(nofile_soft(*w) <= FD_LIMIT, "[{engine}] worker {w} limit");
        let fds = open_fds(*w);
        assert!(
            fds as u64 <= FD_LIMIT && fds > 0,
            "[{engine}] worker {w} fds {fds}"
        );
    }

    let r = lg.finish();
    assert_eq!(r.str("scenario"), Some("connect"), "{r:?}");
    assert_eq!(r.count("connections_target"), N as u64, "[{engine}] {r:?}");
    assert_eq!(r.count("connections_held"), N as u64, "[{engine}] {r:?}");
    assert_eq!(
        r.count("connections_held_at_ready"),
        N as u64,
        "[{engine}] {r:?}"
    );
    assert!(r.count("processes") >= 2, "[{engine}] {r:?}");
    assert_eq!(
        r.count("processes"),
        workers.len() as u64,
        "[{engine}] {r:?}"
    );
    assert_eq!(r.count("fd_limit"), FD_LIMIT, "[{engine}] {r:?}");
    assert_eq!(r.count("sources"), 2, "[{engine}] {r:?}");
    assert_eq!(r.count("latency_us.count"), N as u64, "[{engine}] {r:?}");
    assert_no_errors(&r);

    // Once loadgen has gone, the server lets go of every subscriber.
    let released = eventually(Duration::from_secs(10), || {
        last = stats(&server);
        last.count("subscribers") == 0 && last.count("connections") <= 1
    });
    assert!(released, "[{engine}] subscribers left behind: {last:?}");
}

const FAN_SUBSCRIBERS: u64 = 200;
const FAN_PER_CHANNEL: u64 = 10;
const FAN_MESSAGES: u64 = 300;
/// Message i goes to channel i mod 20; each reaches that channel's 10 subscribers.
const FAN_EXPECTED: u64 = FAN_MESSAGES * FAN_PER_CHANNEL;

/// A signed fan-out of 300 messages to 200 subscribers (20 channels of 10) at `rate` per second.
fn fanout_run(server: &Server, transport: &str, rate: u32, prefix: &str) -> Json {
    run_loadgen(
        server,
        server.front,
        &[
            "fanout",
            "-n",
            &FAN_SUBSCRIBERS.to_string(),
            "--per-channel",
            &FAN_PER_CHANNEL.to_string(),
            "--messages",
            &FAN_MESSAGES.to_string(),
            "--msg-rate",
            &rate.to_string(),
            "--transport",
            transport,
            "--channel-prefix",
            prefix,
            "--sign",
            "--drain",
            "10",
        ],
    )
}

engine_tests!(fanout_is_lossless_on_every_transport);
fn fanout_is_lossless_on_every_transport(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--auth").arg("token"));
    for transport in ["poll", "stream", "sse", "ws"] {
        let r = fanout_run(&server, transport, 1000, &format!("fan-{transport}-"));
        let ctx = format!("[{engine} {transport}] {r:?}");
        assert_eq!(r.str("transport"), Some(transport), "{ctx}");
        assert_eq!(r.count("connections_held"), FAN_SUBSCRIBERS, "{ctx}");
        assert_eq!(r.count("pushes_sent"), FAN_MESSAGES, "{ctx}");
        assert_eq!(r.count("pushes_ok"), FAN_MESSAGES, "{ctx}");
        assert_eq!(r.count("pushes_failed"), 0, "{ctx}");
        assert_eq!(r.count("expected_deliveries"), FAN_EXPECTED, "{ctx}");
        assert_eq!(r.count("deliveries"), FAN_EXPECTED, "{ctx}");
        assert_eq!(r.count("undelivered"), 0, "{ctx}");
        assert_eq!(r.count("lost"), 0, "{ctx}");
        assert_eq!(r.count("duplicated"), 0, "{ctx}");
        assert_eq!(r.count("out_of_order"), 0, "{ctx}");
        assert_no_errors(&r);
        assert_eq!(r.count("latency_us.count"), FAN_EXPECTED, "{ctx}");
        let (p50, p99, max) = (
            r.count("latency_us.p50"),
            r.count("latency_us.p99"),
            r.count("latency_us.max"),
        );
        assert!(p50 > 0 && p50 <= p99 && p99 <= max, "{ctx}");
        assert!(r.num("latency_us.mean") > 0.0, "{ctx}");
        assert!(r.num("deliveries_per_s") > 0.0, "{ctx}");
    }
}

engine_tests!(stats_count_every_message_written_to_subscribers);
fn stats_count_every_message_written_to_subscribers(engine: &'static str) {
    // Fast enough that long-pollers re-poll behind and get messages replayed from the channel
    // buffer; `/stats` deliveries are "messages written to subscribers", live or replayed.
    let server = Server::start(Opts::new(engine).arg("--auth").arg("token"));
    for transport in ["stream", "sse", "poll", "ws"] {
        let before = stats(&server).sum("workers", "deliveries");
        let r = fanout_run(&server, transport, 5000, &format!("count-{transport}-"));
        let ctx = format!("[{engine} {transport}] {r:?}");
        assert_eq!(r.count("deliveries"), FAN_EXPECTED, "{ctx}");
        assert_eq!(r.count("duplicated"), 0, "{ctx}");
        let after = stats(&server).sum("workers", "deliveries");
        assert!(
            after - before >= FAN_EXPECTED,
            "[{engine} {transport}] server counted {} deliveries, loadgen received {FAN_EXPECTED}",
            after - before
        );
    }
}

engine_tests!(a_data_frame_dropped_from_a_real_stream_is_reported_lost);
fn a_data_frame_dropped_from_a_real_stream_is_reported_lost(engine: &'static str) {
    const MESSAGES: u64 = 20;
    let server = Server::start(Opts::new(engine));
    let fanout = |front: SocketAddr, prefix: &str| {
        run_loadgen(
            &server,
            front,
            &[
                "fanout",
                "-n",
                "4",
                "--per-channel",
                "2",
                "--messages",
                &MESSAGES.to_string(),
                "--msg-rate",
                "100",
                "--transport",
                "stream",
                "--channel-prefix",
                prefix,
                "--drain",
                "2",
            ],
        )
    };
    // Through a transparent relay nothing is lost: the relay itself is sound.
    let clean = Relay::start(server.front, None);
    let r = fanout(clean.addr, "clean-");
    let ctx = format!("[{engine} clean] {r:?}");
    assert_eq!(clean.dropped(), 0, "{ctx}");
    assert_eq!(r.count("deliveries"), MESSAGES * 2, "{ctx}");
    assert_eq!(r.count("lost"), 0, "{ctx}");
    assert_no_errors(&r);

    // Dropping the second data message of one subscriber's stream shows as a lost seq.
    let lossy = Relay::start(server.front, Some(2));
    let r = fanout(lossy.addr, "lossy-");
    let ctx = format!("[{engine} lossy] {r:?}");
    assert_eq!(lossy.dropped(), 1, "{ctx}");
    assert!(r.count("lost") >= 1, "{ctx}");
    assert_eq!(r.count("expected_deliveries"), MESSAGES * 2, "{ctx}");
    assert_eq!(r.count("deliveries"), MESSAGES * 2 - 1, "{ctx}");
    assert!(r.count("undelivered") >= 1, "{ctx}");
    assert_eq!(r.count("duplicated"), 0, "{ctx}");
    assert_eq!(r.count("out_of_order"), 0, "{ctx}");
}

engine_tests!(websocket_subscribers_answer_heartbeat_pings);
fn websocket_subscribers_answer_heartbeat_pings(engine: &'static str) {
    // A /ws subscriber that answers no ping is closed (1001) at the third heartbeat; with a
    // heartbeat every second or two, holding five seconds needs the pongs.
    let server = Server::start(Opts::new(engine).config("front:\n\tpolling_timeout: 1\n"));
    let r = run_loadgen(
        &server,
        server.front,
        &[
            "connect",
            "-n",
            "50",
            "--per-channel",
            "5",
            "--transport",
            "ws",
            "--hold",
            "5",
        ],
    );
    let ctx = format!("[{engine}] {r:?}");
    assert_eq!(r.str("transport"), Some("ws"), "{ctx}");
    assert_eq!(r.count("connections_held"), 50, "{ctx}");
    assert_eq!(r.count("reconnects"), 0, "{ctx}");
    assert!(
        r.count("noops") >= 100,
        "two heartbeats or more each: {ctx}"
    );
    assert_no_errors(&r);
}

engine_tests!(ping_counts_requests_without_errors);
fn ping_counts_requests_without_errors(engine: &'static str) {
    let server = Server::start(Opts::new(engine));
    let before = stats(&server).sum("workers", "requests");
    let r = run_loadgen(
        &server,
        server.front,
        &["ping", "-c", "4", "--pipeline", "2", "--duration", "1"],
    );
    let ctx = format!("[{engine}] {r:?}");
    let requests = r.count("requests");
    assert!(requests > 0, "{ctx}");
    assert!(r.num("requests_per_s") > 0.0, "{ctx}");
    assert_eq!(r.count("latency_us.count"), requests, "{ctx}");
    assert_eq!(r.count("connections_held"), 4, "{ctx}");
    assert_no_errors(&r);
    let after = stats(&server).sum("workers", "requests");
    assert!(
        after - before >= requests,
        "{ctx}: server requests {before} → {after}"
    );
}

#[test]
fn json_reader_reads_reports() {
    let v = Json::parse(
        r#"{"a": 1, "b": {"c": -2.5e1, "d": [true, null, "x\"y\u00e9"]}, "e": [{"n": 2}, {"n": 3}]}"#,
    )
    .expect("parse");
    assert_eq!(v.num("a"), 1.0);
    assert_eq!(v.count("a"), 1);
    assert_eq!(v.num("b.c"), -25.0);
    assert_eq!(
        v.get("b.d"),
        Some(&serde_json::json!([true, null, "x\"yé"]))
    );
    assert_eq!(v.get("b.d").and_then(|d| d[2].as_str()), Some("x\"yé"));
    assert_eq!(v.str("b.c"), None);
    assert_eq!(v.sum("e", "n"), 5);
    assert_eq!(v.get("b.nope"), None);
    assert!(Json::parse(r#"{"a": 1"#).is_err());
    assert!(Json::parse(r#"{"a": 1} x"#).is_err());
    assert!(Json::parse(&"[".repeat(100)).is_err());
    // Nesting is bounded.
    assert!(Json::parse(&format!("{}{}", "[".repeat(1000), "]".repeat(1000))).is_err());
}
