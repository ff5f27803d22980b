//! What rcomet keeps in Redis and how it is spelled: key names, the shard of a channel, the
//! stored buffer entries and the pub/sub payloads.
//!
//! Per channel `NAME` (with the configured prefix `P`):
//! * `P:ch:NAME` — a hash: `e` the epoch (incarnation), `s` the last seq given (0: none yet),
//!   `t` the `/sign` token (32 hex digits); its TTL is the channel's idle life;
//! * `P:buf:NAME` — a list, the last `channel_buffer_size` messages, each `SEQ KIND CONTENT`
//!   (`KIND` is `d` for data, `b` for a broadcast; `CONTENT` the JSON string's inside);
//! * `P:sub:NAME` — the pub/sub subject: `mEPOCH SEQ KINDCONTENT` for a message, `cEPOCH SEQ`
//!   when closed, `xEPOCH SEQ` when cleared (SEQ the last seq given).
//!
//! And per shard: `P:channels` (a set of channel names, for `/broadcast`), `P:nodes` (a sorted
//! set of `NODE:WORKER` members scored by their last refresh, ms) and `P:n:NODE:WORKER` (a hash,
//! channel → that worker's subscribers, with a TTL the worker refreshes), `P:t:NODE:WORKER`
//! (their sum, same TTL), `P:presence` (the pub/sub subject of `/psub` events: one or more lines
//! `1 NAME` / `0 NAME`, each ending in a line feed) and `P:sweep` (the presence sweep's cursor and the second it last ran).
//!
//! A channel's shard is `crc32(NAME) mod shards`.
//!
//! Depends on: comet (message kinds), cluster (Entry).

use super::types::Entry;
use crate::comet::message::MsgType;

/// The shard (Redis instance) that holds `cname`.
pub fn shard_of(cname: &[u8], shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    (crc32fast::hash(cname) as usize) % shards
}

/// `P:PART:NAME`.
pub fn key(prefix: &str, part: &str, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + part.len() + name.len() + 2);
    k.extend_from_slice(prefix.as_bytes());
    k.push(b':');
    k.extend_from_slice(part.as_bytes());
    k.push(b':');
    k.extend_from_slice(name);
    k
}

/// `P:NAME` for the per-shard keys.
pub fn shard_key(prefix: &str, part: &str) -> Vec<u8> {
    format!("{prefix}:{part}").into_bytes()
}

/// The subject `/psub` events are published on: `P:presence`.
pub fn presence_subject(prefix: &str) -> Vec<u8> {
    shard_key(prefix, "presence")
}

/// The channel name of a subject `P:sub:NAME`.
pub fn name_of_subject<'a>(prefix: &str, subject: &'a [u8]) -> Option<&'a [u8]> {
    let rest = subject.strip_prefix(prefix.as_bytes())?;
    rest.strip_prefix(b":sub:")
}

/// The one-letter kind of a stored message.
pub fn kind_letter(kind: MsgType) -> &'static [u8] {
    match kind {
        MsgType::Broadcast => b"b",
        _ => b"d",
    }
}

fn split_number(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
    let n = std::str::from_utf8(&bytes[..end]).ok()?.parse().ok()?;
    Some((n, bytes.get(end + 1..).unwrap_or_default()))
}

/// A buffer entry `SEQ KIND CONTENT`.
pub fn parse_entry(bytes: &[u8]) -> Option<Entry> {
    let (seq, rest) = split_number(bytes)?;
    let (&kind, content) = rest.split_first()?;
    let kind = match kind {
        b'd' => MsgType::Data,
        b'b' => MsgType::Broadcast,
        _ => return None,
    };
    Some(Entry {
        seq,
        kind,
        content: content.to_vec(),
    })
}

/// A pub/sub payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Message { epoch: u32, entry: Entry },
    Closed { epoch: u32 },
    Cleared { epoch: u32 },
}

/// Reads a pub/sub payload; `None` for anything else.
pub fn parse_payload(bytes: &[u8]) -> Option<Payload> {
    let (&tag, rest) = bytes.split_first()?;
    let (epoch, rest) = split_number(rest)?;
    match tag {
        b'm' => Some(Payload::Message {
            epoch,
            entry: parse_entry(rest)?,
        }),
        b'c' => Some(Payload::Closed { epoch }),
        b'x' => Some(Payload::Cleared { epoch }),
        _ => None,
    }
}

/// 32 hex digits back to the 16 bytes of a token.
pub fn token_from_hex(hex: &[u8]) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_payloads_round_trip() {
        let e = parse_entry(b"17 dhello world").unwrap();
        assert_eq!((e.seq, e.kind), (17, MsgType::Data));
        assert_eq!(e.content, b"hello world");
        assert_eq!(parse_entry(b"3 b").unwrap().content, b"");
        assert!(parse_entry(b"x dy").is_none());
        assert!(parse_entry(b"3 zq").is_none());
        match parse_payload(b"m99 4 dhi").unwrap() {
            Payload::Message { epoch, entry } => {
                assert_eq!((epoch, entry.seq, &entry.content[..]), (99, 4, &b"hi"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_payload(b"c7 12"), Some(Payload::Closed { epoch: 7 }));
        assert_eq!(parse_payload(b"x7 12"), Some(Payload::Cleared { epoch: 7 }));
        assert!(parse_payload(b"q1 2").is_none());
    }

    #[test]
    fn names_and_shards() {
        assert_eq!(key("rc", "ch", b"a b"), b"rc:ch:a b");
        assert_eq!(name_of_subject("rc", b"rc:sub:x:y"), Some(&b"x:y"[..]));
        assert_eq!(name_of_subject("rc", b"other:sub:x"), None);
        assert_eq!(shard_of(b"anything", 1), 0);
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| shard_of(format!("c{i}").as_bytes(), 3))
            .collect();
        assert_eq!(spread.len(), 3);
        let t = token_from_hex(b"00ff10aabbccddeeff00112233445566").unwrap();
        assert_eq!(t[..3], [0x00, 0xff, 0x10]);
        assert!(token_from_hex(b"zz").is_none());
    }
}
