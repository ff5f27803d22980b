//! How the binary's start-up ends, as an operator sees it: a fatal error (a taken port, a pidfile
//! held by a live process) reaches stderr and the exit status even when the config sends the log
//! to a file, in the foreground and with `-d` (whose first process waits for the daemon); the
//! ready line appears once; `-d` returns once the daemon serves; a service manager's
//! `NOTIFY_SOCKET` (a path or an abstract `@name`) gets `READY=1` and `STOPPING=1`. Depends only
//! on `tests/support`.
mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_rcomet");

/// A config that sends the log to a file and writes a pidfile, both beside it (the shipped
/// icomet.conf does the same).
const FILE_LOG_CONFIG: &str = "pidfile = ./rcomet.pid\n\
                               logger:\n\
                               \tlevel: info\n\
                               \toutput: ./logs/log.txt\n";

/// Runs the binary to its end (bounded), with stdout and stderr captured apart.
fn run(args: &[&str]) -> Exit {
    run_binary(args, Duration::from_secs(20))
}

fn is_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A daemon started by a test: killed on drop unless it already stopped.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0 > 1 && is_alive(self.0) {
            // SAFETY: kill(2) on the daemon this test started (its pid from its ready line).
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// The daemon a run that should have failed may have left running.
fn reap_unexpected_daemon(exit: &Exit) -> Option<Daemon> {
    let line = exit
        .stdout
        .lines()
        .find(|l| l.starts_with("rcomet ready"))?;
    ready_field(line, "pid=").parse().ok().map(Daemon)
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("logs/log.txt")).unwrap_or_default()
}

#[derive(Clone, Copy, Debug)]
enum Failure {
    PortInUse,
    PidfileHeld,
}

engine_tests!(fatal_start_errors_reach_stderr_when_the_log_goes_to_a_file);
fn fatal_start_errors_reach_stderr_when_the_log_goes_to_a_file(engine: &'static str) {
    for failure in [Failure::PortInUse, Failure::PidfileHeld] {
        for daemon in [false, true] {
            let case = format!("{failure:?}{}", if daemon { " with -d" } else { "" });
            let dir = TempDir::new("fatal");
            let config = dir.0.join("rcomet.conf");
            std::fs::write(&config, FILE_LOG_CONFIG).unwrap();
            let taken = TcpListener::bind("127.0.0.1:0").unwrap();
            let taken_addr = taken.local_addr().unwrap().to_string();
            let pidfile = dir.0.join("rcomet.pid");
            // The test process is alive: a pidfile naming it is held.
            let holder = format!("{}\n", std::process::id());
            let (admin, expected) = match failure {
                Failure::PortInUse => (
                    taken_addr.clone(),
                    vec!["Address already in use".to_string(), taken_addr.clone()],
                ),
                Failure::PidfileHeld => {
                    std::fs::write(&pidfile, &holder).unwrap();
                    (
                        "127.0.0.1:0".to_string(),
                        vec![format!("process {} is running", std::process::id())],
                    )
                }
            };
            let config = config.to_string_lossy().into_owned();
            let mut args = vec![
                config.as_str(),
                "--engine",
                engine,
                "--admin-listen",
                &admin,
                "--front-listen",
                "127.0.0.1:0",
            ];
            if daemon {
                args.push("-d");
            }
            let exit = run(&args);
            let _leftover = reap_unexpected_daemon(&exit);
            assert_eq!(
                exit.code,
                Some(1),
                "{case}: exit status; stdout {:?} stderr {:?}",
                exit.stdout,
                exit.stderr
            );
            for text in &expected {
                assert!(
                    exit.stderr.contains(text.as_str()),
                    "{case}: stderr does not say {text:?}: {:?}",
                    exit.stderr
                );
            }
            assert!(
                !exit.stdout.contains("rcomet ready"),
                "{case}: {:?}",
                exit.stdout
            );
            // The log file has it too.
            let log = read_log(&dir.0);
            assert!(
                log.contains("[ERROR]") && log.contains(expected[0].as_str()),
                "{case}: the log file lacks the error: {log:?}"
            );
            match failure {
                Failure::PidfileHeld => assert_eq!(
                    std::fs::read_to_string(&pidfile).unwrap(),
                    holder,
                    "{case}: the live process's pidfile was touched"
                ),
                Failure::PortInUse => {
                    assert!(!pidfile.exists(), "{case}: pidfile left behind");
                    // The listener that held the port is untouched.
                    assert_eq!(taken.local_addr().unwrap().to_string(), taken_addr);
                }
            }
        }
    }
}

engine_tests!(daemon_mode_returns_once_the_daemon_serves);
fn daemon_mode_returns_once_the_daemon_serves(engine: &'static str) {
    let dir = TempDir::new("daemon");
    let config = dir.0.join("rcomet.conf");
    std::fs::write(&config, FILE_LOG_CONFIG).unwrap();
    let config = config.to_string_lossy().into_owned();
    let exit = run(&[
        &config,
        "-d",
        "--engine",
        engine,
        "--admin-listen",
        "127.0.0.1:0",
        "--front-listen",
        "127.0.0.1:0",
    ]);
    let daemon = reap_unexpected_daemon(&exit);
    assert_eq!(exit.code, Some(0), "stderr {:?}", exit.stderr);
    let daemon = daemon.expect("-d printed no ready line");
    let lines: Vec<&str> = exit.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {:?}", exit.stdout);
    assert_eq!(ready_field(lines[0], "engine="), engine);
    assert!(
        ready_field(lines[0], "workers=")
            .parse::<usize>()
            .is_ok_and(|n| n >= 1),
        "the ready line names the worker count: {:?}",
        lines[0]
    );
    // It serves the moment `-d` has returned.
    let front: SocketAddr = ready_field(lines[0], "front=").parse().unwrap();
    assert_eq!(get(front, "/ping").status, 200);
    let pidfile = dir.0.join("rcomet.pid");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        daemon.0.to_string(),
        "the pidfile names the daemon"
    );
    assert!(read_log(&dir.0).contains(" ready: "), "the log records it");
    let stop = run(&[&config, "-s", "stop"]);
    assert_eq!(stop.code, Some(0), "-s stop: {:?}", stop.stderr);
    assert!(
        eventually(Duration::from_secs(10), || !is_alive(daemon.0)),
        "the daemon still runs after -s stop"
    );
    assert!(!pidfile.exists(), "the daemon left its pidfile");
}

/// Starts the binary with `args` and `env`; its stdout lines arrive on the receiver.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Child, Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start rcomet");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines from `rx` until one starts with "rcomet ready" (which is returned last).
fn until_ready(rx: &Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no ready line; got {lines:?}"));
        let ready = line.starts_with("rcomet ready");
        lines.push(line);
        if ready {
            return lines;
        }
    }
}

/// SIGTERM, then the exit code (bounded).
fn terminate(child: &mut Child) -> Option<i32> {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_bounded(child, Duration::from_secs(15))
}

const LISTEN_ANYWHERE: [&str; 4] = [
    "--admin-listen",
    "127.0.0.1:0",
    "--front-listen",
    "127.0.0.1:0",
];

engine_tests!(the_ready_line_appears_once);
fn the_ready_line_appears_once(engine: &'static str) {
    // The log on stdout: one ready line among the log lines.
    let mut args = vec!["--engine", engine, "--log-output", "stdout"];
    args.extend(["--log-level", "info"]);
    args.extend(LISTEN_ANYWHERE);
    let (mut child, rx) = spawn(&args, &[]);
    let mut lines = until_ready(&rx);
    assert_eq!(terminate(&mut child), Some(0));
    lines.extend(rx.iter());
    let ready: Vec<&String> = lines.iter().filter(|l| l.contains("ready")).collect();
    assert_eq!(ready.len(), 1, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.ends_with("[INFO] rcomet stopped")),
        "the log went to stdout: {lines:#?}"
    );

    // The log in a file: stdout holds the ready line alone, the log file records it.
    let dir = TempDir::new("ready");
    let config = dir.0.join("rcomet.conf");
    std::fs::write(&config, FILE_LOG_CONFIG).unwrap();
    let config = config.to_string_lossy().into_owned();
    let mut args = vec![config.as_str(), "--engine", engine];
    args.extend(LISTEN_ANYWHERE);
    let (mut child, rx) = spawn(&args, &[]);
    let mut lines = until_ready(&rx);
    assert_eq!(terminate(&mut child), Some(0));
    lines.extend(rx.iter());
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let log = read_log(&dir.0);
    assert_eq!(log.matches(" ready: ").count(), 1, "{log}");
}

/// A datagram socket standing in for the service manager, and the NOTIFY_SOCKET value naming it.
fn notify_socket(dir: &Path, abstract_name: bool) -> (UnixDatagram, String) {
    if abstract_name {
        let name = format!(
            "rcomet-test-notify-{}-{}",
            std::process::id(),
            dir.file_name().unwrap().to_string_lossy()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
    } else {
        let path: PathBuf = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        (socket, path.to_string_lossy().into_owned())
    }
}

fn receive(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("no notification arrived");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

engine_tests!(a_service_manager_hears_ready_and_stopping);
fn a_service_manager_hears_ready_and_stopping(engine: &'static str) {
    for abstract_name in [false, true] {
        let dir = TempDir::new("notify");
        let (socket, value) = notify_socket(&dir.0, abstract_name);
        let mut args = vec![
            "--engine",
            engine,
            "--log-output",
            "stderr",
            "--log-level",
            "warn",
        ];
        args.extend(LISTEN_ANYWHERE);
        let (mut child, rx) = spawn(&args, &[("NOTIFY_SOCKET", &value)]);
        let ready = receive(&socket);
        let fields: Vec<&str> = ready.lines().collect();
        assert!(fields.contains(&"READY=1"), "{value}: {ready:?}");
        assert!(
            fields.contains(&format!("MAINPID={}", child.id()).as_str()),
            "{value}: {ready:?}"
        );
        // Ready means serving: the listeners are up.
        let line = until_ready(&rx).pop().unwrap();
        let front: SocketAddr = ready_field(&line, "front=").parse().unwrap();
        let admin: SocketAddr = ready_field(&line, "admin=").parse().unwrap();
        assert_eq!(get(front, "/ping").status, 200);
        assert_eq!(get(admin, "/info").status, 200);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let stopping = receive(&socket);
        assert!(
            stopping.lines().any(|l| l == "STOPPING=1"),
            "{value}: {stopping:?}"
        );
        assert_eq!(
            wait_bounded(&mut child, Duration::from_secs(15)),
            Some(0),
            "{value}"
        );
    }
}

#[test]
fn an_impossible_notify_socket_stops_the_start_with_a_reason() {
    let long = format!("/tmp/{}", "x".repeat(200));
    let mut args = vec!["--log-output", "stdout"];
    args.extend(LISTEN_ANYWHERE);
    let mut child = Command::new(BIN)
        .args(&args)
        .env("NOTIFY_SOCKET", &long)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_bounded(&mut child, Duration::from_secs(20));
    let out = child.wait_with_output().unwrap();
    assert_eq!(code, Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOTIFY_SOCKET"), "{stderr}");
}

#[test]
fn a_log_file_that_cannot_be_opened_is_named_on_stderr() {
    let dir = TempDir::new("nolog");
    // A directory where the file should be: it can be neither created nor opened.
    let path = dir.0.join("log.txt");
    std::fs::create_dir_all(&path).unwrap();
    let path = path.to_string_lossy().into_owned();
    let mut args = vec!["--log-output", path.as_str()];
    args.extend(LISTEN_ANYWHERE);
    let exit = run(&args);
    assert_eq!(exit.code, Some(1), "{:?}", exit.stderr);
    assert!(
        exit.stderr
            .contains(&format!("cannot open log file {path}")),
        "{:?}",
        exit.stderr
    );
    assert!(!exit.stdout.contains("rcomet ready"));
}

engine_tests!(a_fatal_error_shows_once_when_the_log_goes_to_stdout);
fn a_fatal_error_shows_once_when_the_log_goes_to_stdout(engine: &'static str) {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let exit = run(&[
        "--engine",
        engine,
        "--log-output",
        "stdout",
        "--admin-listen",
        &addr,
        "--front-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(exit.code, Some(1));
    let both = format!("{}{}", exit.stdout, exit.stderr);
    assert_eq!(
        both.matches("Address already in use").count(),
        1,
        "stdout {:?} stderr {:?}",
        exit.stdout,
        exit.stderr
    );
    assert!(exit.stderr.contains(&addr), "{:?}", exit.stderr);
}
