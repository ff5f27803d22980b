//! Cluster mode, the admin side over all nodes: `/psub` events of every node on every node,
//! `/info` totals, `/broadcast` answered after Redis stored it (503 when it cannot), and the
//! snapshot file said to be unused in cluster mode. A real redis-server on a free loopback port
//! and rcomet nodes; each test runs on both engines with its own Redis.

mod support;

use std::time::Duration;
use support::cluster::*;
use support::engine_tests;

engine_tests!(
    psub_sees_the_channels_of_every_node_on_every_node,
    info_totals_count_every_node,
    broadcast_is_answered_after_redis_stored_it,
    a_snapshot_path_in_cluster_mode_is_said_to_be_unused,
);

/// The first place of `line` in `lines`.
fn at(lines: &[String], line: &str) -> usize {
    lines.iter().position(|l| l == line).unwrap_or(usize::MAX)
}

fn psub_sees_the_channels_of_every_node_on_every_node(engine: &'static str) {
    let redis = Redis::start();
    let nodes = three_nodes(engine, &redis, &["--channel-timeout", "2"]);
    for n in &nodes {
        wait_connected(n);
    }
    let mut readers: Vec<_> = nodes.iter().map(psub).collect();
    // Created by a push on node 2, by a subscription on node 3, by /sign on node 1; closed on
    // node 1; the signed one expires in Redis (no subscriber anywhere).
    push_ok(&nodes[1], "pa", "x");
    let _sub = Sub::open(nodes[2].front, Kind::Stream, "pb", 1, "");
    assert_eq!(admin(&nodes[0], "/sign?cname=pc").0, 200);
    let (status, body) = admin(&nodes[0], "/close?cname=pa");
    assert_eq!(status, 200, "{body}");
    let want = ["1 pa", "1 pb", "1 pc", "0 pa", "0 pc"];
    for (i, r) in readers.iter_mut().enumerate() {
        let lines = psub_until(r, &want);
        let places: Vec<usize> = want.iter().map(|w| at(&lines, w)).collect();
        assert!(
            places.windows(2).all(|p| p[0] < p[1]),
            "node {}: {lines:?}",
            i + 1
        );
    }
    // pb has a subscriber: it stays, and is re-announced (not reported gone).
    let lines = psub_until(&mut readers[0], &["1 pb"]);
    assert!(!lines.iter().any(|l| l == "0 pb"), "{lines:?}");
}

/// `/info` without `cname` on `server`: (channels, subscribers).
fn totals(server: &support::Server) -> (i64, i64) {
    let (status, body) = admin(server, "/info");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).expect("info JSON");
    assert_eq!(v["version"], "0.2.5", "{body}");
    (
        v["channels"].as_i64().unwrap_or(-1),
        v["subscribers"].as_i64().unwrap_or(-1),
    )
}

fn info_totals_count_every_node(engine: &'static str) {
    let redis = Redis::start();
    let nodes = three_nodes(engine, &redis, &[]);
    for n in &nodes {
        wait_connected(n);
    }
    let _subs = [
        Sub::open(nodes[0].front, Kind::Stream, "ta", 1, ""),
        Sub::open(nodes[0].front, Kind::Sse, "ta", 1, ""),
        Sub::open(nodes[1].front, Kind::Ws, "ta", 1, ""),
        Sub::open(nodes[2].front, Kind::Stream, "tb", 1, ""),
    ];
    push_ok(&nodes[1], "tc", "nobody");
    for n in &nodes {
        let mut last = (0, 0);
        let ok = support::eventually(std::time::Duration::from_secs(15), || {
            last = totals(n);
            last == (3, 4)
        });
        assert!(
            ok,
            "/info stayed at {last:?}, not 3 channels and 4 subscribers"
        );
    }
    drop(_subs);
    let ok = support::eventually(std::time::Duration::from_secs(15), || {
        totals(&nodes[2]).1 == 0
    });
    assert!(
        ok,
        "subscribers that left are still counted: {:?}",
        totals(&nodes[2])
    );
    // Redis gone: 503, not one node's numbers.
    redis.pause();
    let ok = support::eventually(std::time::Duration::from_secs(10), || {
        admin(&nodes[0], "/info").0 == 503
    });
    redis.resume();
    assert!(
        ok,
        "/info while Redis is paused: {:?}",
        admin(&nodes[0], "/info")
    );
}

/// The content of the next broadcast (a broadcast is followed by a `next_seq`, skipped).
fn next_broadcast(sub: &mut Sub) -> String {
    loop {
        let (kind, _, content) = triple(&sub.next());
        match kind.as_str() {
            "next_seq" => continue,
            "broadcast" => return content,
            other => panic!("{other}: {content}"),
        }
    }
}

fn broadcast_is_answered_after_redis_stored_it(engine: &'static str) {
    let redis = Redis::start();
    let nodes = three_nodes(engine, &redis, &[]);
    for n in &nodes {
        wait_connected(n);
    }
    let mut subs: Vec<Sub> = nodes
        .iter()
        .map(|n| Sub::open(n.front, Kind::Stream, "bc", 1, ""))
        .collect();
    let (status, body) = admin(&nodes[1], "/broadcast?content=hello");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    for sub in &mut subs {
        assert_eq!(next_broadcast(sub), "hello");
    }
    // Redis paused: once the node sees it, /broadcast is refused (nothing stored) and says so.
    redis.pause();
    let ok = support::eventually(std::time::Duration::from_secs(10), || {
        admin(&nodes[2], "/stats")
            .1
            .contains("\"connected\": false")
    });
    assert!(ok, "the node did not notice Redis stopped");
    let (status, body) = admin(&nodes[2], "/broadcast?content=lost");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cluster store unavailable"), "{body}");
    redis.resume();
    wait_connected(&nodes[2]);
    assert_eq!(admin(&nodes[2], "/broadcast?content=again").0, 200);
    for sub in &mut subs {
        assert_eq!(next_broadcast(sub), "again");
    }
}

fn a_snapshot_path_in_cluster_mode_is_said_to_be_unused(engine: &'static str) {
    let redis = Redis::start();
    let dir = support::TempDir::new("snap");
    let path = dir.0.join("channels.snapshot");
    let opts = support::Opts::new(engine)
        .capture_log()
        .arg("--cluster-redis")
        .arg(&redis.addr())
        .arg("--snapshot")
        .arg(path.to_str().unwrap());
    let mut n = support::Server::start(opts);
    let said = |n: &support::Server| {
        n.log_lines()
            .into_iter()
            .filter(|l| l.contains("snapshot") && l.contains("not used"))
            .collect::<Vec<_>>()
    };
    // Written before the ready line; read from stderr by another thread.
    assert!(
        support::eventually(Duration::from_secs(5), || !said(&n).is_empty()),
        "no warning about the snapshot in {:?}",
        n.log_lines()
    );
    let lines = said(&n);
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    let line = &lines[0];
    for part in [
        "WARN",
        "cluster mode",
        path.to_str().unwrap(),
        "Redis keeps",
    ] {
        assert!(line.contains(part), "{part:?} not in {line:?}");
    }
    // And it is true: a channel with a message, a graceful stop, no snapshot file.
    wait_connected(&n);
    push_ok(&n, "kept", "in-redis");
    assert_eq!(n.terminate(Duration::from_secs(10)), Some(0));
    assert!(!path.exists(), "a snapshot was written in cluster mode");
    assert_eq!(said(&n).len(), 1, "said once");
}
