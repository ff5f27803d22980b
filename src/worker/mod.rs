//! The per-core loop (in progress).
pub mod mailbox;
pub mod timer;
