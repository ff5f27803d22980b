//! Per-connection memory: the fixed-size slot every connection lives in, and the slab holding them.
//!
//! Depends on: std only (the worker fills the slot type in `worker::conn`).

pub mod slab;

pub use slab::Slab;
