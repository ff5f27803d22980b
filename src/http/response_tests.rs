//! Unit tests of the response writers, byte-exact against the reference captures.
#![allow(clippy::indexing_slicing)]

use super::*;

const DATE: &[u8] = b"Wed, 25 Nov 2026 18:25:19 GMT";

fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    write(&mut out);
    String::from_utf8(out).unwrap()
}

fn page(version: Version, code: u16, uri: &[u8]) -> String {
    written(|out| error_page(out, version, code, uri, DATE))
}

/// Splits a response into head and body and returns the body after checking Content-Length.
fn body_checked(response: &str) -> &str {
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let declared = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap();
    assert_eq!(declared.parse::<usize>().unwrap(), body.len(), "{response}");
    body
}

#[test]
fn bad_request_page_matches_reference() {
    assert_eq!(
        page(Version::Http11, 400, b"hello"),
        "HTTP/1.1 400 Bad Request\r\n\
         Content-Type: text/html\r\n\
         Connection: close\r\n\
         Date: Wed, 25 Nov 2026 18:25:19 GMT\r\n\
         Content-Length: 94\r\n\
         \r\n\
         <HTML><HEAD>\n<TITLE>400 Bad Request</TITLE>\n</HEAD><BODY>\n<H1>Bad Request</H1>\n</BODY></HTML>\n"
    );
}

#[test]
fn not_implemented_page_matches_reference() {
    let response = page(Version::Http11, 501, b"*");
    assert!(response.starts_with("HTTP/1.1 501 Not Implemented\r\n"));
    assert!(response.contains("\r\nContent-Length: 102\r\n"));
    assert_eq!(
        body_checked(&response),
        "<HTML><HEAD>\n<TITLE>501 Not Implemented</TITLE>\n</HEAD><BODY>\n<H1>Not Implemented</H1>\n</BODY></HTML>\n"
    );
}

#[test]
fn not_found_page_matches_reference_and_escapes_the_uri() {
    assert_eq!(
        page(Version::Http11, 404, b"/foo?a=1&b=<2>"),
        "HTTP/1.1 404 Not Found\r\n\
         Content-Type: text/html\r\n\
         Connection: close\r\n\
         Date: Wed, 25 Nov 2026 18:25:19 GMT\r\n\
         Content-Length: 165\r\n\
         \r\n\
         <html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>The requested URL \
         /foo?a=1&amp;b=&lt;2&gt; was not found on this server.</p></body></html>\n"
    );
    let quoted = page(Version::Http11, 404, b"/x\"'&");
    assert!(body_checked(&quoted).contains("URL /x&quot;&#039;&amp; was"));
}

#[test]
fn other_error_pages_share_the_upper_case_shape() {
    for (code, reason) in [
        (405, "Method Not Allowed"),
        (408, "Request Timeout"),
        (413, "Payload Too Large"),
        (431, "Request Header Fields Too Large"),
        (503, "Service Unavailable"),
    ] {
        let response = page(Version::Http11, code, b"/");
        assert!(
            response.starts_with(&format!("HTTP/1.1 {code} {reason}\r\n")),
            "{response}"
        );
        assert_eq!(
            body_checked(&response),
            format!(
                "<HTML><HEAD>\n<TITLE>{code} {reason}</TITLE>\n</HEAD><BODY>\n<H1>{reason}</H1>\n</BODY></HTML>\n"
            )
        );
    }
    // Odd codes still get a correct Content-Length.
    body_checked(&page(Version::Http11, 7, b"/"));
    body_checked(&page(Version::Http11, 65535, b"/"));
}

#[test]
fn http10_error_page_has_no_date_or_length() {
    assert_eq!(
        page(Version::Http10, 400, b"/"),
        "HTTP/1.0 400 Bad Request\r\n\
         Content-Type: text/html\r\n\
         Connection: close\r\n\
         \r\n\
         <HTML><HEAD>\n<TITLE>400 Bad Request</TITLE>\n</HEAD><BODY>\n<H1>Bad Request</H1>\n</BODY></HTML>\n"
    );
}

#[test]
fn head_writers() {
    let head = written(|out| {
        status_line(out, Version::Http10, 200, "OK");
        header(out, "Content-Type", b"text/html; charset=ISO-8859-1");
        content_length(out, 44);
        end_head(out);
    });
    assert_eq!(
        head,
        "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\nContent-Length: 44\r\n\r\n"
    );
}

#[test]
fn header_cannot_be_split_by_cr_or_lf() {
    let line = written(|out| header(out, "X-Cb", b"a\r\nSet-Cookie: x\n"));
    assert_eq!(line, "X-Cb: a  Set-Cookie: x \r\n");
    let status = written(|out| status_line(out, Version::Http11, 200, "O\r\nK"));
    assert_eq!(status, "HTTP/1.1 200 O  K\r\n");
}

#[test]
fn chunk_framing_matches_reference() {
    assert_eq!(written(|out| chunk_header(out, 0x3f)), "3f\r\n");
    assert_eq!(written(|out| chunk_header(out, 0x1cd)), "1cd\r\n");
    assert_eq!(written(|out| chunk_header(out, 0)), "0\r\n");
    assert_eq!(written(|out| chunk_header(out, 10)), "a\r\n");
    assert_eq!(
        written(|out| chunk_header(out, usize::MAX)),
        format!("{:x}\r\n", usize::MAX)
    );
    assert_eq!(written(|out| chunk(out, b"hello\n")), "6\r\nhello\n\r\n");
    assert_eq!(written(|out| chunk(out, b"")), "");
    assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
    assert_eq!(CONTINUE, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn integers_match_std_formatting() {
    let mut values: Vec<i64> = vec![
        0,
        1,
        9,
        10,
        99,
        100,
        101,
        999,
        1000,
        65535,
        i64::MAX,
        i64::MIN,
    ];
    let mut x: i64 = 7;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        values.push(x);
        values.push(x >> 40);
    }
    for n in values {
        assert_eq!(written(|out| write_i64(out, n)), n.to_string());
        let u = n.unsigned_abs() as usize;
        assert_eq!(written(|out| write_usize(out, u)), u.to_string());
    }
    assert_eq!(
        written(|out| write_usize(out, usize::MAX)),
        usize::MAX.to_string()
    );
}

#[test]
fn reason_phrases_are_standard() {
    assert_eq!(reason_phrase(413), "Payload Too Large");
    assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
    assert_eq!(reason_phrase(599), "Error");
}
