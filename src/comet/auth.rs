//! Channel auth tokens (`AuthToken`; "token" alone names the engine's connection handle): 16 random bytes per channel, shown to clients as 32 lowercase hex digits and
//! compared in constant time. Depends on `getrandom` and std.
//!
//! Random bytes are fetched from the OS in batches (one `getrandom` call per 16 tokens) so a burst
//! of channel creations does not cost a syscall each. If the OS source ever fails, tokens fall back
//! to SipHash output under the per-process random keys of `RandomState` mixed with a counter:
//! still unpredictable to clients, never a fixed value.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Raw token bytes.
pub type AuthToken = [u8; 16];

const POOL: usize = 256;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Batched source of random tokens (one per hub).
#[derive(Debug)]
pub struct AuthTokenSource {
    pool: [u8; POOL],
    /// INVARIANT: `used <= POOL`; `pool[used..]` has not been handed out.
    used: usize,
    fallback: RandomState,
    counter: u64,
}

impl Default for AuthTokenSource {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthTokenSource {
    /// A source whose pool is filled on first use.
    pub fn new() -> AuthTokenSource {
        AuthTokenSource {
            pool: [0; POOL],
            used: POOL,
            fallback: RandomState::new(),
            counter: 0,
        }
    }

    /// A fresh random token.
    pub fn fresh(&mut self) -> AuthToken {
        if self.used + 16 > POOL {
            if getrandom::fill(&mut self.pool).is_ok() {
                self.used = 0;
            } else {
                return self.fallback_token();
            }
        }
        let mut token = [0u8; 16];
        if let Some(bytes) = self.pool.get(self.used..self.used + 16) {
            token.copy_from_slice(bytes);
        }
        // Never hand the same bytes out twice.
        if let Some(bytes) = self.pool.get_mut(self.used..self.used + 16) {
            bytes.fill(0);
        }
        self.used += 16;
        token
    }

    fn fallback_token(&mut self) -> AuthToken {
        self.counter = self.counter.wrapping_add(1);
        let a = self.fallback.hash_one((self.counter, 0u8));
        let b = self.fallback.hash_one((self.counter, 1u8));
        let mut token = [0u8; 16];
        token[..8].copy_from_slice(&a.to_le_bytes());
        token[8..].copy_from_slice(&b.to_le_bytes());
        token
    }
}

/// The 32 lowercase hex digits of a token.
pub fn to_hex(token: &AuthToken) -> [u8; 32] {
    let mut hex = [0u8; 32];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(token) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    hex
}

/// True when `given` equals the hex form of `token`. The time taken does not depend on where the
/// first difference is (only on the length, which is not secret).
pub fn hex_matches(token: &AuthToken, given: &[u8]) -> bool {
    let expected = to_hex(token);
    if given.len() != expected.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        let mut source = AuthTokenSource::new();
        let tokens: Vec<AuthToken> = (0..40).map(|_| source.fresh()).collect();
        for (i, a) in tokens.iter().enumerate() {
            assert_ne!(*a, [0u8; 16]);
            for b in &tokens[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let fallback: Vec<AuthToken> = (0..4).map(|_| source.fallback_token()).collect();
        assert_ne!(fallback[0], fallback[1]);
    }

    #[test]
    fn hex_form() {
        let token = [
            0x10, 0x5c, 0x26, 0xe5, 0x2c, 0x8e, 0x5f, 0x94, 0x0e, 0x62, 0x62, 0xff, 0x61, 0x9a,
            0xe1, 0x1f,
        ];
        assert_eq!(&to_hex(&token), b"105c26e52c8e5f940e6262ff619ae11f");
        assert!(hex_matches(&token, b"105c26e52c8e5f940e6262ff619ae11f"));
        assert!(!hex_matches(&token, b"105c26e52c8e5f940e6262ff619ae11e"));
        assert!(!hex_matches(&token, b"105C26E52C8E5F940E6262FF619AE11F"));
        assert!(!hex_matches(&token, b"105c26e52c8e5f940e6262ff619ae11"));
        assert!(!hex_matches(&token, b""));
    }
}
