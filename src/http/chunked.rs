//! Chunked request bodies (`Transfer-Encoding: chunked`): measured, then decoded into one `Vec`.
//! Depends on [`limits`](super::limits) for the limits, the rejection type and the byte helpers,
//! and on `memchr`.
//!
//! Rules: a size line is one or more hex digits, optionally followed by blanks and a `;extension`
//! (ignored; no control bytes), ended by CRLF or LF — blanks with no extension after them are 400; each chunk's data is followed by CRLF or LF; a zero-size chunk
//! ends the body, followed by optional trailer lines (each must hold a colon; ignored) and an empty
//! line. Anything else is 400.
//!
//! Bounds: the decoded size may not exceed `max_body_bytes` (413, as soon as a size line announces
//! too much), and the framing bytes (size lines, extensions, line ends, trailers) may not exceed
//! `max_header_bytes` in total (413, as soon as that many framing bytes are buffered). The framing
//! budget also bounds the number of chunks, so re-measuring a growing buffer is cheap: it hops from
//! size line to size line and never scans chunk data. Nothing is allocated until the body is
//! complete; then exactly the decoded size is allocated once.

use super::limits::{strip_cr, HttpLimits, Reject};
use memchr::memchr;

/// The answer of [`decode`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decoded {
    /// The body is not complete yet.
    Partial,
    /// The decoded body and the number of wire bytes it took (data + framing).
    Complete { body: Vec<u8>, wire_len: usize },
}

/// Decodes the chunked body at the start of `wire` (the bytes after the head).
pub fn decode(wire: &[u8], limits: &HttpLimits) -> Result<Decoded, Reject> {
    let Walked::Complete { wire_len, data_len } = walk(wire, limits, None)? else {
        return Ok(Decoded::Partial);
    };
    let mut body = Vec::with_capacity(data_len);
    // The second walk sees the same bytes, so it ends the same way.
    walk(wire, limits, Some(&mut body))?;
    Ok(Decoded::Complete { body, wire_len })
}

enum Walked {
    Partial,
    Complete { wire_len: usize, data_len: usize },
}

/// Walks the chunk framing; copies chunk data into `out` when given.
fn walk(wire: &[u8], limits: &HttpLimits, mut out: Option<&mut Vec<u8>>) -> Result<Walked, Reject> {
    let mut budget = Framing {
        used: 0,
        cap: limits.max_header_bytes,
    };
    let mut pos = 0;
    let mut data_len: usize = 0;
    loop {
        let Some(line) = budget.line(wire, &mut pos)? else {
            return Ok(Walked::Partial);
        };
        let size = chunk_size(line, limits.max_body_bytes.saturating_sub(data_len))?;
        if size == 0 {
            return trailers(wire, pos, &mut budget, data_len);
        }
        let Some(data) = wire.get(pos..).and_then(|rest| rest.get(..size)) else {
            return Ok(Walked::Partial);
        };
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(data);
        }
        data_len += size;
        pos += size;
        let end = match wire.get(pos..).unwrap_or_default() {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            [] | [b'\r'] => return Ok(Walked::Partial),
            _ => return Err(Reject::BadRequest),
        };
        budget.take(end)?;
        pos += end;
    }
}

/// Skips the trailer section that starts at `pos`, up to and including its empty line.
fn trailers(
    wire: &[u8],
    mut pos: usize,
    budget: &mut Framing,
    data_len: usize,
) -> Result<Walked, Reject> {
    loop {
        let Some(line) = budget.line(wire, &mut pos)? else {
            return Ok(Walked::Partial);
        };
        if line.is_empty() {
            return Ok(Walked::Complete {
                wire_len: pos,
                data_len,
            });
        }
        if memchr(b':', line).is_none() {
            return Err(Reject::BadRequest);
        }
    }
}

/// The framing-byte budget of one chunked body.
struct Framing {
    used: usize,
    cap: usize,
}

impl Framing {
    fn take(&mut self, bytes: usize) -> Result<(), Reject> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.cap {
            return Err(Reject::BodyTooLarge);
        }
        Ok(())
    }

    /// The framing line at `*pos` (without its line end), charged to the budget, with `*pos`
    /// moved past it; `None` while its line end has not arrived (and the budget still has room
    /// for the bytes buffered so far).
    fn line<'w>(&mut self, wire: &'w [u8], pos: &mut usize) -> Result<Option<&'w [u8]>, Reject> {
        let rest = wire.get(*pos..).unwrap_or_default();
        let Some((line, line_total)) = next_line(rest) else {
            if self.used.saturating_add(rest.len()) > self.cap {
                return Err(Reject::BodyTooLarge);
            }
            return Ok(None);
        };
        self.take(line_total)?;
        *pos += line_total;
        Ok(Some(line))
    }
}

/// The next line of `buf` without its line end, and the bytes it takes with the line end.
fn next_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let at = memchr(b'\n', buf)?;
    Some((strip_cr(buf.get(..at).unwrap_or_default()), at + 1))
}

/// Parses a size line; a size above `room` is 413.
fn chunk_size(line: &[u8], room: usize) -> Result<usize, Reject> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (hex, after_hex) = line.split_at(digits);
    let tail = after_hex
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .and_then(|at| after_hex.get(at..));
    // Blanks may only come before an extension (RFC 9112's BWS before `;`), and an extension
    // holds no control byte (a NUL there is how smuggling tricks start).
    let extension_ok = |ext: &[u8]| ext.iter().all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f));
    let valid = match tail {
        None => after_hex.is_empty(),
        Some(ext @ [b';', ..]) => extension_ok(ext),
        Some(_) => false,
    };
    if hex.is_empty() || !valid {
        return Err(Reject::BadRequest);
    }
    let mut size: usize = 0;
    for &digit in hex {
        size = size
            .checked_mul(16)
            .and_then(|size| size.checked_add(hex_value(digit)))
            .filter(|&size| size <= room)
            .ok_or(Reject::BodyTooLarge)?;
    }
    Ok(size)
}

fn hex_value(digit: u8) -> usize {
    usize::from(match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const LIMITS: HttpLimits = HttpLimits {
        max_header_bytes: 64,
        max_body_bytes: 32,
    };

    fn complete(wire: &[u8]) -> (Vec<u8>, usize) {
        match decode(wire, &LIMITS) {
            Ok(Decoded::Complete { body, wire_len }) => (body, wire_len),
            other => panic!("expected a complete body, got {other:?}"),
        }
    }

    #[test]
    fn decodes_chunks_with_crlf_and_bare_lf() {
        assert_eq!(
            complete(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            (b"abcde".to_vec(), 20)
        );
        assert_eq!(complete(b"3\nabc\n0\n\n"), (b"abc".to_vec(), 9));
    }

    #[test]
    fn upper_and_lower_hex_and_extensions() {
        assert_eq!(
            complete(b"A;name=v\r\n0123456789\r\n0\r\n\r\n").0,
            b"0123456789"
        );
        assert_eq!(
            complete(b"a \t;x\r\n0123456789\r\n0\r\n\r\n").0,
            b"0123456789"
        );
    }

    #[test]
    fn blanks_without_an_extension_and_control_bytes_in_one_are_refused() {
        for wire in [
            &b"14 \r\n"[..],
            b"3\t\r\nabc\r\n0\r\n\r\n",
            b"3;a=\0b\r\nabc\r\n0\r\n\r\n",
            b"3;\x01\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0 \r\n\r\n",
        ] {
            assert_eq!(decode(wire, &LIMITS), Err(Reject::BadRequest), "{wire:?}");
        }
    }

    #[test]
    fn trailers_are_skipped() {
        let (body, used) = complete(b"1\r\nx\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nGET");
        assert_eq!(body, b"x");
        assert_eq!(used, 29);
    }

    #[test]
    fn pipelined_bytes_are_not_consumed() {
        let wire = b"2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        assert_eq!(complete(wire).1, 12);
    }

    #[test]
    fn malformed_framing_is_bad_request() {
        for wire in [
            &b"\r\n"[..],
            b"x\r\n",
            b"3x\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"3\r\nabc\rX",
            b"0\r\nno colon\r\n\r\n",
            b"-1\r\n",
        ] {
            assert_eq!(decode(wire, &LIMITS), Err(Reject::BadRequest), "{wire:?}");
        }
    }

    #[test]
    fn every_prefix_is_partial() {
        let wire = b"3;e\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n";
        for cut in 0..wire.len() {
            assert_eq!(
                decode(&wire[..cut], &LIMITS),
                Ok(Decoded::Partial),
                "cut at {cut}"
            );
        }
        assert_eq!(
            complete(wire),
            (b"abc0123456789abcdef".to_vec(), wire.len())
        );
    }

    #[test]
    fn data_limit_is_enforced_at_the_size_line() {
        assert_eq!(decode(b"21\r\n", &LIMITS), Err(Reject::BodyTooLarge));
        assert_eq!(
            decode(b"ffffffffffffffffffffffff\r\n", &LIMITS),
            Err(Reject::BodyTooLarge)
        );
        // 20 + 12 = 32 fits; one more byte does not.
        let fits = [
            &b"14\r\n"[..],
            &[b'a'; 20],
            b"\r\nc\r\n",
            &[b'b'; 12],
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        assert_eq!(complete(&fits).0.len(), 32);
        let over = [&b"14\r\n"[..], &[b'a'; 20], b"\r\nd\r\n"].concat();
        assert_eq!(decode(&over, &LIMITS), Err(Reject::BodyTooLarge));
    }

    #[test]
    fn framing_budget_bounds_long_lines_and_many_chunks() {
        let long_ext = [&b"1;"[..], &[b'e'; 70]].concat();
        assert_eq!(decode(&long_ext, &LIMITS), Err(Reject::BodyTooLarge));
        let many: Vec<u8> = b"1\r\nx\r\n".iter().copied().cycle().take(6 * 14).collect();
        assert_eq!(decode(&many, &LIMITS), Err(Reject::BodyTooLarge));
        let long_trailer = [&b"0\r\nX: "[..], &[b'v'; 70]].concat();
        assert_eq!(decode(&long_trailer, &LIMITS), Err(Reject::BodyTooLarge));
    }
}
