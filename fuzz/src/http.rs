//! Targets of the HTTP request parser (`http::parse`: heads, `Content-Length` and chunked bodies,
//! pipelining) and of the query and form decoder (`Params`, `percent_decode`, and the typed
//! parameters of `api::params` read through it).
//!
//! Invariants checked for every request `parse` answers `Complete` (under the built-in limits
//! and under small ones):
//! * the head (with any leading empty lines) is at most `max_header_bytes`, the body at most
//!   `max_body_bytes`, and `used` bytes were consumed, no more than were given;
//! * the answer does not depend on the bytes after the request (`parse(&buf[..used])` is the same);
//! * every shorter prefix is `Partial` (the worker calls `parse` again on the grown buffer, one
//!   byte at a time in the worst case), asking for `100-continue` exactly when the head is
//!   complete, it asked, and no body byte has arrived;
//! * the request re-serialised (canonical request line and headers, the body with a
//!   `Content-Length`) parses to the same method, version, target, path, query, body and
//!   keep-alive.
//!
//! A `Partial` answer never holds more than a whole head, a whole body and its chunk framing.
//!
//! `http::parse_resuming`, fed the input as it grows (a byte at a time, then in larger steps),
//! answers on every prefix exactly what `parse` answers, for every input (requests or not).
//!
//! Parameters: `Params::get` and `percent_decode` agree with reference models, percent-encoding
//! any bytes decodes back to them, `seq=` is accepted exactly as a 32-bit decimal, `/pub`'s
//! verbatim content check accepts exactly the insides of a JSON string (RFC 8259), and a
//! `Last-Event-ID` value that is accepted reads back the same once written.

use std::borrow::Cow;

use rcomet::api::frame::EventId;
use rcomet::api::params;
use rcomet::http::chunked::{self, Decoded};
use rcomet::http::{self, percent_decode, HttpLimits, Method, Params, Parsed, Reject, Request};

use crate::digest;

/// The limits requests are parsed under: the server's built-in ones, and small ones that fuzz
/// inputs reach easily.
fn limit_sets() -> [HttpLimits; 2] {
    let built_in = rcomet::config::Limits::default();
    [
        HttpLimits {
            max_header_bytes: built_in.max_header_bytes,
            max_body_bytes: built_in.max_body_bytes,
        },
        HttpLimits {
            max_header_bytes: 200,
            max_body_bytes: 40,
        },
    ]
}

/// Pipelined requests checked per input.
const MAX_PIPELINED: usize = 8;

/// Requests up to this size have every prefix parsed; longer ones a sample.
const ALL_PREFIXES_UP_TO: usize = 1024;

/// `data` is the bytes a client sent on one connection.
pub fn http_request(data: &[u8]) {
    for limits in limit_sets() {
        check_stream(data, &limits);
        check_resumed(data, &limits);
    }
}

/// `parse_resuming` on the growing buffer answers what `parse` does, prefix after prefix, until
/// an answer other than `Partial` (the first request's).
fn check_resumed(data: &[u8], limits: &HttpLimits) {
    let mut scan = http::HeadScan::default();
    let mut n = 0;
    while n < data.len() {
        // Every prefix of a short input; longer ones grow in steps, resuming all the same.
        n += if n < ALL_PREFIXES_UP_TO { 1 } else { 61 };
        n = n.min(data.len());
        let full = http::parse(&data[..n], limits);
        let resumed = http::parse_resuming(&data[..n], limits, &mut scan);
        assert_eq!(resumed, full, "resumed parse of a {n}-byte prefix");
        if !matches!(full, Parsed::Partial { .. }) {
            return;
        }
    }
}

/// The head every `http_chunked` input follows: `data` is the chunked body (and what follows).
pub const CHUNKED_HEAD: &[u8] =
    b"POST /push?cname=c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";

/// `data` is a chunked request body, after [`CHUNKED_HEAD`].
pub fn http_chunked(data: &[u8]) {
    let wire = [CHUNKED_HEAD, data].concat();
    for limits in limit_sets() {
        check_stream(&wire, &limits);
        check_chunked(data, &limits);
    }
    chunked_round_trip(data);
}

/// Parses the requests at the front of `data` one after another, checking each.
fn check_stream(data: &[u8], limits: &HttpLimits) {
    let mut rest = data;
    for _ in 0..MAX_PIPELINED {
        match http::parse(rest, limits) {
            Parsed::Complete { req, used } => {
                check_complete(rest, &req, used, limits);
                rest = &rest[used..];
            }
            Parsed::Partial { send_continue } => {
                check_partial(rest, send_continue, limits);
                return;
            }
            Parsed::Reject(_) => return,
        }
    }
}

/// What a `Partial` buffer may hold: a head, a body and the body's chunk framing.
fn check_partial(buf: &[u8], send_continue: bool, limits: &HttpLimits) {
    let bound = 2 * limits.max_header_bytes + limits.max_body_bytes + 1;
    assert!(
        buf.len() <= bound,
        "Partial on {} buffered bytes, more than head + body + framing ({bound})",
        buf.len()
    );
    if send_continue {
        assert!(
            buf.ends_with(b"\n"),
            "100-continue with body bytes buffered"
        );
    }
}

/// Where `part` (a non-empty sub-slice of `buf`) starts in `buf`.
fn offset_in(buf: &[u8], part: &[u8]) -> usize {
    let at = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    assert!(
        at + part.len() <= buf.len(),
        "a borrowed part outside the buffer"
    );
    at
}

fn check_complete(buf: &[u8], req: &Request<'_>, used: usize, limits: &HttpLimits) {
    assert!(
        used > 0 && used <= buf.len(),
        "used {used} of {}",
        buf.len()
    );
    let head_at = offset_in(buf, req.head);
    let head_end = head_at + req.head.len();
    assert!(
        head_end <= limits.max_header_bytes,
        "a head of {head_end} bytes under max_header_bytes {}",
        limits.max_header_bytes
    );
    assert!(head_end <= used);
    assert!(req.head.ends_with(b"\n"));
    assert!(
        req.body.len() <= limits.max_body_bytes,
        "a body of {} bytes under max_body_bytes {}",
        req.body.len(),
        limits.max_body_bytes
    );
    // Keep-alive: HTTP/1.1 unless a Connection header lists `close`; HTTP/1.0 only when one
    // lists `keep-alive` and none `close`.
    let listed = |token: &[u8]| {
        req.headers().any(|(name, value)| {
            name.eq_ignore_ascii_case(b"connection")
                && value
                    .split(|&b| b == b',')
                    .any(|t| trim_blanks(t).eq_ignore_ascii_case(token))
        })
    };
    let keep_alive = match req.version {
        http::Version::Http11 => !listed(b"close"),
        http::Version::Http10 => listed(b"keep-alive") && !listed(b"close"),
    };
    assert_eq!(req.keep_alive, keep_alive, "keep-alive");
    if let Cow::Borrowed(body) = &req.body {
        if !body.is_empty() {
            assert_eq!(offset_in(buf, body), head_end, "the body follows the head");
            assert_eq!(head_end + body.len(), used);
        }
    }
    // The request does not depend on what follows it.
    match http::parse(&buf[..used], limits) {
        Parsed::Complete {
            req: alone,
            used: u,
        } => {
            assert_eq!(u, used);
            assert_eq!(&alone, req, "the request alone parses differently");
        }
        other => panic!("the request alone ({used} bytes) gives {other:?}"),
    }
    // Growing: every prefix is Partial.
    let expects_continue = req.version == http::Version::Http11
        && req.headers().any(|(name, value)| {
            name.eq_ignore_ascii_case(b"expect") && value.eq_ignore_ascii_case(b"100-continue")
        });
    for cut in prefixes(used, head_end, digest(&buf[..used])) {
        match http::parse(&buf[..cut], limits) {
            Parsed::Partial { send_continue } => {
                if send_continue {
                    assert_eq!(
                        cut, head_end,
                        "100-continue asked at {cut}, not at the head's end"
                    );
                }
                if cut == head_end && expects_continue {
                    assert!(
                        send_continue,
                        "Expect: 100-continue not answered at the head's end"
                    );
                }
            }
            other => panic!("prefix {cut} of a complete {used}-byte request gives {other:?}"),
        }
    }
    reserialise(req);
}

/// The prefix lengths to check below `used`: all of them for small requests, else the ones
/// around the head's end and a sample.
fn prefixes(used: usize, head_end: usize, seed: u64) -> Vec<usize> {
    if used <= ALL_PREFIXES_UP_TO {
        return (0..used).collect();
    }
    let mut cuts: Vec<usize> = [
        0,
        1,
        head_end.saturating_sub(1),
        head_end,
        head_end + 1,
        used - 1,
    ]
    .into_iter()
    .filter(|&c| c < used)
    .collect();
    let mut x = seed;
    for _ in 0..64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        cuts.push((x >> 33) as usize % used);
    }
    cuts
}

/// `value` without leading and trailing spaces and tabs.
fn trim_blanks(value: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

fn method_token(method: Method) -> &'static [u8] {
    match method {
        Method::Get => b"GET",
        Method::Post => b"POST",
        Method::Head => b"HEAD",
        Method::Put => b"PUT",
        Method::Delete => b"DELETE",
        Method::Options => b"OPTIONS",
    }
}

/// Writes `req` canonically (CRLF line ends, `name: value`, the body with a `Content-Length`)
/// and checks that it parses to the same request.
fn reserialise(req: &Request<'_>) {
    let mut out = Vec::with_capacity(req.head.len() * 2 + req.body.len() + 32);
    out.extend_from_slice(method_token(req.method));
    out.push(b' ');
    out.extend_from_slice(req.uri);
    out.push(b' ');
    out.extend_from_slice(req.version.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in req.headers() {
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !req.body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", req.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    let head_len = out.len();
    out.extend_from_slice(&req.body);
    // Exactly the sizes of the re-serialised request: a limit is inclusive.
    let limits = HttpLimits {
        max_header_bytes: head_len,
        max_body_bytes: req.body.len(),
    };
    match http::parse(&out, &limits) {
        Parsed::Complete { req: again, used } => {
            assert_eq!(used, out.len());
            assert_eq!(again.method, req.method);
            assert_eq!(again.version, req.version);
            assert_eq!(again.uri, req.uri);
            assert_eq!(again.path, req.path);
            assert_eq!(again.query, req.query);
            assert_eq!(again.body, req.body);
            assert_eq!(again.keep_alive, req.keep_alive);
            assert_eq!(again.head, &out[..head_len]);
        }
        other => panic!(
            "re-serialised {:?} gives {other:?}",
            String::from_utf8_lossy(&out)
        ),
    }
}

/// `chunked::decode` on its own: a complete body is the same without what follows it, every
/// prefix is partial, and a partial body never holds more than the body and its framing.
fn check_chunked(wire: &[u8], limits: &HttpLimits) {
    match chunked::decode(wire, limits) {
        Ok(Decoded::Complete { body, wire_len }) => {
            assert!(
                wire_len <= wire.len() && wire_len >= 3,
                "wire_len {wire_len}"
            );
            assert!(body.len() <= limits.max_body_bytes);
            assert!(
                body.len() + 3 <= wire_len,
                "a body of {} in {wire_len} bytes",
                body.len()
            );
            let alone = chunked::decode(&wire[..wire_len], limits);
            assert_eq!(alone, Ok(Decoded::Complete { body, wire_len }));
            for cut in prefixes(wire_len, 0, digest(&wire[..wire_len])) {
                assert_eq!(
                    chunked::decode(&wire[..cut], limits),
                    Ok(Decoded::Partial),
                    "prefix {cut} of a {wire_len}-byte chunked body"
                );
            }
        }
        Ok(Decoded::Partial) => {
            let bound = limits.max_header_bytes + limits.max_body_bytes + 1;
            assert!(wire.len() <= bound, "Partial on {} bytes", wire.len());
        }
        Err(_) => {}
    }
}

/// Encodes `data` as a chunked body (chunk sizes, hex case, extensions, line ends and trailers
/// taken from the input's digest) and checks that it decodes to `data`, that limits equal to the
/// exact sizes accept it and that one byte less refuses it.
fn chunked_round_trip(data: &[u8]) {
    let mut x = digest(data) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut wire = Vec::with_capacity(data.len() * 2 + 16);
    let mut rest = data;
    while !rest.is_empty() {
        let r = next();
        let size = match r % 8 {
            0 => rest.len(),
            1..=3 => 1 + (r >> 8) as usize % 4,
            _ => 1 + (r >> 8) as usize % 64,
        }
        .min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let hex = if r & 0x100 != 0 {
            format!("{size:X}")
        } else {
            format!("{size:x}")
        };
        wire.extend_from_slice(hex.as_bytes());
        if r & 0x200 != 0 {
            wire.extend_from_slice(b" \t;ext=\"v\"");
        }
        let eol: &[u8] = if r & 0x400 != 0 { b"\n" } else { b"\r\n" };
        wire.extend_from_slice(eol);
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(eol);
    }
    wire.extend_from_slice(b"0\r\n");
    if next() & 1 != 0 {
        wire.extend_from_slice(b"X-Trailer: 1\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    let framing = wire.len() - data.len();
    let exact = HttpLimits {
        max_header_bytes: framing,
        max_body_bytes: data.len(),
    };
    assert_eq!(
        chunked::decode(&wire, &exact),
        Ok(Decoded::Complete {
            body: data.to_vec(),
            wire_len: wire.len()
        }),
        "{:?}",
        String::from_utf8_lossy(&wire)
    );
    let less_framing = HttpLimits {
        max_header_bytes: framing - 1,
        ..exact
    };
    assert_eq!(
        chunked::decode(&wire, &less_framing),
        Err(Reject::BodyTooLarge)
    );
    if !data.is_empty() {
        let less_body = HttpLimits {
            max_body_bytes: data.len() - 1,
            ..exact
        };
        assert_eq!(
            chunked::decode(&wire, &less_body),
            Err(Reject::BodyTooLarge)
        );
    }
}

/// `data` is a query string, then optionally a newline and a form body.
pub fn http_query(data: &[u8]) {
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let params = Params::new(query, body);
    let mut names = vec![
        "cname", "seq", "cb", "content", "token", "noop", "CName", "",
    ];
    let pieces = body
        .into_iter()
        .flat_map(|b| b.split(|&c| c == b'&'))
        .chain(query.split(|&c| c == b'&'));
    for piece in pieces.take(16) {
        let name = piece.split(|&b| b == b'=').next().unwrap_or_default();
        if let Ok(name) = std::str::from_utf8(name) {
            names.push(name);
        }
    }
    for name in names {
        assert_eq!(
            params.get(name).map(Cow::into_owned),
            model_get(query, body, name),
            "parameter {name:?}"
        );
    }
    let seed = digest(data);
    for plus in [false, true] {
        let decoded = percent_decode(data, plus);
        assert_eq!(decoded[..], model_decode(data, plus)[..]);
        assert!(decoded.len() <= data.len());
        let nothing_to_do = !data.iter().any(|&b| b == b'%' || (plus && b == b'+'));
        assert_eq!(matches!(decoded, Cow::Borrowed(_)), nothing_to_do);
        let encoded = model_encode(data, plus, seed);
        assert_eq!(
            percent_decode(&encoded, plus)[..],
            data[..],
            "decode(encode(x))"
        );
    }
    // Typed parameters and header values read from the same bytes.
    check_seq(&params);
    if let Some(content) = params.get("content") {
        check_verbatim(&content);
    }
    check_verbatim(data);
    check_event_id(data);
    // A query written from pieces of the input finds each name's first value.
    let values: Vec<&[u8]> = data.chunks(7).take(12).collect();
    let mut built = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            built.push(b'&');
        }
        let name = if (seed >> i) & 1 != 0 { "K" } else { "k" };
        built.extend_from_slice(format!("{name}{}=", i % 3).as_bytes());
        built.extend_from_slice(&model_encode(value, true, seed >> i));
    }
    let built = Params::new(&built, None);
    for i in 0..3 {
        let want = values.get(i).map(|v| v.to_vec());
        assert_eq!(built.get(&format!("k{i}")).map(Cow::into_owned), want);
    }
}

/// The reference lookup: the first `name=value` piece of the body, else of the query, whose
/// non-empty name equals `name` ignoring ASCII case; its value decoded with `+` as space.
fn model_get(query: &[u8], body: Option<&[u8]>, name: &str) -> Option<Vec<u8>> {
    let find = |pairs: &[u8]| -> Option<Vec<u8>> {
        for piece in pairs.split(|&b| b == b'&') {
            let Some(eq) = piece.iter().position(|&b| b == b'=') else {
                continue;
            };
            let piece_name = &piece[..eq];
            if !piece_name.is_empty() && piece_name.eq_ignore_ascii_case(name.as_bytes()) {
                return Some(model_decode(&piece[eq + 1..], true));
            }
        }
        None
    };
    body.and_then(find).or_else(|| find(query))
}

/// The reference decoder: `%` and two hex digits is a byte, `+` a space when asked; anything
/// else is kept.
fn model_decode(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' && plus_as_space { b' ' } else { b });
        i += 1;
    }
    out
}

/// Percent-encodes every byte but the unreserved ones (a space as `+` when `plus_as_space`), in
/// upper or lower case hex as `seed` says.
fn model_encode(input: &[u8], plus_as_space: bool, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3);
    for (i, &b) in input.iter().enumerate() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else if b == b' ' && plus_as_space {
            out.push(b'+');
        } else if (seed >> (i % 64)) & 1 != 0 {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    out
}

/// `seq=`: accepted exactly as a decimal in `i32::MIN..=u32::MAX`, taken modulo 2^32.
fn check_seq(p: &Params<'_>) {
    let got = params::seq(p, "seq");
    let Some(raw) = p.get("seq") else {
        assert_eq!(got, Ok(0), "a missing seq is 0");
        return;
    };
    if let Ok(seq) = got {
        if raw.is_empty() {
            assert_eq!(seq, 0);
            return;
        }
        let text = std::str::from_utf8(&raw)
            .expect("an accepted seq is text")
            .trim();
        let n: i64 = text.parse().expect("an accepted seq is a decimal");
        assert!((i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&n));
        assert_eq!(seq, n as u32);
    }
}

/// `/pub` content is put between JSON quotes as it is: `verbatim_json_string` must accept
/// exactly the valid insides of a JSON string (RFC 8259 section 7, UTF-8).
fn check_verbatim(content: &[u8]) {
    let got = params::verbatim_json_string(content).is_ok();
    assert_eq!(
        got,
        model_json_string_inside(content),
        "verbatim_json_string({:?})",
        String::from_utf8_lossy(content)
    );
    if got {
        let quoted = [b"\"", content, b"\""].concat();
        if let Err(e) = serde_json::from_slice::<String>(&quoted) {
            // serde_json also refuses unpaired surrogate escapes, which the grammar allows.
            assert!(e.to_string().contains("surrogate"), "{e}");
        }
    }
}

/// RFC 8259 `*char` of a string, over valid UTF-8.
fn model_json_string_inside(s: &[u8]) -> bool {
    if std::str::from_utf8(s).is_err() {
        return false;
    }
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' | 0..=0x1f => return false,
            b'\\' => {
                let Some(&e) = s.get(i + 1) else {
                    return false;
                };
                if e == b'u' {
                    let hex = s.get(i + 2..i + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return false;
                    }
                    i += 6;
                } else if b"\"\\/bfnrt".contains(&e) {
                    i += 2;
                } else {
                    return false;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// A `Last-Event-ID` value: an accepted id written back as `epoch:seq` reads the same.
fn check_event_id(value: &[u8]) {
    if let Some(id) = EventId::parse(value) {
        let written = format!("{}:{}", id.epoch, id.seq as i32);
        assert_eq!(EventId::parse(written.as_bytes()), Some(id), "{written}");
    }
}
