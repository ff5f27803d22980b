//! The `Date` header value (RFC 1123, always GMT: `Wed, 25 Nov 2026 18:24:50 GMT`), cached per
//! second of the wall clock. The formatting is `httpdate`'s. Depends on `std`, `libc` (the coarse
//! clock) and `httpdate`.
//!
//! Cost: the cache reads the clock at most once per [`DateCache::expire`] (the worker expires it
//! once per loop turn), and only when a reply needs the value; it formats only when the second
//! changed. The clock is `CLOCK_REALTIME_COARSE`, which the vDSO answers from the kernel's last
//! timer tick without a system call or a TSC read (on every clocksource), at most one tick
//! (1–10 ms) behind the precise wall clock.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use httpdate::HttpDate;

/// Length of an RFC 1123 date: `Wed, 25 Nov 2026 18:24:50 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// Latest second that still has a four-digit year: 9999-12-31 23:59:59 GMT. Later times are clamped
/// to it; times before 1970 are clamped to 1970-01-01 00:00:00.
const LAST_SECOND: u64 = 253_402_300_799;

/// The current `Date` value, recomputed only when the second changes.
#[derive(Clone, Debug)]
pub struct DateCache {
    secs: u64,
    value: [u8; HTTP_DATE_LEN],
    /// The value was read from the clock since the last `expire`.
    fresh: bool,
}

impl DateCache {
    /// A cache holding the current time.
    pub fn new() -> Self {
        let secs = coarse_unix_secs();
        DateCache {
            secs,
            value: http_date(secs),
            fresh: true,
        }
    }

    /// Marks the value as possibly old: the next [`get`](Self::get) reads the clock again.
    pub fn expire(&mut self) {
        self.fresh = false;
    }

    /// The value for the wall clock's current second (read once after each `expire`), e.g.
    /// `Wed, 25 Nov 2026 18:24:50 GMT`.
    pub fn get(&mut self) -> &[u8] {
        if !self.fresh {
            self.fresh = true;
            self.set(coarse_unix_secs());
        }
        &self.value
    }

    /// The Unix second [`get`](Self::get) formats (read the same way).
    pub fn unix_secs(&mut self) -> u64 {
        self.get();
        self.secs
    }

    /// Moves the cache to Unix second `secs`; formats only if it differs from the cached one.
    fn set(&mut self, secs: u64) {
        if secs != self.secs {
            self.secs = secs;
            self.value = http_date(secs);
        }
    }
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The wall clock's Unix seconds from the coarse clock (the precise clock if that ever fails).
fn coarse_unix_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer, which points at `ts`, a
    // live local we borrow exclusively for the call; CLOCK_REALTIME_COARSE takes no other input.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc != 0 {
        return unix_secs(SystemTime::now());
    }
    u64::try_from(ts.tv_sec).unwrap_or(0)
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Formats Unix seconds as an RFC 1123 date (clamped to years 1970..=9999, the range `httpdate`
/// formats; it panics beyond it).
pub fn http_date(secs: u64) -> [u8; HTTP_DATE_LEN] {
    let at = UNIX_EPOCH + Duration::from_secs(secs.min(LAST_SECOND));
    let mut out = [0u8; HTTP_DATE_LEN];
    // Every date in range is exactly HTTP_DATE_LEN bytes, so the write fills `out` and cannot fail.
    let _ = write!(out.as_mut_slice(), "{}", HttpDate::from(at));
    out
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn date(secs: u64) -> String {
        String::from_utf8(http_date(secs).to_vec()).unwrap()
    }

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date(1_795_631_090), "Wed, 25 Nov 2026 18:24:50 GMT");
        assert_eq!(date(1_000_000_000), "Sun, 09 Sep 2001 01:46:40 GMT");
        assert_eq!(date(1_234_567_890), "Fri, 13 Feb 2009 23:31:30 GMT");
        assert_eq!(date(2_147_483_647), "Tue, 19 Jan 2038 03:14:07 GMT");
        assert_eq!(date(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    }

    #[test]
    fn leap_years() {
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(date(951_868_799), "Tue, 29 Feb 2000 23:59:59 GMT");
        assert_eq!(date(951_868_800), "Wed, 01 Mar 2000 00:00:00 GMT");
        assert_eq!(date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(date(1_709_251_200), "Fri, 01 Mar 2024 00:00:00 GMT");
        assert_eq!(date(978_220_800), "Sun, 31 Dec 2000 00:00:00 GMT");
        // 2100 is not a leap year: 28 Feb is followed by 1 Mar.
        assert_eq!(date(4_107_456_000), "Sun, 28 Feb 2100 00:00:00 GMT");
        assert_eq!(date(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(date(1_735_603_200), "Tue, 31 Dec 2024 00:00:00 GMT");
    }

    #[test]
    fn out_of_range_times_are_clamped() {
        assert_eq!(date(LAST_SECOND), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }

    #[test]
    fn cache_recomputes_when_the_second_changes() {
        let mut cache = DateCache::new();
        cache.set(1_795_631_090);
        assert_eq!(cache.get(), b"Wed, 25 Nov 2026 18:24:50 GMT");
        cache.set(1_795_631_091);
        assert_eq!(cache.get(), b"Wed, 25 Nov 2026 18:24:51 GMT");
        assert_eq!(cache.get().len(), HTTP_DATE_LEN);
    }

    #[test]
    fn an_expired_cache_reads_the_wall_clock_once() {
        let mut cache = DateCache::new();
        cache.set(1_795_631_090);
        // Fresh: the value is kept, the clock is not read.
        assert_eq!(cache.get(), b"Wed, 25 Nov 2026 18:24:50 GMT");
        cache.expire();
        let before = coarse_unix_secs();
        let got = String::from_utf8(cache.get().to_vec()).unwrap();
        let after = unix_secs(SystemTime::now());
        let at = cache.unix_secs();
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
        assert_eq!(got, date(at));
        // Until the next expiry, no more clock reads: a value set meanwhile stays.
        cache.set(0);
        assert_eq!(cache.get(), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
