//! Process management for `-d` and `-s stop|restart`: detaching into the background (the process
//! that ran `-d` waits until the daemon reports ready or failed, and exits accordingly), the
//! pidfile (refused while its process lives, removed on drop), and stopping a running server
//! through its pidfile. Depends on libc only.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Detaches the process: fork, setsid, fork again (so the daemon can never reacquire a terminal),
/// and point stdin/stdout/stderr at /dev/null. The working directory is kept. Call it before any
/// thread is started: only the calling thread survives a fork.
///
/// The original process does not return: it waits on a pipe until the daemon reports how its
/// start went ([`StartReport`]), prints that on its own stdout (ready) or stderr (failure), and
/// exits 0 or 1. So `rcomet -d` exits non-zero, with the reason on the terminal, when the daemon
/// cannot start. Only the daemon returns, with the report to send.
pub fn daemonize() -> io::Result<StartReport> {
    // Unflushed output would otherwise be written twice, or by the wrong process.
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let (read_end, write_end) = start_pipe()?;
    // SAFETY: the caller runs single-threaded (documented above), so the child's copy of the
    // address space holds no lock owned by a thread that no longer exists.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => drop(read_end),
        child => {
            drop(write_end);
            wait_for_daemon(read_end, child)
        }
    }
    let report = StartReport {
        pipe: Some(File::from(write_end)),
    };
    // The intermediate child: a new session, then the daemon in it. A failure here is reported
    // through the pipe, as the daemon would.
    // SAFETY: setsid takes no arguments and touches no memory of this process.
    if unsafe { libc::setsid() } == -1 {
        report.fail_and_exit(&format!("setsid: {}", io::Error::last_os_error()));
    }
    // SAFETY: as for the first fork; this process is still single-threaded.
    match unsafe { libc::fork() } {
        -1 => report.fail_and_exit(&format!("fork: {}", io::Error::last_os_error())),
        0 => {}
        // SAFETY: _exit ends the intermediate child without running destructors or atexit
        // handlers, which could flush or delete state (buffers, temp files) the daemon owns.
        _ => unsafe { libc::_exit(0) },
    }
    if let Err(e) = redirect_stdio_to_dev_null() {
        report.fail_and_exit(&format!("cannot redirect standard I/O to /dev/null: {e}"));
    }
    Ok(report)
}

/// The daemon's end of the start-up pipe: says once whether the server is ready or could not
/// start; the process that ran `-d` waits for it. Dropped without a word (a crash), the waiting
/// process sees the pipe close and reports a failed start.
#[derive(Debug)]
pub struct StartReport {
    pipe: Option<File>,
}

/// First byte of the message on the start-up pipe.
const READY: u8 = b'R';
const FAILED: u8 = b'E';

impl StartReport {
    /// The server is up: `line` is printed on the original stdout and the original process
    /// exits 0.
    pub fn ready(mut self, line: &str) {
        self.send(READY, line);
    }

    /// The start failed: `reason` is printed on the original stderr and that process exits 1.
    pub fn failed(mut self, reason: &str) {
        self.send(FAILED, reason);
    }

    fn fail_and_exit(mut self, reason: &str) -> ! {
        self.send(FAILED, reason);
        // SAFETY: _exit ends this forked child without running destructors or atexit handlers
        // that belong to the original process.
        unsafe { libc::_exit(1) }
    }

    fn send(&mut self, kind: u8, text: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            let mut message = Vec::with_capacity(text.len() + 1);
            message.push(kind);
            message.extend_from_slice(text.as_bytes());
            // If the waiting process is gone there is nobody to tell.
            let _ = pipe.write_all(&message);
        }
    }
}

/// A pipe whose ends are closed on exec.
fn start_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The original process after the first fork: reads the daemon's report until every write end
/// is closed, reaps the intermediate child, prints the report and exits.
fn wait_for_daemon(read_end: OwnedFd, intermediate: libc::pid_t) -> ! {
    let mut message = Vec::new();
    let read = File::from(read_end).read_to_end(&mut message);
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    unsafe { libc::waitpid(intermediate, &mut status, 0) };
    let code = match (read, message.split_first()) {
        (Ok(_), Some((&READY, line))) => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(line);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
            0
        }
        (Ok(_), Some((&FAILED, reason))) => {
            eprintln!("rcomet: {}", String::from_utf8_lossy(reason));
            1
        }
        (Err(e), _) => {
            eprintln!("rcomet: lost the daemon's start-up report: {e}");
            1
        }
        _ => {
            eprintln!("rcomet: the daemon exited during start-up without saying why (see its log)");
            1
        }
    };
    let _ = io::stderr().flush();
    // SAFETY: _exit leaves without running destructors or atexit handlers, which could flush or
    // delete state (buffers, temp files) that the daemon now owns.
    unsafe { libc::_exit(code) }
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
    let pid = signal(pidfile, libc::SIGTERM)?;
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

/// Sends SIGHUP to the process named in `pidfile` (`-s reload`); errors as for [`stop`].
pub fn reload(pidfile: &Path) -> io::Result<()> {
    signal(pidfile, libc::SIGHUP).map(|_| ())
}

/// Sends `sig` to the process named in `pidfile`; returns its id.
fn signal(pidfile: &Path, sig: libc::c_int) -> io::Result<libc::pid_t> {
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
    if unsafe { libc::kill(pid, sig) } == -1 {
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
    Ok(pid)
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
    /// Set: the daemonized helper reports a failed start instead.
    const CHILD_FAIL_ENV: &str = "RCOMET_DAEMONIZE_FAIL";

    /// Run by `daemonize_detaches` in a separate process: daemonize, report, exit.
    #[test]
    #[ignore = "helper process for daemonize_detaches"]
    fn daemonize_child() {
        let Some(report) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let report = PathBuf::from(report);
        let before = std::env::current_dir().unwrap();
        let start = daemonize().unwrap();
        if std::env::var_os(CHILD_FAIL_ENV).is_some() {
            start.failed("no luck today");
            // SAFETY: leave at once; this forked copy of the test harness has no other threads.
            unsafe { libc::_exit(1) };
        }
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
        start.ready(&format!("daemon ready pid={}", own_pid()));
        // SAFETY: leave at once; this forked copy of the test harness has no other threads.
        unsafe { libc::_exit(0) };
    }

    #[test]
    fn daemonize_detaches() {
        let report = temp_path("daemonize").with_file_name("report");
        let exe = std::env::current_exe().unwrap();
        let child = Command::new(exe)
            .args([
                "--exact",
                "daemon::tests::daemonize_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, &report)
            .env_remove(CHILD_FAIL_ENV)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let first_pid = pid_of(&child);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        // The first process waited for the daemon: the report exists, its line was printed.
        assert!(
            report.exists(),
            "the first process exited before the daemon was ready"
        );
        let printed = String::from_utf8_lossy(&out.stdout);
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
        assert!(
            printed.contains(&format!("daemon ready pid={daemon_pid}\n")),
            "the ready line is printed by the first process: {printed:?}"
        );
        cleanup(&report);
    }

    #[test]
    fn a_failed_daemon_start_makes_the_first_process_exit_1_with_the_reason() {
        let report = temp_path("daemonize-fail").with_file_name("report");
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "daemon::tests::daemonize_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, &report)
            .env(CHILD_FAIL_ENV, "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("rcomet: no luck today"), "{stderr}");
        cleanup(&report);
    }
}
