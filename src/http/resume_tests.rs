//! Unit tests of `parse_resuming`: the same answer as `parse` on every prefix of many requests
//! (valid, malformed, mutated) fed a byte at a time and in larger steps, and the work done for a
//! head that trickles in staying linear in its size.
#![allow(clippy::indexing_slicing)]

use super::*;
use crate::http::Reject;

const LIMITS: HttpLimits = HttpLimits {
    max_header_bytes: 1024,
    max_body_bytes: 256,
};

/// Feeds `buf` in steps of `step` bytes, checking each answer against `parse`; returns the last.
fn feed<'a>(buf: &'a [u8], limits: &HttpLimits, step: usize) -> Parsed<'a> {
    let mut scan = HeadScan::default();
    let mut n = 0;
    loop {
        n = (n + step).min(buf.len());
        let resumed = parse_resuming(&buf[..n], limits, &mut scan);
        let full = parse(&buf[..n], limits);
        assert_eq!(
            resumed,
            full,
            "prefix of {n} bytes of {:?}",
            String::from_utf8_lossy(buf)
        );
        if n == buf.len() || !matches!(full, Parsed::Partial { .. }) {
            return full;
        }
    }
}

fn same_as_parse(buf: &[u8]) {
    for step in [1, 2, 3, 7, 64] {
        feed(buf, &LIMITS, step);
    }
}

const CASES: &[&[u8]] = &[
    b"GET /sub?cname=a HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /sub HTTP/1.1\nHost: h\nX: y\n\n",
    b"\r\n\n\r\nGET /ping HTTP/1.0\r\n\r\n",
    b"\r\rGET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\rHost: a\r\r",
    b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    b"GET / HTTP/1.1\r\n: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\x7fb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: \xc3\xa9\t x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost:\r\nX:\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET  / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"get / HTTP/1.1\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\n\r\n",
    b"GET /\xff HTTP/1.1\r\n\r\n",
    b"POST /pub HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /pub HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    b"POST /pub HTTP/1.1\r\nContent-Length: 999\r\n\r\nx",
    b"POST /pub HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /pub HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-\xff: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: b\r\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\r\n",
];

#[test]
fn every_prefix_of_every_case_parses_as_parse_does() {
    for case in CASES {
        same_as_parse(case);
    }
}

#[test]
fn too_many_headers_and_oversized_heads_are_answered_as_parse_does() {
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let limits = HttpLimits {
        max_header_bytes: 4096,
        max_body_bytes: 0,
    };
    assert_eq!(
        feed(&many, &limits, 1),
        Parsed::Reject(Reject::HeaderTooLarge)
    );
    let mut long = b"GET / HTTP/1.1\r\nCookie: ".to_vec();
    long.resize(2000, b'x');
    assert_eq!(
        feed(&long, &LIMITS, 1),
        Parsed::Reject(Reject::HeaderTooLarge)
    );
    let mut target = b"GET /".to_vec();
    target.resize(2000, b'a');
    assert_eq!(
        feed(&target, &LIMITS, 1),
        Parsed::Reject(Reject::UriTooLong)
    );
}

#[test]
fn mutated_requests_parse_as_parse_does() {
    let base: &[u8] = b"\r\nPOST /pub?cname=a HTTP/1.1\r\nHost: h\r\nX-Long: abc def\r\n\
                        Content-Length: 2\r\n\r\nok";
    let bytes = [
        b'\r', b'\n', b' ', b'\t', b':', 0, 0x7f, 0xff, b'a', b'(', b'"', b'\x0b',
    ];
    for at in 0..base.len() {
        for &b in &bytes {
            let mut buf = base.to_vec();
            buf[at] = b;
            feed(&buf, &LIMITS, 1);
            buf.insert(at, b);
            feed(&buf, &LIMITS, 1);
        }
    }
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_examined_a_bounded_number_of_times() {
    // 64 KiB of head: many short lines and one long one, fed a byte per call.
    let limits = HttpLimits {
        max_header_bytes: 64 * 1024,
        max_body_bytes: 0,
    };
    let mut head = b"GET /sub?cname=a HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..MAX_HEADERS - 2 {
        head.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(100)).as_bytes());
    }
    head.extend_from_slice(b"Cookie: ");
    head.resize(64 * 1024 - 4, b'c');
    head.extend_from_slice(b"\r\n\r\n");
    let mut scan = HeadScan::default();
    for n in 1..head.len() {
        let parsed = parse_resuming(&head[..n], &limits, &mut scan);
        assert_eq!(
            parsed,
            Parsed::Partial {
                send_continue: false
            },
            "at {n}"
        );
        if n == head.len() - 2 {
            // The last header line is complete: the next call starts at the next byte.
            assert_eq!(scan.resume_at(), n);
        }
    }
    // Every byte was examined once by the scan, plus a full parse (and the rebuilt scan) at the
    // start, at the end of the request line and at the blank line's CR: a few times the head,
    // not the 2 GiB of parsing the head again on every read.
    assert!(
        scan.examined() <= 4 * head.len(),
        "{} bytes examined for a head of {}",
        scan.examined(),
        head.len()
    );
    let before = scan.examined();
    match parse_resuming(&head, &limits, &mut scan) {
        Parsed::Complete { used, .. } => assert_eq!(used, head.len()),
        other => panic!("{other:?}"),
    }
    assert_eq!(scan.resume_at(), 0, "reset for the next request");
    assert!(before > 0);
}

#[test]
fn the_scan_resumes_where_it_stopped() {
    let head = b"GET / HTTP/1.1\r\nHost: abc";
    let mut scan = HeadScan::default();
    assert!(matches!(
        parse_resuming(&head[..20], &LIMITS, &mut scan),
        Parsed::Partial { .. }
    ));
    assert_eq!(scan.resume_at(), 20);
    let examined = scan.examined();
    assert!(matches!(
        parse_resuming(head, &LIMITS, &mut scan),
        Parsed::Partial { .. }
    ));
    assert_eq!(scan.resume_at(), head.len());
    assert_eq!(
        scan.examined(),
        examined + head.len() - 20,
        "only the new bytes"
    );
}
