//! The subscriber protocol: builds /sub (JSONP long-poll, like icomet.js), /stream, /sse and /ws
//! (WebSocket upgrade) requests, reads their responses, follows seq and noop as a browser does
//! (re-poll after every long-poll reply with the next seq, or the same seq and noop+1 after a
//! heartbeat), answers a WebSocket's pings and echoes its close, checks seq continuity and
//! records push→deliver latency. Depends on conn, env, http_reader, message, seq_check, stats,
//! plan, ws_frames.

use std::io::Write;

use crate::cli::Transport;
use crate::conn::{Conn, Phase, SubState};
use crate::env::{Action, Env};
use crate::http_reader::Event;
use crate::message::{for_each_message, parse_stamp, Kind, Message};
use crate::plan::{Plan, Scenario};
use crate::seq_check::SeqOutcome;
use crate::stats::{record_us, ErrorKind};
use crate::ws_frames::{self, OP_CLOSE, OP_PONG};

/// JSONP callback name icomet.js uses for its first subscription.
const CALLBACK: &str = "icomet_cb_0";

/// Writes the subscription request for this connection's channel, seq, noop and token.
pub fn write_request(conn: &Conn, plan: &Plan, out: &mut Vec<u8>) {
    out.clear();
    let path = match plan.transport {
        Transport::Poll => "/sub",
        Transport::Stream => "/stream",
        Transport::Sse => "/sse",
        Transport::Ws => "/ws",
    };
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "GET {path}?cname={}{}&seq={}",
        plan.prefix,
        plan.channel_of(conn.index),
        conn.sub.seq.next_seq(),
    );
    if plan.transport != Transport::Ws {
        let _ = write!(out, "&noop={}", conn.sub.noop);
    }
    if plan.transport == Transport::Poll {
        let _ = write!(out, "&cb={CALLBACK}");
    }
    if let Some(token) = &conn.sub.token {
        out.extend_from_slice(b"&token=");
        out.extend_from_slice(token);
    }
    let _ = write!(out, " HTTP/1.1\r\nHost: {}\r\n", plan.front);
    if plan.transport == Transport::Ws {
        out.extend_from_slice(ws_frames::UPGRADE_HEADERS.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Sends the next subscription request on an open connection.
pub fn send_request(conn: &mut Conn, env: &mut Env<'_>) -> Result<(), ErrorKind> {
    write_request(conn, env.plan, env.req);
    conn.sub.frames = 0;
    conn.phase = Phase::AwaitHead;
    conn.since_ns = env.now;
    conn.send(env.req)
}

/// What one response step revealed.
#[derive(Default)]
struct Verdict {
    head: Option<u16>,
    error: Option<ErrorKind>,
    /// Pongs for the server's pings (no allocation unless one came).
    replies: Vec<u8>,
    /// The server's close frame arrived, with this code.
    close: Option<Option<u16>>,
}

/// Handles bytes read from a subscriber connection.
pub fn on_bytes(conn: &mut Conn, mut input: &[u8], env: &mut Env<'_>) -> Action {
    while !input.is_empty() {
        let mut v = Verdict::default();
        let Conn { reader, sub, .. } = conn;
        let fed = reader.feed(input, &mut |ev| match ev {
            Event::Head { status } => v.head = Some(status),
            Event::Line(line) => on_line(line, sub, env, &mut v),
            Event::Ping(payload) => ws_frames::client_frame(OP_PONG, payload, &mut v.replies),
            Event::Close(code) => v.close = Some(code),
        });
        let fed = match fed {
            Ok(f) => f,
            Err(_) => return Action::Close(Some(ErrorKind::Parse)),
        };
        input = input.get(fed.consumed..).unwrap_or(&[]);
        if let Some(action) = after_step(conn, v, fed.ended, env) {
            return action;
        }
    }
    conn.reader.release_idle_buffer();
    Action::Keep
}

/// The server closed the connection.
pub fn on_eof(conn: &mut Conn, env: &mut Env<'_>) -> Action {
    let mut v = Verdict::default();
    let Conn { reader, sub, .. } = conn;
    let ended = reader.eof(&mut |ev| {
        if let Event::Line(line) = ev {
            on_line(line, sub, env, &mut v);
        }
    });
    match ended {
        Ok(Some(_)) => after_step(conn, v, Some(false), env).unwrap_or(Action::Reconnect),
        Ok(None) | Err(_) => Action::Close(Some(ErrorKind::Closed)),
    }
}

/// Applies a verdict; `Some(action)` when the connection must stop reading.
fn after_step(
    conn: &mut Conn,
    v: Verdict,
    ended: Option<bool>,
    env: &mut Env<'_>,
) -> Option<Action> {
    if let Some(status) = v.head {
        let ok = match env.plan.transport {
            Transport::Ws => 101,
            _ => 200,
        };
        if status != ok {
            return Some(Action::Close(Some(ErrorKind::HttpStatus)));
        }
        conn.phase = Phase::Open;
        let ramp_done = conn.sub.mark_held(&mut env.stats.c, env.ramp_pending);
        if ramp_done && env.plan.scenario == Scenario::Connect {
            record_us(
                &mut env.stats.latency,
                env.now.saturating_sub(conn.started_ns) / 1000,
            );
        }
    }
    if let Some(err) = v.error {
        return Some(Action::Close(Some(err)));
    }
    if !v.replies.is_empty() {
        if let Err(e) = conn.send(&v.replies) {
            return Some(Action::Close(Some(e)));
        }
    }
    if env.plan.scenario == Scenario::Churn && conn.sub.frames > 0 {
        env.stats.c.cycles += 1;
        let us = env.now.saturating_sub(conn.started_ns) / 1000;
        record_us(&mut env.stats.latency, us);
        return Some(Action::Close(None));
    }
    if let Some(code) = v.close {
        // Echo the close (best effort: the server closes the TCP connection after its own); a
        // normal closure is a subscription the server ended, like a stream's last chunk.
        let mut echo = Vec::new();
        let payload = code.map(u16::to_be_bytes);
        ws_frames::client_frame(
            OP_CLOSE,
            payload.as_ref().map_or(&[][..], |p| &p[..]),
            &mut echo,
        );
        let _ = conn.send(&echo);
        return Some(match code {
            Some(1000) => Action::Reconnect,
            _ => Action::Close(Some(ErrorKind::Closed)),
        });
    }
    match ended {
        None => None,
        Some(false) => Some(Action::Reconnect),
        Some(true) => match send_request(conn, env) {
            Ok(()) => None,
            Err(e) => Some(Action::Close(Some(e))),
        },
    }
}

fn on_line(line: &[u8], sub: &mut SubState, env: &mut Env<'_>, v: &mut Verdict) {
    let parsed = for_each_message(line, |m| on_message(m, sub, env, v));
    if parsed.is_err() {
        v.error = Some(ErrorKind::Parse);
    }
}

fn on_message(m: Message<'_>, sub: &mut SubState, env: &mut Env<'_>, v: &mut Verdict) {
    sub.frames = sub.frames.saturating_add(1);
    let seq = m.seq as i32; // iComet seqs are 32-bit and wrap
    match m.kind {
        Kind::Data | Kind::Broadcast => deliver(&m, seq, sub, env),
        Kind::NextSeq => sub.seq.on_next_seq(seq),
        Kind::Noop => {
            env.stats.c.noops += 1;
            sub.noop = seq.wrapping_add(1);
        }
        Kind::Close => env.stats.c.closes += 1,
        Kind::Unauthorized | Kind::TooMany => v.error = Some(ErrorKind::HttpStatus),
        Kind::Sign | Kind::Ok | Kind::Ping | Kind::Other => {}
    }
}

fn deliver(m: &Message<'_>, seq: i32, sub: &mut SubState, env: &mut Env<'_>) {
    let c = &mut env.stats.c;
    c.deliveries += 1;
    let fresh = match sub.seq.on_data(seq) {
        SeqOutcome::InOrder => true,
        SeqOutcome::Lost(n) => {
            c.lost += u64::from(n);
            true
        }
        SeqOutcome::Duplicate => {
            c.duplicated += 1;
            false
        }
        SeqOutcome::Late => {
            c.out_of_order += 1;
            c.lost = c.lost.saturating_sub(1);
            true
        }
    };
    if fresh && env.measuring {
        c.unique_deliveries += 1;
    }
    if env.plan.scenario == Scenario::Fanout {
        if let Some((sent_ns, _id)) = parse_stamp(m.content) {
            if c.first_delivery_ns == 0 {
                c.first_delivery_ns = env.now;
            }
            c.last_delivery_ns = env.now;
            record_us(
                &mut env.stats.latency,
                env.now.saturating_sub(sent_ns) / 1000,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvParts;
    use crate::plan::plan_from_args;

    #[test]
    fn long_poll_request_looks_like_icomet_js() {
        let p = plan_from_args(&[
            "lg",
            "connect",
            "-n",
            "10",
            "--per-channel",
            "2",
            "--front",
            "127.0.0.1:8100",
        ]);
        let mut c = Conn {
            index: 5,
            ..Conn::default()
        };
        c.sub.noop = 3;
        c.sub.token = Some(b"abc123".to_vec().into_boxed_slice());
        let mut out = Vec::new();
        write_request(&c, &p, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET /sub?cname=lg2&seq=0&noop=3&cb=icomet_cb_0&token=abc123 HTTP/1.1\r\nHost: 127.0.0.1:8100\r\n\r\n"
        );
    }

    #[test]
    fn stream_counts_lost_and_follows_noop() {
        let p = plan_from_args(&["lg", "connect", "-n", "1", "--transport", "stream"]);
        let mut parts = EnvParts {
            ramp_pending: 1,
            ..EnvParts::default()
        };
        let mut env = parts.env(&p, 1);
        let mut c = Conn::default();
        c.sub.ramping = true;
        let frames = [
            "{\"type\":\"next_seq\",\"cname\":\"lg0\",\"seq\":1,\"content\":\"\"}\n",
            "{\"type\":\"data\",\"cname\":\"lg0\",\"seq\":1,\"content\":\"hello\"}\n",
            "{\"type\":\"data\",\"cname\":\"lg0\",\"seq\":3,\"content\":\"hello\"}\n",
            "{\"type\":\"noop\",\"cname\":\"lg0\",\"seq\":7,\"content\":\"\"}\n",
        ];
        let mut body = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for f in frames {
            body.push_str(&format!("{:x}\r\n{f}\r\n", f.len()));
        }
        assert_eq!(on_bytes(&mut c, body.as_bytes(), &mut env), Action::Keep);
        assert_eq!(*env.ramp_pending, 0);
        let s = &env.stats.c;
        assert_eq!((s.held, s.deliveries, s.lost, s.noops), (1, 2, 1, 1));
        assert_eq!(c.sub.noop, 8);
        assert_eq!(c.sub.seq.next_seq(), 4);
        let bad = b"6\r\nhello\n\r\n";
        assert_eq!(
            on_bytes(&mut c, bad, &mut env),
            Action::Close(Some(ErrorKind::Parse))
        );
    }

    /// A connection whose socket is one end of a loopback pair; the other end is returned.
    fn connected() -> (Conn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let mut c = Conn {
            stream: Some(client),
            phase: Phase::AwaitHead,
            ..Conn::default()
        };
        c.sub.ramping = true;
        (c, server)
    }

    /// A server frame.
    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode, payload.len() as u8];
        f.extend_from_slice(payload);
        f
    }

    /// Reads one masked client frame from the server's end: (first byte, unmasked payload).
    fn client_frame_at(server: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
        use std::io::Read;
        let mut head = [0u8; 6];
        server.read_exact(&mut head).expect("frame head");
        assert_eq!(head[1] & 0x80, 0x80, "client frames are masked");
        let mut payload = vec![0u8; usize::from(head[1] & 0x7f)];
        server.read_exact(&mut payload).expect("payload");
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= head[2 + i % 4];
        }
        (head[0], payload)
    }

    const SWITCHING: &str =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

    #[test]
    fn websocket_request_is_an_upgrade() {
        let p = plan_from_args(&["lg", "connect", "-n", "1", "--transport", "ws"]);
        let mut c = Conn::default();
        c.sub.token = Some(b"t0k".to_vec().into_boxed_slice());
        let mut out = Vec::new();
        write_request(&c, &p, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET /ws?cname=lg0&seq=0&token=t0k HTTP/1.1\r\nHost: 127.0.0.1:8100\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
    }

    #[test]
    fn websocket_frames_are_messages_and_pings_are_answered() {
        let p = plan_from_args(&["lg", "fanout", "-n", "1", "--transport", "ws"]);
        let mut parts = EnvParts {
            ramp_pending: 1,
            ..EnvParts::default()
        };
        let mut env = parts.env(&p, 1);
        let (mut c, mut server) = connected();
        let mut input = SWITCHING.as_bytes().to_vec();
        input.extend(frame(
            1,
            br#"{"type":"next_seq","cname":"lg0","seq":1,"content":"","epoch":7}"#,
        ));
        input.extend(frame(
            1,
            br#"{"type":"data","cname":"lg0","seq":1,"content":"a"}"#,
        ));
        input.extend(frame(9, b"hb"));
        input.extend(frame(
            1,
            br#"{"type":"data","cname":"lg0","seq":3,"content":"b"}"#,
        ));
        assert_eq!(on_bytes(&mut c, &input, &mut env), Action::Keep);
        let s = &env.stats.c;
        assert_eq!((s.held, s.deliveries, s.lost), (1, 2, 1));
        assert_eq!(*env.ramp_pending, 0);
        assert_eq!(
            client_frame_at(&mut server),
            (0x8a, b"hb".to_vec()),
            "the pong"
        );
        // The server's normal close is echoed and the subscription starts again.
        let close = frame(8, &1000u16.to_be_bytes());
        assert_eq!(on_bytes(&mut c, &close, &mut env), Action::Reconnect);
        assert_eq!(
            client_frame_at(&mut server),
            (0x88, vec![0x03, 0xe8]),
            "the echo"
        );
    }

    #[test]
    fn websocket_refusals_and_abnormal_closes_are_errors() {
        let p = plan_from_args(&["lg", "connect", "-n", "1", "--transport", "ws"]);
        let mut parts = EnvParts::default();
        let mut env = parts.env(&p, 1);
        let cases: [(Vec<u8>, Action); 4] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
                Action::Close(Some(ErrorKind::HttpStatus)),
            ),
            (
                [
                    SWITCHING.as_bytes(),
                    &frame(
                        1,
                        br#"{"type":"401","cname":"lg0","seq":0,"content":"Token error"}"#,
                    ),
                    &frame(8, &1008u16.to_be_bytes()),
                ]
                .concat(),
                Action::Close(Some(ErrorKind::HttpStatus)),
            ),
            (
                [SWITCHING.as_bytes(), &frame(8, &1001u16.to_be_bytes())].concat(),
                Action::Close(Some(ErrorKind::Closed)),
            ),
            (
                [SWITCHING.as_bytes(), &frame(2, b"bin")].concat(),
                Action::Close(Some(ErrorKind::Parse)),
            ),
        ];
        for (input, want) in cases {
            let (mut c, _server) = connected();
            assert_eq!(on_bytes(&mut c, &input, &mut env), want);
        }
    }
}
