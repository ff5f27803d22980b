//! The cluster thread's joins against a stand-in for Redis: a loopback listener whose accepted
//! sockets show what the thread wrote, while the test hands the thread the replies and pub/sub
//! messages a Redis would send, in the orders that race in practice.

use super::super::join::MAX_REFUSALS;
use super::*;
use crossbeam_channel::unbounded;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

struct Rig {
    node: Node,
    _cmd: TcpStream,
    sub: TcpStream,
    events: Arc<Mutex<Vec<Event>>>,
}

fn rig() -> Rig {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let settings = Settings {
        redis: vec![listener.local_addr().unwrap().to_string()],
        prefix: "rcomet".into(),
        node: "n".into(),
        workers: 1,
        buffer: 10,
        channel_timeout: 60,
    };
    let (tx, rx) = unbounded();
    // The workers' side stays open for the test's length.
    std::mem::forget(tx);
    let stats = Arc::new(LinkStats {
        up: vec![AtomicBool::new(false)],
        settled: vec![AtomicBool::new(false)],
        ..LinkStats::default()
    });
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let sink: Sink = Box::new(move |_, batch| seen.lock().unwrap().extend(batch));
    let waker = Arc::new(EventFd::new().unwrap());
    let mut node = Node::new(settings, rx, waker, stats, sink);
    node.connect_due();
    let (cmd, _) = listener.accept().unwrap();
    let (sub, _) = listener.accept().unwrap();
    sub.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut rig = Rig {
        node,
        _cmd: cmd,
        sub,
        events,
    };
    rig.node.flush_all();
    rig.sub_commands();
    rig
}

impl Rig {
    /// What the thread wrote on its pub/sub link since the last call, CRLFs as spaces.
    fn sub_commands(&mut self) -> String {
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::new();
        while let Ok(n) = self.sub.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).replace("\r\n", " ")
    }

    /// The number of the newest state read in flight for `name`.
    fn read_of(&self, name: &str) -> u32 {
        self.node.shards[0]
            .pending
            .iter()
            .rev()
            .find_map(|(p, _)| match p {
                Pending::State { name: n, read } if &n[..] == name.as_bytes() => Some(*read),
                _ => None,
            })
            .expect("a state read in flight")
    }

    /// Answers what is in flight on the command link in order, `OK`, up to the newest state
    /// read, which gets `reply`.
    fn answer_until_state(&mut self, reply: Reply) {
        let at = self.node.shards[0]
            .pending
            .iter()
            .rposition(|(p, _)| matches!(p, Pending::State { .. }))
            .expect("a state read in flight");
        for _ in 0..at {
            self.node.on_reply(0, Reply::SimpleString(b"OK".to_vec()));
        }
        self.node.on_reply(0, reply);
    }

    /// The home asks to join `n` (a first mirror, or a re-read with `resync`), and the thread
    /// writes what that takes.
    fn join(&mut self, n: &str, create: bool, resync: bool) {
        let name = name(n);
        let r = if resync {
            Request::Resync { name, create }
        } else {
            Request::Watch { name, create }
        };
        self.node.request(r);
        self.node.flush_all();
    }

    /// True when an event the thread sent so far matches.
    fn emitted(&mut self, matches: impl Fn(&Event) -> bool) -> bool {
        self.node.send_events();
        self.events.lock().unwrap().iter().any(matches)
    }

    /// Redis confirms a SUBSCRIBE of `n`.
    fn confirm(&mut self, n: &str) {
        self.node.on_push(0, confirmation("subscribe", n));
    }

    /// The shard as up: its PING answered and the presence subject confirmed.
    fn up(&mut self) {
        let sh = &mut self.node.shards[0];
        sh.ping_ok = true;
        sh.presence_ok = true;
        self.node.shard_up(0);
        assert!(self.node.shards[0].up);
    }

    fn synced(&mut self) -> usize {
        self.node.send_events();
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| matches!(e, Event::Synced { .. } | Event::Resync { .. }))
            .count()
    }
}

/// A pub/sub confirmation (`subscribe` / `unsubscribe`) of channel `name`.
fn confirmation(kind: &str, name: &str) -> Reply {
    Reply::Array(vec![
        Reply::BulkString(kind.as_bytes().to_vec()),
        Reply::BulkString(format!("rcomet:sub:{name}").into_bytes()),
        Reply::Integer(1),
    ])
}

/// The state script's reply: epoch 7, last seq 3, a token, no stored message.
fn state() -> Reply {
    Reply::Array(vec![
        Reply::Integer(7),
        Reply::Integer(3),
        Reply::BulkString(vec![b'a'; 32]),
        Reply::Array(vec![]),
    ])
}

fn name(s: &str) -> Name {
    Name::from(s)
}

/// The last subscription command naming `subject` in `wire` (`SUBSCRIBE` or `UNSUBSCRIBE`).
fn last_command_for(wire: &str, subject: &str) -> Option<&'static str> {
    let mut last = None;
    let mut verb = None;
    for word in wire.split(' ') {
        match word {
            "SUBSCRIBE" => verb = Some("SUBSCRIBE"),
            "UNSUBSCRIBE" => verb = Some("UNSUBSCRIBE"),
            w if w == subject => last = verb,
            _ => {}
        }
    }
    last
}

#[test]
fn a_stale_subscribe_confirmation_neither_strands_a_join_nor_leaves_a_mirror_unsubscribed() {
    let mut r = rig();
    // The home's mirror of A asks for its state again (after a reconnect): SUBSCRIBE #1.
    r.join("A", true, true);
    let mut wire = r.sub_commands();
    // The mirror expires and a new subscriber comes at once: UNSUBSCRIBE, and a new join whose
    // SUBSCRIBE #2 is queued when SUBSCRIBE #1's confirmation is read.
    r.node.request(Request::Unwatch { name: name("A") });
    r.node.request(Request::Watch {
        name: name("A"),
        create: true,
    });
    r.confirm("A");
    let stale = r.read_of("A");
    r.node.flush_all();
    wire += &r.sub_commands();
    assert_eq!(
        last_command_for(&wire, "rcomet:sub:A"),
        Some("SUBSCRIBE"),
        "a SUBSCRIBE follows the UNSUBSCRIBE: {wire}"
    );
    // The UNSUBSCRIBE is confirmed: the read sent before it is void, whenever it answers.
    r.node.on_push(0, confirmation("unsubscribe", "A"));
    r.node.on_state(0, &name("A"), stale, &state());
    assert_eq!(
        r.synced(),
        0,
        "a read from before the UNSUBSCRIBE is not taken"
    );
    r.node.flush_all();
    wire += &r.sub_commands();
    assert_eq!(last_command_for(&wire, "rcomet:sub:A"), Some("SUBSCRIBE"));
    // SUBSCRIBE #2 confirmed: the state is read again, and that read is taken.
    r.confirm("A");
    let fresh = r.read_of("A");
    assert_ne!(fresh, stale);
    r.node.on_state(0, &name("A"), fresh, &state());
    assert_eq!(r.synced(), 1);
    assert!(r.node.joining.is_empty(), "the join ended");
    assert_eq!(r.node.stats.joining.load(Ordering::Relaxed), 0);
}

#[test]
fn a_read_of_an_ended_join_is_not_taken_by_the_next_join_of_the_name() {
    let mut r = rig();
    r.join("C", true, true);
    r.confirm("C");
    let old = r.read_of("C");
    // The mirror expires and a subscriber comes back before that read is answered; a spare
    // SUBSCRIBE confirmed now starts the new join's read.
    r.node.request(Request::Unwatch { name: name("C") });
    r.join("C", true, false);
    r.confirm("C");
    let new = r.read_of("C");
    assert_ne!(old, new);
    r.node.on_state(0, &name("C"), old, &state());
    assert_eq!(r.synced(), 0, "the ended join's read is not the new join's");
    r.node.on_state(0, &name("C"), new, &state());
    assert_eq!(r.synced(), 1);
}

#[test]
fn a_state_read_redis_refuses_is_tried_again_then_the_home_is_told() {
    let mut r = rig();
    r.join("B", false, false);
    r.sub_commands();
    let wrong = || Reply::Error("WRONGTYPE Operation against a key holding the wrong kind".into());
    for attempt in 1..=MAX_REFUSALS {
        r.confirm("B");
        let read = r.read_of("B");
        r.node.on_state(0, &name("B"), read, &wrong());
        assert_eq!(r.synced(), 0, "no mirror from a refused read");
        let told = r.emitted(|e| matches!(e, Event::Refused { .. }));
        let closed = r.emitted(|e| matches!(e, Event::Closed { .. }));
        assert!(!closed, "a refused read is not taken for an absent channel");
        let next = if attempt < MAX_REFUSALS {
            assert!(
                !told && r.node.joining.contains_key(&b"B"[..]),
                "tried again"
            );
            r.node.retry_refused();
            "SUBSCRIBE"
        } else {
            assert!(told, "the home is told once the join gives up");
            assert!(r.node.joining.is_empty());
            "UNSUBSCRIBE"
        };
        r.node.flush_all();
        let wire = r.sub_commands();
        assert_eq!(
            last_command_for(&wire, "rcomet:sub:B"),
            Some(next),
            "{wire}"
        );
    }
}

#[test]
fn a_redis_still_loading_takes_the_shard_down_after_the_read_and_joins_start_over() {
    let mut r = rig();
    r.join("L", true, false);
    r.confirm("L");
    let loading = Reply::Error("LOADING Redis is loading the dataset in memory".into());
    r.answer_until_state(loading);
    assert!(
        r.node.shards[0].cmd.is_some(),
        "not before the read is handled"
    );
    r.node.read_shard(0);
    assert!(
        r.node.shards[0].cmd.is_none(),
        "then the links are dropped, to connect again"
    );
    assert_eq!(r.synced(), 0);
    assert!(
        r.node.joining.contains_key(&b"L"[..]),
        "the join waits for the new links"
    );
}

#[test]
fn a_refused_ping_takes_the_shard_down_to_connect_again() {
    let mut r = rig();
    let p = r.node.shards[0]
        .pending
        .iter()
        .position(|(p, _)| matches!(p, Pending::Ping(_)))
        .expect("a PING in flight");
    // Every reply before the PING's (the scripts' loads), then the PING's: an error.
    for _ in 0..p {
        r.node.on_reply(0, Reply::SimpleString(b"OK".to_vec()));
    }
    r.node
        .on_reply(0, Reply::Error("LOADING Redis is loading".into()));
    r.node.read_shard(0);
    assert!(r.node.shards[0].cmd.is_none(), "the links are dropped");
    assert!(!r.node.shards[0].up);
}

#[test]
fn a_replica_is_retried_with_backoff_and_the_mirrors_asked_again_once() {
    let mut r = rig();
    r.up();
    r.join("R", true, false);
    r.confirm("R");
    let readonly = || Reply::Error("READONLY You can't write against a read only replica.".into());
    r.answer_until_state(readonly());
    r.node.read_shard(0);
    let sh = &r.node.shards[0];
    assert!(sh.cmd.is_none() && sh.refusing, "down, refusing");
    assert!(sh.served, "the mirrors are asked again after this outage");
    // The next connection asks them (and forgets it) and comes up (PING answered); the next
    // read is refused again.
    r.node.shards[0].served = false;
    let before = r.node.shards[0].backoff;
    r.node.shard_up(0);
    let sh = &r.node.shards[0];
    assert!(
        sh.backoff >= before && sh.backoff > BACKOFF_MIN,
        "no reset to 50 ms"
    );
    assert!(!sh.served, "a refusing instance serves no mirror");
    r.node.down(0, "refused again");
    assert!(!r.node.shards[0].served, "not asked again for this outage");
}

#[test]
fn a_report_carries_each_channel_once_with_its_latest_count() {
    let n = |s: &str| -> Name { Name::from(s) };
    let sent = vec![
        (n("a"), 5),
        (n("b"), 1),
        (n("a"), 6),
        (n("c"), 2),
        (n("c"), 0),
    ];
    let names = |v: Vec<(Name, u32)>| -> Vec<(String, u32)> {
        v.into_iter()
            .map(|(k, c)| (String::from_utf8_lossy(&k).into_owned(), c))
            .collect()
    };
    let want_full = vec![("a".to_string(), 6), ("b".into(), 1)];
    assert_eq!(names(fold_counts(sent.clone(), true)), want_full);
    let want_delta = vec![("a".to_string(), 6), ("b".into(), 1), ("c".into(), 0)];
    assert_eq!(names(fold_counts(sent, false)), want_delta);
}
