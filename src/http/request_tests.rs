//! Unit tests of the request parser, including every split point and a mutation robustness test.
#![allow(clippy::indexing_slicing)]

use super::*;

const LIMITS: HttpLimits = HttpLimits {
    max_header_bytes: 1024,
    max_body_bytes: 256,
};

fn complete(buf: &[u8]) -> (Request<'_>, usize) {
    match parse(buf, &LIMITS) {
        Parsed::Complete { req, used } => (req, used),
        other => panic!(
            "expected Complete for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn reject(buf: &[u8]) -> Reject {
    match parse(buf, &LIMITS) {
        Parsed::Reject(reject) => reject,
        other => panic!(
            "expected Reject for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

const PARTIAL: Parsed<'static> = Parsed::Partial {
    send_continue: false,
};

#[test]
fn simple_get() {
    let buf = b"GET /sub?cname=alice&seq=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let (req, used) = complete(buf);
    assert_eq!(used, buf.len());
    assert_eq!(req.method, Method::Get);
    assert_eq!(req.version, Version::Http11);
    assert_eq!(req.uri, b"/sub?cname=alice&seq=0");
    assert_eq!(&req.path[..], b"/sub");
    assert!(matches!(req.path, Cow::Borrowed(_)));
    assert_eq!(req.query, b"cname=alice&seq=0");
    assert!(req.body.is_empty());
    assert!(req.keep_alive);
    assert_eq!(req.head, &buf[..]);
    assert_eq!(req.header("host"), Some(&b"127.0.0.1"[..]));
}

#[test]
fn all_allowed_methods() {
    for (token, method) in [
        ("GET", Method::Get),
        ("POST", Method::Post),
        ("HEAD", Method::Head),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
    ] {
        let buf = format!("{token} / HTTP/1.1\r\n\r\n");
        assert_eq!(complete(buf.as_bytes()).0.method, method);
        assert_eq!(method.as_str(), token);
    }
}

#[test]
fn other_methods_are_not_implemented() {
    for token in [
        "TRACE", "PATCH", "CONNECT", "BREW", "get", "options", "M-SEARCH",
    ] {
        let buf = format!("{token} / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(reject(buf.as_bytes()), Reject::NotImplemented, "{token}");
    }
    // Known as soon as the request line is complete.
    assert_eq!(reject(b"PATCH * HTTP/1.1\r\n"), Reject::NotImplemented);
}

#[test]
fn malformed_request_lines_are_bad_requests() {
    for buf in [
        &b"hello\r\n\r\n"[..],
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 \r\n\r\n",
        b" GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.2\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
        b"GET / http/1.1\r\n\r\n",
        b"GET /a\x01b HTTP/1.1\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\r\n\r\n",
        b"BREW /pot HTCPCP/1.0\r\n\r\n",
    ] {
        assert_eq!(
            reject(buf),
            Reject::BadRequest,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn malformed_headers_are_bad_requests() {
    for buf in [
        &b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    ] {
        assert_eq!(
            reject(buf),
            Reject::BadRequest,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn bare_lf_line_ends() {
    let buf = b"GET /ping HTTP/1.0\nHost: a\nConnection: keep-alive\n\nrest";
    let (req, used) = complete(buf);
    assert_eq!(used, buf.len() - 4);
    assert_eq!(req.header("Host"), Some(&b"a"[..]));
    assert!(req.keep_alive);
    assert_eq!(req.head, &buf[..used]);
}

#[test]
fn leading_empty_lines_are_skipped() {
    let buf = b"\r\n\nGET / HTTP/1.1\r\n\r\n";
    let (req, used) = complete(buf);
    assert_eq!(used, buf.len());
    assert_eq!(req.head, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(parse(b"\r\n\r\n", &LIMITS), PARTIAL);
}

#[test]
fn keep_alive_rules() {
    let cases: &[(&str, bool)] = &[
        ("GET / HTTP/1.1\r\n\r\n", true),
        ("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (
            "GET / HTTP/1.0\r\nConnection: Keep-Alive, Upgrade\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            false,
        ),
        ("GET / HTTP/1.0\r\nConnection: keepalive\r\n\r\n", false),
    ];
    for &(text, want) in cases {
        assert_eq!(complete(text.as_bytes()).0.keep_alive, want, "{text}");
    }
}

#[test]
fn asking_for_close_is_kept_on_both_versions() {
    let cases: &[(&str, bool)] = &[
        ("GET / HTTP/1.1\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", true),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: Close\r\n\r\n", true),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false),
        (
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            true,
        ),
    ];
    for &(text, want) in cases {
        assert_eq!(complete(text.as_bytes()).0.asks_close, want, "{text}");
    }
}

#[test]
fn header_lookup_is_case_insensitive_first_match_trimmed() {
    let buf = b"GET / HTTP/1.1\r\nX-Forwarded-For:  1.2.3.4 \t\r\nx-forwarded-for: 5.6.7.8\r\nEmpty:\r\n\r\n";
    let (req, _) = complete(buf);
    assert_eq!(req.header("x-forwarded-for"), Some(&b"1.2.3.4"[..]));
    assert_eq!(req.header("X-FORWARDED-FOR"), Some(&b"1.2.3.4"[..]));
    assert_eq!(req.header("empty"), Some(&b""[..]));
    assert_eq!(req.header("host"), None);
    assert_eq!(req.headers().count(), 3);
}

#[test]
fn path_is_decoded_query_raw() {
    let (req, _) = complete(b"GET /%73ub+x?cname=a+b%20c HTTP/1.1\r\n\r\n");
    assert_eq!(&req.path[..], b"/sub+x");
    assert_eq!(req.query, b"cname=a+b%20c");
    let (req, _) = complete(b"GET /sub?a=1?b=2#frag HTTP/1.1\r\n\r\n");
    assert_eq!(req.query, b"a=1?b=2");
    assert_eq!(req.uri, b"/sub?a=1?b=2#frag");
    let (req, _) = complete(b"GET /sub#x?y HTTP/1.1\r\n\r\n");
    assert_eq!((&req.path[..], req.query), (&b"/sub"[..], &b""[..]));
    let (req, _) = complete(b"GET /sub? HTTP/1.1\r\n\r\n");
    assert_eq!((&req.path[..], req.query), (&b"/sub"[..], &b""[..]));
}

#[test]
fn absolute_form_targets_use_their_path() {
    let (req, _) = complete(b"GET http://example.com:8100/sub?cname=a HTTP/1.1\r\n\r\n");
    assert_eq!((&req.path[..], req.query), (&b"/sub"[..], &b"cname=a"[..]));
    let (req, _) = complete(b"GET HTTPS://h?x=1 HTTP/1.1\r\n\r\n");
    assert_eq!((&req.path[..], req.query), (&b""[..], &b"x=1"[..]));
}

#[test]
fn raw_non_ascii_target_is_accepted() {
    let buf = "GET /pub?content={\"a\":\"ü\"}|<> HTTP/1.1\r\n\r\n";
    let (req, _) = complete(buf.as_bytes());
    assert_eq!(req.query, "content={\"a\":\"ü\"}|<>".as_bytes());
    // Bytes that cannot be UTF-8 are a bad request line.
    assert_eq!(
        parse(b"GET /\xff\xfe HTTP/1.1\r\n\r\n", &LIMITS),
        Parsed::Reject(Reject::BadRequest)
    );
}

#[test]
fn stricter_framing_where_the_rfc_says_so() {
    // Two Host headers (RFC 9112 section 3.2).
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &LIMITS),
        Parsed::Reject(Reject::BadRequest)
    );
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &LIMITS),
        Parsed::Complete { .. }
    ));
    // Bare CR line ends are refused at once instead of waiting for a line end.
    for bare in [
        &b"GET /ping HTTP/1.1\rHost: a\r\r"[..],
        b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
    ] {
        assert_eq!(
            parse(bare, &LIMITS),
            Parsed::Reject(Reject::BadRequest),
            "{bare:?}"
        );
    }
    // A CR at the very end may still get its LF; CRs in a body are data.
    assert_eq!(parse(b"GET / HTTP/1.1\r", &LIMITS), PARTIAL);
    assert!(matches!(
        parse(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na\rb", &LIMITS),
        Parsed::Complete { .. }
    ));
    assert!(matches!(
        parse(b"POST / HTTP/1.1\nContent-Length: 3\n\na\rb", &LIMITS),
        Parsed::Complete { .. }
    ));
}

#[test]
fn content_length_body_is_borrowed() {
    let buf = b"POST /pub HTTP/1.1\r\nContent-Length: 28\r\n\r\ncname=henry&content=hi+thereGET";
    let (req, used) = complete(buf);
    assert_eq!(&req.body[..], b"cname=henry&content=hi+there");
    assert!(matches!(req.body, Cow::Borrowed(_)));
    assert_eq!(used, buf.len() - 3);
    let (req, _) =
        complete(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(&req.body[..], b"hello");
    let (req, _) = complete(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(req.body.is_empty());
}

#[test]
fn bad_framing_headers() {
    let cases: &[(&[u8], Reject)] = &[
        (
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            Reject::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n",
            Reject::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            Reject::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            Reject::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            Reject::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            Reject::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            Reject::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            Reject::NotImplemented,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Reject::NotImplemented,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reject::NotImplemented,
        ),
    ];
    for &(buf, want) in cases {
        assert_eq!(reject(buf), want, "{:?}", String::from_utf8_lossy(buf));
    }
}

#[test]
fn chunked_body_is_decoded() {
    let buf = b"POST /pub HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\ncname\r\n3;x=y\r\n=ab\r\n0\r\n\r\nNEXT";
    let (req, used) = complete(buf);
    assert_eq!(&req.body[..], b"cname=ab");
    assert_eq!(used, buf.len() - 4);
    assert_eq!(
        reject(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        Reject::BadRequest
    );
}

#[test]
fn header_limit() {
    let limits = HttpLimits {
        max_header_bytes: 40,
        max_body_bytes: 10,
    };
    let exact = b"GET /1234567890123456 HTTP/1.1\r\nA: b\r\n\r\n";
    assert_eq!(exact.len(), 40);
    assert!(matches!(
        parse(exact, &limits),
        Parsed::Complete { used: 40, .. }
    ));
    let with_next = [&exact[..], b"GET / HTTP/1.1\r\n"].concat();
    assert!(matches!(
        parse(&with_next, &limits),
        Parsed::Complete { used: 40, .. }
    ));
    let longer = b"GET /12345678901234567 HTTP/1.1\r\nA: b\r\n\r\n";
    assert_eq!(
        parse(longer, &limits),
        Parsed::Reject(Reject::HeaderTooLarge)
    );
    // Still partial, but already over the limit: rejected without waiting for the end; a
    // request line that alone passes the limit is 414.
    assert_eq!(
        parse(&[b'G'; 41], &limits),
        Parsed::Reject(Reject::UriTooLong)
    );
    assert_eq!(
        parse(
            b"GET /12345678901234567890 HTTP/1.1\r\nA: bbbbbbbb",
            &limits
        ),
        Parsed::Reject(Reject::HeaderTooLarge)
    );
    assert_eq!(parse(&[b'G'; 40], &limits), PARTIAL);
    assert_eq!(
        parse(&[b'\n'; 41], &limits),
        Parsed::Reject(Reject::HeaderTooLarge)
    );
}

#[test]
fn too_many_headers_is_header_too_large() {
    let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        buf.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    let mut fits = buf.clone();
    fits.extend_from_slice(b"\r\n");
    let limits = HttpLimits {
        max_header_bytes: 4096,
        max_body_bytes: 0,
    };
    assert!(matches!(parse(&fits, &limits), Parsed::Complete { .. }));
    buf.extend_from_slice(b"One-More: v\r\n\r\n");
    assert_eq!(parse(&buf, &limits), Parsed::Reject(Reject::HeaderTooLarge));
}

#[test]
fn body_limit_is_enforced_before_the_body_arrives() {
    let over = b"POST / HTTP/1.1\r\nContent-Length: 257\r\n\r\n";
    assert_eq!(reject(over), Reject::BodyTooLarge);
    let huge = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
    assert_eq!(reject(huge), Reject::BodyTooLarge);
    let at_limit = b"POST / HTTP/1.1\r\nContent-Length: 256\r\n\r\n";
    assert_eq!(parse(at_limit, &LIMITS), PARTIAL);
    let chunk_over = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n101\r\n";
    assert_eq!(reject(chunk_over), Reject::BodyTooLarge);
}

#[test]
fn expect_continue() {
    let head = b"POST /pub HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
    assert_eq!(
        parse(head, &LIMITS),
        Parsed::Partial {
            send_continue: true
        }
    );
    let some_body = [&head[..], b"a"].concat();
    assert_eq!(parse(&some_body, &LIMITS), PARTIAL);
    let whole = [&head[..], b"abc"].concat();
    assert_eq!(&complete(&whole).0.body[..], b"abc");
    // Not for HTTP/1.0, not without a body, not before the head is complete.
    let old = b"POST /pub HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    assert_eq!(parse(old, &LIMITS), PARTIAL);
    let empty = b"POST /pub HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n";
    assert!(matches!(parse(empty, &LIMITS), Parsed::Complete { .. }));
    assert_eq!(parse(&head[..head.len() - 1], &LIMITS), PARTIAL);
    let chunked = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        parse(chunked, &LIMITS),
        Parsed::Partial {
            send_continue: true
        }
    );
}

#[test]
fn pipelined_requests_parse_in_order() {
    let buf = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.0\n\n";
    let mut at = 0;
    let mut paths = Vec::new();
    while at < buf.len() {
        let (req, used) = complete(&buf[at..]);
        assert!(used > 0);
        paths.push((req.path.into_owned(), req.body.into_owned()));
        at += used;
    }
    assert_eq!(at, buf.len());
    let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"/a".to_vec(), vec![]),
        (b"/b".to_vec(), b"hi".to_vec()),
        (b"/c".to_vec(), vec![]),
    ];
    assert_eq!(paths, want);
}

/// Requests that must parse; each is checked at every split point.
const SPLIT_CASES: &[&[u8]] = &[
    b"GET /sub?cname=alice&seq=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"\r\nGET /ping HTTP/1.0\nConnection: keep-alive\n\n",
    b"POST /pub HTTP/1.1\r\nContent-Type: x\r\nContent-Length: 28\r\n\r\ncname=henry&content=hi+there",
    b"POST /pub HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ncname\r\n3;e\r\n=ab\r\n0\r\nT: 1\r\n\r\n",
    b"POST /pub HTTP/1.1\nTransfer-Encoding: chunked\n\n2\nhi\n0\n\n",
    b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    b"GET / HTTP/1.1\r\n\r\n",
];

#[test]
fn every_split_point_is_partial_until_complete() {
    for &full in SPLIT_CASES {
        let want = complete(full);
        assert_eq!(want.1, full.len());
        for cut in 0..full.len() {
            match parse(&full[..cut], &LIMITS) {
                Parsed::Partial { send_continue } => {
                    // Only exactly at the end of an expecting head.
                    assert!(
                        !send_continue || full[..cut].ends_with(b"\r\n\r\n"),
                        "cut {cut}"
                    );
                }
                other => panic!(
                    "cut {cut} of {:?}: {other:?}",
                    String::from_utf8_lossy(full)
                ),
            }
        }
        // Followed by pipelined bytes, the same request comes out.
        let more = [full, b"GET /next HTTP/1.1\r\n"].concat();
        assert_eq!(complete(&more), want);
    }
}

#[test]
fn every_split_point_of_a_bad_request_is_partial_or_the_same_reject() {
    let cases: &[(&[u8], Reject)] = &[
        (b"hello\r\n\r\n", Reject::BadRequest),
        (
            b"PATCH * HTTP/1.1\r\nHost: x\r\n\r\n",
            Reject::NotImplemented,
        ),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", Reject::BadRequest),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 999\r\n\r\n",
            Reject::BodyTooLarge,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            Reject::BadRequest,
        ),
    ];
    for &(full, want) in cases {
        assert_eq!(reject(full), want);
        for cut in 0..full.len() {
            let got = parse(&full[..cut], &LIMITS);
            assert!(
                got == PARTIAL || got == Parsed::Reject(want),
                "cut {cut}: {got:?}"
            );
        }
    }
}

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b"\r\n :;%?#=&+-0123456789abcdefABCDEF\x00\x7f\xff\tGETPOSThttp/1.0";

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        let byte = if rng.below(2) == 0 {
            INTERESTING[rng.below(INTERESTING.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(6) {
            0 if at < input.len() => input[at] = byte,
            1 => input.insert(at, byte),
            2 if at < input.len() => {
                input.remove(at);
            }
            3 => input.truncate(at),
            4 => {
                let end = (at + rng.below(16)).min(input.len());
                let copy = input[at..end].to_vec();
                input.splice(at..at, copy);
            }
            _ => {
                let chunk = SPLIT_CASES[rng.below(SPLIT_CASES.len())];
                let from = rng.below(chunk.len());
                input.splice(at..at, chunk[from..].iter().copied().take(24));
            }
        }
    }
}

#[test]
fn mutated_requests_never_panic_and_stay_in_bounds() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut completes = 0;
    for round in 0..4000 {
        let mut input = SPLIT_CASES[round % SPLIT_CASES.len()].to_vec();
        mutate(&mut rng, &mut input);
        let limits = HttpLimits {
            max_header_bytes: 16 + rng.below(200),
            max_body_bytes: rng.below(64),
        };
        match parse(&input, &limits) {
            Parsed::Complete { req, used } => {
                completes += 1;
                assert!(used > 0 && used <= input.len(), "round {round}");
                assert!(req.head.len() <= limits.max_header_bytes);
                assert!(req.body.len() <= limits.max_body_bytes);
                let _ = req.header("content-length");
                assert!(req.headers().count() <= MAX_HEADERS);
            }
            Parsed::Partial { .. } | Parsed::Reject(_) => {}
        }
        // Random bytes, unrelated to HTTP.
        let noise: Vec<u8> = (0..rng.below(96)).map(|_| rng.next() as u8).collect();
        if let Parsed::Complete { used, .. } = parse(&noise, &limits) {
            assert!(used <= noise.len());
        }
    }
    assert!(
        completes > 100,
        "the mutations should leave many requests valid: {completes}"
    );
}

#[test]
fn the_first_origin_header_is_kept() {
    let (req, _) =
        complete(b"GET / HTTP/1.1\r\nOrigin:  https://a.example \r\norigin: https://b\r\n\r\n");
    assert_eq!(req.origin, Some(&b"https://a.example"[..]));
    assert_eq!(complete(b"GET / HTTP/1.1\r\n\r\n").0.origin, None);
    let (req, _) =
        complete(b"OPTIONS /sse HTTP/1.1\r\nAccess-Control-Request-Headers: last-event-id\r\n\r\n");
    assert_eq!(req.method, Method::Options);
    assert_eq!(
        req.header("access-control-request-headers"),
        Some(&b"last-event-id"[..])
    );
}

/// `has_bare_cr` (memchr) answers as the byte-by-byte rule it states does, for every buffer of
/// up to 8 bytes made of CR, LF and one other byte.
#[test]
fn bare_cr_search_matches_the_byte_by_byte_rule() {
    fn by_bytes(head: &[u8]) -> bool {
        let end = head
            .windows(3)
            .position(|w| matches!(w, [b'\n', b'\n', _] | [b'\n', b'\r', b'\n']))
            .map_or(head.len(), |at| at + 1);
        head[..end]
            .windows(2)
            .any(|w| matches!(w, [b'\r', next] if *next != b'\n'))
    }
    let alphabet = [b'\r', b'\n', b'a'];
    let mut checked = 0;
    for len in 0..=8u32 {
        for mut code in 0..3usize.pow(len) {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    let b = alphabet[code % 3];
                    code /= 3;
                    b
                })
                .collect();
            assert_eq!(has_bare_cr(&buf), by_bytes(&buf), "{buf:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, (0..=8).map(|n| 3usize.pow(n)).sum::<usize>());
}
