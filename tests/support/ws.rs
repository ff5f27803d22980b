//! A raw-bytes WebSocket client for the tests: the handshake, masked client frames and the
//! server's frames read one at a time (every read has the connection's timeout).
#![allow(dead_code)]

use super::*;
use std::net::SocketAddr;

/// RFC 6455's sample key and the accept value that answers it.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The upgrade request for `path`, with `extra` header lines (each ending in CRLF).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// The exact 101 head rcomet answers a good handshake with.
pub const SWITCHING: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> String {
        assert_eq!(self.opcode, 1, "a text frame: {self:?}");
        String::from_utf8(self.payload.clone()).expect("UTF-8 text frame")
    }

    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, 8, "a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Opens `/ws...` and checks the 101.
pub fn open(front: SocketAddr, path: &str) -> Conn {
    let mut c = Conn::open(front);
    c.send(upgrade_request(path, "").as_bytes());
    let (status, head) = c.read_head();
    assert_eq!(status, 101, "{head}");
    assert_eq!(head, SWITCHING);
    c
}

/// A masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

impl Conn {
    /// Reads one server frame (server frames are never masked).
    pub fn read_frame(&mut self) -> Frame {
        let head = self.read_exact_n(2);
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7f {
            126 => u16::from_be_bytes(self.read_exact_n(2).try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.read_exact_n(8).try_into().unwrap()) as usize,
            n => n as usize,
        };
        Frame {
            fin: head[0] & 0x80 != 0,
            opcode: head[0] & 0x0f,
            payload: self.read_exact_n(len),
        }
    }

    /// Reads one text frame's JSON.
    pub fn read_text(&mut self) -> String {
        self.read_frame().text()
    }

    /// Sends one masked text message holding `text`.
    pub fn send_text(&mut self, text: &str) {
        self.send(&client_frame(true, 1, text.as_bytes()));
    }
}
