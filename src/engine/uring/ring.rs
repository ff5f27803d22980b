//! One io_uring instance with its sparse registered file table, and how many of them a capacity
//! needs: a table may hold at most the soft RLIMIT_NOFILE entries at registration time (and never
//! more than `1 << 20`), and cannot grow later, so a large capacity is spread over several rings.
//!
//! Depends on: engine::uring::table, io-uring, libc.

use super::table::{Table, MAX_RINGS, MAX_TABLE};
use io_uring::{cqueue, squeue, types, IoUring};
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The kernel's largest completion queue (larger requests are clamped to it).
const MAX_CQ_ENTRIES: u32 = 65536;
/// How often a full submission queue is flushed before a push gives up.
const PUSH_ATTEMPTS: usize = 4;

/// The soft RLIMIT_NOFILE of this process: the largest file table a ring may register now.
pub(crate) fn soft_nofile_limit() -> u32 {
    // SAFETY: rlimit is plain old data; all-zero is a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a live rlimit on this stack frame; the kernel writes exactly one.
    match crate::syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit)) {
        Ok(_) => u32::try_from(limit.rlim_cur).unwrap_or(u32::MAX),
        Err(_) => 1024,
    }
}

/// Table sizes for `capacity` slots when one table may hold at most `per_table`: every table full
/// size but the last, which takes the remainder. Empty when the capacity cannot be represented.
pub(crate) fn table_sizes(capacity: u32, per_table: u32) -> Vec<u32> {
    let per_table = per_table.clamp(1, MAX_TABLE);
    let capacity = capacity.max(1);
    let rings = capacity.div_ceil(per_table) as usize;
    if rings > MAX_RINGS {
        return Vec::new();
    }
    let mut sizes = vec![per_table; rings];
    if let Some(last) = sizes.last_mut() {
        *last = capacity - per_table * (rings as u32 - 1);
    }
    sizes
}

pub(crate) struct Ring {
    pub uring: IoUring,
    pub table: Table,
    /// Entries were pushed since the last submit.
    pub pending: bool,
}

impl Ring {
    /// A ring with `entries` submission entries and a sparse file table of `table_size` direct
    /// descriptors. The completion queue holds one completion per table slot (at least four per
    /// submission entry, at most what the kernel allows): a broadcast flushes every connection in
    /// one turn, and completions beyond the queue go to the kernel's slower overflow list.
    pub fn new(entries: u32, table_size: u32) -> io::Result<Ring> {
        let cq_entries = table_size
            .checked_next_power_of_two()
            .unwrap_or(MAX_CQ_ENTRIES)
            .max(entries.saturating_mul(4))
            .min(MAX_CQ_ENTRIES);
        // Cooperative task running: the kernel runs a ring's completion work when its worker next
        // enters the kernel (every loop turn ends in io_uring_enter, and a sleeping worker is
        // woken as before) instead of interrupting the worker with a signal-like notification
        // for each batch of completions. A kernel without it (before 5.19) gets the plain ring.
        let build = |coop: bool| {
            let mut builder = IoUring::builder();
            builder
                .setup_submit_all()
                .setup_clamp()
                .setup_cqsize(cq_entries);
            if coop {
                builder.setup_coop_taskrun();
            }
            builder.build(entries)
        };
        let uring = match build(true) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => build(false)?,
            built => built?,
        };
        uring.submitter().register_files_sparse(table_size)?;
        Ok(Ring {
            uring,
            table: Table::new(table_size),
            pending: false,
        })
    }

    pub fn fd(&self) -> i32 {
        self.uring.as_raw_fd()
    }

    /// Queues one operation, submitting what is queued first when the submission queue is full.
    ///
    /// # Safety
    /// Every buffer and descriptor the entry points to must stay valid until its completion
    /// arrives.
    pub unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..PUSH_ATTEMPTS {
            // SAFETY: the caller guarantees the entry's buffers outlive the operation.
            if unsafe { self.uring.submission().push(entry) }.is_ok() {
                self.pending = true;
                return Ok(());
            }
            self.submit()?;
        }
        Err(io::Error::other("io_uring submission queue stays full"))
    }

    /// Queues two operations next to each other (for a linked pair).
    ///
    /// # Safety
    /// As for [`Ring::push`], for both entries.
    pub unsafe fn push_pair(
        &mut self,
        first: &squeue::Entry,
        second: &squeue::Entry,
    ) -> io::Result<()> {
        let room = {
            let sq = self.uring.submission();
            sq.capacity() - sq.len()
        };
        if room < 2 {
            self.submit()?;
        }
        // SAFETY: forwarded from the caller.
        unsafe {
            self.push(first)?;
            self.push(second)
        }
    }

    /// Hands queued operations to the kernel without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        loop {
            match self.uring.submit() {
                Ok(_) => {
                    self.pending = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The completion queue overflowed: the caller drains it, then submits again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Submits and waits up to `timeout` (`None`: forever) for at least one completion.
    pub fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let res = match timeout {
            Some(t) if t.is_zero() => self.uring.submit(),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(1, &args)
            }
            None => self.uring.submit_and_wait(1),
        };
        match res {
            Ok(_) => {
                self.pending = false;
                Ok(())
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) => {
                    // A timed-out or interrupted wait still submitted everything queued.
                    self.pending = !self.uring.submission().is_empty();
                    Ok(())
                }
                Some(libc::EBUSY) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// True when completions are waiting in this ring's completion queue.
    pub fn has_completions(&mut self) -> bool {
        !self.uring.completion().is_empty()
    }

    /// Moves every waiting completion into `out`, flushing completions the kernel kept aside
    /// when the queue overflowed.
    pub fn drain(&mut self, out: &mut Vec<cqueue::Entry>) {
        loop {
            out.extend(self.uring.completion());
            if !self.uring.submission().cq_overflow() {
                return;
            }
            // Entering the kernel with GETEVENTS moves the overflowed completions into the queue.
            if self.submit().is_err() {
                return;
            }
            if self.uring.completion().is_empty() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sizes_cover_the_capacity_exactly() {
        assert_eq!(table_sizes(200, 64), vec![64, 64, 64, 8]);
        assert_eq!(table_sizes(1_000_000, 20_000).len(), 50);
        assert_eq!(
            table_sizes(1_000_000, 20_000).iter().sum::<u32>(),
            1_000_000
        );
        assert_eq!(table_sizes(10, 20_000), vec![10]);
        assert_eq!(
            table_sizes(3_000_000, 2_000_000),
            vec![MAX_TABLE, MAX_TABLE, 902_848]
        );
        assert!(table_sizes(u32::MAX, 1).is_empty());
    }
}
