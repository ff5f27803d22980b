//! Unit tests of the handshake: the RFC 6455 example, every refusal and its status, token lists.
#![allow(clippy::indexing_slicing)]

use super::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn good() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Origin", "http://example.com"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ("Sec-WebSocket-Version", "13"),
    ]
}

fn run(headers: &[(&str, &str)]) -> Result<Accept, HandshakeError> {
    check(
        true,
        true,
        headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    )
}

fn with(name: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut headers: Vec<_> = good()
        .into_iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .collect();
    if let Some(value) = value {
        let name = good()
            .into_iter()
            .map(|(n, _)| n)
            .find(|n| n.eq_ignore_ascii_case(name))
            .unwrap();
        headers.push((name, value));
    }
    headers
}

#[test]
fn rfc_example_key_gives_the_rfc_accept_value() {
    let accept = run(&good()).unwrap();
    assert_eq!(accept.value(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn the_101_head_is_exact_and_echoes_no_protocol_or_extension() {
    let accept = run(&good()).unwrap();
    let mut out = b"before".to_vec();
    write_101(&accept, &mut out);
    assert_eq!(
        out,
        b"beforeHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn method_and_version_are_checked_first() {
    let headers = good();
    let iter = || headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    let not_get = check(false, true, iter()).unwrap_err();
    assert_eq!(not_get, HandshakeError::NotGet);
    assert_eq!(not_get.status(), 405);
    assert_eq!(not_get.header(), Some(("Allow", &b"GET"[..])));
    assert_eq!(check(false, false, iter()), Err(HandshakeError::NotGet));
    let old = check(true, false, iter()).unwrap_err();
    assert_eq!(old, HandshakeError::NotHttp11);
    assert_eq!(old.status(), 400);
    assert_eq!(old.header(), None);
}

#[test]
fn names_and_tokens_are_case_insensitive_and_lists_are_searched() {
    let headers = [
        ("upgrade", "h2c"),
        ("UPGRADE", " foo/1 ,\tWebSocket "),
        ("connection", "keep-alive"),
        ("CONNECTION", "keep-alive,  UPGRADE"),
        ("sec-websocket-key", " dGhlIHNhbXBsZSBub25jZQ== "),
        ("SEC-WEBSOCKET-VERSION", " 13\t"),
    ];
    assert_eq!(
        run(&headers).unwrap().value(),
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn upgrade_must_carry_the_websocket_token() {
    for value in [
        None,
        Some("h2c"),
        Some("websocketx"),
        Some("web socket"),
        Some(""),
    ] {
        let err = run(&with("Upgrade", value)).unwrap_err();
        assert_eq!(err, HandshakeError::NoUpgrade, "{value:?}");
        assert_eq!(err.status(), 400);
        assert!(err.reason().contains("Upgrade"));
    }
}

#[test]
fn connection_must_carry_the_upgrade_token() {
    for value in [
        None,
        Some("keep-alive"),
        Some("upgrades"),
        Some("keep-alive upgrade"),
    ] {
        let err = run(&with("Connection", value)).unwrap_err();
        assert_eq!(err, HandshakeError::NoConnectionUpgrade, "{value:?}");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn any_version_but_13_is_a_426_naming_13() {
    for value in [
        None,
        Some("8"),
        Some("12"),
        Some("13, 8"),
        Some(""),
        Some("013"),
    ] {
        let err = run(&with("Sec-WebSocket-Version", value)).unwrap_err();
        assert_eq!(err, HandshakeError::UnsupportedVersion, "{value:?}");
        assert_eq!(err.status(), 426);
        assert_eq!(err.header(), Some(("Sec-WebSocket-Version", &b"13"[..])));
        assert!(err.reason().contains("13"));
    }
    let mut twice = good();
    twice.push(("Sec-WebSocket-Version", "13"));
    assert_eq!(run(&twice), Err(HandshakeError::UnsupportedVersion));
}

#[test]
fn the_key_must_be_present_once_and_base64_of_16_bytes() {
    let missing = run(&with("Sec-WebSocket-Key", None)).unwrap_err();
    assert_eq!(missing, HandshakeError::NoKey);
    assert_eq!(missing.status(), 400);
    let mut twice = good();
    twice.push(("Sec-WebSocket-Key", KEY));
    assert_eq!(run(&twice), Err(HandshakeError::DuplicateKey));
    for bad in [
        "",
        "dGhlIHNhbXBsZSBub25jZQ",       // no padding
        "dGhlIHNhbXBsZSBub25jZQ=",      // short padding
        "dGhlIHNhbXBsZSBub25jZQ===",    // too long
        "dGhlIHNhbXBsZSBub25jZR==",     // non-zero trailing bits
        "dGhlIHNhbXBsZSBub25j!!==",     // not base64
        "dGhlIHNhbXBsZSBub25jZQ+A",     // 18 bytes
        "dGhlIHNhbXBsZSBub25jZXg=",     // 17 bytes
        "dGhlIHNhbXBs ZSBub25jZQ==",    // inner blank
        "dGhlIHNhbXBsZSBub25jZQ==dGhl", // trailing garbage
    ] {
        let headers = with("Sec-WebSocket-Key", Some(bad));
        let err = run(&headers).unwrap_err();
        assert_eq!(err, HandshakeError::BadKey, "{bad:?}");
        assert_eq!(err.status(), 400);
        assert!(err.reason().contains("16 bytes"));
    }
    // Any 16 bytes will do.
    let ok = run(&with("Sec-WebSocket-Key", Some("AAAAAAAAAAAAAAAAAAAAAA=="))).unwrap();
    assert_eq!(ok.value().len(), 28);
}

#[test]
fn the_version_is_judged_before_the_key() {
    let mut headers = with("Sec-WebSocket-Version", Some("8"));
    headers.retain(|(n, _)| *n != "Sec-WebSocket-Key");
    assert_eq!(run(&headers), Err(HandshakeError::UnsupportedVersion));
}

#[test]
fn arbitrary_header_bytes_never_panic() {
    let mut seed = 0x1234_5678_u32;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let names: [&[u8]; 4] = [
        b"Upgrade",
        b"Connection",
        b"Sec-WebSocket-Key",
        b"Sec-WebSocket-Version",
    ];
    for _ in 0..2000 {
        let values: Vec<Vec<u8>> = (0..4)
            .map(|_| (0..rand() % 30).map(|_| rand() as u8).collect())
            .collect();
        let headers = names.iter().zip(&values).map(|(n, v)| (*n, v.as_slice()));
        let _ = check(true, true, headers);
    }
}
