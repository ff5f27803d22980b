//! Messages between workers. A channel's operations run on its home worker; replies and
//! deliveries go back to the workers holding the connections. Mail travels in batches (one per
//! destination per loop turn, see `mailbox::Post`), and mailboxes are FIFO per sender, which is
//! what keeps every subscriber's messages in seq order.
//!
//! Depends on: engine (Token), comet (messages, subscription results), api (admin requests),
//! cluster (its events).

use crate::api::{HomeRequest, SubscribeRequest};
use crate::comet::auth::Credential;
use crate::comet::hub::{SubscribeError, Subscribed};
use crate::comet::message::Message;
use crate::comet::name::Name;
use crate::engine::Token;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// What one worker sends another in one turn.
pub type Batch = Vec<Msg>;

#[derive(Debug)]
pub enum Msg {
    /// To every worker: the configuration read again by a reload (keys fixed at start keep
    /// their running values).
    Reload(Arc<crate::config::Config>),
    /// To a channel's home: register a subscriber of worker `from`.
    Subscribe(Box<SubscribeMsg>),
    /// To the subscriber's worker: the outcome of `Subscribe`.
    Subscribed {
        token: Token,
        name: Name,
        result: Result<Subscribed, SubscribeError>,
    },
    /// To a channel's home: `count` subscribers of worker `from` left; `none_left` when that worker
    /// has no subscriber of the channel any more.
    Unsubscribe {
        from: usize,
        name: Name,
        epoch: u32,
        count: u32,
        none_left: bool,
    },
    /// To a channel's home: run an admin operation and send reply number `number` to `from`.
    Home {
        from: usize,
        token: Token,
        number: u32,
        request: Box<HomeRequest>,
    },
    /// To the admin connection's worker: the reply bytes of its request `number`.
    HomeReply {
        token: Token,
        number: u32,
        reply: Vec<u8>,
    },
    /// To a channel's home: publish `content`; the publisher was already answered, and the
    /// channel's creation, if it must be created, was reserved.
    Publish { cname: Vec<u8>, content: Vec<u8> },
    /// To every worker with subscribers of the channel: a new message (encoded once, shared).
    /// `first`, when the channel has subscribers on several workers: its frame written once for
    /// all of them (`frame_batch::FirstFrame`).
    Deliver {
        name: Name,
        msg: Message,
        first: Option<Arc<super::frame_batch::FirstFrame>>,
        /// The channel's incarnation (only its subscriptions get the message; `None`: any).
        epoch: Option<u32>,
    },
    /// To every worker with subscribers of the channel: incarnation `epoch` of the channel was
    /// closed (`None`: whichever its subscriptions have).
    Closed {
        name: Name,
        json: Arc<[u8]>,
        epoch: Option<u32>,
    },
    /// To every worker: broadcast this content on every channel you are home of.
    Broadcast { content: Arc<[u8]> },
    /// To every worker with /psub clients: presence lines (`1 name\n` / `0 name\n`), all the
    /// events of one turn of the sender, in order, and the same events as HTTP/1.1 chunks, one
    /// per event.
    Presence { lines: Arc<[u8]>, chunks: Arc<[u8]> },
    /// To a channel's home: take over this subscriber's connection (see `handoff`).
    Adopt(Box<Adoption>),
    /// To a worker that handed a subscriber over: the channel has many subscribers on its home
    /// already; keep its next subscribers where they are, so its fan-out is spread over workers.
    Spread { name: Name },
    /// Cluster mode, from the cluster thread: what Redis answered or published.
    Cluster(Vec<crate::cluster::Event>),
    /// Cluster mode, to every worker with subscribers of the channel: delivery jumps to `seq`
    /// of incarnation `epoch` (history lost while Redis was away, or Redis came back empty).
    Gap { name: Name, seq: u32, epoch: u32 },
    /// Stop accepting, finish, exit.
    Shutdown,
}

/// A subscriber's connection on its way to its channel's home.
#[derive(Debug)]
pub struct Adoption {
    /// The worker that handed it over.
    pub from: usize,
    /// The socket (closed if the message is dropped).
    pub socket: OwnedFd,
    /// The connection's flags (HTTP version, keep-alive, peer closed).
    pub flags: u16,
    /// Bytes that arrived after the subscription request.
    pub inbuf: Option<Box<super::conn::InBuf>>,
    /// The subscription it asked for.
    pub request: SubscribeRequest,
}

/// A hand-over this worker takes, waiting for its backend to register the socket.
pub struct Arriving {
    pub from: usize,
    pub flags: u16,
    pub inbuf: Option<Box<super::conn::InBuf>>,
    pub request: SubscribeRequest,
}

/// A subscription request travelling to the channel's home.
#[derive(Debug)]
pub struct SubscribeMsg {
    pub from: usize,
    pub token: Token,
    pub name: Name,
    pub seq: u32,
    pub credential: Credential,
    /// Long-poll: register only when there is nothing to send at once.
    pub long_poll: bool,
    /// A resumable subscription (see `comet::Resume`).
    pub resume: Option<crate::comet::Resume>,
}
