//! Tests of whole-file loading: the shipped iComet sample, defaults, derivations, errors with
//! line numbers and unknown-key warnings.

use super::settings::Builder;
use super::*;
use std::net::IpAddr;
use std::path::Path;

/// The sample shipped with iComet (TAB-indented), kept at the repository root.
const SAMPLE: &str = include_str!("../../icomet.conf");

/// Loads a configuration file over the built-in defaults: the config and the warnings (unknown
/// keys) as `FILE:LINE: message` strings.
fn from_file(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
    let mut builder = Builder::new();
    let warnings = builder.load_file(path)?;
    Ok((builder.finish()?, warnings))
}

/// Like `from_file` for text in memory, as if read from `/etc/rcomet/icomet.conf`.
fn load(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
    from_bytes(Path::new("/etc/rcomet/icomet.conf"), text.as_bytes())
}

fn file_error(text: &str) -> ParseError {
    match load(text) {
        Err(ConfigError::File(e)) => e,
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn shipped_sample_parses_to_expected_values() {
    assert!(
        SAMPLE.contains("\n\tlevel: debug\n"),
        "sample must be TAB-indented"
    );
    let (c, warnings) = load(SAMPLE).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        c.config_path.as_deref(),
        Some(Path::new("/etc/rcomet/icomet.conf"))
    );
    assert_eq!(
        c.pidfile.as_deref(),
        Some(Path::new("/etc/rcomet/icomet.pid"))
    );
    assert_eq!(c.logger.level, log::LevelFilter::Debug);
    assert_eq!(
        c.logger.output,
        LogOutput::File(PathBuf::from("/etc/rcomet/logs/log.txt"))
    );
    assert_eq!(c.logger.rotate_size, 1_000_000_000);
    assert_eq!(c.admin.listen, "0.0.0.0:8000".parse().unwrap());
    let allow = ["127.0.0.1".to_string(), "192.168".to_string()];
    assert_eq!(c.admin.filter, IpFilter::new(&allow, &["all".to_string()]));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(c.admin.filter.allows(ip("192.168.3.4")));
    assert!(!c.admin.filter.allows(ip("10.1.1.1")));
    assert_eq!(c.front.listen, "0.0.0.0:8100".parse().unwrap());
    assert_eq!(c.front.auth, Auth::None);
    assert_eq!(c.front.max_channels, 100_000);
    assert_eq!(c.front.max_subscribers_per_channel, 16);
    assert_eq!(c.front.channel_buffer_size, 10);
    assert_eq!(c.front.channel_timeout, 30);
    assert_eq!(c.front.polling_timeout, 30);
    // Blocks the sample does not have keep rcomet's defaults.
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.limits, Limits::default());
}

#[test]
fn sample_with_crlf_and_equals_signs() {
    let text = SAMPLE.replace(": ", " = ").replace('\n', "\r\n");
    let (c, _) = load(&text).unwrap();
    assert_eq!(c, load(SAMPLE).unwrap().0);
}

#[test]
fn built_in_defaults() {
    let c = Config::default();
    assert_eq!(c.admin.listen, "127.0.0.1:8000".parse().unwrap());
    assert_eq!(c.front.listen, "0.0.0.0:8100".parse().unwrap());
    assert_eq!(c.front.auth, Auth::None);
    assert_eq!(c.front.max_channels, 1_000_000);
    assert_eq!(c.front.max_subscribers_per_channel, 100_000);
    assert_eq!(c.front.channel_buffer_size, 10);
    assert_eq!((c.front.channel_timeout, c.front.polling_timeout), (30, 30));
    assert_eq!(c.logger.level, log::LevelFilter::Info);
    assert_eq!(c.logger.output, LogOutput::Stdout);
    assert_eq!(c.logger.rotate_size, 1 << 30);
    assert_eq!(c.pidfile, None);
    assert_eq!(c.config_path, None);
    assert_eq!(c.server.threads, available_cores());
    assert!(c.server.threads >= 1);
    assert_eq!(c.server.engine, EngineKind::Auto);
    assert_eq!(c.server.max_connections, 1_100_000);
    assert_eq!(c.server.header_timeout, 10);
    assert_eq!(c.server.keepalive_timeout, 60);
    assert_eq!(c.server.shutdown_timeout, 5);
    assert_eq!(c.limits.max_header_bytes, 64 * 1024);
    assert_eq!(c.limits.max_body_bytes, 4 << 20);
    assert_eq!(c.limits.max_cname_bytes, 1024);
    assert_eq!(c.limits.max_output_bytes, 8 << 20);
    assert_eq!(c.limits.buffer_budget_bytes, 512 << 20);
    assert!(c.validate().is_ok());
}

#[test]
fn empty_file_keeps_defaults_where_icomet_broke() {
    let (c, _) = load("# nothing\n").unwrap();
    assert_eq!(c.front, FrontConfig::default());
    assert_eq!(c.front.max_channels, 1_000_000);
    assert_eq!(c.admin.filter, IpFilter::default());
    let (c, _) = load("front:\n\tmax_channels:\n\tpolling_timeout:\n").unwrap();
    assert_eq!(c.front, FrontConfig::default());
}

#[test]
fn rcomet_blocks() {
    let text = "server:\n\tthreads: 2\n\tengine: io_uring\n\tmax_connections: 500\n\
                \theader_timeout: 3\n\tkeepalive_timeout: 4\n\tshutdown_timeout: 0\n\
                limits:\n\tmax_header_size: 4096\n\tmax_body_size: 0\n\tmax_cname_length: 64\n\
                \tmax_output_size: 100000\n\tbuffer_budget: 1000000\n";
    let (c, warnings) = load(text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let server = ServerConfig {
        threads: 2,
        engine: EngineKind::IoUring,
        max_connections: 500,
        header_timeout: 3,
        keepalive_timeout: 4,
        shutdown_timeout: 0,
        snapshot: None,
        uring_slots: 0,
        uring_table_size: 0,
    };
    assert_eq!(c.server, server);
    let limits = Limits {
        max_header_bytes: 4096,
        max_body_bytes: 0,
        max_cname_bytes: 64,
        max_output_bytes: 100_000,
        buffer_budget_bytes: 1_000_000,
        ..Limits::default()
    };
    assert_eq!(c.limits, limits);
}

#[test]
fn icomet_value_semantics() {
    let (c, _) = load("front:\n\tchannel_timeout: 0\n\tpolling_timeout: 20\n").unwrap();
    assert_eq!(c.front.channel_timeout, 10);
    let (c, _) = load("front:\n\tchannel_timeout: -1\n\tpolling_timeout: 3\n").unwrap();
    assert_eq!(c.front.channel_timeout, 1);
    let (c, _) = load("logger:\n\tlevel: fatal\n\trotate:\n\t\tsize: 10\n").unwrap();
    assert_eq!(c.logger.level, log::LevelFilter::Error);
    assert_eq!(c.logger.rotate_size, 1024 * 1024);
    let (c, _) = load("logger:\n\tlevel: none\n\toutput: stderr\n").unwrap();
    assert_eq!(c.logger.level, log::LevelFilter::Off);
    assert_eq!(c.logger.output, LogOutput::Stderr);
    let (c, _) = load("server:\n\tthreads: 0\n").unwrap();
    assert_eq!(c.server.threads, available_cores());
    let (c, _) = load("front:\n\tlisten: [::]:8100\n\tauth: token\n").unwrap();
    assert_eq!(c.front.listen, "[::]:8100".parse().unwrap());
    assert_eq!(c.front.auth, Auth::Token);
    let (c, _) = load("pidfile: /run/rcomet.pid\nlogger:\n\toutput: /var/log/r.log\n").unwrap();
    assert_eq!(c.pidfile.as_deref(), Some(Path::new("/run/rcomet.pid")));
    assert_eq!(
        c.logger.output,
        LogOutput::File(PathBuf::from("/var/log/r.log"))
    );
}

#[test]
fn last_repeat_wins() {
    let (c, _) = load("front:\n\tpolling_timeout: 5\n\tpolling_timeout: 6\n").unwrap();
    assert_eq!(c.front.polling_timeout, 6);
}

#[test]
fn syntax_errors_carry_line_numbers() {
    let e = file_error("front:\n\tauth: none\n\t\t\tlisten: 1\n");
    assert_eq!((e.line, e.reason.as_str()), (3, "invalid indent"));
    assert_eq!(e.file, Path::new("/etc/rcomet/icomet.conf"));
    let e = file_error("front:\n\tauth: none\n  listen: 1\n");
    assert_eq!(e.line, 3);
    assert!(e.reason.contains("unexpected whitespace"));
    let e = file_error("# x\nfront:\n\n\tlisten\n");
    assert_eq!(e.line, 4);
}

#[test]
fn bad_values_carry_line_numbers() {
    let cases = [
        ("front:\n\tmax_channels: 10k\n", 2),
        ("\nfront:\n\tpolling_timeout: 0\n", 3),
        ("server:\n\tengine: kqueue\n", 2),
        ("admin:\n\tlisten: 0.0.0.0\n", 2),
        ("front:\n\tlisten: 0.0.0.0:70000\n", 2),
        ("front:\n\tauth: tokens\n", 2),
        ("logger:\n\tlevel: loud\n", 2),
        ("admin:\n\tallow: 1.2.3.x\n", 2),
        ("admin:\n\tdeny:\n", 2),
        ("server:\n\tmax_connections: -5\n", 2),
    ];
    for (text, line) in cases {
        let e = file_error(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("/etc/rcomet/icomet.conf:{line}: ")),
            "{e}"
        );
    }
}

#[test]
fn unknown_keys_are_warnings() {
    let text = "front:\n\tpolling_timeout: 5\n\tmystery: 1\nextra:\n\tinner: 2\nlogger:\n\trotate:\n\t\tcount: 3\n";
    let (c, warnings) = load(text).unwrap();
    assert_eq!(c.front.polling_timeout, 5);
    assert_eq!(
        warnings,
        [
            "/etc/rcomet/icomet.conf:3: unknown key front.mystery",
            "/etc/rcomet/icomet.conf:4: unknown key extra",
            "/etc/rcomet/icomet.conf:8: unknown key logger.rotate.count",
        ]
    );
}

#[test]
fn validate_rejects_impossible_combinations() {
    let text = "limits:\n\tmax_header_size: 1000\n\tbuffer_budget: 999\n";
    assert!(matches!(load(text), Err(ConfigError::Invalid(_))));
    let text = "admin:\n\tlisten: 0.0.0.0:9000\nfront:\n\tlisten: 0.0.0.0:9000\n";
    assert!(matches!(load(text), Err(ConfigError::Invalid(_))));
    let text = "admin:\n\tlisten: 127.0.0.1:0\nfront:\n\tlisten: 127.0.0.1:0\n";
    assert!(load(text).is_ok());
}

#[test]
fn from_file_reads_the_shipped_sample() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("icomet.conf");
    let (c, warnings) = from_file(&path).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(c.pidfile, Some(path.with_file_name("icomet.pid")));
    assert!(matches!(
        from_file(Path::new("/nonexistent/x.conf")),
        Err(ConfigError::Io { .. })
    ));
}
