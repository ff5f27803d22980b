//! The operations a channel's home holds back while the channel's fan-out is behind (`hold`
//! decides and releases them), in arrival order, with how many each channel has.
//!
//! Depends on: worker (ChannelQueue), engine (Token), api (HomeRequest).

use super::channel_queue::{ChannelQueue, OfChannel};
use crate::api::{HomeOp, HomeRequest};
use crate::engine::Token;

/// One held operation.
pub(super) enum HeldOp {
    /// A publish whose publisher was answered on its own worker (`Msg::Publish`); it still counts
    /// against that worker's `limits.publish_ahead` window, which is what slows the publisher.
    Publish { cname: Vec<u8>, content: Vec<u8> },
    /// An admin operation whose reply `number` goes to connection `token` of worker `from` (this
    /// worker too: a publisher on the home waits for its reply like one elsewhere).
    Home {
        from: usize,
        token: Token,
        number: u32,
        request: Box<HomeRequest>,
    },
}

impl HeldOp {
    /// Whether running it adds a message to the channel's fan-out.
    pub(super) fn publishes(&self) -> bool {
        match self {
            HeldOp::Publish { .. } => true,
            HeldOp::Home { request, .. } => matches!(request.op, HomeOp::Publish { .. }),
        }
    }
}

impl OfChannel for HeldOp {
    fn channel(&self) -> &[u8] {
        match self {
            HeldOp::Publish { cname, .. } => cname,
            HeldOp::Home { request, .. } => &request.cname,
        }
    }
}

/// The held operations in arrival order, and how many of them each channel has.
pub(super) type HeldOps = ChannelQueue<HeldOp>;

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(cname: &str) -> HeldOp {
        HeldOp::Publish {
            cname: cname.as_bytes().to_vec(),
            content: b"x".to_vec(),
        }
    }

    #[test]
    fn held_operations_leave_in_order_and_free_their_channel() {
        let mut held = HeldOps::default();
        assert!(held.is_empty() && !held.holds(b"a"));
        held.push(publish("a"));
        held.push(publish("b"));
        held.push(publish("a"));
        assert!(held.holds(b"a") && held.holds(b"b") && !held.holds(b"c"));
        assert!(held
            .front()
            .is_some_and(|op| op.channel() == b"a" && op.publishes()));
        let first = held.pop().map(|op| op.channel().to_vec());
        assert_eq!(first.as_deref(), Some(&b"a"[..]));
        assert!(held.holds(b"a"), "one more of a is held");
        assert_eq!(
            held.pop().map(|op| op.channel().to_vec()),
            Some(b"b".to_vec())
        );
        assert!(!held.holds(b"b"));
        assert_eq!(
            held.pop().map(|op| op.channel().to_vec()),
            Some(b"a".to_vec())
        );
        assert!(held.is_empty() && !held.holds(b"a") && held.pop().is_none());
    }
}
