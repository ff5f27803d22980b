//! Sans-IO HTTP/1.1: bytes in, typed results and bytes out. No sockets, no channels, no timers.
//!
//! * [`request`]: incremental, bounded request parsing on top of `httparse` ([`parse`]).
//! * [`resume`]: the same answers for a buffer that grows, without re-reading a partial head
//!   ([`parse_resuming`] with a [`HeadScan`]).
//! * [`limits`]: the size limits, rejection type and byte helpers `request` and `chunked` share.
//! * [`chunked`]: decoding of chunked request bodies (used by `request`).
//! * [`query`]: iComet-style query / form parameters and percent-decoding.
//! * [`response`]: writers for status lines, headers, framing and the libevent-style error pages.
//! * [`date`]: the cached RFC 1123 `Date` value.
//!
//! Depends only on `std`, `httparse`, `itoa`, `httpdate` and `libc` (the coarse clock, in `date`). Nothing here allocates on the common path, and
//! nothing here may panic or read out of bounds on client bytes: indexing and slicing are denied by
//! lint in this module tree (tests excepted).
#![deny(clippy::indexing_slicing)]

pub mod chunked;
pub mod date;
pub mod limits;
pub mod query;
pub mod request;
pub mod response;
pub mod resume;

pub use date::DateCache;
pub use limits::{HttpLimits, Reject};
pub use query::{percent_decode, Params};
pub use request::{parse, Method, Parsed, Request, Version};
pub use resume::{parse_resuming, HeadScan};
