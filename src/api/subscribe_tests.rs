//! Subscription decisions without sockets: catch-up framing, when a long-poll ends, live frames,
//! heartbeats.

use super::*;
use crate::comet::message::follow_up;
use crate::comet::name::Name;

const DATE: &[u8] = b"Tue, 01 Dec 2026 21:00:00 GMT";

fn sub(transport: Transport, callback: Option<&[u8]>, seq: u32) -> Subscription {
    let framing = Framing::new(transport, true, callback);
    Subscription::pending(Name::from(&b"alice"[..]), framing, seq, 7)
}

fn style() -> HeadStyle<'static> {
    HeadStyle {
        http11: true,
        close: false,
        cors: b"",
        date: DATE,
    }
}

fn answer(catch_up: CatchUp, registered: bool) -> Result<Subscribed, SubscribeError> {
    Ok(Subscribed {
        name: Name::from(&b"alice"[..]),
        epoch: 9,
        catch_up,
        registered,
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn body(out: &[u8]) -> String {
    let s = text(out);
    s.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn a_long_poll_told_where_to_start_ends_with_its_next_seq() {
    let mut s = sub(Transport::LongPoll, Some(b"cb"), 0);
    let mut out = Vec::new();
    let opened = open(
        &mut s,
        style(),
        &answer(CatchUp::NextSeq(4), false),
        &mut out,
    );
    assert_eq!(
        opened,
        Opened {
            ended: true,
            replayed: 0
        }
    );
    let json = r#"{"type":"next_seq","cname":"alice","seq":4,"content":""}"#;
    let frame = format!("cb({json});\n");
    assert_eq!(
        body(&out),
        format!("{:x}\r\n{frame}\r\n0\r\n\r\n", frame.len())
    );
    assert_eq!(
        (s.next_seq, s.epoch, s.registered, s.pending),
        (4, 9, false, false)
    );
}

#[test]
fn a_stream_that_must_wait_gets_its_head_only_and_stays_open() {
    let mut s = sub(Transport::Stream, None, 3);
    let mut out = Vec::new();
    let opened = open(&mut s, style(), &answer(CatchUp::Wait, true), &mut out);
    assert!(!opened.ended);
    assert!(text(&out).contains("Connection: keep-alive\r\n"));
    assert_eq!(body(&out), "");
    assert!(s.registered);
}

#[test]
fn a_long_poll_replay_is_one_array_and_moves_the_next_seq() {
    let msgs = vec![
        Message::new(MsgType::Data, b"alice", 5, b"a"),
        Message::new(MsgType::Data, b"alice", 6, b"b"),
    ];
    let mut s = sub(Transport::LongPoll, None, 5);
    let mut out = Vec::new();
    let opened = open(
        &mut s,
        style(),
        &answer(CatchUp::Replay(msgs), false),
        &mut out,
    );
    assert_eq!(
        opened,
        Opened {
            ended: true,
            replayed: 2
        }
    );
    assert!(body(&out).contains(r#"[{"type":"data","cname":"alice","seq":5,"content":"a"},{"#));
    assert!(body(&out).ends_with("]\n\r\n0\r\n\r\n"));
    assert_eq!(s.next_seq, 7);
}

#[test]
fn a_refused_subscription_gets_the_error_frame_and_ends() {
    let mut s = sub(Transport::Sse, None, 0);
    let mut out = Vec::new();
    let opened = open(
        &mut s,
        style(),
        &Err(SubscribeError::TooManySubscribers),
        &mut out,
    );
    assert!(opened.ended);
    assert!(!text(&out).contains("keep-alive"));
    assert!(body(&out).contains(
        r#"data: {"type":"429","cname":"alice","seq":0,"content":"Too many subscribers"}"#
    ));
    assert!(!s.registered);
    assert!(s.pending, "never counted: nothing to undo when it ends");
}

#[test]
fn live_frames_share_the_json_skip_old_seqs_and_end_long_polls() {
    let msg = Message::new(MsgType::Data, b"alice", 3, b"hi");
    let mut stream = sub(Transport::Stream, None, 3);
    stream.pending = false;
    let mut head = Vec::new();
    let d = deliver(&mut stream, &msg, None, &mut head);
    assert_eq!(
        d,
        Delivery::Shared {
            tail: b"\n\r\n",
            ends: false
        }
    );
    assert_eq!(text(&head), format!("{:x}\r\n", msg.json.len() + 1));
    assert_eq!(stream.next_seq, 4);
    head.clear();
    assert_eq!(deliver(&mut stream, &msg, None, &mut head), Delivery::Skip);
    assert!(head.is_empty());

    let mut poll = sub(Transport::LongPoll, Some(b"f"), 3);
    poll.pending = false;
    assert_eq!(
        deliver(&mut poll, &msg, None, &mut head),
        Delivery::Owned { ends: true }
    );
    assert!(text(&head).ends_with(");\n\r\n0\r\n\r\n"));

    let mut waiting = sub(Transport::Stream, None, 3);
    assert_eq!(deliver(&mut waiting, &msg, None, &mut head), Delivery::Skip);
}

#[test]
fn a_broadcast_is_followed_by_its_next_seq() {
    let msg = Message::new(MsgType::Broadcast, b"alice", 8, b"all");
    let next = follow_up(b"alice", &msg).unwrap();
    let mut s = sub(Transport::Stream, None, 8);
    s.pending = false;
    let mut head = Vec::new();
    assert_eq!(
        deliver(&mut s, &msg, Some(&next), &mut head),
        Delivery::Owned { ends: false }
    );
    let t = text(&head);
    assert!(
        t.contains(r#""type":"broadcast""#)
            && t.contains(r#""type":"next_seq","cname":"alice","seq":9"#)
    );
}

#[test]
fn heartbeats_count_up_and_end_only_long_polls() {
    let mut s = sub(Transport::Stream, None, 1);
    let mut out = Vec::new();
    assert!(!noop(&mut s, &mut out));
    assert!(text(&out).contains(r#"{"type":"noop","cname":"alice","seq":7,"content":""}"#));
    assert_eq!(s.noop, 8);
    let mut p = sub(Transport::LongPoll, None, 1);
    out.clear();
    assert!(noop(&mut p, &mut out));
    assert!(text(&out).ends_with("0\r\n\r\n"));
}

#[test]
fn a_gap_moves_a_subscriber_behind_it_and_leaves_one_past_it_alone() {
    let mut behind = sub(Transport::Stream, None, 3);
    (behind.pending, behind.epoch) = (false, 5);
    let mut out = Vec::new();
    assert!(!gap(&mut behind, 8, 5, &mut out));
    assert!(
        text(&out).contains(r#""type":"next_seq""#),
        "{}",
        text(&out)
    );
    assert_eq!((behind.next_seq, behind.epoch), (8, 5));
    // Subscribed after the gap: at seq 9 of the same incarnation already.
    let mut past = sub(Transport::LongPoll, None, 9);
    (past.pending, past.epoch) = (false, 5);
    out.clear();
    assert!(!gap(&mut past, 8, 5, &mut out));
    assert!(out.is_empty() && past.next_seq == 9);
    // The store came back empty: a new incarnation tells everyone, whatever their seq.
    assert!(gap(&mut past, 1, 6, &mut out));
    assert!(text(&out).contains(r#""type":"next_seq""#));
    assert_eq!((past.next_seq, past.epoch), (1, 6));
}

#[test]
fn a_refused_iframe_gets_its_preamble_before_the_error() {
    for http11 in [true, false] {
        let framing = Framing::new(Transport::Iframe, http11, None);
        let mut s = Subscription::pending(Name::from(&b"alice"[..]), framing, 0, 0);
        let mut out = Vec::new();
        let style = HeadStyle { http11, ..style() };
        let opened = open(&mut s, style, &Err(SubscribeError::TokenError), &mut out);
        assert!(opened.ended);
        let mut preamble = Vec::new();
        crate::api::frame::write_iframe_preamble(http11, &mut preamble);
        let body = body(&out);
        assert!(body.starts_with(&text(&preamble)), "{body}");
        assert!(body.contains("<script>parent.icomet_cb({\"type\":\"401\""));
    }
}

/// Cluster mode, the channel's Redis unreachable: every transport gets its usual error frame
/// (`503`, the reason) and the response ends; HTTP transports say 503 in the status line, a
/// WebSocket gets its 101, the frame and close 1013 (try again later).
#[test]
fn an_unavailable_store_is_a_503_in_every_transport() {
    let json = r#"{"type":"503","cname":"alice","seq":0,"content":"Cluster store unavailable, try again"}"#;
    let cases: [(Transport, Option<&[u8]>, String); 5] = [
        (Transport::LongPoll, None, format!("{json}\n")),
        (Transport::LongPoll, Some(b"f"), format!("f({json});\n")),
        (Transport::Stream, None, format!("{json}\n")),
        (Transport::Sse, None, format!("data: {json}\n\n")),
        (
            Transport::Iframe,
            None,
            format!("<script>parent.icomet_cb({json});</script>\n"),
        ),
    ];
    for (transport, cb, frame) in cases {
        for http11 in [true, false] {
            let framing = Framing::new(transport, http11, cb);
            let mut s = Subscription::pending(Name::from(&b"alice"[..]), framing, 0, 0);
            let mut out = Vec::new();
            let style = HeadStyle { http11, ..style() };
            let err = Err(SubscribeError::Unavailable);
            let opened = open(&mut s, style, &err, &mut out);
            assert!(opened.ended, "{transport:?}");
            let all = text(&out);
            let version = if http11 { "1.1" } else { "1.0" };
            let status = format!("HTTP/{version} 503 Service Unavailable\r\n");
            assert!(all.starts_with(&status), "{transport:?}: {all}");
            assert!(!all.contains("keep-alive"), "{transport:?}: {all}");
            let body = body(&out);
            assert!(
                body.contains(&frame),
                "{transport:?} http11={http11}: {body:?}"
            );
            if http11 {
                assert!(body.ends_with("\r\n0\r\n\r\n"), "{transport:?}: {body:?}");
            }
            assert!(s.pending && !s.registered, "never counted");
        }
    }
    let framing = Framing::new(Transport::WebSocket, false, Some(b"accept="));
    let mut s = Subscription::pending(Name::from(&b"alice"[..]), framing, 0, 0);
    let mut out = Vec::new();
    let opened = open(&mut s, style(), &Err(SubscribeError::Unavailable), &mut out);
    assert!(opened.ended);
    let all = text(&out);
    assert!(all.starts_with("HTTP/1.1 101 "), "{all}");
    let mut tail = Vec::new();
    tail.push(0x81);
    tail.push(json.len() as u8);
    tail.extend_from_slice(json.as_bytes());
    tail.extend_from_slice(&[0x88, 2, 0x03, 0xf5]);
    assert!(out.ends_with(&tail), "{all:?}");
    assert_eq!(
        refusal_close_code(SubscribeError::Unavailable),
        crate::ws::CloseCode::TRY_AGAIN_LATER
    );
}

/// A subscriber's heap block: the subscription sits in every open subscriber's `Ext` box.
#[test]
fn a_subscription_stays_small() {
    assert_eq!(std::mem::size_of::<Subscription>(), 48);
}
