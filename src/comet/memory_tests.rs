//! Memory budget of the per-channel state: a hub holding 100,000 channels, each signed (token
//! generated) and with one subscriber of its own worker in its index, must cost under 160 bytes
//! per channel + subscriber, counting struct sizes and every heap allocation they own (estimated
//! with allocator rounding; see `table::alloc_estimate`).

use std::mem::size_of;

use super::auth::Credential;
use super::channel::Channel;
use super::hub::{Ask, Counters, Hub, HubConfig};
use super::message::MsgType;

const CHANNELS: usize = 100_000;

fn config() -> HubConfig {
    HubConfig {
        max_channels: CHANNELS * 2,
        max_subscribers_per_channel: 16,
        channel_buffer_size: 10,
        channel_timeout: 30,
        polling_timeout: 30,
        auth_token: true,
    }
}

#[test]
fn channel_size_is_pinned() {
    assert_eq!(size_of::<Channel>(), 56);
}

#[test]
fn hundred_thousand_idle_subscribers_fit_the_budget() {
    let mut hub = Hub::new(config(), Counters::new());
    for i in 0..CHANNELS {
        let cname = format!("channel-{i:06}");
        let token = hub.sign(cname.as_bytes(), 0).unwrap().token_hex;
        let sub = hub
            .subscribe(Ask {
                cname: cname.as_bytes(),
                seq: 0,
                credential: &Credential::Signed(token.to_vec()),
                worker: 1,
                long_poll: false,
                resume: None,
            })
            .unwrap();
        hub.add_local(&sub.name, i as u64);
    }
    // Nothing else should be holding memory for idle channels.
    hub.set_presence(false);
    assert_eq!(hub.len(), CHANNELS);
    assert_eq!(hub.local_subscribers(), CHANNELS);
    assert_eq!(hub.counters().subscribers(), CHANNELS);

    let hub_bytes = size_of::<Hub>() + hub.heap_bytes();
    let per_channel = hub_bytes as f64 / CHANNELS as f64;
    eprintln!("{per_channel:.1} bytes per channel + subscriber (hub {hub_bytes})");
    assert!(
        per_channel < 160.0,
        "{per_channel:.1} bytes per channel + subscriber (hub {hub_bytes})"
    );

    // A message makes one channel's ring exist; the others still cost nothing for theirs.
    let before = hub.heap_bytes();
    hub.publish(b"channel-000001", b"x", MsgType::Data).unwrap();
    let ring_bytes = hub.heap_bytes() - before;
    assert!(ring_bytes > 0 && ring_bytes < 256, "{ring_bytes}");
}
