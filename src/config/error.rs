//! The error of configuration loading: unreadable file, bad line in the file, bad flag, bad
//! combination, or clap's own outcome (usage error, `--help`, `--version`). Depends on `parse`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::parse::ParseError;

/// Why no usable configuration could be built.
#[derive(Debug)]
pub enum ConfigError {
    /// The configuration file could not be read.
    Io { path: PathBuf, source: io::Error },
    /// A bad line or value in the configuration file (`FILE:LINE: reason`).
    File(ParseError),
    /// A bad command-line flag value.
    Flag { flag: String, reason: String },
    /// Values that are fine one by one but not together.
    Invalid(String),
    /// Clap's outcome: a usage error, or the text of `--help` / `--version`. Print and exit
    /// with [`clap::Error::exit`] (or [`ConfigError::exit`]) to keep clap's status codes.
    Cli(clap::Error),
}

impl ConfigError {
    /// The process exit status this error calls for: clap's own for usage/help/version
    /// (0 for help and version, 2 for usage errors), 1 for everything else (as iComet).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Cli(e) => e.exit_code(),
            _ => 1,
        }
    }

    /// Prints the error (help/version to stdout, errors to stderr) and exits the process.
    pub fn exit(&self) -> ! {
        match self {
            ConfigError::Cli(e) => e.exit(),
            other => {
                eprintln!("rcomet: {other}");
                std::process::exit(other.exit_code())
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "{}: cannot read config file: {source}", path.display())
            }
            ConfigError::File(e) => e.fmt(f),
            ConfigError::Flag { flag, reason } => write!(f, "invalid value for {flag}: {reason}"),
            ConfigError::Invalid(reason) => write!(f, "invalid configuration: {reason}"),
            ConfigError::Cli(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            ConfigError::File(e) => Some(e),
            ConfigError::Cli(e) => Some(e),
            ConfigError::Flag { .. } | ConfigError::Invalid(_) => None,
        }
    }
}

impl From<ParseError> for ConfigError {
    fn from(e: ParseError) -> Self {
        ConfigError::File(e)
    }
}

impl From<clap::Error> for ConfigError {
    fn from(e: clap::Error) -> Self {
        ConfigError::Cli(e)
    }
}
