//! Request parsing (`rcomet::http::parse`): a typical `/push` GET head, a `/sub` long-poll with a
//! JSONP callback and browser-like headers, and a pipelined buffer of 32 `/push` requests parsed
//! one after another, as a worker does with one read; and a 16 KiB head arriving a byte per read,
//! parsed again from its start on every read (`parse`) against resumed (`parse_resuming`): the
//! first grows with the square of the head, the second with the head.
//!
//! The limits are the server's built-in ones (`config::Limits::default()`).

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use rcomet::config::Limits;
use rcomet::http::{parse, parse_resuming, HeadScan, HttpLimits, Parsed};

fn main() {
    divan::main();
}

/// A publisher's push: the request line carries the channel and escaped content.
const PUSH: &[u8] = b"GET /push?cname=channel-42&content=%7B%22user%22%3A%22alice%22%2C%22text%22%3A%22hello%20world%22%7D HTTP/1.1\r\n\
Host: 127.0.0.1:8000\r\n\
User-Agent: rcomet-loadgen\r\n\
Accept: */*\r\n\
\r\n";

/// A browser's long-poll subscription with a JSONP callback.
const SUB: &[u8] = b"GET /sub?cname=channel-42&seq=17&noop=3&cb=icomet_cb_0&token=9f86d081884c7d659a2feaa0c55ad015&_=1732570000123 HTTP/1.1\r\n\
Host: comet.example.com:8100\r\n\
Connection: keep-alive\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Accept: */*\r\n\
Referer: https://www.example.com/chat/room/42\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Cookie: session=4b1f0c6e2d8a9e7f; theme=dark; _ga=GA1.1.123456789.1732500000\r\n\
\r\n";

fn limits() -> HttpLimits {
    let built_in = Limits::default();
    HttpLimits {
        max_header_bytes: built_in.max_header_bytes,
        max_body_bytes: built_in.max_body_bytes,
    }
}

/// `used` of a complete parse; panics on anything else (the inputs are valid).
fn used(parsed: Parsed<'_>) -> usize {
    match parsed {
        Parsed::Complete { used, .. } => used,
        other => panic!("expected a complete request, got {other:?}"),
    }
}

#[divan::bench]
fn push_get(bencher: Bencher) {
    let limits = limits();
    assert_eq!(used(parse(PUSH, &limits)), PUSH.len());
    bencher
        .counter(BytesCount::of_slice(PUSH))
        .bench(|| used(parse(black_box(PUSH), &limits)));
}

#[divan::bench]
fn sub_long_poll_jsonp(bencher: Bencher) {
    let limits = limits();
    assert_eq!(used(parse(SUB, &limits)), SUB.len());
    bencher
        .counter(BytesCount::of_slice(SUB))
        .bench(|| used(parse(black_box(SUB), &limits)));
}

#[divan::bench]
fn pipelined_32_push(bencher: Bencher) {
    let limits = limits();
    let buf: Vec<u8> = PUSH.repeat(32);
    let parse_all = |buf: &[u8]| {
        let mut at = 0;
        let mut requests = 0;
        while at < buf.len() {
            at += used(parse(&buf[at..], &limits));
            requests += 1;
        }
        requests
    };
    assert_eq!(parse_all(&buf), 32);
    bencher
        .counter(ItemsCount::new(32usize))
        .bench(|| parse_all(black_box(&buf)));
}

/// A 16 KiB head: a request line, 32 header lines of 100 bytes and one long cookie.
fn big_head() -> Vec<u8> {
    let mut head = b"GET /sub?cname=a HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..32 {
        head.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(100)).as_bytes());
    }
    head.extend_from_slice(b"Cookie: ");
    head.resize(16 * 1024 - 4, b'c');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

#[divan::bench(sample_count = 20)]
fn head_a_byte_per_read_parsed_again(bencher: Bencher) {
    let limits = limits();
    let head = big_head();
    bencher.counter(BytesCount::of_slice(&head)).bench(|| {
        (1..=head.len())
            .filter(|&n| {
                matches!(
                    parse(black_box(&head[..n]), &limits),
                    Parsed::Complete { .. }
                )
            })
            .count()
    });
}

#[divan::bench(sample_count = 20)]
fn head_a_byte_per_read_resumed(bencher: Bencher) {
    let limits = limits();
    let head = big_head();
    bencher.counter(BytesCount::of_slice(&head)).bench(|| {
        let mut scan = HeadScan::default();
        (1..=head.len())
            .filter(|&n| {
                let parsed = parse_resuming(black_box(&head[..n]), &limits, &mut scan);
                matches!(parsed, Parsed::Complete { .. })
            })
            .count()
    });
}
