//! The subscriber protocol: builds /sub (JSONP long-poll, like icomet.js), /stream and /sse
//! requests, reads their responses, follows seq and noop as a browser does (re-poll after every
//! long-poll reply with the next seq, or the same seq and noop+1 after a heartbeat), checks seq
//! continuity and records push→deliver latency. Depends on conn, env, http_reader, message,
//! seq_check, stats, plan.

use std::io::Write;

use crate::cli::Transport;
use crate::conn::{Conn, Phase, SubState};
use crate::env::{Action, Env};
use crate::http_reader::Event;
use crate::message::{for_each_message, parse_stamp, Kind, Message};
use crate::plan::{Plan, Scenario};
use crate::seq_check::SeqOutcome;
use crate::stats::{record_us, ErrorKind};

/// JSONP callback name icomet.js uses for its first subscription.
const CALLBACK: &str = "icomet_cb_0";

/// Writes the subscription request for this connection's channel, seq, noop and token.
pub fn write_request(conn: &Conn, plan: &Plan, out: &mut Vec<u8>) {
    out.clear();
    let path = match plan.transport {
        Transport::Poll => "/sub",
        Transport::Stream => "/stream",
        Transport::Sse => "/sse",
    };
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "GET {path}?cname={}{}&seq={}&noop={}",
        plan.prefix,
        plan.channel_of(conn.index),
        conn.sub.seq.next_seq(),
        conn.sub.noop
    );
    if plan.transport == Transport::Poll {
        let _ = write!(out, "&cb={CALLBACK}");
    }
    if let Some(token) = &conn.sub.token {
        out.extend_from_slice(b"&token=");
        out.extend_from_slice(token);
    }
    let _ = write!(out, " HTTP/1.1\r\nHost: {}\r\n\r\n", plan.front);
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
}

/// Handles bytes read from a subscriber connection.
pub fn on_bytes(conn: &mut Conn, mut input: &[u8], env: &mut Env<'_>) -> Action {
    while !input.is_empty() {
        let mut v = Verdict::default();
        let Conn { reader, sub, .. } = conn;
        let fed = reader.feed(input, &mut |ev| match ev {
            Event::Head { status } => v.head = Some(status),
            Event::Line(line) => on_line(line, sub, env, &mut v),
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
        if status != 200 {
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
    if env.plan.scenario == Scenario::Churn && conn.sub.frames > 0 {
        env.stats.c.cycles += 1;
        let us = env.now.saturating_sub(conn.started_ns) / 1000;
        record_us(&mut env.stats.latency, us);
        return Some(Action::Close(None));
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
}
