//! `FrameBatches`: the delivered frames of channels with several subscribers on this worker,
//! each frame written once. Frames of one channel and one framing class (transport, chunking,
//! ids: whatever makes the bytes of a frame the same for every subscriber) go into one
//! append-only buffer, a *batch* (`engine::append_buf`); each subscriber's queue takes the range
//! of its frames (`OutQueue::push_range`), which consecutive frames extend.
//!
//! A batch whose bytes some queue still holds when the turn ends stays open, so the frames of
//! the next turns follow on in the same buffer: a subscriber that stops reading holds one range
//! per buffer (up to `BATCH_MAX` bytes of frames) however many turns it misses, and the frames
//! exist once on this worker. A batch nobody holds any more is let go when its turn ends.
//!
//! Across workers: a message for a channel with subscribers on several workers travels with a
//! `FirstFrame`, which the channel's home fills in when it writes the message's frame; the other
//! workers take that range for their subscribers of the same framing instead of writing a copy of
//! their own. So the frames of a channel spread over the workers exist once in the process, in
//! the home's batch, and a stalled subscriber's range on another worker grows like one on the
//! home. (The home delivers first: its own delivery runs before the turn's mail leaves. When it
//! did not, or it has no batch of that framing, a worker writes its own copy.)
//!
//! Depends on: engine (append_buf), comet (Name), std.

use crate::comet::name::Name;
use crate::engine::append_buf::{AppendBuf, SharedRange};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Most bytes one buffer holds (a bigger frame gets a buffer of its own). A subscriber's range
/// keeps its whole buffer alive while its queue counts only the range, so this bounds what a
/// range can hold beyond what it counts (a subscriber that joined late, or skipped frames).
const BATCH_MAX: usize = 64 * 1024;

/// A batch's first buffer holds twice its first frame, and at least this many bytes; each next
/// buffer of a batch kept open twice its predecessor, up to `BATCH_MAX`. So a buffer that one
/// small frame keeps alive is small, and a stalled subscriber's frames soon fill big ones.
const FIRST_MIN: usize = 256;

/// Batches kept open past their turn, at most (each holds at most `BATCH_MAX` bytes no queue
/// counts); others start a new buffer on their next frame.
const KEEP_OPEN: usize = 256;

/// A batch table this many times larger than what it holds is shrunk at the end of a turn.
const SHRINK_FACTOR: usize = 4;

/// The frame stored last in a batch: which message (held, so its address cannot be reused by
/// another message meanwhile), with which head length and tail, and its bytes.
struct Stored {
    json: Arc<[u8]>,
    tail: &'static [u8],
    head_len: usize,
    range: SharedRange,
}

/// One batch.
struct Open {
    key: Key,
    buf: AppendBuf,
    /// The last frame stored this turn: the next subscriber of the same message takes the same
    /// range.
    last: Option<Stored>,
}

/// (channel name's address, framing class). The address only groups frames: a channel freed and
/// another created at the same address may share a batch, which changes no byte.
type Key = (usize, u8);

/// One message's frame, written by the channel's home for its batch, for the other workers
/// delivering the same message (see the module doc). Shared between the workers a message goes
/// to; filled at most once, by `writer` only.
#[derive(Debug)]
pub struct FirstFrame {
    writer: usize,
    frame: OnceLock<Written>,
}

/// What `FirstFrame` holds: the framing class, the head's length, the frame's bytes.
#[derive(Debug)]
struct Written {
    class: u8,
    head_len: usize,
    range: SharedRange,
}

impl FirstFrame {
    /// An empty one that worker `writer` (the channel's home) fills.
    pub fn new(writer: usize) -> FirstFrame {
        FirstFrame {
            writer,
            frame: OnceLock::new(),
        }
    }

    /// Worker `by` offers the frame of class `class` (head `head_len` bytes) it just wrote;
    /// kept when `by` is the writer and none was kept before.
    pub fn offer(&self, by: usize, class: u8, head_len: usize, range: &SharedRange) {
        if by == self.writer {
            let _ = self.frame.set(Written {
                class,
                head_len,
                range: range.clone(),
            });
        }
    }

    /// The frame written for `class`, if it is `head + json + tail` for a JSON of `json_len`
    /// bytes (the JSON is this message's: the frame belongs to the same message).
    pub fn matching(
        &self,
        class: u8,
        head: &[u8],
        json_len: usize,
        tail: &[u8],
    ) -> Option<&SharedRange> {
        let w = self.frame.get()?;
        let bytes = w.range.bytes();
        let fits = w.class == class
            && w.head_len == head.len()
            && bytes.len() == head.len() + json_len + tail.len()
            && bytes.starts_with(head)
            && bytes.ends_with(tail);
        fits.then_some(&w.range)
    }
}

/// The open batches.
#[derive(Default)]
pub struct FrameBatches {
    /// Batch index by key.
    ids: HashMap<Key, u32>,
    /// The key and index of the last store: one delivery's subscribers share them, so the map is
    /// consulted once per message and channel, not once per subscriber.
    recent: Option<(Key, u32)>,
    open: Vec<Open>,
}

impl FrameBatches {
    /// The index of the batch of `key`, opened with room for a first frame of `len` bytes when
    /// there is none.
    fn batch_for(&mut self, key: Key, len: usize) -> u32 {
        let found = match self.recent {
            Some((k, id)) if k == key => Some(id),
            _ => self.ids.get(&key).copied(),
        };
        let id = found.unwrap_or_else(|| {
            let id = self.open.len() as u32;
            let first = len.saturating_mul(2).clamp(FIRST_MIN, BATCH_MAX).max(len);
            self.open.push(Open {
                key,
                buf: AppendBuf::with_capacity(first),
                last: None,
            });
            self.ids.insert(key, id);
            id
        });
        self.recent = Some((key, id));
        id
    }

    /// Stores `head + json + tail` in the batch of (`channel`, `class`) unless the previous
    /// frame stored there is the same one (same message, head and tail); returns the frame's
    /// bytes. `None` for an empty frame.
    pub fn store(
        &mut self,
        channel: &Name,
        class: u8,
        head: &[u8],
        json: &Arc<[u8]>,
        tail: &'static [u8],
    ) -> Option<&SharedRange> {
        let len = head.len() + json.len() + tail.len();
        let id = self.batch_for((channel.addr(), class), len);
        let batch = self.open.get_mut(id as usize)?;
        let same = batch.last.as_ref().is_some_and(|s| {
            Arc::ptr_eq(&s.json, json)
                && std::ptr::eq(s.tail, tail)
                && s.head_len == head.len()
                && s.range.bytes().get(..head.len()) == Some(head)
        });
        if !same {
            if batch.buf.room() < len {
                let grown = batch.buf.capacity().saturating_mul(2).min(BATCH_MAX);
                batch.buf = AppendBuf::with_capacity(grown.max(len));
            }
            let range = batch.buf.append(&[head, json, tail])?;
            batch.last = Some(Stored {
                json: Arc::clone(json),
                tail,
                head_len: head.len(),
                range,
            });
        }
        batch.last.as_ref().map(|s| &s.range)
    }

    /// Open batches.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Ends the turn, after its flush: a batch some queue (or a send in flight) still holds
    /// stays open for the next turns' frames (at most `KEEP_OPEN` of them; a full one too, so
    /// its next buffer is a bigger one); the others are let go (the queues that reference them
    /// keep their buffers alive).
    pub fn finish_turn(&mut self) {
        self.recent = None;
        if self.open.is_empty() {
            return;
        }
        let before = self.open.len();
        let mut kept = 0;
        self.open.retain_mut(|batch| {
            batch.last = None;
            let keep = kept < KEEP_OPEN && batch.buf.is_shared();
            kept += usize::from(keep);
            keep
        });
        if self.open.len() != before {
            self.ids.clear();
            for (id, batch) in self.open.iter().enumerate() {
                self.ids.insert(batch.key, id as u32);
            }
        }
        let floor = KEEP_OPEN / 16;
        if self.open.capacity() > (self.open.len() * SHRINK_FACTOR).max(floor) {
            self.open.shrink_to(self.open.len().max(floor));
            self.ids.shrink_to(self.open.len().max(floor));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::OutQueue;

    #[test]
    fn a_frame_is_stored_once_for_every_subscriber_and_frames_follow_each_other() {
        let mut b = FrameBatches::default();
        let channel: Name = Name::from(&b"c"[..]);
        let m1: Arc<[u8]> = Arc::from(&b"{\"seq\":1}"[..]);
        let m2: Arc<[u8]> = Arc::from(&b"{\"seq\":2}"[..]);
        let mut first = b
            .store(&channel, 1, b"9\r\n", &m1, b"\r\n")
            .cloned()
            .expect("stored");
        assert_eq!(first.bytes(), b"9\r\n{\"seq\":1}\r\n");
        let again = b
            .store(&channel, 1, b"9\r\n", &m1, b"\r\n")
            .cloned()
            .expect("stored");
        assert_eq!(first.bytes().as_ptr(), again.bytes().as_ptr(), "shared");
        assert_eq!(again.len(), first.len());
        let second = b
            .store(&channel, 1, b"9\r\n", &m2, b"\r\n")
            .cloned()
            .expect("stored");
        assert!(first.extend(&second), "right after the first");
        assert_eq!(first.bytes(), b"9\r\n{\"seq\":1}\r\n9\r\n{\"seq\":2}\r\n");
        // Another framing class of the same channel is its own batch.
        let other = b
            .store(&channel, 2, b"", &m1, b"\n")
            .cloned()
            .expect("stored");
        assert_eq!(other.bytes(), b"{\"seq\":1}\n");
        assert!(!first.clone().extend(&other));
        assert_eq!(b.len(), 2);
        assert!(b
            .store(&channel, 1, b"", &Arc::from(&b""[..]), b"")
            .is_none());
    }

    #[test]
    fn a_batch_a_queue_still_holds_goes_on_in_the_next_turn_and_the_others_are_let_go() {
        let mut b = FrameBatches::default();
        let held: Name = Name::from(&b"held"[..]);
        let sent: Name = Name::from(&b"sent"[..]);
        let m1: Arc<[u8]> = Arc::from(&b"one"[..]);
        let m2: Arc<[u8]> = Arc::from(&b"two"[..]);
        // A stalled subscriber's queue: frames of two turns end up in one segment.
        let mut stalled = OutQueue::default();
        stalled.push_range(b.store(&held, 0, b"", &m1, b"\n").expect("stored"));
        let _ = b.store(&sent, 0, b"", &m1, b"\n");
        b.finish_turn();
        assert_eq!(b.len(), 1, "only the batch a queue holds stays open");
        stalled.push_range(b.store(&held, 0, b"", &m2, b"\n").expect("stored"));
        assert_eq!(stalled.to_vec(), b"one\ntwo\n");
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; crate::engine::out::MAX_IOVECS];
        assert_eq!(stalled.iovecs(&mut iov), 1, "one range across turns");
        stalled.advance(usize::MAX);
        b.finish_turn();
        assert_eq!(b.len(), 0, "written: let go");
    }

    #[test]
    fn a_full_batch_a_queue_holds_stays_open_and_grows_in_the_next_turn() {
        let mut b = FrameBatches::default();
        let channel: Name = Name::from(&b"c"[..]);
        let mut stalled = OutQueue::default();
        for _ in 0..2 {
            let m: Arc<[u8]> = vec![b'x'; 2000].into();
            stalled.push_range(b.store(&channel, 0, b"", &m, b"").expect("stored"));
        }
        assert_eq!(b.open[0].buf.room(), 0, "twice the first frame: full");
        b.finish_turn();
        assert_eq!(b.len(), 1, "held, so open although full");
        let m: Arc<[u8]> = vec![b'y'; 2000].into();
        stalled.push_range(b.store(&channel, 0, b"", &m, b"").expect("stored"));
        assert_eq!(
            b.open[0].buf.capacity(),
            8000,
            "the next buffer is twice as big"
        );
        assert_eq!(stalled.queued(), 6000);
    }

    #[test]
    fn a_full_buffer_gives_way_to_a_bigger_one_up_to_the_most_a_buffer_holds() {
        let mut b = FrameBatches::default();
        let channel: Name = Name::from(&b"c"[..]);
        let frame: Arc<[u8]> = vec![b'x'; 1000].into();
        let mut caps: Vec<usize> = Vec::new();
        let mut kept = Vec::new();
        for _ in 0..400 {
            let m: Arc<[u8]> = Arc::from(&frame[..]);
            kept.push(b.store(&channel, 0, b"", &m, b"").cloned().expect("stored"));
            let cap = b.open[0].buf.capacity();
            if caps.last() != Some(&cap) {
                caps.push(cap);
            }
        }
        assert_eq!(caps.first(), Some(&2000), "twice the first frame");
        assert!(caps.windows(2).all(|w| w[1] == (w[0] * 2).min(BATCH_MAX)));
        assert_eq!(caps.last(), Some(&BATCH_MAX));
        let big: Arc<[u8]> = vec![b'y'; BATCH_MAX * 2].into();
        let range = b
            .store(&channel, 0, b"", &big, b"")
            .cloned()
            .expect("stored");
        assert_eq!(range.len(), BATCH_MAX * 2, "a bigger frame alone");
        assert!(
            kept.iter().all(|r| r.bytes() == &frame[..]),
            "earlier frames intact"
        );
    }

    #[test]
    fn a_first_frame_is_taken_only_for_the_same_framing() {
        let mut b = FrameBatches::default();
        let channel: Name = Name::from(&b"c"[..]);
        let m: Arc<[u8]> = Arc::from(&b"{\"seq\":1}"[..]);
        let first = FirstFrame::new(0);
        assert!(
            first.matching(1, b"9\r\n", m.len(), b"\r\n").is_none(),
            "empty"
        );
        let range = b
            .store(&channel, 1, b"9\r\n", &m, b"\r\n")
            .cloned()
            .expect("stored");
        let mut elsewhere = FrameBatches::default();
        let copy = elsewhere
            .store(&channel, 1, b"9\r\n", &m, b"\r\n")
            .cloned()
            .expect("stored");
        first.offer(1, 1, 3, &copy);
        assert!(
            first.matching(1, b"9\r\n", m.len(), b"\r\n").is_none(),
            "only the writer's offer is kept"
        );
        first.offer(0, 1, 3, &range);
        let other = b
            .store(&channel, 2, b"", &m, b"\n")
            .cloned()
            .expect("stored");
        first.offer(0, 2, 0, &other);
        let taken = first
            .matching(1, b"9\r\n", m.len(), b"\r\n")
            .expect("same framing");
        assert_eq!(taken.bytes(), range.bytes(), "the first offer is kept");
        assert!(
            first.matching(2, b"", m.len(), b"\n").is_none(),
            "another class"
        );
        assert!(
            first.matching(1, b"a\r\n", m.len(), b"\r\n").is_none(),
            "another head"
        );
        assert!(
            first.matching(1, b"9\r\n", m.len() + 1, b"\r\n").is_none(),
            "longer"
        );
        assert!(
            first.matching(1, b"9\r\n", m.len(), b"\n\n").is_none(),
            "another tail"
        );
    }

    #[test]
    fn a_big_turn_lets_its_table_go_and_only_so_many_batches_stay_open() {
        let mut b = FrameBatches::default();
        let m: Arc<[u8]> = Arc::from(&b"m"[..]);
        let names: Vec<Name> = (0..KEEP_OPEN * 2)
            .map(|i| Name::from(format!("c{i}").as_bytes()))
            .collect();
        let held: Vec<SharedRange> = names
            .iter()
            .filter_map(|name| b.store(name, 0, b"", &m, b"").cloned())
            .collect();
        assert_eq!(held.len(), KEEP_OPEN * 2);
        b.finish_turn();
        assert_eq!(b.len(), KEEP_OPEN, "at most KEEP_OPEN stay open");
        drop(held);
        b.finish_turn();
        assert_eq!(b.len(), 0);
        assert!(
            b.open.capacity() <= KEEP_OPEN / 16,
            "the big turn's table is gone"
        );
    }
}
