//! Reload without dropping anyone: SIGHUP (and `-s reload`) reads the configuration again and
//! applies what can change live — here a limit, a per-channel cap and the log file — with 1,000
//! subscribers connected, none of whom is dropped; keys fixed at start are reported as needing a
//! restart; the log file is reopened for logrotate even when nothing changed; the admin
//! allow/deny list and the keep-alive timeout change live too.
//!
//! Depends on tests/support (the real binary over raw sockets).
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::front::{msg, subscribe};
use support::*;

const SUBSCRIBERS: usize = 1000;

fn config(dir: &Path, log: &str, max_cname: usize, per_channel: usize, threads: usize) -> String {
    format!(
        "pidfile: {pid}\nlogger:\n\tlevel: info\n\toutput: {log}\nserver:\n\tthreads: {threads}\n\
         front:\n\tmax_subscribers_per_channel: {per_channel}\nlimits:\n\tmax_cname_length: {max_cname}\n",
        pid = dir.join("rcomet.pid").display(),
        log = dir.join(log).display(),
    )
}

struct Running {
    child: Child,
    admin: std::net::SocketAddr,
    front: std::net::SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(engine: &str, conf: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcomet"))
        .arg(conf)
        .args([
            "--admin-listen",
            "127.0.0.1:0",
            "--front-listen",
            "127.0.0.1:0",
        ])
        .args(["--engine", engine])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rcomet");
    let ready = ReadyLine::wait(&mut child, Duration::from_secs(20)).expect("ready line");
    Running {
        admin: ready.addr("admin="),
        front: ready.addr("front="),
        child,
    }
}

/// Waits until the file at `path` holds a line containing `needle`.
fn logged(path: &PathBuf, needle: &str) -> bool {
    eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle))
    })
}

/// Waits until the admin port answers `/info` with `status` (a reload is applied by the workers
/// in their next turns).
fn admin_answers(server: &Running, status: u16) -> bool {
    eventually(Duration::from_secs(10), || {
        get(server.admin, "/info").status == status
    })
}

fn hup(server: &Running) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
}

engine_tests!(a_reload_changes_limits_and_the_log_and_drops_nobody);
fn a_reload_changes_limits_and_the_log_and_drops_nobody(engine: &'static str) {
    let dir = TempDir::new("reload");
    let conf = dir.0.join("rcomet.conf");
    std::fs::write(&conf, config(&dir.0, "a.log", 100, 5000, 2)).expect("config");
    let server = start(engine, &conf);
    let mut subs: Vec<Conn> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut c = subscribe(server.front, "/stream?cname=r");
            c.read_chunk().expect("next_seq");
            c
        })
        .collect();
    support::front::wait_subscribers_at(server.admin, "r", SUBSCRIBERS);

    // Lower the cap to what is connected, shorten names, move the log, ask for one thread.
    std::fs::write(&conf, config(&dir.0, "b.log", 10, SUBSCRIBERS, 1)).expect("config");
    hup(&server);
    let b = dir.0.join("b.log");
    assert!(logged(&b, "reload: applied [logger.output, front.max_subscribers_per_channel, limits]; need a restart [server.threads]"));
    let long = get(server.front, "/sub?cname=abcdefghijk");
    assert_eq!(long.status, 400, "the new name limit is in force");
    let mut extra = Conn::open(server.front);
    extra.get("/stream?cname=r");
    let r = extra.read_response();
    assert!(r.text().contains("Too many subscribers"), "{}", r.text());
    // Nobody was dropped: every subscriber gets the next push.
    let push = get(server.admin, "/push?cname=r&content=after");
    assert_eq!(push.status, 200);
    let want = format!("{}\n", msg("data", "r", 1, "after"));
    for c in &mut subs {
        assert_eq!(c.read_chunk().as_deref(), Some(want.as_bytes()));
    }

    // logrotate: the file is moved aside; a reload with nothing changed reopens it.
    std::fs::rename(&b, dir.0.join("b.log.1")).expect("rotate");
    let status = Command::new(env!("CARGO_BIN_EXE_rcomet"))
        .arg(&conf)
        .args(["-s", "reload"])
        .status()
        .expect("rcomet -s reload");
    assert!(
        status.success(),
        "-s reload signals the server named in the pidfile"
    );
    assert!(logged(
        &b,
        "reload: applied []; need a restart [server.threads]"
    ));
    assert_eq!(
        support::front::info_subscribers_at(server.admin, "r"),
        SUBSCRIBERS
    );
}

engine_tests!(a_reload_changes_the_admin_filter_and_the_idle_timeout);
fn a_reload_changes_the_admin_filter_and_the_idle_timeout(engine: &'static str) {
    // Two more of the keys that change live: who may use the admin port, and how long an idle
    // keep-alive connection is kept.
    let dir = TempDir::new("reload-admin");
    let conf = dir.0.join("rcomet.conf");
    let base = format!(
        "pidfile: {pid}\nlogger:\n\tlevel: info\n\toutput: {log}\n",
        pid = dir.0.join("rcomet.pid").display(),
        log = dir.0.join("a.log").display(),
    );
    std::fs::write(&conf, &base).unwrap();
    let server = start(engine, &conf);
    assert_eq!(get(server.admin, "/info").status, 200);

    std::fs::write(
        &conf,
        format!("{base}admin:\n\tdeny: 127.0.0.1\nserver:\n\tkeepalive_timeout: 1\n"),
    )
    .unwrap();
    hup(&server);
    assert!(
        admin_answers(&server, 403),
        "{engine}: the new deny list is in force"
    );
    // Timers armed from now on use the new keep-alive timeout: a fresh idle connection is
    // closed within a few seconds (the old default was 60 s).
    let mut fresh = Conn::open(server.front);
    fresh.get("/ping");
    assert_eq!(fresh.read_response().status, 200);
    let started = std::time::Instant::now();
    assert!(
        fresh.closed_by_peer(),
        "{engine}: the idle connection is closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{engine}: closed after {:?}, not by the new 1 s keep-alive timeout",
        started.elapsed()
    );

    std::fs::write(&conf, &base).unwrap();
    hup(&server);
    assert!(
        admin_answers(&server, 200),
        "{engine}: allowed again once the deny list is gone"
    );
}
