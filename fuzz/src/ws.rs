//! Targets of the WebSocket frame decoder (`ws::decode::Reader::next`) and of the handshake
//! check (`ws::handshake::check`).
//!
//! Decoder invariants (under the built-in message limit and the smallest one allowed):
//! * the bytes fed in one piece give the same frames (events, sizes, messages) as the same bytes
//!   fed split at a point taken from the input, in three pieces, and one byte at a time;
//! * `Need` never leaves more than one frame buffered (`max_message_bytes` + a 14-byte head);
//! * a text message is valid UTF-8, a message is at most `max_message_bytes`, a ping payload at
//!   most 125 bytes, a received close code one a client may send;
//! * client frames encoded from the input (masked, fragmented, with control frames between
//!   fragments) decode to exactly the messages they carry.
//!
//! Handshake invariant: `check` agrees with a reference model of RFC 6455 section 4.2.1 (method,
//! version, `Upgrade`, `Connection`, exactly one version 13, exactly one canonical 16-byte
//! base64 key, the accept value base64(SHA-1(key + GUID))), on the headers of a parsed request
//! and on header lines taken from the input directly.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rcomet::http::{self, HttpLimits, Method, Parsed, Version};
use rcomet::ws::decode::unmask;
use rcomet::ws::{check, CloseCode, Event, HandshakeError, Limits, Reader, Step};

use crate::{digest, Bytes};

/// The largest frame head: 2 bytes, an 8-byte length, a 4-byte mask key.
const MAX_HEAD: usize = 14;

/// Byte-at-a-time feeding for inputs up to this size.
const BYTEWISE_UP_TO: usize = 512;

/// The limits frames are decoded under: the server's built-in one and the smallest the
/// configuration allows.
fn limit_sets() -> [Limits; 2] {
    [
        Limits {
            max_message_bytes: rcomet::config::Limits::default().max_ws_message_bytes,
        },
        Limits {
            max_message_bytes: 125,
        },
    ]
}

/// One decoded frame as the worker sees it: the step and the payload it delivers.
type Seen = (Step, Vec<u8>);

/// `data` is the bytes a client sent after the handshake.
pub fn ws_decode(data: &[u8]) {
    for limits in limit_sets() {
        let whole = feed(data, &[], &limits);
        let seed = digest(data);
        let len = data.len();
        let one = (seed % (len as u64 + 1)) as usize;
        assert_eq!(feed(data, &[one], &limits), whole, "split at {one}");
        let mut three = [
            (seed >> 20) as usize % (len + 1),
            (seed >> 40) as usize % (len + 1),
        ];
        three.sort_unstable();
        assert_eq!(feed(data, &three, &limits), whole, "split at {three:?}");
        if len <= BYTEWISE_UP_TO {
            let every: Vec<usize> = (1..len).collect();
            assert_eq!(feed(data, &every, &limits), whole, "one byte at a time");
        }
    }
    round_trip(data);
}

/// Feeds `data` to a fresh reader in pieces ending at `cuts` (increasing) and at the end, the
/// way the worker does: unconsumed bytes stay at the front of the buffer.
fn feed(data: &[u8], cuts: &[usize], limits: &Limits) -> Vec<Seen> {
    let max = limits.max_message_bytes.min(u32::MAX as usize);
    let mut reader = Reader::new();
    let mut assembled = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&data.len())) {
        buf.extend_from_slice(&data[from..to]);
        from = to;
        loop {
            let step = reader.next(&buf, limits, &mut assembled);
            match step {
                Step::Need => {
                    assert!(
                        buf.len() < max.max(125) + MAX_HEAD,
                        "Need with {} bytes buffered",
                        buf.len()
                    );
                    break;
                }
                Step::Frame { event, used } => {
                    assert!(
                        used >= 6 && used <= buf.len(),
                        "used {used} of {}",
                        buf.len()
                    );
                    assert!(assembled.len() <= max, "a {}-byte message", assembled.len());
                    let payload = match event {
                        Event::Text => {
                            assert!(std::str::from_utf8(&assembled).is_ok());
                            assert!(!reader.in_message());
                            assembled.clone()
                        }
                        Event::Binary => {
                            assert!(!reader.in_message());
                            assembled.clone()
                        }
                        Event::Fragment => {
                            assert!(reader.in_message());
                            Vec::new()
                        }
                        Event::Ping(control) => {
                            assert!(control.as_bytes().len() <= 125);
                            control.as_bytes().to_vec()
                        }
                        Event::Pong => Vec::new(),
                        Event::Close { code } => {
                            if let Some(code) = code {
                                assert!(code.is_valid_received(), "close code {}", code.0);
                            }
                            Vec::new()
                        }
                    };
                    seen.push((step, payload));
                    buf.drain(..used);
                }
                Step::Fail(_) => {
                    seen.push((step, Vec::new()));
                    return seen;
                }
            }
        }
    }
    seen
}

/// Appends one masked client frame.
fn client_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], key: [u8; 4]) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], key);
}

/// Builds client frames from the input and checks that they decode to what they carry.
fn round_trip(data: &[u8]) {
    let limits = Limits {
        max_message_bytes: 1 << 16,
    };
    let mut b = Bytes::new(data);
    let mut wire = Vec::new();
    let mut want: Vec<Seen> = Vec::new();
    let mut count = 0;
    while !b.is_empty() && count < 16 {
        count += 1;
        let ctl = b.u8();
        let len = match ctl >> 6 {
            0 | 1 => usize::from(b.u8() % 64),
            2 => usize::from(b.u8()),
            _ => usize::from(b.u8()) * 2 + 126,
        };
        let raw = b.take(len);
        let key = [b.u8(), b.u8(), b.u8(), b.u8()];
        match ctl & 3 {
            kind @ (0 | 1) => {
                let text = kind == 0;
                let message = if text {
                    String::from_utf8_lossy(raw).into_owned().into_bytes()
                } else {
                    raw.to_vec()
                };
                let pieces = 1 + usize::from((ctl >> 2) & 3);
                let size = message.len().div_ceil(pieces).max(1);
                let chunks: Vec<&[u8]> = if message.is_empty() {
                    vec![&[][..]]
                } else {
                    message.chunks(size).collect()
                };
                for (i, chunk) in chunks.iter().enumerate() {
                    let last = i + 1 == chunks.len();
                    let opcode = match (i, text) {
                        (0, true) => 1,
                        (0, false) => 2,
                        _ => 0,
                    };
                    let used_before = wire.len();
                    client_frame(&mut wire, last, opcode, chunk, key);
                    let used = wire.len() - used_before;
                    let event = match (last, text) {
                        (false, _) => Event::Fragment,
                        (true, true) => Event::Text,
                        (true, false) => Event::Binary,
                    };
                    let payload = if last { message.clone() } else { Vec::new() };
                    want.push((Step::Frame { event, used }, payload));
                    if !last && ctl & 0x10 != 0 {
                        // A ping between two fragments of a message.
                        let before = wire.len();
                        client_frame(&mut wire, true, 9, b"between", key);
                        let ping = reader_ping(b"between");
                        let used = wire.len() - before;
                        want.push((Step::Frame { event: ping, used }, b"between".to_vec()));
                    }
                }
            }
            2 => {
                let payload = &raw[..raw.len().min(125)];
                let before = wire.len();
                client_frame(&mut wire, true, 9, payload, key);
                let used = wire.len() - before;
                want.push((
                    Step::Frame {
                        event: reader_ping(payload),
                        used,
                    },
                    payload.to_vec(),
                ));
            }
            _ => {
                let before = wire.len();
                client_frame(&mut wire, true, 10, &raw[..raw.len().min(125)], key);
                let used = wire.len() - before;
                want.push((
                    Step::Frame {
                        event: Event::Pong,
                        used,
                    },
                    Vec::new(),
                ));
            }
        }
    }
    let before = wire.len();
    client_frame(&mut wire, true, 8, b"\x03\xe8bye", [1, 2, 3, 4]);
    want.push((
        Step::Frame {
            event: Event::Close {
                code: Some(CloseCode::NORMAL),
            },
            used: wire.len() - before,
        },
        Vec::new(),
    ));
    let cut = (digest(data) % (wire.len() as u64 + 1)) as usize;
    assert_eq!(feed(&wire, &[], &limits), want);
    assert_eq!(feed(&wire, &[cut], &limits), want, "split at {cut}");
    // The message limit is exact: the largest message fits a limit of its size, and one byte
    // less fails with 1009 at the frame that crosses it.
    let biggest = want
        .iter()
        .filter(|(step, _)| {
            matches!(
                step,
                Step::Frame {
                    event: Event::Text | Event::Binary,
                    ..
                }
            )
        })
        .map(|(_, message)| message.len())
        .max()
        .unwrap_or(0);
    let exact = Limits {
        max_message_bytes: biggest,
    };
    assert_eq!(feed(&wire, &[], &exact), want, "a limit of {biggest} bytes");
    if biggest > 0 {
        let less = Limits {
            max_message_bytes: biggest - 1,
        };
        let got = feed(&wire, &[], &less);
        let (last, before) = got.split_last().expect("at least the failure");
        assert_eq!(last.0, Step::Fail(CloseCode::MESSAGE_TOO_BIG));
        assert_eq!(before, &want[..before.len()]);
    }
}

/// The Ping event for `payload`, as the decoder reports it (read from a frame of its own).
fn reader_ping(payload: &[u8]) -> Event {
    let mut frame = Vec::new();
    client_frame(&mut frame, true, 9, payload, [0; 4]);
    let limits = Limits {
        max_message_bytes: 125,
    };
    match Reader::new().next(&frame, &limits, &mut Vec::new()) {
        Step::Frame { event, .. } => {
            let Event::Ping(control) = event else {
                panic!("a ping frame read as {event:?}");
            };
            assert_eq!(control.as_bytes(), payload);
            event
        }
        other => panic!("a ping frame read as {other:?}"),
    }
}

/// `data` is an upgrade request, or (when it is not one) a flags byte and header lines.
pub fn ws_handshake(data: &[u8]) {
    let limits = HttpLimits {
        max_header_bytes: 1 << 16,
        max_body_bytes: 1 << 16,
    };
    if let Parsed::Complete { req, .. } = http::parse(data, &limits) {
        let headers: Vec<(&[u8], &[u8])> = req.headers().collect();
        compare(
            req.method == Method::Get,
            req.version == Version::Http11,
            &headers,
        );
    }
    let Some((&flags, lines)) = data.split_first() else {
        return;
    };
    let headers: Vec<(&[u8], &[u8])> = lines
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], &line[colon + 1..]))
        })
        .collect();
    compare(flags & 1 != 0, flags & 2 != 0, &headers);
}

fn compare(get: bool, http11: bool, headers: &[(&[u8], &[u8])]) {
    let got = check(get, http11, headers.iter().copied()).map(|accept| *accept.value());
    let want = model(get, http11, headers);
    assert_eq!(got, want, "headers {headers:?}");
    if let Err(e) = got {
        assert!(matches!(e.status(), 400 | 405 | 426));
        let header = match e.status() {
            405 => Some(("Allow", &b"GET"[..])),
            426 => Some(("Sec-WebSocket-Version", &b"13"[..])),
            _ => None,
        };
        assert_eq!(e.header(), header);
    }
}

/// RFC 6455 section 4.2.1, in the order `check` documents.
fn model(get: bool, http11: bool, headers: &[(&[u8], &[u8])]) -> Result<[u8; 28], HandshakeError> {
    let trim = |v: &[u8]| -> Vec<u8> {
        let s: Vec<u8> = v.to_vec();
        let start = s.iter().position(|&b| b != b' ' && b != b'\t');
        let end = s.iter().rposition(|&b| b != b' ' && b != b'\t');
        match (start, end) {
            (Some(a), Some(z)) => s[a..=z].to_vec(),
            _ => Vec::new(),
        }
    };
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
    };
    let lists = |name: &'static str, token: &str| {
        named(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|item| trim(item).eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if !get {
        return Err(HandshakeError::NotGet);
    }
    if !http11 {
        return Err(HandshakeError::NotHttp11);
    }
    if !lists("upgrade", "websocket") {
        return Err(HandshakeError::NoUpgrade);
    }
    if !lists("connection", "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    let versions: Vec<Vec<u8>> = named("sec-websocket-version").map(trim).collect();
    if versions != [b"13".to_vec()] {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let keys: Vec<Vec<u8>> = named("sec-websocket-key").map(trim).collect();
    let key = match keys.as_slice() {
        [] => return Err(HandshakeError::NoKey),
        [key] => key,
        _ => return Err(HandshakeError::DuplicateKey),
    };
    // 16 bytes are 22 base64 digits, the last holding 2 bits (so A, Q, g or w), and "==".
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let canonical = key.len() == 24
        && key[..21].iter().all(|&b| alphabet(b))
        && b"AQgw".contains(&key[21])
        && &key[22..] == b"==";
    if !canonical {
        return Err(HandshakeError::BadKey);
    }
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let mut accept = [0u8; 28];
    let written = STANDARD
        .encode_slice(sha.digest().bytes(), &mut accept)
        .expect("28 bytes hold base64 of 20");
    assert_eq!(written, 28);
    Ok(accept)
}
