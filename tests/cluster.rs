//! Cluster mode end to end: a real redis-server on a free loopback port and three rcomet nodes
//! (two workers each) started against it, driven over real sockets. Each test runs on both
//! engines with its own Redis.

mod support;

use support::cluster::*;
use support::engine_tests;

engine_tests!(
    a_push_on_one_node_reaches_every_node_on_every_transport,
    a_subscriber_moving_between_nodes_gets_what_it_missed,
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
