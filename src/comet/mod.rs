//! comet: pure per-core pub/sub state and message encoding. No I/O, no HTTP, no sockets, no
//! threads: the worker calls these and moves the results between cores and onto sockets.
//! Depends on std, `getrandom`, `itoa` and `crc32fast` only (never on the layers above).
//!
//! Model: each channel has a HOME worker (`route::home_worker`) whose `hub::Hub` holds the
//! authoritative state (seq, ring, token, countdown, subscriber count, workers with
//! subscribers). Subscribers live with their channel's home (or, for big channels, on the
//! workers that accepted them), indexed per worker by its hub: inside the channel's record for
//! the home's own subscribers (`keys::Keys`), in a `local::LocalSubs` for channels homed
//! elsewhere. A push goes to the home, which assigns the seq, encodes the message once
//! (`message`) and reports the workers to notify; each fans out locally with the shared bytes.

pub mod auth;
pub mod channel;
pub mod escape;
pub mod hub;
pub mod keys;
pub mod local;
pub mod message;
pub mod name;
pub mod ring;
pub mod route;
pub mod seq;
pub mod snapshot;
pub mod table;

pub use channel::{CatchUp, Channel, Resume};
pub use hub::{
    Closed, Counters, Hub, HubConfig, Presence, Published, SignReply, SubscribeError, Subscribed,
    TooManyChannels,
};
pub use local::LocalSubs;
pub use message::{Message, MsgType};
pub use name::Name;
pub use ring::Ring;
pub use route::home_worker;
pub use seq::seq_before;

#[cfg(test)]
mod memory_tests;
