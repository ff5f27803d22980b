//! Helpers for the admin-port tests: the exact heads of admin replies (Date normalised) and a
//! `/stream` subscriber to watch what a publish delivers. Depends on the parent support module.
#![allow(dead_code)]

use super::front::{chunk, expect, msg};
use super::*;

/// The content type of /sign, /info, /check, /clear and /close replies.
pub const UTF8: &str = "text/html; charset=utf-8";
/// The content type of /push and /pub replies.
pub const JS: &str = "text/javascript; charset=utf-8";

/// The head of an admin reply with a handler content type (Date normalised).
pub fn admin_head(status: &str, content_type: &str, len: usize) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: icomet 0.2.5\r\nContent-Type: {content_type}\r\nDate: D\r\nContent-Length: {len}\r\n"
    )
}

/// The head of an admin reply that relies on the default content type.
pub fn admin_head_default(status: &str, len: usize) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: icomet 0.2.5\r\nDate: D\r\nContent-Length: {len}\r\nContent-Type: text/html; charset=ISO-8859-1\r\n"
    )
}

/// Opens a `/stream` subscriber and consumes its head and `next_seq` frame.
pub fn stream(server: &Server, cname: &str, next: i64) -> Conn {
    let mut c = Conn::open(server.front);
    c.get(&format!("/stream?cname={cname}"));
    let (status, _) = c.read_head();
    assert_eq!(status, 200);
    expect(
        &mut c,
        &chunk(&format!("{}\n", msg("next_seq", cname, next, ""))),
    );
    c
}
