//! The home side of channels: what a worker does with the operations addressed to the channels it
//! is home of (subscribe, unsubscribe, admin operations, broadcast), and the channels' once-a-second
//! tick. Results travel back by mail — also when the home is the asking worker itself, so both paths
//! are one path.
//!
//! Depends on: worker (State, Msg), comet (Hub), api (admin replies).

use super::msg::{Msg, SubscribeMsg};
use super::State;
use crate::api::{admin, HomeOp, HomeRequest};
use crate::comet::hub::{worker_bit, Presence};
use crate::comet::message::{Message, MsgType};
use crate::comet::route::home_worker;
use crate::engine::Token;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl State {
    /// The worker that is home of `cname`.
    pub(crate) fn home_of(&self, cname: &[u8]) -> usize {
        home_worker(cname, self.workers())
    }

    /// Sends `msg` to every worker whose bit is set in `workers`.
    fn mail_workers(&mut self, workers: u64, mut make: impl FnMut() -> Msg) {
        for w in 0..self.workers().min(64) {
            if workers & worker_bit(w) != 0 {
                let msg = make();
                self.mail(w, msg);
            }
        }
    }

    pub(super) fn home_subscribe(&mut self, m: SubscribeMsg) {
        let result = if m.long_poll {
            self.hub
                .subscribe_long_poll(&m.name, m.seq, &m.auth, m.from)
        } else {
            self.hub.subscribe(&m.name, m.seq, &m.auth, m.from)
        };
        self.mail(
            m.from,
            Msg::Subscribed {
                token: m.token,
                name: m.name,
                result,
            },
        );
        self.announce_presence();
    }

    pub(super) fn home_unsubscribe(
        &mut self,
        from: usize,
        name: &[u8],
        epoch: u32,
        count: u32,
        none_left: bool,
    ) {
        self.hub
            .unsubscribe_many(name, epoch, from, count, none_left);
    }

    pub(super) fn home_request(&mut self, from: usize, token: Token, req: &HomeRequest) {
        let mut out = Vec::with_capacity(256);
        let date = self.date.get();
        match &req.op {
            HomeOp::Sign { expires } => match self.hub.sign(&req.cname, *expires) {
                Ok(sign) => {
                    let fields = admin::SignFields {
                        seq: sign.seq_oldest,
                        token_hex: &sign.token_hex,
                        expires: sign.expires,
                        sub_timeout: self.shared.config.front.polling_timeout,
                    };
                    admin::sign_reply(&mut out, req, date, fields);
                }
                Err(_) => admin::too_many_channels(&mut out, req, date),
            },
            HomeOp::Publish { content } => {
                match self.hub.publish(&req.cname, content, MsgType::Data) {
                    Ok(p) => {
                        admin::ok_reply(&mut out, req, date);
                        let (name, msg) = (p.name, p.msg);
                        self.mail_workers(p.workers, || Msg::Deliver {
                            name: Arc::clone(&name),
                            msg: msg.clone(),
                        });
                    }
                    Err(_) => admin::too_many_channels(&mut out, req, date),
                }
            }
            HomeOp::Close => {
                let closed = self.hub.close(&req.cname);
                admin::ok_seq_or_missing(&mut out, req, date, closed.as_ref().map(|c| c.seq_next));
                if let Some(c) = closed {
                    self.mail_workers(c.workers, || Msg::Closed {
                        name: Arc::clone(&c.name),
                        json: Arc::clone(&c.json),
                    });
                }
            }
            HomeOp::Clear => {
                let seq = self.hub.clear(&req.cname);
                admin::ok_seq_or_missing(&mut out, req, date, seq);
            }
            HomeOp::Info => {
                let n = self.hub.subscribers(&req.cname) as usize;
                admin::info_reply(&mut out, req, date, n);
            }
            HomeOp::Check => {
                let exists = self.hub.exists(&req.cname);
                admin::check_reply(&mut out, req, date, exists);
            }
        }
        self.mail(from, Msg::HomeReply { token, reply: out });
        self.announce_presence();
    }

    /// Broadcasts `content` on every channel this worker is home of.
    pub(super) fn home_broadcast(&mut self, content: &[u8]) {
        let mut deliveries: Vec<(Arc<[u8]>, Message, u64)> = Vec::new();
        self.hub.broadcast_each(content, |name, msg, workers| {
            if workers != 0 {
                deliveries.push((Arc::clone(name), msg.clone(), workers));
            }
        });
        for (name, msg, workers) in deliveries {
            self.mail_workers(workers, || Msg::Deliver {
                name: Arc::clone(&name),
                msg: msg.clone(),
            });
        }
    }

    /// Starts a broadcast: every worker (this one too) broadcasts on the channels it is home of.
    pub(crate) fn broadcast(&mut self, content: Arc<[u8]>) {
        for w in 0..self.workers() {
            self.mail(
                w,
                Msg::Broadcast {
                    content: Arc::clone(&content),
                },
            );
        }
    }

    /// The channels' once-a-second tick: expiry and presence re-announcements.
    pub(super) fn tick_channels(&mut self) {
        let listening = self.shared.presence_clients.load(Ordering::Relaxed) > 0;
        self.hub.set_presence(listening);
        let events = self.hub.tick();
        self.send_presence(events);
        self.announce_presence();
    }

    /// Sends the presence events the hub collected to every worker with /psub clients.
    fn announce_presence(&mut self) {
        let events = self.hub.drain_presence();
        self.send_presence(events);
    }

    fn send_presence(&mut self, events: Vec<Presence>) {
        if events.is_empty() || self.shared.presence_clients.load(Ordering::Relaxed) == 0 {
            return;
        }
        for event in events {
            let mut line = Vec::with_capacity(event.name().len() + 3);
            event.write_line(&mut line);
            let line: Arc<[u8]> = line.into();
            for w in 0..self.workers() {
                self.mail(
                    w,
                    Msg::Presence {
                        line: Arc::clone(&line),
                    },
                );
            }
        }
    }

    /// Routes one piece of mail.
    pub(super) fn on_mail(&mut self, msg: Msg) {
        match msg {
            Msg::Subscribe(m) => self.home_subscribe(*m),
            Msg::Subscribed {
                token,
                name,
                result,
            } => self.on_subscribed(token, name, result),
            Msg::Unsubscribe {
                from,
                name,
                epoch,
                count,
                none_left,
            } => self.home_unsubscribe(from, &name, epoch, count, none_left),
            Msg::Home {
                from,
                token,
                request,
            } => self.home_request(from, token, &request),
            Msg::HomeReply { token, reply } => self.on_home_reply(token, &reply),
            Msg::Deliver { name, msg } => self.on_deliver(&name, &msg),
            Msg::Closed { name, json } => self.on_closed(&name, &json),
            Msg::Broadcast { content } => self.home_broadcast(&content),
            Msg::Presence { line } => self.on_presence(&line),
            Msg::Shutdown => {}
        }
    }

    /// Hands an admin request to the channel's home and parks the connection until the reply.
    pub(crate) fn send_home(&mut self, token: Token, request: HomeRequest) {
        let home = self.home_of(&request.cname);
        if let Some(conn) = self.conns.get_mut(token.slot, token.generation) {
            conn.phase = super::conn::Phase::Waiting;
        }
        let from = self.id;
        self.mail(
            home,
            Msg::Home {
                from,
                token,
                request: Box::new(request),
            },
        );
    }

    fn on_home_reply(&mut self, token: Token, reply: &[u8]) {
        let Some(conn) = self.conns.get(token.slot, token.generation) else {
            return;
        };
        if conn.phase != super::conn::Phase::Waiting {
            return;
        }
        let peer_closed = conn.has(super::conn::flags::PEER_CLOSED);
        self.queue(token, reply);
        if peer_closed {
            self.close_after_flush(token);
        } else {
            self.request_done(token);
        }
    }
}
