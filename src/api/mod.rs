//! iComet-compatible glue: an HTTP request in, response bytes and an [`Outcome`] out. The worker
//! carries the outcome out (subscriptions and channel operations run on the channel's home core).
//!
//! Depends on: http, comet (escaping, messages), config. Never on worker or engine.

pub mod admin;
pub mod cors;
pub mod frame;
pub mod front;
pub mod home;
pub mod json;
pub mod metrics;
pub mod params;
pub mod reply;
pub mod short_bytes;
pub mod subscribe;
pub mod websocket;
pub mod ws_command;

use crate::comet::auth::{Credential, StatelessKey};
use crate::comet::Resume;
use crate::config::Config;
use crate::http::Version;
use cors::{CorsHeads, CorsOrigin};
use frame::Transport;
use std::sync::Arc;

/// What a handler needs to know beyond the request.
pub struct Ctx<'a> {
    pub config: &'a Config,
    /// The current `Date` header value.
    pub date: &'a [u8],
    /// The same moment in Unix seconds (stateless token expiry).
    pub now: u64,
    /// The key of stateless tokens (`auth: token` with `front.auth_secret`).
    pub stateless: Option<&'a StatelessKey>,
    /// The admin allow/deny list accepted this connection's address.
    pub admin_allowed: bool,
    /// Live channels and subscribers over all workers (for `/info`).
    pub channels: usize,
    pub subscribers: usize,
    /// Cluster mode: `/info` totals and `/broadcast` are answered by Redis (`HomeOp::Totals`,
    /// `HomeOp::Broadcast`).
    pub cluster: bool,
    /// Process-wide counters for `/stats`.
    pub metrics: &'a dyn Metrics,
    /// The front port's CORS lines (from the configuration).
    pub cors: &'a CorsHeads,
}

/// Something that can describe the server's counters: as one JSON object (`/stats`) and as
/// the numbers of a Prometheus scrape (`/metrics`).
pub trait Metrics {
    fn write_json(&self, out: &mut Vec<u8>);
    fn snapshot(&self) -> metrics::Snapshot;
}

/// How a reply must be framed for the request it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyStyle {
    pub version: Version,
    pub keep_alive: bool,
    /// The request's `Connection` header said `close`: the reply ends with `Connection: close`
    /// (HTTP/1.0 too) instead of any Connection header of the handler.
    pub asks_close: bool,
    /// HEAD: headers only.
    pub head_only: bool,
}

/// What the worker must do after a handler wrote its bytes (if any) into the output buffer.
#[derive(Debug)]
pub enum Outcome {
    /// The response is complete. `close`: close the connection after sending it.
    Done { close: bool },
    /// Open a subscription on the channel's home core.
    Subscribe(SubscribeRequest),
    /// Run a channel operation on the channel's home core and send its reply.
    Home(HomeRequest),
    /// The reply was written; deliver a broadcast on every core.
    Broadcast { content: Arc<[u8]>, close: bool },
    /// The /psub head was written; the connection now receives presence events.
    Presence,
    /// The `/stats/stream` head and first event were written; the connection now gets one
    /// stats event a second.
    StatsStream,
}

/// A subscription asked for on the front port.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    pub transport: Transport,
    pub cname: Vec<u8>,
    pub seq: u32,
    pub noop: u32,
    /// JSONP callback (long-poll only).
    pub callback: Option<Vec<u8>>,
    /// What the subscriber presented (`token=`): a `/sign` token, or the verdict on a stateless
    /// one (checked here, on the worker the request arrived at).
    pub credential: Credential,
    pub version: Version,
    /// A resumable subscription (SSE with ids, WebSocket) and the epoch it last saw; `None`:
    /// iComet's behaviour.
    pub resume: Option<Resume>,
    /// The origin its head names (CORS).
    pub cors: CorsOrigin,
}

/// A channel operation asked for on the admin port.
#[derive(Debug, Clone)]
pub struct HomeRequest {
    pub op: HomeOp,
    pub cname: Vec<u8>,
    /// JSONP callback for /sign, /pub, /push.
    pub callback: Option<Vec<u8>>,
    pub style: ReplyStyle,
}

#[derive(Debug, Clone)]
pub enum HomeOp {
    Sign {
        expires: i32,
    },
    /// `content` is the JSON string inside, already escaped (/push) or verbatim and checked (/pub).
    Publish {
        content: Vec<u8>,
    },
    Close,
    Clear,
    Info,
    Check,
    /// Cluster mode: `/info` without `cname` (channels and subscribers over every node).
    Totals,
    /// Cluster mode: `/broadcast`, answered once every shard stored it.
    Broadcast {
        content: Vec<u8>,
    },
}
