//! Unit tests of `hub` (kept in their own file to keep `hub.rs` short).

use super::*;
use crate::comet::auth::Credential;
use crate::comet::message::expand_replay;
use crate::comet::name::Name;

fn config() -> HubConfig {
    HubConfig {
        max_channels: 100,
        max_subscribers_per_channel: 16,
        channel_buffer_size: 10,
        channel_timeout: 3,
        polling_timeout: 3,
        auth_token: false,
    }
}

static NONE: Credential = Credential::NONE;

fn ask<'a>(cname: &'a [u8], seq: u32, credential: &'a Credential, worker: usize) -> Ask<'a> {
    Ask {
        cname,
        seq,
        credential,
        worker,
        long_poll: false,
        resume: None,
    }
}

fn hub_with(config: HubConfig) -> Hub {
    let counters = Counters::new();
    // A /psub listener, so presence events are recorded.
    counters.add_listener();
    Hub::new(config, counters)
}

/// A hub with room for `max_channels` channels (the tests' default is 100).
fn hub_for(max_channels: usize) -> Hub {
    hub_with(HubConfig {
        max_channels,
        ..config()
    })
}

/// A hub with the channels `c000`.. `c{n-1}`, each signed with idle countdown `expires`.
fn hub_with_signed(n: usize, expires: i32) -> Hub {
    let mut hub = hub_for(1000);
    for i in 0..n {
        hub.sign(format!("c{i:03}").as_bytes(), expires).unwrap();
    }
    hub
}

fn hub() -> Hub {
    hub_with(config())
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn online(name: &str) -> Presence {
    Presence::Online(Name::from(name.as_bytes()))
}

fn offline(name: &str) -> Presence {
    Presence::Offline(Name::from(name.as_bytes()))
}

fn replay_seqs(s: &Subscribed) -> Vec<u32> {
    match &s.catch_up {
        CatchUp::Replay(m) => m.iter().map(|m| m.seq).collect(),
        other => panic!("expected a replay, got {other:?}"),
    }
}

#[test]
fn sign_creates_with_token_and_default_expires() {
    let mut hub = hub();
    let reply = hub.sign(b"alice", 0).unwrap();
    assert_eq!(reply.seq_oldest, 1);
    assert_eq!(reply.expires, 3);
    assert!(reply
        .token_hex
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
    let again = hub.sign(b"alice", 60).unwrap();
    assert_eq!(again.token_hex, reply.token_hex);
    assert_eq!(again.expires, 60);
    assert_eq!(hub.channel(b"alice").unwrap().countdown(), 60);
    assert_eq!(hub.drain_presence(), vec![online("alice")]);
    assert_eq!(hub.len(), 1);
    assert_eq!(hub.counters().channels(), 1);
}

#[test]
fn sign_seq_uses_real_buffer_size() {
    let mut hub = hub_with(HubConfig {
        channel_buffer_size: 3,
        ..config()
    });
    for _ in 0..5 {
        hub.publish(b"c", b"x", MsgType::Data).unwrap();
    }
    assert_eq!(hub.sign(b"c", 0).unwrap().seq_oldest, 3);
    hub.clear(b"c").unwrap();
    assert_eq!(hub.sign(b"c", 0).unwrap().seq_oldest, 6);
}

#[test]
fn publish_assigns_seqs_and_reports_workers() {
    let mut hub = hub();
    let first = hub
        .publish(b"alice", b"say \\\"hi\\\"", MsgType::Data)
        .unwrap();
    assert_eq!(first.msg.seq, 1);
    assert_eq!(first.workers, 0);
    assert_eq!(
        text(&first.msg.json),
        r#"{"type":"data","cname":"alice","seq":1,"content":"say \"hi\""}"#
    );
    hub.subscribe(ask(b"alice", 2, &NONE, 3)).unwrap();
    hub.subscribe(ask(b"alice", 2, &NONE, 5)).unwrap();
    let second = hub.publish(b"alice", b"\\u4f60", MsgType::Data).unwrap();
    assert_eq!(second.msg.seq, 2);
    assert_eq!(second.workers, (1 << 3) | (1 << 5));
    assert_eq!(&*second.name, b"alice");
    assert_eq!(hub.channel(b"alice").unwrap().ring().len(), 2);
    let odd = hub.publish(b"alice", b"x", MsgType::Noop).unwrap();
    assert_eq!(
        odd.msg.kind,
        MsgType::Data,
        "only data and broadcast are stored"
    );
}

#[test]
fn publish_raises_countdown_only_upwards() {
    let mut hub = hub();
    hub.sign(b"c", 100).unwrap();
    hub.publish(b"c", b"x", MsgType::Data).unwrap();
    assert_eq!(hub.channel(b"c").unwrap().countdown(), 100);
    hub.sign(b"c", 1).unwrap();
    hub.publish(b"c", b"x", MsgType::Data).unwrap();
    assert_eq!(hub.channel(b"c").unwrap().countdown(), 3);
}

#[test]
fn max_channels_is_shared_between_hubs() {
    let counters = Counters::new();
    let cfg = HubConfig {
        max_channels: 3,
        ..config()
    };
    let mut a = Hub::new(cfg.clone(), Arc::clone(&counters));
    let mut b = Hub::new(cfg, Arc::clone(&counters));
    a.sign(b"k1", 0).unwrap();
    b.publish(b"k2", b"", MsgType::Data).unwrap();
    a.subscribe(ask(b"k3", 0, &NONE, 0)).unwrap();
    assert_eq!(b.sign(b"k4", 0), Err(TooManyChannels));
    assert!(a.publish(b"k4", b"", MsgType::Data).is_err());
    assert_eq!(
        b.subscribe(ask(b"k4", 0, &NONE, 0)).unwrap_err(),
        SubscribeError::TooManyChannels
    );
    // Existing channels still work, and freeing one makes room.
    assert!(a.publish(b"k1", b"", MsgType::Data).is_ok());
    a.close(b"k1").unwrap();
    assert!(b.sign(b"k4", 0).is_ok());
    assert_eq!(counters.channels(), 3);
}

#[test]
fn subscribe_auth_none_creates() {
    let mut hub = hub();
    let s = hub.subscribe(ask(b"carol", 0, &NONE, 0)).unwrap();
    assert!(matches!(s.catch_up, CatchUp::NextSeq(1)));
    assert!(s.registered);
    assert!(hub.exists(b"carol"));
    assert_eq!(hub.subscribers(b"carol"), 1);
    assert_eq!(hub.counters().subscribers(), 1);
}

#[test]
fn subscribe_auth_token() {
    let mut hub = hub_with(HubConfig {
        auth_token: true,
        ..config()
    });
    assert_eq!(
        hub.subscribe(ask(b"gina", 0, &NONE, 0)).unwrap_err(),
        SubscribeError::TokenError
    );
    assert!(
        !hub.exists(b"gina"),
        "auth token never creates on subscribe"
    );
    let token = hub.sign(b"gina", 0).unwrap().token_hex;
    assert_eq!(
        hub.subscribe(ask(b"gina", 0, &NONE, 0)).unwrap_err(),
        SubscribeError::TokenError
    );
    let mut wrong = token;
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        hub.subscribe(ask(b"gina", 0, &Credential::Signed(wrong.to_vec()), 0))
            .unwrap_err(),
        SubscribeError::TokenError
    );
    assert_eq!(hub.subscribers(b"gina"), 0);
    let s = hub
        .subscribe(ask(b"gina", 0, &Credential::Signed(token.to_vec()), 0))
        .unwrap();
    assert!(matches!(s.catch_up, CatchUp::NextSeq(1)));
    // /pub still creates under auth token.
    assert!(hub.publish(b"new", b"x", MsgType::Data).is_ok());
    assert_eq!(SubscribeError::TokenError.kind(), MsgType::TokenError);
    assert_eq!(SubscribeError::TokenError.content(), b"Token error");
}

#[test]
fn stateless_verdicts_under_auth_token() {
    let mut hub = hub_with(HubConfig {
        auth_token: true,
        max_channels: 1,
        ..config()
    });
    let refused = Credential::Stateless { valid: false };
    let valid = Credential::Stateless { valid: true };
    assert_eq!(
        hub.subscribe(ask(b"hal", 0, &refused, 0)).unwrap_err(),
        SubscribeError::TokenError
    );
    assert!(!hub.exists(b"hal"), "a refused token creates nothing");
    // A valid one creates the channel (an app server minted it without /sign) ...
    let s = hub.subscribe(ask(b"hal", 0, &valid, 0)).unwrap();
    assert!(matches!(s.catch_up, CatchUp::NextSeq(1)));
    assert!(hub.exists(b"hal"));
    // ... within max_channels, and is refused on an existing channel when invalid.
    assert_eq!(
        hub.subscribe(ask(b"ida", 0, &valid, 0)).unwrap_err(),
        SubscribeError::TooManyChannels
    );
    assert_eq!(
        hub.subscribe(ask(b"hal", 0, &refused, 0)).unwrap_err(),
        SubscribeError::TokenError
    );
    // Under auth: none a verdict is not looked at (nothing is checked there).
    let mut open = hub_with(config());
    assert!(open.subscribe(ask(b"joe", 0, &refused, 0)).is_ok());
}

#[test]
fn subscriber_limit() {
    let mut hub = hub_with(HubConfig {
        max_subscribers_per_channel: 2,
        ..config()
    });
    hub.subscribe(ask(b"jack", 0, &NONE, 0)).unwrap();
    hub.subscribe(ask(b"jack", 0, &NONE, 1)).unwrap();
    let err = hub.subscribe(ask(b"jack", 0, &NONE, 0)).unwrap_err();
    assert_eq!(err, SubscribeError::TooManySubscribers);
    assert_eq!(err.content(), b"Too many subscribers");
    assert_eq!(err.kind(), MsgType::TooMany);
    assert_eq!(hub.subscribers(b"jack"), 2);

    let mut zero = hub_with(HubConfig {
        max_subscribers_per_channel: 0,
        ..config()
    });
    assert_eq!(
        zero.subscribe(ask(b"x", 0, &NONE, 0)).unwrap_err(),
        SubscribeError::TooManySubscribers
    );
}

#[test]
fn replay_through_hub_with_broadcast_next_seq() {
    let mut hub = hub();
    hub.publish(b"carol", b"hello", MsgType::Data).unwrap();
    let deliveries = hub.broadcast(b"to all");
    assert!(
        deliveries.is_empty(),
        "no subscriber: stored, nothing to deliver"
    );
    hub.publish(b"carol", b"bye", MsgType::Data).unwrap();
    let s = hub.subscribe(ask(b"carol", 1, &NONE, 0)).unwrap();
    assert_eq!(replay_seqs(&s), vec![1, 2, 3]);
    let CatchUp::Replay(msgs) = &s.catch_up else {
        unreachable!()
    };
    let objects: Vec<String> = expand_replay(b"carol", msgs)
        .iter()
        .map(|o| text(o).to_owned())
        .collect();
    assert_eq!(
        objects,
        [
            r#"{"type":"data","cname":"carol","seq":1,"content":"hello"}"#,
            r#"{"type":"broadcast","cname":"carol","seq":2,"content":"to all"}"#,
            r#"{"type":"next_seq","cname":"carol","seq":3,"content":""}"#,
            r#"{"type":"data","cname":"carol","seq":3,"content":"bye"}"#,
        ]
    );
    assert!(matches!(
        hub.subscribe(ask(b"carol", 4, &NONE, 0)).unwrap().catch_up,
        CatchUp::Wait
    ));
    assert!(matches!(
        hub.subscribe(ask(b"carol", 0, &NONE, 0)).unwrap().catch_up,
        CatchUp::NextSeq(4)
    ));
}

#[test]
fn stale_seq_after_clear_or_trim() {
    let mut hub = hub_with(HubConfig {
        channel_buffer_size: 3,
        ..config()
    });
    for _ in 0..6 {
        hub.publish(b"c", b"x", MsgType::Data).unwrap();
    }
    // Trimmed: holds 4..=6; a stale seq replays all of it.
    let s = hub.subscribe(ask(b"c", 2, &NONE, 0)).unwrap();
    assert_eq!(replay_seqs(&s), vec![4, 5, 6]);
    assert_eq!(hub.clear(b"c"), Some(7));
    assert!(matches!(
        hub.subscribe(ask(b"c", 2, &NONE, 0)).unwrap().catch_up,
        CatchUp::NextSeq(7)
    ));
    assert!(hub.clear(b"missing").is_none());
}

#[test]
fn long_poll_registers_only_when_waiting() {
    let mut hub = hub();
    let s = hub
        .subscribe(Ask {
            long_poll: true,
            resume: None,
            ..ask(b"bob", 0, &NONE, 2)
        })
        .unwrap();
    assert!(!s.registered);
    assert_eq!(hub.subscribers(b"bob"), 0);
    assert_eq!(hub.channel(b"bob").unwrap().workers(), 0);
    let s = hub
        .subscribe(Ask {
            long_poll: true,
            resume: None,
            ..ask(b"bob", 1, &NONE, 2)
        })
        .unwrap();
    assert!(s.registered);
    assert!(matches!(s.catch_up, CatchUp::Wait));
    assert_eq!(hub.subscribers(b"bob"), 1);
    assert_eq!(hub.channel(b"bob").unwrap().workers(), 1 << 2);
}

#[test]
fn unsubscribe_clears_bits_and_counts() {
    let mut hub = hub();
    let a = hub.subscribe(ask(b"c", 0, &NONE, 1)).unwrap();
    let b = hub.subscribe(ask(b"c", 0, &NONE, 1)).unwrap();
    hub.subscribe(ask(b"c", 0, &NONE, 4)).unwrap();
    assert_eq!(a.epoch, b.epoch);
    assert_eq!(hub.channel(b"c").unwrap().workers(), 0b10010);
    hub.unsubscribe(b"c", a.epoch, 1, false);
    assert_eq!(hub.channel(b"c").unwrap().workers(), 0b10010);
    hub.unsubscribe(b"c", a.epoch, 1, true);
    assert_eq!(hub.channel(b"c").unwrap().workers(), 0b10000);
    assert_eq!(hub.subscribers(b"c"), 1);
    hub.unsubscribe(b"c", a.epoch, 4, true);
    assert_eq!(hub.subscribers(b"c"), 0);
    assert_eq!(hub.channel(b"c").unwrap().workers(), 0);
    assert_eq!(hub.counters().subscribers(), 0);
    // Extra departures never underflow.
    hub.unsubscribe(b"c", a.epoch, 4, true);
    assert_eq!(hub.subscribers(b"c"), 0);
    assert_eq!(hub.counters().subscribers(), 0);
    hub.unsubscribe(b"missing", 0, 0, true);
}

#[test]
fn stale_unsubscribe_after_recreate_is_ignored() {
    let mut hub = hub();
    let old = hub.subscribe(ask(b"c", 0, &NONE, 1)).unwrap();
    let closed = hub.close(b"c").unwrap();
    assert_eq!(closed.workers, 1 << 1);
    let new = hub.subscribe(ask(b"c", 0, &NONE, 0)).unwrap();
    assert_ne!(old.epoch, new.epoch);
    hub.unsubscribe(b"c", old.epoch, 1, true);
    assert_eq!(hub.subscribers(b"c"), 1);
    assert_eq!(hub.channel(b"c").unwrap().workers(), 1);
    assert_eq!(hub.counters().subscribers(), 1);
}

#[test]
fn close_frees_and_reports() {
    let mut hub = hub();
    let token = hub.sign(b"carol", 0).unwrap().token_hex;
    hub.publish(b"carol", b"hello", MsgType::Data).unwrap();
    hub.publish(b"carol", b"again", MsgType::Data).unwrap();
    hub.subscribe(ask(b"carol", 0, &NONE, 0)).unwrap();
    hub.subscribe(ask(b"carol", 0, &NONE, 2)).unwrap();
    hub.drain_presence();
    let closed = hub.close(b"carol").unwrap();
    assert_eq!(closed.seq_next, 3);
    assert_eq!(closed.workers, 0b101);
    assert_eq!(&*closed.name, b"carol");
    assert_eq!(
        text(&closed.json),
        r#"{"type":"close","cname":"carol","seq":3,"content":""}"#
    );
    assert!(!hub.exists(b"carol"));
    assert_eq!(hub.counters().channels(), 0);
    assert_eq!(hub.counters().subscribers(), 0);
    assert_eq!(hub.drain_presence(), vec![offline("carol")]);
    assert!(hub.close(b"carol").is_none());
    // Re-created: seq 1 and a new token.
    let again = hub.sign(b"carol", 0).unwrap();
    assert_eq!(again.seq_oldest, 1);
    assert_ne!(again.token_hex, token);
}

#[test]
fn expiry_timing_after_sign() {
    let mut hub = hub();
    hub.sign(b"c", 3).unwrap();
    for tick in 1..=3 {
        hub.tick();
        assert!(hub.exists(b"c"), "still alive after tick {tick}");
    }
    let events = hub.tick();
    assert!(!hub.exists(b"c"));
    assert!(events.contains(&offline("c")));
    assert_eq!(hub.counters().channels(), 0);
}

#[test]
fn channels_expiring_together_are_freed_a_bounded_number_per_step() {
    let mut hub = hub();
    for i in 0..10 {
        hub.sign(format!("c{i}").as_bytes(), 1).unwrap();
    }
    hub.sign(b"kept", 3).unwrap();
    hub.drain_presence();
    hub.begin_tick();
    // The second tick is queued behind the first: the steps walk both (countdowns 1 → 0 → -1).
    hub.begin_tick();
    assert!(hub.ticking());
    assert_eq!(hub.len(), 11, "beginning a tick frees nothing");
    // Used before the walk reached it: its countdown is raised, it stays.
    hub.publish(b"c3", b"x", MsgType::Data).unwrap();
    let mut steps = 0;
    let mut len = hub.len();
    while hub.tick_step(2 * tick_walk::FREE_COST) {
        steps += 1;
        assert!(len - hub.len() <= 2, "at most 2 freed per step");
        len = hub.len();
    }
    assert!(steps >= 4, "{steps}");
    assert!(!hub.ticking());
    let mut left: Vec<_> = (0..11)
        .filter_map(|i| {
            let name = if i == 10 {
                "kept".to_string()
            } else {
                format!("c{i}")
            };
            hub.exists(name.as_bytes()).then_some(name)
        })
        .collect();
    left.sort();
    assert_eq!(left, ["c3", "kept"]);
    assert_eq!(hub.counters().channels(), 2);
    let events = hub.drain_presence();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Presence::Offline(_)))
            .count(),
        9
    );
    assert!(!events.contains(&offline("c3")));
}

#[test]
fn a_tick_step_visits_at_most_its_budget() {
    let mut hub = hub_with_signed(100, 50);
    hub.begin_tick();
    let countdowns = |hub: &Hub| -> Vec<i32> {
        (0..100)
            .filter_map(|i| hub.channels.get(format!("c{i:03}").as_bytes()))
            .map(|ch| ch.countdown())
            .collect()
    };
    assert!(
        countdowns(&hub).iter().all(|&c| c == 50),
        "begin_tick visits nothing"
    );
    assert!(hub.tick_step(30));
    assert_eq!(countdowns(&hub).iter().filter(|&&c| c == 49).count(), 30);
    while hub.tick_step(30) {}
    assert!(countdowns(&hub).iter().all(|&c| c == 49));
}

/// A tick that begins while the last one is still being walked is queued, not walked at once:
/// no call does more than its budget, and every countdown still moves by one per tick.
#[test]
fn a_tick_that_begins_during_a_walk_is_walked_after_it() {
    let mut hub = hub_with_signed(100, 50);
    let total = |hub: &Hub| -> i32 { hub.channels.iter().map(|(_, ch)| ch.countdown()).sum() };
    hub.begin_tick();
    assert!(hub.tick_step(30));
    hub.begin_tick();
    hub.begin_tick();
    assert_eq!(total(&hub), 100 * 50 - 30, "beginning a tick walks nothing");
    let mut before = total(&hub);
    while hub.tick_step(30) {
        let now = total(&hub);
        assert!(before - now <= 30, "{before} -> {now}");
        before = now;
    }
    assert!(hub.channels.iter().all(|(_, ch)| ch.countdown() == 47));
}

#[test]
fn a_tick_finds_every_expired_channel_while_others_are_closed_meanwhile() {
    let mut hub = hub();
    for i in 0..50 {
        hub.sign(format!("c{i:02}").as_bytes(), 1).unwrap();
    }
    hub.begin_tick();
    hub.begin_tick();
    let mut closed = 0;
    while hub.tick_step(3 * tick_walk::FREE_COST) {
        // A /close between steps moves the last entry into the hole it leaves.
        let victim = (0..50)
            .map(|i| format!("c{i:02}"))
            .find(|n| hub.exists(n.as_bytes()));
        if let Some(v) = victim {
            hub.close(v.as_bytes());
            closed += 1;
        }
    }
    assert!(closed > 0);
    assert_eq!(hub.len(), 0, "every expired channel was found");
    assert_eq!(hub.counters().channels(), 0);
}

/// Closes and creations between the steps of a walk move entries around (a removal moves the
/// last entry into the hole, a creation appends): still, each channel that existed when a tick
/// began is counted down and re-announced exactly once by it, and one created during the walk
/// not at all.
#[test]
fn every_channel_is_ticked_exactly_once_per_tick_whatever_moves_it() {
    let mut hub = hub_for(10_000);
    let period = hub.config().channel_timeout as usize;
    for i in 0..200 {
        hub.sign(format!("old{i:03}").as_bytes(), 100).unwrap();
    }
    hub.drain_presence();
    let mut created = 0;
    let mut online: std::collections::HashMap<String, usize> = Default::default();
    for tick in 1..=period as i32 {
        hub.begin_tick();
        let mut new_this_tick = Vec::new();
        // Between the tick's beginning and its first step too, then between every two steps.
        loop {
            // Close a channel somewhere (often below the walk: the last entry moves there).
            let index = (created * 37) % hub.len().max(1);
            if let Some((name, _)) = hub.channels.entry_at(index) {
                let name = name.to_vec();
                hub.close(&name);
            }
            let name = format!("new{created:04}");
            created += 1;
            hub.sign(name.as_bytes(), 100).unwrap();
            new_this_tick.push(name);
            if !hub.tick_step(7) {
                break;
            }
        }
        for (name, ch) in hub.channels.iter() {
            let name = String::from_utf8_lossy(name).into_owned();
            if name.starts_with("old") {
                assert_eq!(ch.countdown(), 100 - tick, "{name} after tick {tick}");
            }
        }
        for name in &new_this_tick {
            if let Some(ch) = hub.channels.get(name.as_bytes()) {
                assert_eq!(ch.countdown(), 100, "{name}, created during tick {tick}");
            }
        }
        for event in hub.drain_presence() {
            if let Presence::Online(name) = event {
                *online
                    .entry(String::from_utf8_lossy(&name).into_owned())
                    .or_default() += 1;
            }
        }
    }
    let survivors: Vec<String> = (0..200)
        .map(|i| format!("old{i:03}"))
        .filter(|n| hub.exists(n.as_bytes()))
        .collect();
    assert!(survivors.len() > 50, "{}", survivors.len());
    for name in &survivors {
        assert_eq!(online.get(name), Some(&1), "{name}: once per period");
    }
}

#[test]
fn subscribed_channels_do_not_expire() {
    let mut hub = hub();
    let s = hub.subscribe(ask(b"c", 0, &NONE, 0)).unwrap();
    hub.sign(b"c", 1).unwrap();
    for _ in 0..10 {
        hub.tick();
    }
    assert!(hub.exists(b"c"));
    assert_eq!(hub.channel(b"c").unwrap().countdown(), 3);
    hub.unsubscribe(b"c", s.epoch, 0, true);
    for _ in 0..3 {
        hub.tick();
    }
    assert!(hub.exists(b"c"));
    hub.tick();
    assert!(!hub.exists(b"c"));
}

#[test]
fn broadcast_does_not_keep_channels_alive() {
    let mut hub = hub();
    hub.sign(b"a", 3).unwrap();
    hub.sign(b"b", 3).unwrap();
    hub.tick();
    hub.tick();
    let sent = hub.broadcast(b"x");
    assert!(sent.is_empty(), "no subscribers");
    assert_eq!(hub.channel(b"a").unwrap().seq_next(), 2);
    assert_eq!(hub.channel(b"b").unwrap().seq_next(), 2);
    hub.tick();
    hub.tick();
    assert_eq!(hub.len(), 0, "broadcast left the countdowns alone");
}

#[test]
fn broadcast_each_uses_each_channels_seq() {
    let mut hub = hub();
    hub.publish(b"a", b"1", MsgType::Data).unwrap();
    hub.publish(b"a", b"2", MsgType::Data).unwrap();
    hub.sign(b"b", 0).unwrap();
    hub.subscribe(ask(b"b", 0, &NONE, 7)).unwrap();
    let mut seen = Vec::new();
    hub.broadcast_each(b"hey", |name, msg, workers| {
        seen.push((text(name).to_owned(), msg.seq, msg.kind, workers));
    });
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![("b".to_owned(), 1, MsgType::Broadcast, 1 << 7)],
        "only channels with subscribers have something to deliver"
    );
    assert_eq!(hub.channel(b"a").unwrap().seq_next(), 4);
}

#[test]
fn presence_reannounces_once_per_period() {
    let mut hub = hub_with(HubConfig {
        channel_timeout: 4,
        ..config()
    });
    for name in ["a", "b", "c", "d", "e"] {
        hub.subscribe(ask(name.as_bytes(), 0, &NONE, 0)).unwrap();
    }
    let created = hub.drain_presence();
    assert_eq!(created.len(), 5);
    assert!(created.iter().all(|p| matches!(p, Presence::Online(_))));
    let mut per_tick = Vec::new();
    for _ in 0..12 {
        per_tick.push(hub.tick());
    }
    for name in ["a", "b", "c", "d", "e"] {
        let ticks: Vec<usize> = per_tick
            .iter()
            .enumerate()
            .filter(|(_, ev)| ev.contains(&online(name)))
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(ticks.len(), 3, "{name}: {ticks:?}");
        assert!(ticks[0] <= 4);
        assert_eq!(ticks[1] - ticks[0], 4);
        assert_eq!(ticks[2] - ticks[1], 4);
    }
    // Spread: no tick carries all five.
    assert!(per_tick.iter().all(|ev| ev.len() < 5));
}

#[test]
fn presence_can_be_switched_off() {
    let mut hub = hub();
    hub.set_presence(false);
    hub.sign(b"a", 1).unwrap();
    for _ in 0..5 {
        assert!(hub.tick().is_empty());
    }
    assert!(!hub.exists(b"a"));
    assert!(hub.drain_presence().is_empty());
}

#[test]
fn presence_lines() {
    let mut out = Vec::new();
    online("frank").write_line(&mut out);
    offline("frank").write_line(&mut out);
    assert_eq!(out, b"1 frank\n0 frank\n");
}

#[test]
fn name_is_shared() {
    let mut hub = hub();
    hub.sign(b"c", 0).unwrap();
    let a = hub.name(b"c").unwrap();
    let b = hub.name(b"c").unwrap();
    assert!(Name::ptr_eq(&a, &b));
    assert!(hub.name(b"d").is_none());
}

#[test]
fn worker_bits() {
    assert_eq!(worker_bit(0), 1);
    assert_eq!(worker_bit(63), 1 << 63);
}

#[test]
fn a_reserved_creation_counts_at_once_and_settles_at_the_home() {
    let cfg = HubConfig {
        max_channels: 2,
        ..config()
    };
    let mut h = hub_with(cfg);
    let counters = Arc::clone(h.counters());
    assert!(counters.reserve_channel(2));
    assert_eq!(counters.channels(), 1, "counted while the publish travels");
    let p = h.publish_reserved(b"new", b"x").unwrap();
    assert_eq!(p.msg.seq, 1);
    assert_eq!((counters.channels(), h.len()), (1, 1));
    // A reservation for a channel that exists is given back.
    assert!(counters.reserve_channel(2));
    assert_eq!(counters.channels(), 2);
    assert_eq!(h.publish_reserved(b"new", b"y").unwrap().msg.seq, 2);
    assert_eq!(counters.channels(), 1);
    // Reservations count against the cap.
    assert!(counters.reserve_channel(2));
    assert!(
        !counters.reserve_channel(2),
        "live + reserved reached max_channels"
    );
    assert!(h.sign(b"third", 0).is_err());
    h.publish_reserved(b"second", b"z").unwrap();
    assert_eq!((counters.channels(), h.len()), (2, 2));
}

fn broadcasts_in(hub: &Hub, cname: &str) -> Vec<u32> {
    let ring = hub.channel(cname.as_bytes()).unwrap().ring();
    ring.iter()
        .filter(|m| m.kind == MsgType::Broadcast)
        .map(|m| m.seq)
        .collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i:02}")).collect()
}

/// A hub with the signed channels `names(n)`.
fn hub_with_channels(n: usize) -> Hub {
    let mut hub = hub();
    for name in names(n) {
        hub.sign(name.as_bytes(), 0).unwrap();
    }
    hub
}

#[test]
fn a_broadcast_is_stored_a_bounded_number_of_channels_per_step_once_each() {
    let mut hub = hub_with_channels(20);
    hub.broadcast_start(b"all");
    assert!(hub.broadcasting());
    let mut steps = 1;
    while hub.broadcast_step(6) {
        steps += 1;
    }
    assert_eq!(steps, 4, "20 channels, 6 per step");
    assert_eq!(hub.take_broadcast_deliveries().0, 20);
    for n in names(20) {
        assert_eq!(broadcasts_in(&hub, &n), [1], "{n}");
    }
}

#[test]
fn an_operation_on_a_channel_the_broadcast_has_not_reached_comes_after_it() {
    let mut hub = hub_with_channels(10);
    hub.broadcast_start(b"all");
    hub.broadcast_step(2);
    // c07 is not reached yet: settled first, then the push.
    hub.broadcast_settle(b"c07");
    hub.publish(b"c07", b"after", MsgType::Data).unwrap();
    hub.broadcast_settle(b"c07");
    while hub.broadcast_step(3) {}
    let ring = hub.channel(b"c07").unwrap().ring();
    let kinds: Vec<_> = ring.iter().map(|m| (m.kind, m.seq)).collect();
    assert_eq!(kinds, [(MsgType::Broadcast, 1), (MsgType::Data, 2)]);
    for n in names(10) {
        assert_eq!(broadcasts_in(&hub, &n), [1], "{n}: once");
    }
}

#[test]
fn closes_while_a_broadcast_is_stored_neither_skip_nor_repeat_a_channel() {
    let mut hub = hub_with_channels(30);
    hub.broadcast_start(b"all");
    let mut closed = Vec::new();
    let mut more = hub.broadcast_step(4);
    while more {
        // Close the first channel still there: it has the broadcast (it was reached), and the
        // last entry, not reached yet, moves into its place.
        if let Some(n) = names(30).into_iter().find(|n| hub.exists(n.as_bytes())) {
            hub.close(n.as_bytes());
            closed.push(n);
        }
        more = hub.broadcast_step(4);
    }
    assert!(closed.len() >= 3);
    for n in names(30).iter().filter(|n| !closed.contains(n)) {
        assert_eq!(broadcasts_in(&hub, n), [1], "{n}: once");
    }
}

#[test]
fn channels_created_after_a_broadcast_started_do_not_get_it_and_a_second_waits_for_the_first() {
    let mut hub = hub_with_channels(10);
    hub.broadcast_start(b"one");
    hub.broadcast_step(3);
    hub.sign(b"late", 0).unwrap();
    hub.broadcast_start(b"two");
    while hub.broadcast_step(4) {}
    for n in names(10) {
        let contents: Vec<_> = hub
            .channel(n.as_bytes())
            .unwrap()
            .ring()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(contents, [1, 2], "{n}: both, in order");
    }
    assert_eq!(
        broadcasts_in(&hub, "late"),
        [1],
        "only the one sent after it existed"
    );
}

fn keys_of(hub: &Hub, name: &[u8]) -> Vec<u64> {
    let mut keys: Vec<u64> = hub.local_keys(name).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn the_home_keeps_its_own_subscribers_in_the_channel_record() {
    let mut hub = hub();
    let s = hub.subscribe(ask(b"own", 0, &NONE, 0)).unwrap();
    hub.add_local(&s.name, 7);
    hub.add_local(&s.name, 8);
    assert_eq!(keys_of(&hub, b"own"), vec![7, 8]);
    assert_eq!(hub.local_count(b"own"), 2);
    assert!(hub.is_local(b"own", 8));
    assert!(
        hub.elsewhere.is_empty(),
        "no second index entry for a home channel"
    );
    hub.remove_local(b"own", 7);
    hub.remove_local(b"own", 99);
    assert_eq!(keys_of(&hub, b"own"), vec![8]);
    assert_eq!(hub.local_subscribers(), 1);
}

#[test]
fn keys_of_a_channel_homed_elsewhere_are_indexed_apart() {
    let mut hub = hub();
    let name: Name = Name::from(&b"remote"[..]);
    hub.add_local(&name, 3);
    assert_eq!(keys_of(&hub, b"remote"), vec![3]);
    assert!(Name::ptr_eq(hub.elsewhere_name(b"remote").unwrap(), &name));
    // The home's copy of the name replaces this worker's; the key stays.
    let home_copy: Name = Name::from(&b"remote"[..]);
    hub.rekey_elsewhere(&home_copy);
    assert!(Name::ptr_eq(
        hub.elsewhere_name(b"remote").unwrap(),
        &home_copy
    ));
    assert_eq!(keys_of(&hub, b"remote"), vec![3]);
    hub.remove_local(b"remote", 3);
    assert_eq!(hub.local_count(b"remote"), 0);
}

#[test]
fn a_channel_created_after_its_first_key_takes_the_key() {
    let mut hub = hub();
    // The worker indexes its subscriber before its own hub's answer creates the channel.
    let name: Name = Name::from(&b"late"[..]);
    hub.add_local(&name, 5);
    hub.subscribe(ask(b"late", 0, &NONE, 0)).unwrap();
    assert!(
        hub.elsewhere.is_empty(),
        "the key moved into the new channel"
    );
    assert_eq!(keys_of(&hub, b"late"), vec![5]);
    hub.remove_local(b"late", 5);
    assert_eq!(hub.local_subscribers(), 0);
}

#[test]
fn keys_outlive_a_closed_or_expired_channel_until_removed() {
    let mut hub = hub();
    let s = hub.subscribe(ask(b"closing", 0, &NONE, 0)).unwrap();
    hub.add_local(&s.name, 1);
    hub.close(b"closing").unwrap();
    // `/close` reaches the worker's subscribers after the hub forgot the channel.
    assert_eq!(keys_of(&hub, b"closing"), vec![1]);
    hub.remove_local(b"closing", 1);
    assert_eq!(hub.local_subscribers(), 0);

    hub.sign(b"idle", 1).unwrap();
    let name = hub.name(b"idle").unwrap();
    hub.add_local(&name, 2);
    for _ in 0..3 {
        hub.tick();
    }
    assert!(
        !hub.exists(b"idle"),
        "expired: it had no registered subscriber"
    );
    assert_eq!(keys_of(&hub, b"idle"), vec![2]);
    // Created again, the channel takes the key back.
    hub.subscribe(ask(b"idle", 0, &NONE, 0)).unwrap();
    assert!(hub.elsewhere.is_empty());
    assert_eq!(keys_of(&hub, b"idle"), vec![2]);
}

/// The tick frees expired channels from the top of the table down while a broadcast is being
/// stored from the bottom up: each free moves the last entry (one the broadcast may not have
/// reached) into the hole below the broadcast's position. Every surviving channel still gets the
/// broadcast exactly once, and every expired one is freed.
#[test]
fn expiries_freed_while_a_broadcast_is_stored_neither_skip_nor_repeat_a_channel() {
    let mut hub = hub_for(1000);
    let expiring: Vec<String> = (0..20).map(|i| format!("old{i:02}")).collect();
    let kept: Vec<String> = (0..40).map(|i| format!("keep{i:02}")).collect();
    for name in &expiring {
        hub.sign(name.as_bytes(), 1).unwrap();
    }
    for name in &kept {
        hub.sign(name.as_bytes(), 100).unwrap();
    }
    hub.tick(); // countdowns 1 → 0: the expiring channels go at the next tick
    hub.broadcast_start(b"all");
    hub.broadcast_step(45);
    hub.begin_tick();
    loop {
        let ticking = hub.tick_step(8);
        let broadcasting = hub.broadcast_step(1);
        if !ticking && !broadcasting {
            break;
        }
    }
    for name in &expiring {
        assert!(!hub.exists(name.as_bytes()), "{name} expired");
    }
    for name in &kept {
        assert_eq!(broadcasts_in(&hub, name), [1], "{name}: once");
    }
}

/// A second broadcast waits behind the first instead of finishing it at once: starting it stores
/// nothing, a channel the walks have not reached gets both (in order) before an operation on it,
/// and every channel ends with both, once each, in order.
#[test]
fn a_second_broadcast_waits_behind_the_first_without_finishing_it() {
    let mut hub = hub_with_channels(10);
    hub.broadcast_start(b"one");
    hub.broadcast_step(3);
    hub.broadcast_start(b"two");
    let stored = hub.take_broadcast_deliveries().0;
    assert_eq!(stored, 3, "starting the second stored nothing");
    hub.broadcast_settle(b"c08");
    hub.publish(b"c08", b"after", MsgType::Data).unwrap();
    let kinds: Vec<_> = hub
        .channel(b"c08")
        .unwrap()
        .ring()
        .iter()
        .map(|m| (m.kind, m.seq))
        .collect();
    assert_eq!(
        kinds,
        [
            (MsgType::Broadcast, 1),
            (MsgType::Broadcast, 2),
            (MsgType::Data, 3)
        ]
    );
    let mut steps = 0;
    while hub.broadcast_step(4) {
        steps += 1;
    }
    assert!(steps >= 3, "{steps}");
    for n in names(10).iter().filter(|n| *n != "c08") {
        assert_eq!(broadcasts_in(&hub, n), [1, 2], "{n}: both, once, in order");
    }
}

/// A flood of broadcasts holds bounded state: past the waiting limit the oldest is finished at
/// once, and every channel still gets every broadcast in order.
#[test]
fn a_flood_of_broadcasts_keeps_a_bounded_queue_and_loses_none() {
    let mut hub = hub_with_channels(10);
    for i in 0..40 {
        hub.broadcast_start(format!("b{i}").as_bytes());
        assert!(
            hub.broadcast_runs.len() <= 17,
            "{}",
            hub.broadcast_runs.len()
        );
    }
    while hub.broadcast_step(7) {}
    for n in names(10) {
        let seqs = broadcasts_in(&hub, &n);
        // The ring keeps the last 10 (channel_buffer_size).
        assert_eq!(seqs, (31..=40).collect::<Vec<u32>>(), "{n}");
    }
}

/// The contents stored in a channel, in ring order.
fn contents_in(hub: &Hub, cname: &str) -> Vec<String> {
    let ring = hub.channel(cname.as_bytes()).unwrap().ring();
    ring.iter()
        .map(|m| {
            let json = String::from_utf8_lossy(&m.json).into_owned();
            let content = json.split("\"content\":\"").nth(1).unwrap_or("");
            content.split('"').next().unwrap_or("").to_string()
        })
        .collect()
}

/// A channel created between two broadcasts, given the second (settled by a push), then moved
/// by a close to where the first one's walk has not been yet: it must not get the first (which
/// was started before it existed) after the second and the push.
#[test]
fn a_channel_created_between_two_broadcasts_never_gets_the_first_even_when_moved() {
    let mut hub = hub_with_channels(4);
    hub.broadcast_start(b"M1");
    hub.broadcast_step(1);
    hub.sign(b"x", 0).unwrap();
    hub.broadcast_start(b"M2");
    hub.broadcast_settle(b"x");
    hub.publish(b"x", b"p", MsgType::Data).unwrap();
    // c01 is at index 1, where the first walk has not been yet: x (the last) moves there.
    hub.broadcast_settle(b"c01");
    hub.close(b"c01");
    while hub.broadcast_step(1) {}
    assert_eq!(contents_in(&hub, "x"), ["M2", "p"]);
    for n in ["c00", "c02", "c03"] {
        assert_eq!(contents_in(&hub, n), ["M1", "M2"], "{n}");
    }
}

/// The cap on waiting broadcasts finishes exactly the oldest, and never spins on one whose
/// channels were all removed.
#[test]
fn the_waiting_cap_finishes_only_the_oldest_and_never_spins() {
    let mut hub = hub_with_channels(10);
    hub.broadcast_start(b"b0");
    hub.broadcast_step(4);
    for i in 1..=16 {
        hub.broadcast_start(format!("b{i}").as_bytes());
    }
    assert_eq!(hub.broadcast_runs.len(), 17);
    hub.broadcast_start(b"b17");
    assert_eq!(hub.broadcast_runs.len(), 17, "the oldest was finished");
    assert_eq!(
        hub.broadcast_runs.front().map(|r| r.next),
        Some(0),
        "the next not begun"
    );
    assert_eq!(contents_in(&hub, "c09"), ["b0"]);

    // On its own thread, so that a cap that spins fails this test instead of hanging the suite.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut one = hub_with_channels(1);
        for i in 0..17 {
            one.broadcast_start(format!("b{i}").as_bytes());
        }
        one.close(b"c00");
        one.sign(b"again", 0).unwrap();
        one.broadcast_start(b"last"); // every waiting run's end is 0 now: popped, not stepped
        while one.broadcast_step(8) {}
        let _ = done.send(contents_in(&one, "again"));
    });
    let got = finished.recv_timeout(std::time::Duration::from_secs(20));
    assert_eq!(
        got.ok(),
        Some(vec!["last".to_string()]),
        "the cap spun or failed"
    );
}

/// A model check of broadcasts "as if stored everywhere at once", under everything that moves
/// channels around: several broadcasts queued, steps of both walks with small budgets, pushes
/// (settled first, as the worker does), closes, creations, re-creations and expiries freed by
/// the tick. Each surviving channel's ring must hold exactly the broadcasts started after its
/// creation and its own pushes, in the order they happened.
#[test]
fn broadcasts_keep_their_order_whatever_moves_the_channels() {
    let mut hub = hub_with(HubConfig {
        max_channels: 1000,
        channel_buffer_size: 1000,
        ..config()
    });
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % n
    };
    // What each live channel must hold, in order.
    let mut expected: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut broadcasts = 0;
    let mut pushes = 0;
    for _ in 0..4000 {
        let name = format!("ch{}", next(40));
        match next(100) {
            0..=14 => {
                let expires = if next(2) == 0 { 1 } else { 100 };
                if !hub.exists(name.as_bytes()) {
                    expected.insert(name.clone(), Vec::new());
                }
                hub.broadcast_settle(name.as_bytes());
                hub.sign(name.as_bytes(), expires).unwrap();
            }
            15..=19 => {
                let content = format!("B{broadcasts}");
                broadcasts += 1;
                hub.broadcast_start(content.as_bytes());
                for ring in expected.values_mut() {
                    ring.push(content.clone());
                }
            }
            20..=39 => {
                hub.broadcast_step(1 + next(4) as usize);
            }
            40..=59 if hub.exists(name.as_bytes()) => {
                let content = format!("p{pushes}");
                pushes += 1;
                hub.broadcast_settle(name.as_bytes());
                hub.publish(name.as_bytes(), content.as_bytes(), MsgType::Data)
                    .unwrap();
                expected.get_mut(&name).unwrap().push(content);
            }
            60..=69 => {
                if hub.close(name.as_bytes()).is_some() {
                    expected.remove(&name);
                }
            }
            70..=74 => hub.begin_tick(),
            _ => {
                hub.tick_step(1 + next(6) as usize);
            }
        }
        // Channels the tick freed.
        expected.retain(|name, _| hub.exists(name.as_bytes()));
    }
    while hub.broadcast_step(5) {}
    assert!(broadcasts > 100 && pushes > 200, "{broadcasts} {pushes}");
    assert!(expected.len() > 5, "{}", expected.len());
    for (name, want) in &expected {
        assert_eq!(&contents_in(&hub, name), want, "{name}");
    }
}
