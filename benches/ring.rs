//! The per-channel ring of the last B = 10 messages (`channel_buffer_size` 10, the default):
//! pushing into a full ring (drops the oldest), and a subscriber's catch-up from a seq older than
//! anything stored (`Channel::catch_up`, which replays all 10), on a channel filled through the
//! home hub as `/push` fills it.

use std::sync::Arc;

use divan::{black_box, Bencher};
use rcomet::comet::{CatchUp, Counters, Hub, HubConfig, Message, MsgType, Ring};

fn main() {
    divan::main();
}

const B: usize = 10;
const CNAME: &[u8] = b"channel-42";
const CONTENT: &[u8] =
    b"hello world, this is a chat message of about one hundred bytes, give or take a few more";

#[divan::bench]
fn push_into_full_ring(bencher: Bencher) {
    let template = Message::new(MsgType::Data, CNAME, 1, CONTENT);
    let mut ring = Ring::new();
    for seq in 1..=B as u32 {
        ring.push(Message::new(MsgType::Data, CNAME, seq, CONTENT), B);
    }
    assert_eq!(ring.len(), B);
    let mut seq = B as u32;
    bencher.bench_local(|| {
        seq += 1;
        let msg = Message {
            seq,
            kind: MsgType::Data,
            json: Arc::clone(&template.json),
        };
        ring.push(black_box(msg), B);
    });
    assert_eq!(ring.len(), B);
}

#[divan::bench]
fn catch_up_from_old_seq(bencher: Bencher) {
    let config = HubConfig {
        max_channels: 1_000,
        max_subscribers_per_channel: 100_000,
        channel_buffer_size: B as u32,
        channel_timeout: 30,
        polling_timeout: 30,
        auth_token: false,
    };
    let mut hub = Hub::new(config, Counters::new());
    // 25 pushes: the ring holds seqs 16..=25, so seq 3 is older than anything stored.
    for _ in 0..25 {
        hub.publish(CNAME, CONTENT, MsgType::Data).expect("publish");
    }
    let channel = hub.channel(CNAME).expect("channel");
    match channel.catch_up(3) {
        CatchUp::Replay(msgs) => assert_eq!(msgs.len(), B),
        other => panic!("expected a replay, got {other:?}"),
    }
    bencher.bench(|| channel.catch_up(black_box(3)));
}
