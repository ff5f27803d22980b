//! Telling a service manager (systemd's `Type=notify`) how the process is doing: one datagram
//! with `READY=1` once every listener is up, `STOPPING=1` when a graceful shutdown begins. The
//! socket is named by `NOTIFY_SOCKET`: a filesystem path, or an abstract-namespace address written
//! with a leading `@`. Without the variable every call does nothing. Depends on std only (no crate
//! offers abstract addresses; this is a handful of lines).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable naming the service manager's socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where notifications go: the address from `NOTIFY_SOCKET`, read once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    addr: Option<SocketAddr>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`. An unset or empty variable means no service manager; an address that
    /// cannot be one (an over-long path) is an error, so a misconfigured unit is seen at once.
    pub fn from_env() -> io::Result<Notifier> {
        match std::env::var_os(NOTIFY_SOCKET) {
            Some(value) if !value.is_empty() => Ok(Notifier {
                addr: Some(parse_addr(&value)?),
            }),
            _ => Ok(Notifier { addr: None }),
        }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.addr.is_some()
    }

    /// `READY=1` with a status line and the main pid (so `-d` works under systemd too).
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}\n",
            std::process::id()
        ))
    }

    /// `STOPPING=1`: the graceful shutdown has begun.
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1\nSTATUS=shutting down\n")
    }

    /// Sends one datagram; does nothing without a service manager.
    fn send(&self, message: &str) -> io::Result<()> {
        let Some(addr) = &self.addr else {
            return Ok(());
        };
        let socket = UnixDatagram::unbound()?;
        let sent = socket.send_to_addr(message.as_bytes(), addr)?;
        if sent != message.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "notification datagram cut short",
            ));
        }
        Ok(())
    }
}

/// `@name` is the abstract address `name`; anything else is a filesystem path.
fn parse_addr(value: &OsStr) -> io::Result<SocketAddr> {
    let bytes = value.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(value),
    };
    addr.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{NOTIFY_SOCKET}={}: {e}", value.to_string_lossy()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_and_to_an_abstract_address() {
        let dir = std::env::temp_dir().join(format!("rcomet-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let by_path = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            addr: Some(parse_addr(path.as_os_str()).unwrap()),
        };
        assert!(notifier.enabled());
        notifier.ready("up").unwrap();
        let got = receive(&by_path);
        assert!(got.starts_with("READY=1\nSTATUS=up\nMAINPID="), "{got:?}");
        notifier.stopping().unwrap();
        assert!(receive(&by_path).starts_with("STOPPING=1\n"));
        std::fs::remove_dir_all(&dir).unwrap();

        let name = format!("rcomet-notify-test-{}", std::process::id());
        let abstract_addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let by_name = UnixDatagram::bind_addr(&abstract_addr).unwrap();
        let notifier = Notifier {
            addr: Some(parse_addr(OsStr::new(&format!("@{name}"))).unwrap()),
        };
        notifier.ready("up").unwrap();
        assert!(receive(&by_name).starts_with("READY=1\n"));
    }

    #[test]
    fn no_socket_means_no_notification_and_bad_ones_are_named() {
        let none = Notifier { addr: None };
        assert!(!none.enabled());
        assert!(none.ready("up").is_ok());
        let long = "x".repeat(200);
        let err = parse_addr(OsStr::new(&long)).unwrap_err();
        assert!(err.to_string().contains(NOTIFY_SOCKET), "{err}");
    }
}
