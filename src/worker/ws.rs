//! WebSocket subscribers' input: the frames a client sends on its upgraded socket after the
//! 101 (pings, pongs, close, commands), decoded by `ws::decode` straight from the backend's
//! bytes; only a partial frame is kept in the connection's `inbuf`, and a fragmented message in
//! progress in this worker's side table (an idle WebSocket owns nothing more than an idle
//! `/stream` subscriber). What each frame means is decided in `api::websocket`; commands are
//! carried out in `worker::ws_channels`.
//!
//! Depends on: worker (Worker, Conn, the side table), ws (decoding), api (websocket reactions).

use super::conn::{flags, Conns, Phase};
use super::Worker;
use crate::api::frame::Transport;
use crate::api::websocket::{self, Reaction};
use crate::engine::Token;
use crate::ws::decode::{Limits, Step};

impl Worker {
    /// Whether this connection is a WebSocket whose subscription is open (its input is frames).
    pub(super) fn is_open_websocket(&self, token: Token) -> bool {
        self.conns.peek(token).is_some_and(|c| {
            c.phase == Phase::Subscribed
                && c.sub()
                    .is_some_and(|s| s.framing.transport == Transport::WebSocket)
        })
    }

    /// Bytes from an open WebSocket: every complete frame is acted on; a partial one waits in
    /// `inbuf` for the rest.
    pub(super) fn on_ws_data(&mut self, token: Token, bytes: &[u8]) {
        let held = self.conns.at(token).and_then(|c| c.inbuf.take());
        match held {
            None => {
                let used = self.ws_frames(token, bytes);
                if let Some(rest) = bytes.get(used..).filter(|r| !r.is_empty()) {
                    self.keep(token, rest);
                }
            }
            Some(mut buf) => {
                let before = buf.capacity();
                buf.extend_from_slice(bytes);
                self.buffered += buf.capacity() - before;
                let used = self.ws_frames(token, &buf);
                // Frames, not a request head: there is no parse to resume.
                buf.scan = Default::default();
                self.put_back(token, buf, used);
            }
        }
    }

    /// Frames that arrived before the subscription opened (they waited in `inbuf`).
    pub(super) fn ws_opened(&mut self, token: Token) {
        if let Some(mut buf) = self.conns.at(token).and_then(|c| c.inbuf.take()) {
            let used = self.ws_frames(token, &buf);
            buf.scan = Default::default();
            self.put_back(token, buf, used);
        }
    }

    /// Acts on every complete frame at the front of `buf`; returns the bytes consumed.
    fn ws_frames(&mut self, token: Token, buf: &[u8]) -> usize {
        let limits = Limits {
            max_message_bytes: self.config.limits.max_ws_message_bytes,
        };
        let key = token.pack();
        let mut partial = self.ws.partial.remove(&key).unwrap_or_default();
        let mut out = std::mem::take(&mut self.scratch);
        let mut pos = 0;
        while self.is_open_websocket(token) {
            let rest = buf.get(pos..).unwrap_or_default();
            out.clear();
            let step = partial.reader.next(rest, &limits, &mut partial.assembled);
            if let Step::Frame { used, .. } = step {
                pos += used;
            }
            if matches!(step, Step::Need) {
                break;
            }
            if let Some(conn) = self.conns.at(token) {
                conn.clear(flags::AWAITING_PONG);
            }
            match websocket::react(step, &mut out) {
                Reaction::Reply => {
                    self.queue(token, &out);
                }
                Reaction::Command => {
                    let message = std::mem::take(&mut partial.assembled);
                    self.ws_command(token, &message);
                    partial.assembled = message;
                    partial.assembled.clear();
                }
                Reaction::Close => {
                    self.queue(token, &out);
                    self.ws_close(token);
                    pos = buf.len();
                }
                Reaction::Nothing => {}
            }
        }
        self.scratch = out;
        if partial.reader.in_message() {
            self.ws.partial.insert(key, partial);
        }
        pos
    }

    /// Ends a WebSocket connection once its last frame (a close) is sent.
    pub(super) fn ws_close(&mut self, token: Token) {
        self.ws_forget(token);
        if let Some(conn) = self.conns.at(token) {
            conn.clear(flags::KEEP_ALIVE);
        }
        self.close_after_flush(token);
    }

    /// The server is shutting down: an open WebSocket is told so (1001) before it is closed.
    pub(super) fn ws_going_away(&mut self, token: Token) {
        if self.is_open_websocket(token) {
            let mut out = Vec::with_capacity(4);
            crate::ws::frame::close(crate::ws::CloseCode::GOING_AWAY, "", &mut out);
            self.queue(token, &out);
        }
    }

    /// Drops what the side table holds for a connection that is leaving.
    pub(super) fn ws_forget(&mut self, token: Token) {
        self.ws.partial.remove(&token.pack());
        self.ws_drop_extra_channels(token);
    }
}
