//! Subscriber credentials. "token" alone names the engine's connection handle; here it is always
//! an auth token. Depends on `getrandom`, `hmac`, `sha2` and std.
//!
//! * `/sign` tokens (`AuthToken`): 16 random bytes per channel, shown to clients as 32 lowercase
//!   hex digits and compared in constant time, at the channel's home (they are channel state).
//!   Random bytes are fetched from the OS in batches (one `getrandom` call per 16 tokens) so a
//!   burst of channel creations does not cost a syscall each. If the OS source ever fails, tokens
//!   fall back to SipHash output under the per-process random keys of `RandomState` mixed with a
//!   counter: still unpredictable to clients, never a fixed value.
//! * Stateless tokens (`StatelessKey`, with `front.auth_secret`): an application server that
//!   knows the secret mints `<expiry>.<hex HMAC-SHA256(secret, cname "|" expiry)>` itself, expiry
//!   in Unix seconds as written in the token. They need no channel state, so the subscriber's own
//!   worker checks them (the HMAC compared in constant time) and the home gets only the verdict
//!   ([`Credential`]); a valid one may create its channel, like a subscription under `auth: none`.
//!   A token with a `.` is stateless; anything else is a `/sign` token. Both kinds are accepted.

use hmac::{KeyInit, Mac};
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

/// What a subscriber presented, as its channel's home sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A `/sign` token (or nothing): compared with the channel's token under `auth: token`.
    Signed(Vec<u8>),
    /// A stateless token, already checked where the subscriber arrived: `valid` for this channel
    /// now, or refused (forged, expired, for another channel, malformed).
    Stateless { valid: bool },
}

impl Credential {
    /// No token at all.
    pub const NONE: Credential = Credential::Signed(Vec::new());
}

/// The longest expiry accepted: 19 digits (every such number fits a `u64`).
const MAX_EXPIRY_DIGITS: usize = 19;

/// The key of stateless tokens, with its HMAC state prepared once.
#[derive(Clone)]
pub struct StatelessKey {
    keyed: hmac::Hmac<sha2::Sha256>,
}

impl std::fmt::Debug for StatelessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatelessKey(..)")
    }
}

impl StatelessKey {
    pub fn new(secret: &[u8]) -> StatelessKey {
        // HMAC takes keys of any length (longer ones are hashed first), so this cannot fail.
        let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        StatelessKey { keyed }
    }

    /// Whether `presented` is a stateless token (it holds a `.`); `None` for a `/sign` token.
    /// A stateless one is valid when it is `<expiry>.<64 hex digits>`, its MAC is that of
    /// `cname|expiry` under this key (compared in constant time) and `now` (Unix seconds) is not
    /// past `expiry`.
    pub fn check(&self, cname: &[u8], presented: &[u8], now: u64) -> Option<bool> {
        let dot = presented.iter().position(|&b| b == b'.')?;
        let (expiry, mac) = presented.split_at(dot);
        let mac = mac.get(1..).unwrap_or_default();
        let Some(expires_at) = parse_expiry(expiry) else {
            return Some(false);
        };
        let Some(mac) = decode_hex_32(mac) else {
            return Some(false);
        };
        let mut m = self.keyed.clone();
        m.update(cname);
        m.update(b"|");
        m.update(expiry);
        // `verify_slice` compares in constant time; the expiry is checked after it, so a forged
        // token and an expired one cost the same.
        let authentic = m.verify_slice(&mac).is_ok();
        Some(authentic && now <= expires_at)
    }

    /// The token for `cname` valid until Unix second `expiry` (what an application server mints).
    pub fn mint(&self, cname: &[u8], expiry: u64) -> String {
        let expiry = expiry.to_string();
        let mut m = self.keyed.clone();
        m.update(cname);
        m.update(b"|");
        m.update(expiry.as_bytes());
        let mac = m.finalize().into_bytes();
        let mut token = expiry;
        token.push('.');
        for byte in mac.iter() {
            token.push(char::from(HEX[usize::from(byte >> 4)]));
            token.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        token
    }
}

/// 1 to 19 ASCII digits.
fn parse_expiry(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_EXPIRY_DIGITS {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// Exactly 64 hex digits (either case) as 32 bytes.
fn decode_hex_32(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (&hi, &lo) = (pair.first()?, pair.get(1)?);
        *byte = nibble(hi)? << 4 | nibble(lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"an example secret, 32 bytes long";

    /// Minted by Python's `hmac` module, a second implementation:
    /// `hmac.new(SECRET, b"alice|1800000000", hashlib.sha256).hexdigest()`.
    const ALICE: &[u8] =
        b"1800000000.fe73d2201218627b79a14c811e0f1edb781a87066831c64955a25cc5b974bd3f";

    #[test]
    fn stateless_tokens_match_another_implementation() {
        let key = StatelessKey::new(SECRET);
        assert_eq!(key.mint(b"alice", 1_800_000_000).as_bytes(), ALICE);
        assert_eq!(key.check(b"alice", ALICE, 1_799_999_999), Some(true));
        // Valid through its expiry second, refused after.
        assert_eq!(key.check(b"alice", ALICE, 1_800_000_000), Some(true));
        assert_eq!(key.check(b"alice", ALICE, 1_800_000_001), Some(false));
        // Uppercase hex is the same MAC.
        let upper = String::from_utf8(ALICE.to_vec()).unwrap().to_uppercase();
        assert_eq!(key.check(b"alice", upper.as_bytes(), 0), Some(true));
    }

    #[test]
    fn forged_and_malformed_stateless_tokens_are_refused() {
        let key = StatelessKey::new(SECRET);
        let good = key.mint(b"bob", 2_000_000_000);
        assert_eq!(key.check(b"bob", good.as_bytes(), 0), Some(true));
        assert_eq!(
            key.check(b"bobby", good.as_bytes(), 0),
            Some(false),
            "other channel"
        );
        let other =
            StatelessKey::new(b"another secret of enough length").mint(b"bob", 2_000_000_000);
        assert_eq!(
            key.check(b"bob", other.as_bytes(), 0),
            Some(false),
            "other key"
        );
        // The expiry is covered by the MAC: a later one is a forgery.
        let later = good.replacen("2000000000", "2000000001", 1);
        assert_eq!(key.check(b"bob", later.as_bytes(), 0), Some(false));
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(key.check(b"bob", &flipped, 0), Some(false));
        let mac = &good[good.find('.').unwrap() + 1..];
        for bad in [
            format!(".{mac}"),
            format!("-5.{mac}"),
            format!("+2000000000.{mac}"),
            format!("20000000000000000000.{mac}"),
            "2000000000.".to_string(),
            format!("2000000000.{}", &mac[1..]),
            format!("2000000000.{mac}0"),
            format!("2000000000.{}g", &mac[1..]),
            format!("2000000000..{mac}"),
        ] {
            assert_eq!(key.check(b"bob", bad.as_bytes(), 0), Some(false), "{bad}");
        }
        // No dot: a /sign token, not this key's business.
        assert_eq!(
            key.check(b"bob", b"105c26e52c8e5f940e6262ff619ae11f", 0),
            None
        );
        assert_eq!(key.check(b"bob", b"", 0), None);
        assert_eq!(format!("{key:?}"), "StatelessKey(..)");
    }

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
