//! Running the built rcomet-loadgen against a real server: finds (or builds) the binary of the
//! same target directory, runs it with a JSON report and a time bound, and reads the server's
//! `/stats`. Depends on the parent support module (server, HTTP GET, JSON reader) and std.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::json::Json;
use super::{get, read_all, Server};

/// Longest one loadgen run may take before the test kills it and fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(45);

/// Newest modification time of the load generator's sources.
fn newest_source() -> Option<SystemTime> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("loadgen");
    let mut newest = std::fs::metadata(root.join("Cargo.toml"))
        .ok()?
        .modified()
        .ok()?;
    for entry in std::fs::read_dir(root.join("src")).ok()? {
        let modified = entry.ok()?.metadata().ok()?.modified().ok()?;
        newest = newest.max(modified);
    }
    Some(newest)
}

/// Path of rcomet-loadgen next to the rcomet binary; built once with cargo if it is missing or
/// older than its sources.
pub fn loadgen_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let rcomet = PathBuf::from(env!("CARGO_BIN_EXE_rcomet"));
        let dir = rcomet.parent().expect("target dir").to_path_buf();
        let bin = dir.join("rcomet-loadgen");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let stale = match (built, newest_source()) {
            (Some(built), Some(src)) => built < src,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if stale {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "rcomet-loadgen"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build -p rcomet-loadgen");
            assert!(status.success(), "cargo build -p rcomet-loadgen: {status}");
        }
        assert!(bin.exists(), "no loadgen binary at {}", bin.display());
        bin
    })
}

/// A running rcomet-loadgen process; killed on drop if still running.
pub struct Loadgen {
    child: Child,
    args: Vec<String>,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

impl Loadgen {
    /// Starts `rcomet-loadgen args…` against the given ports with a JSON report on stdout.
    pub fn spawn(front: SocketAddr, admin: SocketAddr, args: &[&str]) -> Loadgen {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(
            [
                "--front",
                &front.to_string(),
                "--admin",
                &admin.to_string(),
                "--json",
                "--quiet",
                "--timeout",
                "5",
                "--ramp-timeout",
                "20",
                "--min-free-mb",
                "256",
            ]
            .map(String::from),
        );
        let mut child = Command::new(loadgen_bin())
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rcomet-loadgen");
        let out = child.stdout.take().map(read_all);
        let err = child.stderr.take().map(read_all);
        Loadgen {
            child,
            args: all,
            out,
            err,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the exit and returns the parsed report.
    pub fn finish(mut self) -> Json {
        let limit = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for loadgen") {
                break status;
            }
            assert!(
                Instant::now() < limit,
                "rcomet-loadgen {:?} did not finish within {RUN_LIMIT:?}",
                self.args
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self.out.take().map(|h| h.join().unwrap_or_default());
        let err = self.err.take().map(|h| h.join().unwrap_or_default());
        let (out, err) = (out.unwrap_or_default(), err.unwrap_or_default());
        if std::env::var_os("LOADGEN_TEST_VERBOSE").is_some() {
            eprintln!("{:?}\nstdout: {out}\nstderr: {err}", self.args);
        }
        assert!(
            status.success(),
            "{:?} failed: {status}\nstdout:\n{out}\nstderr:\n{err}",
            self.args
        );
        Json::parse(out.trim())
            .unwrap_or_else(|e| panic!("{:?}: bad JSON report ({e}):\n{out}", self.args))
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn run_loadgen(server: &Server, front: SocketAddr, args: &[&str]) -> Json {
    Loadgen::spawn(front, server.admin, args).finish()
}

/// The server's `/stats` object.
pub fn stats(server: &Server) -> Json {
    let r = get(server.admin, "/stats");
    assert_eq!(r.status, 200, "/stats: {}", r.text());
    Json::parse(r.text().trim()).unwrap_or_else(|e| panic!("/stats JSON ({e}): {}", r.text()))
}
