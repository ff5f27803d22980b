//! comet: pure per-core pub/sub state and message encoding. No I/O, no HTTP, no sockets, no
//! threads. Depends on std and `getrandom` only (never on the layers above).

pub mod channel;
pub mod escape;
pub mod message;
pub mod ring;
pub mod seq;
pub mod table;
pub mod token;
