//! Stateless subscriber tokens end to end (`auth: token` with `front.auth_secret`): an
//! application server mints `<expiry>.<hex HMAC-SHA256(secret, cname|expiry)>` without `/sign`;
//! good ones subscribe (creating the channel), expired, forged, other-channel and malformed ones
//! get iComet's 401 reply, byte for byte the reply to a bad `/sign` token; `/sign` tokens keep
//! working beside them. On a WebSocket (`/ws?token=` and the `sub` command) a good one
//! subscribes and a bad one gets the 401 object (then close 1008 on `/ws`).
//!
//! Depends on tests/support, and on the hmac and sha2 crates to mint tokens independently of the
//! server's code.
mod support;

use hmac::{KeyInit, Mac};
use std::time::{SystemTime, UNIX_EPOCH};
use support::front::*;
use support::*;

const SECRET: &str = "test-secret-0123456789abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What an application server computes: `<expiry>.<hex HMAC-SHA256(secret, cname|expiry)>`.
fn mint(secret: &str, cname: &str, expiry: u64) -> String {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{cname}|{expiry}").as_bytes());
    let mac: String = m
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{expiry}.{mac}")
}

fn server(engine: &'static str) -> Server {
    Server::start(
        Opts::new(engine)
            .arg("--auth")
            .arg("token")
            .arg("--auth-secret")
            .arg(SECRET),
    )
}

/// The whole reply to one HTTP/1.1 request, read until the terminating chunk, Date normalised.
fn whole_reply(server: &Server, path: &str) -> String {
    let mut c = Conn::open(server.front);
    c.get(path);
    let (_, head) = c.read_head();
    let mut body = String::new();
    while let Some(chunk) = c.read_chunk() {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    format!("{}\r\n\r\n{body}", normalize_date(&head))
}

engine_tests!(a_minted_token_subscribes_without_sign);
fn a_minted_token_subscribes_without_sign(engine: &'static str) {
    let server = server(engine);
    // Several channels, so that some live on the other worker.
    for n in 0..6 {
        let cname = format!("m{n}");
        let token = mint(SECRET, &cname, now() + 60);
        assert_eq!(
            admin_ok(&server, &format!("/check?cname={cname}")).text(),
            "{}\n"
        );
        let mut c = subscribe(
            server.front,
            &format!("/stream?cname={cname}&token={token}"),
        );
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("next_seq", &cname, 1, ""))),
        );
        admin_ok(&server, &format!("/push?cname={cname}&content=hi"));
        expect(
            &mut c,
            &chunk(&format!("{}\n", msg("data", &cname, 1, "hi"))),
        );
        // Long-poll and SSE with the same token.
        let mut l = subscribe(
            server.front,
            &format!("/sub?cname={cname}&seq=1&token={token}"),
        );
        expect(
            &mut l,
            &chunk(&format!("[{}]\n", msg("data", &cname, 1, "hi"))),
        );
        expect(&mut l, END);
        let mut e = subscribe(server.front, &format!("/sse?cname={cname}&token={token}"));
        expect(
            &mut e,
            &chunk(&format!("data: {}\n\n", msg("next_seq", &cname, 2, ""))),
        );
    }
}

engine_tests!(expired_forged_misdirected_and_malformed_tokens_get_the_sign_token_401);
fn expired_forged_misdirected_and_malformed_tokens_get_the_sign_token_401(engine: &'static str) {
    let server = server(engine);
    let t = now();
    // The reference: a bad /sign token on an unknown channel, then on a signed one.
    let reference = whole_reply(
        &server,
        "/sub?cname=vic&cb=cb&token=105c26e52c8e5f940e6262ff619ae11f",
    );
    assert!(reference.contains(
        "cb({\"type\":\"401\",\"cname\":\"vic\",\"seq\":0,\"content\":\"Token error\"});\n"
    ));
    let good = mint(SECRET, "vic", t + 60);
    let mac = good.split_once('.').unwrap().1.to_string();
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let cases = [
        ("expired", mint(SECRET, "vic", t - 5)),
        (
            "other secret",
            mint("another-secret-0123456789", "vic", t + 60),
        ),
        ("other channel", mint(SECRET, "victor", t + 60)),
        ("later expiry, same mac", format!("{}.{mac}", t + 3600)),
        ("flipped mac digit", String::from_utf8(flipped).unwrap()),
        ("no expiry", format!(".{mac}")),
        ("short mac", format!("{}.{}", t + 60, &mac[2..])),
        ("non-hex mac", format!("{}.{}zz", t + 60, &mac[2..])),
        ("huge expiry", format!("99999999999999999999.{mac}")),
        ("dot only", ".".to_string()),
    ];
    for (what, token) in &cases {
        let got = whole_reply(&server, &format!("/sub?cname=vic&cb=cb&token={token}"));
        assert_eq!(got, reference, "{what}: {token}");
    }
    // None of them created the channel.
    assert_eq!(admin_ok(&server, "/check?cname=vic").text(), "{}\n");
    // On an existing channel, the same 401 for each; the good one still works there.
    admin_ok(&server, "/sign?cname=vic");
    let reference = whole_reply(
        &server,
        "/sub?cname=vic&cb=cb&token=00000000000000000000000000000000",
    );
    for (what, token) in &cases {
        let got = whole_reply(&server, &format!("/sub?cname=vic&cb=cb&token={token}"));
        assert_eq!(got, reference, "{what} on a signed channel");
    }
    let mut c = subscribe(server.front, &format!("/stream?cname=vic&token={good}"));
    expect(
        &mut c,
        &chunk(&format!("{}\n", msg("next_seq", "vic", 1, ""))),
    );
    // Over-long tokens are a 400 before anything else.
    let long = "1".repeat(129);
    let r = get(server.front, &format!("/sub?cname=vic&token={long}"));
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("token longer than 128 bytes"),
        "{}",
        r.text()
    );
}

/// The `next_seq` marker a fresh WebSocket subscription starts with (its epoch not checked).
fn ws_next_seq(c: &mut Conn, cname: &str) {
    let text = c.read_text();
    let prefix = format!(
        "{{\"type\":\"next_seq\",\"cname\":\"{cname}\",\"seq\":1,\"content\":\"\",\"epoch\":"
    );
    assert!(text.starts_with(&prefix), "not a next_seq marker: {text}");
}

/// A token whose last MAC digit is changed.
fn forged(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

engine_tests!(stateless_tokens_on_websockets);
/// `/ws?token=` and the `sub` command's `"token"` take minted tokens like every transport: a
/// good one subscribes (channels on both workers), an expired or forged one on `/ws` gets the
/// 401 object and close 1008, a forged one in `sub` gets the 401 object and the socket stays.
fn stateless_tokens_on_websockets(engine: &'static str) {
    let server = server(engine);
    for n in 0..4 {
        let cname = format!("w{n}");
        let token = mint(SECRET, &cname, now() + 60);
        let mut c = ws::open(server.front, &format!("/ws?cname={cname}&token={token}"));
        ws_next_seq(&mut c, &cname);
        wait_subscribers(&server, &cname, 1);
        admin_ok(&server, &format!("/push?cname={cname}&content=hi"));
        assert_eq!(c.read_text(), msg("data", &cname, 1, "hi"));

        // A second channel by command, with its own minted token.
        let more = format!("x{n}");
        let token = mint(SECRET, &more, now() + 60);
        c.send_text(&format!(
            r#"{{"cmd":"sub","cname":"{more}","token":"{token}"}}"#
        ));
        ws_next_seq(&mut c, &more);
        wait_subscribers(&server, &more, 1);
        admin_ok(&server, &format!("/push?cname={more}&content=too"));
        assert_eq!(c.read_text(), msg("data", &more, 1, "too"));

        // A forged one in a command is refused; the socket and its channels stay.
        let bad = format!("y{n}");
        let token = forged(&mint(SECRET, &bad, now() + 60));
        c.send_text(&format!(
            r#"{{"cmd":"sub","cname":"{bad}","token":"{token}"}}"#
        ));
        assert_eq!(c.read_text(), msg("401", &bad, 0, "Token error"));
        assert_eq!(
            admin_ok(&server, &format!("/check?cname={bad}")).text(),
            "{}\n"
        );
        admin_ok(&server, &format!("/push?cname={cname}&content=still"));
        assert_eq!(c.read_text(), msg("data", &cname, 2, "still"));
    }
    // Expired and forged on /ws: the 401 object, then close 1008; no channel is created.
    let t = now();
    for (what, token) in [
        ("expired", mint(SECRET, "z", t - 5)),
        ("forged", forged(&mint(SECRET, "z", t + 60))),
        ("other channel", mint(SECRET, "w0", t + 60)),
    ] {
        let mut c = ws::open(server.front, &format!("/ws?cname=z&token={token}"));
        assert_eq!(c.read_text(), msg("401", "z", 0, "Token error"), "{what}");
        let frame = c.read_frame();
        assert_eq!(frame.close_code(), Some(1008), "{what}: {frame:?}");
        assert!(c.closed_by_peer(), "{what}: the connection is closed");
    }
    assert_eq!(admin_ok(&server, "/check?cname=z").text(), "{}\n");
}

engine_tests!(sign_tokens_work_beside_stateless_ones);
fn sign_tokens_work_beside_stateless_ones(engine: &'static str) {
    let server = server(engine);
    let sign = admin_ok(&server, "/sign?cname=wes").text();
    let token = sign
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.get(..32))
        .expect("token in /sign")
        .to_string();
    let mut c = subscribe(server.front, &format!("/stream?cname=wes&token={token}"));
    expect(
        &mut c,
        &chunk(&format!("{}\n", msg("next_seq", "wes", 1, ""))),
    );
    let minted = mint(SECRET, "wes", now() + 60);
    let mut d = subscribe(server.front, &format!("/stream?cname=wes&token={minted}"));
    expect(
        &mut d,
        &chunk(&format!("{}\n", msg("next_seq", "wes", 1, ""))),
    );
    wait_subscribers(&server, "wes", 2);
}

engine_tests!(without_a_secret_a_minted_token_is_just_a_wrong_token);
fn without_a_secret_a_minted_token_is_just_a_wrong_token(engine: &'static str) {
    let server = Server::start(Opts::new(engine).arg("--auth").arg("token"));
    let minted = mint(SECRET, "xen", now() + 60);
    let got = whole_reply(&server, &format!("/sub?cname=xen&token={minted}"));
    assert!(
        got.ends_with(&format!("{}\n", msg("401", "xen", 0, "Token error"))),
        "{got}"
    );
    assert_eq!(admin_ok(&server, "/check?cname=xen").text(), "{}\n");
}

#[test]
fn a_secret_needs_auth_token_and_enough_bytes() {
    for args in [
        &["--auth-secret", SECRET][..],
        &["--auth", "token", "--auth-secret", "short"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcomet"))
            .args(args)
            .output()
            .expect("run rcomet");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("auth_secret") || err.contains("--auth-secret"),
            "{args:?}: {err}"
        );
    }
}
