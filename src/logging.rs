//! The process logger: a `log::Log` writing `YYYY-MM-DD HH:MM:SS.mmm [LEVEL] message` lines (UTC)
//! to stdout, stderr or a file that is rotated by size (renamed to `<path>.<unix-seconds>`).
//! One mutex around the output; logging is not on the hot path. Depends on `config` (and the
//! `log` and `humantime` crates).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

use crate::config::{LogOutput, LoggerConfig};

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the process logger. A second call is a no-op returning `Ok` (the first
/// configuration stays). Fails if the log file cannot be opened, or if a logger from elsewhere
/// was installed first.
pub fn init(cfg: &LoggerConfig) -> io::Result<()> {
    if LOGGER.get().is_some() {
        return Ok(());
    }
    let logger = Logger::new(cfg)?;
    let mut installed_here = false;
    let logger = LOGGER.get_or_init(|| {
        installed_here = true;
        logger
    });
    if !installed_here {
        return Ok(());
    }
    log::set_logger(logger).map_err(|_| {
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "another logger is already installed",
        )
    })?;
    log::set_max_level(cfg.level);
    Ok(())
}

struct Logger {
    /// The `LevelFilter` as a number (a reload changes it).
    level: AtomicUsize,
    sink: Mutex<Sink>,
}

/// Applies a reloaded logger configuration: the level at once, and the output opened again
/// (a file is reopened even when its path did not change, so a file logrotate moved aside is
/// let go). On an error the running output stays.
pub fn reconfigure(cfg: &LoggerConfig) -> io::Result<()> {
    let Some(logger) = LOGGER.get() else {
        return init(cfg);
    };
    let sink = Sink::open(cfg)?;
    *logger.sink.lock().unwrap_or_else(PoisonError::into_inner) = sink;
    logger.level.store(cfg.level as usize, Ordering::Relaxed);
    log::set_max_level(cfg.level);
    Ok(())
}

enum Sink {
    Stdout,
    Stderr,
    File(RotatingFile),
}

impl Sink {
    fn open(cfg: &LoggerConfig) -> io::Result<Sink> {
        Ok(match &cfg.output {
            LogOutput::Stdout => Sink::Stdout,
            LogOutput::Stderr => Sink::Stderr,
            LogOutput::File(path) => Sink::File(RotatingFile::open(path, cfg.rotate_size)?),
        })
    }
}

impl Logger {
    fn new(cfg: &LoggerConfig) -> io::Result<Logger> {
        Ok(Logger {
            level: AtomicUsize::new(cfg.level as usize),
            sink: Mutex::new(Sink::open(cfg)?),
        })
    }

    fn level(&self) -> LevelFilter {
        let n = self.level.load(Ordering::Relaxed);
        LevelFilter::iter().nth(n).unwrap_or(LevelFilter::Trace)
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "{} [{}] {}\n",
            format_time(since_epoch),
            record.level(),
            record.args()
        );
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        // A failed log write has nowhere to be reported; the line is dropped.
        let _ = match &mut *sink {
            Sink::Stdout => io::stdout().lock().write_all(line.as_bytes()),
            Sink::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Sink::File(file) => file.write_line(line.as_bytes()),
        };
    }

    fn flush(&self) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = match &mut *sink {
            Sink::Stdout => io::stdout().flush(),
            Sink::Stderr => io::stderr().flush(),
            Sink::File(file) => file.file.flush(),
        };
    }
}

/// A log file that is renamed aside and reopened before it would grow beyond `rotate_size`.
struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file (including what was there when it was opened).
    written: u64,
    rotate_size: u64,
}

/// How many `.N` suffixes to try when several rotations fall in the same second.
const MAX_SAME_SECOND_ROTATIONS: u32 = 1000;

impl RotatingFile {
    fn open(path: &Path, rotate_size: u64) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            written,
            rotate_size,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = u64::try_from(line.len()).unwrap_or(u64::MAX);
        if self.written > 0 && self.written.saturating_add(len) > self.rotate_size {
            if let Err(e) = self.rotate() {
                // Keep writing to the current file; try again after another rotate_size.
                self.written = 0;
                let _ = writeln!(
                    self.file,
                    "log rotation of {} failed: {e}",
                    self.path.display()
                );
            }
        }
        self.file.write_all(line)?;
        self.written = self.written.saturating_add(len);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let base = format!("{}.{secs}", self.path.display());
        let mut target = PathBuf::from(&base);
        let mut n = 0;
        while target.exists() {
            n += 1;
            if n > MAX_SAME_SECOND_ROTATIONS {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "too many rotations this second",
                ));
            }
            target = PathBuf::from(format!("{base}.{n}"));
        }
        std::fs::rename(&self.path, &target)?;
        self.file = open_append(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

/// Opens `path` for appending, creating it and its parent directories.
fn open_append(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Latest instant `humantime` formats (the last millisecond of 9999); later clocks are clamped.
const LAST_INSTANT: Duration = Duration::new(253_402_300_799, 999_000_000);

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) for a time since the Unix epoch: `humantime`'s RFC 3339 form
/// with a space for the `T` and without the `Z`.
fn format_time(since_epoch: Duration) -> String {
    let at = UNIX_EPOCH + since_epoch.min(LAST_INSTANT);
    humantime::format_rfc3339_millis(at)
        .to_string()
        .trim_end_matches('Z')
        .replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rcomet-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn time_format() {
        let t = |secs: u64, ms: u64| format_time(Duration::from_millis(secs * 1000 + ms));
        assert_eq!(t(0, 0), "1970-01-01 00:00:00.000");
        assert_eq!(t(951_782_400, 123), "2000-02-29 00:00:00.123");
        assert_eq!(t(1_709_251_199, 999), "2024-02-29 23:59:59.999");
        assert_eq!(t(1_709_251_200, 0), "2024-03-01 00:00:00.000");
        assert_eq!(t(4_107_542_400, 0), "2100-03-01 00:00:00.000");
        assert_eq!(t(4_107_542_399, 5), "2100-02-28 23:59:59.005");
        assert_eq!(t(1_735_689_599, 0), "2024-12-31 23:59:59.000");
        assert_eq!(format_time(Duration::MAX), "9999-12-31 23:59:59.999");
    }

    #[test]
    fn writes_formatted_lines_to_a_new_file_in_new_dirs() {
        let dir = temp_dir("format");
        let path = dir.join("a/b/log.txt");
        let cfg = LoggerConfig {
            level: LevelFilter::Info,
            output: LogOutput::File(path.clone()),
            rotate_size: 1 << 20,
        };
        let logger = Logger::new(&cfg).unwrap();
        let record = |level, msg| {
            logger.log(
                &Record::builder()
                    .level(level)
                    .args(format_args!("{msg}"))
                    .build(),
            );
        };
        record(Level::Warn, "disk almost full");
        record(Level::Debug, "filtered out");
        record(Level::Info, "second");
        logger.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = lines[0];
        assert!(first.ends_with(" [WARN] disk almost full"), "{first}");
        let stamp = &first[..23];
        assert_eq!(stamp.as_bytes()[4], b'-');
        assert_eq!(stamp.as_bytes()[10], b' ');
        assert_eq!(stamp.as_bytes()[19], b'.');
        assert!(stamp.starts_with("20"), "{stamp}");
        assert!(lines[1].ends_with(" [INFO] second"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotates_before_exceeding_the_size() {
        let dir = temp_dir("rotate");
        let path = dir.join("log.txt");
        let mut file = RotatingFile::open(&path, 100).unwrap();
        let line = |i: usize| format!("{i:039}\n"); // 40 bytes
        for i in 0..7 {
            file.write_line(line(i).as_bytes()).unwrap();
        }
        drop(file);
        // 7 lines of 40 bytes, at most 2 per file: 4 files, nothing lost, current file last.
        let files = files_in(&dir);
        assert_eq!(files.len(), 4, "{files:?}");
        let current = std::fs::read_to_string(&path).unwrap();
        assert_eq!(current, line(6));
        let mut all = String::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.len() <= 100, "{f:?} has {} bytes", text.len());
            if *f != path {
                let name = f.file_name().unwrap().to_str().unwrap();
                assert!(name.starts_with("log.txt."), "{name}");
                all.push_str(&text);
            }
        }
        all.push_str(&current);
        let mut got: Vec<&str> = all.lines().collect();
        got.sort();
        let want: Vec<String> = (0..7).map(|i| line(i).trim_end().to_string()).collect();
        assert_eq!(got, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appends_to_existing_file_and_counts_its_size() {
        let dir = temp_dir("append");
        let path = dir.join("log.txt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, "x".repeat(90)).unwrap();
        let mut file = RotatingFile::open(&path, 100).unwrap();
        file.write_line(b"0123456789\n").unwrap();
        drop(file);
        assert_eq!(files_in(&dir).len(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0123456789\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn init_twice_is_a_noop() {
        let cfg = LoggerConfig {
            level: LevelFilter::Off,
            output: LogOutput::Stderr,
            rotate_size: 1 << 20,
        };
        assert!(init(&cfg).is_ok());
        assert!(init(&cfg).is_ok());
        assert_eq!(log::max_level(), LevelFilter::Off);
    }
}
