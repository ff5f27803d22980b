//! One readiness event on one connection: finish a non-blocking connect, flush pending request
//! bytes, read until EAGAIN (edge-triggered) and hand the bytes to the handler of the
//! connection's role. Returns what the event loop must do next. Depends on conn, env, sys, stats
//! and the role handlers (subscriber, admin, pinger).

use std::io::{self, Read};

use crate::conn::{Conn, Phase, Role};
use crate::env::{Action, Env};
use crate::stats::ErrorKind;
use crate::sys::{self, Ready};
use crate::{admin, pinger, subscriber};

/// Handles one epoll event for `conn`.
pub fn on_ready(conn: &mut Conn, ready: Ready, env: &mut Env<'_>, scratch: &mut [u8]) -> Action {
    if conn.phase == Phase::Connecting {
        if !ready.writable() {
            return Action::Keep;
        }
        let connected = conn
            .stream
            .as_ref()
            .is_some_and(|s| sys::take_socket_error(s).is_ok());
        if !connected {
            return Action::Close(Some(ErrorKind::Connect));
        }
        env.stats.c.established += 1;
        if let Err(e) = on_connected(conn, env) {
            return Action::Close(Some(e));
        }
    }
    if ready.writable() {
        if let Err(e) = conn.flush() {
            return Action::Close(Some(e));
        }
    }
    if ready.readable() {
        return read_all(conn, env, scratch);
    }
    Action::Keep
}

/// The TCP connection is up: start the role's conversation.
fn on_connected(conn: &mut Conn, env: &mut Env<'_>) -> Result<(), ErrorKind> {
    conn.since_ns = env.now;
    match conn.role {
        Role::Subscriber => subscriber::send_request(conn, env),
        Role::Ping => {
            conn.phase = Phase::Open;
            conn.sub.mark_held(&mut env.stats.c, env.ramp_pending);
            if env.measuring {
                pinger::send_pings(conn, env, env.plan.pipeline)
            } else {
                Ok(())
            }
        }
        Role::Admin | Role::Free => {
            conn.phase = Phase::Open;
            Ok(())
        }
    }
}

fn read_all(conn: &mut Conn, env: &mut Env<'_>, scratch: &mut [u8]) -> Action {
    loop {
        let Some(stream) = conn.stream.as_mut() else {
            return Action::Close(Some(ErrorKind::Closed));
        };
        match stream.read(scratch) {
            Ok(0) => return on_eof(conn, env),
            Ok(n) => {
                let input = scratch.get(..n).unwrap_or(&[]);
                let action = match conn.role {
                    Role::Subscriber => subscriber::on_bytes(conn, input, env),
                    Role::Admin => admin::on_bytes(conn, input, env),
                    Role::Ping => pinger::on_bytes(conn, input, env),
                    Role::Free => Action::Close(None),
                };
                if action != Action::Keep {
                    return action;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Action::Keep,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Action::Close(Some(ErrorKind::Closed)),
        }
    }
}

fn on_eof(conn: &mut Conn, env: &mut Env<'_>) -> Action {
    match conn.role {
        Role::Subscriber => subscriber::on_eof(conn, env),
        // An idle keep-alive connection the server closed is not an error; the pool reopens it.
        Role::Admin | Role::Ping if conn.jobs.is_empty() && conn.reader.is_idle() => {
            if conn.role == Role::Ping {
                Action::Reconnect
            } else {
                Action::Close(None)
            }
        }
        _ => Action::Close(Some(ErrorKind::Closed)),
    }
}
