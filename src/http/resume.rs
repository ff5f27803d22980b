//! Resuming the parse of a partial request head. [`parse_resuming`] answers exactly what
//! [`parse`] answers on the same buffer, but a [`HeadScan`] remembers how far the previous call on
//! a shorter prefix of that buffer got, so a head that trickles in (a byte per read, at worst) has
//! each of its bytes examined a bounded number of times instead of the whole buffer being parsed
//! again on every read (quadratic: ≈ 0.5 s of CPU for a 64 KiB head sent byte by byte).
//!
//! While the head is incomplete, the scan walks only the new bytes and answers `Partial` itself
//! when it can prove [`parse`] would: no bare CR, every completed header line accepted by
//! `httparse` (lines are independent there, except for their count), and the bytes of the line in
//! progress are ones `httparse` takes in a name (tokens) or a value. Anything else — the end of the
//! request line, the blank line ending the head, a byte that may be an error, a buffer over the
//! head limit — hands the buffer to [`parse`] once, whose answer is returned as it is; after a
//! `Partial` from [`parse`] the scan is rebuilt from the start (one more pass).
//!
//! Depends on: [`request`](super::request) (`parse`, the token rule), [`limits`](super::limits),
//! `httparse`.

use super::limits::{HttpLimits, MAX_HEADERS};
use super::request::{is_token_byte, parse, skip_empty_lines, Parsed};

/// How far the parse of a partial head got, for the next call on the same (grown) buffer. Start
/// each request with `HeadScan::default()`; [`parse_resuming`] resets it when it answers
/// `Complete` or `Reject` (the next request starts after `used`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadScan {
    state: State,
    /// Bytes of the buffer examined so far.
    pos: usize,
    /// Bytes examined over every call (for tests and benchmarks: the work done).
    examined: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Nothing known yet: the next call hands the buffer to [`parse`].
    #[default]
    Unknown,
    /// Only empty lines so far (`pos` may be followed by a lone CR).
    Leading,
    /// Inside the request line.
    RequestLine,
    /// Inside the header lines (the request line was accepted): the line in progress starts at
    /// `line` and `colon` says whether it passed its colon; `lines` lines are complete.
    Headers {
        line: usize,
        colon: bool,
        lines: usize,
    },
    /// The head is complete and the body is not: every call hands the buffer to [`parse`].
    Body,
}

impl HeadScan {
    /// Bytes examined by the calls that used this scan (grows by about the bytes that arrived).
    pub fn examined(&self) -> usize {
        self.examined
    }

    /// The offset the next call resumes at.
    pub fn resume_at(&self) -> usize {
        self.pos
    }
}

/// [`parse`] of `buf`, resumed from `scan` (which must come from calls on prefixes of this same
/// buffer, or be the default). Same answer as `parse(buf, limits)`, always.
pub fn parse_resuming<'a>(buf: &'a [u8], limits: &HttpLimits, scan: &mut HeadScan) -> Parsed<'a> {
    let examined = scan.examined;
    if buf.len() <= limits.max_header_bytes && scan.pos <= buf.len() {
        if let Some(next) = advance(buf, *scan, false) {
            *scan = next;
            return Parsed::Partial {
                send_continue: false,
            };
        }
    }
    let parsed = parse(buf, limits);
    // A full parse examines the whole buffer once more, and so does the rebuilt scan.
    let examined = examined.saturating_add(buf.len());
    let body = scan.state == State::Body;
    *scan = match &parsed {
        Parsed::Partial { .. } if body => HeadScan { examined, ..*scan },
        Parsed::Partial { .. } if buf.len() <= limits.max_header_bytes => {
            let fresh = HeadScan {
                examined,
                ..HeadScan::default()
            };
            // The scan stops at the blank line only when the head is complete (the body is
            // not); otherwise it reaches the end.
            advance(buf, fresh, true).unwrap_or(HeadScan {
                state: State::Body,
                pos: 0,
                examined: examined.saturating_add(buf.len()),
            })
        }
        _ => HeadScan {
            examined,
            ..HeadScan::default()
        },
    };
    parsed
}

/// Walks `buf` from where `scan` stopped. `Some`: the head is still incomplete and [`parse`]
/// answers `Partial` (the scan to keep); `None`: [`parse`] must decide. With `trusted`, the buffer
/// is one [`parse`] just answered `Partial` for, so the request line needs no check.
fn advance(buf: &[u8], scan: HeadScan, trusted: bool) -> Option<HeadScan> {
    let mut s = scan;
    if s.state == State::Body {
        return None;
    }
    if s.state == State::Unknown {
        if !trusted {
            return None;
        }
        s.state = State::Leading;
        s.pos = 0;
    }
    let from = s.pos;
    let result = walk(buf, &mut s, trusted);
    s.examined = s.examined.saturating_add(s.pos.saturating_sub(from));
    result.then_some(s)
}

/// The state machine of [`advance`]; false when [`parse`] must decide.
fn walk(buf: &[u8], s: &mut HeadScan, trusted: bool) -> bool {
    if s.state == State::Leading {
        let rest = buf.get(s.pos..).unwrap_or_default();
        s.pos += skip_empty_lines(rest);
        match buf.get(s.pos..) {
            Some([]) | Some([b'\r']) | None => return true,
            Some(_) => s.state = State::RequestLine,
        }
    }
    while let Some(&b) = buf.get(s.pos) {
        let at = s.pos;
        // A CR not followed by LF is a bare CR: 400 at once.
        if at > 0 && buf.get(at - 1) == Some(&b'\r') && b != b'\n' {
            return false;
        }
        match &mut s.state {
            State::Unknown | State::Leading | State::Body => return false,
            State::RequestLine => {
                if b == b'\n' {
                    if !trusted {
                        return false; // the request line is complete: `parse` checks it
                    }
                    s.state = State::Headers {
                        line: at + 1,
                        colon: false,
                        lines: 0,
                    };
                }
            }
            State::Headers { line, colon, lines } => {
                if at == *line {
                    // A blank line ends the head; a line must start with a name.
                    if !is_token_byte(b) {
                        return false;
                    }
                } else if !*colon {
                    if b == b':' {
                        *colon = true;
                    } else if !is_token_byte(b) {
                        return false;
                    }
                } else if b == b'\n' {
                    let text = buf.get(*line..=at).unwrap_or_default();
                    let mut one = [httparse::EMPTY_HEADER; 1];
                    if httparse::parse_headers(text, &mut one) != Ok(httparse::Status::Partial) {
                        return false;
                    }
                    *lines += 1;
                    if *lines > MAX_HEADERS {
                        return false;
                    }
                    *line = at + 1;
                    *colon = false;
                } else if b != b'\r' && !is_value_byte(b) {
                    return false;
                }
            }
        }
        s.pos += 1;
    }
    true
}

/// A byte `httparse` accepts inside a header value (tab, visible ASCII and space, obs-text).
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=0x7e).contains(&b) || b >= 0x80
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
