//! WebSocket framing for `/ws` subscribers (RFC 6455), sans-IO: the upgrade request's headers, the
//! head of a server frame (unmasked) read from its first bytes, and masked client frames (pong,
//! close). The reading of whole frames lives in `http_reader`, which carries on with frames after
//! a 101. Pure; depends on std only.

pub const OP_CONTINUATION: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// Longest frame head a server sends (2 bytes, 8 of extended length, no mask).
pub const MAX_HEAD: usize = 10;
/// Longest control frame payload.
pub const MAX_CONTROL: u64 = 125;
/// Mask of every client frame (masking is for proxies, not secrecy).
const MASK: [u8; 4] = [0x5a, 0x3c, 0x96, 0x0f];

/// The header lines that turn a request into a WebSocket handshake (each ending in CRLF). The
/// key is RFC 6455's sample nonce: any 16 bytes will do, and the 101 is taken on its status.
pub const UPGRADE_HEADERS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// A server frame's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub fin: bool,
    pub opcode: u8,
    pub len: u64,
    /// Bytes the head took.
    pub size: usize,
}

/// The frame breaks the protocol for a server: masked, reserved bits, a reserved opcode, a
/// fragmented or too long control frame, or a length with its top bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFrame;

/// Bytes a frame head takes (2, 4 or 10), from its second byte.
pub fn head_size(second: u8) -> usize {
    match second & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    }
}

/// Reads a server frame head from `bytes`; `Ok(None)` while it is incomplete.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, BadFrame> {
    let (Some(&b0), Some(&b1)) = (bytes.first(), bytes.get(1)) else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 || b0 & 0x70 != 0 {
        return Err(BadFrame);
    }
    let size = head_size(b1);
    let Some(ext) = bytes.get(2..size) else {
        return Ok(None);
    };
    let len = match size {
        4 => u64::from(u16::from_be_bytes([ext[0], ext[1]])),
        10 => ext.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        _ => u64::from(b1 & 0x7f),
    };
    let head = Head {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        len,
        size,
    };
    let control = head.opcode >= OP_CLOSE;
    let known = matches!(
        head.opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    );
    if !known || len >> 63 != 0 || (control && (!head.fin || len > MAX_CONTROL)) {
        return Err(BadFrame);
    }
    Ok(Some(head))
}

/// Appends one masked, unfragmented client frame (`payload` of a control frame is at most 125
/// bytes; longer ones are cut there).
pub fn client_frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let payload = payload.get(..MAX_CONTROL as usize).unwrap_or(payload);
    out.push(0x80 | opcode);
    out.push(0x80 | payload.len() as u8);
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
}

/// The close code of a close frame's payload, if it has one.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_of_every_length_form() {
        assert_eq!(parse_head(&[0x81]), Ok(None));
        assert_eq!(
            parse_head(&[0x81, 5]),
            Ok(Some(Head {
                fin: true,
                opcode: 1,
                len: 5,
                size: 2
            }))
        );
        assert_eq!(parse_head(&[0x01, 126, 1]), Ok(None));
        assert_eq!(
            parse_head(&[0x01, 126, 1, 2]).map(|h| h.map(|h| h.len)),
            Ok(Some(258))
        );
        let mut long = vec![0x81, 127];
        long.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(
            parse_head(&long).map(|h| h.map(|h| (h.len, h.size))),
            Ok(Some((70_000, 10)))
        );
    }

    #[test]
    fn protocol_violations_are_refused() {
        for bad in [
            &[0x81, 0x85][..],                       // masked
            &[0xc1, 1],                              // RSV1
            &[0x83, 0],                              // reserved opcode
            &[0x09, 0],                              // fragmented ping
            &[0x88, 126, 0, 126],                    // control frame over 125
            &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0], // top length bit
        ] {
            assert_eq!(parse_head(bad), Err(BadFrame), "{bad:?}");
        }
    }

    #[test]
    fn the_upgrade_asks_for_version_13() {
        assert!(UPGRADE_HEADERS.ends_with("Sec-WebSocket-Version: 13\r\n"));
        assert!(UPGRADE_HEADERS.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    }

    #[test]
    fn client_frames_are_masked() {
        let mut out = Vec::new();
        client_frame(OP_PONG, b"hi", &mut out);
        assert_eq!(out[..2], [0x8a, 0x82]);
        let unmasked: Vec<u8> = out[6..].iter().zip(MASK).map(|(b, m)| b ^ m).collect();
        assert_eq!(unmasked, b"hi");
        out.clear();
        client_frame(OP_CLOSE, &[0u8; 200], &mut out);
        assert_eq!(out.len(), 2 + 4 + 125, "cut at the control frame limit");
        assert_eq!(close_code(&[0x03, 0xe8, b'x']), Some(1000));
        assert_eq!(close_code(&[]), None);
    }
}
