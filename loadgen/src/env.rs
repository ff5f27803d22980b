//! What a connection handler may touch besides its own connection: the plan, the counters, the
//! clock reading of this loop turn, a request-building buffer and the queue of finished /sign
//! calls; and what it asks the event loop to do next. Depends on plan, stats.

use crate::plan::Plan;
use crate::stats::{ErrorKind, Stats};

/// A finished /sign call for the subscriber in `slot` (with generation `gen`).
#[derive(Debug)]
pub struct SignDone {
    pub slot: u32,
    pub gen: u32,
    pub token: Result<Box<[u8]>, ErrorKind>,
}

/// Context handed to connection handlers for one batch of events.
pub struct Env<'a> {
    pub plan: &'a Plan,
    pub stats: &'a mut Stats,
    pub now: u64,
    /// The measurement phase is running (deliveries count, ping keeps sending).
    pub measuring: bool,
    /// Scratch space for building requests.
    pub req: &'a mut Vec<u8>,
    pub signed: &'a mut Vec<SignDone>,
    /// Connections of the initial ramp not yet held or failed.
    pub ramp_pending: &'a mut u64,
}

/// What the event loop does with a connection after a handler ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Keep,
    /// Close; count the error if any.
    Close(Option<ErrorKind>),
    /// The server ended the connection cleanly: open a new one for the same slot.
    Reconnect,
}

/// Owns everything an [`Env`] borrows, so handler tests can build one in a line.
#[cfg(test)]
#[derive(Default)]
pub struct EnvParts {
    pub stats: Stats,
    pub req: Vec<u8>,
    pub signed: Vec<SignDone>,
    pub ramp_pending: u64,
}

#[cfg(test)]
impl EnvParts {
    /// A measuring context at time `now`.
    pub fn env<'a>(&'a mut self, plan: &'a Plan, now: u64) -> Env<'a> {
        Env {
            plan,
            stats: &mut self.stats,
            now,
            measuring: true,
            req: &mut self.req,
            signed: &mut self.signed,
            ramp_pending: &mut self.ramp_pending,
        }
    }
}
