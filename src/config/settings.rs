//! Turns key/value settings into a [`Config`]: the table of known keys, the value parsers
//! (numbers, listen addresses, levels, paths, ...) shared by the config file and the command
//! line, and the final derivations (channel_timeout from polling_timeout, the IP filter).
//! Depends on the sibling `parse`, `ipfilter` and `error` modules.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Component, Path, PathBuf};

use super::parse::ConfigFile;
use super::{
    available_cores, Auth, Config, ConfigError, CorsOrigins, EngineKind, IpFilter, LogOutput,
    Secret,
};

/// Block headers: keys whose children are settings.
const BLOCKS: &[&str] = &[
    "logger",
    "logger.rotate",
    "admin",
    "front",
    "server",
    "limits",
    "cluster",
];

/// Keys with a value, as written in the file. `admin.allow` / `admin.deny` repeat.
pub(crate) const KEYS: &[&str] = &[
    "pidfile",
    "logger.level",
    "logger.output",
    "logger.rotate.size",
    "admin.listen",
    "admin.allow",
    "admin.deny",
    "front.listen",
    "front.auth",
    "front.max_channels",
    "front.max_subscribers_per_channel",
    "front.channel_buffer_size",
    "front.channel_timeout",
    "front.polling_timeout",
    "front.sse_ids",
    "front.auth_secret",
    "front.cors_origins",
    "front.cors_credentials",
    "front.cors_max_age",
    "server.threads",
    "server.engine",
    "server.max_connections",
    "server.header_timeout",
    "server.keepalive_timeout",
    "server.shutdown_timeout",
    "server.snapshot",
    "server.uring_slots",
    "server.uring_table_size",
    "limits.max_header_size",
    "limits.max_body_size",
    "limits.max_cname_length",
    "limits.max_output_size",
    "limits.buffer_budget",
    "limits.publish_ahead",
    "limits.fanout_ahead",
    "limits.max_ws_message_size",
    "limits.max_ws_channels",
    "cluster.redis",
    "cluster.prefix",
    "cluster.node",
];

/// Log files smaller than this are not rotated (iComet's floor).
const MIN_ROTATE_SIZE: u64 = 1024 * 1024;

/// Shortest `front.auth_secret`, in bytes: shorter keys are guessable.
pub(crate) const MIN_SECRET_BYTES: usize = 16;

/// Longest origin in `front.cors_origins`, in bytes.
const MAX_ORIGIN_BYTES: usize = 256;

/// More worker threads than this is taken for a typo.
const MAX_THREADS: usize = 1024;

/// Collects settings over the built-in defaults; `finish` derives the rest.
#[derive(Debug)]
pub(crate) struct Builder {
    config: Config,
    /// `front.channel_timeout` was <= 0: derive it from the final polling_timeout.
    channel_timeout_auto: bool,
    allow: Vec<String>,
    deny: Vec<String>,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            config: Config::default(),
            channel_timeout_auto: false,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// Forgets the Redis addresses read so far (`--cluster-redis` replaces the file's list).
    pub(crate) fn clear_cluster_redis(&mut self) {
        self.config.cluster.redis.clear();
    }

    /// Reads and applies a configuration file; returns its warnings.
    pub(crate) fn load_file(&mut self, path: &Path) -> Result<Vec<String>, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(path, &bytes)
    }

    /// Applies configuration-file contents; relative paths in it are taken from the file's
    /// directory. Returns the warnings (`FILE:LINE: unknown key a.b`).
    pub(crate) fn load_bytes(
        &mut self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Vec<String>, ConfigError> {
        let file = ConfigFile::parse_bytes(path, bytes)?;
        let absolute = absolute(path);
        let base = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
        self.config.config_path = Some(absolute);
        let mut warnings = Vec::new();
        for entry in file.entries() {
            let key = entry.path();
            let value = entry.value.as_str();
            if key == "admin.allow" || key == "admin.deny" {
                self.add_filter_entry(&key, value)
                    .map_err(|reason| file.error(entry, reason))?;
            } else if KEYS.contains(&key.as_str()) {
                // An empty value keeps the built-in default (iComet would read 0 or "").
                if !value.is_empty() {
                    self.set(&key, value, &base)
                        .map_err(|reason| file.error(entry, format!("{key}: {reason}")))?;
                }
            } else if !BLOCKS.contains(&key.as_str()) && parent_is_known(&entry.keys) {
                warnings.push(file.error(entry, format!("unknown key {key}")).to_string());
            }
        }
        Ok(warnings)
    }

    fn add_filter_entry(&mut self, key: &str, value: &str) -> Result<(), String> {
        IpFilter::check_entry(value).map_err(|reason| format!("{key}: {reason}"))?;
        let list = if key == "admin.allow" {
            &mut self.allow
        } else {
            &mut self.deny
        };
        list.push(value.to_string());
        Ok(())
    }

    /// Applies one setting by its file key; relative paths are taken from `base`.
    /// The error is the reason only (the caller adds file:line or the flag name).
    pub(crate) fn set(&mut self, key: &str, value: &str, base: &Path) -> Result<(), String> {
        let value = value.trim();
        let c = &mut self.config;
        match key {
            "pidfile" if value.is_empty() => c.pidfile = None,
            "server.snapshot" if value.is_empty() => c.server.snapshot = None,
            _ if value.is_empty() => return Err("empty value".to_string()),
            "pidfile" => c.pidfile = Some(resolve(base, value)),
            "server.snapshot" => c.server.snapshot = Some(resolve(base, value)),
            "logger.level" => c.logger.level = parse_level(value)?,
            "logger.output" => c.logger.output = parse_output(value, base),
            "logger.rotate.size" => {
                c.logger.rotate_size = number::<u64>(value, 0)?.max(MIN_ROTATE_SIZE);
            }
            "admin.listen" => c.admin.listen = parse_listen(value)?,
            "admin.allow" | "admin.deny" => return self.add_filter_entry(key, value),
            "front.listen" => c.front.listen = parse_listen(value)?,
            "front.auth" => c.front.auth = parse_auth(value)?,
            "front.max_channels" => c.front.max_channels = number(value, 0)?,
            "front.max_subscribers_per_channel" => {
                c.front.max_subscribers_per_channel = number(value, 0)?;
            }
            "front.channel_buffer_size" => c.front.channel_buffer_size = number(value, 0)?,
            "front.channel_timeout" => {
                let n: i64 = number(value, i64::MIN)?;
                self.channel_timeout_auto = n <= 0;
                if n > 0 {
                    c.front.channel_timeout = number(value, 1)?;
                }
            }
            "front.polling_timeout" => c.front.polling_timeout = number(value, 1)?,
            "front.sse_ids" => c.front.sse_ids = parse_bool(value)?,
            "front.auth_secret" => c.front.auth_secret = Some(parse_secret(value)?),
            "front.cors_origins" => c.front.cors.origins = parse_origins(value)?,
            "front.cors_credentials" => c.front.cors.credentials = parse_bool(value)?,
            "front.cors_max_age" => c.front.cors.max_age = number(value, 0)?,
            "server.threads" => {
                let n: usize = number(value, 0)?;
                if n > MAX_THREADS {
                    return Err(format!("{n} is more than {MAX_THREADS} threads"));
                }
                c.server.threads = if n == 0 { available_cores() } else { n };
            }
            "server.engine" => c.server.engine = parse_engine(value)?,
            "server.max_connections" => c.server.max_connections = number(value, 1)?,
            "server.header_timeout" => c.server.header_timeout = number(value, 1)?,
            "server.keepalive_timeout" => c.server.keepalive_timeout = number(value, 1)?,
            "server.shutdown_timeout" => c.server.shutdown_timeout = number(value, 0)?,
            "server.uring_slots" => c.server.uring_slots = number(value, 0)?,
            "server.uring_table_size" => c.server.uring_table_size = number(value, 0)?,
            "limits.max_header_size" => c.limits.max_header_bytes = number(value, 1)?,
            "limits.max_body_size" => c.limits.max_body_bytes = number(value, 0)?,
            "limits.max_cname_length" => c.limits.max_cname_bytes = number(value, 1)?,
            "limits.max_output_size" => c.limits.max_output_bytes = number(value, 1)?,
            "limits.buffer_budget" => c.limits.buffer_budget_bytes = number(value, 1)?,
            "limits.publish_ahead" => c.limits.publish_ahead_bytes = number(value, 0)?,
            "limits.fanout_ahead" => c.limits.fanout_ahead = number(value, 1)?,
            "limits.max_ws_message_size" => c.limits.max_ws_message_bytes = number(value, 125)?,
            "limits.max_ws_channels" => c.limits.max_ws_channels = number(value, 1)?,
            "cluster.redis" => {
                for addr in value.split([',', ' ', '\t']).filter(|a| !a.is_empty()) {
                    c.cluster.redis.push(parse_redis_addr(addr)?);
                }
            }
            "cluster.prefix" => c.cluster.prefix = parse_prefix(value)?,
            "cluster.node" => c.cluster.node = Some(parse_prefix(value)?),
            _ => return Err(format!("unknown key {key}")),
        }
        Ok(())
    }

    /// Derives what depends on several settings and checks the result.
    pub(crate) fn finish(mut self) -> Result<Config, ConfigError> {
        let front = &mut self.config.front;
        if self.channel_timeout_auto {
            front.channel_timeout = (front.polling_timeout / 2).max(1);
        }
        self.config.admin.filter = IpFilter::new(&self.allow, &self.deny);
        self.config.validate()?;
        Ok(self.config)
    }
}

/// Loads configuration-file contents over the built-in defaults and checks the result, as
/// `rcomet FILE` does without flags: the config and the unknown-key warnings
/// (`FILE:LINE: unknown key a.b`). `path` labels errors and is the base of relative paths in the
/// file; nothing is read from disk, but a listen host that is a name (not an IP literal) is
/// resolved. The fuzz harness (`fuzz/`) drives the file parser through this.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<(Config, Vec<String>), ConfigError> {
    let mut builder = Builder::new();
    let warnings = builder.load_bytes(path, bytes)?;
    Ok((builder.finish()?, warnings))
}

/// Unknown keys are reported once, at the outermost unknown level.
fn parent_is_known(keys: &[String]) -> bool {
    match keys.split_last() {
        Some((_, [])) | None => true,
        Some((_, parent)) => {
            let parent = parent.join(".");
            BLOCKS.contains(&parent.as_str()) || KEYS.contains(&parent.as_str())
        }
    }
}

/// A whole decimal number in `min..` that fits `T`.
pub(crate) fn number<T: TryFrom<i64>>(value: &str, min: i64) -> Result<T, String> {
    let n: i64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a whole number"))?;
    if n < min {
        return Err(format!("{n} is below the minimum {min}"));
    }
    T::try_from(n).map_err(|_| format!("{n} is out of range"))
}

/// iComet level names; `fatal` is error and `none` is off.
pub(crate) fn parse_level(value: &str) -> Result<log::LevelFilter, String> {
    use log::LevelFilter as L;
    match value.to_ascii_lowercase().as_str() {
        "trace" => Ok(L::Trace),
        "debug" => Ok(L::Debug),
        "info" => Ok(L::Info),
        "warn" | "warning" => Ok(L::Warn),
        "error" | "fatal" => Ok(L::Error),
        "none" | "off" => Ok(L::Off),
        _ => Err(format!(
            "unknown log level `{value}` (trace, debug, info, warn, error, fatal or none)"
        )),
    }
}

/// `stdout`, `stderr`, or a file path (relative to `base`).
pub(crate) fn parse_output(value: &str, base: &Path) -> LogOutput {
    match value {
        "stdout" => LogOutput::Stdout,
        "stderr" => LogOutput::Stderr,
        path => LogOutput::File(resolve(base, path)),
    }
}

pub(crate) fn parse_engine(value: &str) -> Result<EngineKind, String> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(EngineKind::Auto),
        "epoll" => Ok(EngineKind::Epoll),
        "io_uring" | "io-uring" | "uring" => Ok(EngineKind::IoUring),
        _ => Err(format!(
            "unknown engine `{value}` (auto, epoll or io_uring)"
        )),
    }
}

/// A Redis address, `HOST:PORT` (the host a name or an IP literal; resolved when connecting).
pub(crate) fn parse_redis_addr(value: &str) -> Result<String, String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("`{value}` is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{value}`: the port is not a number 1..65535"))?;
    if host.is_empty() || port == 0 {
        return Err(format!("`{value}` is not HOST:PORT"));
    }
    Ok(value.to_string())
}

/// A key prefix or node name: 1..=64 bytes of letters, digits and `-_.:`.
pub(crate) fn parse_prefix(value: &str) -> Result<String, String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
    if value.is_empty() || value.len() > 64 || !value.bytes().all(ok) {
        return Err(format!(
            "`{value}`: use 1 to 64 letters, digits or the characters - _ . :"
        ));
    }
    Ok(value.to_string())
}

/// `none` or `token`. Anything else is refused (iComet silently fell back to none).
pub(crate) fn parse_auth(value: &str) -> Result<Auth, String> {
    match value.to_ascii_lowercase().as_str() {
        "none" => Ok(Auth::None),
        "token" => Ok(Auth::Token),
        _ => Err(format!("unknown auth `{value}` (none or token)")),
    }
}

/// A stateless-token key: at least [`MIN_SECRET_BYTES`] bytes, taken as written.
pub(crate) fn parse_secret(value: &str) -> Result<Secret, String> {
    if value.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the secret is {} bytes; use at least {MIN_SECRET_BYTES} (e.g. 32 random hex digits)",
            value.len()
        ));
    }
    Ok(Secret(value.as_bytes().into()))
}

/// `*`, or origins separated by spaces or commas, each `scheme://host[:port]` (no path) or `null`.
pub(crate) fn parse_origins(value: &str) -> Result<CorsOrigins, String> {
    let origins: Vec<&str> = value
        .split([',', ' ', '\t'])
        .filter(|o| !o.is_empty())
        .collect();
    if origins == ["*"] {
        return Ok(CorsOrigins::Any);
    }
    for origin in &origins {
        check_origin(origin)?;
    }
    if origins.is_empty() {
        return Err("no origin given (`*` allows every origin)".to_string());
    }
    Ok(CorsOrigins::List(
        origins.into_iter().map(str::to_string).collect(),
    ))
}

fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Err("`*` cannot be mixed with a list of origins".to_string());
    }
    if origin == "null" {
        return Ok(());
    }
    if origin.len() > MAX_ORIGIN_BYTES {
        return Err(format!("origin longer than {MAX_ORIGIN_BYTES} bytes"));
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        return Err(format!(
            "`{origin}` is not an origin (scheme://host[:port])"
        ));
    };
    let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if scheme.is_empty() || host.is_empty() || !visible(origin) {
        return Err(format!(
            "`{origin}` is not an origin (scheme://host[:port])"
        ));
    }
    if host.contains('/') {
        return Err(format!(
            "`{origin}` has a path; an origin is scheme://host[:port], without a trailing /"
        ));
    }
    Ok(())
}

/// `yes`/`no`, `true`/`false`, `on`/`off`, `1`/`0`.
pub(crate) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("`{value}` is not yes or no")),
    }
}

/// `host:port`, split at the last colon. The host is an IPv4 or IPv6 literal (brackets
/// allowed), empty (all interfaces), or a name resolved to its first address.
pub(crate) fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("`{value}` is not host:port"))?;
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| format!("bad port in `{value}`"))?;
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{host}` has no address"))
}

/// `path` made absolute against `base`, without `.` components.
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    let joined = base.join(path);
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// `path` made absolute against the current directory (left as is if that is unknown).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number::<u32>("30", 0), Ok(30));
        assert!(number::<u32>("30s", 0).is_err());
        assert!(number::<u32>("", 0).is_err());
        assert!(number::<u32>("0", 1).is_err());
        assert!(number::<u32>("-1", 0).is_err());
        assert!(number::<u32>("4294967296", 0).is_err());
        assert_eq!(number::<i64>("-5", i64::MIN), Ok(-5));
    }

    #[test]
    fn levels() {
        use log::LevelFilter as L;
        assert_eq!(parse_level("debug"), Ok(L::Debug));
        assert_eq!(parse_level("fatal"), Ok(L::Error));
        assert_eq!(parse_level("none"), Ok(L::Off));
        assert_eq!(parse_level("WARN"), Ok(L::Warn));
        assert!(parse_level("loud").is_err());
    }

    #[test]
    fn engines_and_auth() {
        assert_eq!(parse_engine("io_uring"), Ok(EngineKind::IoUring));
        assert_eq!(parse_engine("epoll"), Ok(EngineKind::Epoll));
        assert_eq!(parse_engine("auto"), Ok(EngineKind::Auto));
        assert!(parse_engine("kqueue").is_err());
        assert_eq!(parse_auth("token"), Ok(Auth::Token));
        assert!(parse_auth("tokens").is_err());
    }

    #[test]
    fn cors_values() {
        assert_eq!(parse_origins("*"), Ok(CorsOrigins::Any));
        assert_eq!(
            parse_origins("https://a.example, http://localhost:3000 null"),
            Ok(CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:3000".into(),
                "null".into()
            ]))
        );
        for bad in [
            "",
            "a.example",
            "https://a.example/",
            "https://",
            "* https://a.b",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bool("Yes"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert!(parse_secret("short").is_err());
        let secret = parse_secret("0123456789abcdef").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(16 bytes)");
    }

    #[test]
    fn cors_credentials_and_secrets_need_their_other_half() {
        let base = Path::new("/");
        let mut b = Builder::new();
        b.set("front.cors_credentials", "yes", base).unwrap();
        assert!(b.finish().is_err(), "credentials with `*`");
        let mut b = Builder::new();
        b.set("front.cors_credentials", "yes", base).unwrap();
        b.set("front.cors_origins", "https://a.example", base)
            .unwrap();
        assert!(b.finish().unwrap().front.cors.credentials);
        let mut b = Builder::new();
        b.set("front.auth_secret", "0123456789abcdef", base)
            .unwrap();
        assert!(b.finish().is_err(), "a secret without auth: token");
        let mut b = Builder::new();
        b.set("front.auth_secret", "0123456789abcdef", base)
            .unwrap();
        b.set("front.auth", "token", base).unwrap();
        assert!(b.finish().unwrap().front.auth_secret.is_some());
    }

    #[test]
    fn listen_addresses() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(parse_listen("0.0.0.0:8000"), Ok(sa("0.0.0.0:8000")));
        assert_eq!(parse_listen("[::1]:80"), Ok(sa("[::1]:80")));
        assert_eq!(parse_listen("::1:80"), Ok(sa("[::1]:80")));
        assert_eq!(parse_listen(":81"), Ok(sa("0.0.0.0:81")));
        let local = parse_listen("localhost:8100").unwrap();
        assert!(local.ip().is_loopback());
        assert_eq!(local.port(), 8100);
        assert!(parse_listen("0.0.0.0").is_err());
        assert!(parse_listen("0.0.0.0:99999").is_err());
        assert!(parse_listen("0.0.0.0:http").is_err());
    }

    #[test]
    fn paths_resolve_against_base() {
        let base = Path::new("/etc/rcomet");
        assert_eq!(
            resolve(base, "./icomet.pid"),
            Path::new("/etc/rcomet/icomet.pid")
        );
        assert_eq!(
            resolve(base, "logs/x.txt"),
            Path::new("/etc/rcomet/logs/x.txt")
        );
        assert_eq!(resolve(base, "/var/run/x.pid"), Path::new("/var/run/x.pid"));
        assert_eq!(parse_output("stderr", base), LogOutput::Stderr);
    }

    #[test]
    fn unknown_keys_reported_once() {
        let keys = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert!(parent_is_known(&keys("foo")));
        assert!(parent_is_known(&keys("front.foo")));
        assert!(parent_is_known(&keys("logger.rotate.foo")));
        assert!(!parent_is_known(&keys("foo.bar")));
    }

    #[test]
    fn channel_timeout_derives_from_final_polling_timeout() {
        let mut b = Builder::new();
        let base = Path::new("/");
        b.set("front.channel_timeout", "0", base).unwrap();
        b.set("front.polling_timeout", "9", base).unwrap();
        assert_eq!(b.finish().unwrap().front.channel_timeout, 4);
        let mut b = Builder::new();
        b.set("front.channel_timeout", "-3", base).unwrap();
        b.set("front.polling_timeout", "1", base).unwrap();
        assert_eq!(b.finish().unwrap().front.channel_timeout, 1);
        let mut b = Builder::new();
        b.set("front.channel_timeout", "0", base).unwrap();
        b.set("front.channel_timeout", "7", base).unwrap();
        assert_eq!(b.finish().unwrap().front.channel_timeout, 7);
    }

    #[test]
    fn every_known_key_is_settable() {
        let base = Path::new("/");
        for key in KEYS {
            let value = match *key {
                k if k.ends_with("listen") => "127.0.0.1:1",
                "logger.level" => "info",
                "front.auth" => "token",
                "front.auth_secret" => "0123456789abcdef",
                "front.cors_origins" => "https://a.example",
                "front.cors_credentials" => "yes",
                "server.engine" => "epoll",
                "admin.allow" | "admin.deny" => "all",
                "front.sse_ids" => "yes",
                "limits.max_ws_message_size" => "4096",
                "cluster.redis" => "127.0.0.1:6379",
                "cluster.prefix" | "cluster.node" => "n-1",
                _ => "5",
            };
            let mut b = Builder::new();
            assert_eq!(b.set(key, value, base), Ok(()), "{key}");
        }
        assert!(Builder::new().set("front.nope", "1", base).is_err());
    }

    #[test]
    fn the_cluster_block_lists_redis_instances_and_names_the_node() {
        let text = "cluster:\n\tredis: 127.0.0.1:6379\n\tredis: redis-b:6380, 10.0.0.3:6381\n\
                    \tprefix: app:push\n\tnode: web-1\n";
        let (config, warnings) = from_bytes(Path::new("/etc/x.conf"), text.as_bytes()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(config.cluster.enabled());
        assert_eq!(
            config.cluster.redis,
            ["127.0.0.1:6379", "redis-b:6380", "10.0.0.3:6381"]
        );
        assert_eq!(config.cluster.prefix, "app:push");
        assert_eq!(config.cluster.node.as_deref(), Some("web-1"));
        let (plain, _) = from_bytes(Path::new("/x"), b"").unwrap();
        assert!(!plain.cluster.enabled());
        let mut b = Builder::new();
        assert!(b.set("cluster.redis", "nohost", Path::new("/")).is_err());
        assert!(b.set("cluster.redis", "h:0", Path::new("/")).is_err());
        assert!(b.set("cluster.prefix", "a b", Path::new("/")).is_err());
    }
}
