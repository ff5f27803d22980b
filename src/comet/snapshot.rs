//! The snapshot of channels a graceful stop writes and the next start reads, so a restart keeps
//! every channel's place: its name, seq, epoch, token, remaining idle life and replay ring.
//! Subscribers are not saved (they reconnect with their seq and continue). Pure bytes in and out;
//! the file itself is written by `worker::snapshot`.
//!
//! Format (little-endian), version 1:
//!
//! ```text
//! "RCOMET-SNAPSHOT\n"  version u32  channels u32
//! per channel: name_len u32, name, seq_next u32, epoch u32, token [16], countdown i32,
//!              messages u32, per message: seq u32, kind u8 (0 data, 1 broadcast), json_len u32, json
//! crc32 (IEEE) u32 of everything before it
//! ```
//!
//! A file from another version, cut short, or with a wrong checksum is refused as a whole.
//!
//! Depends on: comet (messages, auth tokens), crc32fast.

use super::auth::AuthToken;
use super::message::{Message, MsgType};
use std::sync::Arc;

const MAGIC: &[u8; 16] = b"RCOMET-SNAPSHOT\n";
/// The format this build writes and reads.
pub const VERSION: u32 = 1;

/// One channel as saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedChannel {
    pub name: Vec<u8>,
    pub seq_next: u32,
    pub epoch: u32,
    pub auth_token: AuthToken,
    /// Ticks of idle life left.
    pub countdown: i32,
    /// The replay ring, oldest first.
    pub messages: Vec<SavedMessage>,
}

/// One stored message as saved: its JSON object as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedMessage {
    pub seq: u32,
    pub broadcast: bool,
    pub json: Vec<u8>,
}

impl SavedMessage {
    pub fn of(msg: &Message) -> SavedMessage {
        SavedMessage {
            seq: msg.seq,
            broadcast: msg.kind == MsgType::Broadcast,
            json: msg.json.to_vec(),
        }
    }

    pub fn to_message(&self) -> Message {
        Message {
            seq: self.seq,
            kind: if self.broadcast {
                MsgType::Broadcast
            } else {
                MsgType::Data
            },
            json: Arc::from(&self.json[..]),
        }
    }
}

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot at all.
    NotASnapshot,
    /// Written by a build with another format.
    OtherVersion(u32),
    /// Cut short or altered.
    Damaged(&'static str),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::NotASnapshot => write!(f, "not an rcomet snapshot"),
            SnapshotError::OtherVersion(v) => {
                write!(f, "written in format {v}, this build reads {VERSION}")
            }
            SnapshotError::Damaged(why) => write!(f, "damaged ({why})"),
        }
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Encodes `channels` as one snapshot.
pub fn encode(channels: &[SavedChannel]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + channels.len() * 64);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, VERSION);
    put_u32(&mut out, channels.len() as u32);
    for ch in channels {
        put_u32(&mut out, ch.name.len() as u32);
        out.extend_from_slice(&ch.name);
        put_u32(&mut out, ch.seq_next);
        put_u32(&mut out, ch.epoch);
        out.extend_from_slice(&ch.auth_token);
        out.extend_from_slice(&ch.countdown.to_le_bytes());
        put_u32(&mut out, ch.messages.len() as u32);
        for m in &ch.messages {
            put_u32(&mut out, m.seq);
            out.push(u8::from(m.broadcast));
            put_u32(&mut out, m.json.len() as u32);
            out.extend_from_slice(&m.json);
        }
    }
    let crc = crc32fast::hash(&out);
    put_u32(&mut out, crc);
    out
}

/// A cursor over the snapshot's bytes; every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.rest.len() < n {
            return Err(SnapshotError::Damaged("cut short"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length that must fit in what is left (so a damaged length never allocates much).
    fn len(&mut self) -> Result<usize, SnapshotError> {
        let n = self.u32()? as usize;
        if n > self.rest.len() {
            return Err(SnapshotError::Damaged("a length runs past the end"));
        }
        Ok(n)
    }
}

/// Decodes a snapshot written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<SavedChannel>, SnapshotError> {
    if bytes.len() < MAGIC.len() + 4 || !bytes.starts_with(MAGIC) {
        return Err(SnapshotError::NotASnapshot);
    }
    let mut r = Reader {
        rest: &bytes[MAGIC.len()..],
    };
    let version = r.u32()?;
    if version != VERSION {
        return Err(SnapshotError::OtherVersion(version));
    }
    let (body, crc) = bytes.split_at(bytes.len().saturating_sub(4));
    if bytes.len() < MAGIC.len() + 12 {
        return Err(SnapshotError::Damaged("cut short"));
    }
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != stored {
        return Err(SnapshotError::Damaged("checksum mismatch"));
    }
    r.rest = &body[MAGIC.len() + 4..];
    let count = r.u32()?;
    let mut channels = Vec::with_capacity((count as usize).min(r.rest.len() / 36));
    for _ in 0..count {
        channels.push(read_channel(&mut r)?);
    }
    if !r.rest.is_empty() {
        return Err(SnapshotError::Damaged("bytes after the last channel"));
    }
    Ok(channels)
}

fn read_channel(r: &mut Reader<'_>) -> Result<SavedChannel, SnapshotError> {
    let name_len = r.len()?;
    let name = r.take(name_len)?.to_vec();
    let seq_next = r.u32()?;
    let epoch = r.u32()?;
    let mut auth_token = [0u8; 16];
    auth_token.copy_from_slice(r.take(16)?);
    let countdown = r.u32()? as i32;
    let count = r.u32()?;
    let mut messages = Vec::with_capacity((count as usize).min(r.rest.len() / 9));
    for _ in 0..count {
        let seq = r.u32()?;
        let broadcast = match r.take(1)?[0] {
            0 => false,
            1 => true,
            _ => return Err(SnapshotError::Damaged("unknown message kind")),
        };
        let json_len = r.len()?;
        let json = r.take(json_len)?.to_vec();
        messages.push(SavedMessage {
            seq,
            broadcast,
            json,
        });
    }
    Ok(SavedChannel {
        name,
        seq_next,
        epoch,
        auth_token,
        countdown,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<SavedChannel> {
        vec![
            SavedChannel {
                name: b"alice".to_vec(),
                seq_next: 4,
                epoch: 0xdead_beef,
                auth_token: [7; 16],
                countdown: 25,
                messages: vec![
                    SavedMessage {
                        seq: 2,
                        broadcast: false,
                        json: br#"{"type":"data","cname":"alice","seq":2,"content":"x"}"#.to_vec(),
                    },
                    SavedMessage {
                        seq: 3,
                        broadcast: true,
                        json: br#"{"type":"broadcast","cname":"alice","seq":3,"content":"y"}"#
                            .to_vec(),
                    },
                ],
            },
            SavedChannel {
                name: Vec::new(),
                seq_next: 1,
                epoch: 1,
                auth_token: [0; 16],
                countdown: -1,
                messages: Vec::new(),
            },
        ]
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample());
        assert_eq!(decode(&bytes), Ok(sample()));
        assert_eq!(decode(&encode(&[])), Ok(vec![]));
    }

    #[test]
    fn foreign_and_damaged_files_are_refused() {
        let bytes = encode(&sample());
        assert_eq!(
            decode(b"hello world, not a snapshot"),
            Err(SnapshotError::NotASnapshot)
        );
        let mut other = bytes.clone();
        other[16] = 2;
        assert_eq!(decode(&other), Err(SnapshotError::OtherVersion(2)));
        for cut in [21, 30, bytes.len() - 1] {
            assert!(
                matches!(decode(&bytes[..cut]), Err(SnapshotError::Damaged(_))),
                "cut at {cut}"
            );
        }
        for at in 20..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(
                decode(&flipped).is_err(),
                "a flipped byte at {at} is noticed"
            );
        }
    }
}
