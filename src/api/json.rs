//! Small JSON helpers for the iComet-compatible API: string escaping (shared with `comet`, which
//! owns the implementation so it depends on nothing above it) and JSONP callback validation.
//! Depends on `comet::escape` only.

pub use crate::comet::escape::{escape_into, escaped_len};

/// Longest accepted JSONP callback name, in bytes.
pub const MAX_CALLBACK_LEN: usize = 128;

/// True when `cb` is safe to echo as a JSONP callback: 1..=128 bytes of `[A-Za-z0-9_$.]`.
///
/// That covers `icomet_cb_0`, jQuery's `jQuery1910_42` and dotted paths like `app.onMessage`.
/// Brackets, parentheses, quotes, `;`, `<`, spaces, backquotes and every non-ASCII byte are
/// refused: with only identifier characters and dots the echoed callback can name a function but
/// never call, index or close a script. The empty string is not a callback (on `/sub` an empty
/// `cb` means plain JSON).
pub fn valid_callback(cb: &[u8]) -> bool {
    !cb.is_empty()
        && cb.len() <= MAX_CALLBACK_LEN
        && cb
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_stock_client_callbacks() {
        assert!(valid_callback(b"icomet_cb_0"));
        assert!(valid_callback(b"jQuery1910_42"));
        assert!(valid_callback(b"jQuery19104231489_1700000000000"));
        assert!(valid_callback(b"f"));
        assert!(valid_callback(b"$.app.cb"));
        assert!(valid_callback(&[b'a'; MAX_CALLBACK_LEN]));
    }

    #[test]
    fn rejects_injection_and_odd_sizes() {
        for cb in [
            &b""[..],
            b"alert(1)",
            b"a;b",
            b"a b",
            b"<script>",
            b"a\"b",
            b"a'b",
            b"a`b`",
            b"a[0]",
            b"a=b",
            b"a\nb",
            b"a/**/",
            "é".as_bytes(),
        ] {
            assert!(!valid_callback(cb), "{:?}", String::from_utf8_lossy(cb));
        }
        assert!(!valid_callback(&[b'a'; MAX_CALLBACK_LEN + 1]));
    }

    #[test]
    fn reexported_escape_works() {
        let mut out = Vec::new();
        escape_into(&mut out, b"a\"b");
        assert_eq!(out, b"a\\\"b");
        assert_eq!(escaped_len(b"a\"b"), 4);
    }
}
