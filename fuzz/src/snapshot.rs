//! Target of the snapshot decoder (`comet::snapshot::decode`), the file a graceful stop writes
//! and the next start reads.
//!
//! Invariants:
//! * whatever `decode` accepts, `encode` writes back byte for byte (the format has one spelling);
//! * the input with its checksum made right (or wrapped as a snapshot's body, with the magic,
//!   version and checksum) decodes or is refused as damaged, never as a checksum mismatch, and
//!   what it accepts also encodes back byte for byte (so the fuzzer reaches the structure behind
//!   the checksum);
//! * channels built from the input encode and decode to themselves, and their encoding cut short
//!   anywhere or with any one byte changed is refused.

use rcomet::comet::snapshot::{decode, encode, SavedChannel, SavedMessage, SnapshotError, VERSION};

use crate::{digest, Bytes};

/// The first bytes of every snapshot.
const MAGIC: &[u8; 16] = b"RCOMET-SNAPSHOT\n";

/// `data` is a snapshot file's contents.
pub fn snapshot(data: &[u8]) {
    if let Ok(channels) = decode(data) {
        assert_eq!(encode(&channels), data, "decode then encode");
    }
    let header = [&MAGIC[..], &VERSION.to_le_bytes()].concat();
    let body = if data.starts_with(&header) && data.len() >= header.len() + 8 {
        data[..data.len() - 4].to_vec()
    } else {
        [&header[..], data].concat()
    };
    let mut sealed = body.clone();
    sealed.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    match decode(&sealed) {
        Ok(channels) => assert_eq!(encode(&channels), sealed, "decode then encode"),
        Err(SnapshotError::Damaged(why)) => assert_ne!(why, "checksum mismatch"),
        Err(other) => panic!("a sealed body refused as {other:?}"),
    }
    round_trip(data);
}

/// Channels read out of the input bytes.
fn channels_from(data: &[u8]) -> Vec<SavedChannel> {
    let mut b = Bytes::new(data);
    let count = b.u8() % 8;
    (0..count)
        .map(|_| {
            let name_len = usize::from(b.u8() % 40);
            let name = b.take(name_len).to_vec();
            let seq_next = b.u32();
            let epoch = b.u32();
            let mut auth_token = [0u8; 16];
            for byte in &mut auth_token {
                *byte = b.u8();
            }
            let countdown = b.u32() as i32;
            let messages = (0..b.u8() % 6)
                .map(|_| {
                    let seq = b.u32();
                    let broadcast = b.u8() & 1 != 0;
                    let json_len = usize::from(b.u8() % 64);
                    SavedMessage {
                        seq,
                        broadcast,
                        json: b.take(json_len).to_vec(),
                    }
                })
                .collect();
            SavedChannel {
                name,
                seq_next,
                epoch,
                auth_token,
                countdown,
                messages,
            }
        })
        .collect()
}

fn round_trip(data: &[u8]) {
    let channels = channels_from(data);
    let bytes = encode(&channels);
    assert_eq!(decode(&bytes).as_ref(), Ok(&channels));
    let seed = digest(data);
    let len = bytes.len();
    for cut in [0, 19, 20, len - 4, len - 1, (seed % len as u64) as usize] {
        assert!(
            decode(&bytes[..cut]).is_err(),
            "cut short at {cut} of {len}"
        );
    }
    let at = ((seed >> 32) % len as u64) as usize;
    let mut changed = bytes.clone();
    changed[at] ^= 1 << ((seed >> 8) % 8);
    assert!(decode(&changed).is_err(), "a bit flipped at {at}");
}
