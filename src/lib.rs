//! rcomet: a comet/push server built for a million concurrent connections, drop-in compatible with
//! iComet. Data flows one way: socket → engine → worker → http → api → comet, and back.
//! Lower layers never import higher ones; `worker` is the only module that sees every layer.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod api;
pub mod cluster;
pub mod comet;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod http;
pub mod logging;
pub mod memory;
pub mod notify;
pub mod server;
pub mod slab;
pub mod worker;
pub mod ws;
