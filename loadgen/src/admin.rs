//! The admin side: keep-alive connections that carry pipelined /sign (token for a subscriber) and
//! /push (fan-out message stamped with its send time) requests, and read their replies in order.
//! Depends on conn, env, http_reader, message, plan, stats.

use std::io::Write;

use crate::conn::{Conn, Job};
use crate::env::{Action, Env, SignDone};
use crate::http_reader::Event;
use crate::message::{for_each_message, stamp, Kind};
use crate::stats::ErrorKind;

/// Requests in flight per admin connection.
pub const ADMIN_PIPELINE: usize = 16;
/// Longest token accepted from /sign.
const MAX_TOKEN: usize = 128;

/// Appends a /sign request for channel `channel`.
pub fn write_sign(out: &mut Vec<u8>, env: &Env<'_>, channel: u64) {
    let _ = write!(
        out,
        "GET /sign?cname={}{channel} HTTP/1.1\r\nHost: {}\r\n\r\n",
        env.plan.prefix, env.plan.admin
    );
}

/// Appends a /push request for message `id`, stamped with the current time.
pub fn write_push(out: &mut Vec<u8>, env: &Env<'_>, id: u64) {
    let channel = id % env.plan.channels.max(1);
    let _ = write!(
        out,
        "GET /push?cname={}{channel}&content={} HTTP/1.1\r\nHost: {}\r\n\r\n",
        env.plan.prefix,
        stamp(env.now, id),
        env.plan.admin
    );
}

/// A token is passed back in a query string: accept only unreserved characters.
fn valid_token(t: &[u8]) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TOKEN
        && t.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[derive(Default)]
struct Reply {
    status: Option<u16>,
    token: Option<Box<[u8]>>,
    ok: bool,
    parse_error: bool,
}

/// Handles bytes read from an admin connection.
pub fn on_bytes(conn: &mut Conn, mut input: &[u8], env: &mut Env<'_>) -> Action {
    while !input.is_empty() {
        let mut r = Reply::default();
        let fed = conn.reader.feed(input, &mut |ev| match ev {
            Event::Head { status } => r.status = Some(status),
            Event::Line(line) => {
                let parsed = for_each_message(line, |m| match m.kind {
                    Kind::Sign if valid_token(m.token) => r.token = Some(m.token.into()),
                    Kind::Ok => r.ok = true,
                    _ => {}
                });
                r.parse_error |= parsed.is_err();
            }
        });
        let fed = match fed {
            Ok(f) => f,
            Err(_) => return Action::Close(Some(ErrorKind::Parse)),
        };
        input = input.get(fed.consumed..).unwrap_or(&[]);
        let Some(keep_alive) = fed.ended else {
            continue;
        };
        let Some(job) = conn.jobs.pop_front() else {
            return Action::Close(Some(ErrorKind::Parse)); // a reply nobody asked for
        };
        finish_job(job, r, env);
        conn.since_ns = env.now;
        if !keep_alive {
            return Action::Close(None);
        }
    }
    conn.reader.release_idle_buffer();
    Action::Keep
}

fn finish_job(job: Job, r: Reply, env: &mut Env<'_>) {
    let failure = match r.status {
        Some(200) if !r.parse_error => None,
        Some(200) => Some(ErrorKind::Parse),
        _ => Some(ErrorKind::HttpStatus),
    };
    match job {
        Job::Sign { slot, gen } => {
            let token = match (failure, r.token) {
                (None, Some(t)) => {
                    env.stats.c.signs_ok += 1;
                    Ok(t)
                }
                (None, None) => Err(ErrorKind::Parse),
                (Some(e), _) => Err(e),
            };
            env.signed.push(SignDone { slot, gen, token });
        }
        Job::Push { .. } => match failure {
            None if r.ok => env.stats.c.pushes_ok += 1,
            None => fail_push(env, ErrorKind::Parse),
            Some(e) => fail_push(env, e),
        },
        Job::Ping { .. } => {}
    }
}

fn fail_push(env: &mut Env<'_>, kind: ErrorKind) {
    env.stats.c.pushes_failed += 1;
    env.stats.error(kind);
}

/// The admin connection is gone: fail what was in flight on it.
pub fn fail_jobs(conn: &mut Conn, env: &mut Env<'_>) {
    while let Some(job) = conn.jobs.pop_front() {
        match job {
            Job::Sign { slot, gen } => env.signed.push(SignDone {
                slot,
                gen,
                token: Err(ErrorKind::Closed),
            }),
            Job::Push { .. } => env.stats.c.pushes_failed += 1,
            Job::Ping { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvParts;
    use crate::plan::plan_from_args;

    #[test]
    fn pipelined_sign_and_push_replies() {
        let plan = plan_from_args(&["lg", "fanout", "-n", "4", "--admin", "127.0.0.1:8000"]);
        let mut parts = EnvParts::default();
        let mut env = parts.env(&plan, 77);
        let mut out = Vec::new();
        write_push(&mut out, &env, 6);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET /push?cname=lg2&content=77.6 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
        );
        let mut conn = Conn::default();
        conn.jobs.push_back(Job::Sign { slot: 3, gen: 1 });
        conn.jobs.push_back(Job::Push { id: 0 });
        conn.jobs.push_back(Job::Sign { slot: 4, gen: 1 });
        let sign = "{\"type\":\"sign\",\"cname\":\"lg0\",\"seq\":1,\"token\":\"105c26e5\",\"expires\":30,\"sub_timeout\":30}\n";
        let ok = "{\"type\":\"ok\"}\n";
        let replies = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{sign}HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{ok}HTTP/1.1 429 Too Many Channels\r\nContent-Length: 0\r\n\r\n",
            sign.len(),
            ok.len()
        );
        assert_eq!(
            on_bytes(&mut conn, replies.as_bytes(), &mut env),
            Action::Keep
        );
        assert!(conn.jobs.is_empty());
        assert_eq!(env.stats.c.pushes_ok, 1);
        assert_eq!(env.signed.len(), 2);
        assert_eq!(env.signed[0].token.as_deref(), Ok(&b"105c26e5"[..]));
        assert_eq!(env.signed[1].token, Err(ErrorKind::HttpStatus));
    }

    #[test]
    fn tokens_must_be_query_safe() {
        assert!(valid_token(b"0a1b"));
        assert!(!valid_token(b"a&b"));
        assert!(!valid_token(b""));
    }
}
