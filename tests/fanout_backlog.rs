//! A push to a big channel does not hold up the other clients of its worker: the frames of a
//! fan-out to many subscribers are written behind everyone else's output, a bounded number of
//! connections a turn (`worker::backlog`), and every one of them still arrives, once, in order.
//!
//! One worker, `BIG` `/stream` subscribers of one channel and one subscriber of another; two
//! pushes pipelined in one write, the big channel's first. The small channel's subscriber must
//! get its frame while some of the big channel's subscribers are still waiting for theirs (before
//! the backlog, the whole fan-out was written first, in the same turn). Then every big subscriber
//! gets its frame, and a second push to both channels arrives after the first everywhere.
//!
//! And the lane that carries out such a fan-out a bounded part a turn (`worker::fanout_lane`)
//! keeps every subscriber's order: long-poll chains, stream subscribers from the start and ones
//! that join while the fan-out is under way, then the channel's close, on both workers.
//!
//! And publishers faster than a big channel's fan-out wait at its home (`worker::hold`): the
//! lane never holds more than its bound, and nothing is lost or reordered. Subscribers that
//! vanish while their frames wait leave nothing behind, and a channel closed and opened again
//! while its old messages wait in the lane gets none of them.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::front::{chunk, msg, wait_subscribers};
use support::*;

/// Subscribers of the big channel: ~30 turns of the backlog's 128 sends, tens of milliseconds of
/// sends on this machine.
const BIG: usize = 4000;

/// Subscribers checked at each end of the big channel's list the moment the small one's frame
/// arrived (the backlog writes them in the order of the channel's index, one end first).
const CHECKED: usize = 64;

engine_tests!(
    big_fanout_waits_behind_other_clients,
    big_channel_keeps_order,
    fast_publishers_wait_for_a_big_fanout,
    subscribers_leaving_mid_fanout_leave_nothing_behind,
    a_reopened_channel_gets_nothing_of_the_old_one,
    closing_a_big_idle_channel_ends_every_subscription
);

/// Opens `n` `/stream` subscribers of `cname` (all requests sent before any answer is read)
/// and reads each one's head and `next_seq` frame.
fn streams(server: &Server, cname: &str, n: usize) -> Vec<Conn> {
    let mut conns: Vec<Conn> = (0..n).map(|_| Conn::open(server.front)).collect();
    for c in &mut conns {
        c.get(&format!("/stream?cname={cname}"));
    }
    let first = chunk(&format!("{}\n", msg("next_seq", cname, 1, "")));
    for c in &mut conns {
        let (status, _) = c.read_head();
        assert_eq!(status, 200, "subscribing to {cname}");
        assert_eq!(c.read_exact_n(first.len()), first.as_bytes());
    }
    conns
}

/// Whether the server has written anything to `c` yet (without waiting).
fn has_data(c: &mut Conn) -> bool {
    if !c.buf.is_empty() {
        return true;
    }
    c.stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let got = match c.stream.peek(&mut byte) {
        Ok(n) => n > 0,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("peek: {e}"),
    };
    c.stream.set_nonblocking(false).expect("blocking");
    got
}

fn big_fanout_waits_behind_other_clients(engine: &'static str) {
    let limit = (BIG + 100).to_string();
    let server = Server::start(
        Opts::new(engine)
            .threads(1)
            .arg("--max-subscribers-per-channel")
            .arg(&limit),
    );
    let mut big = streams(&server, "big", BIG);
    let mut small = streams(&server, "small", 1);
    wait_subscribers(&server, "big", BIG);

    let mut admin = TcpStream::connect(server.admin).expect("admin");
    admin.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let pushes = "GET /push?cname=big&content=one HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /push?cname=small&content=one HTTP/1.1\r\nHost: t\r\n\r\n";
    admin.write_all(pushes.as_bytes()).expect("push");

    let small_frame = chunk(&format!("{}\n", msg("data", "small", 1, "one")));
    assert_eq!(
        small[0].read_exact_n(small_frame.len()),
        small_frame.as_bytes()
    );
    let ends = (0..CHECKED).chain(BIG - CHECKED..BIG);
    let waiting = ends.filter(|&i| !has_data(&mut big[i])).count();
    assert!(
        waiting > 0,
        "[{engine}] all {} big subscribers checked already had the push when the small channel's \
         subscriber got its own: the fan-out was written first",
        2 * CHECKED
    );

    let big_frame = chunk(&format!("{}\n", msg("data", "big", 1, "one")));
    for c in &mut big {
        assert_eq!(c.read_exact_n(big_frame.len()), big_frame.as_bytes());
    }
    // Both replies came, in order.
    let mut replies = Vec::new();
    let deadline = Instant::now() + IO_TIMEOUT;
    while count(&replies, b"HTTP/1.1 200") < 2 && Instant::now() < deadline {
        let mut chunk = [0u8; 4096];
        match admin.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => replies.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("admin reply: {e}"),
        }
    }
    assert_eq!(count(&replies, b"HTTP/1.1 200"), 2, "both pushes answered");

    // The next push follows the first on every subscriber, nothing else in between.
    let again = "GET /push?cname=big&content=two HTTP/1.1\r\nHost: t\r\n\r\n";
    admin.write_all(again.as_bytes()).expect("push");
    let second = chunk(&format!("{}\n", msg("data", "big", 2, "two")));
    for c in &mut big {
        assert_eq!(c.read_exact_n(second.len()), second.as_bytes());
        assert!(c.buf.is_empty(), "nothing else arrived");
    }
    assert!(
        eventually(Duration::from_secs(10), || server
            .metric("rcomet_fanout_backlog")
            == 0),
        "the backlog empties"
    );
}

/// How many times `pat` occurs in `text`.
fn count(text: &[u8], pat: &[u8]) -> usize {
    text.windows(pat.len()).filter(|w| *w == pat).count()
}

/// (type, seq, content) of every message object in `text`.
fn objects(text: &str) -> Vec<(String, i64, String)> {
    text.split("{\"type\":\"")
        .skip(1)
        .map(|obj| {
            let kind = obj.split('"').next().unwrap_or_default().to_string();
            let seq = obj
                .split("\"seq\":")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no seq in {obj:?}"));
            let content = obj
                .split("\"content\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default()
                .to_string();
            (kind, seq, content)
        })
        .collect()
}

/// Messages pushed to the big channel in the order test.
const PUSHES: i64 = 150;

/// Reads a `/stream` subscriber's frames until the channel's close and the end of the
/// response; returns the data seqs in arrival order (checking each content).
fn read_until_close(c: &mut Conn, who: &str) -> Vec<i64> {
    let mut seqs = Vec::new();
    loop {
        let Some(frame) = c.read_chunk() else {
            panic!("{who}: the response ended before the close ({seqs:?})");
        };
        for (kind, seq, content) in objects(&String::from_utf8_lossy(&frame)) {
            match kind.as_str() {
                "data" => {
                    assert_eq!(content, format!("m{seq}"), "{who}: content of {seq}");
                    seqs.push(seq);
                }
                "close" => {
                    assert!(c.read_chunk().is_none(), "{who}: nothing after the close");
                    return seqs;
                }
                "next_seq" => {}
                other => panic!("{who}: unexpected {other} after {seqs:?}"),
            }
        }
    }
}

/// A long-poll chain on the big channel from seq 1 until it has every push or the channel is
/// closed (a poll after the close opens the channel anew and gets a heartbeat at the polling
/// timeout, or a `next_seq`: either ends the chain); returns the seqs it got.
fn poll_chain(front: std::net::SocketAddr, who: String) -> Vec<i64> {
    let mut got = Vec::new();
    let mut next = 1;
    let mut c = Conn::open(front);
    while next <= PUSHES {
        c.get(&format!("/sub?cname=big&seq={next}"));
        let r = c.read_response();
        assert_eq!(r.status, 200, "{who}");
        let objects = objects(&r.text());
        if !objects.iter().any(|(kind, _, _)| kind == "data") {
            // A heartbeat or a fresh channel's next_seq: the channel was closed meanwhile.
            return got;
        }
        for (kind, seq, content) in objects {
            match kind.as_str() {
                "data" => {
                    assert_eq!(content, format!("m{seq}"), "{who}: content of {seq}");
                    got.push(seq);
                    next = seq + 1;
                }
                "close" => return got,
                "noop" | "next_seq" => {}
                other => panic!("{who}: unexpected {other} after {got:?}"),
            }
        }
    }
    got
}

fn big_channel_keeps_order(engine: &'static str) {
    const STREAMS: usize = 300;
    const LATE: usize = 40;
    const CHAINS: usize = 40;
    let server = Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--max-subscribers-per-channel")
            .arg("2000")
            .arg("--channel-buffer-size")
            .arg("512")
            .arg("--polling-timeout")
            .arg("2"),
    );
    let mut early = streams(&server, "big", STREAMS);
    wait_subscribers(&server, "big", STREAMS);
    let front = server.front;
    let chains: Vec<_> = (0..CHAINS)
        .map(|i| {
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || poll_chain(front, format!("chain {i}")))
                .expect("spawn")
        })
        .collect();
    let pushes: String = (1..=PUSHES)
        .map(|i| format!("GET /push?cname=big&content=m{i} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect();
    let mut admin = Conn::open(server.admin);
    admin.send(pushes.as_bytes());
    // Subscribers that join while the pushes are being fanned out, from seq 1 (the ring holds
    // every push): each must get every message once, in order, catch-up and live together.
    let mut late: Vec<Conn> = (0..LATE)
        .map(|_| {
            let mut c = Conn::open(front);
            c.get("/stream?cname=big&seq=1");
            c
        })
        .collect();
    for c in &mut late {
        assert_eq!(c.read_head().0, 200, "late subscriber");
    }
    // The close comes while the fan-out is likely still under way: every subscriber gets it
    // after all its messages.
    admin.get("/close?cname=big");
    for _ in 0..PUSHES {
        let r = admin.read_response();
        assert_eq!(r.status, 200, "push: {}", r.text());
    }
    assert_eq!(admin.read_response().status, 200, "close");
    let chains: Vec<Vec<i64>> = chains
        .into_iter()
        .map(|h| h.join().expect("chain"))
        .collect();

    let all: Vec<i64> = (1..=PUSHES).collect();
    for (i, c) in early.iter_mut().enumerate() {
        assert_eq!(
            read_until_close(c, &format!("stream {i}")),
            all,
            "stream {i}"
        );
    }
    for (i, c) in late.iter_mut().enumerate() {
        assert_eq!(read_until_close(c, &format!("late {i}")), all, "late {i}");
    }
    // A chain stops at the close: what it got is the pushes from the first, in order.
    for (i, got) in chains.iter().enumerate() {
        assert_eq!(got[..], all[..got.len()], "[{engine}] chain {i}");
    }
}

/// Pushes `count` messages `<tag><i>` to the big channel, pipelined on one admin connection
/// (written by a thread of its own while this one reads the replies); returns the replies.
fn pipelined_pushes(admin: std::net::SocketAddr, tag: &'static str, count: usize) -> usize {
    let mut reader = Conn::open(admin);
    let mut writer = reader.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let all: String = (0..count)
            .map(|i| format!("GET /push?cname=big&content={tag}{i} HTTP/1.1\r\nHost: t\r\n\r\n"))
            .collect();
        writer.write_all(all.as_bytes()).expect("pushes");
    });
    let mut ok = 0;
    for _ in 0..count {
        let r = reader.read_response();
        assert_eq!(r.text(), "{\"type\":\"ok\"}\n", "{tag} push");
        ok += 1;
    }
    sender.join().expect("sender");
    ok
}

/// Two publishers pipeline pushes to a channel of 300 subscribers as fast as the connections
/// carry them. The lanes stay within the hold's bounds (`worker::hold`), and every subscriber
/// gets every message once, each publisher's in the order it sent them.
fn fast_publishers_wait_for_a_big_fanout(engine: &'static str) {
    const SUBSCRIBERS: usize = 300;
    const EACH: usize = 1000;
    // The home's lane: `LANE_AHEAD` (65,536) deliveries of the channel, its messages × its
    // subscribers, and the one publish that passes it; on two workers the other's lane adds
    // `LANE_BEHIND` (64) items and what the home let through before it looked again. Without
    // the hold the lane reaches well over a thousand.
    let home_bound = 65_536 / SUBSCRIBERS as u64 + 2;
    // And with `limits.fanout_ahead` set lower (3,000 deliveries: 10 messages here).
    let small_bound = 3_000 / SUBSCRIBERS as u64 + 2;
    let runs = [
        (1, "65536", home_bound),
        (2, "65536", 2 * home_bound + 128),
        (1, "3000", small_bound),
    ];
    for (threads, ahead, bound) in runs {
        let server = Server::start(
            Opts::new(engine)
                .threads(threads)
                .arg("--max-subscribers-per-channel")
                .arg("1000")
                .arg("--fanout-ahead")
                .arg(ahead),
        );
        let mut subs = streams(&server, "big", SUBSCRIBERS);
        wait_subscribers(&server, "big", SUBSCRIBERS);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let admin = server.admin;
        let sampler = {
            let done = std::sync::Arc::clone(&done);
            std::thread::spawn(move || {
                let mut most = 0;
                let mut samples = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = get(admin, "/metrics").text();
                    most = most.max(metric_sum(&text, "rcomet_fanout_lane_depth"));
                    samples += 1;
                }
                (most, samples)
            })
        };
        let a = std::thread::spawn(move || pipelined_pushes(admin, "a", EACH));
        let b = std::thread::spawn(move || pipelined_pushes(admin, "b", EACH));
        assert_eq!(a.join().expect("a") + b.join().expect("b"), 2 * EACH);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (most, samples) = sampler.join().expect("sampler");
        assert!(samples > 0, "the lane was sampled");
        assert!(
            most <= bound,
            "[{engine}, {threads} workers, fanout_ahead {ahead}] the fan-out lane held {most} \
             items (bound {bound})"
        );
        assert!(
            server.metric("rcomet_pushes_held_total") > 0,
            "[{engine}, {threads} workers] no publish was held: the test did not outrun the fan-out"
        );
        for (i, c) in subs.iter_mut().enumerate() {
            let mut got = Vec::new();
            while got.len() < 2 * EACH {
                let frame = c.read_chunk().expect("stream ended");
                got.extend(objects(&String::from_utf8_lossy(&frame)));
            }
            let seqs: Vec<i64> = got.iter().map(|(_, seq, _)| *seq).collect();
            let all: Vec<i64> = (1..=(2 * EACH) as i64).collect();
            assert_eq!(
                seqs, all,
                "[{engine}, {threads} workers] subscriber {i}: seqs"
            );
            for tag in ["a", "b"] {
                let mine: Vec<String> = got
                    .iter()
                    .filter(|(_, _, content)| content.starts_with(tag))
                    .map(|(_, _, content)| content.clone())
                    .collect();
                let sent: Vec<String> = (0..EACH).map(|k| format!("{tag}{k}")).collect();
                assert_eq!(
                    mine, sent,
                    "[{engine}, {threads} workers] subscriber {i}: {tag}"
                );
            }
        }
    }
}

/// Half of a big channel's subscribers reset their connections while a fast publisher's pushes
/// are being fanned out to them; the others keep reading. Once the pushes are done and the rest
/// leave too, the server holds no subscriber, no connection but the admin one, nothing in the
/// lane or the backlog, and the descriptors it had before (epoll: one per connection).
fn subscribers_leaving_mid_fanout_leave_nothing_behind(engine: &'static str) {
    const SUBSCRIBERS: usize = 400;
    const PUSHES: usize = 600;
    let server = Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--max-subscribers-per-channel")
            .arg("1000"),
    );
    let fds_before = server.open_fds();
    let mut subs = streams(&server, "big", SUBSCRIBERS);
    wait_subscribers(&server, "big", SUBSCRIBERS);
    let admin = server.admin;
    let publisher = std::thread::spawn(move || pipelined_pushes(admin, "p", PUSHES));
    // Every other subscriber vanishes with a reset as soon as its first frame arrives.
    let mut kept = Vec::new();
    for (i, mut c) in subs.drain(..).enumerate() {
        if i % 2 == 0 {
            kept.push(c);
            continue;
        }
        assert!(c.read_chunk().is_some(), "a first frame");
        let sock = socket2::SockRef::from(&c.stream);
        sock.set_linger(Some(Duration::ZERO)).expect("linger");
        drop(c);
    }
    assert_eq!(publisher.join().expect("publisher"), PUSHES);
    for (i, c) in kept.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < PUSHES {
            let frame = c.read_chunk().expect("stream ended");
            got.extend(objects(&String::from_utf8_lossy(&frame)));
        }
        let seqs: Vec<i64> = got.iter().map(|(_, seq, _)| *seq).collect();
        let all: Vec<i64> = (1..=PUSHES as i64).collect();
        assert_eq!(seqs, all, "[{engine}] kept subscriber {i}");
    }
    drop(kept);
    let settled = || {
        let text = get(server.admin, "/metrics").text();
        let sum = |family| metric_sum(&text, family);
        (
            sum("rcomet_subscribers"),
            sum("rcomet_fanout_backlog"),
            sum("rcomet_fanout_lane_depth"),
            sum("rcomet_connections"),
        )
    };
    assert!(
        eventually(Duration::from_secs(10), || settled() == (0, 0, 0, 1)),
        "[{engine}] (subscribers, backlog, lane, connections) = {:?}, want (0, 0, 0, 1)",
        settled()
    );
    assert!(
        eventually(Duration::from_secs(10), || server.open_fds() <= fds_before),
        "[{engine}] descriptors: {} after, {fds_before} before",
        server.open_fds()
    );
}

/// A big channel gets pushes and its `/close` in one write, so the worker's lane still holds
/// the old messages when a long-poll opens the channel anew (one worker: the lane takes tens of
/// turns). The new subscription must get only the new incarnation's first message, not one of
/// the old ones (the epoch on each delivery tells them apart).
fn a_reopened_channel_gets_nothing_of_the_old_one(engine: &'static str) {
    const SUBSCRIBERS: usize = 1000;
    const PUSHES: usize = 60;
    let server = Server::start(
        Opts::new(engine)
            .threads(1)
            .arg("--max-subscribers-per-channel")
            .arg("2000"),
    );
    let mut subs = streams(&server, "big", SUBSCRIBERS);
    wait_subscribers(&server, "big", SUBSCRIBERS);
    let mut admin = Conn::open(server.admin);
    let mut batch: String = (1..=PUSHES)
        .map(|i| format!("GET /push?cname=big&content=m{i} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect();
    batch.push_str("GET /close?cname=big HTTP/1.1\r\nHost: t\r\n\r\n");
    admin.send(batch.as_bytes());
    for _ in 0..=PUSHES {
        assert_eq!(admin.read_response().status, 200, "push or close");
    }
    // The close is answered: the channel is gone at its home, its old messages may still be
    // on their way to the subscribers. A long-poll opens it again.
    let mut poll = Conn::open(server.front);
    poll.get("/sub?cname=big&seq=1");
    assert_eq!(poll.read_head().0, 200, "the new long-poll");
    wait_subscribers(&server, "big", 1);
    admin.get("/push?cname=big&content=fresh");
    assert_eq!(admin.read_response().status, 200, "the new channel's push");
    let frame = poll.read_chunk().expect("the long-poll's answer");
    let got = objects(&String::from_utf8_lossy(&frame));
    assert_eq!(
        got,
        [("data".to_string(), 1, "fresh".to_string())],
        "[{engine}] the reopened channel's long-poll got {got:?}"
    );
    // And the old subscribers got every old message, then the close.
    let all: Vec<i64> = (1..=PUSHES as i64).collect();
    for (i, c) in subs.iter_mut().enumerate() {
        assert_eq!(
            read_until_close(c, &format!("stream {i}")),
            all,
            "[{engine}] stream {i}"
        );
    }
}

/// `/close` of an idle channel with 600 `/stream` subscribers and 40 long-polls, on two workers:
/// the close goes through the lane a part per turn (`worker::fanout_lane`); every subscriber gets
/// its `close` and the end of its response, nobody is left subscribed, and the name can be
/// subscribed to again at once.
fn closing_a_big_idle_channel_ends_every_subscription(engine: &'static str) {
    const STREAMS: usize = 600;
    const POLLS: usize = 40;
    let server = Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--max-subscribers-per-channel")
            .arg("1000"),
    );
    let mut subs = streams(&server, "big", STREAMS);
    let mut polls: Vec<Conn> = (0..POLLS)
        .map(|_| {
            let mut c = Conn::open(server.front);
            c.get("/sub?cname=big&seq=1");
            assert_eq!(c.read_head().0, 200, "long-poll");
            c
        })
        .collect();
    wait_subscribers(&server, "big", STREAMS + POLLS);
    let r = get(server.admin, "/close?cname=big");
    assert_eq!(r.status, 200, "close: {}", r.text());
    for (i, c) in subs.iter_mut().enumerate() {
        assert_eq!(
            read_until_close(c, &format!("stream {i}")),
            Vec::<i64>::new()
        );
    }
    for (i, c) in polls.iter_mut().enumerate() {
        let frame = c.read_chunk().expect("the long-poll's close");
        let got = objects(&String::from_utf8_lossy(&frame));
        assert!(
            got.iter().any(|(kind, _, _)| kind == "close"),
            "[{engine}] long-poll {i} got {got:?}"
        );
        assert!(c.read_chunk().is_none(), "[{engine}] long-poll {i} ends");
    }
    assert!(
        eventually(Duration::from_secs(10), || server
            .metric("rcomet_subscribers")
            == 0),
        "[{engine}] nobody is left subscribed"
    );
    let mut again = streams(&server, "big", 1);
    admin_push(&server, "big", "after");
    let frame = again[0].read_chunk().expect("the new channel's message");
    let got = objects(&String::from_utf8_lossy(&frame));
    assert_eq!(
        got,
        [("data".to_string(), 1, "after".to_string())],
        "[{engine}]"
    );
}

/// One push on a fresh admin connection.
fn admin_push(server: &Server, cname: &str, content: &str) {
    let r = get(
        server.admin,
        &format!("/push?cname={cname}&content={content}"),
    );
    assert_eq!(r.status, 200, "push: {}", r.text());
}
