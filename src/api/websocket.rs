//! What a WebSocket subscriber's frames mean for its connection, as one pure function: a ping
//! is answered with a pong, a close with the closing handshake, a text message is a command
//! (`api::ws_command`), a binary message or a protocol error closes the connection with its
//! code. Bytes out; the worker queues them and carries the reaction out.
//!
//! Close codes the server sends:
//!
//! | code | when |
//! |---|---|
//! | 1000 | the subscription ended (`/close` of its last channel, `unsub` of its last channel), or the client closed first (its code is echoed) |
//! | 1001 | the client answered no ping between two heartbeats, or the server is shutting down |
//! | 1002 | a framing error (unmasked frame, reserved bits or opcodes, bad fragmentation, bad close frame) |
//! | 1003 | a binary message (commands are text) |
//! | 1007 | a text message or close reason that is not UTF-8 |
//! | 1008 | the `/ws` subscription was refused: bad token (after the `401` object) |
//! | 1009 | a message larger than `limits.max_ws_message_size` |
//! | 1013 | the `/ws` subscription was refused: a limit (after the `429` object) |
//!
//! Depends on: ws (frames and close codes).

use crate::ws::decode::{Event, Step};
use crate::ws::frame;
use crate::ws::CloseCode;

/// What the worker does after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing (a pong, a fragment, an incomplete frame).
    Nothing,
    /// Queue the bytes written (a pong).
    Reply,
    /// The decoder's assembled message is a command: carry it out.
    Command,
    /// Queue the bytes written (a close frame) and close the connection once they are sent.
    Close,
}

/// Decides what one decoder step means; the reply frame, if any, is appended to `out`.
pub fn react(step: Step, out: &mut Vec<u8>) -> Reaction {
    let event = match step {
        Step::Need => return Reaction::Nothing,
        Step::Fail(code) => {
            frame::close(code, "", out);
            return Reaction::Close;
        }
        Step::Frame { event, .. } => event,
    };
    match event {
        Event::Text => Reaction::Command,
        Event::Fragment | Event::Pong => Reaction::Nothing,
        Event::Binary => {
            frame::close(CloseCode::UNSUPPORTED_DATA, "commands are text", out);
            Reaction::Close
        }
        Event::Ping(payload) => {
            frame::pong(payload.as_bytes(), out);
            Reaction::Reply
        }
        Event::Close { code: Some(code) } => {
            frame::close(code, "", out);
            Reaction::Close
        }
        Event::Close { code: None } => {
            frame::close_empty(out);
            Reaction::Close
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaction(step: Step) -> (Reaction, Vec<u8>) {
        let mut out = Vec::new();
        (react(step, &mut out), out)
    }

    #[test]
    fn pings_are_answered_and_pongs_are_not() {
        let mut client = Vec::new();
        let key = [1, 2, 3, 4];
        let mut masked = *b"hi";
        crate::ws::decode::unmask(&mut masked, key);
        client.extend_from_slice(&[0x89, 0x82]);
        client.extend_from_slice(&key);
        client.extend_from_slice(&masked);
        let mut reader = crate::ws::decode::Reader::new();
        let limits = crate::ws::decode::Limits {
            max_message_bytes: 100,
        };
        let step = reader.next(&client, &limits, &mut Vec::new());
        assert_eq!(reaction(step), (Reaction::Reply, vec![0x8a, 2, b'h', b'i']));
        let pong = Step::Frame {
            event: Event::Pong,
            used: 6,
        };
        assert_eq!(reaction(pong), (Reaction::Nothing, vec![]));
    }

    #[test]
    fn closes_echo_the_code_and_failures_send_theirs() {
        let close = Step::Frame {
            event: Event::Close {
                code: Some(CloseCode(4000)),
            },
            used: 8,
        };
        assert_eq!(
            reaction(close),
            (Reaction::Close, vec![0x88, 2, 0x0f, 0xa0])
        );
        let empty = Step::Frame {
            event: Event::Close { code: None },
            used: 6,
        };
        assert_eq!(reaction(empty), (Reaction::Close, vec![0x88, 0]));
        let fail = Step::Fail(CloseCode::MESSAGE_TOO_BIG);
        assert_eq!(reaction(fail), (Reaction::Close, vec![0x88, 2, 0x03, 0xf1]));
        let binary = Step::Frame {
            event: Event::Binary,
            used: 6,
        };
        let (r, bytes) = reaction(binary);
        assert_eq!(r, Reaction::Close);
        assert_eq!(bytes.get(2..4), Some(&[0x03, 0xeb][..]), "1003");
    }

    #[test]
    fn text_is_a_command() {
        let text = Step::Frame {
            event: Event::Text,
            used: 6,
        };
        assert_eq!(reaction(text), (Reaction::Command, vec![]));
    }
}
