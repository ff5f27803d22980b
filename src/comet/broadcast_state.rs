//! The state of a `/broadcast` being stored channel by channel (see `hub::broadcast_run`, which
//! does the storing). Depends on `comet::message` and std.

use crate::comet::name::Name;
use std::collections::HashSet;

use crate::comet::message::Message;

/// A broadcast being stored.
#[derive(Debug)]
pub struct BroadcastRun {
    pub(super) content: Box<[u8]>,
    /// The entries below this index have it.
    pub(super) next: usize,
    /// The entries from this index on were created after it started.
    pub(super) end: usize,
    /// Entries at or above `next` that have it already.
    pub(super) ahead: HashSet<Name>,
}

/// What a broadcast stored since the last `take_broadcast_deliveries`.
#[derive(Debug, Default)]
pub struct BroadcastOut {
    /// Channels it was stored in.
    pub(super) stored: u64,
    /// The stored messages of channels with subscribers (name, message, workers with
    /// subscribers), in the order stored.
    /// (channel, message, workers with subscribers, the channel's epoch).
    pub(super) deliveries: Vec<(Name, Message, u64, Option<u32>)>,
}
