//! A small sans-IO HTTP/1.x response reader: bytes in, events out. It understands a status line,
//! headers (only Content-Length, Transfer-Encoding and Connection matter), and bodies framed by
//! Content-Length, chunked encoding, or the end of the connection. Bodies are handed out as lines
//! (split at LF, a trailing CR dropped) because every iComet frame is one line. Buffers are
//! bounded: a line longer than [`MAX_LINE`] is an error. An idle reader owns no heap memory.
//! After a `101 Switching Protocols` the connection carries the server's WebSocket frames: each
//! text message (reassembled from fragments, control frames allowed between them) is handed out
//! as one line, pings and the close frame as their own events; after the close frame the rest is
//! ignored. Depends on ws_frames (frame heads).

use crate::ws_frames::{self, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT};

/// Longest status, header or body line accepted.
pub const MAX_LINE: usize = 64 * 1024;
/// Most hex digits accepted in a chunk size (2^48 bytes is far beyond anything sane).
const MAX_CHUNK_DIGITS: u8 = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    LineTooLong,
    BadStatusLine,
    BadHeader,
    BadChunk,
    UnexpectedEof,
    /// A WebSocket frame no server may send (see `ws_frames::BadFrame`), a binary message, or
    /// fragments out of order.
    BadFrame,
}

/// What the reader found while consuming input.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The response head is complete (interim 1xx responses are skipped).
    Head { status: u16 },
    /// One body line, without its LF (and without a CR before it); after a 101, one whole text
    /// message.
    Line(&'a [u8]),
    /// After a 101: a ping from the server, with its payload (the caller answers it).
    Ping(&'a [u8]),
    /// After a 101: the server's close frame, with its code if it has one.
    Close(Option<u16>),
}

/// Result of one [`ResponseReader::feed`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input consumed; the rest belongs to the next response.
    pub consumed: usize,
    /// Set when a response ended: whether the connection may carry another request.
    pub ended: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    StatusLine,
    Headers,
    Fixed {
        left: u64,
    },
    ChunkSize {
        value: u64,
        digits: u8,
        ext: bool,
    },
    ChunkData {
        left: u64,
    },
    ChunkDataEnd {
        saw_cr: bool,
    },
    Trailers,
    UntilClose,
    /// After a 101: a frame head, `have` bytes of it in `bytes`; `open` while a fragmented
    /// message is being assembled in `line`.
    WsHead {
        have: u8,
        bytes: [u8; ws_frames::MAX_HEAD],
        open: bool,
    },
    /// Inside a frame's payload, `left` bytes to go. A control frame (`control` bytes in all) is
    /// read into `line` after the part of a message assembled there, and cut off again.
    WsPayload {
        left: u64,
        opcode: u8,
        fin: bool,
        open: bool,
        control: u8,
    },
    /// After the server's close frame.
    WsClosed,
}

/// The state that reads the first frame head after a 101 (or the next one after a frame).
fn ws_head(open: bool) -> State {
    State::WsHead {
        have: 0,
        bytes: [0; ws_frames::MAX_HEAD],
        open,
    }
}

/// Incremental reader for a sequence of responses on one connection.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    /// Partial line carried between reads; empty (no allocation) when nothing is pending.
    line: Vec<u8>,
    status: u16,
    keep_alive: bool,
    chunked: bool,
    content_length: Option<u64>,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader {
            state: State::StatusLine,
            line: Vec::new(),
            status: 0,
            keep_alive: true,
            chunked: false,
            content_length: None,
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

impl ResponseReader {
    /// True between responses with nothing buffered.
    pub fn is_idle(&self) -> bool {
        self.state == State::StatusLine && self.line.is_empty()
    }

    /// Forgets everything (for a fresh connection).
    pub fn reset(&mut self) {
        *self = ResponseReader::default();
    }

    /// Frees the line buffer when it holds nothing, so idle connections own no heap memory.
    pub fn release_idle_buffer(&mut self) {
        if self.line.is_empty() && self.line.capacity() > 0 {
            self.line = Vec::new();
        }
    }

    /// Consumes `input` until it is exhausted or one response ends, reporting events to `on`.
    pub fn feed<F>(&mut self, input: &[u8], on: &mut F) -> Result<Fed, HttpError>
    where
        F: FnMut(Event<'_>),
    {
        let mut i = 0;
        while i < input.len() {
            let rest = input.get(i..).unwrap_or(&[]);
            match self.state {
                State::StatusLine | State::Headers | State::Trailers => {
                    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                        self.append_line(rest)?;
                        return Ok(Fed {
                            consumed: input.len(),
                            ended: None,
                        });
                    };
                    let piece = rest.get(..lf).unwrap_or(&[]);
                    i += lf + 1;
                    let ended = if self.line.is_empty() {
                        self.head_line(strip_cr(piece), on)?
                    } else {
                        self.append_line(piece)?;
                        let buf = std::mem::take(&mut self.line);
                        let r = self.head_line(strip_cr(&buf), on);
                        self.line = buf;
                        self.line.clear();
                        r?
                    };
                    if let Some(keep_alive) = ended {
                        return Ok(Fed {
                            consumed: i,
                            ended: Some(keep_alive),
                        });
                    }
                }
                State::Fixed { left } => {
                    let n = (rest.len() as u64).min(left);
                    let take = rest.get(..n as usize).unwrap_or(&[]);
                    self.body(take, on)?;
                    i += n as usize;
                    if n == left {
                        let keep_alive = self.end_body(on);
                        return Ok(Fed {
                            consumed: i,
                            ended: Some(keep_alive),
                        });
                    }
                    self.state = State::Fixed { left: left - n };
                }
                State::ChunkSize { value, digits, ext } => {
                    let b = rest.first().copied().unwrap_or(b'\n');
                    i += 1;
                    self.state = match b {
                        b'\n' if digits == 0 => return Err(HttpError::BadChunk),
                        b'\n' if value == 0 => {
                            self.flush_partial(on);
                            State::Trailers
                        }
                        b'\n' => State::ChunkData { left: value },
                        b'\r' | b';' | b' ' | b'\t' => State::ChunkSize {
                            value,
                            digits,
                            ext: true,
                        },
                        _ if ext => State::ChunkSize { value, digits, ext },
                        _ => {
                            let d = hex_value(b).ok_or(HttpError::BadChunk)?;
                            if digits >= MAX_CHUNK_DIGITS {
                                return Err(HttpError::BadChunk);
                            }
                            State::ChunkSize {
                                value: value * 16 + d,
                                digits: digits + 1,
                                ext,
                            }
                        }
                    };
                }
                State::ChunkData { left } => {
                    let n = (rest.len() as u64).min(left);
                    let take = rest.get(..n as usize).unwrap_or(&[]);
                    self.body(take, on)?;
                    i += n as usize;
                    self.state = if n == left {
                        State::ChunkDataEnd { saw_cr: false }
                    } else {
                        State::ChunkData { left: left - n }
                    };
                }
                State::ChunkDataEnd { saw_cr } => {
                    let b = rest.first().copied().unwrap_or(0);
                    i += 1;
                    self.state = match b {
                        b'\r' if !saw_cr => State::ChunkDataEnd { saw_cr: true },
                        b'\n' => State::ChunkSize {
                            value: 0,
                            digits: 0,
                            ext: false,
                        },
                        _ => return Err(HttpError::BadChunk),
                    };
                }
                State::UntilClose => {
                    self.body(rest, on)?;
                    i = input.len();
                }
                State::WsHead { .. } => i += self.frame_head(rest, on)?,
                State::WsPayload { .. } => i += self.frame_payload(rest, on)?,
                State::WsClosed => i = input.len(),
            }
        }
        Ok(Fed {
            consumed: input.len(),
            ended: None,
        })
    }

    /// The peer closed the connection. `Ok(Some(false))` when that ended a read-until-close body,
    /// `Ok(None)` when no response was in progress, an error when a response was cut short.
    pub fn eof<F>(&mut self, on: &mut F) -> Result<Option<bool>, HttpError>
    where
        F: FnMut(Event<'_>),
    {
        match self.state {
            State::StatusLine if self.line.is_empty() => Ok(None),
            State::UntilClose => {
                self.end_body(on);
                Ok(Some(false))
            }
            State::WsClosed => Ok(None),
            _ => Err(HttpError::UnexpectedEof),
        }
    }

    fn append_line(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        if self.line.len() + bytes.len() > MAX_LINE {
            return Err(HttpError::LineTooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Handles one complete status/header/trailer line; returns `Some(keep_alive)` when the
    /// response ended with it.
    fn head_line<F>(&mut self, line: &[u8], on: &mut F) -> Result<Option<bool>, HttpError>
    where
        F: FnMut(Event<'_>),
    {
        match self.state {
            State::StatusLine => {
                if line.is_empty() {
                    return Ok(None); // stray blank line between responses
                }
                self.status_line(line)?;
                self.state = State::Headers;
                Ok(None)
            }
            State::Headers if line.is_empty() => Ok(self.head_done(on)),
            State::Headers => {
                self.header(line)?;
                Ok(None)
            }
            _ if line.is_empty() => Ok(Some(self.end_body(on))), // end of trailers
            _ => Ok(None),                                       // a trailer: ignored
        }
    }

    fn status_line(&mut self, line: &[u8]) -> Result<(), HttpError> {
        let rest = line
            .strip_prefix(b"HTTP/1.")
            .ok_or(HttpError::BadStatusLine)?;
        let (minor, rest) = rest.split_first().ok_or(HttpError::BadStatusLine)?;
        let code = rest
            .strip_prefix(b" ")
            .and_then(|r| r.get(..3))
            .ok_or(HttpError::BadStatusLine)?;
        let mut status: u16 = 0;
        for &b in code {
            if !b.is_ascii_digit() {
                return Err(HttpError::BadStatusLine);
            }
            status = status * 10 + u16::from(b - b'0');
        }
        self.status = status;
        self.keep_alive = *minor != b'0';
        self.chunked = false;
        self.content_length = None;
        Ok(())
    }

    fn header(&mut self, line: &[u8]) -> Result<(), HttpError> {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HttpError::BadHeader)?;
        let name = line.get(..colon).unwrap_or(&[]).trim_ascii();
        let value = line.get(colon + 1..).unwrap_or(&[]).trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let text = std::str::from_utf8(value).map_err(|_| HttpError::BadHeader)?;
            self.content_length = Some(text.parse().map_err(|_| HttpError::BadHeader)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.chunked = value.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                self.keep_alive = false;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            }
        }
        Ok(())
    }

    fn head_done<F>(&mut self, on: &mut F) -> Option<bool>
    where
        F: FnMut(Event<'_>),
    {
        if self.status == 101 {
            on(Event::Head { status: 101 });
            self.state = ws_head(false);
            return None;
        }
        if (100..200).contains(&self.status) {
            self.state = State::StatusLine;
            return None;
        }
        on(Event::Head {
            status: self.status,
        });
        if self.status == 204 || self.status == 304 {
            return Some(self.end_body(on));
        }
        if self.chunked {
            self.state = State::ChunkSize {
                value: 0,
                digits: 0,
                ext: false,
            };
            return None;
        }
        match self.content_length {
            Some(0) => Some(self.end_body(on)),
            Some(n) => {
                self.state = State::Fixed { left: n };
                None
            }
            None => {
                self.keep_alive = false;
                self.state = State::UntilClose;
                None
            }
        }
    }

    /// Takes bytes of a frame head from `rest`; returns how many. A complete head starts the
    /// frame's payload (at once for an empty one).
    fn frame_head<F>(&mut self, rest: &[u8], on: &mut F) -> Result<usize, HttpError>
    where
        F: FnMut(Event<'_>),
    {
        let State::WsHead {
            have,
            mut bytes,
            open,
        } = self.state
        else {
            return Ok(0);
        };
        let mut have = usize::from(have);
        let mut used = 0;
        loop {
            let want = match bytes.get(1) {
                Some(&second) if have >= 2 => ws_frames::head_size(second),
                _ => 2,
            };
            let (Some(&b), Some(slot)) = (rest.get(used), bytes.get_mut(have)) else {
                break;
            };
            if have >= want {
                break;
            }
            *slot = b;
            have += 1;
            used += 1;
        }
        let head = ws_frames::parse_head(bytes.get(..have).unwrap_or(&[]))
            .map_err(|_| HttpError::BadFrame)?;
        let Some(head) = head else {
            self.state = State::WsHead {
                have: have as u8,
                bytes,
                open,
            };
            return Ok(used);
        };
        let control = head.opcode >= OP_CLOSE;
        match head.opcode {
            OP_CONTINUATION if !open => return Err(HttpError::BadFrame),
            OP_TEXT if open => return Err(HttpError::BadFrame),
            OP_CONTINUATION | OP_TEXT => {
                if self.line.len() as u64 + head.len > MAX_LINE as u64 {
                    return Err(HttpError::LineTooLong);
                }
            }
            _ if control => {}
            _ => return Err(HttpError::BadFrame), // binary: commands and messages are text
        }
        self.state = State::WsPayload {
            left: head.len,
            opcode: head.opcode,
            fin: head.fin,
            open,
            control: if control { head.len as u8 } else { 0 },
        };
        if head.len == 0 {
            self.frame_payload(&[], on)?;
        }
        Ok(used)
    }

    /// Takes payload bytes of the current frame from `rest`; returns how many. A complete text
    /// message is one line (straight from `rest` when it came whole in one read), a complete
    /// control frame its event.
    fn frame_payload<F>(&mut self, rest: &[u8], on: &mut F) -> Result<usize, HttpError>
    where
        F: FnMut(Event<'_>),
    {
        let State::WsPayload {
            left,
            opcode,
            fin,
            open,
            control,
        } = self.state
        else {
            return Ok(0);
        };
        let n = (rest.len() as u64).min(left);
        let take = rest.get(..n as usize).unwrap_or(&[]);
        if n < left {
            if control > 0 {
                self.line.extend_from_slice(take); // at most 125 bytes
            } else {
                self.append_line(take)?;
            }
            self.state = State::WsPayload {
                left: left - n,
                opcode,
                fin,
                open,
                control,
            };
            return Ok(n as usize);
        }
        if opcode >= OP_CLOSE {
            // The part of this control frame read earlier sits at the end of `line`.
            let start = self.line.len() - (usize::from(control) - take.len());
            self.state = ws_head(open);
            if start == self.line.len() {
                self.control_frame(opcode, take, on);
            } else {
                self.line.extend_from_slice(take);
                let payload = std::mem::take(&mut self.line);
                self.control_frame(opcode, payload.get(start..).unwrap_or(&[]), on);
                self.line = payload;
                self.line.truncate(start);
            }
            return Ok(n as usize);
        }
        self.state = ws_head(!fin);
        if fin && !open && self.line.is_empty() {
            on(Event::Line(take));
        } else {
            self.append_line(take)?;
            if fin {
                on(Event::Line(&self.line));
                self.line.clear();
            }
        }
        Ok(n as usize)
    }

    fn control_frame<F>(&mut self, opcode: u8, payload: &[u8], on: &mut F)
    where
        F: FnMut(Event<'_>),
    {
        match opcode {
            OP_PING => on(Event::Ping(payload)),
            OP_CLOSE => {
                on(Event::Close(ws_frames::close_code(payload)));
                self.state = State::WsClosed;
            }
            _ => {} // a pong
        }
    }

    /// Splits body bytes into lines, carrying a partial line in the buffer.
    fn body<F>(&mut self, mut bytes: &[u8], on: &mut F) -> Result<(), HttpError>
    where
        F: FnMut(Event<'_>),
    {
        while let Some(lf) = bytes.iter().position(|&b| b == b'\n') {
            let piece = bytes.get(..lf).unwrap_or(&[]);
            if self.line.is_empty() {
                on(Event::Line(strip_cr(piece)));
            } else {
                self.append_line(piece)?;
                on(Event::Line(strip_cr(&self.line)));
                self.line.clear();
            }
            bytes = bytes.get(lf + 1..).unwrap_or(&[]);
        }
        self.append_line(bytes)
    }

    fn flush_partial<F>(&mut self, on: &mut F)
    where
        F: FnMut(Event<'_>),
    {
        if !self.line.is_empty() {
            on(Event::Line(strip_cr(&self.line)));
            self.line.clear();
        }
    }

    fn end_body<F>(&mut self, on: &mut F) -> bool
    where
        F: FnMut(Event<'_>),
    {
        self.flush_partial(on);
        self.state = State::StatusLine;
        self.keep_alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Head(u16),
        Line(String),
        End(bool),
        Ping(String),
        Close(Option<u16>),
    }

    fn run(reader: &mut ResponseReader, input: &[u8], step: usize) -> Result<Vec<Ev>, HttpError> {
        let mut evs = Vec::new();
        for piece in input.chunks(step.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let fed = reader.feed(rest, &mut |e| match e {
                    Event::Head { status } => evs.push(Ev::Head(status)),
                    Event::Line(l) => evs.push(Ev::Line(String::from_utf8_lossy(l).into())),
                    Event::Ping(p) => evs.push(Ev::Ping(String::from_utf8_lossy(p).into())),
                    Event::Close(c) => evs.push(Ev::Close(c)),
                })?;
                if let Some(k) = fed.ended {
                    evs.push(Ev::End(k));
                }
                rest = &rest[fed.consumed..];
            }
        }
        Ok(evs)
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n47\r\nicomet_cb_0({\"type\":\"next_seq\",\"cname\":\"alice\",\"seq\":3,\"content\":\"\"});\n\r\n0\r\n\r\n";

    #[test]
    fn chunked_long_poll_in_any_split() {
        for step in [1, 2, 3, 7, 1000] {
            let mut r = ResponseReader::default();
            let evs = run(&mut r, CHUNKED, step).expect("parse");
            assert_eq!(evs.len(), 3, "step {step}: {evs:?}");
            assert_eq!(evs[0], Ev::Head(200));
            assert!(
                matches!(&evs[1], Ev::Line(l) if l.starts_with("icomet_cb_0(") && l.ends_with(");"))
            );
            assert_eq!(evs[2], Ev::End(true));
            assert!(r.is_idle());
        }
    }

    #[test]
    fn content_length_and_pipelining() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"type\":\"ok\"}\n";
        let mut two = one.to_vec();
        two.extend_from_slice(one);
        let mut r = ResponseReader::default();
        let evs = run(&mut r, &two, 5).expect("parse");
        let ends = evs.iter().filter(|e| matches!(e, Ev::End(true))).count();
        assert_eq!(ends, 2);
        assert!(evs.contains(&Ev::Line("{\"type\":\"ok\"}".into())));
    }

    #[test]
    fn sse_stream_lines_and_close_body() {
        let input = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {\"a\":1}\n\ndata: {\"b\":2}\n\n";
        let mut r = ResponseReader::default();
        let evs = run(&mut r, input, 4).expect("parse");
        assert_eq!(evs[0], Ev::Head(200));
        assert!(evs.contains(&Ev::Line("data: {\"b\":2}".into())));
        let end = r.eof(&mut |_| {}).expect("eof");
        assert_eq!(end, Some(false));
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        let mut r = ResponseReader::default();
        assert_eq!(
            run(&mut r, b"SIP/2.0 200 OK\r\n", 3),
            Err(HttpError::BadStatusLine)
        );
        let mut r = ResponseReader::default();
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(run(&mut r, bad, 100), Err(HttpError::BadChunk));
        let mut r = ResponseReader::default();
        let long = vec![b'a'; MAX_LINE + 10];
        assert_eq!(run(&mut r, &long, 4096), Err(HttpError::LineTooLong));
        let mut r = ResponseReader::default();
        run(
            &mut r,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab",
            100,
        )
        .expect("partial");
        assert_eq!(r.eof(&mut |_| {}), Err(HttpError::UnexpectedEof));
    }

    #[test]
    fn interim_continue_and_connection_close() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let mut r = ResponseReader::default();
        let evs = run(&mut r, input, 100).expect("parse");
        assert_eq!(evs, vec![Ev::Head(404), Ev::End(false)]);
    }

    #[test]
    fn idle_reader_owns_no_buffer() {
        let mut r = ResponseReader::default();
        run(&mut r, &CHUNKED[..30], 7).expect("partial");
        assert!(!r.is_idle());
        run(&mut r, &CHUNKED[30..], 7).expect("rest");
        r.release_idle_buffer();
        assert_eq!(r.line.capacity(), 0);
    }

    /// An unmasked server frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xffff => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    #[test]
    fn websocket_frames_after_a_101_in_any_split() {
        let big = "x".repeat(300);
        let mut input = SWITCHING.to_vec();
        input.extend(frame(true, 1, b"{\"a\":1}"));
        input.extend(frame(true, 9, b"hb"));
        input.extend(frame(false, 1, b"ab"));
        input.extend(frame(true, 9, b"mid"));
        input.extend(frame(false, 0, b""));
        input.extend(frame(true, 10, b"pong"));
        input.extend(frame(true, 0, b"cd"));
        input.extend(frame(true, 1, b""));
        input.extend(frame(true, 1, big.as_bytes()));
        input.extend(frame(true, 8, &1000u16.to_be_bytes()));
        input.extend(b"ignored after the close");
        for step in [1, 2, 3, 5, 7, 1000] {
            let mut r = ResponseReader::default();
            let evs = run(&mut r, &input, step).expect("parse");
            assert_eq!(
                evs,
                vec![
                    Ev::Head(101),
                    Ev::Line("{\"a\":1}".into()),
                    Ev::Ping("hb".into()),
                    Ev::Ping("mid".into()),
                    Ev::Line("abcd".into()),
                    Ev::Line("".into()),
                    Ev::Line(big.clone()),
                    Ev::Close(Some(1000)),
                ],
                "step {step}"
            );
            assert_eq!(
                r.eof(&mut |_| {}),
                Ok(None),
                "a closed WebSocket ends cleanly"
            );
        }
    }

    #[test]
    fn websocket_errors_and_bounds() {
        let upgraded = |frames: &[u8]| {
            let mut input = SWITCHING.to_vec();
            input.extend_from_slice(frames);
            run(&mut ResponseReader::default(), &input, 1000)
        };
        assert_eq!(
            upgraded(&[0x81, 0x81, 1, 2, 3, 4, b'x']),
            Err(HttpError::BadFrame),
            "masked"
        );
        assert_eq!(
            upgraded(&frame(true, 2, b"x")),
            Err(HttpError::BadFrame),
            "binary"
        );
        assert_eq!(
            upgraded(&frame(true, 0, b"x")),
            Err(HttpError::BadFrame),
            "lone continuation"
        );
        let mut twice = frame(false, 1, b"a");
        twice.extend(frame(true, 1, b"b"));
        assert_eq!(
            upgraded(&twice),
            Err(HttpError::BadFrame),
            "a new message inside one"
        );
        let mut long = frame(false, 1, &vec![b'x'; MAX_LINE - 1]);
        long.extend(frame(true, 0, b"yy"));
        assert_eq!(upgraded(&long), Err(HttpError::LineTooLong));
        let mut r = ResponseReader::default();
        let mut input = SWITCHING.to_vec();
        input.extend(&frame(true, 1, b"abcdef")[..4]);
        run(&mut r, &input, 1000).expect("partial frame");
        assert_eq!(r.eof(&mut |_| {}), Err(HttpError::UnexpectedEof));
    }

    #[test]
    fn a_websocket_message_split_over_reads_leaves_no_buffer() {
        let mut r = ResponseReader::default();
        let mut input = SWITCHING.to_vec();
        input.extend(frame(true, 1, b"{\"type\":\"noop\"}"));
        let evs = run(&mut r, &input, 9).expect("parse");
        assert_eq!(evs.last(), Some(&Ev::Line("{\"type\":\"noop\"}".into())));
        r.release_idle_buffer();
        assert_eq!(r.line.capacity(), 0);
    }
}
