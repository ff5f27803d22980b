//! The state of a hub's tick being walked (see `hub::tick_walk`, which does the walking).
//! Depends on `comet::name` and std.

use crate::comet::name::Name;
use std::collections::HashSet;

/// A tick being walked.
#[derive(Debug)]
pub struct TickWalk {
    /// The entries below this index are still to be visited.
    pub(super) below: usize,
    /// Entries below `below` that were visited already (moved there by a removal).
    pub(super) skip: HashSet<Name>,
    /// Ticks that began while this one was being walked; each is walked after it.
    pub(super) behind: u32,
}
