//! Installing rcomet: `make install` puts binary, config, systemd unit, sysctl files and docs under
//! PREFIX (in a DESTDIR) and the installed server runs on the installed config; the Debian package
//! built by contrib/debian/build-deb.sh holds the same files with sane metadata and maintainer
//! scripts, and the binary extracted from it (`dpkg -x` into a temporary directory, never onto
//! this system) runs; the systemd unit is what an operator needs (Type=notify, enough descriptors,
//! a stop timeout above the server's shutdown deadline, restart on failure, reload as SIGHUP, a
//! state directory holding the shipped config's snapshot) and passes
//! `systemd-analyze verify`. Where root may build a throwaway copy of this system (an overlay of
//! / in a private mount namespace), contrib/debian/test-install.sh installs the package there with
//! dpkg -i, runs it as its user, removes and purges it. The binary installed is the one cargo built
//! for these tests. Tests that need `make`, `dpkg-deb`, `systemd-analyze` or root say so and pass
//! where it is absent.
//! Depends only on `tests/support`.
mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_rcomet");

/// Whether `tool` can be run here; if not, says which test it skips.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("{test}: skipped: {tool} is not installed");
    }
    found
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// An installed server, killed on drop.
struct Running {
    child: Child,
    admin: SocketAddr,
    front: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` on `config` (its ports replaced by free ones) and waits for its ready line.
fn start_installed(program: &Path, config: &Path, engine: &str) -> Running {
    let mut child = Command::new(program)
        .arg(config)
        .args(["--engine", engine, "--log-output", "stderr"])
        .args([
            "--admin-listen",
            "127.0.0.1:0",
            "--front-listen",
            "127.0.0.1:0",
        ])
        .args(["--threads", "2"])
        // The shipped config's snapshot is the system's (/var/lib/rcomet): never read or write
        // it from a test.
        .args(["--snapshot", ""])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let Some(ready) = ReadyLine::wait(&mut child, Duration::from_secs(20)) else {
        let _ = child.kill();
        panic!("{} printed no ready line", program.display());
    };
    assert!(
        ready.0.ends_with(&format!("engine={engine}")),
        "{}",
        ready.0
    );
    Running {
        admin: ready.addr("admin="),
        front: ready.addr("front="),
        child,
    }
}

/// The installed server answers on both ports (the admin port allows 127.0.0.1).
fn assert_serves(server: &Running) {
    let ping = get(server.front, "/ping");
    assert_eq!(ping.status, 200);
    assert!(
        ping.text().contains("\"sub_timeout\":30"),
        "{}",
        ping.text()
    );
    assert_eq!(get(server.admin, "/info").status, 200);
}

/// `key=value` lines of a unit file, without comments.
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> &'a str {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

/// Seconds in a systemd time span such as `30s`, `30` or `1min`.
fn seconds(span: &str) -> u64 {
    if let Some(min) = span.strip_suffix("min") {
        return min.trim().parse::<u64>().unwrap() * 60;
    }
    span.trim_end_matches('s').trim().parse().unwrap()
}

/// `systemd-analyze verify` of `unit` with its ExecStart pointed at `program`: no complaint.
fn verify_unit(unit: &str, program: &Path, test: &str) {
    if !have("systemd-analyze", test) {
        return;
    }
    let dir = TempDir::new("unit");
    let settings = unit_settings(unit);
    let exec = setting(&settings, "ExecStart");
    let installed = exec.split_whitespace().next().unwrap();
    let path = dir.0.join("rcomet.service");
    std::fs::write(&path, unit.replace(installed, &program.to_string_lossy())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
}

#[test]
fn the_systemd_unit_is_what_an_operator_needs() {
    let unit =
        std::fs::read_to_string(Path::new(ROOT).join("contrib/systemd/rcomet.service")).unwrap();
    let s = unit_settings(&unit);
    assert_eq!(setting(&s, "Type"), "notify");
    assert_eq!(
        setting(&s, "ExecStart"),
        "/usr/bin/rcomet /etc/rcomet/rcomet.conf"
    );
    assert_eq!(setting(&s, "Restart"), "on-failure");
    assert_eq!(setting(&s, "User"), "rcomet");
    let nofile: u64 = setting(&s, "LimitNOFILE").parse().unwrap();
    assert!(nofile >= 1_048_576, "LimitNOFILE={nofile}");
    // The stop timeout leaves the shipped config's shutdown deadline room.
    let conf = std::fs::read_to_string(Path::new(ROOT).join("contrib/rcomet.conf")).unwrap();
    let deadline: u64 = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("shutdown_timeout:"))
        .expect("the shipped config sets server.shutdown_timeout")
        .trim()
        .parse()
        .unwrap();
    let stop = seconds(setting(&s, "TimeoutStopSec"));
    assert!(
        stop >= deadline + 10,
        "TimeoutStopSec={stop}s, shutdown_timeout {deadline}s"
    );
    assert_eq!(setting(&s, "WantedBy"), "multi-user.target");
    // `systemctl reload` is SIGHUP, which reads the configuration again.
    assert_eq!(setting(&s, "ExecReload"), "/bin/kill -HUP $MAINPID");
    // The shipped config's snapshot lies in the state directory the unit gives the service:
    // with ProtectSystem=strict nothing else outlives a restart.
    assert_eq!(setting(&s, "ProtectSystem"), "strict");
    let state = setting(&s, "StateDirectory");
    assert_eq!(state, "rcomet");
    let snapshot = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("snapshot:"))
        .expect("the shipped config sets server.snapshot")
        .trim();
    assert_eq!(
        Path::new(snapshot).parent(),
        Some(Path::new("/var/lib").join(state).as_path()),
        "server.snapshot {snapshot} is not in StateDirectory={state}"
    );
    verify_unit(
        &unit,
        Path::new(BIN),
        "the_systemd_unit_is_what_an_operator_needs",
    );
}

engine_tests!(make_install_puts_every_file_in_place);
fn make_install_puts_every_file_in_place(engine: &'static str) {
    if !have("make", "make_install_puts_every_file_in_place") {
        return;
    }
    let dest = TempDir::new("install");
    let install = || {
        Command::new("make")
            .current_dir(ROOT)
            .args(["-s", "install", &format!("BIN={BIN}"), "PREFIX=/opt/rcomet"])
            .arg(format!("DESTDIR={}", dest.0.display()))
            .output()
            .expect("run make")
    };
    ok(install(), "make install");
    let at = |p: &str| dest.0.join(p.trim_start_matches('/'));
    let bin = at("/opt/rcomet/bin/rcomet");
    let conf = at("/opt/rcomet/etc/rcomet/rcomet.conf");
    let unit_path = at("/opt/rcomet/lib/systemd/system/rcomet.service");
    assert!(is_executable(&bin), "{}", bin.display());
    assert_eq!(mode(&conf), 0o644);
    assert_eq!(mode(&unit_path), 0o644);
    for f in [
        "/opt/rcomet/share/rcomet/sysctl/99-rcomet-c1000k.conf",
        "/opt/rcomet/share/rcomet/sysctl/README.md",
        "/opt/rcomet/share/doc/rcomet/README.md",
        "/opt/rcomet/share/doc/rcomet/PROTOCOL.md",
    ] {
        assert!(at(f).is_file(), "{f} not installed");
    }
    assert!(is_executable(&at(
        "/opt/rcomet/share/rcomet/sysctl/check.sh"
    )));
    // The unit runs this installation's binary on this installation's config.
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let s = unit_settings(&unit);
    assert_eq!(
        setting(&s, "ExecStart"),
        "/opt/rcomet/bin/rcomet /opt/rcomet/etc/rcomet/rcomet.conf"
    );
    verify_unit(&unit, &bin, "make_install_puts_every_file_in_place");

    let server = start_installed(&bin, &conf, engine);
    assert_serves(&server);
    drop(server);

    // An edited config survives the next install.
    let edited = std::fs::read_to_string(&conf).unwrap() + "# edited\n";
    std::fs::write(&conf, &edited).unwrap();
    ok(install(), "make install again");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);
}

/// Builds the package from the test binary into `out`; its path.
fn build_deb(out: &Path) -> PathBuf {
    let printed = ok(
        Command::new("bash")
            .arg(Path::new(ROOT).join("contrib/debian/build-deb.sh"))
            .arg(BIN)
            .arg(out)
            .output()
            .unwrap(),
        "build-deb.sh",
    );
    let deb = PathBuf::from(printed.trim());
    assert!(deb.is_file(), "{printed:?}");
    deb
}

engine_tests!(the_debian_package_installs_and_runs);
fn the_debian_package_installs_and_runs(engine: &'static str) {
    const TEST: &str = "the_debian_package_installs_and_runs";
    if !have("dpkg-deb", TEST) || !have("dpkg", TEST) {
        return;
    }
    let dir = TempDir::new("deb");
    let deb = build_deb(&dir.0);
    let field = |name: &str| {
        ok(
            Command::new("dpkg-deb")
                .arg("-f")
                .arg(&deb)
                .arg(name)
                .output()
                .unwrap(),
            "dpkg-deb -f",
        )
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), "rcomet");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    let depends = field("Depends");
    assert!(
        depends.contains("adduser") && depends.contains("libc6"),
        "Depends: {depends}"
    );
    assert!(!field("Maintainer").is_empty());
    assert!(!field("Description").is_empty());

    // Every file where a Debian system expects it, owned by root.
    let listing = ok(
        Command::new("dpkg-deb")
            .arg("-c")
            .arg(&deb)
            .output()
            .unwrap(),
        "dpkg-deb -c",
    );
    for line in listing.lines() {
        assert!(line.contains(" root/root "), "not owned by root: {line}");
    }
    let root = dir.0.join("root");
    ok(
        Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(&root)
            .output()
            .unwrap(),
        "dpkg -x",
    );
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let bin = at("/usr/bin/rcomet");
    assert!(is_executable(&bin));
    let unit = std::fs::read_to_string(at("/lib/systemd/system/rcomet.service")).unwrap();
    assert_eq!(
        setting(&unit_settings(&unit), "ExecStart"),
        "/usr/bin/rcomet /etc/rcomet/rcomet.conf"
    );
    for f in [
        "/etc/rcomet/rcomet.conf",
        "/usr/share/doc/rcomet/copyright",
        "/usr/share/doc/rcomet/README.md",
        "/usr/share/doc/rcomet/PROTOCOL.md",
        "/usr/share/rcomet/sysctl/99-rcomet-c1000k.conf",
    ] {
        assert!(at(f).is_file(), "{f} not in the package");
    }

    // Control files: the config is a conffile; the maintainer scripts are executable shell that
    // parses.
    let control = dir.0.join("control");
    ok(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(&control)
            .output()
            .unwrap(),
        "dpkg-deb -e",
    );
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/rcomet/rcomet.conf\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        assert!(is_executable(&path), "{script}");
        ok(
            Command::new("sh").arg("-n").arg(&path).output().unwrap(),
            script,
        );
    }

    let server = start_installed(&bin, &at("/etc/rcomet/rcomet.conf"), engine);
    assert_serves(&server);
}

/// Runs a maintainer script with every command it may call replaced by a stub that logs its
/// arguments, so that nothing on this system changes; `DPKG_ROOT` is a temporary directory.
/// Returns the log of calls.
fn run_script(script: &str, args: &[&str], dir: &Path, user_exists: bool) -> String {
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let log = dir.join("calls.log");
    for tool in [
        "adduser",
        "chown",
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
    ] {
        let path = stubs.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 0\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let getent = stubs.join("getent");
    std::fs::write(
        &getent,
        format!(
            "#!/bin/sh\necho \"getent $*\" >> '{}'\nexit {}\n",
            log.display(),
            if user_exists { 0 } else { 2 }
        ),
    )
    .unwrap();
    std::fs::set_permissions(&getent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap());
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    ok(
        Command::new("sh")
            .arg(Path::new(ROOT).join("contrib/debian").join(script))
            .args(args)
            .env("PATH", path)
            .env("DPKG_ROOT", &root)
            .output()
            .unwrap(),
        script,
    );
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    calls
}

#[test]
fn the_maintainer_scripts_create_the_user_once_and_manage_the_service() {
    let dir = TempDir::new("maint");
    // A first installation: the system user is created, the log and state directories given
    // to it, the service enabled.
    let calls = run_script("postinst", &["configure"], &dir.0, false);
    let adduser: Vec<&str> = calls.lines().filter(|l| l.starts_with("adduser")).collect();
    assert_eq!(adduser.len(), 1, "{calls}");
    for flag in ["--system", "--group", "--no-create-home", "rcomet"] {
        assert!(adduser[0].split_whitespace().any(|w| w == flag), "{calls}");
    }
    assert!(dir.0.join("root/var/log/rcomet").is_dir());
    assert!(dir.0.join("root/var/lib/rcomet").is_dir());
    let chowns: Vec<&str> = calls.lines().filter(|l| l.starts_with("chown")).collect();
    for d in ["/var/log/rcomet", "/var/lib/rcomet"] {
        assert!(
            chowns
                .iter()
                .any(|l| l.starts_with("chown rcomet:rcomet") && l.ends_with(d)),
            "{d} not given to rcomet: {calls}"
        );
    }
    assert!(
        calls.contains("deb-systemd-helper enable rcomet.service"),
        "{calls}"
    );
    // An upgrade: the user exists, nobody is added.
    let calls = run_script("postinst", &["configure", "0.0.9"], &dir.0, true);
    assert!(!calls.contains("adduser"), "{calls}");
    // Removal leaves the log and state directories (a snapshot survives a reinstallation),
    // purge removes them (and never the user).
    std::fs::write(dir.0.join("root/var/lib/rcomet/channels.snapshot"), b"kept").unwrap();
    let calls = run_script("postrm", &["remove"], &dir.0, true);
    assert!(calls.contains("deb-systemd-helper mask"), "{calls}");
    assert!(dir.0.join("root/var/log/rcomet").is_dir());
    assert!(dir
        .0
        .join("root/var/lib/rcomet/channels.snapshot")
        .is_file());
    let calls = run_script("postrm", &["purge"], &dir.0, true);
    assert!(calls.contains("deb-systemd-helper purge"), "{calls}");
    assert!(!dir.0.join("root/var/log/rcomet").exists());
    assert!(!dir.0.join("root/var/lib/rcomet").exists());
    assert!(!calls.contains("deluser"), "{calls}");
    run_script("prerm", &["remove"], &dir.0, true);
}

#[test]
fn the_debian_package_installs_runs_and_purges_on_a_copy_of_this_system() {
    const TEST: &str = "the_debian_package_installs_runs_and_purges_on_a_copy_of_this_system";
    if !have("dpkg-deb", TEST) {
        return;
    }
    let dir = TempDir::new("deb-install");
    let deb = build_deb(&dir.0);
    // dpkg -i inside an overlay of / in a private mount namespace: this system is not changed.
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("contrib/debian/test-install.sh"))
        .arg(&deb)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(77) {
        eprintln!("{TEST}: {}", stderr.trim());
        return;
    }
    let stdout = ok(out, "test-install.sh");
    assert!(
        stdout.contains("installed, ran as rcomet"),
        "{stdout}\n{stderr}"
    );
}
