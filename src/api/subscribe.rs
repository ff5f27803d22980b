//! The protocol decisions of an open subscription, as pure functions over its state: what a
//! subscriber gets when its channel's home answered (head, catch-up, whether a long-poll ends
//! there), what it gets for each live message, for a heartbeat and for `/close`. Bytes and effects
//! out; the worker only queues the bytes and carries out the effects.
//!
//! Depends on: api::frame (framing), comet (messages, catch-up, seq order).

use super::cors::CorsOrigin;
use super::frame::{
    write_iframe_preamble, write_subscribe_head, Framing, SubscribeHead, Transport,
};
use crate::comet::channel::CatchUp;
use crate::comet::hub::{SubscribeError, Subscribed};
use crate::comet::message::{encode, expand_replay, Message, MsgType};
use crate::comet::seq::seq_before;
use std::sync::Arc;

/// An open (or opening) subscription of one connection.
#[derive(Debug)]
pub struct Subscription {
    pub channel: Arc<[u8]>,
    pub framing: Framing,
    /// The next data seq this subscriber expects.
    pub next_seq: u32,
    /// The number the next heartbeat carries.
    pub noop: u32,
    /// The channel incarnation the home registered us with.
    pub epoch: u32,
    /// Registered at the home (counted there); false for a long-poll answered at once.
    pub registered: bool,
    /// Waiting for the home's answer: live deliveries are not for this subscriber yet.
    pub pending: bool,
    /// The origin its head names (CORS), until the head is written.
    pub cors: CorsOrigin,
}

impl Subscription {
    /// A subscription waiting for its channel's home.
    pub fn pending(channel: Arc<[u8]>, framing: Framing, seq: u32, noop: u32) -> Subscription {
        Subscription {
            channel,
            framing,
            next_seq: seq,
            noop,
            epoch: 0,
            registered: false,
            pending: true,
            cors: CorsOrigin::NONE,
        }
    }

    fn long_poll(&self) -> bool {
        self.framing.transport == Transport::LongPoll
    }
}

/// How the connection's request asked for the response.
#[derive(Debug, Clone, Copy)]
pub struct HeadStyle<'a> {
    pub http11: bool,
    /// The request's `Connection` header said `close` (HTTP/1.0 or 1.1).
    pub close: bool,
    /// The CORS header lines of the head (`api::cors`).
    pub cors: &'a [u8],
    pub date: &'a [u8],
}

/// What opening a subscription produced besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The response is complete (an error, or a long-poll answered by its catch-up).
    pub ended: bool,
    /// Stored messages sent in the catch-up.
    pub replayed: u64,
}

/// Writes the response head and the catch-up for the home's answer, and settles the
/// subscription's state (seqs, epoch, registration; `pending` ends only for an accepted one).
pub fn open(
    sub: &mut Subscription,
    style: HeadStyle<'_>,
    result: &Result<Subscribed, SubscribeError>,
    out: &mut Vec<u8>,
) -> Opened {
    let transport = sub.framing.transport;
    let mut head = SubscribeHead {
        transport,
        http11: style.http11,
        ok: result.is_ok(),
        close: style.close,
    };
    let s = match result {
        // A refused subscription was never counted anywhere: it stays `pending`, so leaving
        // it owes the home nothing and takes nothing off the counters. An iframe gets its
        // preamble first, as iComet sends it, or the page never runs the error's script.
        Err(e) => {
            head.ok = false;
            write_subscribe_head(out, &head, style.cors, style.date);
            if transport == Transport::Iframe {
                write_iframe_preamble(style.http11, out);
            }
            let json = encode(e.kind(), &sub.channel, 0, e.content());
            sub.framing.write_frame(&json, out);
            sub.framing.write_end(out);
            sub.registered = false;
            return Opened {
                ended: true,
                replayed: 0,
            };
        }
        Ok(s) => s,
    };
    sub.pending = false;
    sub.epoch = s.epoch;
    sub.registered = s.registered;
    write_subscribe_head(out, &head, style.cors, style.date);
    if transport == Transport::Iframe {
        write_iframe_preamble(style.http11, out);
    }
    let mut replayed = 0;
    match &s.catch_up {
        CatchUp::NextSeq(seq) => {
            let json = encode(MsgType::NextSeq, &sub.channel, *seq, b"");
            sub.framing.write_frame(&json, out);
            sub.next_seq = *seq;
        }
        CatchUp::Replay(msgs) => {
            replayed = msgs.len() as u64;
            if let Some(last) = msgs.last() {
                sub.next_seq = last.seq.wrapping_add(1);
            }
            let objects = expand_replay(&sub.channel, msgs);
            sub.framing.write_objects(&objects, out);
        }
        CatchUp::Wait => {}
    }
    let ended = sub.long_poll() && !matches!(s.catch_up, CatchUp::Wait);
    if ended {
        sub.framing.write_end(out);
    }
    Opened { ended, replayed }
}

/// What one subscriber gets for a live message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Already sent in its catch-up, or not for it yet.
    Skip,
    /// `head` + the message's shared JSON + `tail`.
    Shared { tail: &'static [u8], ends: bool },
    /// Everything is in `head` (a broadcast and its `next_seq`, or a long-poll's last chunk).
    Owned { ends: bool },
}

/// Decides one subscriber's frame for `msg` (with `follow_up`, the `next_seq` after a broadcast)
/// and advances its next seq. `head` must be empty; it receives the subscriber's own bytes.
pub fn deliver(
    sub: &mut Subscription,
    msg: &Message,
    follow_up: Option<&[u8]>,
    head: &mut Vec<u8>,
) -> Delivery {
    if sub.pending || seq_before(msg.seq, sub.next_seq) {
        return Delivery::Skip;
    }
    sub.next_seq = msg.seq.wrapping_add(1);
    let ends = sub.long_poll();
    match follow_up {
        Some(next) if ends => {
            sub.framing.write_objects(&[&msg.json[..], next], head);
        }
        Some(next) => {
            sub.framing.write_frame(&msg.json, head);
            sub.framing.write_frame(next, head);
        }
        None if ends => {
            // The last chunk follows the frame: one owned piece is simpler than a shared tail.
            sub.framing.write_frame(&msg.json, head);
        }
        None => {
            sub.framing.prefix(msg.json.len(), head);
            return Delivery::Shared {
                tail: sub.framing.static_suffix(),
                ends: false,
            };
        }
    }
    if ends {
        sub.framing.write_end(head);
    }
    Delivery::Owned { ends }
}

/// Writes the subscriber's heartbeat and counts it; true when the response ends with it
/// (long-poll).
pub fn noop(sub: &mut Subscription, out: &mut Vec<u8>) -> bool {
    let json = encode(MsgType::Noop, &sub.channel, sub.noop, b"");
    sub.noop = sub.noop.wrapping_add(1);
    sub.framing.write_frame(&json, out);
    let ends = sub.long_poll();
    if ends {
        sub.framing.write_end(out);
    }
    ends
}

/// Writes the `close` message (`json`) and the end of the response.
pub fn closed(sub: &Subscription, json: &[u8], out: &mut Vec<u8>) {
    sub.framing.write_frame(json, out);
    sub.framing.write_end(out);
}

#[cfg(test)]
#[path = "subscribe_tests.rs"]
mod tests;
