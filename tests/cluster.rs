//! Cluster mode end to end: a real redis-server on a free loopback port and three rcomet nodes
//! (two workers each) started against it, driven over real sockets. Each test runs on both
//! engines with its own Redis.

mod support;

use std::time::Duration;
use support::cluster::*;
use support::engine_tests;
use support::{eventually, get};

engine_tests!(
    a_push_on_one_node_reaches_every_node_on_every_transport,
    a_subscriber_moving_between_nodes_gets_what_it_missed,
    a_token_signed_on_one_node_opens_the_channel_on_another,
    close_and_broadcast_reach_every_node,
    a_node_killed_and_restarted_loses_nothing,
    redis_paused_under_pushes_then_back,
    redis_restarted_empty_tells_the_clients,
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
}
