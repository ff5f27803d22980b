//! A coarse per-worker timer wheel with one-second ticks and no allocation per timer: entries are
//! `(slot, generation, tick)` triples in reusable bucket vectors. Cancelling is lazy — the owner
//! keeps the authoritative deadline and ignores entries that no longer match it — so re-arming a
//! timer is O(1) and a fired entry costs one comparison.
//!
//! Depends on: std only.

/// Buckets in the wheel; deadlines further away wrap around and are kept until their tick.
const BUCKETS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerEntry {
    pub slot: u32,
    pub generation: u32,
    pub tick: u32,
}

pub struct TimerWheel {
    buckets: Vec<Vec<TimerEntry>>,
    /// The last tick that was processed.
    now: u32,
    /// Entries currently in the wheel (live or stale).
    entries: usize,
}

impl Default for TimerWheel {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerWheel {
    pub fn new() -> TimerWheel {
        TimerWheel {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            now: 0,
            entries: 0,
        }
    }

    pub fn now(&self) -> u32 {
        self.now
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Schedules an entry for `tick` (a tick at or before now fires on the next advance).
    pub fn schedule(&mut self, slot: u32, generation: u32, tick: u32) {
        let tick = tick.max(self.now + 1);
        self.buckets[tick as usize % BUCKETS].push(TimerEntry {
            slot,
            generation,
            tick,
        });
        self.entries += 1;
    }

    /// Processes every tick up to `now`, handing due entries to `fire`.
    pub fn advance(&mut self, now: u32, mut fire: impl FnMut(TimerEntry)) {
        if now <= self.now {
            return;
        }
        let mut due = Vec::new();
        if now - self.now >= BUCKETS as u32 {
            // A long stall: every bucket is due at least once, so sweep them all in one pass.
            for bucket in &mut self.buckets {
                Self::take_due(bucket, now, &mut due);
            }
        } else {
            for t in self.now + 1..=now {
                Self::take_due(&mut self.buckets[t as usize % BUCKETS], t, &mut due);
            }
        }
        self.now = now;
        self.entries -= due.len();
        for e in due {
            fire(e);
        }
    }

    fn take_due(bucket: &mut Vec<TimerEntry>, upto: u32, due: &mut Vec<TimerEntry>) {
        bucket.retain(|e| {
            if e.tick <= upto {
                due.push(*e);
                false
            } else {
                true
            }
        });
        // A bucket that once held a whole ramp (every connection accepted in one second) gives
        // its memory back once it is mostly empty.
        if bucket.capacity() > 4 * bucket.len().max(1024) {
            bucket.shrink_to(2 * bucket.len().max(1024));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(wheel: &mut TimerWheel, now: u32) -> Vec<u32> {
        let mut v = Vec::new();
        wheel.advance(now, |e| v.push(e.slot));
        v.sort();
        v
    }

    #[test]
    fn fires_each_entry_at_its_tick_including_far_ones() {
        let mut w = TimerWheel::new();
        w.schedule(1, 0, 3);
        w.schedule(2, 0, 3);
        w.schedule(3, 0, 3 + BUCKETS as u32);
        w.schedule(4, 0, 0); // in the past: next tick
        assert_eq!(fired(&mut w, 1), vec![4]);
        assert_eq!(fired(&mut w, 2), Vec::<u32>::new());
        assert_eq!(fired(&mut w, 3), vec![1, 2]);
        assert_eq!(w.len(), 1);
        assert_eq!(fired(&mut w, 3 + BUCKETS as u32 - 1), Vec::<u32>::new());
        assert_eq!(fired(&mut w, 3 + BUCKETS as u32), vec![3]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_long_stall_fires_everything_due_once() {
        let mut w = TimerWheel::new();
        for i in 0..200 {
            w.schedule(i, 0, i + 1);
        }
        w.schedule(999, 0, 1000);
        let got = fired(&mut w, 500);
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert_eq!(w.len(), 1);
        assert_eq!(fired(&mut w, 1000), vec![999]);
    }
}
