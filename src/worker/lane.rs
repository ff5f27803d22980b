//! The fan-out lane's state (`fanout_lane` carries it out): deliveries, closes and cluster gaps
//! of big channels waiting in arrival order, how far the first one got, and how many of them
//! each channel has.
//!
//! Depends on: worker (ChannelQueue, FirstFrame), comet (Name, Message).

use super::channel_queue::{ChannelQueue, OfChannel};
use super::frame_batch::FirstFrame;
use crate::comet::message::Message;
use crate::comet::name::Name;
use std::sync::Arc;

/// What waits in the lane, in arrival order.
pub(super) enum Item {
    Deliver(Box<Fanout>),
    Closed(Box<Closing>),
    Gap(Box<Gapping>),
}

impl Item {
    pub(super) fn name(&self) -> &Name {
        match self {
            Item::Deliver(f) => &f.name,
            Item::Closed(c) => &c.name,
            Item::Gap(g) => &g.name,
        }
    }

    /// How far the lane got over the channel's subscribers.
    pub(super) fn progress_mut(&mut self) -> &mut Progress {
        match self {
            Item::Deliver(f) => &mut f.progress,
            Item::Closed(c) => &mut c.progress,
            Item::Gap(g) => &mut g.progress,
        }
    }
}

/// An item carried out over the channel's subscribers a part per turn.
#[derive(Default)]
pub(super) struct Progress {
    /// The channel's subscribers here when the lane started the item (`None`: not yet).
    pub(super) keys: Option<Vec<u64>>,
    /// Subscribers of `keys` done so far.
    pub(super) at: usize,
}

/// Incarnation `epoch` of a channel was closed (`Msg::Closed`): each of its subscribers here
/// gets `json` and its response ends.
pub(super) struct Closing {
    pub(super) name: Name,
    pub(super) json: Arc<[u8]>,
    pub(super) epoch: Option<u32>,
    pub(super) progress: Progress,
}

/// Cluster mode: delivery of a channel jumps to `seq` of incarnation `epoch` (`Msg::Gap`): each
/// of its subscribers here is told (`reset` or `next_seq`), a long-poll ends with it.
pub(super) struct Gapping {
    pub(super) name: Name,
    pub(super) seq: u32,
    pub(super) epoch: u32,
    pub(super) progress: Progress,
}

/// One message's fan-out to this worker's subscribers, carried out over one or more turns.
pub(super) struct Fanout {
    pub(super) name: Name,
    pub(super) msg: Message,
    pub(super) first: Option<Arc<FirstFrame>>,
    /// The channel's incarnation the message was published in (`None`: any).
    pub(super) epoch: Option<u32>,
    pub(super) progress: Progress,
    pub(super) ended: Ended,
}

/// Long-polls a fan-out ended, for the one unsubscribe message that covers them.
#[derive(Default)]
pub(super) struct Ended {
    pub(super) registered: u32,
    pub(super) epoch: u32,
}

impl OfChannel for Item {
    fn channel(&self) -> &[u8] {
        self.name()
    }
}

/// The lane: its items in arrival order, and how many of them each channel has.
pub(super) type FanoutLane = ChannelQueue<Item>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comet::message::MsgType;

    fn delivery(name: &str, seq: u32) -> Item {
        Item::Deliver(Box::new(Fanout {
            name: Name::from(name),
            msg: Message::new(MsgType::Data, name.as_bytes(), seq, b"x"),
            first: None,
            epoch: Some(1),
            progress: Progress::default(),
            ended: Ended::default(),
        }))
    }

    #[test]
    fn the_lane_counts_each_channels_items_until_they_leave() {
        let mut lane = FanoutLane::default();
        assert!(lane.is_empty() && !lane.holds(b"a") && lane.depth(b"a") == 0);
        lane.push(delivery("a", 1));
        lane.push(delivery("b", 1));
        lane.push(delivery("a", 2));
        let json: Arc<[u8]> = Arc::from(&b"{}"[..]);
        let (name, epoch, progress) = (Name::from("a"), Some(1), Progress::default());
        lane.push(Item::Closed(Box::new(Closing {
            name,
            json,
            epoch,
            progress,
        })));
        assert_eq!((lane.len(), lane.depth(b"a"), lane.depth(b"b")), (4, 3, 1));
        let mut order = Vec::new();
        while let Some(item) = lane.pop() {
            let seq = match &item {
                Item::Deliver(f) => f.msg.seq,
                _ => 0,
            };
            order.push((item.name().to_vec(), seq));
            if order.len() == 2 {
                assert!(!lane.holds(b"b"), "b left with its only item");
                assert_eq!(lane.depth(b"a"), 2);
            }
        }
        let a = b"a".to_vec();
        let b = b"b".to_vec();
        assert_eq!(order, [(a.clone(), 1), (b, 1), (a.clone(), 2), (a, 0)]);
        assert!(lane.is_empty() && !lane.holds(b"a") && lane.depth(b"a") == 0);
    }
}
