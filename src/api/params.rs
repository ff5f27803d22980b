//! Typed, validated request parameters shared by the front and admin handlers. Every refusal
//! carries a sentence for the 400 reply.
//!
//! Depends on: http (Params), api::json (callback validation).

use super::json::valid_callback;
use crate::http::Params;

/// The channel name (`cname`, missing = the channel named ""), at most `max` bytes.
pub fn cname(params: &Params<'_>, max: usize) -> Result<Vec<u8>, String> {
    let name = params
        .get("cname")
        .map(|c| c.into_owned())
        .unwrap_or_default();
    if name.len() > max {
        return Err(format!("cname longer than {max} bytes"));
    }
    Ok(name)
}

/// A whole decimal number (optionally signed); missing or empty = `default`. Values are taken
/// modulo 2^32 like iComet's 32-bit integers, but junk is refused instead of read as 0.
pub fn int(params: &Params<'_>, name: &str, default: i64) -> Result<i64, String> {
    let Some(raw) = params.get(name) else {
        return Ok(default);
    };
    let text = std::str::from_utf8(&raw).unwrap_or("").trim();
    if text.is_empty() && raw.is_empty() {
        return Ok(default);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{name} must be an integer"));
    }
    text.parse::<i64>()
        .map_err(|_| format!("{name} must be an integer"))
}

/// A sequence number: any 32-bit value, signed or unsigned spelling.
pub fn seq(params: &Params<'_>, name: &str) -> Result<u32, String> {
    let v = int(params, name, 0)?;
    if v < i64::from(i32::MIN) || v > i64::from(u32::MAX) {
        return Err(format!("{name} out of 32-bit range"));
    }
    Ok(v as u32)
}

/// An on/off switch (`1`/`0`, also `yes`/`no`, `true`/`false`); missing or empty = `default`.
pub fn switch(params: &Params<'_>, name: &str, default: bool) -> Result<bool, String> {
    let Some(raw) = params.get(name) else {
        return Ok(default);
    };
    match &*raw {
        b"" => Ok(default),
        b"1" | b"yes" | b"true" => Ok(true),
        b"0" | b"no" | b"false" => Ok(false),
        _ => Err(format!("{name} must be 1 or 0")),
    }
}

/// An epoch (`epoch=`, a channel incarnation as `/sign` reports it); missing or empty = `None`.
pub fn epoch(params: &Params<'_>) -> Result<Option<u32>, String> {
    match params.get("epoch") {
        None => Ok(None),
        Some(raw) if raw.is_empty() => Ok(None),
        Some(raw) => std::str::from_utf8(&raw)
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
            .map(Some)
            .ok_or_else(|| "epoch must be an unsigned 32-bit integer".to_string()),
    }
}

/// The JSONP callback: `None` when absent or empty, an error when it could inject script.
pub fn callback(params: &Params<'_>) -> Result<Option<Vec<u8>>, String> {
    match params.get("cb") {
        None => Ok(None),
        Some(cb) if cb.is_empty() => Ok(None),
        Some(cb) if valid_callback(&cb) => Ok(Some(cb.into_owned())),
        Some(_) => Err("cb must be 1-128 characters of A-Z a-z 0-9 _ $ .".to_string()),
    }
}

/// Checks that `content` can stand between JSON quotes as it is (for /pub, which inserts it
/// verbatim): no raw quote or control byte, only valid escapes, valid UTF-8.
pub fn verbatim_json_string(content: &[u8]) -> Result<(), String> {
    if std::str::from_utf8(content).is_err() {
        return Err("content is not valid UTF-8".to_string());
    }
    let mut i = 0;
    while let Some(&b) = content.get(i) {
        match b {
            b'"' => return Err("content has an unescaped '\"' (use /push to send raw text)".into()),
            0..=0x1f => return Err("content has a raw control character (use /push)".into()),
            b'\\' => {
                match content.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => {
                        let hex = content.get(i + 2..i + 6);
                        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                            return Err("content has a bad \\u escape".into());
                        }
                        i += 6;
                    }
                    _ => return Err("content has a bad '\\' escape (use /push)".into()),
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict_and_wrap_like_32_bit() {
        let p = Params::new(
            b"seq=12&bad=12abc&neg=-1&big=4294967295&huge=99999999999&e=",
            None,
        );
        assert_eq!(seq(&p, "seq"), Ok(12));
        assert!(seq(&p, "bad").is_err());
        assert_eq!(seq(&p, "neg"), Ok(u32::MAX));
        assert_eq!(seq(&p, "big"), Ok(u32::MAX));
        assert!(seq(&p, "huge").is_err());
        assert_eq!(seq(&p, "e"), Ok(0));
        assert_eq!(seq(&p, "missing"), Ok(0));
    }

    #[test]
    fn cname_and_callback_rules() {
        let p = Params::new(b"cname=abc&cb=f(1)", None);
        assert_eq!(cname(&p, 3), Ok(b"abc".to_vec()));
        assert!(cname(&p, 2).is_err());
        assert!(callback(&p).is_err());
        let p = Params::new(b"cb=", None);
        assert_eq!(callback(&p), Ok(None));
        assert_eq!(cname(&p, 10), Ok(Vec::new()));
    }

    #[test]
    fn verbatim_content_must_be_a_json_string_inside() {
        assert!(verbatim_json_string(br#"\u4f60 ok \"q\" \\ \n"#).is_ok());
        assert!(verbatim_json_string(b"a\"b").is_err());
        assert!(verbatim_json_string(b"a\\x").is_err());
        assert!(verbatim_json_string(b"a\\u12").is_err());
        assert!(verbatim_json_string(b"tab\there").is_err());
        assert!(verbatim_json_string(&[0xff]).is_err());
    }
}
