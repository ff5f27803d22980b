//! Admin operations as they run on a channel's home: a `Hub` and a request in, the reply bytes and
//! what must happen next (deliveries, closes) out. Pure: no sockets, no mail; the worker carries
//! the effect to the workers that hold the subscribers.
//!
//! Depends on: api (admin reply bytes, requests), comet (Hub).

use super::admin::{self, SignFields};
use super::{HomeOp, HomeRequest};
use crate::comet::hub::{Closed, Hub, Published};
use crate::comet::message::MsgType;

/// What an operation asks the worker to do after its reply.
#[derive(Debug)]
pub enum Effect {
    /// Nothing more.
    None,
    /// A new message: deliver it to the channel's subscribers.
    Deliver(Published),
    /// The channel was closed: its subscribers get `close`.
    Closed(Closed),
}

/// Runs `req` on the home hub and writes its reply. `sub_timeout` is reported by `/sign`.
pub fn run(
    hub: &mut Hub,
    req: &HomeRequest,
    date: &[u8],
    sub_timeout: u32,
    out: &mut Vec<u8>,
) -> Effect {
    match &req.op {
        HomeOp::Sign { expires } => {
            match hub.sign(&req.cname, *expires) {
                Ok(sign) => {
                    let fields = SignFields {
                        seq: sign.seq_oldest,
                        token_hex: &sign.token_hex,
                        expires: sign.expires,
                        sub_timeout,
                        epoch: sign.epoch,
                    };
                    admin::sign_reply(out, req, date, fields);
                }
                Err(_) => admin::too_many_channels(out, req, date),
            }
            Effect::None
        }
        HomeOp::Publish { content } => match hub.publish(&req.cname, content, MsgType::Data) {
            Ok(published) => {
                admin::ok_reply(out, req, date);
                Effect::Deliver(published)
            }
            Err(_) => {
                admin::too_many_channels(out, req, date);
                Effect::None
            }
        },
        HomeOp::Close => {
            let closed = hub.close(&req.cname);
            admin::ok_seq_or_missing(out, req, date, closed.as_ref().map(|c| c.seq_next));
            closed.map_or(Effect::None, Effect::Closed)
        }
        HomeOp::Clear => {
            let seq = hub.clear(&req.cname);
            admin::ok_seq_or_missing(out, req, date, seq);
            Effect::None
        }
        HomeOp::Info => {
            let n = hub.subscribers(&req.cname) as usize;
            admin::info_reply(out, req, date, n);
            Effect::None
        }
        HomeOp::Check => {
            admin::check_reply(out, req, date, hub.exists(&req.cname));
            Effect::None
        }
        // Made only in cluster mode, where Redis answers them; a hub can only speak for its node.
        HomeOp::Totals => {
            let c = hub.counters();
            admin::totals(out, &req.style, date, c.channels(), c.subscribers());
            Effect::None
        }
        HomeOp::Broadcast { .. } => {
            admin::broadcast_ok(out, &req.style, date);
            Effect::None
        }
    }
}

#[cfg(test)]
#[path = "home_tests.rs"]
mod tests;
