//! The process around the engine: graceful shutdown on SIGTERM with idle, mid-request and
//! subscribed connections open; the iComet configuration file (a good one is applied, a bad one
//! stops the binary with the file and line named); `--help`. Depends only on `tests/support`.
mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

engine_tests!(sigterm_shuts_down_gracefully_with_connections_open);
fn sigterm_shuts_down_gracefully_with_connections_open(engine: &'static str) {
    const SHUTDOWN: u64 = 2;
    let mut server = Server::start(
        Opts::new(engine)
            .arg("--shutdown-timeout")
            .arg(&SHUTDOWN.to_string())
            .arg("--header-timeout")
            .arg("60")
            .arg("--keepalive-timeout")
            .arg("60"),
    );
    // Connected, nothing sent.
    let mut idle = Conn::open(server.front);
    // Keep-alive after one answered request.
    let mut kept = Conn::open(server.front);
    kept.get("/ping");
    assert_eq!(kept.read_response().status, 200);
    // Half a request head.
    let mut partial = Conn::open(server.front);
    partial.send(b"GET /ping HTTP/1.1\r\nHost:");
    // A stream subscriber.
    let mut stream = Conn::open(server.front);
    stream.get("/stream?cname=bye");
    assert_eq!(stream.read_head().0, 200);
    assert!(stream.read_chunk().is_some(), "no next_seq chunk");
    // An admin connection kept alive.
    let mut admin = Conn::open(server.admin);
    admin.get("/info");
    assert_eq!(admin.read_response().status, 200);
    assert!(
        eventually(Duration::from_secs(5), || {
            get(server.admin, "/info?cname=bye").text()
                == "{\"cname\": \"bye\", \"subscribers\": 1}\n"
        }),
        "subscriber never registered"
    );

    let start = Instant::now();
    let code = server.terminate(Duration::from_secs(SHUTDOWN + 4));
    let took = start.elapsed();
    println!("{engine}: SIGTERM → exit {code:?} after {took:?}");
    assert_eq!(
        code,
        Some(0),
        "no clean exit within {}s after SIGTERM",
        SHUTDOWN + 4
    );
    assert!(
        took <= Duration::from_secs(SHUTDOWN + 3),
        "shutdown took {took:?} (shutdown timeout {SHUTDOWN}s)"
    );
    for (name, c) in [
        ("stream", &mut stream),
        ("idle", &mut idle),
        ("keep-alive", &mut kept),
        ("partial", &mut partial),
        ("admin", &mut admin),
    ] {
        assert!(
            c.closed_by_peer(),
            "{name} connection not closed after shutdown"
        );
    }
    // Whatever the subscriber got before the close is well-framed: at most the chunked
    // terminator.
    let rest = String::from_utf8_lossy(&stream.buf).into_owned();
    assert!(
        rest.is_empty() || rest == "0\r\n\r\n",
        "stream got {rest:?}"
    );
}

engine_tests!(sigterm_with_nothing_open_exits_at_once);
fn sigterm_with_nothing_open_exits_at_once(engine: &'static str) {
    let mut server = Server::start(Opts::new(engine).arg("--shutdown-timeout").arg("5"));
    assert_eq!(get(server.front, "/ping").status, 200);
    let start = Instant::now();
    assert_eq!(server.terminate(Duration::from_secs(8)), Some(0));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "an idle server took {took:?} to stop"
    );
}

engine_tests!(a_tab_indented_config_file_is_applied);
fn a_tab_indented_config_file_is_applied(engine: &'static str) {
    let config = "# rcomet test configuration\n\
                  \n\
                  logger:\n\
                  \tlevel: warn\n\
                  \trotate:\n\
                  \t\tsize: 1000000000\n\
                  admin:\n\
                  \tallow: 127.0.0.1\n\
                  \tdeny: all\n\
                  front:\n\
                  \t# the heartbeat period reported to clients\n\
                  \tpolling_timeout = 7\n\
                  \tchannel_timeout: 3\n\
                  \tmax_channels: 100\n";
    let server = Server::start(Opts::new(engine).config(config));
    let r = get(server.front, "/ping");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "icomet_cb({\"type\":\"ping\",\"sub_timeout\":7});\n"
    );
    let sign = get(server.admin, "/sign?cname=conf").text();
    assert!(
        sign.contains("\"expires\":3,\"sub_timeout\":7,\"epoch\":"),
        "{sign}"
    );
}

/// Runs the binary with `args`, waits (bounded) for it to exit, and returns the exit code and
/// everything it printed.
fn run_printing(args: &[&str]) -> (Option<i32>, String) {
    let exit = run_binary(args, Duration::from_secs(10));
    (exit.code, format!("{}{}", exit.stdout, exit.stderr))
}

/// Writes `body` as a config file and runs the server on it (with ports that cannot clash).
fn run_with_config(dir: &Path, name: &str, body: &str) -> (String, Option<i32>, String) {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write config");
    let path = path.to_string_lossy().into_owned();
    let (code, output) = run_printing(&[
        &path,
        "--admin-listen",
        "127.0.0.1:0",
        "--front-listen",
        "127.0.0.1:0",
        "--log-output",
        "stderr",
    ]);
    (path, code, output)
}

#[test]
fn a_bad_config_file_stops_the_binary_naming_file_and_line() {
    let dir = TempDir::new("badconf");
    let cases = [
        (
            "spaces.conf",
            "# indented with spaces\nfront:\n    polling_timeout: 7\n",
            3,
        ),
        (
            "notanumber.conf",
            "# not a number\nfront:\n\tpolling_timeout: abc\n",
            3,
        ),
        (
            "nocolon.conf",
            "front:\n\tpolling_timeout: 7\n\tjust words\n",
            3,
        ),
        ("deepindent.conf", "front:\n\t\tpolling_timeout: 7\n", 2),
    ];
    for (name, body, line) in cases {
        let (path, code, output) = run_with_config(&dir.0, name, body);
        assert!(
            code.is_some(),
            "{name}: the binary started on a bad config file"
        );
        assert_ne!(
            code,
            Some(0),
            "{name}: exit status 0 on a bad config file; output {output:?}"
        );
        assert!(
            output.contains(&format!("{path}:{line}"))
                || (output.contains(&path) && output.contains(&format!("line {line}"))),
            "{name}: the message does not name {path} line {line}: {output:?}"
        );
        assert!(!output.contains("rcomet ready"), "{name}: {output:?}");
    }
    // A file that does not exist is named too.
    let missing = dir.0.join("missing.conf").to_string_lossy().into_owned();
    let (code, output) = run_printing(&[
        &missing,
        "--admin-listen",
        "127.0.0.1:0",
        "--front-listen",
        "127.0.0.1:0",
    ]);
    assert!(
        code.is_some_and(|c| c != 0),
        "missing config: exit {code:?}"
    );
    assert!(output.contains(&missing), "{output:?}");
}

#[test]
fn help_exits_0_and_mentions_every_config_group() {
    let (code, output) = run_printing(&["--help"]);
    assert_eq!(code, Some(0), "{output}");
    for group in [
        "pidfile", "logger.", "admin.", "front.", "server.", "limits.",
    ] {
        assert!(
            output.contains(group),
            "--help does not mention {group}: {output}"
        );
    }
    for key in [
        "logger.level",
        "logger.output",
        "admin.listen",
        "front.listen",
        "front.auth",
        "front.max_channels",
        "front.max_subscribers_per_channel",
        "front.channel_buffer_size",
        "front.channel_timeout",
        "front.polling_timeout",
    ] {
        assert!(output.contains(key), "--help does not mention {key}");
    }
}

engine_tests!(a_second_server_on_a_taken_port_refuses_to_start);
/// A second server on ports that are taken must refuse to start (SO_REUSEPORT would otherwise let
/// it silently take half of the first one's connections).
fn a_second_server_on_a_taken_port_refuses_to_start(engine: &'static str) {
    let first = Server::start(Opts::new(engine));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcomet"))
        .args(["--engine", engine, "--log-output", "stderr"])
        .args(["--admin-listen", &first.admin.to_string()])
        .args(["--front-listen", "127.0.0.1:0"])
        .output()
        .expect("run rcomet");
    assert_eq!(out.status.code(), Some(1), "the second server must exit 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Address already in use") && stderr.contains(&first.admin.to_string()),
        "stderr names the taken address: {stderr}"
    );
    assert_eq!(
        get(first.front, "/ping").status,
        200,
        "the first server is untouched"
    );
}
