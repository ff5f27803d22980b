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
use crate::comet::message::{
    encode, encode_with_epoch, expand_replay, follow_up, Message, MsgType,
};
use crate::comet::name::Name;
use crate::comet::seq::{seq_after, seq_before, seq_prev};
use crate::ws;

/// An open (or opening) subscription of one connection.
#[derive(Debug)]
pub struct Subscription {
    pub channel: Name,
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
    pub fn pending(channel: Name, framing: Framing, seq: u32, noop: u32) -> Subscription {
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
    let head = SubscribeHead {
        transport,
        http11: style.http11,
        ok: result.is_ok(),
        unavailable: matches!(result, Err(SubscribeError::Unavailable)),
        close: style.close,
    };
    write_head(sub, &head, style, out);
    let s = match result {
        Err(e) => {
            // An iframe gets its preamble first, as iComet sends it, or the page never runs
            // the error's script.
            if transport == Transport::Iframe {
                write_iframe_preamble(style.http11, out);
            }
            refuse(sub, *e, out);
            if transport == Transport::WebSocket {
                ws::frame::close(refusal_close_code(*e), "", out);
            } else {
                sub.framing.write_end(out);
            }
            return Opened {
                ended: true,
                replayed: 0,
            };
        }
        Ok(s) => s,
    };
    if transport == Transport::Iframe {
        write_iframe_preamble(style.http11, out);
    }
    sub.framing.write_start(out);
    let replayed = settle(sub, s, out);
    let ended = sub.long_poll() && !matches!(s.catch_up, CatchUp::Wait);
    if ended {
        sub.framing.write_end(out);
    }
    Opened { ended, replayed }
}

/// One more channel on an open WebSocket: what [`open`] writes after the head. A refusal is
/// only its error object (the socket and its other channels stay), and `ended` says the
/// subscription is gone.
pub fn open_more(
    sub: &mut Subscription,
    result: &Result<Subscribed, SubscribeError>,
    out: &mut Vec<u8>,
) -> Opened {
    match result {
        Err(e) => {
            refuse(sub, *e, out);
            Opened {
                ended: true,
                replayed: 0,
            }
        }
        Ok(s) => Opened {
            ended: false,
            replayed: settle(sub, s, out),
        },
    }
}

/// The error object of a refused subscription. It was never counted anywhere: it stays
/// `pending`, so leaving it owes the home nothing and takes nothing off the counters.
fn refuse(sub: &mut Subscription, e: SubscribeError, out: &mut Vec<u8>) {
    let json = encode(e.kind(), &sub.channel, 0, e.content());
    sub.framing.write_frame(&json, out);
    sub.registered = false;
}

/// Settles an accepted subscription's state (seqs, epoch, registration; `pending` ends) and
/// writes its catch-up; returns the stored messages sent.
fn settle(sub: &mut Subscription, s: &Subscribed, out: &mut Vec<u8>) -> u64 {
    sub.pending = false;
    sub.epoch = s.epoch;
    sub.registered = s.registered;
    match &s.catch_up {
        CatchUp::NextSeq(seq) => {
            write_marker(sub, MsgType::NextSeq, *seq, out);
            sub.next_seq = *seq;
            0
        }
        CatchUp::Replay(msgs) => {
            write_replay(sub, msgs, out);
            msgs.len() as u64
        }
        CatchUp::Reset { seq, replay } => {
            write_marker(sub, MsgType::Reset, *seq, out);
            sub.next_seq = *seq;
            write_replay(sub, replay, out);
            replay.len() as u64
        }
        CatchUp::Wait => 0,
    }
}

/// The response head: HTTP's, or for a WebSocket the 101 that completes the handshake (its
/// `Sec-WebSocket-Accept` value is kept in the framing until then).
fn write_head(
    sub: &mut Subscription,
    head: &SubscribeHead,
    style: HeadStyle<'_>,
    out: &mut Vec<u8>,
) {
    if sub.framing.transport == Transport::WebSocket {
        let accept = sub.framing.callback.take();
        let accept = accept.as_deref().unwrap_or_default();
        ws::handshake::write_101_value(accept, out);
    } else {
        write_subscribe_head(out, head, style.cors, style.date);
    }
}

/// The close code a WebSocket refused at subscription gets after the error object: 1008
/// (policy violation) for a bad token, 1013 (try again later) for a limit or an unreachable
/// store (cluster mode).
pub fn refusal_close_code(e: SubscribeError) -> ws::CloseCode {
    match e {
        SubscribeError::TokenError => ws::CloseCode::POLICY_VIOLATION,
        SubscribeError::TooManyChannels
        | SubscribeError::TooManySubscribers
        | SubscribeError::Unavailable => ws::CloseCode::TRY_AGAIN_LATER,
    }
}

/// A position marker (`next_seq`, `reset`) saying delivery continues at `seq`: iComet's object,
/// or for a resumable subscription one that also carries the epoch (and on SSE the id of the
/// message before `seq`, so a reconnect resumes at `seq`).
fn write_marker(sub: &Subscription, kind: MsgType, seq: u32, out: &mut Vec<u8>) {
    if !sub.framing.resumable {
        let json = encode(kind, &sub.channel, seq, b"");
        sub.framing.write_frame(&json, out);
        return;
    }
    let mut json = Vec::with_capacity(96);
    encode_with_epoch(&mut json, kind, &sub.channel, seq, sub.epoch);
    let id = sub.framing.event_id(sub.epoch, seq_prev(seq));
    sub.framing.write_frame_with(id, &json, out);
}

/// Stored messages for a catch-up, oldest first; the subscriber's next seq follows the last.
fn write_replay(sub: &mut Subscription, msgs: &[Message], out: &mut Vec<u8>) {
    if let Some(last) = msgs.last() {
        sub.next_seq = seq_after(last.seq);
    }
    if !sub.framing.resumable {
        let objects = expand_replay(&sub.channel, msgs);
        sub.framing.write_objects(&objects, out);
        return;
    }
    for msg in msgs {
        let id = sub.framing.event_id(sub.epoch, msg.seq);
        sub.framing.write_frame_with(id, &msg.json, out);
        if let Some(next) = follow_up(&sub.channel, msg) {
            sub.framing.write_frame(&next, out);
        }
    }
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
    sub.next_seq = seq_after(msg.seq);
    let ends = sub.long_poll();
    let id = sub.framing.event_id(sub.epoch, msg.seq);
    match follow_up {
        Some(next) if ends => {
            sub.framing.write_objects(&[&msg.json[..], next], head);
        }
        Some(next) => {
            sub.framing.write_frame_with(id, &msg.json, head);
            sub.framing.write_frame(next, head);
        }
        None if ends => {
            // The last chunk follows the frame: one owned piece is simpler than a shared tail.
            sub.framing.write_frame(&msg.json, head);
        }
        None => {
            sub.framing.prefix_with(id, msg.json.len(), head);
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

/// Cluster mode: delivery jumps to `seq` of incarnation `epoch` (messages were lost while the
/// store was unreachable, or the store came back empty). A resumable subscriber gets a `reset`
/// marker, an iComet one a `next_seq`; a long-poll ends with it (true). A subscription already
/// at or past `seq` of that incarnation subscribed after the gap (its catch-up came from the
/// channel as the gap left it) and is not told: it missed nothing, and moving it back would
/// give it again what it has.
pub fn gap(sub: &mut Subscription, seq: u32, epoch: u32, out: &mut Vec<u8>) -> bool {
    if sub.pending || (sub.epoch == epoch && !seq_before(sub.next_seq, seq)) {
        return false;
    }
    sub.epoch = epoch;
    let kind = if sub.framing.resumable {
        MsgType::Reset
    } else {
        MsgType::NextSeq
    };
    write_marker(sub, kind, seq, out);
    sub.next_seq = seq;
    let ends = sub.long_poll();
    if ends {
        sub.framing.write_end(out);
    }
    ends
}

/// Writes the subscriber's heartbeat and counts it; true when the response ends with it
/// (long-poll). A WebSocket also gets a ping, which it must answer (or send anything) before
/// the next heartbeat (the worker remembers the ping on the connection).
pub fn noop(sub: &mut Subscription, out: &mut Vec<u8>) -> bool {
    let json = encode(MsgType::Noop, &sub.channel, sub.noop, b"");
    sub.noop = sub.noop.wrapping_add(1);
    sub.framing.write_frame(&json, out);
    if sub.framing.transport == Transport::WebSocket {
        ws::frame::ping(b"", out);
    }
    let ends = sub.long_poll();
    if ends {
        sub.framing.write_end(out);
    }
    ends
}

/// Whether a heartbeat finds the peer gone: a WebSocket that sent nothing, not even the pong,
/// since the previous heartbeat's ping (`awaiting_pong`). It gets a close frame (1001) in `out`.
pub fn peer_silent(sub: &Subscription, awaiting_pong: bool, out: &mut Vec<u8>) -> bool {
    let silent = sub.framing.transport == Transport::WebSocket && awaiting_pong;
    if silent {
        ws::frame::close(ws::CloseCode::GOING_AWAY, "no pong", out);
    }
    silent
}

/// Writes the `close` message (`json`) and the end of the response.
pub fn closed(sub: &Subscription, json: &[u8], out: &mut Vec<u8>) {
    sub.framing.write_frame(json, out);
    sub.framing.write_end(out);
}

#[cfg(test)]
#[path = "subscribe_tests.rs"]
mod tests;
