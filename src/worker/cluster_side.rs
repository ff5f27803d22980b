//! A worker's cluster-mode state (`Worker::cluster`; see `cluster` for what is done with it):
//! the requests of this turn, admin requests waiting for Redis, parked subscriptions, mirrors
//! whose state was asked for again, whether the node wants every subscriber count again.
//!
//! Depends on: worker (SubscribeMsg), cluster (Handle, Request), api (HomeRequest), engine (Token).

use super::msg::SubscribeMsg;
use crate::api::HomeRequest;
use crate::cluster::{Handle, Request};
use crate::comet::name::Name;
use crate::engine::Token;
use std::collections::{HashMap, HashSet};

/// A worker's cluster state.
pub struct ClusterSide {
    pub(super) handle: Handle,
    /// Requests of this turn, sent at its end in one batch.
    pub(super) out: Vec<Request>,
    /// Admin requests waiting for Redis: ticket → connection, reply number, request.
    pub(super) tickets: HashMap<u64, (Token, u32, Box<HomeRequest>)>,
    pub(super) next_ticket: u64,
    /// Subscriptions waiting for their channel's mirror, with the second the first came.
    pub(super) parked: HashMap<Name, (u64, Vec<SubscribeMsg>)>,
    /// The node asked for every subscriber count (Redis lost what was reported): the next
    /// report is the whole list, not the changes.
    pub(super) counts_wanted: bool,
    /// Mirrors that missed a message and asked for the state again (`Request::Resync`), until
    /// it comes: one request per gap, however many later messages show it.
    pub(super) resyncing: HashSet<Name>,
}

impl ClusterSide {
    pub fn new(handle: Handle) -> ClusterSide {
        ClusterSide {
            handle,
            out: Vec::new(),
            tickets: HashMap::new(),
            next_ticket: 0,
            parked: HashMap::new(),
            counts_wanted: true,
            resyncing: HashSet::new(),
        }
    }
}
