//! The ping scenario's connections: keep-alive GET /ping with up to `--pipeline` requests in
//! flight, each reply counted with its latency. Depends on conn, env, http_reader, stats.

use std::io::Write;

use crate::conn::{Conn, Job};
use crate::env::{Action, Env};
use crate::http_reader::Event;
use crate::stats::{record_us, ErrorKind};

/// Sends `n` more /ping requests in one write.
pub fn send_pings(conn: &mut Conn, env: &mut Env<'_>, n: usize) -> Result<(), ErrorKind> {
    env.req.clear();
    for _ in 0..n {
        let _ = write!(
            env.req,
            "GET /ping HTTP/1.1\r\nHost: {}\r\n\r\n",
            env.plan.front
        );
        conn.jobs.push_back(Job::Ping { sent_ns: env.now });
    }
    if conn.jobs.len() == n {
        conn.since_ns = env.now;
    }
    conn.send(env.req)
}

/// Handles bytes read from a ping connection.
pub fn on_bytes(conn: &mut Conn, mut input: &[u8], env: &mut Env<'_>) -> Action {
    while !input.is_empty() {
        let mut status = None;
        let fed = conn.reader.feed(input, &mut |ev| {
            if let Event::Head { status: s } = ev {
                status = Some(s);
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
        let Some(Job::Ping { sent_ns }) = conn.jobs.pop_front() else {
            return Action::Close(Some(ErrorKind::Parse)); // a reply nobody asked for
        };
        if status == Some(200) {
            env.stats.c.requests += 1;
            record_us(
                &mut env.stats.latency,
                env.now.saturating_sub(sent_ns) / 1000,
            );
        } else {
            env.stats.error(ErrorKind::HttpStatus);
        }
        conn.since_ns = env.now;
        if !keep_alive {
            return Action::Reconnect;
        }
        if env.measuring {
            if let Err(e) = send_pings(conn, env, 1) {
                return Action::Close(Some(e));
            }
        }
    }
    conn.reader.release_idle_buffer();
    Action::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvParts;
    use crate::plan::plan_from_args;

    #[test]
    fn counts_replies_and_keeps_pipeline_full() {
        let plan = plan_from_args(&["lg", "ping", "-c", "1"]);
        let mut parts = EnvParts::default();
        let mut env = parts.env(&plan, 5_000);
        let mut conn = Conn::default(); // Connecting: requests are buffered
        send_pings(&mut conn, &mut env, 2).expect("send");
        assert_eq!(conn.jobs.len(), 2);
        let body = "icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n";
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        env.now = 9_000;
        assert_eq!(
            on_bytes(&mut conn, reply.as_bytes(), &mut env),
            Action::Keep
        );
        assert_eq!(env.stats.c.requests, 1);
        assert_eq!(conn.jobs.len(), 2, "one answered, one re-sent");
        assert_eq!(env.stats.latency.max(), 4);
    }
}
