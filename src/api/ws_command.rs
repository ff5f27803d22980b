//! The commands a WebSocket subscriber sends on its open socket, one JSON object per text
//! message:
//!
//! | command | effect |
//! |---|---|
//! | `{"cmd":"sub","cname":"c","seq":5,"token":"…","epoch":123}` | subscribe to one more channel (`seq`, `token`, `epoch` optional, as on `/ws`) |
//! | `{"cmd":"unsub","cname":"c"}` | leave a channel |
//!
//! A command that cannot be read is answered with an error object and the socket stays open
//! (see `refusal`). Parsing is a pure function; the worker carries commands out.
//!
//! Depends on: serde_json (reading), comet (messages for the replies).

use super::front::MAX_TOKEN_BYTES;
use crate::comet::message::{encode, MsgType};
use serde_json::Value;

/// A command read from one client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Sub {
        cname: Vec<u8>,
        seq: u32,
        auth_token: Vec<u8>,
        epoch: Option<u32>,
    },
    Unsub {
        cname: Vec<u8>,
    },
}

/// Reads one command; the error is the sentence sent back.
pub fn parse(message: &[u8], max_cname_bytes: usize) -> Result<Command, String> {
    let value: Value =
        serde_json::from_slice(message).map_err(|_| "a command is one JSON object".to_string())?;
    let Value::Object(fields) = value else {
        return Err("a command is one JSON object".into());
    };
    let cname = match fields.get("cname") {
        Some(Value::String(c)) if c.len() <= max_cname_bytes => c.as_bytes().to_vec(),
        Some(Value::String(_)) => return Err(format!("cname longer than {max_cname_bytes} bytes")),
        None => Vec::new(),
        Some(_) => return Err("cname must be a string".into()),
    };
    match fields.get("cmd").and_then(Value::as_str) {
        Some("sub") => {
            let seq = match fields.get("seq") {
                None | Some(Value::Null) => 0,
                Some(v) => v
                    .as_i64()
                    .filter(|s| (i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(s))
                    .ok_or("seq must be a 32-bit integer")? as u32,
            };
            let auth_token = match fields.get("token") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(t)) if t.len() <= MAX_TOKEN_BYTES => t.as_bytes().to_vec(),
                Some(_) => {
                    return Err(format!(
                        "token must be a string of at most {MAX_TOKEN_BYTES} bytes"
                    ))
                }
            };
            let epoch = match fields.get("epoch") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|e| u32::try_from(e).ok())
                        .ok_or("epoch must be an unsigned 32-bit integer")?,
                ),
            };
            Ok(Command::Sub {
                cname,
                seq,
                auth_token,
                epoch,
            })
        }
        Some("unsub") => Ok(Command::Unsub { cname }),
        Some(other) => Err(format!("unknown command {other:?}")),
        None => Err("a command needs \"cmd\": \"sub\" or \"unsub\"".into()),
    }
}

/// The object sent back for a command that was refused: `{"type":"400",...}` with the reason
/// (the channel's name when the command named one).
pub fn refusal(cname: &[u8], reason: &str) -> Vec<u8> {
    let mut escaped = Vec::with_capacity(reason.len());
    crate::comet::escape::escape_into(&mut escaped, reason.as_bytes());
    encode(MsgType::BadRequest, cname, 0, &escaped).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_with_every_field_and_with_none() {
        let full = br#"{"cmd":"sub","cname":"c","seq":-1,"token":"ab","epoch":4294967295}"#;
        assert_eq!(
            parse(full, 64),
            Ok(Command::Sub {
                cname: b"c".to_vec(),
                seq: u32::MAX,
                auth_token: b"ab".to_vec(),
                epoch: Some(u32::MAX),
            })
        );
        assert_eq!(
            parse(br#"{"cmd":"sub","cname":"c"}"#, 64),
            Ok(Command::Sub {
                cname: b"c".to_vec(),
                seq: 0,
                auth_token: Vec::new(),
                epoch: None,
            })
        );
        assert_eq!(
            parse(br#"{"cmd":"unsub","cname":"c"}"#, 64),
            Ok(Command::Unsub {
                cname: b"c".to_vec()
            })
        );
    }

    #[test]
    fn bad_commands_say_why() {
        let cases: [(&[u8], &str); 9] = [
            (b"nope", "one JSON object"),
            (b"[1]", "one JSON object"),
            (br#"{"cname":"c"}"#, "needs \"cmd\""),
            (br#"{"cmd":"dance"}"#, "unknown command"),
            (br#"{"cmd":"sub","cname":7}"#, "cname must be a string"),
            (br#"{"cmd":"sub","cname":"toolong"}"#, "longer than 4"),
            (br#"{"cmd":"sub","seq":"1"}"#, "seq must be"),
            (br#"{"cmd":"sub","seq":8589934592}"#, "seq must be"),
            (br#"{"cmd":"sub","epoch":-1}"#, "epoch must be"),
        ];
        for (input, want) in cases {
            let err = parse(input, 4).expect_err(std::str::from_utf8(input).unwrap());
            assert!(err.contains(want), "{err:?} for {input:?}");
        }
    }

    #[test]
    fn refusals_are_message_objects() {
        assert_eq!(
            refusal(b"c", "unknown command \"x\""),
            br#"{"type":"400","cname":"c","seq":0,"content":"unknown command \"x\""}"#
        );
    }
}
