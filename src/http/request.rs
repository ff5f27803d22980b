//! HTTP/1.0 and 1.1 request parsing: one stateless function, [`parse`], called again on the grown
//! buffer until it answers `Complete` or `Reject`. Depends on `httparse` (header block), `memchr`
//! (byte searches), and on [`limits`](super::limits), [`chunked`] and [`percent_decode`] from
//! this module tree.
//!
//! The request line is checked here rather than by `httparse`, which would refuse targets that are
//! not UTF-8 or hold `{`, `"` and similar bytes (libevent accepted them, and iComet clients send
//! them) and could not tell a 501 method from a 400 line; `httparse` checks the header block.
//!
//! Behaviour (libevent 2.0 evhttp as seen by iComet clients, plus limits):
//! * Leading empty lines (CRLF or LF) before the request line are skipped; they count towards `used`
//!   and towards `max_header_bytes`, but not towards [`Request::head`].
//! * Request line: exactly three fields separated by single spaces, else 400. The version must be
//!   exactly `HTTP/1.0` or `HTTP/1.1`, else 400. The target may hold any byte above 0x20 except
//!   DEL (raw UTF-8 and `{"<>` are accepted); control bytes are 400. The method must be a token;
//!   GET POST HEAD PUT DELETE OPTIONS are accepted (OPTIONS only for the front port's CORS
//!   preflight: the admin port answers it with the 501 page), any other token (PATCH, `get`,
//!   BREW) is 501 as soon as the request line is complete; a non-token method is 400. Syntax
//!   errors win over 501.
//! * Line ends: CRLF or bare LF, in the request line, the headers and chunked framing.
//! * Headers are checked by `httparse`: a line without a colon, a space before the colon, a control
//!   byte in a value or an obsolete folded continuation line is 400 (libevent accepted folding; it
//!   is a request-smuggling vector and no client of ours sends it). At most [`MAX_HEADERS`] header
//!   lines; one more is 431, like a head that is too large.
//! * The head (leading empty lines + request line + headers + blank line) may not exceed
//!   `max_header_bytes`; a longer head, complete or still partial, is 431 as soon as more bytes than
//!   the limit are buffered without the head being complete.
//! * Body: `Content-Length` (digits only; duplicates must agree; else 400); a length above
//!   `max_body_bytes` is 413 at once. `Transfer-Encoding: chunked` is decoded (see
//!   [`chunked`]); any other transfer coding, or more than one Transfer-Encoding
//!   header, is 501; Transfer-Encoding together with Content-Length is 400. Without either, the body
//!   is empty, whatever the method.
//! * `Expect: 100-continue` on an HTTP/1.1 request with a body: `Partial { send_continue: true }`
//!   while the head is complete and not one body byte has arrived yet. Callers that may parse the
//!   same bytes twice remember that they sent the interim response. Other expectations are ignored.
//! * Keep-alive: HTTP/1.1 unless a `Connection` header lists `close`; HTTP/1.0 only if it lists
//!   `keep-alive` and not `close`. Whether it lists `close` is kept too ([`Request::asks_close`]).
//! * Target: an absolute-form target (`http://host/path?q`) is reduced to its path and query. The
//!   path ends at the first `?` or `#`; the query runs from the first `?` to the next `#` (the
//!   fragment is dropped, as libevent's URI parser did).
//!
//! Cost: every call re-parses the head (bounded by `max_header_bytes`, with `httparse`'s SIMD
//! scanners; [`resume`](super::resume) gives the same answers without re-reading a partial head)
//! and hops over chunk headers (bounded by the chunk-framing budget); a `Content-Length`
//! body is never scanned. Nothing allocates except a completed chunked body and a percent-encoded
//! path.

use std::borrow::Cow;

use super::chunked::{self, Decoded};
use super::limits::{strip_cr, trim_blanks, HttpLimits, Reject, MAX_HEADERS};
use super::query::percent_decode;
use memchr::{memchr, memchr_iter};

/// The methods rcomet serves; every other method is answered with 501.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Method {
    Get,
    Post,
    Head,
    Put,
    Delete,
    /// A CORS preflight (answered on the front port only).
    Options,
}

impl Method {
    /// The method for an exact (case-sensitive) token, if it is one of ours.
    pub fn from_token(token: &[u8]) -> Option<Method> {
        match token {
            b"GET" => Some(Method::Get),
            b"POST" => Some(Method::Post),
            b"HEAD" => Some(Method::Head),
            b"PUT" => Some(Method::Put),
            b"DELETE" => Some(Method::Delete),
            b"OPTIONS" => Some(Method::Options),
            _ => None,
        }
    }

    /// The token as sent on the wire.
    #[cfg(test)]
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

/// The protocol versions rcomet speaks; replies echo the request's version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }
}

/// A complete request, borrowing from the caller's buffer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Request<'a> {
    pub method: Method,
    pub version: Version,
    /// Raw request-target as sent (used by the 404 page).
    pub uri: &'a [u8],
    /// The part before `?` (or `#`), percent-decoded, `+` kept as `+`.
    pub path: Cow<'a, [u8]>,
    /// Raw bytes after the first `?` up to any `#`; empty if none.
    pub query: &'a [u8],
    /// A `Content-Length` body is borrowed; a chunked body is decoded (owned).
    pub body: Cow<'a, [u8]>,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The `Connection` header lists `close` (on either version): the reply says
    /// `Connection: close`, as libevent's does.
    pub asks_close: bool,
    /// The first `Origin` header's value (trimmed), for CORS.
    pub origin: Option<&'a [u8]>,
    /// The raw head: request line + headers + blank line (without leading empty lines).
    pub head: &'a [u8],
}

impl<'a> Request<'a> {
    /// The first header called `name` (ASCII case-insensitive), with surrounding blanks trimmed.
    /// Scans the head: for headers read rarely (the parser keeps the common ones).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        let name = name.as_bytes();
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All header lines in order, as (name, trimmed value).
    pub fn headers(&self) -> Headers<'a> {
        let after_request_line = match memchr(b'\n', self.head) {
            Some(at) => self.head.get(at + 1..).unwrap_or_default(),
            None => &[],
        };
        Headers {
            rest: after_request_line,
        }
    }
}

/// Iterator over the header lines of a [`Request::head`]; see [`Request::headers`].
#[derive(Clone, Debug)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (line, rest) = match memchr(b'\n', self.rest) {
                Some(at) => self.rest.split_at(at),
                None => (self.rest, &[][..]),
            };
            self.rest = rest.get(1..).unwrap_or_default();
            let line = strip_cr(line);
            if line.is_empty() {
                self.rest = &[];
                return None;
            }
            if let Some(colon) = memchr(b':', line) {
                let (name, value) = line.split_at(colon);
                return Some((name, trim_blanks(value.get(1..).unwrap_or_default())));
            }
        }
    }
}

/// The answer of [`parse`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Parsed<'a> {
    /// More bytes are needed. `send_continue`: the head is complete, it asked for
    /// `100-continue` and no body byte has arrived yet.
    Partial { send_continue: bool },
    /// A whole request; `used` bytes were consumed (head + body), pipelined bytes follow.
    Complete { req: Request<'a>, used: usize },
    /// The request is refused.
    Reject(Reject),
}

/// Parses the request at the start of `buf`. Never panics; `used <= buf.len()`.
/// Measured: ≈ 270 ns for a /push head, ≈ 380 ns for a browser's JSONP /sub (benches/parse.rs,
/// bench/RESULTS.md), so parsing is a small part of a request's cost next to its syscalls.
pub fn parse<'a>(buf: &'a [u8], limits: &HttpLimits) -> Parsed<'a> {
    match parse_request(buf, limits) {
        Ok(parsed) => parsed,
        Err(reject) => Parsed::Reject(reject),
    }
}

/// What the header lines say about framing and the connection, and the CORS origin.
#[derive(Default)]
struct HeadFacts<'a> {
    content_length: Option<u64>,
    transfer_encodings: usize,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    origin: Option<&'a [u8]>,
    hosts: usize,
}

fn parse_request<'a>(buf: &'a [u8], limits: &HttpLimits) -> Result<Parsed<'a>, Reject> {
    // Only the first `max_header_bytes` may hold the head; more bytes without a complete head
    // mean the head is too large.
    let window = buf.get(..limits.max_header_bytes).unwrap_or(buf);
    let need_more = if buf.len() > limits.max_header_bytes {
        Err(Reject::HeaderTooLarge)
    } else {
        Ok(Parsed::Partial {
            send_continue: false,
        })
    };

    let start = skip_empty_lines(window);
    let from_start = window.get(start..).unwrap_or_default();
    if has_bare_cr(from_start) {
        return Err(Reject::BadRequest);
    }
    let Some(line_len) = memchr(b'\n', from_start) else {
        // A request line that does not fit the head limit is a target too long to serve (blank
        // lines alone are an oversized head).
        if from_start.is_empty() {
            return need_more;
        }
        return need_more.map_err(|_| Reject::UriTooLong);
    };
    let line = strip_cr(from_start.get(..line_len).unwrap_or_default());
    let (method, uri, version) = request_line(line)?;

    let headers_at = start + line_len + 1;
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let block = window.get(headers_at..).unwrap_or_default();
    let (block_len, facts) = match httparse::parse_headers(block, &mut slots) {
        Ok(httparse::Status::Complete((len, headers))) => (len, head_facts(headers)?),
        Ok(httparse::Status::Partial) => return need_more,
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeaderTooLarge),
        Err(_) => return Err(Reject::BadRequest),
    };
    let head_end = headers_at + block_len;
    let head = buf.get(start..head_end).unwrap_or_default();
    let after_head = buf.get(head_end..).unwrap_or_default();
    let may_continue = facts.expect_continue && version == Version::Http11 && after_head.is_empty();

    let (body, body_len) = if let Some(declared) = facts.content_length {
        let len = usize::try_from(declared)
            .ok()
            .filter(|&len| len <= limits.max_body_bytes)
            .ok_or(Reject::BodyTooLarge)?;
        match after_head.get(..len) {
            Some(body) => (Cow::Borrowed(body), len),
            None => {
                return Ok(Parsed::Partial {
                    send_continue: may_continue,
                })
            }
        }
    } else if facts.chunked {
        match chunked::decode(after_head, limits)? {
            Decoded::Partial => {
                return Ok(Parsed::Partial {
                    send_continue: may_continue,
                })
            }
            Decoded::Complete { body, wire_len } => (Cow::Owned(body), wire_len),
        }
    } else {
        (Cow::Borrowed(&[][..]), 0)
    };

    let (path, query) = split_target(uri);
    let keep_alive = match version {
        Version::Http11 => !facts.close,
        Version::Http10 => facts.keep_alive && !facts.close,
    };
    let req = Request {
        method,
        version,
        uri,
        path: percent_decode(path, false),
        query,
        body,
        keep_alive,
        asks_close: facts.close,
        origin: facts.origin,
        head,
    };
    Ok(Parsed::Complete {
        req,
        used: head_end + body_len,
    })
}

/// Checks the request line (without its line end): `METHOD SP target SP version`.
fn request_line(line: &[u8]) -> Result<(Method, &[u8], Version), Reject> {
    // Exactly two spaces (SIMD search: the target is most of the line).
    let mut spaces = memchr_iter(b' ', line);
    let (Some(first), Some(second), None) = (spaces.next(), spaces.next(), spaces.next()) else {
        return Err(Reject::BadRequest);
    };
    let method = line.get(..first).unwrap_or_default();
    let uri = line.get(first + 1..second).unwrap_or_default();
    let version = line.get(second + 1..).unwrap_or_default();
    let version = match version {
        b"HTTP/1.0" => Version::Http10,
        b"HTTP/1.1" => Version::Http11,
        _ => return Err(Reject::BadRequest),
    };
    // No control byte, space or DEL (a reduction without early exit, so it vectorizes).
    let controls = uri
        .iter()
        .fold(false, |seen, &b| seen | (b <= b' ') | (b == 0x7f));
    if uri.is_empty() || controls {
        return Err(Reject::BadRequest);
    }
    // Raw bytes above 0x7f are accepted as UTF-8 (iComet clients send raw UTF-8); a byte that
    // cannot be UTF-8, such as a raw 0xff, is a bad request line, not an unknown path.
    if std::str::from_utf8(uri).is_err() {
        return Err(Reject::BadRequest);
    }
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(Reject::BadRequest);
    }
    let method = Method::from_token(method).ok_or(Reject::NotImplemented)?;
    Ok((method, uri, version))
}

/// Collects framing and connection facts from the header lines `httparse` accepted.
fn head_facts<'a>(headers: &[httparse::Header<'a>]) -> Result<HeadFacts<'a>, Reject> {
    let mut facts = HeadFacts::default();
    for header in headers {
        let name = header.name.as_bytes();
        let value = trim_blanks(header.value);
        if name.eq_ignore_ascii_case(b"content-length") {
            let len = content_length(value)?;
            if facts.content_length.is_some_and(|earlier| earlier != len) {
                return Err(Reject::BadRequest);
            }
            facts.content_length = Some(len);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            facts.transfer_encodings += 1;
            facts.chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim_blanks) {
                facts.close |= token.eq_ignore_ascii_case(b"close");
                facts.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            facts.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"origin") && facts.origin.is_none() {
            facts.origin = Some(value);
        } else if name.eq_ignore_ascii_case(b"host") {
            facts.hosts += 1;
        }
    }
    // RFC 9112 §3.2: more than one Host is a 400.
    if facts.hosts > 1 {
        return Err(Reject::BadRequest);
    }
    if facts.transfer_encodings > 0 {
        if facts.content_length.is_some() {
            return Err(Reject::BadRequest);
        }
        if facts.transfer_encodings > 1 || !facts.chunked {
            return Err(Reject::NotImplemented);
        }
    }
    Ok(facts)
}

/// A `Content-Length` value: one or more ASCII digits. Saturates (and is then too large).
fn content_length(value: &[u8]) -> Result<u64, Reject> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Reject::BadRequest);
    }
    Ok(value.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Splits a request-target into (raw path, raw query), dropping any fragment and the scheme and
/// authority of an absolute-form target.
fn split_target(uri: &[u8]) -> (&[u8], &[u8]) {
    let target = origin_form(uri);
    let path_end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let (path, rest) = target.split_at(path_end);
    let query = match rest.split_first() {
        Some((b'?', after)) => {
            let end = memchr(b'#', after).unwrap_or(after.len());
            after.get(..end).unwrap_or_default()
        }
        _ => &[],
    };
    (path, query)
}

/// For `http://host/p?q` (or https), the `/p?q` part; any other target unchanged.
fn origin_form(uri: &[u8]) -> &[u8] {
    let after_scheme = [&b"http://"[..], &b"https://"[..]]
        .into_iter()
        .find_map(|scheme| {
            let prefix = uri.get(..scheme.len())?;
            prefix
                .eq_ignore_ascii_case(scheme)
                .then(|| uri.get(scheme.len()..).unwrap_or_default())
        });
    match after_scheme {
        Some(rest) => {
            let authority_end = rest
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
            rest.get(authority_end..).unwrap_or_default()
        }
        None => uri,
    }
}

/// Whether the head holds a CR that is not part of a CRLF (bare CR line ends are 400 at once,
/// not a wait for a line end that never comes). A CR as the last byte buffered may still be
/// followed by its LF.
fn has_bare_cr(head: &[u8]) -> bool {
    // Only the head is examined: it ends at its first empty line (CRLF or LF line ends), that is
    // at an LF followed by LF or by CRLF (with a byte after it buffered).
    let end = memchr_iter(b'\n', head)
        .find(|&at| matches!(head.get(at + 1..at + 3), Some([b'\n', _] | [b'\r', b'\n'])))
        .map_or(head.len(), |at| at + 1);
    let head = head.get(..end).unwrap_or(head);
    // A CR as the head's last byte has nothing after it yet.
    memchr_iter(b'\r', head).any(|at| head.get(at + 1).is_some_and(|&next| next != b'\n'))
}

/// Number of bytes taken by empty lines (CRLF or LF) at the start of `buf`.
pub(super) fn skip_empty_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match buf.get(at..) {
            Some([b'\r', b'\n', ..]) => at += 2,
            Some([b'\n', ..]) => at += 1,
            _ => return at,
        }
    }
}

/// RFC 9110 `tchar` (the header-name bytes `httparse` takes, too).
pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
