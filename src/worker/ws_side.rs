//! What a worker keeps for its WebSocket connections beyond their slots, by token: fragmented
//! client messages in progress, and the channels after a connection's first. Plain data; the
//! code that uses it is in `worker::ws` and `worker::ws_channels`.
//!
//! Depends on: ws (the decoder's state), api (subscriptions).

use crate::api::subscribe::Subscription;
use crate::ws::decode::Reader;
use std::collections::HashMap;

/// A fragmented client message in progress: the decoder's state and the fragments so far.
#[derive(Debug, Default)]
pub struct Partial {
    pub reader: Reader,
    pub assembled: Vec<u8>,
}

/// Channels beyond the first, per WebSocket connection (by token).
pub type Extra = HashMap<u64, Vec<Subscription>>;

/// The side table of one worker.
#[derive(Debug, Default)]
pub struct WsSide {
    pub partial: HashMap<u64, Partial>,
    pub channels: Extra,
}
