//! Transport framing of subscription replies (iComet's): the response heads, the iframe
//! preamble, and the bytes around each JSON object or array of objects.
//! Depends on `api::json` (callback validation) and `api::short_bytes` (the kept callback); the
//! JSON objects come from `comet::message` as bytes.
//!
//! A delivered frame is written as `[prefix][shared JSON][suffix]` so the worker can queue the
//! shared `Arc<[u8]>` between two small per-subscriber pieces without copying it:
//!
//! | transport | body of one frame                               |
//! |-----------|-------------------------------------------------|
//! | long-poll | `MSG\n`, or `cb(MSG);\n` with a JSONP callback   |
//! | stream    | `MSG\n`                                         |
//! | SSE       | `data: MSG\n\n`                                 |
//! | iframe    | `<script>parent.icomet_cb(MSG);</script>\n`     |
//! | WebSocket | one text frame holding `MSG` (`crate::ws::frame`) |
//!
//! On HTTP/1.1 every frame is exactly one chunk (`<lowercase hex size>\r\n<body>\r\n`); on HTTP/1.0
//! the body goes out raw. Long-poll replays and broadcasts are one array frame
//! (`[MSG,MSG]\n` / `cb([MSG,MSG]);\n`).

use super::json::valid_callback;
use super::short_bytes::ShortBytes;

/// Subscription transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `/sub`, `/poll`: one frame, then the response ends.
    LongPoll,
    /// `/stream`: one JSON object per line, until `/close`.
    Stream,
    /// `/sse`: Server-Sent Events `data:` lines.
    Sse,
    /// `/iframe`: script tags calling `parent.icomet_cb`.
    Iframe,
    /// `/ws`: one WebSocket text frame per JSON object, the subscription on an upgraded socket.
    WebSocket,
}

/// How one subscriber's frames are wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    /// The transport.
    pub transport: Transport,
    /// HTTP/1.1 chunked encoding (false: HTTP/1.0 raw bytes).
    pub chunked: bool,
    /// JSONP callback (long-poll only; must pass `json::valid_callback`). A WebSocket
    /// subscription keeps its `Sec-WebSocket-Accept` value here until the 101 head is written.
    pub callback: Option<ShortBytes>,
    /// A resumable subscription: SSE frames of channel messages carry `id: <epoch>:<seq>`, and
    /// position markers (`next_seq`, `reset`) carry the epoch (see `subscribe`).
    pub resumable: bool,
}

/// An SSE event id: the channel incarnation and the message's seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId {
    pub epoch: u32,
    pub seq: u32,
}

impl EventId {
    /// Appends `id: <epoch>:<seq>\n` (the seq signed, as in the JSON).
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(itoa::Buffer::new().format(self.epoch).as_bytes());
        out.push(b':');
        out.extend_from_slice(itoa::Buffer::new().format(self.seq as i32).as_bytes());
        out.push(b'\n');
    }

    fn len(self) -> usize {
        let epoch = itoa::Buffer::new().format(self.epoch).len();
        let seq = itoa::Buffer::new().format(self.seq as i32).len();
        b"id: ".len() + epoch + 1 + seq + 1
    }

    /// Reads `<epoch>:<seq>` as sent in an `id:` line (a `Last-Event-ID` header).
    pub fn parse(text: &[u8]) -> Option<EventId> {
        let text = std::str::from_utf8(text).ok()?.trim();
        let (epoch, seq) = text.split_once(':')?;
        Some(EventId {
            epoch: epoch.parse().ok()?,
            seq: seq.parse::<i32>().ok()? as u32,
        })
    }
}

/// The reconnection delay an SSE stream with ids suggests to `EventSource` (milliseconds).
pub const SSE_RETRY_MS: u32 = 2000;

/// The terminating chunk of a chunked response.
pub use crate::http::response::LAST_CHUNK;

/// The `/iframe` preamble body, including its final newline (exact iComet bytes, 0x1cd long).
pub const IFRAME_PREAMBLE: &[u8] = b"<html><head><meta http-equiv='Content-Type' content='text/html; charset=utf-8'><meta http-equiv='Cache-Control' content='no-store'><meta http-equiv='Cache-Control' content='no-cache'><meta http-equiv='Pragma' content='no-cache'><meta http-equiv=' Expires' content='Thu, 1 Jan 1970 00:00:00 GMT'><script type='text/javascript'>window.onError = null;try{document.domain = window.location.hostname.split('.').slice(-2).join('.');}catch(e){};</script></head><body>\n";

const IFRAME_OPEN: &[u8] = b"<script>parent.icomet_cb(";
const IFRAME_CLOSE: &[u8] = b");</script>\n";
const SSE_OPEN: &[u8] = b"data: ";
const SSE_CLOSE: &[u8] = b"\n\n";
const JSONP_OPEN: &[u8] = b"(";
const JSONP_CLOSE: &[u8] = b");\n";
const LINE_END: &[u8] = b"\n";
const CRLF: &[u8] = b"\r\n";

/// Appends `<lowercase hex len>\r\n`.
pub fn write_chunk_header(len: usize, out: &mut Vec<u8>) {
    crate::http::response::chunk_header(out, len);
}

/// Appends one chunk (or the raw bytes when not chunked) holding `body`.
pub fn write_chunk(chunked: bool, body: &[u8], out: &mut Vec<u8>) {
    if chunked {
        write_chunk_header(body.len(), out);
    }
    out.extend_from_slice(body);
    if chunked {
        out.extend_from_slice(CRLF);
    }
}

/// Appends the `/iframe` preamble frame.
pub fn write_iframe_preamble(chunked: bool, out: &mut Vec<u8>) {
    write_chunk(chunked, IFRAME_PREAMBLE, out);
}

impl Framing {
    /// Framing for a subscriber. The callback is kept only for long-poll and only when it passes
    /// `valid_callback` (an empty `cb` means plain JSON on `/sub`; the other transports ignore
    /// `cb`). Callers that want to refuse a bad callback must check it before.
    pub fn new(transport: Transport, chunked: bool, callback: Option<&[u8]>) -> Framing {
        let callback = match transport {
            Transport::LongPoll => callback
                .filter(|cb| valid_callback(cb))
                .map(ShortBytes::new),
            Transport::WebSocket => callback.map(ShortBytes::new),
            _ => None,
        };
        Framing {
            transport,
            chunked: chunked && transport != Transport::WebSocket,
            callback,
            resumable: false,
        }
    }

    /// The same framing for a resumable subscription (see [`Framing::resumable`]).
    pub fn resuming(mut self, resumable: bool) -> Framing {
        self.resumable = resumable;
        self
    }

    /// The event id an SSE frame of a channel message carries (resumable SSE only).
    pub fn event_id(&self, epoch: u32, seq: u32) -> Option<EventId> {
        (self.resumable && self.transport == Transport::Sse).then_some(EventId { epoch, seq })
    }

    /// Body bytes before the JSON: (callback name, fixed opening).
    fn opening(&self) -> (&[u8], &'static [u8]) {
        match self.transport {
            Transport::LongPoll => match &self.callback {
                Some(cb) => (cb, JSONP_OPEN),
                None => (b"", b""),
            },
            Transport::Stream => (b"", b""),
            Transport::Sse => (b"", SSE_OPEN),
            Transport::Iframe => (b"", IFRAME_OPEN),
            Transport::WebSocket => (b"", b""),
        }
    }

    /// Body bytes after the JSON.
    fn closing(&self) -> &'static [u8] {
        match self.transport {
            Transport::LongPoll if self.callback.is_some() => JSONP_CLOSE,
            Transport::LongPoll | Transport::Stream => LINE_END,
            Transport::Sse => SSE_CLOSE,
            Transport::Iframe => IFRAME_CLOSE,
            Transport::WebSocket => b"",
        }
    }

    /// Body length of a frame around `json_len` bytes of JSON (without chunk framing).
    pub fn body_len(&self, json_len: usize) -> usize {
        let (cb, open) = self.opening();
        cb.len() + open.len() + json_len + self.closing().len()
    }

    /// Appends everything before the JSON: the chunk-size line (when chunked) and the opening
    /// (`cb(`, `data: `, `<script>parent.icomet_cb(`).
    pub fn prefix(&self, json_len: usize, out: &mut Vec<u8>) {
        self.prefix_with(None, json_len, out);
    }

    /// [`prefix`](Self::prefix), with an SSE `id:` line first when `id` is given.
    pub fn prefix_with(&self, id: Option<EventId>, json_len: usize, out: &mut Vec<u8>) {
        if self.transport == Transport::WebSocket {
            crate::ws::frame::text_head(json_len, out);
            return;
        }
        if self.chunked {
            let id_len = id.map_or(0, EventId::len);
            write_chunk_header(id_len + self.body_len(json_len), out);
        }
        if let Some(id) = id {
            id.write(out);
        }
        let (cb, open) = self.opening();
        out.extend_from_slice(cb);
        out.extend_from_slice(open);
    }

    /// Appends everything after the JSON: the closing (`);\n`, `\n`, `\n\n`, `);</script>\n`)
    /// and the chunk's CRLF (when chunked).
    pub fn suffix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.closing());
        if self.chunked {
            out.extend_from_slice(CRLF);
        }
    }

    /// The bytes after a shared JSON object as one static string: the closing and, when chunked,
    /// the chunk's CRLF (what `suffix` appends).
    pub fn static_suffix(&self) -> &'static [u8] {
        match (self.closing(), self.chunked) {
            (JSONP_CLOSE, true) => b");\n\r\n",
            (SSE_CLOSE, true) => b"\n\n\r\n",
            (IFRAME_CLOSE, true) => b");</script>\n\r\n",
            (_, true) => b"\n\r\n",
            (closing, false) => closing,
        }
    }

    /// Appends one complete frame around `json` (for one-off messages).
    pub fn write_frame(&self, json: &[u8], out: &mut Vec<u8>) {
        self.write_frame_with(None, json, out);
    }

    /// [`write_frame`](Self::write_frame), with an SSE `id:` line when `id` is given.
    pub fn write_frame_with(&self, id: Option<EventId>, json: &[u8], out: &mut Vec<u8>) {
        self.prefix_with(id, json.len(), out);
        out.extend_from_slice(json);
        self.suffix(out);
    }

    /// Appends what a resumable SSE stream starts with: the `retry:` hint for `EventSource`
    /// (nothing for other subscriptions).
    pub fn write_start(&self, out: &mut Vec<u8>) {
        if self.resumable && self.transport == Transport::Sse {
            let mut hint = Vec::with_capacity(24);
            hint.extend_from_slice(b"retry: ");
            hint.extend_from_slice(itoa::Buffer::new().format(SSE_RETRY_MS).as_bytes());
            hint.extend_from_slice(b"\n\n");
            write_chunk(self.chunked, &hint, out);
        }
    }

    /// Appends several objects: for long-poll one array frame `[a,b]` (with the callback and
    /// newline as for one object); for the streaming transports one frame per object.
    pub fn write_objects<T: AsRef<[u8]>>(&self, objects: &[T], out: &mut Vec<u8>) {
        if self.transport != Transport::LongPoll {
            for obj in objects {
                self.write_frame(obj.as_ref(), out);
            }
            return;
        }
        let json_len = 2
            + objects.iter().map(|o| o.as_ref().len()).sum::<usize>()
            + objects.len().saturating_sub(1);
        self.prefix(json_len, out);
        out.push(b'[');
        for (i, obj) in objects.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(obj.as_ref());
        }
        out.push(b']');
        self.suffix(out);
    }

    /// Appends the end of the response body: the last chunk when chunked, nothing on HTTP/1.0
    /// (the connection is closed instead); a WebSocket's close frame (1000).
    pub fn write_end(&self, out: &mut Vec<u8>) {
        if self.transport == Transport::WebSocket {
            crate::ws::frame::close(crate::ws::CloseCode::NORMAL, "", out);
        } else if self.chunked {
            out.extend_from_slice(LAST_CHUNK);
        }
    }
}

/// What the head of a subscription response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeHead {
    pub transport: Transport,
    /// HTTP/1.1: `Transfer-Encoding: chunked` and `Date`; HTTP/1.0 has neither.
    pub http11: bool,
    /// A subscription that goes on (`Connection: keep-alive`); false: the head of a 401/429 error
    /// reply (same head without it, still status 200).
    pub ok: bool,
    /// The refusal of a subscription whose channel's store (cluster mode: Redis) cannot be
    /// reached: the error head with status `503 Service Unavailable` (iComet has no such case).
    pub unavailable: bool,
    /// The request said `Connection: close` (either version): the head says `Connection: close`
    /// (last, as iComet's HTTP layer puts it) instead of `keep-alive`.
    pub close: bool,
}

/// Appends the head of a subscription response, with the CORS header `cors` lines (each ending in
/// CRLF; iComet's `/sse` has `Access-Control-Allow-Origin: *`) after the content type. `/sse` gets
/// its own content type; `/iframe` is HTML.
pub fn write_subscribe_head(out: &mut Vec<u8>, head: &SubscribeHead, cors: &[u8], date: &[u8]) {
    let SubscribeHead {
        transport,
        http11,
        ok,
        unavailable,
        close,
    } = *head;
    out.extend_from_slice(match (http11, unavailable) {
        (true, false) => b"HTTP/1.1 200 OK\r\n",
        (false, false) => b"HTTP/1.0 200 OK\r\n",
        (true, true) => b"HTTP/1.1 503 Service Unavailable\r\n",
        (false, true) => b"HTTP/1.0 503 Service Unavailable\r\n",
    });
    out.extend_from_slice(b"Expires: 0\r\nCache-Control: no-cache\r\n");
    if transport == Transport::Sse {
        out.extend_from_slice(b"Content-Type: text/event-stream; charset=utf-8\r\n");
    } else if transport == Transport::Iframe {
        // iComet serves the iframe as JSON, so browsers never run its scripts: HTML here.
        out.extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\n");
    } else {
        out.extend_from_slice(b"Content-Type: application/json; charset=utf-8\r\n");
    }
    out.extend_from_slice(cors);
    if ok && !close {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    if http11 {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\nDate: ");
        out.extend_from_slice(date);
        out.extend_from_slice(CRLF);
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(CRLF);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comet::message::TOO_MANY_SUBSCRIBERS;
    use crate::comet::message::{encode, encode_into, MsgType, TOKEN_ERROR, TOO_MANY_CHANNELS};

    const DATE: &[u8] = b"Wed, 25 Nov 2026 18:24:52 GMT";

    fn head(transport: Transport, http11: bool, ok: bool, date: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let head = SubscribeHead {
            transport,
            http11,
            ok,
            unavailable: false,
            close: false,
        };
        // What `api::cors` gives /sse by default.
        let cors: &[u8] = if transport == Transport::Sse {
            b"Access-Control-Allow-Origin: *\r\n"
        } else {
            b""
        };
        write_subscribe_head(&mut out, &head, cors, date);
        out
    }

    fn json(kind: MsgType, cname: &str, seq: u32, content: &str) -> Vec<u8> {
        encode(kind, cname.as_bytes(), seq, content.as_bytes()).to_vec()
    }

    /// Frame written as prefix + shared bytes + suffix, checked against `write_frame`.
    fn frame(framing: &Framing, obj: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        framing.prefix(obj.len(), &mut out);
        out.extend_from_slice(obj);
        framing.suffix(&mut out);
        let mut whole = Vec::new();
        framing.write_frame(obj, &mut whole);
        assert_eq!(out, whole);
        let mut suffix = Vec::new();
        framing.suffix(&mut suffix);
        assert_eq!(suffix, framing.static_suffix(), "the shared-frame tail");
        out
    }

    fn s(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    const OK_HEAD_11: &str = "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n\
        Content-Type: application/json; charset=utf-8\r\nConnection: keep-alive\r\n\
        Transfer-Encoding: chunked\r\nDate: Wed, 25 Nov 2026 18:24:52 GMT\r\n\r\n";

    #[test]
    fn long_poll_next_seq_with_callback() {
        let f = Framing::new(Transport::LongPoll, true, Some(b"icomet_cb_0"));
        let mut out = head(Transport::LongPoll, true, true, DATE);
        out.extend(frame(&f, &json(MsgType::NextSeq, "alice", 3, "")));
        f.write_end(&mut out);
        let expected = format!(
            "{OK_HEAD_11}47\r\nicomet_cb_0({{\"type\":\"next_seq\",\"cname\":\"alice\",\
             \"seq\":3,\"content\":\"\"}});\n\r\n0\r\n\r\n"
        );
        assert_eq!(s(&out), expected);
    }

    #[test]
    fn long_poll_replay_array() {
        let f = Framing::new(Transport::LongPoll, true, Some(b"icomet_cb_0"));
        let objects = [
            json(MsgType::Data, "alice", 1, "say \\\"hi\\\""),
            json(MsgType::Data, "alice", 2, "\\u4f60"),
        ];
        let mut out = Vec::new();
        f.write_objects(&objects, &mut out);
        assert_eq!(
            s(&out),
            "8a\r\nicomet_cb_0([{\"type\":\"data\",\"cname\":\"alice\",\"seq\":1,\
             \"content\":\"say \\\"hi\\\"\"},{\"type\":\"data\",\"cname\":\"alice\",\
             \"seq\":2,\"content\":\"\\u4f60\"}]);\n\r\n"
        );
        // Without callback: `[a,b]\n`.
        let plain = Framing::new(Transport::LongPoll, false, None);
        out.clear();
        plain.write_objects(&[b"{}".as_slice(), b"{}"], &mut out);
        assert_eq!(out, b"[{},{}]\n");
    }

    #[test]
    fn long_poll_plain_and_noop() {
        let f = Framing::new(Transport::LongPoll, true, Some(b""));
        assert!(f.callback.is_none(), "empty cb means plain JSON");
        let bad = Framing::new(Transport::LongPoll, true, Some(b"alert(1)"));
        assert!(bad.callback.is_none(), "unsafe callbacks are never echoed");
        assert_eq!(
            s(&frame(&f, &json(MsgType::Data, "bob", 1, "line1\\nline2"))),
            "3f\r\n{\"type\":\"data\",\"cname\":\"bob\",\"seq\":1,\
             \"content\":\"line1\\nline2\"}\n\r\n"
        );
        let f = Framing::new(Transport::LongPoll, true, Some(b"f"));
        assert_eq!(
            s(&frame(&f, &json(MsgType::Noop, "bob", 3, ""))),
            "37\r\nf({\"type\":\"noop\",\"cname\":\"bob\",\"seq\":3,\"content\":\"\"});\n\r\n"
        );
    }

    #[test]
    fn stream_frames() {
        let f = Framing::new(Transport::Stream, true, Some(b"ignored"));
        assert!(f.callback.is_none());
        let sizes: Vec<String> = [
            json(MsgType::NextSeq, "carol", 1, ""),
            json(MsgType::Data, "carol", 1, "hello"),
            json(MsgType::Broadcast, "carol", 2, "to all"),
            json(MsgType::NextSeq, "carol", 3, ""),
            json(MsgType::Noop, "carol", 10, ""),
            json(MsgType::Noop, "carol", 11, ""),
            json(MsgType::Close, "carol", 3, ""),
        ]
        .iter()
        .map(|o| {
            let out = frame(&f, o);
            assert!(out.ends_with(b"}\n\r\n"));
            s(&out).split("\r\n").next().unwrap().to_owned()
        })
        .collect();
        assert_eq!(sizes, ["39", "3a", "40", "39", "36", "36", "36"]);
    }

    #[test]
    fn stream_replay_is_one_frame_per_object() {
        let f = Framing::new(Transport::Stream, false, None);
        let mut out = Vec::new();
        f.write_objects(&[b"{\"a\":1}".as_slice(), b"{\"b\":2}"], &mut out);
        assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n");
    }

    #[test]
    fn sse_frame_and_head() {
        let f = Framing::new(Transport::Sse, true, None);
        let date = b"Wed, 25 Nov 2026 18:25:12 GMT";
        let mut out = head(Transport::Sse, true, true, date);
        out.extend(frame(&f, &json(MsgType::Data, "dave", 1, "hi")));
        assert_eq!(
            s(&out),
            "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n\
             Content-Type: text/event-stream; charset=utf-8\r\nAccess-Control-Allow-Origin: *\r\n\
             Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\
             Date: Wed, 25 Nov 2026 18:25:12 GMT\r\n\r\n\
             3d\r\ndata: {\"type\":\"data\",\"cname\":\"dave\",\"seq\":1,\"content\":\"hi\"}\n\n\r\n"
        );
    }

    #[test]
    fn iframe_preamble_and_frames() {
        assert_eq!(IFRAME_PREAMBLE.len(), 0x1cd);
        assert!(IFRAME_PREAMBLE.starts_with(b"<html><head><meta http-equiv='Content-Type'"));
        assert!(IFRAME_PREAMBLE.ends_with(b"</script></head><body>\n"));
        assert!(IFRAME_PREAMBLE
            .windows(b"http-equiv=' Expires'".len())
            .any(|w| w == b"http-equiv=' Expires'"));
        let mut out = Vec::new();
        write_iframe_preamble(true, &mut out);
        assert!(out.starts_with(b"1cd\r\n<html>"));
        assert!(out.ends_with(b"<body>\n\r\n"));
        let f = Framing::new(Transport::Iframe, true, Some(b"cb"));
        assert_eq!(
            s(&frame(&f, &json(MsgType::NextSeq, "erin", 1, ""))),
            "5c\r\n<script>parent.icomet_cb({\"type\":\"next_seq\",\"cname\":\"erin\",\
             \"seq\":1,\"content\":\"\"});</script>\n\r\n"
        );
        assert!(frame(&f, &json(MsgType::Data, "erin", 1, "hi")).starts_with(b"5a\r\n"));
    }

    #[test]
    fn resumable_sse_frames_carry_ids() {
        let f = Framing::new(Transport::Sse, true, None).resuming(true);
        let mut out = Vec::new();
        f.write_start(&mut out);
        assert_eq!(s(&out), "d\r\nretry: 2000\n\n\r\n");
        let obj = json(MsgType::Data, "dave", 7, "hi");
        out.clear();
        f.write_frame_with(f.event_id(3_000_000_000, 7), &obj, &mut out);
        let body = format!("id: 3000000000:7\ndata: {}\n\n", s(&obj));
        assert_eq!(s(&out), format!("{:x}\r\n{body}\r\n", body.len()));
        // Without ids, or on another transport, nothing changes.
        assert_eq!(
            Framing::new(Transport::Sse, true, None).event_id(1, 2),
            None
        );
        let stream = Framing::new(Transport::Stream, true, None).resuming(true);
        assert_eq!(stream.event_id(1, 2), None);
        out.clear();
        stream.write_start(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn event_ids_parse_back() {
        let id = EventId {
            epoch: 9,
            seq: u32::MAX,
        };
        let mut line = Vec::new();
        id.write(&mut line);
        assert_eq!(line, b"id: 9:-1\n");
        assert_eq!(line.len(), id.len());
        assert_eq!(EventId::parse(b" 9:-1 "), Some(id));
        for bad in [
            &b""[..],
            b"9",
            b"x:1",
            b"9:",
            b":1",
            b"9:1:2",
            b"-1:3",
            b"\xff:1",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http10_stream_is_raw() {
        let f = Framing::new(Transport::Stream, false, None);
        let mut out = head(Transport::Stream, false, true, b"ignored");
        out.extend(frame(&f, &json(MsgType::NextSeq, "ivan", 1, "")));
        out.extend(frame(&f, &json(MsgType::Close, "ivan", 1, "")));
        f.write_end(&mut out);
        assert_eq!(
            s(&out),
            "HTTP/1.0 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n\
             Content-Type: application/json; charset=utf-8\r\nConnection: keep-alive\r\n\r\n\
             {\"type\":\"next_seq\",\"cname\":\"ivan\",\"seq\":1,\"content\":\"\"}\n\
             {\"type\":\"close\",\"cname\":\"ivan\",\"seq\":1,\"content\":\"\"}\n"
        );
    }

    #[test]
    fn error_replies() {
        let date = b"Wed, 25 Nov 2026 18:25:18 GMT";
        let f = Framing::new(Transport::LongPoll, true, Some(b"icomet_cb_0"));
        let mut out = head(Transport::LongPoll, true, false, date);
        let mut obj = Vec::new();
        encode_into(&mut obj, MsgType::TokenError, b"gina", 0, TOKEN_ERROR);
        f.write_frame(&obj, &mut out);
        f.write_end(&mut out);
        assert_eq!(
            s(&out),
            "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n\
             Content-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\
             Date: Wed, 25 Nov 2026 18:25:18 GMT\r\n\r\n\
             4c\r\nicomet_cb_0({\"type\":\"401\",\"cname\":\"gina\",\"seq\":0,\
             \"content\":\"Token error\"});\n\r\n0\r\n\r\n"
        );

        let f = Framing::new(Transport::Stream, true, None);
        obj.clear();
        encode_into(&mut obj, MsgType::TooMany, b"jack", 0, TOO_MANY_SUBSCRIBERS);
        out.clear();
        f.write_frame(&obj, &mut out);
        assert!(out.starts_with(b"47\r\n{\"type\":\"429\""));

        let date = b"Wed, 25 Nov 2026 18:25:33 GMT";
        let f = Framing::new(Transport::Sse, true, None);
        let mut out = head(Transport::Sse, true, false, date);
        obj.clear();
        encode_into(&mut obj, MsgType::TooMany, b"k4", 0, TOO_MANY_CHANNELS);
        f.write_frame(&obj, &mut out);
        f.write_end(&mut out);
        assert_eq!(
            s(&out),
            "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n\
             Content-Type: text/event-stream; charset=utf-8\r\nAccess-Control-Allow-Origin: *\r\n\
             Transfer-Encoding: chunked\r\nDate: Wed, 25 Nov 2026 18:25:33 GMT\r\n\r\n\
             49\r\ndata: {\"type\":\"429\",\"cname\":\"k4\",\"seq\":0,\
             \"content\":\"Too many channels\"}\n\n\r\n0\r\n\r\n"
        );
        // HTTP/1.0 error head: neither keep-alive nor chunking.
        assert_eq!(
            s(&head(Transport::Stream, false, false, b"")),
            "HTTP/1.0 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n\
             Content-Type: application/json; charset=utf-8\r\n\r\n"
        );
    }

    #[test]
    fn chunk_headers() {
        let mut out = Vec::new();
        for len in [0usize, 9, 0x1cd, 0xabcdef] {
            write_chunk_header(len, &mut out);
        }
        assert_eq!(out, b"0\r\n9\r\n1cd\r\nabcdef\r\n");
        let f = Framing::new(Transport::LongPoll, false, None);
        out.clear();
        f.write_end(&mut out);
        assert!(out.is_empty(), "HTTP/1.0 ends by closing");
        assert_eq!(f.body_len(10), 11);
    }
}
