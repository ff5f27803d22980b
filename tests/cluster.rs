//! Cluster mode end to end: a real redis-server on a free loopback port and three rcomet nodes
//! (two workers each) started against it, driven over real sockets. Each test runs on both
//! engines with its own Redis.

mod support;

use std::time::{Duration, Instant};
use support::cluster::*;
use support::engine_tests;
use support::{eventually, get, ws, Conn};

engine_tests!(
    a_push_on_one_node_reaches_every_node_on_every_transport,
    a_subscriber_moving_between_nodes_gets_what_it_missed,
    a_token_signed_on_one_node_opens_the_channel_on_another,
    close_and_broadcast_reach_every_node,
    a_node_killed_and_restarted_loses_nothing,
    redis_paused_under_pushes_then_back,
    redis_restarted_empty_tells_the_clients,
    a_gap_on_a_big_channel_reaches_every_subscriber_in_order,
    counts_redis_lost_are_reported_again,
    a_subscription_while_redis_is_down_is_a_prompt_503,
    a_subscription_waiting_when_redis_goes_away_is_refused,
    a_node_whose_redis_is_not_running_refuses_subscriptions,
    a_seq_jump_is_filled_from_redis_and_a_duplicate_is_skipped,
    a_mirrored_channel_lives_on_in_redis_while_it_has_subscribers,
);

fn a_push_on_one_node_reaches_every_node_on_every_transport(engine: &'static str) {
    let redis = Redis::start();
    // Long-polls read after every push: the buffer holds them all.
    let nodes = three_nodes(engine, &redis, &["--channel-buffer-size", "100"]);
    let mut subs = Vec::new();
    for n in &nodes {
        for kind in ALL_KINDS {
            subs.push(Sub::open(n.front, kind, "fan", 1, ""));
        }
    }
    // /info on any node counts the subscribers of all three.
    wait_info(&nodes[0], "fan", 12);
    wait_info(&nodes[2], "fan", 12);
    let total = 25;
    for i in 1..=total {
        push_ok(&nodes[0], "fan", &format!("m{i}"));
    }
    for (k, sub) in subs.iter_mut().enumerate() {
        let got = sub.take(total);
        for (i, (kind, seq, content)) in got.into_iter().enumerate() {
            let i = i as i64 + 1;
            assert_eq!(
                (kind.as_str(), seq, content),
                ("data", i, format!("m{i}")),
                "subscriber {k} ({:?} on node {})",
                sub.kind,
                k / 4 + 1
            );
        }
    }
}

fn a_subscriber_moving_between_nodes_gets_what_it_missed(engine: &'static str) {
    let redis = Redis::start();
    let nodes = three_nodes(engine, &redis, &[]);
    for kind in ALL_KINDS {
        let cname = format!("move{kind:?}");
        let mut on2 = Sub::open(nodes[1].front, kind, &cname, 1, "");
        wait_info(&nodes[0], &cname, 1);
        for i in 1..=4 {
            push_ok(&nodes[0], &cname, &format!("a{i}"));
        }
        let got = on2.take(4);
        assert_eq!(got.last().map(|t| t.1), Some(4), "{kind:?}: {got:?}");
        drop(on2);
        // Pushed while the subscriber is away (on any node).
        for i in 5..=7 {
            push_ok(&nodes[i % 3], &cname, &format!("a{i}"));
        }
        let mut on3 = Sub::open(nodes[2].front, kind, &cname, 5, "");
        let missed = on3.take(3);
        let want: Vec<_> = (5..=7)
            .map(|i| ("data".to_string(), i, format!("a{i}")))
            .collect();
        assert_eq!(missed, want, "{kind:?} on node 3 from seq 5");
        push_ok(&nodes[1], &cname, "a8");
        assert_eq!(
            on3.take(1),
            vec![("data".into(), 8, "a8".into())],
            "{kind:?}"
        );
    }
}

fn a_token_signed_on_one_node_opens_the_channel_on_another(engine: &'static str) {
    let redis = Redis::start();
    let nodes = three_nodes(engine, &redis, &["--auth", "token"]);
    let (status, body) = admin(&nodes[0], "/sign?cname=secret&expires=60");
    assert_eq!(status, 200, "{body}");
    let sign: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let token = sign["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 32);
    // The same token on every node.
    let (_, again) = admin(&nodes[1], "/sign?cname=secret");
    assert!(again.contains(&token), "{again}");
    let mut sub = Sub::open(
        nodes[2].front,
        Kind::Stream,
        "secret",
        1,
        &format!("&token={token}"),
    );
    wait_info(&nodes[1], "secret", 1);
    push_ok(&nodes[1], "secret", "hi");
    assert_eq!(sub.take(1), vec![("data".into(), 1, "hi".into())]);
    let mut wrong = Sub::open(nodes[1].front, Kind::Stream, "secret", 1, "&token=00");
    assert_eq!(wrong.next()["type"], "401");
    let mut unsigned = Sub::open(nodes[2].front, Kind::Stream, "nosign", 1, "&token=00");
    assert_eq!(unsigned.next()["type"], "401");
}

fn close_and_broadcast_reach_every_node(engine: &'static str) {
    let redis = Redis::start();
    let nodes = three_nodes(engine, &redis, &[]);
    let mut subs: Vec<Sub> = nodes[1..]
        .iter()
        .flat_map(|n| {
            [
                Sub::open(n.front, Kind::Stream, "a", 1, ""),
                Sub::open(n.front, Kind::Ws, "b", 1, ""),
            ]
        })
        .collect();
    wait_info(&nodes[0], "a", 2);
    wait_info(&nodes[0], "b", 2);
    let (status, _) = admin(&nodes[0], "/broadcast?content=all");
    assert_eq!(status, 200);
    for sub in &mut subs {
        assert_eq!(sub.next()["type"], "broadcast", "{:?}", sub.kind);
    }
    assert_eq!(
        admin(&nodes[0], "/check?cname=a"),
        (200, "{\"a\": 1}\n".to_string())
    );
    let (status, body) = admin(&nodes[0], "/close?cname=a");
    assert_eq!((status, body.as_str()), (200, "ok 2\n"));
    for sub in subs.iter_mut().filter(|s| s.kind == Kind::Stream) {
        let mut v = sub.next();
        while v["type"] == "next_seq" {
            v = sub.next();
        }
        assert_eq!(v["type"], "close");
        assert!(
            sub.conn.read_chunk().is_none(),
            "the stream ends after close"
        );
    }
    assert_eq!(
        admin(&nodes[2], "/check?cname=a"),
        (200, "{}\n".to_string())
    );
    assert_eq!(admin(&nodes[1], "/close?cname=a").0, 404);
}

fn a_node_killed_and_restarted_loses_nothing(engine: &'static str) {
    let redis = Redis::start();
    let mut nodes = three_nodes(engine, &redis, &[]);
    let mut on2 = Sub::open(nodes[1].front, Kind::Stream, "k", 1, "");
    wait_info(&nodes[0], "k", 1);
    for i in 1..=3 {
        push_ok(&nodes[0], "k", &format!("k{i}"));
    }
    assert_eq!(on2.take(3).last().map(|t| t.1), Some(3));
    // SIGKILL: no goodbye, no snapshot.
    drop(on2);
    let dead = nodes.remove(1);
    drop(dead);
    for i in 4..=6 {
        push_ok(&nodes[i % 2], "k", &format!("k{i}"));
    }
    let back = node(engine, &redis, "n2", &[]);
    let mut again = Sub::open(back.front, Kind::Stream, "k", 4, "");
    let got = again.take(3);
    let want: Vec<_> = (4..=6)
        .map(|i| ("data".to_string(), i, format!("k{i}")))
        .collect();
    assert_eq!(got, want);
    push_ok(&back, "k", "k7");
    assert_eq!(
        again.take(1),
        vec![("data".into(), 7, "k7".into())],
        "seq continues"
    );
}

/// Reads data messages until one with content `last`, or a gap marker; returns the contents
/// read and whether a gap was told. Asserts seq order.
fn read_until(sub: &mut Sub, last: &str) -> (Vec<String>, bool) {
    let mut got = Vec::new();
    let mut gap = false;
    let mut prev = 0;
    loop {
        let (kind, seq, content) = triple(&sub.next());
        match kind.as_str() {
            "data" => {
                assert!(seq > prev || gap, "{:?}: seq {seq} after {prev}", sub.kind);
                prev = seq;
                let done = content == last;
                got.push(content);
                if done {
                    return (got, gap);
                }
            }
            "reset" | "next_seq" => gap = true,
            other => panic!("unexpected {other}"),
        }
    }
}

fn redis_paused_under_pushes_then_back(engine: &'static str) {
    let redis = Redis::start();
    let nodes = three_nodes(engine, &redis, &["--channel-buffer-size", "1000"]);
    let mut subs = vec![
        Sub::open(nodes[1].front, Kind::Stream, "p", 1, ""),
        Sub::open(nodes[2].front, Kind::Ws, "p", 1, ""),
        Sub::open(nodes[2].front, Kind::Sse, "p", 1, ""),
    ];
    wait_info(&nodes[0], "p", 3);
    let admin_addr = nodes[0].admin;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let pusher = std::thread::spawn(move || {
        let (mut ok, mut refused) = (Vec::new(), 0);
        let mut i = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            i += 1;
            let r = get(admin_addr, &format!("/push?cname=p&content=p{i}"));
            match r.status {
                200 => ok.push(format!("p{i}")),
                503 => refused += 1,
                s => panic!("push {i}: {s}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (ok, refused)
    });
    std::thread::sleep(Duration::from_millis(500));
    redis.pause();
    std::thread::sleep(Duration::from_secs(5));
    redis.resume();
    // Steady pushes go on until they are accepted again for a while.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, refused) = pusher.join().unwrap();
    assert!(refused > 0, "pushes were refused while Redis was stopped");
    // /stats shows the link: up again, one reconnect at least, a measured latency.
    let (status, stats) = admin(&nodes[0], "/stats");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    let link = &stats["cluster"];
    assert_eq!(link["connected"], true, "{link}");
    assert_eq!(link["node"], "n1", "{link}");
    assert!(link["reconnects"].as_u64() >= Some(1), "{link}");
    assert!(link["latency_us"].as_u64().is_some(), "{link}");
    let last = ok.last().unwrap().clone();
    for sub in &mut subs {
        // The buffer holds every message of the test: nothing may be lost, and no gap told.
        let (got, gap) = read_until(sub, &last);
        assert!(!gap, "{:?} was told of a gap", sub.kind);
        let missing: Vec<_> = ok.iter().filter(|c| !got.contains(c)).collect();
        assert!(missing.is_empty(), "{:?} lost {missing:?}", sub.kind);
    }
}

fn redis_restarted_empty_tells_the_clients(engine: &'static str) {
    let mut redis = Redis::start();
    let nodes = three_nodes(engine, &redis, &[]);
    let mut ws = Sub::open(nodes[1].front, Kind::Ws, "r", 1, "");
    let mut stream = Sub::open(nodes[2].front, Kind::Stream, "r", 1, "");
    wait_info(&nodes[0], "r", 2);
    for i in 1..=3 {
        push_ok(&nodes[0], "r", &format!("r{i}"));
    }
    assert_eq!(ws.take(3).len(), 3);
    assert_eq!(stream.take(3).len(), 3);
    redis.restart_empty();
    let reset = ws.next();
    assert_eq!(
        (reset["type"].as_str(), reset["seq"].as_i64()),
        (Some("reset"), Some(1)),
        "{reset}"
    );
    let next = stream.next();
    assert_eq!(
        (next["type"].as_str(), next["seq"].as_i64()),
        (Some("next_seq"), Some(1)),
        "{next}"
    );
    assert!(eventually(Duration::from_secs(10), || push(
        &nodes[0], "r", "after"
    ) == 200));
    assert_eq!(ws.take(1), vec![("data".into(), 1, "after".into())]);
    assert_eq!(stream.take(1), vec![("data".into(), 1, "after".into())]);
    // The nodes report their subscriber counts again to the empty Redis, and changes after that.
    wait_info(&nodes[0], "r", 2);
    drop(ws);
    wait_info(&nodes[0], "r", 1);
}

/// The same gap on a channel with more than `BIG_FANOUT` (64) subscribers on each worker of the
/// node: it is carried out a part per turn by the fan-out lane, and still every subscriber is told
/// once, after the messages before it and before the message after it.
fn a_gap_on_a_big_channel_reaches_every_subscriber_in_order(engine: &'static str) {
    let mut redis = Redis::start();
    let publisher = node(engine, &redis, "n1", &[]);
    let far = node(engine, &redis, "n2", &[]);
    let n = 200;
    let mut subs: Vec<Sub> = (0..n)
        .map(|_| Sub::open(far.front, Kind::Stream, "g", 1, ""))
        .collect();
    wait_info(&publisher, "g", n);
    for i in 1..=3 {
        push_ok(&publisher, "g", &format!("g{i}"));
    }
    for sub in &mut subs {
        let got: Vec<i64> = sub.take(3).into_iter().map(|(_, seq, _)| seq).collect();
        assert_eq!(got, [1, 2, 3]);
    }
    redis.restart_empty();
    for (i, sub) in subs.iter_mut().enumerate() {
        let next = sub.next();
        assert_eq!(
            (next["type"].as_str(), next["seq"].as_i64()),
            (Some("next_seq"), Some(1)),
            "subscriber {i}: {next}"
        );
    }
    assert!(eventually(Duration::from_secs(10), || push(
        &publisher, "g", "after"
    ) == 200));
    for (i, sub) in subs.iter_mut().enumerate() {
        let next = sub.next();
        assert_eq!(
            (
                next["type"].as_str(),
                next["seq"].as_i64(),
                next["content"].as_str()
            ),
            (Some("data"), Some(1), Some("after")),
            "subscriber {i}: {next}"
        );
    }
}

/// A node's subscriber counts that Redis no longer holds (as when a node stalls past their TTL)
/// are sent again whole: the node learns it from the counts script and `/info` recovers, without
/// any count changing. Later changes still add up.
fn counts_redis_lost_are_reported_again(engine: &'static str) {
    let redis = Redis::start();
    let n = node(engine, &redis, "f1", &[]);
    let _a = Sub::open(n.front, Kind::Stream, "f", 1, "");
    let _b = Sub::open(n.front, Kind::Stream, "g", 1, "");
    wait_info(&n, "f", 1);
    wait_info(&n, "g", 1);
    let forget = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end \
                  return #redis.call('KEYS', ARGV[1])";
    let left = redis.command(&["EVAL", forget, "0", "rcomet:[nt]:f1:*"]);
    assert_eq!(left.trim(), ":0", "the node's count keys are gone");
    wait_info(&n, "f", 1);
    wait_info(&n, "g", 1);
    let _c = Sub::open(n.front, Kind::Stream, "f", 1, "");
    wait_info(&n, "f", 2);
    // Only the per-channel counts gone (their sum kept, as an eviction of one key would leave it).
    let left = redis.command(&["EVAL", forget, "0", "rcomet:n:f1:*"]);
    assert_eq!(left.trim(), ":0", "the node's count hash is gone");
    wait_info(&n, "f", 2);
    wait_info(&n, "g", 1);
}

/// The object a subscription refused for an unreachable Redis carries.
const UNAVAILABLE: &str = "Cluster store unavailable, try again";

/// How long a refusal may take: the link is seen down within about 1.5 s of Redis stopping
/// (a PING every 500 ms, each answered within 1 s) and parked subscriptions are looked at once
/// a second; an unbounded wait is what is being ruled out.
const REFUSED_WITHIN: Duration = Duration::from_secs(6);

/// The refusals counted from `started` all came within [`REFUSED_WITHIN`].
fn refused_in_time(started: Instant) {
    let took = started.elapsed();
    assert!(took < REFUSED_WITHIN, "refusals took {took:?}");
}

/// Sends `path` on a new connection to `front` whose reads wait at most `REFUSED_WITHIN`.
fn ask(front: std::net::SocketAddr, path: &str) -> Conn {
    let mut c = Conn::open(front);
    c.stream.set_read_timeout(Some(REFUSED_WITHIN)).unwrap();
    c.get(path);
    c
}

/// Sends a WebSocket upgrade for `path`, reads bounded by `REFUSED_WITHIN`.
fn ask_ws(front: std::net::SocketAddr, path: &str) -> Conn {
    let mut c = Conn::open(front);
    c.stream.set_read_timeout(Some(REFUSED_WITHIN)).unwrap();
    c.send(ws::upgrade_request(path, "").as_bytes());
    c
}

/// Reads a refused HTTP subscription: status 503, the error object in the transport's framing
/// (`frame` with `OBJ` standing for the object), the response complete.
fn expect_503(c: &mut Conn, what: &str, frame: &str) {
    let r = c.read_response();
    assert_eq!(r.status, 503, "{what}: {}{}", r.head, r.text());
    let json = format!(r#"{{"type":"503","cname":"{what}","seq":0,"content":"{UNAVAILABLE}"}}"#);
    let want = frame.replace("OBJ", &json);
    assert!(
        r.text().contains(&want),
        "{what}: {:?} lacks {want:?}",
        r.text()
    );
}

/// Reads a refused WebSocket subscription: the 101, the error object, close 1013.
fn expect_ws_refused(c: &mut Conn, cname: &str) {
    let (status, head) = c.read_head();
    assert_eq!(status, 101, "{head}");
    let v: serde_json::Value = serde_json::from_str(&c.read_text()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["cname"].as_str()),
        (Some("503"), Some(cname)),
        "{v}"
    );
    assert_eq!(v["content"], UNAVAILABLE, "{v}");
    assert_eq!(c.read_frame().close_code(), Some(1013), "try again later");
}

/// The paths of one new subscription per transport on `prefix`-named channels, with the frame
/// each transport wraps its objects in.
fn every_transport(prefix: &str) -> Vec<(String, String, &'static str)> {
    let frames = [
        ("sub", "", "OBJ\n"),
        ("sub", "&cb=f", "f(OBJ);\n"),
        ("iframe", "", "<script>parent.icomet_cb(OBJ);</script>"),
        ("stream", "", "OBJ\n"),
        ("sse", "", "data: OBJ\n\n"),
    ];
    frames
        .iter()
        .enumerate()
        .map(|(i, (path, extra, frame))| {
            let cname = format!("{prefix}{i}");
            (
                cname.clone(),
                format!("/{path}?cname={cname}&seq=1{extra}"),
                *frame,
            )
        })
        .collect()
}

fn a_subscription_while_redis_is_down_is_a_prompt_503(engine: &'static str) {
    let redis = Redis::start();
    let n = node(engine, &redis, "n1", &[]);
    wait_connected(&n);
    // A WebSocket on a live channel, to ask for more channels with `sub` while Redis is down.
    let mut socket = ws::open(n.front, "/ws?cname=live&seq=1");
    wait_info(&n, "live", 1);
    redis.pause();
    let seen = eventually(Duration::from_secs(10), || {
        admin(&n, "/stats").1.contains("\"connected\": false")
    });
    assert!(seen, "the node did not notice Redis stopped");
    let started = Instant::now();
    for (cname, path, frame) in every_transport("down") {
        let mut c = ask(n.front, &path);
        expect_503(&mut c, &cname, frame);
    }
    let mut c = ask_ws(n.front, "/ws?cname=downws&seq=1");
    expect_ws_refused(&mut c, "downws");
    // One more channel on an open WebSocket: its error object, and the socket stays.
    socket.send_text(r#"{"cmd":"sub","cname":"downmore"}"#);
    let v: serde_json::Value = serde_json::from_str(&socket.read_text()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["cname"].as_str()),
        (Some("503"), Some("downmore")),
        "{v}"
    );
    refused_in_time(started);
    // Redis back: the same subscriptions open and get what is pushed.
    redis.resume();
    wait_connected(&n);
    let mut sub = Sub::open(n.front, Kind::Stream, "down3", 1, "");
    socket.send_text(r#"{"cmd":"sub","cname":"downmore"}"#);
    wait_info(&n, "down3", 1);
    wait_info(&n, "downmore", 1);
    push_ok(&n, "down3", "back");
    push_ok(&n, "downmore", "more");
    assert_eq!(sub.take(1), vec![("data".into(), 1, "back".into())]);
    // The `sub` is answered with where the channel starts (`next_seq`), then the push.
    let data = loop {
        let v: serde_json::Value = serde_json::from_str(&socket.read_text()).unwrap();
        if v["type"] == "data" {
            break v;
        }
        assert!(
            matches!(v["type"].as_str(), Some("next_seq" | "noop")),
            "{v}"
        );
    };
    let got = (data["cname"].as_str(), data["content"].as_str());
    assert_eq!(got, (Some("downmore"), Some("more")), "{data}");
}

fn a_subscription_waiting_when_redis_goes_away_is_refused(engine: &'static str) {
    let redis = Redis::start();
    let n = node(engine, &redis, "n1", &[]);
    wait_connected(&n);
    // Sent right after Redis stops, these subscriptions reach the node while its link still
    // looks up (it takes at least half a second to see a stopped Redis): each waits for its
    // channel's state, which never comes, until the node sees the link down.
    redis.pause();
    let started = Instant::now();
    let mut waiting: Vec<_> = every_transport("wait")
        .into_iter()
        .map(|(cname, path, frame)| (ask(n.front, &path), cname, frame))
        .collect();
    let mut socket = ask_ws(n.front, "/ws?cname=waitws&seq=1");
    for (c, cname, frame) in &mut waiting {
        expect_503(c, cname, frame);
    }
    expect_ws_refused(&mut socket, "waitws");
    refused_in_time(started);
    redis.resume();
    wait_connected(&n);
    let mut sub = Sub::open(n.front, Kind::Sse, "wait4", 1, "");
    wait_info(&n, "wait4", 1);
    push_ok(&n, "wait4", "back");
    assert_eq!(sub.take(1), vec![("data".into(), 1, "back".into())]);
}

fn a_node_whose_redis_is_not_running_refuses_subscriptions(engine: &'static str) {
    // Nothing listens on this port: the node's first connection fails, so it knows Redis is
    // down (a node still making its first connection would let the subscription wait).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = support::Opts::new(engine)
        .arg("--cluster-redis")
        .arg(&format!("127.0.0.1:{port}"));
    let n = support::Server::start(opts);
    let started = Instant::now();
    let mut c = ask(n.front, "/stream?cname=none&seq=1");
    expect_503(&mut c, "none", "OBJ\n");
    let mut c = ask_ws(n.front, "/ws?cname=nonews&seq=1");
    expect_ws_refused(&mut c, "nonews");
    refused_in_time(started);
    assert_eq!(push(&n, "none", "x"), 503);
}

/// The `cluster` object of a node's `/stats`.
fn link_stats(server: &support::Server) -> serde_json::Value {
    let (status, text) = admin(server, "/stats");
    assert_eq!(status, 200, "{text}");
    let stats: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    stats["cluster"].clone()
}

/// A RESP bulk string's value (`$N\r\nVALUE\r\n`).
fn bulk(reply: &str) -> String {
    let mut lines = reply.split("\r\n");
    assert!(
        lines.next().is_some_and(|l| l.starts_with('$')),
        "{reply:?}"
    );
    lines.next().unwrap_or_default().to_string()
}

fn a_seq_jump_is_filled_from_redis_and_a_duplicate_is_skipped(engine: &'static str) {
    let redis = Redis::start();
    let n = node(engine, &redis, "n1", &[]);
    wait_connected(&n);
    let mut sub = Sub::open(n.front, Kind::Stream, "j", 1, "");
    wait_info(&n, "j", 1);
    push_ok(&n, "j", "m1");
    push_ok(&n, "j", "m2");
    let want = |seq: i64, c: &str| ("data".to_string(), seq, c.to_string());
    assert_eq!(sub.take(2), [want(1, "m1"), want(2, "m2")]);
    // Once joined, a channel costs the node's Redis thread nothing: its order is the mirror's.
    let joined = eventually(Duration::from_secs(5), || link_stats(&n)["joining"] == 0);
    assert!(joined, "{}", link_stats(&n));

    // Seq 3 is stored in Redis but its publication never reaches the node (as when a pub/sub
    // payload is lost): the next message shows the jump, and the mirror reads the state again.
    assert_eq!(
        redis.command(&["HINCRBY", "rcomet:ch:j", "s", "1"]),
        ":3\r\n"
    );
    assert_eq!(
        redis.command(&["RPUSH", "rcomet:buf:j", "3 dlost"]),
        ":3\r\n"
    );
    push_ok(&n, "j", "m4");
    assert_eq!(sub.take(2), [want(3, "lost"), want(4, "m4")]);

    // A payload that comes twice is skipped.
    let epoch = bulk(&redis.command(&["HGET", "rcomet:ch:j", "e"]));
    let again = format!("m{epoch} 4 dm4");
    assert_eq!(
        redis.command(&["PUBLISH", "rcomet:sub:j", &again]),
        ":1\r\n"
    );
    push_ok(&n, "j", "m5");
    assert_eq!(sub.take(1), [want(5, "m5")]);

    let link = link_stats(&n);
    assert!(link["resyncs"].as_u64() >= Some(1), "{link}");
    assert_eq!(link["gaps"], 0, "{link}");
    assert_eq!(link["joining"], 0, "{link}");
}

fn a_mirrored_channel_lives_on_in_redis_while_it_has_subscribers(engine: &'static str) {
    let redis = Redis::start();
    // Keys live 3 s unless a node keeps them alive; the node names its mirrors every second.
    let n = node(engine, &redis, "n1", &["--channel-timeout", "3"]);
    wait_connected(&n);
    let _sub = Sub::open(n.front, Kind::Stream, "alive", 1, "");
    wait_info(&n, "alive", 1);
    let ttl = || {
        let reply = redis.command(&["PTTL", "rcomet:ch:alive"]);
        reply
            .trim()
            .trim_start_matches(':')
            .parse::<i64>()
            .unwrap_or(-3)
    };
    // Watched for twice the keys' life: they never expire, and their TTL is raised again.
    let started = Instant::now();
    let (mut last, mut raised) = (ttl(), 0);
    while started.elapsed() < Duration::from_secs(6) {
        let now = ttl();
        assert!(
            now > 0,
            "the channel's key expired (PTTL {now}) while it had a subscriber"
        );
        if now > last {
            raised += 1;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(raised >= 2, "the TTL was raised {raised} times in 6 s");
}
