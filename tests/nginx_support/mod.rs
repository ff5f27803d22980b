//! Debian's real nginx in front of a test server: contrib/nginx/rcomet.conf, the shipped file,
//! templated to free 127.0.0.1 ports (and, when a test asks, shorter read timeouts), included in a
//! main config of the test's own: `daemon off`, `master_process off` (one process, the child this
//! module started and kills by its pid), pid file, error and access logs and temporary paths all
//! in a temporary directory, running as the current user. Each templated line must be found
//! exactly where the shipped file has it, so a change there that the test no longer exercises
//! fails here instead of passing silently.
//!
//! Depends on tests/support (TempDir, eventually) and std.
#![allow(dead_code)]

use crate::support::{eventually, TempDir};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The shipped configuration under test.
pub const SHIPPED: &str = include_str!("../../contrib/nginx/rcomet.conf");

/// How a missing nginx is fixed.
pub const INSTALL: &str = "run `bash .ci/run` once, or install it by hand: \
    `apt-get install -y nginx` (or set RCOMET_NGINX to an nginx binary)";

/// How long nginx gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The nginx binary: `RCOMET_NGINX`, else Debian's `/usr/sbin/nginx`.
pub fn nginx_path() -> PathBuf {
    std::env::var_os("RCOMET_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// Fails the test with the install command when there is no nginx to run.
pub fn require_nginx() {
    let path = nginx_path();
    let runs = Command::new(&path)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        runs,
        "the nginx test cannot run: no nginx at {}; {INSTALL}",
        path.display()
    );
}

/// What the shipped file is pointed at.
#[derive(Clone, Copy)]
pub struct Upstreams {
    /// rcomet's front port (the file's `server 127.0.0.1:8100;`).
    pub front: SocketAddr,
    /// rcomet's admin port (the file's `server 127.0.0.1:8000;`).
    pub admin: SocketAddr,
}

/// Replaces the one directive line of `text` whose trimmed form is `from` with `to` (same
/// indentation); panics when the shipped file has not exactly one such line.
fn replace_line(text: &str, from: &str, to: &str) -> String {
    replace_lines(text, |l| l == from, to, Some(1))
}

/// Replaces every directive line (comments excluded) for which `hit` holds with `to`; `count`,
/// when given, is how many there must be (at least one in any case).
fn replace_lines(text: &str, hit: impl Fn(&str) -> bool, to: &str, count: Option<usize>) -> String {
    let mut found = 0;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim();
        if !trimmed.starts_with('#') && hit(trimmed) {
            found += 1;
            out.push_str(&line[..line.len() - line.trim_start().len()]);
            out.push_str(to);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(
        found > 0,
        "contrib/nginx/rcomet.conf has no line for {to:?}"
    );
    if let Some(n) = count {
        assert_eq!(
            found, n,
            "contrib/nginx/rcomet.conf: lines replaced by {to:?}"
        );
    }
    out
}

/// The shipped file pointed at `up`, listening on `front` and `admin`; every `proxy_read_timeout`
/// set to `read_timeout` when given (the file has three: front, admin, /psub).
pub fn render(
    up: Upstreams,
    front: SocketAddr,
    admin: SocketAddr,
    read_timeout: Option<&str>,
) -> String {
    let mut text = replace_line(
        SHIPPED,
        "server 127.0.0.1:8100;",
        &format!("server {};", up.front),
    );
    text = replace_line(
        &text,
        "server 127.0.0.1:8000;",
        &format!("server {};", up.admin),
    );
    text = replace_line(&text, "listen 80;", &format!("listen {front};"));
    text = replace_line(&text, "listen 127.0.0.1:8001;", &format!("listen {admin};"));
    if let Some(t) = read_timeout {
        text = replace_lines(
            &text,
            |l| l.starts_with("proxy_read_timeout "),
            &format!("proxy_read_timeout {t};"),
            Some(3),
        );
    }
    text
}

/// The main nginx.conf around the included file: everything in `dir`, one process, in the
/// foreground; `gzip on` at http level as Debian's own nginx.conf has it (with the types a
/// stream would be compressed as), which the shipped file must turn off for its streams.
fn main_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\n\
         master_process off;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   gzip on;\n\
         \x20   gzip_types text/event-stream application/json text/javascript;\n\
         \x20   include {d}/rcomet.conf;\n\
         }}\n"
    )
}

/// Two distinct free loopback ports (bound together, released together, just before nginx
/// binds them; a start that loses the race is retried with new ones).
fn free_ports() -> (SocketAddr, SocketAddr) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (a.local_addr().unwrap(), b.local_addr().unwrap())
}

/// A running nginx, killed on drop.
pub struct Nginx {
    child: Child,
    /// The public listener (subscribers).
    pub front: SocketAddr,
    /// The restricted admin listener (publishers).
    pub admin: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    /// nginx with the shipped file in front of `up`.
    pub fn start(up: Upstreams) -> Nginx {
        Nginx::start_with(up, None)
    }

    /// The same with every `proxy_read_timeout` set to `read_timeout`.
    pub fn start_with(up: Upstreams, read_timeout: Option<&str>) -> Nginx {
        require_nginx();
        let mut last = String::new();
        for _ in 0..5 {
            match Nginx::try_start(up, read_timeout) {
                Ok(n) => return n,
                // Another process took a port between free_ports and nginx's bind.
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!("nginx found no free ports in 5 tries:\n{last}");
    }

    fn try_start(up: Upstreams, read_timeout: Option<&str>) -> Result<Nginx, String> {
        let dir = TempDir::new("nginx");
        let (front, admin) = free_ports();
        std::fs::write(
            dir.0.join("rcomet.conf"),
            render(up, front, admin, read_timeout),
        )
        .unwrap();
        let conf = dir.0.join("nginx.conf");
        std::fs::write(&conf, main_conf(&dir.0)).unwrap();
        let stderr = std::fs::File::create(dir.0.join("stderr")).unwrap();
        let child = Command::new(nginx_path())
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(&conf)
            // The start-up error log too (before the config is read), not the system's.
            .arg("-e")
            .arg(dir.0.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}; {INSTALL}", nginx_path().display()))?;
        let mut nginx = Nginx {
            child,
            front,
            admin,
            dir,
        };
        let mut exited = false;
        let listening = eventually(START_TIMEOUT, || {
            exited = !matches!(nginx.child.try_wait(), Ok(None));
            exited || [front, admin].iter().all(|a| TcpStream::connect(a).is_ok())
        });
        if !listening || exited {
            return Err(nginx.logs());
        }
        Ok(nginx)
    }

    /// nginx's error log and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.0.join(name)).unwrap_or_default();
        format!(
            "--- error.log\n{}--- stderr\n{}",
            read("error.log"),
            read("stderr")
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
