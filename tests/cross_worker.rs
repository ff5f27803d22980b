//! Delivery across worker threads (`--threads 2`): subscribers of one channel on both workers, many
//! channels spread over both workers, and chains of long-polls, all under concurrent pushes from
//! several keep-alive admin connections. Every subscriber must see every seq exactly once, in
//! order, with the content that was pushed under it.
//!
//! Depends on tests/support only (the real binary over raw sockets).
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;
use support::*;

/// One parsed message object: (type, seq, content).
type Parsed = (String, i64, String);

/// Parses `{"type":"T","cname":"C","seq":N,"content":"X"}` (contents here never hold `"`).
fn parse_object(obj: &str) -> Parsed {
    let kind = obj
        .strip_prefix("{\"type\":\"")
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("unexpected object {obj:?}"));
    let seq = obj
        .split("\"seq\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unexpected object {obj:?}"));
    let content = obj
        .split("\"content\":\"")
        .nth(1)
        .and_then(|r| r.strip_suffix("\"}"))
        .unwrap_or_else(|| panic!("unexpected object {obj:?}"));
    (kind.to_string(), seq, content.to_string())
}

/// Parses a frame body: one object or an array of objects, followed by `\n`.
fn parse_frame(frame: &[u8]) -> Vec<Parsed> {
    let text = String::from_utf8_lossy(frame);
    let text = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("frame {text:?}"));
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(inner) => inner
            .split("},{")
            .map(|part| {
                let part = if part.starts_with('{') {
                    part.to_string()
                } else {
                    format!("{{{part}")
                };
                let part = if part.ends_with('}') {
                    part
                } else {
                    format!("{part}}}")
                };
                parse_object(&part)
            })
            .collect(),
        None => vec![parse_object(text)],
    }
}

/// (connections, subscribers) of each worker, from /stats.
fn workers(server: &Server) -> Vec<(usize, usize)> {
    let text = get(server.admin, "/stats").text();
    let list = text
        .split("\"workers\": [")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let field = |w: &str, name: &str| -> usize {
        w.split(&format!("\"{name}\": "))
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {w}"))
    };
    list.split('}')
        .filter(|w| w.contains("\"subscribers\""))
        .map(|w| (field(w, "connections"), field(w, "subscribers")))
        .collect()
}

fn subscribers_on_every_worker(server: &Server) -> bool {
    let w = workers(server);
    assert_eq!(w.len(), 2, "{w:?}");
    w.iter().all(|&(_, subs)| subs > 0)
}

/// Opens `/stream?cname=...` and checks the head and the first next_seq.
fn open_stream(front: SocketAddr, cname: &str) -> Conn {
    let mut c = Conn::open(front);
    c.get(&format!("/stream?cname={cname}"));
    assert_eq!(c.read_head().0, 200);
    let first = parse_frame(&c.read_chunk().expect("next_seq frame"));
    assert_eq!(first, vec![("next_seq".to_string(), 1, String::new())]);
    c
}

/// Reads stream frames until data seq `last`; returns the (seq, content) of every data frame and
/// the still-open connection.
fn read_stream(mut c: Conn, last: i64) -> (Vec<(i64, String)>, Conn) {
    let mut got = Vec::new();
    let mut seen = 0;
    while seen < last {
        let frame = c.read_chunk().expect("stream ended early");
        for (kind, seq, content) in parse_frame(&frame) {
            assert_eq!(kind, "data", "unexpected frame after {seen}");
            seen = seq;
            got.push((seq, content));
        }
    }
    (got, c)
}

/// Pushes `items` (channel, content) in order on one keep-alive admin connection.
fn pusher(admin: SocketAddr, items: Vec<(String, String)>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut a = Conn::open(admin);
        for (cname, content) in items {
            a.get(&format!("/push?cname={cname}&content={content}"));
            let r = a.read_response();
            assert_eq!(r.text(), "{\"type\":\"ok\"}\n", "push {cname} {content}");
        }
    })
}

/// Pushes `total` messages to `cname` from `pushers` keep-alive connections at once (contents
/// `p<pusher>-<k>`); returns every content sent, for `check_sequence`.
fn push_in_parallel(admin: SocketAddr, cname: &str, pushers: usize, total: usize) -> Vec<String> {
    let mut expected = Vec::new();
    let handles: Vec<_> = (0..pushers)
        .map(|t| {
            let items: Vec<(String, String)> = (0..total / pushers)
                .map(|k| (cname.to_string(), format!("p{t}-{k}")))
                .collect();
            expected.extend(items.iter().map(|(_, c)| c.clone()));
            pusher(admin, items)
        })
        .collect();
    for h in handles {
        h.join().expect("pusher");
    }
    expected
}

fn spawn_small<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn")
}

/// Checks seqs 1..=n in order, contents as pushed, each pusher's order kept.
fn check_sequence(got: &[(i64, String)], expected: &[String], who: &str) {
    let seqs: Vec<i64> = got.iter().map(|(s, _)| *s).collect();
    let want: Vec<i64> = (1..=expected.len() as i64).collect();
    assert_eq!(seqs, want, "{who}: seqs not exactly 1..={}", expected.len());
    let mut contents: Vec<&str> = got.iter().map(|(_, c)| c.as_str()).collect();
    // Each pusher's messages arrive in the order it sent them (`p<t>-<k>`).
    let mut last_k: HashMap<&str, usize> = HashMap::new();
    for c in &contents {
        let (p, k) = c.split_once('-').unwrap_or_else(|| panic!("content {c}"));
        let k: usize = k.parse().unwrap_or_else(|_| panic!("content {c}"));
        if let Some(prev) = last_k.insert(p, k) {
            assert!(k > prev, "{who}: {p} sent {prev} before {k}");
        }
    }
    contents.sort_unstable();
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(contents, want, "{who}: contents differ");
}

engine_tests!(one_channel_fans_out_to_both_workers);
fn one_channel_fans_out_to_both_workers(engine: &'static str) {
    const TOTAL: usize = 3000;
    const PUSHERS: usize = 4;
    let server = Server::start(Opts::new(engine).threads(2));
    let mut subs = Vec::new();
    while subs.len() < 8 || !subscribers_on_every_worker(&server) {
        assert!(subs.len() < 200, "subscribers never reached both workers");
        subs.push(open_stream(server.front, "one"));
    }
    let readers: Vec<_> = subs
        .into_iter()
        .map(|c| spawn_small(move || read_stream(c, TOTAL as i64)))
        .collect();
    let expected = push_in_parallel(server.admin, "one", PUSHERS, TOTAL);
    let mut first: Option<Vec<(i64, String)>> = None;
    let mut open = Vec::new();
    for (i, r) in readers.into_iter().enumerate() {
        let (got, conn) = r.join().expect("reader");
        check_sequence(&got, &expected, &format!("subscriber {i}"));
        // Everyone saw the same content under the same seq.
        match &first {
            None => first = Some(got),
            Some(f) => assert!(f == &got, "subscriber {i} differs from subscriber 0"),
        }
        open.push(conn);
    }
    // /close reaches the subscribers on both workers and ends every response.
    let r = get(server.admin, "/close?cname=one");
    assert_eq!(r.text(), format!("ok {}\n", TOTAL + 1));
    for mut c in open {
        let frame = c.read_chunk().expect("close frame");
        assert_eq!(
            parse_frame(&frame),
            vec![("close".to_string(), TOTAL as i64 + 1, String::new())]
        );
        assert!(c.read_chunk().is_none());
    }
    assert!(eventually(Duration::from_secs(10), || workers(&server)
        .iter()
        .all(|&(_, subs)| subs == 0)));
}

engine_tests!(limits_hold_across_workers);
fn limits_hold_across_workers(engine: &'static str) {
    let server = Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--max-subscribers-per-channel")
            .arg("100")
            .arg("--max-channels")
            .arg("40"),
    );
    // Subscribers of one channel arrive on both workers (its first ones move to its home, the
    // rest of a channel this big stay where they were accepted); the cap counts them all.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..150 {
        let mut c = Conn::open(server.front);
        c.get("/stream?cname=capped");
        let (status, head) = c.read_head();
        assert_eq!(status, 200);
        let frame = parse_frame(&c.read_chunk().expect("first frame"));
        if head.contains("Connection: keep-alive") {
            assert_eq!(frame[0].0, "next_seq");
            accepted.push(c);
        } else {
            assert_eq!(
                frame,
                vec![("429".to_string(), 0, "Too many subscribers".to_string())]
            );
            assert!(c.read_chunk().is_none());
            refused += 1;
        }
    }
    assert_eq!((accepted.len(), refused), (100, 50));
    // Refused subscriptions were never counted, so the workers' counts add up to the accepted.
    assert!(
        eventually(Duration::from_secs(10), || workers(&server)
            .iter()
            .map(|&(_, subs)| subs)
            .sum::<usize>()
            == 100),
        "{:?}",
        workers(&server)
    );
    assert!(
        subscribers_on_every_worker(&server),
        "{:?}",
        workers(&server)
    );
    // Three leave; exactly three places open up.
    accepted.truncate(97);
    assert!(eventually(Duration::from_secs(10), || get(
        server.admin,
        "/info?cname=capped"
    )
    .text()
        == "{\"cname\": \"capped\", \"subscribers\": 97}\n"));
    let mut again = 0;
    for _ in 0..6 {
        let mut c = Conn::open(server.front);
        c.get("/stream?cname=capped");
        let (_, head) = c.read_head();
        if head.contains("Connection: keep-alive") {
            again += 1;
            accepted.push(c);
        }
    }
    assert_eq!(again, 3);

    // Channels live on both workers; the cap counts them all, from several connections.
    let signers: Vec<_> = (0..4)
        .map(|t| {
            let admin = server.admin;
            std::thread::spawn(move || {
                let mut a = Conn::open(admin);
                (0..20)
                    .filter(|k| {
                        a.get(&format!("/sign?cname=s{t}-{k}"));
                        let r = a.read_response();
                        assert!(r.status == 200 || r.status == 429, "{}", r.status);
                        r.status == 200
                    })
                    .count()
            })
        })
        .collect();
    let created: usize = signers.into_iter().map(|h| h.join().expect("signer")).sum();
    // "capped" is one of the 40.
    assert_eq!(created, 39);
    let info = get(server.admin, "/info").text();
    assert!(info.contains("\"channels\": 40,"), "{info}");
}

engine_tests!(many_channels_spread_over_workers);
fn many_channels_spread_over_workers(engine: &'static str) {
    const CHANNELS: usize = 200;
    const TOTAL: usize = 3000;
    const PUSHERS: usize = 4;
    let server = Server::start(Opts::new(engine).threads(2));
    let subs: Vec<Conn> = (0..CHANNELS)
        .map(|i| open_stream(server.front, &format!("ch{i}")))
        .collect();
    assert!(
        subscribers_on_every_worker(&server),
        "{:?}",
        workers(&server)
    );
    // The plan: TOTAL pushes to pseudo-random channels, dealt round-robin to the pushers.
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut plan: Vec<Vec<(String, String)>> = vec![Vec::new(); PUSHERS];
    let mut per_channel: Vec<Vec<String>> = vec![Vec::new(); CHANNELS];
    for n in 0..TOTAL {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let ch = (rng % CHANNELS as u64) as usize;
        let t = n % PUSHERS;
        let content = format!("p{t}-{n}");
        per_channel[ch].push(content.clone());
        plan[t].push((format!("ch{ch}"), content));
    }
    let readers: Vec<_> = subs
        .into_iter()
        .zip(per_channel.iter())
        .map(|(c, want)| {
            let last = want.len() as i64;
            spawn_small(move || read_stream(c, last))
        })
        .collect();
    let pushers: Vec<_> = plan
        .into_iter()
        .map(|items| pusher(server.admin, items))
        .collect();
    for p in pushers {
        p.join().expect("pusher");
    }
    let mut open = Vec::new();
    for (i, r) in readers.into_iter().enumerate() {
        let (got, conn) = r.join().expect("reader");
        check_sequence(&got, &per_channel[i], &format!("ch{i}"));
        open.push(conn);
    }
    let info = get(server.admin, "/info").text();
    assert_eq!(
        info,
        format!(
            "{{\"version\": \"0.2.5\", \"channels\": {CHANNELS}, \"subscribers\": {CHANNELS}}}\n"
        )
    );
}

engine_tests!(long_poll_chains_never_miss_or_repeat);
fn long_poll_chains_never_miss_or_repeat(engine: &'static str) {
    const TOTAL: usize = 1000;
    const PUSHERS: usize = 2;
    // A ring larger than the run, so a poller that falls behind is replayed, never skipped.
    let server = Server::start(
        Opts::new(engine)
            .threads(2)
            .arg("--channel-buffer-size")
            .arg("2048"),
    );
    let mut pollers = Vec::new();
    while pollers.len() < 6 || !subscribers_on_every_worker(&server) {
        assert!(pollers.len() < 200, "pollers never reached both workers");
        let mut c = Conn::open(server.front);
        c.get("/sub?cname=lp&seq=1");
        assert_eq!(c.read_head().0, 200);
        pollers.push(c);
    }
    let readers: Vec<_> = pollers
        .into_iter()
        .map(|mut c| {
            spawn_small(move || {
                let mut got = Vec::new();
                let mut next = 1i64;
                let mut polls = 0;
                loop {
                    let frame = c.read_chunk().expect("long-poll frame");
                    assert!(
                        c.read_chunk().is_none(),
                        "long-poll did not end after one frame"
                    );
                    polls += 1;
                    for (kind, seq, content) in parse_frame(&frame) {
                        assert_eq!(kind, "data", "poll {polls} asked seq {next}");
                        assert_eq!(seq, next, "poll {polls}: missed or repeated");
                        got.push((seq, content));
                        next += 1;
                    }
                    if next > TOTAL as i64 {
                        return (got, polls);
                    }
                    c.get(&format!("/sub?cname=lp&seq={next}"));
                    let (status, _) = c.read_head();
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    let expected = push_in_parallel(server.admin, "lp", PUSHERS, TOTAL);
    for (i, r) in readers.into_iter().enumerate() {
        let (got, polls) = r.join().expect("poller");
        check_sequence(&got, &expected, &format!("poller {i}"));
        assert!(polls >= 2, "poller {i} got everything in {polls} polls");
    }
    assert!(eventually(Duration::from_secs(10), || get(
        server.admin,
        "/info?cname=lp"
    )
    .text()
        == "{\"cname\": \"lp\", \"subscribers\": 0}\n"));
}

engine_tests!(a_publisher_ahead_of_the_home_waits_for_it_and_loses_nothing);
/// Pushes answered on the publisher's worker run ahead of their channel's home by at most
/// `limits.publish_ahead` bytes; past it, a push's reply waits for the home
/// (`rcomet_push_waits_total`). With a window of 0 every push to a channel homed on the other
/// worker waits; with a small one pushes switch between the two ways as the home keeps up or
/// not. Either way every reply comes back in request order and every subscriber gets every
/// message once, in order. The channel names are homed on both workers (the home hash is
/// fixed), so whichever worker takes the admin connection, pushes go to a home elsewhere.
fn a_publisher_ahead_of_the_home_waits_for_it_and_loses_nothing(engine: &'static str) {
    const CHANNELS: usize = 8;
    const PUSHES: usize = 400;
    for window in ["0", "4096"] {
        let server = Server::start(
            Opts::new(engine)
                .threads(2)
                .arg("--publish-ahead")
                .arg(window),
        );
        let subs: Vec<Conn> = (0..CHANNELS)
            .map(|i| open_stream(server.front, &format!("w{i}")))
            .collect();
        let body = "x".repeat(2000);
        let mut pipeline = Vec::new();
        for k in 0..PUSHES {
            let cname = format!("w{}", k % CHANNELS);
            pipeline.extend_from_slice(
                format!("GET /push?cname={cname}&content={k}-{body} HTTP/1.1\r\nHost: t\r\n\r\n")
                    .as_bytes(),
            );
        }
        let mut admin = Conn::open(server.admin);
        admin.send(&pipeline);
        for k in 0..PUSHES {
            let r = admin.read_response();
            assert_eq!(r.text(), "{\"type\":\"ok\"}\n", "window {window}: push {k}");
        }
        for (i, c) in subs.into_iter().enumerate() {
            let (got, _open) = read_stream(c, (PUSHES / CHANNELS) as i64);
            let want: Vec<(i64, String)> = (0..PUSHES)
                .filter(|k| k % CHANNELS == i)
                .enumerate()
                .map(|(n, k)| (n as i64 + 1, format!("{k}-{body}")))
                .collect();
            assert!(
                got == want,
                "window {window}, channel w{i}: not every push once and in order"
            );
        }
        let waited = server.metric("rcomet_push_waits_total");
        assert!(waited < PUSHES as u64, "window {window}: every push waited");
        if window == "0" {
            assert!(waited > 0, "window 0: no push waited for its home");
        }
    }
}

engine_tests!(presence_and_tokens_cover_channels_on_both_workers);
fn presence_and_tokens_cover_channels_on_both_workers(engine: &'static str) {
    const CHANNELS: usize = 20;
    let server = Server::start(Opts::new(engine).threads(2));
    let mut p = Conn::open(server.admin);
    p.get("/psub");
    assert_eq!(p.read_head().0, 200);
    assert!(eventually(Duration::from_secs(10), || get(
        server.admin,
        "/stats"
    )
    .text()
    .contains("\"presence_clients\": 1,")));
    // Channels whose homes are on both workers, signed from two connections each: one token.
    let mut a = Conn::open(server.admin);
    let mut b = Conn::open(server.admin);
    for i in 0..CHANNELS {
        let mut tokens = Vec::new();
        for c in [&mut a, &mut b] {
            c.get(&format!("/sign?cname=pr{i}&expires=1"));
            let text = c.read_response().text();
            tokens.push(
                text.split("\"token\":\"")
                    .nth(1)
                    .map(|t| t[..32].to_string()),
            );
        }
        assert!(
            tokens[0].is_some() && tokens[0] == tokens[1],
            "pr{i}: {tokens:?}"
        );
    }
    // Every creation and every expiry is announced exactly once (re-announcements aside).
    let mut born = std::collections::HashSet::new();
    let mut died = std::collections::HashSet::new();
    while died.len() < CHANNELS {
        let line = p.read_chunk().expect("presence stream ended");
        let line = String::from_utf8_lossy(&line).into_owned();
        let (what, name) = line
            .strip_suffix('\n')
            .and_then(|l| l.split_once(' '))
            .unwrap_or_else(|| panic!("event {line:?}"));
        match what {
            "1" if !died.contains(name) => {
                born.insert(name.to_string());
            }
            "0" => assert!(
                born.contains(name) && died.insert(name.to_string()),
                "unexpected {line:?}"
            ),
            _ => panic!("unexpected {line:?}"),
        }
    }
    assert_eq!(born.len(), CHANNELS);
    let info = get(server.admin, "/info").text();
    assert_eq!(
        info,
        "{\"version\": \"0.2.5\", \"channels\": 0, \"subscribers\": 0}\n"
    );
}
