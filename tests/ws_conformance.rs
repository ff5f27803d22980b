//! WebSocket conformance with a standard third-party client: runs tests/ws_conformance/
//! conformance.py (the Python `websockets` library, pinned in requirements.txt next to it) against
//! the real binary on each engine. The script starts a fresh server per case on port 0 and reads
//! its ready line; this test checks the script's exit status and closing line, and shows its
//! output when a case fails. A missing `python3` or `websockets` fails with the install command.
//!
//! Depends on tests/support (engine selection) and the script.
mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/ws_conformance/conformance.py"
);
const INSTALL: &str = "python3 -m pip install -r tests/ws_conformance/requirements.txt";
/// The whole set takes about ten seconds; this bounds a stuck run.
const LIMIT: Duration = Duration::from_secs(180);

engine_tests!(websockets_client_conformance);

/// Fails with the install command unless `python3` can import `websockets`.
fn require_client_library() {
    let probe = Command::new("python3")
        .args(["-c", "import websockets; print(websockets.__version__)"])
        .output();
    match probe {
        Err(e) => {
            panic!("python3 is needed for the WebSocket conformance set ({e}); then: {INSTALL}")
        }
        Ok(out) if !out.status.success() => panic!(
            "the Python module `websockets` is missing; install it with: {INSTALL}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(_) => {}
    }
}

fn websockets_client_conformance(engine: &'static str) {
    require_client_library();
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .args(["--server", env!("CARGO_BIN_EXE_rcomet"), "--engine", engine])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python3") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let report = format!("--- conformance.py stdout:\n{out}--- stderr:\n{err}");
    let status = status.unwrap_or_else(|| panic!("the set did not finish in {LIMIT:?}\n{report}"));
    assert_eq!(status.code(), Some(0), "{report}");
    let closing = out.lines().last().unwrap_or_default();
    let count = |word: &str| -> Option<usize> {
        let words: Vec<&str> = closing.split_whitespace().collect();
        let at = words.iter().position(|w| w.trim_end_matches(',') == word)?;
        words.get(at.checked_sub(1)?)?.parse().ok()
    };
    assert_eq!(count("failed"), Some(0), "{report}");
    let passed = count("passed").unwrap_or(0);
    assert!(
        passed >= 13,
        "every case ran and passed: {passed}\n{report}"
    );
    eprintln!("{engine}:\n{out}");
}
