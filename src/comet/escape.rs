//! JSON string-inner escaping for message content and channel names. Depends on nothing.
//!
//! Byte-identical to iComet's `/push` escaping for its four characters (`"` → `\"`, `\` → `\\`,
//! CR → `\r`, LF → `\n`), so ordinary content and names produce the same wire bytes. Unlike iComet
//! every other control byte below 0x20 is escaped as well, so the output is always valid JSON:
//! tab → `\t`, backspace → `\b`, form feed → `\f`, the rest → `\u00XX` (lowercase hex).
//! Bytes ≥ 0x20 pass through unchanged, including UTF-8 sequences and DEL.
//! `api::json` re-exports this; it lives here so `comet` needs nothing from the layers above it.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` escaped for the inside of a JSON string.
pub fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    escape_each(s, &mut |piece| out.extend_from_slice(piece));
}

/// Hands `s`, escaped for the inside of a JSON string, to `put` piece by piece (runs of plain
/// bytes and single escapes), for writers that do not append to a `Vec`.
pub fn escape_each(s: &[u8], put: &mut impl FnMut(&[u8])) {
    let mut plain_from = 0;
    for (i, &b) in s.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        put(s.get(plain_from..i).unwrap_or_default());
        plain_from = i + 1;
        match b {
            b'"' => put(b"\\\""),
            b'\\' => put(b"\\\\"),
            b'\r' => put(b"\\r"),
            b'\n' => put(b"\\n"),
            b'\t' => put(b"\\t"),
            0x08 => put(b"\\b"),
            0x0c => put(b"\\f"),
            _ => {
                put(b"\\u00");
                put(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]);
            }
        }
    }
    put(s.get(plain_from..).unwrap_or_default());
}

/// Length `escape_into` would append for `s`.
pub fn escaped_len(s: &[u8]) -> usize {
    s.iter()
        .map(|&b| match b {
            b'"' | b'\\' | b'\r' | b'\n' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        escape_into(&mut out, s);
        assert_eq!(out.len(), escaped_len(s));
        out
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(esc(b"alice"), b"alice");
        assert_eq!(esc(b""), b"");
        assert_eq!(esc(b"hi there / <b> {}'"), b"hi there / <b> {}'");
    }

    #[test]
    fn icomet_four_characters() {
        assert_eq!(esc(b"say \"hi\""), b"say \\\"hi\\\"");
        assert_eq!(esc(b"a\\b"), b"a\\\\b");
        assert_eq!(esc(b"line1\nline2"), b"line1\\nline2");
        assert_eq!(esc(b"a\r\n"), b"a\\r\\n");
        // /pub-style pre-escaped content pushed through /push doubles the backslash, as iComet.
        assert_eq!(esc(b"\\u4f60"), b"\\\\u4f60");
    }

    #[test]
    fn other_control_bytes_are_escaped() {
        assert_eq!(esc(b"a\tb"), b"a\\tb");
        assert_eq!(esc(b"\x08\x0c"), b"\\b\\f");
        assert_eq!(esc(b"\x00"), b"\\u0000");
        assert_eq!(esc(b"x\x1fy\x01"), b"x\\u001fy\\u0001");
    }

    #[test]
    fn utf8_and_high_bytes_pass_raw() {
        assert_eq!(esc("你好".as_bytes()), "你好".as_bytes());
        assert_eq!(esc(b"\xff\x7f"), b"\xff\x7f");
    }
}
