//! The smallest end-to-end check: the binary starts on port 0, answers /ping byte for byte, and
//! exits 0 on SIGTERM.
mod support;
use support::*;

engine_tests!(ping_answers_and_sigterm_exits_cleanly);
fn ping_answers_and_sigterm_exits_cleanly(engine: &'static str) {
    let mut server = Server::start(Opts::new(engine));
    let r = get(server.front, "/ping");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n"
    );
    assert_eq!(
        normalize_date(&r.head),
        "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 45\r\nContent-Type: text/html; charset=ISO-8859-1\r\n"
    );
    assert_eq!(
        server.terminate(std::time::Duration::from_secs(10)),
        Some(0)
    );
}
