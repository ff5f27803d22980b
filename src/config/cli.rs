//! The command line, iComet-compatible (`rcomet [-d] [CONFIG] [-s start|stop|restart]`) plus long
//! flags that override config-file values; builds the final [`Config`]. Depends on clap and the
//! sibling `settings` module.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

use super::settings::Builder;
use super::{Config, ConfigError};

/// What the process was asked to do (`-s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Run the server.
    Start,
    /// Send SIGTERM to the process named in the pidfile and wait for it to exit.
    Stop,
    /// Stop (if the pidfile exists), then start.
    Restart,
    /// Send SIGHUP to the process named in the pidfile: it reads its configuration again.
    Reload,
}

/// The outcome of the command line: the configuration and what to do with it.
#[derive(Debug, Clone)]
pub struct Startup {
    pub config: Config,
    /// `-d`: detach into the background.
    pub daemon: bool,
    pub action: Action,
    /// Non-fatal findings in the config file (`FILE:LINE: unknown key a.b`), to be logged.
    pub warnings: Vec<String>,
}

/// Config-file keys that have no flag, shown after the flags in `--help`.
const FILE_ONLY_KEYS: &str = "Config-file keys without a flag:
  logger.rotate.size  rotate the log file past this many bytes (at least 1 MiB) [default: 1 GiB]
  admin.allow         repeatable: `all`/`*`, an address, a dotted prefix (192.168) or a CIDR
  admin.deny          repeatable, same forms; an address matching neither list is refused
                      [default: no lists, everyone may use the admin port]
  front.cors_origins  `*` or origins (scheme://host[:port]) allowed to read front replies
                      from a browser, separated by spaces or commas [default: *]
  front.cors_credentials  yes: Access-Control-Allow-Credentials (needs a list) [default: no]
  front.cors_max_age  seconds a browser caches a preflight answer [default: 86400]
  server.uring_slots  io_uring: direct descriptors per worker, beyond which connections are
                      refused [default: 0, the worker's share of max_connections]
  server.uring_table_size  io_uring: most slots in one registered table [default: 0, the
                      soft open-file limit]";

/// rcomet: a comet/push server, drop-in compatible with iComet.
///
/// Values come from the built-in defaults, then the CONFIG file (iComet format, TAB-indented),
/// then the flags below. Relative paths in the file are relative to the file's directory;
/// relative paths in flags are relative to the current directory.
#[derive(Debug, Parser)]
#[command(
    name = "rcomet",
    version,
    disable_version_flag = true,
    after_help = FILE_ONLY_KEYS
)]
struct Args {
    /// Print the version and exit
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: Option<bool>,

    /// Run in the background (fork, setsid, output to /dev/null) [default: foreground]
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,

    /// start the server, stop the one named in the pidfile, or restart it
    #[arg(short = 's', value_enum, value_name = "ACTION", default_value_t = Action::Start)]
    signal: Action,

    /// Configuration file in iComet format [default: none, built-in defaults]
    #[arg(value_name = "CONFIG")]
    config: Option<PathBuf>,

    /// Worker threads, 0 = one per available core [file: server.threads] [default: 0]
    #[arg(long, value_name = "N")]
    threads: Option<String>,

    /// I/O backend: auto (io_uring where the kernel offers it, else epoll), epoll or io_uring
    /// [file: server.engine] [default: auto]
    #[arg(long, value_name = "ENGINE")]
    engine: Option<String>,

    /// Admin (publisher) address host:port [file: admin.listen] [default: 127.0.0.1:8000]
    #[arg(long, value_name = "HOST:PORT")]
    admin_listen: Option<String>,

    /// Front (subscriber) address host:port [file: front.listen] [default: 0.0.0.0:8100]
    #[arg(long, value_name = "HOST:PORT")]
    front_listen: Option<String>,

    /// Subscriber authentication: none or token [file: front.auth] [default: none]
    #[arg(long, value_name = "MODE")]
    auth: Option<String>,

    /// Key of stateless tokens (`auth: token`), at least 16 bytes; prefer the file, flags show in ps [file: front.auth_secret] [default: none]
    #[arg(long, value_name = "SECRET")]
    auth_secret: Option<String>,

    /// Most channels at once [file: front.max_channels] [default: 1000000]
    #[arg(long, value_name = "N")]
    max_channels: Option<String>,

    /// Most subscribers of one channel [file: front.max_subscribers_per_channel] [default: 100000]
    #[arg(long, value_name = "N")]
    max_subscribers_per_channel: Option<String>,

    /// Messages kept per channel for replay [file: front.channel_buffer_size] [default: 10]
    #[arg(long, value_name = "N")]
    channel_buffer_size: Option<String>,

    /// Seconds an unsubscribed channel lives, 0 = polling_timeout/2 [file: front.channel_timeout] [default: 30]
    #[arg(long, value_name = "SECS")]
    channel_timeout: Option<String>,

    /// Seconds before an idle subscriber gets a noop, >= 1 [file: front.polling_timeout] [default: 30]
    #[arg(long, value_name = "SECS")]
    polling_timeout: Option<String>,

    /// Most open connections, all workers together [file: server.max_connections] [default: 1100000]
    #[arg(long, value_name = "N")]
    max_connections: Option<String>,

    /// Seconds to receive a whole request head [file: server.header_timeout] [default: 10]
    #[arg(long, value_name = "SECS")]
    header_timeout: Option<String>,

    /// Seconds an idle keep-alive connection may wait [file: server.keepalive_timeout] [default: 60]
    #[arg(long, value_name = "SECS")]
    keepalive_timeout: Option<String>,

    /// Seconds graceful shutdown waits for connections [file: server.shutdown_timeout] [default: 5]
    #[arg(long, value_name = "SECS")]
    shutdown_timeout: Option<String>,

    /// Bytes of request line + headers, beyond → 431 [file: limits.max_header_size] [default: 65536]
    #[arg(long, value_name = "BYTES")]
    max_header_size: Option<String>,

    /// Bytes of request body, beyond → 413 [file: limits.max_body_size] [default: 4194304]
    #[arg(long, value_name = "BYTES")]
    max_body_size: Option<String>,

    /// Bytes of a channel name, beyond → 400 [file: limits.max_cname_length] [default: 1024]
    #[arg(long, value_name = "BYTES")]
    max_cname_length: Option<String>,

    /// Bytes of unsent output per connection, beyond → closed [file: limits.max_output_size] [default: 8388608]
    #[arg(long, value_name = "BYTES")]
    max_output_size: Option<String>,

    /// Bytes of read/write buffers per worker [file: limits.buffer_budget] [default: 536870912]
    #[arg(long, value_name = "BYTES")]
    buffer_budget: Option<String>,

    /// Bytes of pushes answered but not yet stored that one channel home may have waiting; beyond, a push's reply waits for its home [file: limits.publish_ahead] [default: 262144]
    #[arg(long, value_name = "BYTES")]
    publish_ahead: Option<String>,

    /// Deliveries (messages × subscribers) of one big channel waiting in its home's fan-out lane before publishes to it wait [file: limits.fanout_ahead] [default: 65536]
    #[arg(long, value_name = "DELIVERIES")]
    fanout_ahead: Option<String>,

    /// trace, debug, info, warn, error, fatal or none [file: logger.level] [default: info]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,

    /// stdout, stderr or a file path [file: logger.output] [default: stdout]
    #[arg(long, value_name = "OUTPUT")]
    log_output: Option<String>,

    /// Pid file path, "" = none [file: pidfile] [default: none]
    #[arg(long, value_name = "PATH")]
    pidfile: Option<String>,

    /// Channels saved at a graceful stop and read at start, "" = off [file: server.snapshot] [default: none]
    #[arg(long, value_name = "PATH")]
    snapshot: Option<String>,

    /// Cluster mode: Redis HOST:PORT, comma-separated for several (replaces the file's list) [file: cluster.redis] [default: none]
    #[arg(long, value_name = "HOST:PORT")]
    cluster_redis: Option<String>,

    /// Prefix of the cluster's Redis keys [file: cluster.prefix] [default: rcomet]
    #[arg(long, value_name = "PREFIX")]
    cluster_prefix: Option<String>,

    /// This node's name in the cluster [file: cluster.node] [default: host name and pid]
    #[arg(long, value_name = "NAME")]
    cluster_node: Option<String>,
}

/// Every override flag: its name, the config-file key it sets, and its value if given.
fn overrides(a: &Args) -> [(&'static str, &'static str, Option<&str>); 29] {
    [
        ("--threads", "server.threads", a.threads.as_deref()),
        ("--engine", "server.engine", a.engine.as_deref()),
        ("--admin-listen", "admin.listen", a.admin_listen.as_deref()),
        ("--front-listen", "front.listen", a.front_listen.as_deref()),
        ("--auth", "front.auth", a.auth.as_deref()),
        (
            "--auth-secret",
            "front.auth_secret",
            a.auth_secret.as_deref(),
        ),
        (
            "--max-channels",
            "front.max_channels",
            a.max_channels.as_deref(),
        ),
        (
            "--max-subscribers-per-channel",
            "front.max_subscribers_per_channel",
            a.max_subscribers_per_channel.as_deref(),
        ),
        (
            "--channel-buffer-size",
            "front.channel_buffer_size",
            a.channel_buffer_size.as_deref(),
        ),
        (
            "--channel-timeout",
            "front.channel_timeout",
            a.channel_timeout.as_deref(),
        ),
        (
            "--polling-timeout",
            "front.polling_timeout",
            a.polling_timeout.as_deref(),
        ),
        (
            "--max-connections",
            "server.max_connections",
            a.max_connections.as_deref(),
        ),
        (
            "--header-timeout",
            "server.header_timeout",
            a.header_timeout.as_deref(),
        ),
        (
            "--keepalive-timeout",
            "server.keepalive_timeout",
            a.keepalive_timeout.as_deref(),
        ),
        (
            "--shutdown-timeout",
            "server.shutdown_timeout",
            a.shutdown_timeout.as_deref(),
        ),
        (
            "--max-header-size",
            "limits.max_header_size",
            a.max_header_size.as_deref(),
        ),
        (
            "--max-body-size",
            "limits.max_body_size",
            a.max_body_size.as_deref(),
        ),
        (
            "--max-cname-length",
            "limits.max_cname_length",
            a.max_cname_length.as_deref(),
        ),
        (
            "--max-output-size",
            "limits.max_output_size",
            a.max_output_size.as_deref(),
        ),
        (
            "--buffer-budget",
            "limits.buffer_budget",
            a.buffer_budget.as_deref(),
        ),
        (
            "--publish-ahead",
            "limits.publish_ahead",
            a.publish_ahead.as_deref(),
        ),
        (
            "--fanout-ahead",
            "limits.fanout_ahead",
            a.fanout_ahead.as_deref(),
        ),
        ("--log-level", "logger.level", a.log_level.as_deref()),
        ("--log-output", "logger.output", a.log_output.as_deref()),
        ("--pidfile", "pidfile", a.pidfile.as_deref()),
        ("--snapshot", "server.snapshot", a.snapshot.as_deref()),
        (
            "--cluster-redis",
            "cluster.redis",
            a.cluster_redis.as_deref(),
        ),
        (
            "--cluster-prefix",
            "cluster.prefix",
            a.cluster_prefix.as_deref(),
        ),
        ("--cluster-node", "cluster.node", a.cluster_node.as_deref()),
    ]
}

/// Parses the command line (`args` includes the program name), loads the config file if one is
/// named, applies the override flags and checks the result. `--help`, `--version` and usage
/// errors come back as [`ConfigError::Cli`].
pub fn from_args<I, T>(args: I) -> Result<Startup, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = Args::try_parse_from(args)?;
    let mut builder = Builder::new();
    let warnings = match &args.config {
        Some(path) => builder.load_file(path)?,
        None => Vec::new(),
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    if args.cluster_redis.is_some() {
        // The flag's list replaces the file's (the key itself appends).
        builder.clear_cluster_redis();
    }
    for (flag, key, value) in overrides(&args) {
        if let Some(value) = value {
            builder
                .set(key, value, &cwd)
                .map_err(|reason| ConfigError::Flag {
                    flag: flag.to_string(),
                    reason,
                })?;
        }
    }
    Ok(Startup {
        config: builder.finish()?,
        daemon: args.daemon,
        action: args.signal,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Auth, EngineKind, LogOutput};
    use clap::error::ErrorKind;
    use clap::CommandFactory;
    use std::path::Path;

    fn run(args: &[&str]) -> Result<Startup, ConfigError> {
        from_args(std::iter::once("rcomet").chain(args.iter().copied()))
    }

    fn temp_conf(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rcomet-cli-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("icomet.conf");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn no_arguments_gives_defaults() {
        let s = run(&[]).unwrap();
        assert_eq!(s.config, Config::default());
        assert!(!s.daemon);
        assert_eq!(s.action, Action::Start);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn icomet_style_command_line() {
        let path = temp_conf("style", "front:\n\tpolling_timeout: 7\n\tbogus: 1\n");
        let p = path.to_str().unwrap();
        let s = run(&["-d", p, "-s", "restart"]).unwrap();
        assert!(s.daemon);
        assert_eq!(s.action, Action::Restart);
        assert_eq!(s.config.front.polling_timeout, 7);
        assert_eq!(s.config.config_path.as_deref(), Some(path.as_path()));
        assert_eq!(s.warnings, [format!("{p}:3: unknown key front.bogus")]);
        assert_eq!(run(&[p, "-s", "stop"]).unwrap().action, Action::Stop);
        assert!(matches!(run(&[p, "-s", "halt"]), Err(ConfigError::Cli(_))));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn cluster_flags_replace_the_file_list() {
        let text = "cluster:\n\tredis: 127.0.0.1:1\n\tprefix: a\n";
        let path = temp_conf("cluster", text);
        let p = path.to_str().unwrap();
        let s = run(&[
            p,
            "--cluster-redis",
            "127.0.0.1:2,127.0.0.1:3",
            "--cluster-node",
            "n2",
        ])
        .unwrap();
        let c = &s.config.cluster;
        assert_eq!(c.redis, ["127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!((c.prefix.as_str(), c.node.as_deref()), ("a", Some("n2")));
        assert!(run(&["--cluster-redis", "x"]).is_err());
    }

    #[test]
    fn flags_override_file_values() {
        let text = "pidfile = ./a.pid\nfront:\n\tlisten: 0.0.0.0:8100\n\tauth: none\n\
                    \tpolling_timeout: 30\n\tchannel_timeout: 0\nserver:\n\tengine: epoll\n";
        let path = temp_conf("override", text);
        let p = path.to_str().unwrap();
        let s = run(&[
            p,
            "--front-listen",
            "127.0.0.1:9100",
            "--admin-listen",
            "[::1]:9000",
            "--auth",
            "token",
            "--polling-timeout",
            "8",
            "--engine",
            "io_uring",
            "--threads",
            "3",
            "--max-header-size",
            "8192",
            "--log-level",
            "debug",
            "--log-output",
            "stderr",
            "--pidfile",
            "/tmp/x.pid",
        ])
        .unwrap();
        let c = &s.config;
        assert_eq!(c.front.listen, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(c.admin.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(c.front.auth, Auth::Token);
        assert_eq!(c.front.polling_timeout, 8);
        // channel_timeout: 0 in the file follows the final polling_timeout.
        assert_eq!(c.front.channel_timeout, 4);
        assert_eq!(c.server.engine, EngineKind::IoUring);
        assert_eq!(c.server.threads, 3);
        assert_eq!(c.limits.max_header_bytes, 8192);
        assert_eq!(c.logger.level, log::LevelFilter::Debug);
        assert_eq!(c.logger.output, LogOutput::Stderr);
        assert_eq!(c.pidfile.as_deref(), Some(Path::new("/tmp/x.pid")));
        let s = run(&[p, "--pidfile", ""]).unwrap();
        assert_eq!(s.config.pidfile, None);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn threads_zero_means_cores() {
        let s = run(&["--threads", "0"]).unwrap();
        assert_eq!(s.config.server.threads, crate::config::available_cores());
        assert!(s.config.server.threads >= 1);
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let cases = [
            ("--polling-timeout", "0"),
            ("--max-channels", "lots"),
            ("--engine", "kqueue"),
            ("--front-listen", "8100"),
            ("--auth", "password"),
            ("--log-level", "chatty"),
        ];
        for (flag, value) in cases {
            match run(&[flag, value]) {
                Err(ConfigError::Flag { flag: f, .. }) => assert_eq!(f, flag),
                other => panic!("{flag} {value}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_file_value_gives_line() {
        let path = temp_conf(
            "badvalue",
            "front:\n\tlisten: 0.0.0.0:8100\n\tmax_channels: many\n",
        );
        let err = run(&[path.to_str().unwrap()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}:3: ", path.display())),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn missing_config_file_is_an_io_error() {
        let err = run(&["/nonexistent/rcomet/icomet.conf"]).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    }

    #[test]
    fn version_and_help_are_clap_outcomes() {
        for flag in ["-v", "--version"] {
            match run(&[flag]) {
                Err(ConfigError::Cli(e)) => {
                    assert_eq!(e.kind(), ErrorKind::DisplayVersion);
                    assert_eq!(e.exit_code(), 0);
                    let text = e.render().to_string();
                    assert_eq!(text.trim(), format!("rcomet {}", env!("CARGO_PKG_VERSION")));
                }
                other => panic!("{flag}: {other:?}"),
            }
        }
        match run(&["--help"]) {
            Err(ConfigError::Cli(e)) => {
                assert_eq!(e.kind(), ErrorKind::DisplayHelp);
                assert_eq!(e.exit_code(), 0);
            }
            other => panic!("--help: {other:?}"),
        }
        assert_eq!(run(&["--no-such-flag"]).unwrap_err().exit_code(), 2);
    }

    /// The default each key's help text must show, computed from the built-in defaults.
    fn default_text(key: &str) -> String {
        let d = Config::default();
        match key {
            "server.threads" => "0".into(),
            "server.engine" => "auto".into(),
            "admin.listen" => d.admin.listen.to_string(),
            "front.listen" => d.front.listen.to_string(),
            "front.auth" => "none".into(),
            "front.auth_secret" => "none".into(),
            "front.max_channels" => d.front.max_channels.to_string(),
            "front.max_subscribers_per_channel" => d.front.max_subscribers_per_channel.to_string(),
            "front.channel_buffer_size" => d.front.channel_buffer_size.to_string(),
            "front.channel_timeout" => d.front.channel_timeout.to_string(),
            "front.polling_timeout" => d.front.polling_timeout.to_string(),
            "server.max_connections" => d.server.max_connections.to_string(),
            "server.header_timeout" => d.server.header_timeout.to_string(),
            "server.keepalive_timeout" => d.server.keepalive_timeout.to_string(),
            "server.shutdown_timeout" => d.server.shutdown_timeout.to_string(),
            "limits.max_header_size" => d.limits.max_header_bytes.to_string(),
            "limits.max_body_size" => d.limits.max_body_bytes.to_string(),
            "limits.max_cname_length" => d.limits.max_cname_bytes.to_string(),
            "limits.max_output_size" => d.limits.max_output_bytes.to_string(),
            "limits.buffer_budget" => d.limits.buffer_budget_bytes.to_string(),
            "limits.publish_ahead" => d.limits.publish_ahead_bytes.to_string(),
            "limits.fanout_ahead" => d.limits.fanout_ahead.to_string(),
            "logger.level" => d.logger.level.to_string().to_lowercase(),
            "logger.output" => "stdout".into(),
            "pidfile" | "server.snapshot" | "cluster.redis" => "none".into(),
            "cluster.prefix" => d.cluster.prefix.clone(),
            "cluster.node" => "host name and pid".into(),
            other => panic!("no default for {other}"),
        }
    }

    #[test]
    fn help_names_key_and_default_of_every_flag() {
        let cmd = Args::command();
        let args = Args::try_parse_from(["rcomet"]).unwrap();
        for (flag, key, _) in overrides(&args) {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long().map(|l| format!("--{l}")).as_deref() == Some(flag))
                .unwrap_or_else(|| panic!("no flag {flag}"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains(&format!("[file: {key}]")), "{flag}: {help}");
            let default = format!("[default: {}]", default_text(key));
            assert!(help.contains(&default), "{flag}: {help} lacks {default}");
            assert!(crate::config::settings::KEYS.contains(&key), "{key}");
        }
        for arg in cmd.get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(!help.is_empty(), "{:?} has no help", arg.get_id());
        }
    }
}
