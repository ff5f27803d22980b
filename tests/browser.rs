//! The real-browser test: headless Chromium opens a native `WebSocket` and a native
//! `EventSource` with ids against the real server binary, their connections are dropped and
//! re-opened mid-stream (by the page, and cut from outside by a TCP proxy) while pushes keep
//! coming, and every message must arrive exactly once, in order. The harness is the node script
//! tests/browser/resume.mjs (playwright-core driving the system's Chromium); this test only checks
//! the prerequisites, runs it with the binary cargo built, bounded in time, and reads its verdict.
//!
//! Prerequisites (installed by `.ci/run`): Node.js 20 or newer, Debian's `chromium`
//! (`/usr/bin/chromium`, or the path in `RCOMET_CHROMIUM`) and the npm packages of tests/browser
//! (`make browser-deps`, which runs `npm ci` there). A missing one fails the test with how to
//! install it.
//!
//! Depends on tests/support only (the engine list).
mod support;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The whole run, browser start to verdict; the script bounds itself to less.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

const INSTALL: &str = "run `bash .ci/run` once, or install by hand: \
    `apt-get install -y chromium` and `make browser-deps` (`npm ci` in tests/browser)";

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

support::engine_tests!(a_real_browser_resumes_without_loss_or_duplicates);

fn a_real_browser_resumes_without_loss_or_duplicates(engine: &'static str) {
    if let Some(missing) = missing_prerequisite() {
        panic!("the browser test cannot run: {missing}; {INSTALL}");
    }
    let mut child = Command::new("node")
        .arg("resume.mjs")
        .args(["--server", env!("CARGO_BIN_EXE_rcomet"), "--engine", engine])
        .arg("--chromium")
        .arg(chromium_path())
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
    let finished = support::eventually(RUN_TIMEOUT, || {
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
        "the browser test did not finish within {RUN_TIMEOUT:?}\n{report}"
    );
    let status = status.expect("finished");
    assert!(
        status.success(),
        "the browser test failed ({status})\n{report}"
    );
    for line in ["ws: ok:", "sse: ok:", &format!("browser ({engine}, ")] {
        assert!(out.contains(line), "no {line:?} in its report\n{report}");
    }
    eprint!("{out}");
}
