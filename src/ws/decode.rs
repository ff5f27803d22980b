//! Decoding of client → server frames (RFC 6455 sections 5 and 6.2): [`Reader::next`] reads one
//! frame from the front of the connection's input and says what it was ([`Step`]). A frame is
//! consumed only once it is complete; until then `next` parses the head alone and answers
//! [`Step::Need`], and a head that can already be judged bad (reserved bits or opcode, no mask,
//! an oversized length) fails at once, without waiting for its payload. Depends on `close` and
//! `frame` (the opcodes).

use super::close::CloseCode;
use super::frame::{Opcode, MAX_CONTROL_PAYLOAD};

/// What the decoder accepts. Like the HTTP limits, there is no `Default`: the server takes the
/// value from its configuration.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Largest message, in bytes: a single frame's payload, or the assembled payload of all the
    /// fragments of a message. One byte more fails with 1009 from the frame head. Values above
    /// `u32::MAX` count as `u32::MAX`.
    pub max_message_bytes: usize,
}

/// A control frame's payload, unmasked and copied out of the input (at most 125 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Control {
    bytes: [u8; MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl Control {
    /// Copies and unmasks `masked` (at most 125 bytes; the decoder checks that before).
    fn unmasked(masked: &[u8], key: [u8; 4]) -> Control {
        let mut bytes = [0u8; MAX_CONTROL_PAYLOAD];
        let len = masked.len().min(MAX_CONTROL_PAYLOAD);
        if let (Some(dst), Some(src)) = (bytes.get_mut(..len), masked.get(..len)) {
            dst.copy_from_slice(src);
            unmask(dst, key);
        }
        Control {
            bytes,
            len: len as u8,
        }
    }

    /// The payload.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Control").field(&self.as_bytes()).finish()
    }
}

/// What a complete frame meant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// A complete text message, valid UTF-8; its payload is the whole of `assembled`.
    Text,
    /// A complete binary message; its payload is the whole of `assembled`.
    Binary,
    /// A non-final fragment of a data message was appended to `assembled`; nothing to do yet.
    Fragment,
    /// A Ping: answer with a Pong carrying this payload.
    Ping(Control),
    /// A Pong: nothing to do (it may tell the worker the client is alive).
    Pong,
    /// A Close, with its code if it carried one (the reason, if any, was valid UTF-8 and is
    /// dropped). Answer with a Close echoing the code (or an empty Close) and close the
    /// connection once it is sent.
    Close {
        /// The client's code; `None` for an empty Close payload.
        code: Option<CloseCode>,
    },
}

/// The outcome of one [`Reader::next`] call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    /// The frame at the front of the input is not complete: nothing was consumed; call again
    /// with the same bytes and more.
    Need,
    /// One frame was read: drop its `used` bytes from the front of the input and act on `event`.
    Frame {
        /// What the frame meant.
        event: Event,
        /// The frame's size on the wire (head, mask key and payload).
        used: usize,
    },
    /// The client broke the protocol: send a Close with this code, read nothing more, and close
    /// the connection once it is sent. 1002: a framing error; 1007: invalid UTF-8 in a text
    /// message or close reason; 1009: a message larger than `max_message_bytes`.
    Fail(CloseCode),
}

/// No data message is in progress.
const IDLE: u8 = 0;

/// The decoder's state between frames: 8 bytes. `Reader::default()` is a fresh connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Reader {
    /// The opcode (Text or Binary) of the fragmented message in progress, or [`IDLE`].
    message: u8,
    /// How many bytes at the front of a text message in progress are known to be valid UTF-8
    /// ending on a character boundary (so each fragment's bytes are checked once).
    checked: u32,
}

impl Reader {
    /// A reader for a connection that has just completed its handshake.
    pub const fn new() -> Reader {
        Reader {
            message: IDLE,
            checked: 0,
        }
    }

    /// Whether a fragmented message is in progress (its fragments so far are in `assembled`).
    pub fn in_message(&self) -> bool {
        self.message != IDLE
    }

    /// Reads the frame at the front of `buf`. Data payloads are unmasked into `assembled`: the
    /// first frame of a message clears it, so after [`Event::Text`] or [`Event::Binary`] it holds
    /// exactly the message (the caller may clear it after use, to give the memory back sooner).
    /// Never panics, whatever `buf` holds.
    pub fn next(&mut self, buf: &[u8], limits: &Limits, assembled: &mut Vec<u8>) -> Step {
        let head = match parse_head(buf, self.message) {
            Ok(head) => head,
            Err(None) => return Step::Need,
            Err(Some(code)) => return Step::Fail(code),
        };
        // The message's size is known from the head: refuse it before its payload arrives.
        let max = limits.max_message_bytes.min(u32::MAX as usize);
        let before = if head.opcode == Opcode::Continuation {
            assembled.len()
        } else {
            0
        };
        if !head.opcode.is_control() && head.len > max.saturating_sub(before) as u64 {
            return Step::Fail(CloseCode::MESSAGE_TOO_BIG);
        }
        let Some(&[k0, k1, k2, k3]) = buf.get(head.at..head.at + 4) else {
            return Step::Need;
        };
        let start = head.at + 4;
        // `len` is at most `max` (data) or 125 (control), so it fits in a usize.
        let Some(end) = usize::try_from(head.len)
            .ok()
            .and_then(|len| start.checked_add(len))
        else {
            return Step::Fail(CloseCode::MESSAGE_TOO_BIG);
        };
        let Some(payload) = buf.get(start..end) else {
            return Step::Need;
        };
        let key = [k0, k1, k2, k3];
        let event = match head.opcode {
            Opcode::Ping => Event::Ping(Control::unmasked(payload, key)),
            Opcode::Pong => Event::Pong,
            Opcode::Close => match close_event(&Control::unmasked(payload, key)) {
                Ok(event) => event,
                Err(code) => return Step::Fail(code),
            },
            data => match self.data(data, head.fin, payload, key, assembled) {
                Ok(event) => event,
                Err(code) => return Step::Fail(code),
            },
        };
        Step::Frame { event, used: end }
    }

    /// Appends a complete data frame to the message and says whether the message is done.
    fn data(
        &mut self,
        opcode: Opcode,
        fin: bool,
        payload: &[u8],
        key: [u8; 4],
        assembled: &mut Vec<u8>,
    ) -> Result<Event, CloseCode> {
        if opcode != Opcode::Continuation {
            assembled.clear();
            self.message = opcode as u8;
            self.checked = 0;
        }
        let old = assembled.len();
        assembled.extend_from_slice(payload);
        if let Some(fresh) = assembled.get_mut(old..) {
            unmask(fresh, key);
        }
        let text = self.message == Opcode::Text as u8;
        if text && !self.utf8_so_far(assembled, fin) {
            return Err(CloseCode::INVALID_PAYLOAD);
        }
        if !fin {
            return Ok(Event::Fragment);
        }
        self.message = IDLE;
        self.checked = 0;
        Ok(if text { Event::Text } else { Event::Binary })
    }

    /// Whether the text message so far is valid UTF-8 (a final fragment must also end on a
    /// character boundary). Checks only the bytes not checked before.
    fn utf8_so_far(&mut self, assembled: &[u8], fin: bool) -> bool {
        let rest = assembled.get(self.checked as usize..).unwrap_or(&[]);
        let valid = match std::str::from_utf8(rest) {
            Ok(_) => rest.len(),
            Err(e) if e.error_len().is_none() && !fin => e.valid_up_to(),
            Err(_) => return false,
        };
        // At most `max_message_bytes` <= u32::MAX in all.
        self.checked = self.checked.saturating_add(valid as u32);
        true
    }
}

/// A frame head as far as it has arrived.
struct FrameHead {
    fin: bool,
    opcode: Opcode,
    /// The declared payload length.
    len: u64,
    /// Where the mask key starts.
    at: usize,
}

/// Parses and judges the head at the front of `buf`, given the opcode of the message in progress
/// (or [`IDLE`]). `Err(None)` if it has not all arrived (up to the mask key, excluded),
/// `Err(Some(code))` if it is bad; every check that can be made on the bytes present is made
/// before more are asked for.
fn parse_head(buf: &[u8], message: u8) -> Result<FrameHead, Option<CloseCode>> {
    const PROTOCOL: Option<CloseCode> = Some(CloseCode::PROTOCOL_ERROR);
    let Some(&first) = buf.first() else {
        return Err(None);
    };
    let fin = first & 0x80 != 0;
    if first & 0x70 != 0 {
        return Err(PROTOCOL); // reserved bits, and no extension was negotiated
    }
    let Some(opcode) = Opcode::from_nibble(first & 0x0F) else {
        return Err(PROTOCOL); // reserved opcode
    };
    let in_order = match opcode {
        Opcode::Continuation => message != IDLE,
        Opcode::Text | Opcode::Binary => message == IDLE,
        _ => fin, // a control frame is never fragmented
    };
    if !in_order {
        return Err(PROTOCOL);
    }
    let Some(&second) = buf.get(1) else {
        return Err(None);
    };
    if second & 0x80 == 0 {
        return Err(PROTOCOL); // a client must mask every frame
    }
    let short = second & 0x7F;
    if opcode.is_control() && usize::from(short) > MAX_CONTROL_PAYLOAD {
        return Err(PROTOCOL);
    }
    let (len, at) = match short {
        126 => match buf.get(2..4) {
            Some(&[hi, lo]) => (u64::from(u16::from_be_bytes([hi, lo])), 4),
            _ => return Err(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(bytes) => (u64::from_be_bytes(bytes), 10),
            None => return Err(None),
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(PROTOCOL); // the most significant bit of a 64-bit length must be 0
    }
    Ok(FrameHead {
        fin,
        opcode,
        len,
        at,
    })
}

/// The meaning of a complete Close payload.
fn close_event(payload: &Control) -> Result<Event, CloseCode> {
    match payload.as_bytes() {
        [] => Ok(Event::Close { code: None }),
        [_] => Err(CloseCode::PROTOCOL_ERROR),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_received() {
                return Err(CloseCode::PROTOCOL_ERROR);
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(CloseCode::INVALID_PAYLOAD);
            }
            Ok(Event::Close { code: Some(code) })
        }
    }
}

/// XORs `data` with the repeating 4-byte `key`, starting at the key's first byte: unmasks a
/// client payload (and masks one, in tests). Eight bytes at a time, then the tail.
pub fn unmask(data: &mut [u8], key: [u8; 4]) {
    let [k0, k1, k2, k3] = key;
    let wide = u64::from_ne_bytes([k0, k1, k2, k3, k0, k1, k2, k3]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        if let Ok(bytes) = <[u8; 8]>::try_from(&*word) {
            word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        }
    }
    // A multiple of 8 bytes was done, so the tail starts at the key's first byte again.
    for (byte, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
