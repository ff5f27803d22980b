//! Target of JSONP callback validation (`api::json::valid_callback`) and of the long-poll framing
//! that echoes an accepted callback.
//!
//! Invariants:
//! * `valid_callback` accepts exactly the names of 1..=128 bytes of `[A-Za-z0-9_$.]` (so it
//!   never accepts a byte outside that set), whether given raw or percent-decoded from a `cb=`
//!   query parameter;
//! * a long-poll frame is `cb(JSON);\n` for an accepted callback and `JSON\n` otherwise: nothing
//!   of a refused callback reaches the response, and the frame's length is `body_len`.

use rcomet::api::frame::{Framing, Transport};
use rcomet::api::json::{valid_callback, MAX_CALLBACK_LEN};
use rcomet::http::Params;

const JSON: &[u8] = br#"{"type":"data","cname":"c","seq":1,"content":"hi"}"#;

/// `data` is a callback name as a client sends it (raw, or percent-encoded in a query).
pub fn jsonp_callback(data: &[u8]) {
    check(data);
    let query = [b"cname=c&cb=", data].concat();
    if let Some(decoded) = Params::new(&query, None).get("cb") {
        check(&decoded);
    }
}

fn model(cb: &[u8]) -> bool {
    (1..=MAX_CALLBACK_LEN).contains(&cb.len())
        && cb
            .iter()
            .all(|&b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'$' | b'.'))
}

fn check(cb: &[u8]) {
    let valid = valid_callback(cb);
    assert_eq!(
        valid,
        model(cb),
        "valid_callback({:?})",
        String::from_utf8_lossy(cb)
    );
    let framing = Framing::new(Transport::LongPoll, false, Some(cb));
    let mut out = Vec::new();
    framing.write_frame(JSON, &mut out);
    let want = if valid {
        [cb, b"(", JSON, b");\n"].concat()
    } else {
        [JSON, b"\n"].concat()
    };
    assert_eq!(out, want);
    assert_eq!(out.len(), framing.body_len(JSON.len()));
}
