//! The admin side: keep-alive connections that carry pipelined /sign (token for a subscriber),
//! /push (fan-out message stamped with its send time) and admin-scenario requests (/push, /sign or
//! /info?cname= to channel `<prefix><i>`), and read their replies in order. Depends on cli, conn,
//! env, http_reader, message, plan, stats.

use std::io::Write;

use crate::cli::AdminOp;
use crate::conn::{Conn, Job};
use crate::env::{Action, Env, SignDone};
use crate::http_reader::Event;
use crate::message::{for_each_message, write_stamp, Kind};
use crate::stats::{record_us, ErrorKind};

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

/// Appends a /push request for message `id` to `channel`, stamped with the current time.
fn write_push_to(out: &mut Vec<u8>, env: &Env<'_>, channel: u64, id: u64) {
    let _ = write!(out, "GET /push?cname={}{channel}&content=", env.plan.prefix);
    write_stamp(out, env.now, id, env.plan.msg_size);
    let _ = write!(out, " HTTP/1.1\r\nHost: {}\r\n\r\n", env.plan.admin);
}

/// Appends the fan-out's /push request for message `id` (to channel `id mod channels`).
pub fn write_push(out: &mut Vec<u8>, env: &Env<'_>, id: u64) {
    write_push_to(out, env, id % env.plan.channels.max(1), id);
}

/// Appends admin-scenario request `index`: --op to channel `<prefix><index>`.
pub fn write_admin_request(out: &mut Vec<u8>, env: &Env<'_>, index: u64) {
    let path = match env.plan.admin_op {
        AdminOp::Push => return write_push_to(out, env, index, index),
        AdminOp::Sign => "sign",
        AdminOp::Info => "info",
    };
    let _ = write!(
        out,
        "GET /{path}?cname={}{index} HTTP/1.1\r\nHost: {}\r\n\r\n",
        env.plan.prefix, env.plan.admin
    );
}

/// A token is passed back in a query string: accept only unreserved characters.
fn valid_token(t: &[u8]) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TOKEN
        && t.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// What has been read of one reply so far (a reply may span several reads).
#[derive(Default, Debug)]
pub struct Reply {
    status: Option<u16>,
    token: Option<Box<[u8]>>,
    ok: bool,
    /// At least one JSON object came in the body.
    objects: bool,
    parse_error: bool,
}

/// Handles bytes read from an admin connection.
pub fn on_bytes(conn: &mut Conn, mut input: &[u8], env: &mut Env<'_>) -> Action {
    while !input.is_empty() {
        let mut r = conn.partial_reply.take().map(|b| *b).unwrap_or_default();
        let fed = conn.reader.feed(input, &mut |ev| match ev {
            Event::Head { status } => r.status = Some(status),
            Event::Line(line) => {
                let parsed = for_each_message(line, |m| match m.kind {
                    Kind::Sign if valid_token(m.token) => r.token = Some(m.token.into()),
                    Kind::Ok => r.ok = true,
                    _ => {}
                });
                r.objects |= parsed.is_ok_and(|n| n > 0);
                r.parse_error |= parsed.is_err();
            }
            // Only after a 101, which no admin request asks for.
            Event::Ping(_) | Event::Close(_) => r.parse_error = true,
        });
        let fed = match fed {
            Ok(f) => f,
            Err(_) => return Action::Close(Some(ErrorKind::Parse)),
        };
        input = input.get(fed.consumed..).unwrap_or(&[]);
        let Some(keep_alive) = fed.ended else {
            // The rest of this reply comes with a later read.
            conn.partial_reply = Some(Box::new(r));
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
    if r.status != Some(200) && matches!(job, Job::Push { .. } | Job::Admin { .. }) {
        env.stats.c.non_200 += 1;
    }
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
        Job::Push { .. } => {
            env.stats.c.last_push_reply_ns = env.now;
            match failure {
                None if r.ok => env.stats.c.pushes_ok += 1,
                None => fail_push(env, ErrorKind::Parse),
                Some(e) => fail_push(env, e),
            }
        }
        Job::Admin { sent_ns } => {
            let expected = match env.plan.admin_op {
                AdminOp::Push => r.ok,
                AdminOp::Sign => r.token.is_some(),
                AdminOp::Info => r.objects,
            };
            match failure {
                None if expected => {
                    env.stats.c.requests += 1;
                    let us = env.now.saturating_sub(sent_ns) / 1000;
                    record_us(&mut env.stats.latency, us);
                }
                None => fail_request(env, ErrorKind::Parse),
                Some(e) => fail_request(env, e),
            }
        }
        Job::Ping { .. } => {}
    }
}

fn fail_request(env: &mut Env<'_>, kind: ErrorKind) {
    env.stats.c.requests_failed += 1;
    env.stats.error(kind);
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
            Job::Admin { .. } => env.stats.c.requests_failed += 1,
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
    fn admin_scenario_requests_and_replies() {
        let plan = plan_from_args(&[
            "lg",
            "admin",
            "--op",
            "info",
            "--channel-prefix",
            "m",
            "--admin",
            "127.0.0.1:8000",
        ]);
        let mut parts = EnvParts::default();
        let mut env = parts.env(&plan, 9_000_000);
        let mut out = Vec::new();
        write_admin_request(&mut out, &env, 41);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET /info?cname=m41 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
        );
        let mut conn = Conn::default();
        for sent_ns in [1_000_000, 2_000_000, 3_000_000] {
            conn.jobs.push_back(Job::Admin { sent_ns });
        }
        let info = "{\"cname\": \"m41\", \"subscribers\": 0}\n";
        let replies = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{info}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 429 Too Many Channels\r\nContent-Length: 0\r\n\r\n",
            info.len()
        );
        assert_eq!(
            on_bytes(&mut conn, replies.as_bytes(), &mut env),
            Action::Keep
        );
        let c = &env.stats.c;
        assert_eq!((c.requests, c.requests_failed, c.non_200), (1, 2, 1));
        assert_eq!(
            (c.errors.parse, c.errors.http_status),
            (1, 1),
            "empty body, 429"
        );
        let h = &env.stats.latency;
        assert_eq!(h.len(), 1);
        assert!(
            h.equivalent(h.max(), 8_000),
            "µs from send to reply: {}",
            h.max()
        );

        let push = plan_from_args(&["lg", "admin", "--op", "push", "--msg-size", "40"]);
        let env = parts.env(&push, 5);
        out.clear();
        write_admin_request(&mut out, &env, 7);
        let text = String::from_utf8_lossy(&out);
        let content = text
            .strip_prefix("GET /push?cname=lg7&content=")
            .and_then(|t| t.split(' ').next())
            .unwrap_or_default();
        assert_eq!(content.len(), 40, "{text}");
        assert!(content.starts_with("5.7-xx"), "{text}");
    }

    #[test]
    fn tokens_must_be_query_safe() {
        assert!(valid_token(b"0a1b"));
        assert!(!valid_token(b"a&b"));
        assert!(!valid_token(b""));
    }
}
