//! What the request parser and the chunked-body decoder share: the size limits, the rejection
//! type and the byte helpers both scan with. Depends on nothing, so [`request`](super::request)
//! and [`chunked`](super::chunked) both import it and neither imports the other.

/// Number of header lines a request may carry; one more is [`Reject::HeaderTooLarge`].
pub const MAX_HEADERS: usize = 64;

/// Size limits applied by [`parse`](super::parse) and [`chunked::decode`](super::chunked::decode).
///
/// There is deliberately no `Default`: the server takes these from its configuration (the
/// `limits:` block), whose built-in values are the only defaults, so the two cannot disagree.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HttpLimits {
    /// Largest head (leading empty lines + request line + headers + blank line), in bytes. Also the
    /// budget for the framing bytes (size lines, CRLFs, trailers) of a chunked body.
    pub max_header_bytes: usize,
    /// Largest body, in bytes (the decoded size for a chunked body).
    pub max_body_bytes: usize,
}

/// Why a request is refused; the connection is answered with the error page and closed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reject {
    /// 400: malformed request line, header or framing.
    BadRequest,
    /// 501: a method or transfer coding rcomet does not implement.
    NotImplemented,
    /// 431: the head exceeds `max_header_bytes` or has more than [`MAX_HEADERS`] lines.
    HeaderTooLarge,
    /// 413: the body exceeds `max_body_bytes` (or its chunk framing exceeds `max_header_bytes`).
    BodyTooLarge,
    /// 414: the request line alone exceeds `max_header_bytes`.
    UriTooLong,
}

impl Reject {
    /// The HTTP status code for this rejection.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest => 400,
            Reject::NotImplemented => 501,
            Reject::HeaderTooLarge => 431,
            Reject::BodyTooLarge => 413,
            Reject::UriTooLong => 414,
        }
    }
}

/// `line` without one trailing CR.
pub(super) fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `value` without leading and trailing spaces and tabs.
pub(super) fn trim_blanks(value: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |last| last + 1);
    value.get(start..end).unwrap_or_default()
}
