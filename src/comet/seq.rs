//! Channel sequence numbers: wrap-around aware comparison and the decimal form used on the wire.
//!
//! Seqs are stored as `u32` and printed as signed 32-bit integers, as iComet prints its `int`
//! seqs. Comparison uses the signed 32-bit wrapping difference, so ordering survives the wrap from
//! `i32::MAX` to `i32::MIN` and from `u32::MAX` back to the start. Depends on `itoa` only.

/// The first seq a new channel hands out.
pub const FIRST: u32 = 1;

/// True when `a` comes strictly before `b` (signed 32-bit wrapping difference).
///
/// Two seqs exactly 2^31 apart are each "before" the other; channels never hold messages that far
/// apart, so this ambiguity never affects a decision.
pub fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The seq following `seq`. Zero is skipped on wrap-around because a requested seq of 0 means
/// "no history, tell me where the channel is": a channel at seq 0 would answer `next_seq` 0
/// forever.
pub fn seq_after(seq: u32) -> u32 {
    match seq.wrapping_add(1) {
        0 => FIRST,
        n => n,
    }
}

/// The seq before `seq`: `seq_after(seq_prev(s)) == s` for every seq a channel hands out.
pub fn seq_prev(seq: u32) -> u32 {
    match seq {
        FIRST => u32::MAX,
        n => n.wrapping_sub(1),
    }
}

/// `seq` as a signed 32-bit decimal integer (`4294967295` is `-1`), formatted in `buf`.
pub fn seq_decimal(buf: &mut itoa::Buffer, seq: u32) -> &str {
    buf.format(seq as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(seq: u32) -> String {
        seq_decimal(&mut itoa::Buffer::new(), seq).to_string()
    }

    #[test]
    fn prev_undoes_after() {
        for s in [1, 2, 77, i32::MAX as u32, 0x8000_0000, u32::MAX] {
            assert_eq!(seq_after(seq_prev(s)), s, "{s}");
        }
    }

    #[test]
    fn before_is_strict_and_ordered() {
        assert!(seq_before(1, 2));
        assert!(!seq_before(2, 1));
        assert!(!seq_before(7, 7));
    }

    #[test]
    fn before_survives_signed_wrap() {
        let max = i32::MAX as u32;
        assert!(seq_before(max, max.wrapping_add(1)));
        assert!(seq_before(max - 5, max.wrapping_add(5)));
        assert!(!seq_before(max.wrapping_add(1), max));
    }

    #[test]
    fn before_survives_unsigned_wrap() {
        assert!(seq_before(u32::MAX, 1));
        assert!(seq_before(u32::MAX - 3, 2));
        assert!(!seq_before(1, u32::MAX));
    }

    #[test]
    fn after_skips_zero() {
        assert_eq!(seq_after(1), 2);
        assert_eq!(seq_after(i32::MAX as u32), 0x8000_0000);
        assert_eq!(seq_after(u32::MAX), 1);
        assert!(seq_before(u32::MAX, seq_after(u32::MAX)));
    }

    #[test]
    fn printed_as_signed() {
        assert_eq!(printed(0), "0");
        assert_eq!(printed(1), "1");
        assert_eq!(printed(3), "3");
        assert_eq!(printed(i32::MAX as u32), "2147483647");
        assert_eq!(printed(0x8000_0000), "-2147483648");
        assert_eq!(printed(u32::MAX), "-1");
    }
}
