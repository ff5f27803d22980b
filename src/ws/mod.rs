//! Sans-IO WebSocket (RFC 6455), server side: bytes in, typed results and bytes out. No sockets,
//! no timers, no extensions (`permessage-deflate` is never negotiated), no subprotocols.
//!
//! * [`handshake`]: validating an upgrade request ([`check`]) and writing the `101` head
//!   ([`write_101`]).
//! * [`frame`]: encoding server frames (heads, Close, Ping, Pong), never masked.
//! * [`close`]: close codes and which ones a client may send.
//!
//! Depends only on `std`, `sha1_smol` and `base64`; imports nothing of the crate. Nothing here
//! allocates on the common path, and nothing here may panic or read out of bounds on client bytes:
//! indexing and slicing are denied by lint in this module tree (tests excepted).
#![deny(clippy::indexing_slicing)]

pub mod close;
pub mod frame;
pub mod handshake;

pub use close::CloseCode;
pub use frame::{Head, Opcode};
pub use handshake::{check, write_101, Accept, HandshakeError};
