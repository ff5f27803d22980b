//! Query-string and form parameters as iComet reads them, and percent-decoding. Depends on
//! `memchr` alone.
//!
//! Rules (iComet 0.2.5's, with the fixes README.md lists):
//! * The parameters are split on `&`; each piece is split at its first `=`. Names are not decoded and
//!   are compared ASCII case-insensitively; the first occurrence wins.
//! * Values are decoded: `+` → space, `%XX` → byte; an invalid escape is kept literally.
//! * A form body (given for POST, whatever its content type) is searched first; a parameter found
//!   there wins over the query, otherwise the query is used.
//!
//! iComet bugs fixed here, on purpose:
//! * A byte outside RFC 3986 in the query (raw UTF-8, `{`, `"`, space, a lone `%`) made iComet drop
//!   *all* parameters; here such bytes are taken literally and only affect their own value.
//! * A piece without `=` (or with an empty name) made iComet drop all parameters; here only that
//!   piece is skipped.
//! * `%00` truncated a value (C strings); here it is a NUL byte kept in the value.

use std::borrow::Cow;

/// The parameters of one request: the raw query and, for POST, the raw form body.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Params<'a> {
    query: &'a [u8],
    form_body: Option<&'a [u8]>,
}

impl<'a> Params<'a> {
    /// `query`: the raw bytes after `?`. `form_body`: the request body for POST (any content type),
    /// `None` otherwise.
    pub fn new(query: &'a [u8], form_body: Option<&'a [u8]>) -> Self {
        Params { query, form_body }
    }

    /// The decoded value of parameter `name`; borrowed unless it holds `+` or `%`.
    pub fn get(&self, name: &str) -> Option<Cow<'a, [u8]>> {
        self.get_raw(name).map(|raw| percent_decode(raw, true))
    }

    /// The raw (still encoded) value of parameter `name`.
    fn get_raw(&self, name: &str) -> Option<&'a [u8]> {
        let name = name.as_bytes();
        self.form_body
            .and_then(|body| find(body, name))
            .or_else(|| find(self.query, name))
    }
}

/// The raw value of the first `name=value` piece of `pairs` whose name matches.
fn find<'a>(pairs: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    pairs.split(|&b| b == b'&').find_map(|piece| {
        let eq = piece.iter().position(|&b| b == b'=')?;
        let (piece_name, rest) = piece.split_at(eq);
        let matches = !piece_name.is_empty() && piece_name.eq_ignore_ascii_case(name);
        matches.then(|| rest.get(1..).unwrap_or_default())
    })
}

/// Percent-decodes `input` (`%XX` → byte; `+` → space when `plus_as_space`). Invalid escapes are
/// kept literally. Borrows when there is nothing to decode.
pub fn percent_decode(input: &[u8], plus_as_space: bool) -> Cow<'_, [u8]> {
    let escaped = if plus_as_space {
        memchr::memchr2(b'%', b'+', input)
    } else {
        memchr::memchr(b'%', input)
    };
    if escaped.is_none() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    out.extend(Decode::new(input, plus_as_space));
    Cow::Owned(out)
}

/// The decoded bytes of a percent-encoded string, one at a time.
#[derive(Clone, Debug)]
struct Decode<'a> {
    rest: &'a [u8],
    plus_as_space: bool,
}

impl<'a> Decode<'a> {
    fn new(input: &'a [u8], plus_as_space: bool) -> Self {
        Decode {
            rest: input,
            plus_as_space,
        }
    }
}

impl Iterator for Decode<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        if first == b'%' {
            if let [high, low, after @ ..] = rest {
                if let (Some(high), Some(low)) = (hex_digit(*high), hex_digit(*low)) {
                    self.rest = after;
                    return Some(high << 4 | low);
                }
            }
        }
        self.rest = rest;
        if first == b'+' && self.plus_as_space {
            return Some(b' ');
        }
        Some(first)
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn get(query: &str, name: &str) -> Option<Vec<u8>> {
        Params::new(query.as_bytes(), None)
            .get(name)
            .map(Cow::into_owned)
    }

    #[test]
    fn plain_lookup_borrows() {
        let params = Params::new(b"cname=alice&seq=3", None);
        assert!(matches!(params.get("cname"), Some(Cow::Borrowed(b"alice"))));
        assert_eq!(params.get("seq").as_deref(), Some(&b"3"[..]));
        assert_eq!(params.get("missing"), None);
    }

    #[test]
    fn names_are_case_insensitive_and_first_wins() {
        assert_eq!(get("CName=a&cname=b", "cname"), Some(b"a".to_vec()));
        assert_eq!(get("cname=a&CNAME=b", "CnAmE"), Some(b"a".to_vec()));
    }

    #[test]
    fn names_are_not_decoded() {
        assert_eq!(get("c%6Eame=x", "cname"), None);
        assert_eq!(get("c%6Eame=x", "c%6Eame"), Some(b"x".to_vec()));
    }

    #[test]
    fn plus_and_escapes_are_decoded_in_values() {
        assert_eq!(
            get("content=say+%22hi%22", "content"),
            Some(b"say \"hi\"".to_vec())
        );
        assert_eq!(
            get("content=%5Cu4f60", "content"),
            Some(b"\\u4f60".to_vec())
        );
        assert_eq!(get("c=line1%0Aline2", "c"), Some(b"line1\nline2".to_vec()));
        assert_eq!(get("c=%e4%BD%a0", "c"), Some("你".as_bytes().to_vec()));
    }

    #[test]
    fn invalid_escapes_are_kept_literally() {
        assert_eq!(get("c=100%", "c"), Some(b"100%".to_vec()));
        assert_eq!(get("c=%zz%4", "c"), Some(b"%zz%4".to_vec()));
        assert_eq!(get("c=%%41", "c"), Some(b"%A".to_vec()));
    }

    #[test]
    fn nul_is_kept_not_truncating() {
        assert_eq!(get("c=a%00b", "c"), Some(b"a\0b".to_vec()));
    }

    #[test]
    fn raw_non_rfc3986_bytes_are_literal_and_keep_other_params() {
        let query = "cname=x&content={\"a\":1} é|<>";
        assert_eq!(get(query, "cname"), Some(b"x".to_vec()));
        assert_eq!(
            get(query, "content"),
            Some("{\"a\":1} é|<>".as_bytes().to_vec())
        );
    }

    #[test]
    fn piece_without_equals_or_name_is_skipped_alone() {
        assert_eq!(get("flag&cname=x&=v&&seq=2", "cname"), Some(b"x".to_vec()));
        assert_eq!(get("flag&cname=x&=v&&seq=2", "seq"), Some(b"2".to_vec()));
        assert_eq!(get("flag&cname=x", "flag"), None);
        assert_eq!(get("=v", ""), None);
    }

    #[test]
    fn value_splits_at_first_equals_and_may_be_empty() {
        assert_eq!(get("a=b=c", "a"), Some(b"b=c".to_vec()));
        assert_eq!(get("cb=&x=1", "cb"), Some(Vec::new()));
    }

    #[test]
    fn form_body_wins_over_query_else_query_applies() {
        let params = Params::new(b"cname=q&seq=5", Some(b"cname=henry&content=hi+there"));
        assert_eq!(params.get("cname").as_deref(), Some(&b"henry"[..]));
        assert_eq!(params.get("content").as_deref(), Some(&b"hi there"[..]));
        assert_eq!(params.get("seq").as_deref(), Some(&b"5"[..]));
        let broken_body = Params::new(b"cname=q", Some(b"{\"raw\":1}"));
        assert_eq!(broken_body.get("cname").as_deref(), Some(&b"q"[..]));
        let empty_body = Params::new(b"cname=q", Some(b""));
        assert_eq!(empty_body.get("cname").as_deref(), Some(&b"q"[..]));
    }

    #[test]
    fn percent_decode_modes() {
        assert!(matches!(
            percent_decode(b"/sub", false),
            Cow::Borrowed(b"/sub")
        ));
        assert!(matches!(
            percent_decode(b"/a+b", false),
            Cow::Borrowed(b"/a+b")
        ));
        assert_eq!(&percent_decode(b"/%73ub+x", false)[..], b"/sub+x");
        assert_eq!(&percent_decode(b"a+b", true)[..], b"a b");
        assert_eq!(&percent_decode(b"%", true)[..], b"%");
        assert_eq!(&percent_decode(b"", true)[..], b"");
    }
}
