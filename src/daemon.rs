//! Process management for `-d` and `-s stop|restart`: detaching into the background, the pidfile
//! (refused while its process lives, removed on drop), and stopping a running server through its
//! pidfile. Depends on libc only.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Detaches the process: fork (the parent exits 0), setsid, fork again (so the daemon can never
/// reacquire a terminal), and point stdin/stdout/stderr at /dev/null. The working directory is
/// kept. Call it before any thread is started: only the calling thread survives a fork.
pub fn daemonize() -> io::Result<()> {
    // Unflushed output would otherwise be written twice, or by the wrong process.
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    fork_and_exit_parent()?;
    // SAFETY: setsid takes no arguments and touches no memory of this process.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    fork_and_exit_parent()?;
    redirect_stdio_to_dev_null()
}

/// Forks; the parent leaves at once with status 0, the child returns `Ok`.
fn fork_and_exit_parent() -> io::Result<()> {
    // SAFETY: the caller runs single-threaded (documented on `daemonize`), so the child's copy of
    // the address space holds no lock owned by a thread that no longer exists.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(()),
        // SAFETY: _exit ends the parent without running destructors or atexit handlers, which
        // could flush or delete state (buffers, temp files) that the child still owns.
        _ => unsafe { libc::_exit(0) },
    }
}

fn redirect_stdio_to_dev_null() -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let fd = null.as_raw_fd();
    for target in 0..=2 {
        // SAFETY: `fd` is open (owned by `null`, alive here) and 0..=2 are the standard
        // descriptors; dup2 replaces them atomically and touches no memory.
        if fd != target && unsafe { libc::dup2(fd, target) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // /dev/null may itself have landed on 0, 1 or 2 (if they were closed): keep it open then.
    let fd = null.into_raw_fd();
    if fd > 2 {
        // SAFETY: `fd` came from `into_raw_fd`, so nothing else owns or will close it.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// A pidfile holding this process's id; removed on drop if it still names this process.
/// Create it after [`daemonize`], which changes the process id.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    pid: libc::pid_t,
}

impl Pidfile {
    /// Writes this process's id to `path`. Refuses (`AlreadyExists`) if the file names another
    /// live process; a stale or unreadable-content file is replaced.
    pub fn create(path: &Path) -> io::Result<Pidfile> {
        let pid = own_pid();
        match read_pid(path) {
            Ok(Some(old)) if old != pid && is_alive(old) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: process {old} is running", path.display()),
                ));
            }
            Ok(_) => remove_if_present(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(path, e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| with_path(path, e))?;
        let pidfile = Pidfile {
            path: path.to_path_buf(),
            pid,
        };
        // From here on, a failure drops `pidfile`, which removes the half-written file.
        file.write_all(format!("{pid}\n").as_bytes())
            .map_err(|e| with_path(path, e))?;
        Ok(pidfile)
    }

    /// Where the pidfile lives.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // A forked child holds a copy of this value; only the process named in the file
        // removes it, and never a newer server's file.
        if own_pid() == self.pid && matches!(read_pid(&self.path), Ok(Some(p)) if p == self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How often `stop` looks whether the process is gone.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Sends SIGTERM to the process named in `pidfile` and waits until the pidfile disappears (or
/// names another process) or the process is gone. Errors: `NotFound` for a missing pidfile or a
/// process that is not running, `InvalidData` for a pidfile without a usable id, `TimedOut` if the
/// process still runs after `timeout`.
pub fn stop(pidfile: &Path, timeout: Duration) -> io::Result<()> {
    let shown = pidfile.display();
    let pid = match read_pid(pidfile) {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{shown}: does not hold a process id"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{shown}: no pidfile (is the server running?)"),
            ))
        }
        Err(e) => return Err(with_path(pidfile, e)),
    };
    // Ids 0 and 1 (and negatives, already refused by read_pid) would signal a process group,
    // everyone, or init.
    if pid <= 1 || pid == own_pid() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{shown}: refusing to signal process {pid}"),
        ));
    }
    // SAFETY: kill only sends a signal; `pid` > 1 names a single process.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{shown}: process {pid} is not running (stale pidfile)"),
            ));
        }
        return Err(io::Error::new(
            e.kind(),
            format!("{shown}: cannot signal process {pid}: {e}"),
        ));
    }
    let deadline = Instant::now() + timeout;
    loop {
        let still_named = matches!(read_pid(pidfile), Ok(Some(p)) if p == pid);
        if !still_named || !is_alive(pid) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "process {pid} still runs {} ms after SIGTERM",
                    timeout.as_millis()
                ),
            ));
        }
        std::thread::sleep(STOP_POLL.min(deadline - now));
    }
}

fn own_pid() -> libc::pid_t {
    // SAFETY: getpid cannot fail and touches no memory.
    unsafe { libc::getpid() }
}

/// The id in a pidfile: `Ok(None)` if the content is not a positive number.
fn read_pid(path: &Path) -> io::Result<Option<libc::pid_t>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .trim()
        .parse::<libc::pid_t>()
        .ok()
        .filter(|pid| *pid > 0))
}

/// Whether a process with this id exists (EPERM: it exists but belongs to someone else).
fn is_alive(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; `pid` > 0 names one process.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(path, e)),
        _ => Ok(()),
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rcomet-daemon-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("rcomet.pid")
    }

    fn cleanup(path: &Path) {
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    fn pid_of(child: &Child) -> libc::pid_t {
        libc::pid_t::try_from(child.id()).unwrap()
    }

    /// The id of a process that has exited and been reaped.
    fn dead_pid() -> libc::pid_t {
        let mut child = Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        pid_of(&child)
    }

    #[test]
    fn pidfile_written_and_removed_on_drop() {
        let path = temp_path("basic");
        let pidfile = Pidfile::create(&path).unwrap();
        assert_eq!(pidfile.path(), path);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(pidfile);
        assert!(!path.exists());
        cleanup(&path);
    }

    #[test]
    fn pidfile_refused_while_its_process_lives() {
        let path = temp_path("live");
        let mut child = sleeper();
        std::fs::write(&path, format!("{}\n", child.id())).unwrap();
        let err = Pidfile::create(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains(&child.id().to_string()), "{err}");
        // The live process's pidfile is left alone.
        assert_eq!(read_pid(&path).unwrap(), Some(pid_of(&child)));
        child.kill().unwrap();
        child.wait().unwrap();
        cleanup(&path);
    }

    #[test]
    fn stale_or_garbage_pidfile_is_replaced() {
        let path = temp_path("stale");
        for content in [
            format!("{}\n", dead_pid()),
            "garbage".to_string(),
            String::new(),
        ] {
            std::fs::write(&path, content).unwrap();
            let pidfile = Pidfile::create(&path).unwrap();
            assert_eq!(read_pid(&path).unwrap(), Some(own_pid()));
            drop(pidfile);
        }
        cleanup(&path);
    }

    #[test]
    fn drop_leaves_a_file_that_names_another_process() {
        let path = temp_path("replaced");
        let pidfile = Pidfile::create(&path).unwrap();
        std::fs::write(&path, "12345\n").unwrap();
        drop(pidfile);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "12345\n");
        cleanup(&path);
    }

    #[test]
    fn stop_signals_and_waits_for_the_pidfile_to_go() {
        let path = temp_path("stop");
        let mut child = sleeper();
        std::fs::write(&path, format!("{}\n", child.id())).unwrap();
        // Plays the server's part: remove the pidfile once the process has ended.
        let reaper_path = path.clone();
        let reaper = std::thread::spawn(move || {
            let status = child.wait().unwrap();
            std::fs::remove_file(&reaper_path).unwrap();
            status
        });
        stop(&path, Duration::from_secs(10)).unwrap();
        let status = reaper.join().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        cleanup(&path);
    }

    #[test]
    fn stop_times_out_when_sigterm_is_ignored() {
        let path = temp_path("timeout");
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        BufReader::new(out).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        std::fs::write(&path, format!("{}\n", child.id())).unwrap();
        let err = stop(&path, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        child.kill().unwrap();
        child.wait().unwrap();
        cleanup(&path);
    }

    #[test]
    fn stop_errors_are_clear() {
        let path = temp_path("errors");
        let err = stop(&path, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("no pidfile"), "{err}");
        std::fs::write(&path, format!("{}\n", dead_pid())).unwrap();
        let err = stop(&path, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("not running"), "{err}");
        for bad in ["0", "-1", "1", "x", ""] {
            std::fs::write(&path, bad).unwrap();
            let err = stop(&path, Duration::from_secs(1)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}: {err}");
        }
        std::fs::write(&path, own_pid().to_string()).unwrap();
        let err = stop(&path, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        cleanup(&path);
    }

    const CHILD_ENV: &str = "RCOMET_DAEMONIZE_REPORT";

    /// Run by `daemonize_detaches` in a separate process: daemonize, report, exit.
    #[test]
    #[ignore = "helper process for daemonize_detaches"]
    fn daemonize_child() {
        let Some(report) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let report = PathBuf::from(report);
        let before = std::env::current_dir().unwrap();
        daemonize().unwrap();
        // SAFETY: getsid(0) and getppid only read this process's ids.
        let (sid, ppid) = unsafe { (libc::getsid(0), libc::getppid()) };
        let stdin = std::fs::read_link("/proc/self/fd/0").unwrap_or_default();
        let stdout = std::fs::read_link("/proc/self/fd/1").unwrap_or_default();
        let text = format!(
            "{}\n{sid}\n{ppid}\n{}\n{}\n{}\n",
            own_pid(),
            stdin.display(),
            stdout.display(),
            (std::env::current_dir().unwrap() == before)
        );
        let tmp = report.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &report).unwrap();
        // SAFETY: leave at once; this forked copy of the test harness has no other threads.
        unsafe { libc::_exit(0) };
    }

    #[test]
    fn daemonize_detaches() {
        let report = temp_path("daemonize").with_file_name("report");
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "daemon::tests::daemonize_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, &report)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let first_pid = pid_of(&child);
        assert!(child.wait().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !report.exists() {
            assert!(Instant::now() < deadline, "daemon never reported");
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = std::fs::read_to_string(&report).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        let daemon_pid: libc::pid_t = lines[0].parse().unwrap();
        let sid: libc::pid_t = lines[1].parse().unwrap();
        assert_ne!(daemon_pid, first_pid);
        // Second fork: in a new session, but not its leader (cannot regain a terminal).
        assert_ne!(sid, daemon_pid);
        // SAFETY: getsid(0) only reads this process's session id.
        assert_ne!(sid, unsafe { libc::getsid(0) });
        assert_ne!(lines[2], first_pid.to_string());
        assert_eq!(lines[3], "/dev/null");
        assert_eq!(lines[4], "/dev/null");
        assert_eq!(lines[5], "true", "working directory kept");
        cleanup(&report);
    }
}
