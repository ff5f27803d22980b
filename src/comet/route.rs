//! Which worker is a channel's home. Depends on nothing.
//!
//! The hash is FNV-1a (64-bit) over the name followed by the splitmix64 finalizer, reduced to
//! `0..workers` by a multiply-high (no modulo bias, no division). It is fixed (not keyed) so every
//! worker, and every run, agrees on a channel's home. FNV-1a alone is a poor fit for a modulo: its
//! low bit is just the parity of the bytes' low bits, so with two workers names like `a`/`q` would
//! always land together; the finalizer spreads every input bit over the whole word. A client can
//! still choose names that share a home (the hash is public); that only unbalances work, it cannot
//! slow a lookup down (the hub's table uses a keyed hash).

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Stable 64-bit hash of a channel name.
pub fn name_hash(cname: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in cname {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// The splitmix64 finalizer: a bijection on `u64` that spreads every input bit over the whole
/// word. Also the mixer of the per-worker subscriber sets' hasher (`keys::KeyHasher`).
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The home worker of `cname` among `workers` workers (0 when `workers` is 0 or 1).
pub fn home_worker(cname: &[u8], workers: usize) -> usize {
    ((u128::from(name_hash(cname)) * workers as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_in_range() {
        assert_eq!(home_worker(b"alice", 1), 0);
        assert_eq!(home_worker(b"alice", 0), 0);
        for workers in 1..=64 {
            for i in 0..200 {
                let name = format!("ch{i}");
                let w = home_worker(name.as_bytes(), workers);
                assert!(w < workers);
                assert_eq!(w, home_worker(name.as_bytes(), workers));
            }
        }
        // Pinned values: the mapping must not change between builds or machines.
        assert_eq!(name_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(name_hash(b"alice"), 0xc5d1_556d_6677_4a5c);
        assert_eq!(home_worker(b"alice", 8), 6);
        assert_eq!(home_worker(b"bob", 8), 3);
        assert_eq!(home_worker(b"bob", 2), 0);
        // splitmix64's finalizer: 0 is its fixed point, 1 maps to its published value.
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
    }

    #[test]
    fn spreads_evenly() {
        for workers in [2usize, 3, 4, 8] {
            let mut counts = vec![0usize; workers];
            let n = 8000;
            for i in 0..n {
                counts[home_worker(format!("user-{i}").as_bytes(), workers)] += 1;
            }
            let expected = n / workers;
            for &c in &counts {
                assert!(
                    c > expected * 9 / 10 && c < expected * 11 / 10,
                    "{counts:?}"
                );
            }
        }
        // Single-letter names differing only in high bits do not all share a home.
        let homes: std::collections::HashSet<usize> =
            (b'a'..=b'z').map(|c| home_worker(&[c], 2)).collect();
        assert_eq!(homes.len(), 2);
    }
}
