//! `FrameBatches`: this turn's delivered frames of channels with several subscribers on this
//! worker, each frame stored once. Frames of one channel and one framing class (transport,
//! chunking, ids: whatever makes the bytes of a frame the same for every subscriber) go into one
//! buffer per turn; each subscriber's queue takes the range of its frames (`OutQueue::push_batch`),
//! which consecutive frames extend. At flush time the buffers are sealed into shared ones and
//! every queue swaps its ranges for references (`OutQueue::seal`).
//!
//! Why: 100 subscribers of a channel that stop reading used to hold one 64-byte segment per
//! frame each (and the frame's JSON once): for 1 KiB messages that is six more copies' worth of
//! segments. Now each holds one segment per turn of frames it missed, and the frames exist once.
//!
//! Depends on: std only.

use crate::comet::name::Name;
use std::collections::HashMap;
use std::sync::Arc;

/// A batch takes no more frames once it holds this many bytes; the next frame of its channel
/// and class starts another one. A subscriber's range keeps the whole buffer alive while its
/// queue counts only the range, so this bounds what a range can hold beyond what it counts (a
/// subscriber that joined late in a turn, or skipped frames).
const BATCH_MAX: usize = 64 * 1024;

/// Batches a turn may leave its tables sized for; a larger turn's tables are let go.
const KEEP_BATCHES: usize = 64;

/// A frame already stored in a batch this turn: which message (held, so its address cannot be
/// reused by another message within the turn), with which tail, and where its bytes are.
struct Stored {
    json: Arc<[u8]>,
    tail: &'static [u8],
    start: usize,
    end: usize,
}

/// One batch being filled this turn.
#[derive(Default)]
struct Open {
    bytes: Vec<u8>,
    /// The last frame stored: the next subscriber of the same message takes the same range.
    last: Option<Stored>,
}

/// (channel name's address, framing class). The address only groups frames: a channel freed and
/// created again within the turn may share a batch, which changes no byte.
type Key = (usize, u8);

/// The batches of the current turn.
#[derive(Default)]
pub struct FrameBatches {
    /// Counts turns, so a range left unsealed from an earlier turn is never read as this one's.
    turn: u32,
    /// Batch id by key.
    ids: HashMap<Key, u32>,
    /// The key and id of the last store: one delivery's subscribers share them, so the map is
    /// consulted once per message and channel, not once per subscriber.
    recent: Option<(Key, u32)>,
    /// The open batches, by id.
    open: Vec<Open>,
    /// The sealed batches of this turn, by id (filled by `seal`).
    sealed: Vec<Arc<[u8]>>,
}

impl FrameBatches {
    /// The turn the stored ranges belong to.
    pub fn turn(&self) -> u32 {
        self.turn
    }

    /// The id of the batch of `key` that takes a frame of `len` more bytes: a new one when there
    /// is none or it is full.
    fn batch_for(&mut self, key: Key, len: usize) -> u32 {
        let found = match self.recent {
            Some((k, id)) if k == key => Some(id),
            _ => self.ids.get(&key).copied(),
        };
        let full = |id: u32, open: &[Open]| {
            open.get(id as usize)
                .is_some_and(|b| !b.bytes.is_empty() && b.bytes.len() + len > BATCH_MAX)
        };
        let id = match found {
            Some(id) if !full(id, &self.open) => id,
            _ => {
                let id = self.open.len() as u32;
                self.open.push(Open::default());
                self.ids.insert(key, id);
                id
            }
        };
        self.recent = Some((key, id));
        id
    }

    /// Stores `head + json + tail` in the batch of (`channel`, `class`) unless the previous
    /// frame stored there is the same one (same message, head and tail); returns the batch id and
    /// the frame's range in it.
    pub fn store(
        &mut self,
        channel: &Name,
        class: u8,
        head: &[u8],
        json: &Arc<[u8]>,
        tail: &'static [u8],
    ) -> (u32, usize, usize) {
        let key = (channel.addr(), class);
        let id = self.batch_for(key, json.len());
        let Some(batch) = self.open.get_mut(id as usize) else {
            return (id, 0, 0);
        };
        if let Some(s) = &batch.last {
            let same = Arc::ptr_eq(&s.json, json)
                && std::ptr::eq(s.tail, tail)
                && batch.bytes.get(s.start..s.start + head.len()) == Some(head)
                && s.end - s.start == head.len() + json.len() + tail.len();
            if same {
                return (id, s.start, s.end);
            }
        }
        let start = batch.bytes.len();
        batch.bytes.extend_from_slice(head);
        batch.bytes.extend_from_slice(json);
        batch.bytes.extend_from_slice(tail);
        let end = batch.bytes.len();
        batch.last = Some(Stored {
            json: Arc::clone(json),
            tail,
            start,
            end,
        });
        (id, start, end)
    }

    /// True when nothing was stored this turn.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Seals this turn's batches (each becomes one shared buffer, sized to its bytes).
    pub fn seal(&mut self) -> &[Arc<[u8]>] {
        let done = self.sealed.len();
        for batch in self.open.iter_mut().skip(done) {
            self.sealed
                .push(Arc::from(std::mem::take(&mut batch.bytes)));
        }
        &self.sealed
    }

    /// Ends the turn: the batches are let go (the queues that reference them keep them alive).
    pub fn finish_turn(&mut self) {
        let turn = self.turn.wrapping_add(1);
        if self.open.capacity() > KEEP_BATCHES {
            *self = FrameBatches::default();
        } else {
            self.ids.clear();
            self.recent = None;
            self.open.clear();
            self.sealed.clear();
        }
        self.turn = turn;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_stored_once_for_every_subscriber_and_frames_follow_each_other() {
        let mut b = FrameBatches::default();
        let channel: Name = Name::from(&b"c"[..]);
        let m1: Arc<[u8]> = Arc::from(&b"{\"seq\":1}"[..]);
        let m2: Arc<[u8]> = Arc::from(&b"{\"seq\":2}"[..]);
        let first = b.store(&channel, 1, b"9\r\n", &m1, b"\r\n");
        assert_eq!(first, (0, 0, 14));
        assert_eq!(
            b.store(&channel, 1, b"9\r\n", &m1, b"\r\n"),
            first,
            "shared"
        );
        let second = b.store(&channel, 1, b"9\r\n", &m2, b"\r\n");
        assert_eq!(second, (0, 14, 28), "right after the first");
        // Another framing class of the same channel is its own batch.
        assert_eq!(b.store(&channel, 2, b"", &m1, b"\n").0, 1);
        let sealed = b.seal().to_vec();
        assert_eq!(&sealed[0][..], b"9\r\n{\"seq\":1}\r\n9\r\n{\"seq\":2}\r\n");
        assert_eq!(&sealed[1][..], b"{\"seq\":1}\n");
        let turn = b.turn();
        b.finish_turn();
        assert!(b.is_empty());
        assert_ne!(b.turn(), turn);
        assert_eq!(b.store(&channel, 1, b"9\r\n", &m1, b"\r\n"), (0, 0, 14));
    }

    #[test]
    fn a_full_batch_gives_way_to_a_new_one_and_a_big_turn_lets_its_tables_go() {
        let mut b = FrameBatches::default();
        let channel: Name = Name::from(&b"c"[..]);
        let big: Arc<[u8]> = vec![b'x'; BATCH_MAX / 2].into();
        let other: Arc<[u8]> = vec![b'y'; BATCH_MAX / 2].into();
        let third: Arc<[u8]> = vec![b'z'; 10].into();
        assert_eq!(b.store(&channel, 0, b"", &big, b"").0, 0);
        assert_eq!(b.store(&channel, 0, b"", &other, b"").0, 0);
        assert_eq!(
            b.store(&channel, 0, b"", &third, b""),
            (1, 0, 10),
            "batch 0 is full"
        );
        b.finish_turn();
        let names: Vec<Name> = (0..KEEP_BATCHES * 2)
            .map(|i| Name::from(format!("c{i}").as_bytes()))
            .collect();
        for name in &names {
            b.store(name, 0, b"", &third, b"");
        }
        let turn = b.turn();
        b.finish_turn();
        assert_eq!(b.turn(), turn.wrapping_add(1), "the turn count goes on");
        assert!(
            b.open.capacity() <= KEEP_BATCHES,
            "the big turn's tables are gone"
        );
    }
}
