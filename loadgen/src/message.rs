//! iComet messages inside one body line: strips the transport wrapping (`data: ` for SSE, a JSONP
//! `cb(...);` for long-poll and admin replies), walks a single object or an array of objects with a
//! tiny bounded JSON scanner, and hands out each message's type, seq, content and token. Also the
//! fan-out payload stamp `<send ns>.<message id>[-xxx…]`. Pure; depends on std only.

use std::io::Write;

/// The `type` of an iComet message (or admin reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Data,
    Broadcast,
    NextSeq,
    Noop,
    Close,
    /// `401` Token error.
    Unauthorized,
    /// `429` Too many channels / subscribers.
    TooMany,
    Sign,
    Ok,
    Ping,
    Other,
}

impl Kind {
    fn from_name(name: &[u8]) -> Kind {
        match name {
            b"data" => Kind::Data,
            b"broadcast" => Kind::Broadcast,
            b"next_seq" => Kind::NextSeq,
            b"noop" => Kind::Noop,
            b"close" => Kind::Close,
            b"401" => Kind::Unauthorized,
            b"429" => Kind::TooMany,
            b"sign" => Kind::Sign,
            b"ok" => Kind::Ok,
            b"ping" => Kind::Ping,
            _ => Kind::Other,
        }
    }
}

/// One message; string fields are the raw (still escaped) bytes between the quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: Kind,
    pub seq: i64,
    pub content: &'a [u8],
    pub token: &'a [u8],
}

/// The line is not a message, an array of messages, or a JSONP call around one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAMessage;

/// Deepest nesting skipped inside a value.
const MAX_DEPTH: u32 = 32;

/// Calls `f` for each message in the line and returns how many there were (0 for a blank line).
pub fn for_each_message<'a, F>(line: &'a [u8], mut f: F) -> Result<usize, NotAMessage>
where
    F: FnMut(Message<'a>),
{
    let json = unwrap_transport(line)?;
    if json.is_empty() {
        return Ok(0);
    }
    let mut c = Cursor { s: json, i: 0 };
    let mut count = 0;
    match c.peek() {
        Some(b'{') => {
            f(c.object()?);
            count += 1;
        }
        Some(b'[') => {
            c.i += 1;
            c.ws();
            if c.peek() == Some(b']') {
                c.i += 1;
            } else {
                loop {
                    c.ws();
                    f(c.object()?);
                    count += 1;
                    c.ws();
                    match c.next() {
                        Some(b',') => continue,
                        Some(b']') => break,
                        _ => return Err(NotAMessage),
                    }
                }
            }
        }
        _ => return Err(NotAMessage),
    }
    c.ws();
    if c.i != json.len() {
        return Err(NotAMessage);
    }
    Ok(count)
}

/// Removes `data:` (SSE) and `callback( ... );` (JSONP) around the JSON text.
fn unwrap_transport(line: &[u8]) -> Result<&[u8], NotAMessage> {
    let mut s = line.trim_ascii();
    if let Some(rest) = s.strip_prefix(b"data:") {
        s = rest.trim_ascii();
    }
    match s.first() {
        None | Some(b'{') | Some(b'[') => return Ok(s),
        _ => {}
    }
    let open = s.iter().position(|&b| b == b'(').ok_or(NotAMessage)?;
    let name = s.get(..open).unwrap_or(&[]);
    if !name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.')
    {
        return Err(NotAMessage);
    }
    let inner = s.get(open + 1..).unwrap_or(&[]);
    let inner = inner.strip_suffix(b";").unwrap_or(inner);
    let inner = inner.strip_suffix(b")").ok_or(NotAMessage)?;
    Ok(inner.trim_ascii())
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.i += 1;
        b
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), NotAMessage> {
        if self.next() == Some(b) {
            Ok(())
        } else {
            Err(NotAMessage)
        }
    }

    /// A string; returns the raw bytes between the quotes.
    fn string(&mut self) -> Result<&'a [u8], NotAMessage> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match self.next() {
                None => return Err(NotAMessage),
                Some(b'\\') => self.i += 1,
                Some(b'"') => return self.s.get(start..self.i - 1).ok_or(NotAMessage),
                Some(_) => {}
            }
        }
    }

    fn number(&mut self) -> Result<i64, NotAMessage> {
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let mut v: i64 = 0;
        let mut digits = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            v = v.wrapping_mul(10).wrapping_add(i64::from(b - b'0'));
            digits += 1;
            self.i += 1;
        }
        // Fractions and exponents never occur in iComet output; skip them if present.
        while matches!(
            self.peek(),
            Some(b'.' | b'e' | b'E' | b'+' | b'-' | b'0'..=b'9')
        ) {
            self.i += 1;
        }
        if digits == 0 {
            return Err(NotAMessage);
        }
        Ok(if neg { v.wrapping_neg() } else { v })
    }

    /// Skips any value (used for fields we do not read).
    fn skip_value(&mut self, depth: u32) -> Result<(), NotAMessage> {
        if depth > MAX_DEPTH {
            return Err(NotAMessage);
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => {
                let close = if self.peek() == Some(b'{') {
                    b'}'
                } else {
                    b']'
                };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if close == b'}' {
                        self.ws();
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(b) if b == close => return Ok(()),
                        _ => return Err(NotAMessage),
                    }
                }
            }
            Some(b't') | Some(b'f') | Some(b'n') => {
                while matches!(self.peek(), Some(b'a'..=b'z')) {
                    self.i += 1;
                }
                Ok(())
            }
            _ => self.number().map(|_| ()),
        }
    }

    fn object(&mut self) -> Result<Message<'a>, NotAMessage> {
        let mut msg = Message {
            kind: Kind::Other,
            seq: 0,
            content: &[],
            token: &[],
        };
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(msg);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            match key {
                b"type" => msg.kind = Kind::from_name(self.string()?),
                b"seq" => msg.seq = self.number()?,
                b"content" => msg.content = self.string()?,
                b"token" => msg.token = self.string()?,
                _ => self.skip_value(0)?,
            }
            self.ws();
            match self.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(msg),
                _ => return Err(NotAMessage),
            }
        }
    }
}

/// Payload for a fan-out message: send time and message id, padded with `-xxx…` to `size` bytes
/// when that is longer; only characters that need no escaping in a query string or JSON.
pub fn write_stamp(out: &mut Vec<u8>, send_ns: u64, id: u64, size: usize) {
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{send_ns}.{id}");
    let len = out.len() - start;
    if size > len {
        out.push(b'-');
        out.resize(start + size, b'x');
    }
}

/// The payload [`write_stamp`] writes, as a string.
#[cfg(test)]
pub fn stamp(send_ns: u64, id: u64, size: usize) -> String {
    let mut out = Vec::new();
    write_stamp(&mut out, send_ns, id, size);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads back a payload written by [`write_stamp`] (padding ignored).
pub fn parse_stamp(content: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(content).ok()?;
    let (ns, rest) = text.split_once('.')?;
    let id = match rest.split_once('-') {
        Some((id, pad)) if pad.bytes().all(|b| b == b'x') => id,
        Some(_) => return None,
        None => rest,
    };
    Some((ns.parse().ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(line: &[u8]) -> Result<Vec<(Kind, i64, Vec<u8>)>, NotAMessage> {
        let mut v = Vec::new();
        for_each_message(line, |m| v.push((m.kind, m.seq, m.content.to_vec())))?;
        Ok(v)
    }

    #[test]
    fn plain_jsonp_sse_and_arrays() {
        let plain = br#"{"type":"data","cname":"bob","seq":1,"content":"line1\nline2"}"#;
        assert_eq!(
            collect(plain),
            Ok(vec![(Kind::Data, 1, br"line1\nline2".to_vec())])
        );
        let jsonp = br#"icomet_cb_0({"type":"next_seq","cname":"alice","seq":3,"content":""});"#;
        assert_eq!(collect(jsonp), Ok(vec![(Kind::NextSeq, 3, vec![])]));
        let sse = br#"data: {"type":"noop","cname":"c","seq":10,"content":""}"#;
        assert_eq!(collect(sse), Ok(vec![(Kind::Noop, 10, vec![])]));
        let arr = br#"icomet_cb_0([{"type":"data","cname":"a","seq":1,"content":"say \"hi\", {x}"},{"type":"data","cname":"a","seq":2,"content":"\u4f60"}]);"#;
        let got = collect(arr).expect("array");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].2, br#"say \"hi\", {x}"#.to_vec());
        assert_eq!(got[1].1, 2);
        assert_eq!(collect(b""), Ok(vec![]));
    }

    #[test]
    fn sign_token_and_errors() {
        let sign = br#"icomet_cb_0({"type":"sign","cname":"alice","seq":1,"token":"105c26e5","expires":60,"sub_timeout":3});"#;
        let mut token = Vec::new();
        for_each_message(sign, |m| {
            assert_eq!(m.kind, Kind::Sign);
            token = m.token.to_vec();
        })
        .expect("sign");
        assert_eq!(token, b"105c26e5");
        let e = br#"{"type":"429","cname":"jack","seq":0,"content":"Too many subscribers"}"#;
        assert_eq!(collect(e).expect("429")[0].0, Kind::TooMany);
        let ping = br#"icomet_cb({"type":"ping","sub_timeout":3});"#;
        assert_eq!(collect(ping).expect("ping")[0].0, Kind::Ping);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b"hello"[..],
            b"{\"type\":",
            b"[{}",
            b"{} x",
            b"f({\"a\":1}",
            b"a b({})",
        ] {
            assert_eq!(
                collect(bad),
                Err(NotAMessage),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = vec![b'['; 100];
        let mut line = b"{\"x\":".to_vec();
        line.extend_from_slice(&deep);
        assert_eq!(collect(&line), Err(NotAMessage));
    }

    #[test]
    fn stamp_round_trip() {
        assert_eq!(stamp(123456789, 42, 0), "123456789.42");
        assert_eq!(
            parse_stamp(stamp(123456789, 42, 0).as_bytes()),
            Some((123456789, 42))
        );
        let padded = stamp(123456789, 42, 100);
        assert_eq!(padded.len(), 100);
        assert!(padded.starts_with("123456789.42-xxx"), "{padded}");
        assert_eq!(parse_stamp(padded.as_bytes()), Some((123456789, 42)));
        // Shorter than the stamp itself: no padding, nothing cut.
        assert_eq!(stamp(123456789, 42, 5), "123456789.42");
        assert_eq!(parse_stamp(b"hello"), None);
        assert_eq!(parse_stamp(b"1.2-xy"), None);
    }
}
