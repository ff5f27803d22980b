//! Encoding of server → client frames (RFC 6455 section 5.2): frame heads (2, 4 or 10 bytes, never
//! masked, as a server must send them) and whole control frames. Depends on `close` only.

use super::close::CloseCode;

/// The opcode of a frame (the low nibble of its first byte).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// A later fragment of a fragmented message.
    Continuation = 0x0,
    /// The first (or only) frame of a UTF-8 text message.
    Text = 0x1,
    /// The first (or only) frame of a binary message.
    Binary = 0x2,
    /// Close (control).
    Close = 0x8,
    /// Ping (control).
    Ping = 0x9,
    /// Pong (control).
    Pong = 0xA,
}

impl Opcode {
    /// The opcode of a nibble, `None` for the reserved values (0x3–0x7, 0xB–0xF).
    pub fn from_nibble(nibble: u8) -> Option<Opcode> {
        match nibble {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// Close, Ping and Pong: at most 125 payload bytes and never fragmented.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest close reason: a control payload less the two bytes of the code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// A frame head built on the stack: at most 10 bytes (for queueing inline, without a `Vec`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Head {
    bytes: [u8; 10],
    len: u8,
}

impl Head {
    /// Encodes the head of an unmasked frame carrying `payload_len` bytes.
    pub fn new(opcode: Opcode, fin: bool, payload_len: usize) -> Head {
        let first = (opcode as u8) | if fin { 0x80 } else { 0 };
        let mut bytes = [0u8; 10];
        bytes[0] = first;
        let len = if payload_len <= MAX_CONTROL_PAYLOAD {
            bytes[1] = payload_len as u8;
            2
        } else if let Ok(short) = u16::try_from(payload_len) {
            bytes[1] = 126;
            let [hi, lo] = short.to_be_bytes();
            bytes[2] = hi;
            bytes[3] = lo;
            4
        } else {
            bytes[1] = 127;
            // A usize always fits in 64 bits, and a length from memory is below 2^63.
            let long = (payload_len as u64).to_be_bytes();
            let [_, _, rest @ ..] = &mut bytes;
            *rest = long;
            10
        };
        Head { bytes, len }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// The size of the head of a frame carrying `payload_len` bytes: 2, 4 or 10.
pub fn head_len(payload_len: usize) -> usize {
    if payload_len <= MAX_CONTROL_PAYLOAD {
        2
    } else if payload_len <= usize::from(u16::MAX) {
        4
    } else {
        10
    }
}

/// Appends the head of an unmasked frame carrying `payload_len` bytes; the caller appends (or
/// queues) the payload itself.
pub fn head(opcode: Opcode, fin: bool, payload_len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(Head::new(opcode, fin, payload_len).as_bytes());
}

/// Appends the head of a complete (unfragmented) text message of `payload_len` bytes.
pub fn text_head(payload_len: usize, out: &mut Vec<u8>) {
    head(Opcode::Text, true, payload_len, out);
}

/// Appends a Close frame with `code` and `reason`, the reason cut to [`MAX_CLOSE_REASON`] bytes
/// at a character boundary.
pub fn close(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1; // stops at 0 at the latest, which is always a boundary
    }
    let reason = reason.get(..cut).unwrap_or("").as_bytes();
    head(Opcode::Close, true, 2 + reason.len(), out);
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(reason);
}

/// Appends a Close frame without a code (the answer to a Close frame that carried none).
pub fn close_empty(out: &mut Vec<u8>) {
    head(Opcode::Close, true, 0, out);
}

/// Appends a Ping frame; a payload beyond [`MAX_CONTROL_PAYLOAD`] bytes is cut.
pub fn ping(payload: &[u8], out: &mut Vec<u8>) {
    control(Opcode::Ping, payload, out);
}

/// Appends a Pong frame (the answer to a Ping carries its payload); a payload beyond
/// [`MAX_CONTROL_PAYLOAD`] bytes is cut.
pub fn pong(payload: &[u8], out: &mut Vec<u8>) {
    control(Opcode::Pong, payload, out);
}

fn control(opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    let payload = payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload);
    head(opcode, true, payload.len(), out);
    out.extend_from_slice(payload);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Parses an unmasked server frame: (first byte, payload).
    fn parse(bytes: &[u8]) -> (u8, &[u8]) {
        assert_eq!(bytes[1] & 0x80, 0, "a server frame is never masked");
        let (len, at) = match bytes[1] {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        assert_eq!(bytes.len(), at + len, "one whole frame");
        (bytes[0], &bytes[at..])
    }

    #[test]
    fn head_lengths_and_bytes() {
        for (len, size, second) in [
            (0, 2, 0),
            (125, 2, 125),
            (126, 4, 126),
            (65535, 4, 126),
            (65536, 10, 127),
        ] {
            assert_eq!(head_len(len), size, "{len}");
            let mut out = Vec::new();
            head(Opcode::Binary, true, len, &mut out);
            assert_eq!(out.len(), size);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1], second);
            assert_eq!(Head::new(Opcode::Binary, true, len).as_bytes(), &out[..]);
        }
        let mut out = Vec::new();
        head(Opcode::Text, false, 300, &mut out);
        assert_eq!(out, [0x01, 126, 0x01, 0x2C]);
        out.clear();
        head(Opcode::Continuation, true, 0x0102_0304_0506, &mut out);
        assert_eq!(out, [0x80, 127, 0, 0, 1, 2, 3, 4, 5, 6]);
        out.clear();
        text_head(5, &mut out);
        out.extend_from_slice(b"Hello");
        assert_eq!(out, b"\x81\x05Hello"); // the RFC's unmasked example
        assert_eq!(head_len(usize::MAX), 10);
        assert_eq!(
            Head::new(Opcode::Text, true, usize::MAX).as_bytes().len(),
            10
        );
    }

    #[test]
    fn opcodes() {
        for nibble in 0..16u8 {
            match Opcode::from_nibble(nibble) {
                Some(op) => assert_eq!(op as u8, nibble),
                None => assert!(matches!(nibble, 3..=7 | 0xB..=0xF)),
            }
        }
        assert!(Opcode::Close.is_control() && Opcode::Ping.is_control());
        assert!(Opcode::Pong.is_control());
        assert!(!Opcode::Text.is_control() && !Opcode::Binary.is_control());
        assert!(!Opcode::Continuation.is_control());
        assert_eq!(Opcode::from_nibble(0x10), None);
    }

    #[test]
    fn close_frames() {
        let mut out = Vec::new();
        close(CloseCode::NORMAL, "", &mut out);
        assert_eq!(out, [0x88, 2, 0x03, 0xE8]);
        out.clear();
        close(CloseCode::PROTOCOL_ERROR, "bad frame", &mut out);
        let (first, payload) = parse(&out);
        assert_eq!(first, 0x88);
        assert_eq!(payload, b"\x03\xeabad frame");
        out.clear();
        close_empty(&mut out);
        assert_eq!(out, [0x88, 0]);
    }

    #[test]
    fn a_long_close_reason_is_cut_at_a_character_boundary() {
        let mut out = Vec::new();
        close(CloseCode::GOING_AWAY, &"a".repeat(500), &mut out);
        let (_, payload) = parse(&out);
        assert_eq!(payload.len(), 125);
        for (prefix, expect) in [("", 122), ("a", 123), ("aa", 122)] {
            let reason = format!("{prefix}{}", "é".repeat(100));
            out.clear();
            close(CloseCode::NORMAL, &reason, &mut out);
            let (_, payload) = parse(&out);
            assert_eq!(payload.len(), 2 + expect, "{prefix:?}");
            assert!(std::str::from_utf8(&payload[2..]).is_ok());
            assert!(reason.as_bytes().starts_with(&payload[2..]));
        }
        out.clear();
        close(CloseCode::NORMAL, &"€".repeat(60), &mut out); // 3-byte characters: 123 = 41 * 3
        assert_eq!(parse(&out).1.len(), 125);
        out.clear();
        close(CloseCode::NORMAL, &"😀".repeat(40), &mut out); // 4-byte: 120
        assert_eq!(parse(&out).1.len(), 122);
    }

    #[test]
    fn ping_and_pong_frames() {
        let mut out = Vec::new();
        ping(b"abc", &mut out);
        assert_eq!(out, b"\x89\x03abc");
        out.clear();
        pong(b"", &mut out);
        assert_eq!(out, [0x8A, 0]);
        out.clear();
        pong(&[7; 200], &mut out);
        let (first, payload) = parse(&out);
        assert_eq!(first, 0x8A);
        assert_eq!(payload, &[7; 125][..]);
    }
}
