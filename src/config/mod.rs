//! rcomet's configuration: the typed [`Config`] with its built-in defaults, loaded from an
//! iComet-format file (`parse`, `settings`) and overridden by command-line flags (`cli`).
//! Depends on nothing else in the crate (std, clap and log only).

mod cli;
mod error;
mod ipfilter;
mod parse;
pub mod reload;
mod settings;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

pub use cli::{from_args, Action, Startup};
pub use error::ConfigError;
pub use ipfilter::IpFilter;
pub use parse::{ConfigFile, Entry, ParseError};
pub use settings::from_bytes;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Everything the server needs to start. `Default` is the built-in configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The configuration file, made absolute; `None` when running on built-in defaults.
    pub config_path: Option<PathBuf>,
    /// Where to write the process id; `None` for no pidfile.
    pub pidfile: Option<PathBuf>,
    pub logger: LoggerConfig,
    pub admin: AdminConfig,
    pub front: FrontConfig,
    pub server: ServerConfig,
    pub limits: Limits,
    /// Cluster mode (several nodes sharing channels through Redis); off without `cluster.redis`.
    pub cluster: ClusterConfig,
}

/// The `cluster:` block. Cluster mode is on when at least one Redis address is given; the
/// channels are sharded over the addresses by a hash of their names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Redis instances, `HOST:PORT` each (empty: single-node mode, no Redis at all).
    pub redis: Vec<String>,
    /// Prefix of every Redis key and pub/sub subject.
    pub prefix: String,
    /// This node's name in Redis (`None`: the host name and the process id).
    pub node: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis: Vec::new(),
            prefix: "rcomet".to_string(),
            node: None,
        }
    }
}

impl ClusterConfig {
    /// Whether cluster mode is on.
    pub fn enabled(&self) -> bool {
        !self.redis.is_empty()
    }
}

/// `logger:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerConfig {
    pub level: log::LevelFilter,
    pub output: LogOutput,
    /// A log file is rotated when it would grow beyond this many bytes.
    pub rotate_size: u64,
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    Stdout,
    Stderr,
    File(PathBuf),
}

/// `admin:` block: the publisher-side port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub filter: IpFilter,
}

/// `front:` block: the subscriber-side port and channel settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontConfig {
    pub listen: SocketAddr,
    pub auth: Auth,
    pub max_channels: usize,
    pub max_subscribers_per_channel: usize,
    /// Messages kept per channel for replay.
    pub channel_buffer_size: usize,
    /// Seconds an unsubscribed channel lives; presence re-announce period. Always >= 1.
    pub channel_timeout: u32,
    /// Seconds a subscriber waits before a `noop`. Always >= 1.
    pub polling_timeout: u32,
    /// `/sse` sends event ids (`id: <epoch>:<seq>`) and resumes from `Last-Event-ID` without
    /// `id=1` in the query (`front.sse_ids`; off: iComet's bytes).
    pub sse_ids: bool,
    /// `front.auth_secret`: the key of stateless tokens (`<expiry>.<HMAC>`), accepted beside
    /// `/sign`'s tokens under `auth: token`.
    pub auth_secret: Option<Secret>,
    /// Cross-origin requests to the front port.
    pub cors: CorsConfig,
}

/// A secret key. Its `Debug` form never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Box<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// `front.cors_*`: which origins may read front-port replies from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    pub origins: CorsOrigins,
    /// `Access-Control-Allow-Credentials: true` beside every allowed origin (list only).
    pub credentials: bool,
    /// Seconds a browser may cache a preflight answer (`Access-Control-Max-Age`).
    pub max_age: u32,
}

/// `front.cors_origins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin (iComet's `/sse` header; the other replies only answer an `Origin`).
    Any,
    /// Exact origins (`https://app.example`, `http://localhost:3000`): the matching one is echoed.
    List(Vec<String>),
}

/// Subscription authentication (`front.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may subscribe; subscribing creates the channel.
    None,
    /// Subscribers must present the token handed out by `/sign`.
    Token,
}

/// The I/O backend (`server.engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// io_uring where the start-up probe passes (a real accept, poll, receive, send and close
    /// cycle), epoll elsewhere: the default.
    Auto,
    Epoll,
    IoUring,
}

/// `server:` block: rcomet's process-level settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Worker threads; 0 in the file or flag means available cores. Always >= 1.
    pub threads: usize,
    pub engine: EngineKind,
    /// Per process, all workers together.
    pub max_connections: usize,
    /// Seconds to receive a whole request head (slowloris). Always >= 1.
    pub header_timeout: u32,
    /// Seconds an idle keep-alive connection may wait for its next request. Always >= 1.
    pub keepalive_timeout: u32,
    /// Seconds graceful shutdown waits before closing what is left (0 = close at once).
    pub shutdown_timeout: u32,
    /// Where a graceful stop saves the channels and the next start reads them (`None`: off).
    pub snapshot: Option<PathBuf>,
    /// io_uring: direct-descriptor slots per worker, over all its tables (0: the worker's share
    /// of `max_connections` with room for an uneven spread). Beyond, connections are refused.
    pub uring_slots: u32,
    /// io_uring: the most slots one registered table holds (0: the soft open-file limit, the most
    /// the kernel allows); more slots take more tables.
    pub uring_table_size: u32,
}

/// `limits:` block: bounds on what one client can make the server hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request line + headers; beyond → 431.
    pub max_header_bytes: usize,
    /// Request body; beyond → 413.
    pub max_body_bytes: usize,
    /// Channel name length; beyond → 400.
    pub max_cname_bytes: usize,
    /// Queued unsent output per connection; beyond → subscriber closed.
    pub max_output_bytes: usize,
    /// Per worker: sum of borrowed read/write buffers.
    pub buffer_budget_bytes: usize,
    /// Per channel home: pushes answered on their publisher's worker and not stored yet
    /// (bytes); beyond, a push's reply waits for its home (`worker::home`). 0: every push to a
    /// channel homed elsewhere waits for its home.
    pub publish_ahead_bytes: usize,
    /// Per big channel (64 subscribers or more on a worker): deliveries (messages × subscribers)
    /// its home's fan-out lane may hold before publishes to it wait (`worker::hold`).
    pub fanout_ahead: usize,
    /// A WebSocket client's message (all its fragments); beyond → close 1009. Clients send
    /// small commands, not data.
    pub max_ws_message_bytes: usize,
    /// Channels one WebSocket connection may subscribe to; beyond, a `sub` command is refused.
    pub max_ws_channels: usize,
}

/// Number of worker threads for `threads: 0`: the cores this process may run on.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn local(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(a), port))
}

impl Default for LoggerConfig {
    fn default() -> Self {
        LoggerConfig {
            level: log::LevelFilter::Info,
            output: LogOutput::Stdout,
            rotate_size: 1024 * 1024 * 1024,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: local([127, 0, 0, 1], 8000),
            filter: IpFilter::default(),
        }
    }
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig {
            listen: local([0, 0, 0, 0], 8100),
            auth: Auth::None,
            max_channels: 1_000_000,
            max_subscribers_per_channel: 100_000,
            channel_buffer_size: 10,
            channel_timeout: 30,
            polling_timeout: 30,
            sse_ids: false,
            auth_secret: None,
            cors: CorsConfig::default(),
        }
    }
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            origins: CorsOrigins::Any,
            credentials: false,
            max_age: 86_400,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            threads: available_cores(),
            engine: EngineKind::Auto,
            max_connections: 1_100_000,
            header_timeout: 10,
            keepalive_timeout: 60,
            shutdown_timeout: 5,
            snapshot: None,
            uring_slots: 0,
            uring_table_size: 0,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * KIB,
            max_body_bytes: 4 * MIB,
            max_cname_bytes: 1024,
            max_output_bytes: 8 * MIB,
            buffer_budget_bytes: 512 * MIB,
            publish_ahead_bytes: 256 * KIB,
            fanout_ahead: 65_536,
            max_ws_message_bytes: 4 * KIB,
            max_ws_channels: 16,
        }
    }
}

impl Config {
    /// Checks what single values cannot: the invariants the rest of the server relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |s: &str| Err(ConfigError::Invalid(s.to_string()));
        if self.server.threads == 0 {
            return invalid("server.threads resolved to 0");
        }
        if self.front.polling_timeout == 0 || self.front.channel_timeout == 0 {
            return invalid("front.polling_timeout and front.channel_timeout must be >= 1");
        }
        if self.server.header_timeout == 0 || self.server.keepalive_timeout == 0 {
            return invalid("server.header_timeout and server.keepalive_timeout must be >= 1");
        }
        if self.admin.listen == self.front.listen && self.front.listen.port() != 0 {
            return invalid("admin.listen and front.listen are the same address");
        }
        if self.limits.buffer_budget_bytes < self.limits.max_header_bytes {
            return invalid("limits.buffer_budget must be at least limits.max_header_size");
        }
        let cors = &self.front.cors;
        if cors.credentials && cors.origins == CorsOrigins::Any {
            return invalid(
                "front.cors_credentials needs a list of origins in front.cors_origins (browsers \
                 refuse credentials with `*`)",
            );
        }
        if self.front.auth_secret.is_some() && self.front.auth != Auth::Token {
            return invalid("front.auth_secret is set but front.auth is not token");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
