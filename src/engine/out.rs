//! Queued output of one connection: a list of byte segments, some owned, some shared by reference
//! between many connections (a pushed message is encoded once and every subscriber's queue points at
//! the same bytes), some static. Sending removes bytes from the front.
//!
//! Frames shared by many subscribers: the worker appends the frames of a channel's messages to
//! an append-only buffer (`append_buf`) and each subscriber's queue takes a range of it
//! (`push_range`), consecutive frames growing the same range. So a subscriber that stops reading
//! holds one segment per buffer of frames it missed (up to 64 KiB of them), not one per frame,
//! and the frames themselves exist once.
//!
//! Depends on: engine::append_buf, std.

use super::append_buf::SharedRange;
use std::collections::VecDeque;
use std::sync::Arc;

/// Shared segments shorter than this are copied into the owned tail instead: an extra iovec costs
/// more than copying a few hundred bytes.
const SHARE_MIN: usize = 1024;
/// The first owned tail segment is allocated with at least this capacity.
const OWNED_MIN_CAPACITY: usize = 256;
/// The most segments handed to one writev/sendmsg call.
pub const MAX_IOVECS: usize = 64;

/// Bytes of a frame's head kept inline in its segment (a chunk-size line plus a short opening).
pub const FRAME_HEAD_MAX: usize = 22;

#[derive(Debug)]
enum Segment {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
    /// One delivered frame: a short head of its own, bytes shared with every other subscriber's
    /// queue, a fixed tail. No allocation: a subscriber that stops reading holds one of these per
    /// frame (64 bytes) plus a reference, not a copy.
    Frame {
        head: [u8; FRAME_HEAD_MAX],
        head_len: u8,
        body: Arc<[u8]>,
        tail: &'static [u8],
    },
    /// Frames written once in a shared append-only buffer.
    Range(SharedRange),
}

impl Segment {
    /// The segment's bytes, in order (unused parts are empty).
    fn parts(&self) -> [&[u8]; 3] {
        match self {
            Segment::Owned(v) => [v, &[], &[]],
            Segment::Shared(a) => [a, &[], &[]],
            Segment::Frame {
                head,
                head_len,
                body,
                tail,
            } => [
                head.get(..usize::from(*head_len)).unwrap_or_default(),
                body,
                tail,
            ],
            Segment::Range(range) => [range.bytes(), &[], &[]],
        }
    }

    fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }
}

/// Unsent output of one connection. `queued` is always the number of bytes not yet sent.
#[derive(Debug, Default)]
pub struct OutQueue {
    segments: VecDeque<Segment>,
    /// Bytes of the first segment already sent.
    sent_in_front: usize,
    /// Unsent bytes over all segments.
    queued: usize,
    /// An emptied owned buffer kept for the next owned segment, so a queue that is reused (the
    /// worker pools them) appends without allocating.
    spare: Vec<u8>,
}

/// A drained queue kept for reuse keeps a segment list of at most this capacity.
const SEGMENTS_KEPT: usize = 8;

/// Owned buffers up to this capacity are kept as the spare when they drain.
const SPARE_MAX_CAPACITY: usize = 16 * 1024;

impl OutQueue {
    /// Bytes waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Appends a copy of `bytes`, growing the owned tail segment when there is one.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.queued += bytes.len();
        if let Some(Segment::Owned(tail)) = self.segments.back_mut() {
            tail.extend_from_slice(bytes);
            return;
        }
        let mut v = std::mem::take(&mut self.spare);
        v.reserve(bytes.len().max(OWNED_MIN_CAPACITY));
        v.extend_from_slice(bytes);
        self.segments.push_back(Segment::Owned(v));
    }

    /// Appends an owned buffer as it is (no copy).
    pub fn push_vec(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if bytes.len() < SHARE_MIN {
            return self.push_bytes(&bytes);
        }
        self.queued += bytes.len();
        self.segments.push_back(Segment::Owned(bytes));
    }

    /// Appends bytes shared with other queues; small ones are copied instead.
    pub fn push_shared(&mut self, bytes: &Arc<[u8]>) {
        if bytes.len() < SHARE_MIN {
            return self.push_bytes(bytes);
        }
        self.queued += bytes.len();
        self.segments.push_back(Segment::Shared(Arc::clone(bytes)));
    }

    /// Appends one frame: `head` (copied; at most `FRAME_HEAD_MAX` bytes, else the whole frame
    /// is queued the ordinary way), `body` shared by reference, and a fixed `tail`. Deciding and
    /// queueing one subscriber's frame this way costs ≈ 40 ns (one push to 10,000 local
    /// subscribers, benches/fanout.rs), against ≈ 0.3–0.5 µs of server CPU per delivery in all
    /// (`make messenger`): the rest is the send.
    pub fn push_frame(&mut self, head: &[u8], body: &Arc<[u8]>, tail: &'static [u8]) {
        if head.len() > FRAME_HEAD_MAX || body.is_empty() {
            self.push_bytes(head);
            self.push_shared(body);
            return self.push_bytes(tail);
        }
        let mut inline = [0u8; FRAME_HEAD_MAX];
        if let Some(dst) = inline.get_mut(..head.len()) {
            dst.copy_from_slice(head);
        }
        self.queued += head.len() + body.len() + tail.len();
        self.segments.push_back(Segment::Frame {
            head: inline,
            head_len: head.len() as u8,
            body: Arc::clone(body),
            tail,
        });
    }

    /// Appends frames written in a shared append-only buffer: the last segment grows when it is
    /// the range just before in the same buffer.
    /// Only a new segment takes a reference (a stalled subscriber's growing range costs no
    /// atomic operation per frame).
    pub fn push_range(&mut self, range: &SharedRange) {
        if range.is_empty() {
            return;
        }
        self.queued += range.len();
        if let Some(Segment::Range(last)) = self.segments.back_mut() {
            if last.extend(range) {
                return;
            }
        }
        self.segments.push_back(Segment::Range(range.clone()));
    }

    /// Fills `iov` with the unsent bytes, front first; returns how many entries were filled.
    pub fn iovecs(&self, iov: &mut [libc::iovec; MAX_IOVECS]) -> usize {
        let mut n = 0;
        let mut skip = self.sent_in_front;
        for seg in &self.segments {
            for part in seg.parts() {
                let part = if skip > 0 {
                    let cut = skip.min(part.len());
                    skip -= cut;
                    part.get(cut..).unwrap_or_default()
                } else {
                    part
                };
                if part.is_empty() {
                    continue;
                }
                let Some(slot) = iov.get_mut(n) else {
                    return n;
                };
                *slot = libc::iovec {
                    iov_base: part.as_ptr() as *mut libc::c_void,
                    iov_len: part.len(),
                };
                n += 1;
            }
        }
        n
    }

    /// Drops the first `n` unsent bytes (they were sent).
    pub fn advance(&mut self, mut n: usize) {
        n = n.min(self.queued);
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.segments.front() else {
                break;
            };
            let left = front.len() - self.sent_in_front;
            if n >= left {
                n -= left;
                if let Some(seg) = self.segments.pop_front() {
                    self.keep_spare(seg);
                }
                self.sent_in_front = 0;
            } else {
                self.sent_in_front += n;
                n = 0;
            }
        }
        if self.queued == 0 {
            while let Some(seg) = self.segments.pop_front() {
                self.keep_spare(seg);
            }
            self.sent_in_front = 0;
        }
    }

    /// A drained queue kept for reuse lets go of a spare buffer over `max` bytes of capacity and
    /// of a segment list a long backlog grew.
    pub fn trim_for_reuse(&mut self, max: usize) {
        if self.spare.capacity() > max {
            self.spare = Vec::new();
        }
        if self.segments.is_empty() && self.segments.capacity() > SEGMENTS_KEPT {
            self.segments = VecDeque::new();
        }
    }

    /// Capacity of the emptied buffer kept for the next owned segment.
    #[cfg(test)]
    pub fn spare_capacity(&self) -> usize {
        self.spare.capacity()
    }

    /// Capacity of the segment list.
    #[cfg(test)]
    pub fn segments_capacity(&self) -> usize {
        self.segments.capacity()
    }

    /// Keeps a drained owned buffer as the spare if there is none yet and it is not large.
    fn keep_spare(&mut self, seg: Segment) {
        if let Segment::Owned(mut v) = seg {
            if self.spare.capacity() == 0 && v.capacity() <= SPARE_MAX_CAPACITY {
                v.clear();
                self.spare = v;
            }
        }
    }

    /// Moves up to `max_segments` segments from the front into a new queue that owns their bytes,
    /// for a send that stays in flight while this queue keeps taking appends (which may reallocate
    /// its owned tail). The rest stays here, in order.
    pub fn take_front(&mut self, max_segments: usize) -> OutQueue {
        if self.segments.len() <= max_segments {
            return std::mem::take(self);
        }
        let mut front = OutQueue {
            segments: VecDeque::with_capacity(max_segments),
            sent_in_front: self.sent_in_front,
            queued: 0,
            spare: Vec::new(),
        };
        let mut moved = 0;
        for _ in 0..max_segments {
            let Some(seg) = self.segments.pop_front() else {
                break;
            };
            moved += seg.len();
            front.segments.push_back(seg);
        }
        let moved = moved.saturating_sub(self.sent_in_front);
        front.queued = moved;
        self.queued = self.queued.saturating_sub(moved);
        self.sent_in_front = 0;
        front
    }

    /// Copies every unsent byte into one vector.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.queued + self.sent_in_front);
        for seg in &self.segments {
            for part in seg.parts() {
                out.extend_from_slice(part);
            }
        }
        out.drain(..self.sent_in_front.min(out.len()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_copies_and_shares_and_advances_across_segments() {
        let big: Arc<[u8]> = vec![b'x'; 2000].into();
        let mut q = OutQueue::default();
        q.push_bytes(b"head ");
        q.push_shared(&big);
        q.push_bytes(b" tail");
        q.push_shared(&Arc::from(&b"small"[..]));
        assert_eq!(q.queued(), 5 + 2000 + 5 + 5);
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        assert_eq!(q.iovecs(&mut iov), 3, "small pieces join the owned tail");
        q.advance(3);
        assert_eq!(&q.to_vec()[..2], b"d ");
        q.advance(2 + 1999);
        assert_eq!(q.to_vec(), b"x tailsmall");
        q.push_bytes(b"!");
        assert_eq!(q.to_vec(), b"x tailsmall!");
        q.advance(100);
        assert!(q.is_empty());
        assert_eq!(q.iovecs(&mut iov), 0);
    }

    #[test]
    fn take_front_moves_whole_segments_and_leaves_the_rest_appendable() {
        let big: Arc<[u8]> = vec![b'y'; 1500].into();
        let mut q = OutQueue::default();
        q.push_bytes(b"abc");
        q.advance(1);
        q.push_shared(&big);
        q.push_bytes(b"tail");
        let front = q.take_front(2);
        assert_eq!(front.queued(), 2 + 1500);
        assert_eq!(&front.to_vec()[..3], b"bcy");
        assert_eq!(q.to_vec(), b"tail");
        q.push_bytes(b"!");
        assert_eq!(q.to_vec(), b"tail!");
        assert_eq!(q.queued(), 5);
        let all = q.take_front(MAX_IOVECS);
        assert_eq!(all.to_vec(), b"tail!");
        assert!(q.is_empty());
        q.push_bytes(b"new");
        assert_eq!(q.to_vec(), b"new");
    }

    #[test]
    fn a_frame_shares_its_body_and_sends_in_parts() {
        let body: Arc<[u8]> = vec![b'b'; 100].into();
        let mut q = OutQueue::default();
        q.push_frame(b"64\r\n", &body, b"\n\r\n");
        q.push_frame(b"64\r\n", &body, b"\n\r\n");
        assert_eq!(Arc::strong_count(&body), 3, "referenced, not copied");
        assert_eq!(q.queued(), 2 * (4 + 100 + 3));
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        assert_eq!(q.iovecs(&mut iov), 6);
        q.advance(2);
        assert_eq!(&q.to_vec()[..3], b"\r\nb");
        assert_eq!(q.iovecs(&mut iov), 6);
        q.advance(2 + 100 + 3);
        assert_eq!(Arc::strong_count(&body), 2);
        assert_eq!(q.to_vec().len(), 107);
        let long_head = [b'h'; FRAME_HEAD_MAX + 1];
        q.push_frame(&long_head, &body, b"!");
        assert_eq!(q.queued(), 107 + FRAME_HEAD_MAX + 1 + 100 + 1);
        q.advance(usize::MAX);
        assert!(q.is_empty());
        assert_eq!(Arc::strong_count(&body), 1);
    }

    #[test]
    fn ranges_of_one_buffer_grow_one_segment_and_hold_the_buffer_until_sent() {
        use crate::engine::append_buf::AppendBuf;
        let mut a = AppendBuf::with_capacity(64);
        let mut b = AppendBuf::with_capacity(64);
        let mut q = OutQueue::default();
        q.push_bytes(b"head|");
        q.push_range(&a.append(&[b"aaaa"]).expect("fits"));
        q.push_range(&a.append(&[b"bbbbb"]).expect("fits"));
        q.push_range(&b.append(&[b"xyz"]).expect("fits"));
        q.push_bytes(b"|noop|");
        q.push_range(&a.append(&[b"ccc"]).expect("fits"));
        assert_eq!(
            q.segments.len(),
            5,
            "consecutive ranges of one buffer are one segment"
        );
        assert_eq!(q.queued(), 5 + 9 + 3 + 6 + 3);
        assert_eq!(q.to_vec(), b"head|aaaabbbbbxyz|noop|ccc");
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        assert_eq!(q.iovecs(&mut iov), 5);
        assert!(a.is_shared() && b.is_shared(), "referenced, not copied");
        q.advance(5 + 9 + 3);
        assert!(!b.is_shared(), "sent: let go");
        assert!(a.is_shared(), "its last range is still queued");
        q.advance(usize::MAX);
        assert!(q.is_empty());
        assert!(!a.is_shared());
    }

    #[test]
    fn extends_a_partly_sent_single_segment() {
        let mut q = OutQueue::default();
        q.push_bytes(b"abcdef");
        q.advance(2);
        q.push_bytes(b"gh");
        assert_eq!(q.to_vec(), b"cdefgh");
        assert_eq!(q.queued(), 6);
    }
}
