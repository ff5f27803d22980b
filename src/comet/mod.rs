//! comet: pure per-core pub/sub state and message encoding. No I/O, no HTTP, no sockets, no
//! threads. Depends on std only (never on the layers above).

pub mod escape;
pub mod message;
pub mod seq;
