//! Admin replies computed on a real hub, without sockets.

use super::*;
use crate::api::ReplyStyle;
use crate::comet::hub::{Counters, HubConfig};
use crate::http::Version;

const DATE: &[u8] = b"Tue, 01 Dec 2026 21:00:00 GMT";

fn hub(max_channels: usize) -> Hub {
    let config = HubConfig {
        max_channels,
        max_subscribers_per_channel: 10,
        channel_buffer_size: 4,
        channel_timeout: 30,
        polling_timeout: 30,
        auth_token: false,
    };
    Hub::new(config, Counters::new())
}

fn req(op: HomeOp, cname: &str, callback: Option<&str>) -> HomeRequest {
    HomeRequest {
        op,
        cname: cname.as_bytes().to_vec(),
        callback: callback.map(|c| c.as_bytes().to_vec()),
        style: ReplyStyle {
            version: Version::Http11,
            keep_alive: true,
            asks_close: false,
            head_only: false,
        },
    }
}

fn run_text(hub: &mut Hub, r: &HomeRequest) -> (String, Effect) {
    let mut out = Vec::new();
    let effect = run(hub, r, DATE, 30, &mut out);
    (String::from_utf8_lossy(&out).into_owned(), effect)
}

fn body(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn publish_replies_ok_and_asks_for_a_delivery() {
    let mut h = hub(10);
    let publish = HomeOp::Publish {
        content: b"hi".to_vec(),
    };
    let (reply, effect) = run_text(&mut h, &req(publish, "a", Some("cb")));
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert_eq!(body(&reply), r#"cb({"type":"ok"});"#.to_owned() + "\n");
    match effect {
        Effect::Deliver(p) => {
            assert_eq!(p.msg.seq, 1);
            assert_eq!(&*p.name, b"a");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn publish_past_the_channel_cap_is_429_and_delivers_nothing() {
    let mut h = hub(1);
    let publish = || HomeOp::Publish {
        content: b"x".to_vec(),
    };
    run_text(&mut h, &req(publish(), "first", None));
    let (reply, effect) = run_text(&mut h, &req(publish(), "second", None));
    assert!(
        reply.starts_with("HTTP/1.1 429 Too Many Channels\r\n"),
        "{reply}"
    );
    assert!(matches!(effect, Effect::None));
}

#[test]
fn sign_info_check_clear_and_close_reply_as_icomet() {
    let mut h = hub(10);
    let (sign, _) = run_text(&mut h, &req(HomeOp::Sign { expires: 0 }, "c", None));
    let sign = body(&sign).trim_end();
    assert!(
        sign.starts_with(r#"{"type":"sign","cname":"c","seq":1,"token":""#),
        "{sign}"
    );
    assert!(
        sign.contains(r#","expires":30,"sub_timeout":30,"epoch":"#),
        "{sign}"
    );

    let (info, _) = run_text(&mut h, &req(HomeOp::Info, "c", None));
    assert_eq!(body(&info), "{\"cname\": \"c\", \"subscribers\": 0}\n");
    let (check, _) = run_text(&mut h, &req(HomeOp::Check, "c", None));
    assert_eq!(body(&check), "{\"c\": 1}\n");
    let (clear, _) = run_text(&mut h, &req(HomeOp::Clear, "c", None));
    assert_eq!(body(&clear), "ok 1\n");

    let (close, effect) = run_text(&mut h, &req(HomeOp::Close, "c", None));
    assert_eq!(body(&close), "ok 1\n");
    assert!(matches!(effect, Effect::Closed(ref c) if c.seq_next == 1));
    let (missing, _) = run_text(&mut h, &req(HomeOp::Close, "c", None));
    assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert_eq!(body(&missing), "channel[c] not connected\n");
    let (check, _) = run_text(&mut h, &req(HomeOp::Check, "c", None));
    assert_eq!(body(&check), "{}\n");
}
