//! Response writers: status line, headers, chunked framing, integers (by `itoa`) and the
//! libevent-style error pages. Each appends to a caller's `Vec<u8>`; none allocates beyond growing
//! it. Depends on [`request`](super::request) for `Version`.
//!
//! Error pages, as libevent 2.0's `evhttp_send_error` wrote them (byte for byte):
//! headers `Content-Type: text/html`, `Connection: close`, then `Date` and `Content-Length` (these
//! two on HTTP/1.1 only, as libevent added them only for 1.1 or 1.0 keep-alive requests and every
//! error page closes the connection), then the body. 404 has the lower-case page quoting the
//! HTML-escaped request URI; every other status has the upper-case `<HTML><HEAD>` page.

use super::request::Version;

/// The terminating chunk of a chunked response.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The interim response to `Expect: 100-continue` (libevent sends it only to HTTP/1.1 requests).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// `HTTP/1.1 200 OK\r\n`.
pub fn status_line(out: &mut Vec<u8>, version: Version, code: u16, reason: &str) {
    out.extend_from_slice(version.as_bytes());
    out.push(b' ');
    write_usize(out, usize::from(code));
    out.push(b' ');
    push_line_safe(out, reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `Name: value\r\n`. CR and LF inside the name or value are written as spaces, so a value taken
/// from a request can never split the response.
pub fn header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    push_line_safe(out, name.as_bytes());
    out.extend_from_slice(b": ");
    push_line_safe(out, value);
    out.extend_from_slice(b"\r\n");
}

/// `Content-Length: N\r\n`.
pub fn content_length(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(b"Content-Length: ");
    write_usize(out, len);
    out.extend_from_slice(b"\r\n");
}

/// The blank line that ends the head.
pub fn end_head(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}

/// A chunk size line in lower-case hex without leading zeros, as iComet: `3f\r\n`.
pub fn chunk_header(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 2 * std::mem::size_of::<usize>()];
    let mut start = digits.len();
    let mut rest = len;
    for slot in digits.iter_mut().rev() {
        *slot = HEX.get(rest & 0xf).copied().unwrap_or(b'0');
        start -= 1;
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
}

/// One chunk: size line, `data`, CRLF. Empty `data` writes nothing (a zero-size chunk would end the
/// response; use [`LAST_CHUNK`] for that).
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    chunk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal.
pub fn write_usize(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `n` in decimal, with a leading `-` when negative.
pub fn write_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The standard reason phrase for the statuses rcomet sends (`"Error"` for others).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

const PAGE_404_START: &[u8] =
    b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>The requested URL ";
const PAGE_404_END: &[u8] = b" was not found on this server.</p></body></html>\n";

/// A complete error response (head and body) for `code`; `uri` is the raw request target (quoted,
/// HTML-escaped, by the 404 page only), `date` the current RFC 1123 date (HTTP/1.1 only).
pub fn error_page(out: &mut Vec<u8>, version: Version, code: u16, uri: &[u8], date: &[u8]) {
    let reason = reason_phrase(code);
    status_line(out, version, code, reason);
    out.extend_from_slice(b"Content-Type: text/html\r\nConnection: close\r\n");
    let body_len = if code == 404 {
        PAGE_404_START.len() + escaped_len(uri) + PAGE_404_END.len()
    } else {
        // <HTML><HEAD>\n<TITLE>CODE REASON</TITLE>\n</HEAD><BODY>\n<H1>REASON</H1>\n</BODY></HTML>\n
        let code_len = itoa::Buffer::new().format(code).len();
        13 + 7 + code_len + 1 + reason.len() + 9 + 14 + 4 + reason.len() + 6 + 15
    };
    if version == Version::Http11 {
        header(out, "Date", date);
        content_length(out, body_len);
    }
    end_head(out);
    if code == 404 {
        out.extend_from_slice(PAGE_404_START);
        push_html_escaped(out, uri);
        out.extend_from_slice(PAGE_404_END);
    } else {
        out.extend_from_slice(b"<HTML><HEAD>\n<TITLE>");
        write_usize(out, usize::from(code));
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"</TITLE>\n</HEAD><BODY>\n<H1>");
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"</H1>\n</BODY></HTML>\n");
    }
}

fn html_escape(b: u8) -> Option<&'static [u8]> {
    match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'"' => Some(b"&quot;"),
        b'\'' => Some(b"&#039;"),
        _ => None,
    }
}

fn escaped_len(text: &[u8]) -> usize {
    text.iter()
        .map(|&b| html_escape(b).map_or(1, <[u8]>::len))
        .sum()
}

fn push_html_escaped(out: &mut Vec<u8>, text: &[u8]) {
    for &b in text {
        match html_escape(b) {
            Some(entity) => out.extend_from_slice(entity),
            None => out.push(b),
        }
    }
}

/// Appends `bytes`, writing CR and LF as spaces.
fn push_line_safe(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend_from_slice(bytes);
        return;
    }
    out.extend(
        bytes
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
