//! rcomet.js's own tests under node's test runner (`node --test clients/js/test/`): the client's
//! state machine (backoff, resume bookkeeping, transport choice, reconnects, tab sharing) with
//! scripted stand-ins for the browser's transports, the build (esbuild) and its size limit (at
//! most 5 KB minified and gzipped), and the package `npm pack` makes. Bounded in time; a missing
//! Node.js or esbuild fails with how to install it. (The client against the real server, in a real
//! browser, is tests/browser.rs.)
//!
//! Depends on tests/support only (`eventually`).
mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn the_js_client_passes_its_node_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js");
    let has_node = Command::new("node").arg("--version").output().is_ok();
    assert!(
        has_node,
        "`node` (Node.js 20 or newer) is not on PATH: run `bash .ci/run` or install Node.js"
    );
    assert!(
        dir.join("node_modules/esbuild/package.json").is_file(),
        "clients/js/node_modules has no esbuild: run `make js-deps` (npm ci in clients/js)"
    );
    let mut child = Command::new("node")
        .args(["--test", "--test-timeout", "30000", "test/"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node --test");
    let mut stdout = child.stdout.take().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut status = None;
    let finished = support::eventually(RUN_TIMEOUT, || {
        status = child.try_wait().expect("wait for node");
        status.is_some()
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let out = reader.join().unwrap_or_default();
    assert!(
        finished,
        "node --test did not finish within {RUN_TIMEOUT:?}\n{out}\n{err}"
    );
    let status = status.expect("finished");
    assert!(
        status.success(),
        "node --test failed ({status})\n{out}\n{err}"
    );
    // The runner's summary: every test passed, and there were some.
    let count = |key: &str| -> usize {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("# {key} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no \"# {key}\" in the report\n{out}"))
    };
    assert_eq!(count("fail"), 0, "{out}");
    assert!(count("pass") >= 20, "too few tests ran\n{out}");
    eprintln!("node --test: {} passed", count("pass"));
}
