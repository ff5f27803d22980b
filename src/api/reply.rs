//! Fixed-length replies in the header order iComet's HTTP layer produces: the handler's headers,
//! then `Date` (HTTP/1.1), `Connection: keep-alive` (HTTP/1.0 keep-alive), `Content-Length`, a
//! default `Content-Type` when the handler set none, and `Connection: close` when the request
//! said `Connection: close` (on either version; it replaces any Connection header of the
//! handler).
//!
//! Depends on: http (response writers), api (ReplyStyle).

use super::ReplyStyle;
use crate::http::response::{content_length, end_head, header, status_line};
use crate::http::Version;

/// The content type iComet's HTTP layer adds when a handler sets none.
pub const DEFAULT_CONTENT_TYPE: &[u8] = b"text/html; charset=ISO-8859-1";
/// The `Server` header every admin reply starts with.
pub const SERVER: (&str, &[u8]) = ("Server", b"icomet 0.2.5");

/// Writes a complete fixed-length reply.
pub fn fixed(
    out: &mut Vec<u8>,
    style: &ReplyStyle,
    date: &[u8],
    status: (u16, &str),
    headers: &[(&str, &[u8])],
    body: &[u8],
) {
    fixed_with_lines(out, style, date, status, headers, b"", body);
}

/// [`fixed`] with ready header `lines` (each ending in CRLF: the front port's CORS lines) after
/// the handler's headers.
pub fn fixed_with_lines(
    out: &mut Vec<u8>,
    style: &ReplyStyle,
    date: &[u8],
    status: (u16, &str),
    headers: &[(&str, &[u8])],
    lines: &[u8],
    body: &[u8],
) {
    status_line(out, style.version, status.0, status.1);
    let mut has_type = false;
    let mut has_connection = false;
    for (name, value) in headers {
        let connection = name.eq_ignore_ascii_case("Connection");
        if connection && style.asks_close {
            continue;
        }
        has_connection |= connection;
        has_type |= name.eq_ignore_ascii_case("Content-Type");
        header(out, name, value);
    }
    out.extend_from_slice(lines);
    let http11 = style.version == Version::Http11;
    if http11 {
        header(out, "Date", date);
    } else if style.keep_alive && !has_connection {
        header(out, "Connection", b"keep-alive");
    }
    if http11 || style.keep_alive {
        content_length(out, body.len());
    }
    if !has_type {
        header(out, "Content-Type", DEFAULT_CONTENT_TYPE);
    }
    if style.asks_close {
        header(out, "Connection", b"close");
    }
    end_head(out);
    if !style.head_only {
        out.extend_from_slice(body);
    }
}

/// A `204 No Content` reply (no Content-Length, no Content-Type) with ready header `lines`, in the
/// same order rules as [`fixed`].
pub fn no_content(out: &mut Vec<u8>, style: &ReplyStyle, date: &[u8], lines: &[u8]) {
    status_line(out, style.version, 204, "No Content");
    out.extend_from_slice(lines);
    if style.version == Version::Http11 {
        header(out, "Date", date);
    } else if style.keep_alive {
        header(out, "Connection", b"keep-alive");
    }
    if style.asks_close {
        header(out, "Connection", b"close");
    }
    end_head(out);
}

/// A 400 reply naming what is wrong with the request's parameters (the connection stays usable),
/// with the front port's CORS `lines`.
pub fn bad_request(out: &mut Vec<u8>, style: &ReplyStyle, date: &[u8], lines: &[u8], reason: &str) {
    bad_request_lines(out, style, date, &[], lines, reason);
}

/// A 400 reply after the port's own leading headers (the admin port's `Server`).
pub fn bad_request_with(
    out: &mut Vec<u8>,
    style: &ReplyStyle,
    date: &[u8],
    leading: &[(&str, &[u8])],
    reason: &str,
) {
    bad_request_lines(out, style, date, leading, b"", reason);
}

fn bad_request_lines(
    out: &mut Vec<u8>,
    style: &ReplyStyle,
    date: &[u8],
    leading: &[(&str, &[u8])],
    lines: &[u8],
    reason: &str,
) {
    let mut body = Vec::with_capacity(reason.len() + 16);
    body.extend_from_slice(b"bad request: ");
    body.extend_from_slice(reason.as_bytes());
    body.push(b'\n');
    let mut headers: Vec<(&str, &[u8])> = leading.to_vec();
    headers.push(("Content-Type", b"text/plain; charset=utf-8"));
    fixed_with_lines(
        out,
        style,
        date,
        (400, "Bad Request"),
        &headers,
        lines,
        &body,
    );
}

/// Wraps `json` as `cb(json);\n` when a callback is given, else `json\n`.
pub fn jsonp(out: &mut Vec<u8>, callback: Option<&[u8]>, json: &[u8]) {
    match callback {
        Some(cb) => {
            out.extend_from_slice(cb);
            out.push(b'(');
            out.extend_from_slice(json);
            out.extend_from_slice(b");\n");
        }
        None => {
            out.extend_from_slice(json);
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(version: Version, keep_alive: bool) -> ReplyStyle {
        ReplyStyle {
            version,
            keep_alive,
            asks_close: version == Version::Http11 && !keep_alive,
            head_only: false,
        }
    }

    #[test]
    fn ping_shape_for_http11_and_http10() {
        let mut out = Vec::new();
        let body = b"icomet_cb({\"type\":\"ping\",\"sub_timeout\":3});\n";
        fixed(
            &mut out,
            &style(Version::Http11, true),
            b"D",
            (200, "OK"),
            &[],
            body,
        );
        let expected = format!(
            "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 44\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(String::from_utf8_lossy(&out), expected);
        out.clear();
        fixed(
            &mut out,
            &style(Version::Http10, false),
            b"D",
            (200, "OK"),
            &[],
            b"p\n",
        );
        assert_eq!(
            out,
            b"HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\np\n"
        );
    }

    #[test]
    fn handler_headers_come_first_and_close_comes_last() {
        let mut out = Vec::new();
        let headers = [SERVER, ("Content-Type", &b"text/html; charset=utf-8"[..])];
        fixed(
            &mut out,
            &style(Version::Http11, false),
            b"D",
            (200, "OK"),
            &headers,
            b"x",
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nServer: icomet 0.2.5\r\nContent-Type: text/html; charset=utf-8\r\nDate: D\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx".to_vec()
        );
    }

    #[test]
    fn asking_for_close_on_http10_says_close_and_replaces_the_handlers_connection_header() {
        let mut out = Vec::new();
        let close10 = ReplyStyle {
            asks_close: true,
            ..style(Version::Http10, false)
        };
        fixed(&mut out, &close10, b"D", (200, "OK"), &[], b"p\n");
        assert_eq!(
            out,
            b"HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\nConnection: close\r\n\r\np\n"
        );
        let headers = [SERVER, ("Connection", &b"Close"[..])];
        for (s, want) in [
            (
                close10.clone(),
                "HTTP/1.0 403 Forbidden\r\nServer: icomet 0.2.5\r\nContent-Type: text/html; charset=ISO-8859-1\r\nConnection: close\r\n\r\n",
            ),
            (
                style(Version::Http10, false),
                "HTTP/1.0 403 Forbidden\r\nServer: icomet 0.2.5\r\nConnection: Close\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n",
            ),
            (
                style(Version::Http11, false),
                "HTTP/1.1 403 Forbidden\r\nServer: icomet 0.2.5\r\nDate: D\r\nContent-Length: 0\r\nContent-Type: text/html; charset=ISO-8859-1\r\nConnection: close\r\n\r\n",
            ),
            (
                style(Version::Http11, true),
                "HTTP/1.1 403 Forbidden\r\nServer: icomet 0.2.5\r\nConnection: Close\r\nDate: D\r\nContent-Length: 0\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n",
            ),
        ] {
            out.clear();
            fixed(&mut out, &s, b"D", (403, "Forbidden"), &headers, b"");
            assert_eq!(String::from_utf8_lossy(&out), want, "{s:?}");
        }
    }

    #[test]
    fn no_content_has_neither_length_nor_type() {
        let mut out = Vec::new();
        no_content(&mut out, &style(Version::Http11, true), b"D", b"A: b\r\n");
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\nA: b\r\nDate: D\r\n\r\n");
        out.clear();
        let close10 = ReplyStyle {
            asks_close: true,
            ..style(Version::Http10, false)
        };
        no_content(&mut out, &close10, b"D", b"");
        assert_eq!(out, b"HTTP/1.0 204 No Content\r\nConnection: close\r\n\r\n");
        out.clear();
        no_content(&mut out, &style(Version::Http10, true), b"D", b"");
        assert_eq!(
            out,
            b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn head_requests_get_no_body() {
        let mut out = Vec::new();
        let s = ReplyStyle {
            version: Version::Http11,
            keep_alive: true,
            asks_close: false,
            head_only: true,
        };
        fixed(&mut out, &s, b"D", (200, "OK"), &[], b"body");
        assert!(out.ends_with(
            b"Content-Length: 4\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n"
        ));
    }
}
