//! RESP2 on the cluster thread's own sockets: commands are written as arrays of bulk strings
//! (`command`), replies are decoded with the `redis-protocol` crate (`next_reply`), and a few
//! helpers read the shapes our scripts return.
//!
//! Depends on: nothing of the crate (redis-protocol).

pub use redis_protocol::resp2::types::OwnedFrame as Reply;

/// Appends one command, `*N` then each argument as a bulk string.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_int(out, args.len());
    for arg in args {
        out.push(b'$');
        push_int(out, arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_int(out: &mut Vec<u8>, n: usize) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The next complete reply at the front of `buf` and its length; `Ok(None)` when more bytes are
/// needed; `Err` when the bytes are not RESP (the link is then dropped).
pub fn next_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    redis_protocol::resp2::decode::decode(buf).map_err(|e| e.to_string())
}

/// A reply's bytes when it is a string.
pub fn bytes(reply: &Reply) -> Option<&[u8]> {
    match reply {
        Reply::BulkString(b) | Reply::SimpleString(b) => Some(b),
        _ => None,
    }
}

/// A reply as an integer: an integer reply, or a string of digits.
pub fn int(reply: &Reply) -> Option<i64> {
    match reply {
        Reply::Integer(n) => Some(*n),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

/// A reply's items when it is an array.
pub fn items(reply: &Reply) -> Option<&[Reply]> {
    match reply {
        Reply::Array(items) => Some(items),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &[b"SET", b"k", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn replies_decode_whole_or_wait() {
        let buf = b"*2\r\n:5\r\n$2\r\nab\r\n+OK\r\n";
        let (reply, used) = next_reply(buf).unwrap().unwrap();
        assert_eq!(used, 16);
        let items = items(&reply).unwrap();
        assert_eq!(int(&items[0]), Some(5));
        assert_eq!(bytes(&items[1]), Some(&b"ab"[..]));
        assert!(next_reply(&buf[..10]).unwrap().is_none());
        assert!(next_reply(b"?x\r\n").is_err());
    }
}
