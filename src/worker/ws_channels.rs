//! The channels of a WebSocket connection after its first: `sub` and `unsub` commands, their
//! answers from the channels' homes, deliveries and `/close` for them, and the rule that a
//! WebSocket whose last channel ends is closed (1000).
//!
//! The first channel is the connection's ordinary subscription (in its slot, handed to the
//! channel's home like a `/stream`); the others live in this worker's side table and subscribe
//! from where the connection is, like subscribers of a spread channel (the home mails their
//! deliveries here). So an idle WebSocket on one channel costs what an idle `/stream` does.
//!
//! Depends on: worker (Worker, Conn, subs), api (subscribe, ws_command), comet (messages).

use super::conn::{Conn, Conns, Ext};
use super::msg::{Msg, SubscribeMsg};
use super::ws_side::Extra;
use super::Worker;
use crate::api::frame::{Framing, Transport};
use crate::api::subscribe::{self, Subscription};
use crate::api::ws_command::{self, Command};
use crate::comet::auth::Credential;
use crate::comet::hub::{SubscribeError, Subscribed};
use crate::comet::message::{encode, MsgType, TOO_MANY_WS_CHANNELS};
use crate::comet::name::Name;
use crate::comet::Resume;
use crate::engine::Token;

/// Whether `sub` is the subscription to `name`.
fn is_for(sub: &Subscription, name: &[u8]) -> bool {
    *sub.channel == *name
}

/// The subscription of connection `token` to `name`: the one in its slot, or one of a
/// WebSocket's others.
pub(super) fn sub_for<'a>(
    conn: &'a mut Conn,
    extra: &'a mut Extra,
    token: Token,
    name: &[u8],
) -> Option<&'a mut Subscription> {
    match conn.sub_mut() {
        Some(main) if is_for(main, name) => Some(main),
        Some(main) if main.framing.transport == Transport::WebSocket => extra
            .get_mut(&token.pack())?
            .iter_mut()
            .find(|s| is_for(s, name)),
        _ => None,
    }
}

impl Worker {
    /// Carries out one command a WebSocket sent.
    pub(super) fn ws_command(&mut self, token: Token, message: &[u8]) {
        let max_cname = self.config.limits.max_cname_bytes;
        match ws_command::parse(message, max_cname) {
            Err(reason) => self.ws_text(token, &ws_command::refusal(b"", &reason)),
            Ok(Command::Sub {
                cname,
                seq,
                auth_token,
                epoch,
            }) => self.ws_sub(token, cname, seq, auth_token, epoch),
            Ok(Command::Unsub { cname }) => self.ws_unsub(token, &cname),
        }
    }

    /// Queues one text frame holding `json`.
    fn ws_text(&mut self, token: Token, json: &[u8]) {
        let mut out = Vec::with_capacity(json.len() + 4);
        crate::ws::frame::text_head(json.len(), &mut out);
        out.extend_from_slice(json);
        self.queue(token, &out);
    }

    /// Channels the connection is subscribed to (or asking for).
    fn ws_channel_count(&self, token: Token) -> usize {
        let main = usize::from(self.conns.peek(token).is_some_and(|c| c.sub().is_some()));
        main + self.ws.channels.get(&token.pack()).map_or(0, Vec::len)
    }

    fn ws_sub(
        &mut self,
        token: Token,
        cname: Vec<u8>,
        seq: u32,
        auth_token: Vec<u8>,
        epoch: Option<u32>,
    ) {
        let already = {
            let extra = &mut self.ws.channels;
            self.conns
                .at(token)
                .is_some_and(|c| sub_for(c, extra, token, &cname).is_some())
        };
        if already {
            let refusal = ws_command::refusal(&cname, "already subscribed to this channel");
            return self.ws_text(token, &refusal);
        }
        if self.ws_channel_count(token) >= self.config.limits.max_ws_channels {
            let json = encode(MsgType::TooMany, &cname, 0, TOO_MANY_WS_CHANNELS);
            return self.ws_text(token, &json);
        }
        let now = self.date.unix_secs();
        let stateless = self.shared.stateless.as_ref();
        let credential = match stateless.and_then(|k| k.check(&cname, &auth_token, now)) {
            Some(valid) => Credential::Stateless { valid },
            None => Credential::Signed(auth_token),
        };
        let name = self.shared_name(cname);
        let framing = Framing::new(Transport::WebSocket, false, None).resuming(true);
        let sub = Subscription::pending(Name::clone(&name), framing, seq, 0);
        self.ws.channels.entry(token.pack()).or_default().push(sub);
        self.hub.add_local(&name, token.pack());
        let home = self.home_of(&name);
        let msg = SubscribeMsg {
            from: self.id,
            token,
            name,
            seq,
            credential,
            long_poll: false,
            resume: Some(Resume { epoch }),
        };
        self.mail(home, Msg::Subscribe(Box::new(msg)));
    }

    /// The home answered a `sub` command.
    pub(super) fn ws_subscribed(
        &mut self,
        token: Token,
        name: Name,
        result: Result<Subscribed, SubscribeError>,
    ) {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let key = token.pack();
        let Some(sub) = self
            .ws
            .channels
            .get_mut(&key)
            .and_then(|subs| subs.iter_mut().find(|s| s.pending && is_for(s, &name)))
        else {
            self.scratch = out;
            return self.forget_answer(&name, &result);
        };
        let opened = subscribe::open_more(sub, &result, &mut out);
        if opened.ended {
            self.ws_remove_extra(token, &name);
        } else {
            self.count_subscriber(Transport::WebSocket, true);
            self.count_replayed(opened.replayed);
        }
        self.queue(token, &out);
        self.scratch = out;
    }

    /// Takes one of the connection's other channels out of the side table and the local index
    /// (the caller tells the home when it was registered).
    fn ws_remove_extra(&mut self, token: Token, name: &[u8]) -> Option<Subscription> {
        let key = token.pack();
        let subs = self.ws.channels.get_mut(&key)?;
        let at = subs.iter().position(|s| is_for(s, name))?;
        let sub = subs.swap_remove(at);
        if subs.is_empty() {
            self.ws.channels.remove(&key);
        }
        self.hub.remove_local(&sub.channel, key);
        if !sub.pending {
            self.count_subscriber(Transport::WebSocket, false);
        }
        Some(sub)
    }

    /// Leaves one of the other channels, telling its home.
    fn ws_leave_extra(&mut self, token: Token, name: &[u8]) -> bool {
        let Some(sub) = self.ws_remove_extra(token, name) else {
            return false;
        };
        if !sub.pending {
            self.unsubscribe_left(&sub);
        }
        true
    }

    /// An `unsub` command: the first channel's place goes to another one, if any; a connection
    /// left without channels is closed (1000).
    fn ws_unsub(&mut self, token: Token, cname: &[u8]) {
        if self.ws_leave_extra(token, cname) {
            return;
        }
        let is_main = self
            .conns
            .peek(token)
            .and_then(Conn::sub)
            .is_some_and(|s| is_for(s, cname));
        if !is_main {
            let refusal = ws_command::refusal(cname, "not subscribed to this channel");
            return self.ws_text(token, &refusal);
        }
        self.drop_subscription(token);
        self.ws_promote_or_close(token);
    }

    /// After the first channel ended: another channel takes its place in the slot, or the
    /// connection closes with 1000.
    pub(super) fn ws_promote_or_close(&mut self, token: Token) {
        let key = token.pack();
        let next = self.ws.channels.get_mut(&key).and_then(|subs| subs.pop());
        if self.ws.channels.get(&key).is_some_and(Vec::is_empty) {
            self.ws.channels.remove(&key);
        }
        let Some(conn) = self.conns.at(token) else {
            return;
        };
        match next {
            Some(sub) => conn.ext = Some(Box::new(Ext::Sub(sub))),
            None => {
                let mut out = Vec::with_capacity(4);
                crate::ws::frame::close(crate::ws::CloseCode::NORMAL, "", &mut out);
                self.queue(token, &out);
                self.ws_close(token);
            }
        }
    }

    /// One of the connection's channels was closed: its `close` object goes out; the
    /// connection closes only when it was the last.
    pub(super) fn ws_channel_closed(&mut self, token: Token, name: &[u8], json: &[u8]) {
        let is_main = self
            .conns
            .peek(token)
            .and_then(Conn::sub)
            .is_some_and(|s| is_for(s, name));
        self.ws_text(token, json);
        // The home already forgot the channel: no unsubscribe is owed.
        if is_main {
            self.take_sub(token);
            self.ws_promote_or_close(token);
        } else {
            self.ws_remove_extra(token, name);
        }
    }

    /// Leaves every channel beyond the first (the connection is going).
    pub(super) fn ws_drop_extra_channels(&mut self, token: Token) {
        let Some(subs) = self.ws.channels.remove(&token.pack()) else {
            return;
        };
        for sub in subs {
            self.hub.remove_local(&sub.channel, token.pack());
            if !sub.pending {
                self.count_subscriber(Transport::WebSocket, false);
                self.unsubscribe_left(&sub);
            }
        }
    }
}
