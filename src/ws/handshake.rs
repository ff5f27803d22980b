//! The server side of the opening handshake (RFC 6455 section 4.2): validating an upgrade request
//! from its method, version and headers ([`check`]), and writing the `101 Switching Protocols`
//! head ([`write_101`]). Extensions and subprotocols are not negotiated: a requested
//! `Sec-WebSocket-Extensions` or `Sec-WebSocket-Protocol` is ignored and never echoed. Depends on
//! `sha1_smol` and `base64`; nothing of the crate.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The GUID every server appends to the client's key (RFC 6455 section 1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Length of a valid `Sec-WebSocket-Key`: the base64 of 16 bytes, padding included.
const KEY_LEN: usize = 24;

/// A validated handshake: the `Sec-WebSocket-Accept` value to answer with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Accept {
    value: [u8; 28],
}

impl Accept {
    /// Computes the answer to a client key: base64(SHA-1(key + GUID)), always 28 bytes.
    fn for_key(key: &[u8]) -> Accept {
        let mut sha = sha1_smol::Sha1::new();
        sha.update(key);
        sha.update(GUID);
        let digest = sha.digest().bytes();
        let mut value = [0u8; 28];
        // 20 bytes always encode to exactly 28 base64 bytes, so this cannot fail.
        let _ = STANDARD.encode_slice(digest, &mut value);
        Accept { value }
    }

    /// The `Sec-WebSocket-Accept` header value.
    pub fn value(&self) -> &[u8; 28] {
        &self.value
    }
}

/// Why an upgrade request is refused. The worker answers with [`status`](Self::status), adds
/// [`header`](Self::header) if there is one, and closes the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HandshakeError {
    /// 405: the method is not GET.
    NotGet,
    /// 400: the request is not HTTP/1.1.
    NotHttp11,
    /// 400: no `Upgrade` header carries the `websocket` token.
    NoUpgrade,
    /// 400: no `Connection` header carries the `upgrade` token.
    NoConnectionUpgrade,
    /// 426: `Sec-WebSocket-Version` is missing, repeated, or not 13.
    UnsupportedVersion,
    /// 400: no `Sec-WebSocket-Key`.
    NoKey,
    /// 400: more than one `Sec-WebSocket-Key`.
    DuplicateKey,
    /// 400: the key is not the base64 encoding of 16 bytes.
    BadKey,
}

impl HandshakeError {
    /// The HTTP status of the refusal.
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::NotGet => 405,
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// A header the refusal must carry: `Allow: GET` for 405, `Sec-WebSocket-Version: 13` for 426
    /// (so that the client can retry with the version the server speaks).
    pub fn header(self) -> Option<(&'static str, &'static [u8])> {
        match self {
            HandshakeError::NotGet => Some(("Allow", b"GET")),
            HandshakeError::UnsupportedVersion => Some(("Sec-WebSocket-Version", b"13")),
            _ => None,
        }
    }

    /// A one-line explanation, for the body of the refusal and the log.
    pub fn reason(self) -> &'static str {
        match self {
            HandshakeError::NotGet => "a WebSocket handshake must be a GET request",
            HandshakeError::NotHttp11 => "a WebSocket handshake must be an HTTP/1.1 request",
            HandshakeError::NoUpgrade => "a WebSocket handshake needs `Upgrade: websocket`",
            HandshakeError::NoConnectionUpgrade => {
                "a WebSocket handshake needs `Connection: Upgrade`"
            }
            HandshakeError::UnsupportedVersion => "only Sec-WebSocket-Version 13 is supported",
            HandshakeError::NoKey => "a WebSocket handshake needs a Sec-WebSocket-Key",
            HandshakeError::DuplicateKey => "more than one Sec-WebSocket-Key",
            HandshakeError::BadKey => "Sec-WebSocket-Key must be the base64 encoding of 16 bytes",
        }
    }
}

/// Validates an upgrade request. `headers` are the request's (name, value) pairs; names compare
/// case-insensitively, and the `Upgrade` and `Connection` values are comma-separated token lists
/// (any header of that name may carry the token). The checks run in this order, so that the
/// first failure is the one reported: method (405), HTTP version, `Upgrade`, `Connection`,
/// `Sec-WebSocket-Version` (426), `Sec-WebSocket-Key`.
pub fn check<'a>(
    method_is_get: bool,
    version_http11: bool,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Accept, HandshakeError> {
    if !method_is_get {
        return Err(HandshakeError::NotGet);
    }
    if !version_http11 {
        return Err(HandshakeError::NotHttp11);
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut versions = 0usize;
    let mut version_13 = false;
    let mut keys = 0usize;
    let mut key: &[u8] = &[];
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case(b"sec-websocket-version") {
            versions += 1;
            version_13 = trim(value) == b"13";
        } else if name.eq_ignore_ascii_case(b"sec-websocket-key") {
            keys += 1;
            key = trim(value);
        }
    }
    if !upgrade {
        return Err(HandshakeError::NoUpgrade);
    }
    if !connection {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if versions != 1 || !version_13 {
        return Err(HandshakeError::UnsupportedVersion);
    }
    match keys {
        0 => return Err(HandshakeError::NoKey),
        1 => {}
        _ => return Err(HandshakeError::DuplicateKey),
    }
    if !valid_key(key) {
        return Err(HandshakeError::BadKey);
    }
    Ok(Accept::for_key(key))
}

/// Appends the `101 Switching Protocols` head that completes the handshake.
pub fn write_101(accept: &Accept, out: &mut Vec<u8>) {
    write_101_value(accept.value(), out);
}

/// [`write_101`] for an accept value kept as bytes until the head is sent (the subscription
/// keeps it while its channel's home decides).
pub fn write_101_value(accept: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Whether the key is canonical base64 (padding included, no stray bits) of exactly 16 bytes.
fn valid_key(key: &[u8]) -> bool {
    if key.len() != KEY_LEN {
        return false;
    }
    let mut decoded = [0u8; 18]; // room for the decoder's length estimate (24 / 4 * 3)
    matches!(STANDARD.decode_slice(key, &mut decoded), Ok(16))
}

/// Whether the comma-separated list `value` holds `token` (ASCII case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| trim(item).eq_ignore_ascii_case(token))
}

/// `value` without leading and trailing spaces and tabs.
fn trim(value: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or(&[])
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
