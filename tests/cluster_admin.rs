//! Cluster mode, the admin side over all nodes: `/psub` events of every node on every node,
//! `/info` totals, `/broadcast` answered after Redis stored it (503 when it cannot), and a
//! subscription that cannot reach Redis refused in bounded time. A real redis-server on a free
//! loopback port and three rcomet nodes; each test runs on both engines with its own Redis.

mod support;

use support::cluster::*;
use support::engine_tests;

engine_tests!(psub_sees_the_channels_of_every_node_on_every_node,);

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
