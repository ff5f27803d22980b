//! The real-browser tests, each a node script in tests/browser (playwright-core driving the
//! system's Chromium against the real server binary, through a TCP proxy that can cut, hold and
//! refuse connections); these tests check the prerequisites, run a script with the binary cargo
//! built, bounded in time, and read its verdict.
//!
//! - resume.mjs: a native `WebSocket` and a native `EventSource` with ids, their connections
//!   dropped and re-opened mid-stream while pushes keep coming: every message arrives exactly
//!   once, in order.
//! - client.mjs: rcomet.js (clients/js) across forced disconnects, WebSocket refused (SSE) and
//!   SSE refused too (long-poll), a server restart (the reset told), two tabs sharing one
//!   connection and the second taking over; the admin page showing a push within a second; the
//!   chat demo (contrib/demo). It saves screenshots of the demo and the admin page in
//!   `$CARGO_TARGET_TMPDIR/browser-shots/`.
//!
//! Prerequisites (installed by `.ci/run`): Node.js 20 or newer, Debian's `chromium`
//! (`/usr/bin/chromium`, or the path in `RCOMET_CHROMIUM`) and the npm packages of tests/browser
//! and clients/js (`make browser-deps js-deps`, which run `npm ci` there). A missing one fails the
//! test with how to install it.
//!
//! Depends on tests/support only (the engine list).
mod support;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The whole run of resume.mjs, browser start to verdict; the script bounds itself to less.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// The same for client.mjs (it bounds itself to 110 s).
const CLIENT_RUN_TIMEOUT: Duration = Duration::from_secs(130);

const INSTALL: &str = "run `bash .ci/run` once, or install by hand: \
    `apt-get install -y chromium` and `make browser-deps js-deps` (`npm ci` in tests/browser \
    and clients/js)";

fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("RCOMET_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the browser test, if anything.
fn missing_prerequisite() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    let major = node.ok().and_then(|out| {
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        v.strip_prefix('v')?.split('.').next()?.parse::<u32>().ok()
    });
    match major {
        None => return Some("`node` (Node.js 20 or newer) is not on PATH".into()),
        Some(m) if m < 20 => return Some(format!("Node.js {m} is too old (20 or newer)")),
        Some(_) => {}
    }
    let chromium = chromium_path();
    if !chromium.is_file() {
        return Some(format!("Chromium is not at {}", chromium.display()));
    }
    let playwright = harness_dir().join("node_modules/playwright-core/package.json");
    if !playwright.is_file() {
        return Some("tests/browser/node_modules has no playwright-core".into());
    }
    let esbuild =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js/node_modules/esbuild/package.json");
    if !esbuild.is_file() {
        return Some("clients/js/node_modules has no esbuild".into());
    }
    None
}

/// Sends `signal` to the process group `pgid`.
fn kill_group(pgid: u32, signal: i32) {
    // SAFETY: kill(2) on the process group of a child this test started in its own group.
    unsafe { libc::kill(-(pgid as i32), signal) };
}

/// Reads a child's pipe to its end on a thread.
fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

support::engine_tests!(
    a_real_browser_resumes_without_loss_or_duplicates,
    the_js_client_demo_and_admin_page_work_in_a_real_browser,
);

fn a_real_browser_resumes_without_loss_or_duplicates(engine: &'static str) {
    let out = run_harness("resume.mjs", engine, &[], RUN_TIMEOUT);
    for line in ["ws: ok:", "sse: ok:", &format!("browser ({engine}, ")] {
        assert!(out.contains(line), "no {line:?} in its report\n{out}");
    }
}

fn the_js_client_demo_and_admin_page_work_in_a_real_browser(engine: &'static str) {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-shots/{engine}"));
    let shots_arg = shots.to_string_lossy().into_owned();
    let out = run_harness(
        "client.mjs",
        engine,
        &["--shots", &shots_arg],
        CLIENT_RUN_TIMEOUT,
    );
    for line in [
        "client ws: ok:",
        "client sse fallback: ok:",
        "client poll fallback: ok:",
        "client jsonp: ok:",
        "client restart: ok: reset told",
        "client tabs: ok: one connection for two tabs",
        "admin page: ok: showed a push",
        "demo: ok:",
        &format!("client browser test ({engine}, "),
    ] {
        assert!(out.contains(line), "no {line:?} in its report\n{out}");
    }
    for name in ["demo.png", "admin.png"] {
        let png = std::fs::read(shots.join(name)).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "no screenshot {name} in {}",
            shots.display()
        );
    }
}

/// Runs `node SCRIPT --server BIN --engine ENGINE ARGS...` in tests/browser, in its own process
/// group, bounded by `timeout`; fails unless it exits 0, and returns its stdout.
fn run_harness(script: &str, engine: &str, args: &[&str], timeout: Duration) -> String {
    if let Some(missing) = missing_prerequisite() {
        panic!("the browser test cannot run: {missing}; {INSTALL}");
    }
    let mut child = Command::new("node")
        .arg(script)
        .args(["--server", env!("CARGO_BIN_EXE_rcomet"), "--engine", engine])
        .arg("--chromium")
        .arg(chromium_path())
        .args(args)
        .current_dir(harness_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a run past the deadline is stopped with everything it started.
        .process_group(0)
        .spawn()
        .expect("start node");
    let pgid = child.id();
    let stdout = collect(child.stdout.take().expect("stdout piped"));
    let stderr = collect(child.stderr.take().expect("stderr piped"));
    let mut status = None;
    let finished = support::eventually(timeout, || {
        status = child.try_wait().expect("wait for node");
        status.is_some()
    });
    if !finished {
        // SIGTERM first: the harness closes the browser and the server on it.
        kill_group(pgid, libc::SIGTERM);
        if !support::eventually(Duration::from_secs(5), || {
            matches!(child.try_wait(), Ok(Some(_)))
        }) {
            kill_group(pgid, libc::SIGKILL);
            let _ = child.wait();
        }
    }
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    let report = format!("--- stdout\n{out}--- stderr\n{err}");
    assert!(
        finished,
        "{script} did not finish within {timeout:?}\n{report}"
    );
    let status = status.expect("finished");
    assert!(status.success(), "{script} failed ({status})\n{report}");
    eprint!("{out}");
    out
}
