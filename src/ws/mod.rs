//! Sans-IO WebSocket (RFC 6455), server side: bytes in, typed results and bytes out. No sockets,
//! no timers, no extensions (`permessage-deflate` is never negotiated), no subprotocols.
//!
//! * [`handshake`]: validating an upgrade request ([`check`]) and writing the `101` head
//!   ([`write_101`]).
//! * [`decode`]: reading client frames one at a time ([`Reader::next`]), unmasking, reassembling
//!   fragmented messages, validating UTF-8 and close codes.
//! * [`frame`]: encoding server frames (heads, Close, Ping, Pong), never masked.
//! * [`close`]: close codes and which ones a client may send.
//!
//! Depends only on `std`, `sha1_smol` and `base64`; imports nothing of the crate. Nothing here
//! allocates on the common path (a message's payload goes into the caller's reusable buffer), and
//! nothing here may panic or read out of bounds on client bytes: indexing and slicing are denied
//! by lint in this module tree (tests excepted).
//!
//! # What the worker does with each [`Step`]
//!
//! The worker keeps the bytes `next` has not consumed in the connection's input buffer and calls
//! `next` again while it returns `Frame`. A frame is consumed only when complete, so the input
//! holds at most one frame: `max_message_bytes` plus a 14-byte head (a control frame: 131 bytes).
//!
//! * `Need`: wait for more input.
//! * `Frame { event, used }`: drop `used` bytes from the input, then by `event`:
//!   `Text` / `Binary`: the message is `assembled` (valid UTF-8 for `Text`); `Fragment`: nothing;
//!   `Ping(p)`: queue [`frame::pong`] with `p`; `Pong`: nothing; `Close { code }`: queue a Close
//!   echoing `code` ([`frame::close`] with an empty reason, or [`frame::close_empty`]), stop
//!   reading, close the connection once it is sent.
//! * `Fail(code)`: queue [`frame::close`] with `code`, stop reading, close once it is sent.
#![deny(clippy::indexing_slicing)]

pub mod close;
pub mod decode;
pub mod frame;
pub mod handshake;

pub use close::CloseCode;
pub use decode::{Control, Event, Limits, Reader, Step};
pub use frame::{Head, Opcode};
pub use handshake::{check, write_101, Accept, HandshakeError};
