//! Target of the WebSocket command parser (`api::ws_command::parse`) and its refusals.
//!
//! Invariants (under the built-in `max_cname_bytes` and a tiny one):
//! * an accepted command respects the limits (a channel name of at most `max_cname_bytes`, a
//!   token of at most `api::front::MAX_TOKEN_BYTES`) and, written back as JSON, parses to the same command;
//! * a refusal is one valid JSON object, `{"type":"400","cname":…,"seq":0,"content":reason}`,
//!   whose `content` is the reason and whose `cname` is the name given, whatever the bytes of
//!   either (the reason quotes the client's own `cmd`).

use rcomet::api::front::MAX_TOKEN_BYTES;
use rcomet::api::ws_command::{parse, refusal, Command};
use serde_json::{json, Value};

/// `data` is one text message a WebSocket subscriber sent.
pub fn ws_command(data: &[u8]) {
    let built_in = rcomet::config::Limits::default().max_cname_bytes;
    for max_cname in [built_in, 4] {
        match parse(data, max_cname) {
            Ok(command) => check_command(&command, max_cname),
            Err(reason) => {
                check_refusal(b"", &reason);
                let cname = String::from_utf8_lossy(&data[..data.len().min(64)]).into_owned();
                check_refusal(cname.as_bytes(), &reason);
            }
        }
    }
}

fn check_command(command: &Command, max_cname: usize) {
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).expect("names and tokens come from JSON strings")
    };
    let written = match command {
        Command::Sub {
            cname,
            seq,
            auth_token,
            epoch,
        } => {
            assert!(cname.len() <= max_cname);
            assert!(auth_token.len() <= MAX_TOKEN_BYTES);
            json!({"cmd": "sub", "cname": text(cname), "seq": seq, "token": text(auth_token),
                   "epoch": epoch})
        }
        Command::Unsub { cname } => {
            assert!(cname.len() <= max_cname);
            json!({"cmd": "unsub", "cname": text(cname)})
        }
    };
    let bytes = serde_json::to_vec(&written).expect("a JSON value serialises");
    assert_eq!(parse(&bytes, max_cname).as_ref(), Ok(command), "{written}");
}

fn check_refusal(cname: &[u8], reason: &str) {
    let bytes = refusal(cname, reason);
    let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "refusal {:?} is not JSON: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let want = json!({
        "type": "400",
        "cname": String::from_utf8_lossy(cname),
        "seq": 0,
        "content": reason,
    });
    assert_eq!(value, want);
}
