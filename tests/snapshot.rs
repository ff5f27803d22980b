//! Restarts keep each channel's place (`server.snapshot` / `--snapshot`): a graceful stop writes
//! every channel's seq, epoch, token, life and replay ring; the next start reads them, and a
//! subscriber that comes back with its seq continues with no loss and the same epoch, after
//! SIGTERM and after `-s restart` alike. A damaged or foreign snapshot is refused with a log line
//! and the server starts empty. A snapshot whose directory cannot be written is one warning at
//! start.
//!
//! Depends on tests/support (the real binary over raw sockets).
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::front::{admin_ok, msg};
use support::*;

/// A server started with `--snapshot`, its log (stderr, info level) collected.
struct Logged {
    child: Child,
    admin: std::net::SocketAddr,
    front: std::net::SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

/// The command line of a server on free ports, logging at info level on stderr; `before` comes
/// first (a config file, `-s restart`).
fn command(engine: &str, before: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcomet"));
    cmd.args(before)
        .args([
            "--admin-listen",
            "127.0.0.1:0",
            "--front-listen",
            "127.0.0.1:0",
        ])
        .args(["--threads", "2", "--engine", engine, "--log-level", "info"])
        .args(["--log-output", "stderr", "--shutdown-timeout", "1"]);
    cmd
}

impl Logged {
    fn start(engine: &str, snapshot: &Path) -> Logged {
        let mut cmd = command(engine, &[]);
        cmd.arg("--snapshot").arg(snapshot);
        Logged::spawn(cmd)
    }

    /// Runs `cmd` and waits for its ready line.
    fn spawn(mut cmd: Command) -> Logged {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rcomet");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        let ready = ReadyLine::wait(&mut child, Duration::from_secs(20)).expect("ready line");
        Logged {
            admin: ready.addr("admin="),
            front: ready.addr("front="),
            child,
            log,
        }
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let done = eventually(Duration::from_secs(15), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(done, "the server stops within its shutdown timeout");
        self.child.wait().ok().and_then(|s| s.code())
    }

    fn logged(&self, needle: &str) -> bool {
        eventually(Duration::from_secs(5), || {
            self.log
                .lock()
                .expect("log")
                .iter()
                .any(|l| l.contains(needle))
        })
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(body: &'a str, name: &str) -> &'a str {
    body.split(&format!("\"{name}\":"))
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

fn server_admin_ok(admin: std::net::SocketAddr, path: &str) -> String {
    let r = get(admin, path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.text()
}

fn snapshot_path(dir: &TempDir) -> PathBuf {
    dir.0.join("channels.snapshot")
}

engine_tests!(
    a_restart_keeps_every_channels_place,
    damaged_and_foreign_snapshots_are_refused,
    a_snapshot_that_cannot_be_written_is_told_at_start,
    dash_s_restart_keeps_every_channels_place
);

fn a_restart_keeps_every_channels_place(engine: &'static str) {
    let dir = TempDir::new("snap");
    let path = snapshot_path(&dir);
    let first = Logged::start(engine, &path);
    assert!(first.logged("none yet"), "a first start has no snapshot");
    let sign = server_admin_ok(first.admin, "/sign?cname=keep&expires=300");
    let (token, epoch) = (
        field(&sign, "token").to_string(),
        field(&sign, "epoch").to_string(),
    );
    for content in ["one", "two", "three"] {
        server_admin_ok(first.admin, &format!("/push?cname=keep&content={content}"));
    }
    for i in 0..40 {
        server_admin_ok(first.admin, &format!("/sign?cname=other{i}"));
    }
    assert_eq!(first.stop(), Some(0));
    assert!(path.exists(), "a graceful stop writes the snapshot");

    let second = Logged::start(engine, &path);
    assert!(second.logged("41 channels restored"));
    assert!(!path.exists(), "a snapshot is used once");
    let info = server_admin_ok(second.admin, "/info");
    assert!(info.contains("\"channels\": 41"), "{info}");
    // The same token and epoch; the ring is still there.
    let again = server_admin_ok(second.admin, "/sign?cname=keep");
    assert_eq!(field(&again, "token"), token.as_str());
    assert_eq!(field(&again, "epoch"), epoch.as_str());
    assert_eq!(field(&again, "seq"), "1");
    // A resumable subscriber that saw seq 1 continues at 2, with no reset.
    sse_resumes_after_the_restart(&second, &epoch);
    // A long-poll subscriber with its seq gets what it missed, as before the restart.
    let r = get(second.front, "/sub?cname=keep&seq=3");
    assert!(
        r.text().contains(&msg("data", "keep", 3, "three")),
        "{}",
        r.text()
    );
}

fn damaged_and_foreign_snapshots_are_refused(engine: &'static str) {
    let dir = TempDir::new("snap");
    let path = snapshot_path(&dir);
    // A real snapshot to spoil.
    let first = Logged::start(engine, &path);
    server_admin_ok(first.admin, "/push?cname=x&content=1");
    assert_eq!(first.stop(), Some(0));
    let good = std::fs::read(&path).expect("snapshot written");

    let mut damaged = good.clone();
    let last = damaged.len() - 6;
    damaged[last] ^= 0x55;
    let mut foreign = good.clone();
    foreign[16] = 99;
    for (what, bytes, line) in [
        ("damaged", damaged, "refused, damaged (checksum mismatch)"),
        ("foreign", foreign, "refused, written in format 99"),
        (
            "not a snapshot",
            b"{\"hello\": 1}".to_vec(),
            "refused, not an rcomet snapshot",
        ),
    ] {
        std::fs::write(&path, bytes).expect("write");
        let server = Logged::start(engine, &path);
        assert!(server.logged(line), "{what}: {line:?} is logged");
        let check = server_admin_ok(server.admin, "/check?cname=x");
        assert_eq!(check.trim(), "{}", "{what}: the server starts empty");
        let _ = admin_ok;
        drop(server);
    }
}

/// Whether `dir` takes a new file for this process (root writes into a directory of mode 0555).
fn can_write_in(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let ok = std::fs::File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// A snapshot the stop could not write (its directory missing, a file, or read-only, as under
/// a service manager that gives the service no state directory) is one warning at start, not
/// only an error at the stop; a writable one is not.
fn a_snapshot_that_cannot_be_written_is_told_at_start(engine: &'static str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("snap-ro");
    let missing = dir.0.join("missing");
    let file = dir.0.join("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let read_only = dir.0.join("read-only");
    std::fs::create_dir(&read_only).expect("mkdir");
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let mut cases = vec![
        (
            missing.clone(),
            format!("the directory {} does not exist", missing.display()),
        ),
        (
            file.clone(),
            format!("the directory {} is not a directory", file.display()),
        ),
    ];
    if can_write_in(&read_only) {
        eprintln!("read-only directory: not checked (this user writes into mode 0555)");
    } else {
        let why = format!("the directory {} is not writable (", read_only.display());
        cases.push((read_only.clone(), why));
    }
    for (at, why) in cases {
        let path = at.join("channels.snapshot");
        let server = Logged::start(engine, &path);
        let line = format!("[WARN] snapshot {}: {why}", path.display());
        assert!(server.logged(&line), "{line:?} is logged at start");
        assert!(
            server.logged("the channels will not be saved at stop"),
            "the warning says what it costs"
        );
        // It still serves.
        server_admin_ok(server.admin, "/push?cname=w&content=1");
        let log = Arc::clone(&server.log);
        assert_eq!(server.stop(), Some(0));
        let lines = log.lock().expect("log").clone();
        let warnings = lines.iter().filter(|l| l.contains(&line)).count();
        assert_eq!(warnings, 1, "one warning: {lines:#?}");
        assert!(!path.exists());
    }
    assert!(std::fs::read_dir(&read_only).expect("ls").next().is_none());

    // A writable directory: no warning, and the check leaves nothing behind.
    let path = snapshot_path(&dir);
    let server = Logged::start(engine, &path);
    assert!(server.logged("none yet"));
    let log = Arc::clone(&server.log);
    assert!(!path.with_extension("snapshot.tmp").exists());
    assert_eq!(server.stop(), Some(0));
    let saved = eventually(Duration::from_secs(5), || {
        log.lock()
            .expect("log")
            .iter()
            .any(|l| l.contains("channels saved"))
    });
    assert!(saved, "the stop saved the snapshot");
    let lines = log.lock().expect("log").clone();
    assert!(
        !lines.iter().any(|l| l.contains("[WARN]")),
        "no warning: {lines:#?}"
    );
}

/// `rcomet <config> -s restart` (the pidfile names the running server): the new process stops
/// the old one, whose graceful stop writes the snapshot, and starts on it; a subscriber resumes
/// by seq with nothing lost and the same epoch.
fn dash_s_restart_keeps_every_channels_place(engine: &'static str) {
    let dir = TempDir::new("snap-restart");
    let path = snapshot_path(&dir);
    let pidfile = dir.0.join("rcomet.pid");
    let conf = dir.0.join("rcomet.conf");
    std::fs::write(
        &conf,
        format!(
            "pidfile: {}\nserver:\n\tsnapshot: {}\n",
            pidfile.display(),
            path.display()
        ),
    )
    .expect("config");
    let mut first = Logged::spawn(command(engine, &[conf.as_os_str()]));
    assert!(first.logged("none yet"), "a first start has no snapshot");
    // A resumable subscriber sees seq 1 and its epoch, then goes.
    let mut c = Conn::open(first.front);
    c.get("/sse?cname=keep&id=1");
    assert_eq!(c.read_head().0, 200);
    assert_eq!(c.read_chunk().as_deref(), Some(&b"retry: 2000\n\n"[..]));
    let marker = String::from_utf8(c.read_chunk().expect("marker")).expect("UTF-8");
    let epoch = field(&marker, "epoch").to_string();
    server_admin_ok(first.admin, "/push?cname=keep&content=one");
    let event = String::from_utf8(c.read_chunk().expect("event")).expect("UTF-8");
    assert_eq!(
        event,
        format!("id: {epoch}:1\ndata: {}\n\n", msg("data", "keep", 1, "one"))
    );
    drop(c);
    for content in ["two", "three"] {
        server_admin_ok(first.admin, &format!("/push?cname=keep&content={content}"));
    }

    let dash_s = [std::ffi::OsStr::new("-s"), std::ffi::OsStr::new("restart")];
    let second = Logged::spawn(command(engine, &[conf.as_os_str(), dash_s[0], dash_s[1]]));
    let stopped = eventually(Duration::from_secs(15), || {
        matches!(first.child.try_wait(), Ok(Some(_)))
    });
    assert!(stopped, "-s restart stopped the running server");
    assert_eq!(first.child.wait().ok().and_then(|s| s.code()), Some(0));
    assert!(first.logged("1 channels saved"), "the old server saved it");
    assert!(second.logged("1 channels restored"), "the new one read it");
    let pid = std::fs::read_to_string(&pidfile).expect("pidfile");
    assert_eq!(
        pid.trim(),
        second.child.id().to_string(),
        "the pidfile names the new server"
    );

    // Last-Event-ID from before the restart: the rest, with the same epoch and no reset.
    sse_resumes_after_the_restart(&second, &epoch);
    // A long-poll subscriber resuming by seq alone gets what it missed.
    let r = get(second.front, "/sub?cname=keep&seq=2");
    let body = r.text();
    for (seq, content) in [(2, "two"), (3, "three"), (4, "four")] {
        assert!(body.contains(&msg("data", "keep", seq, content)), "{body}");
    }
}

/// On the restarted server: an SSE subscriber resuming with `Last-Event-ID: EPOCH:1` on channel
/// `keep` (which held "one", "two", "three") gets 2 and 3 with the same epoch and no reset, and
/// a new push carries on at 4.
fn sse_resumes_after_the_restart(second: &Logged, epoch: &str) {
    let mut c = Conn::open(second.front);
    c.send(
        format!("GET /sse?cname=keep&id=1 HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {epoch}:1\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(c.read_head().0, 200);
    assert_eq!(c.read_chunk().as_deref(), Some(&b"retry: 2000\n\n"[..]));
    for (seq, content) in [(2, "two"), (3, "three")] {
        let event = String::from_utf8(c.read_chunk().expect("event")).expect("UTF-8");
        assert_eq!(
            event,
            format!(
                "id: {epoch}:{seq}\ndata: {}\n\n",
                msg("data", "keep", seq, content)
            )
        );
    }
    // New messages carry on from the saved seq.
    server_admin_ok(second.admin, "/push?cname=keep&content=four");
    let event = String::from_utf8(c.read_chunk().expect("event")).expect("UTF-8");
    assert!(event.starts_with(&format!("id: {epoch}:4\n")), "{event}");
}
