//! The benchmark scripts (and `make install`) look for the release binaries where cargo really
//! builds them: `bench/target_dir.sh` asks cargo, so `CARGO_TARGET_DIR` (absolute or relative to
//! the current directory) is honoured, and `bench/lib.sh` derives `RCOMET_BIN` / `LOADGEN_BIN`
//! from it unless they are given. Only the path lookup runs here, never a benchmark. Depends only
//! on `tests/support`.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `bash -c script` in `cwd` with `env` set (and the target-dir variables cleared first);
/// its stdout lines.
fn bash(script: &str, cwd: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RCOMET_BIN")
        .env_remove("LOADGEN_BIN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bash");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn target_dir(cwd: &Path, env: &[(&str, &str)]) -> PathBuf {
    let lines = bash(&format!("bash {ROOT}/bench/target_dir.sh"), cwd, env);
    assert_eq!(lines.len(), 1, "{lines:?}");
    PathBuf::from(&lines[0])
}

/// `RCOMET_BIN` and `LOADGEN_BIN` as bench/lib.sh sets them.
fn lib_bins(cwd: &Path, env: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let lines = bash(
        &format!(
            "source {ROOT}/bench/lib.sh && printf '%s\\n%s\\n' \"$RCOMET_BIN\" \"$LOADGEN_BIN\""
        ),
        cwd,
        env,
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    (PathBuf::from(&lines[0]), PathBuf::from(&lines[1]))
}

#[test]
fn an_absolute_cargo_target_dir_is_where_the_scripts_look() {
    let dir = TempDir::new("targetdir-abs");
    let target = dir.0.join("elsewhere");
    let target_s = target.to_string_lossy().into_owned();
    let env = [("CARGO_TARGET_DIR", target_s.as_str())];
    assert_eq!(target_dir(Path::new(ROOT), &env), target);
    let (rcomet, loadgen) = lib_bins(Path::new(ROOT), &env);
    assert_eq!(rcomet, target.join("release/rcomet"));
    assert_eq!(loadgen, target.join("release/rcomet-loadgen"));
}

#[test]
fn a_relative_cargo_target_dir_is_taken_from_the_current_directory() {
    // As `cargo build` (and so `make build`) reads it.
    let dir = TempDir::new("targetdir-rel");
    let env = [("CARGO_TARGET_DIR", "out/tgt")];
    let found = target_dir(&dir.0, &env);
    assert!(found.ends_with("out/tgt"), "{found:?}");
    let base = found.parent().and_then(Path::parent).unwrap();
    assert_eq!(
        base.canonicalize().unwrap(),
        dir.0.canonicalize().unwrap(),
        "{found:?}"
    );
}

#[test]
fn without_cargo_target_dir_the_scripts_look_where_this_test_was_built() {
    if std::env::var_os("CARGO_TARGET_DIR").is_some()
        || std::env::var_os("CARGO_BUILD_TARGET_DIR").is_some()
    {
        eprintln!(
            "skipped: this run sets CARGO_TARGET_DIR itself, so its build dir is not the default"
        );
        return;
    }
    // <target>/debug/rcomet (or <target>/<profile>/rcomet): two levels up is the target dir.
    let built = Path::new(env!("CARGO_BIN_EXE_rcomet"));
    let expected = built.parent().and_then(Path::parent).unwrap();
    assert_eq!(target_dir(Path::new(ROOT), &[]), expected);
    let (rcomet, _) = lib_bins(Path::new(ROOT), &[]);
    assert_eq!(rcomet, expected.join("release/rcomet"));
}

#[test]
fn given_binaries_win() {
    let (rcomet, loadgen) = lib_bins(
        Path::new(ROOT),
        &[("RCOMET_BIN", "/opt/r"), ("LOADGEN_BIN", "/opt/l")],
    );
    assert_eq!(rcomet, Path::new("/opt/r"));
    assert_eq!(loadgen, Path::new("/opt/l"));
}

#[test]
fn without_a_usable_cargo_the_variable_or_target_is_used() {
    let dir = TempDir::new("targetdir-nocargo");
    let no_cargo = [("CARGO", "/nonexistent/cargo")];
    assert_eq!(
        target_dir(Path::new(ROOT), &no_cargo),
        Path::new(ROOT).join("target")
    );
    let target = dir.0.join("t");
    let target_s = target.to_string_lossy().into_owned();
    assert_eq!(
        target_dir(
            Path::new(ROOT),
            &[
                ("CARGO", "/nonexistent/cargo"),
                ("CARGO_TARGET_DIR", &target_s)
            ]
        ),
        target
    );
}
