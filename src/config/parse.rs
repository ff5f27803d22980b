//! Parser for iComet's configuration-file syntax: `key: value` / `key = value` lines nested by TAB
//! indentation, `#` comments and blank lines. Produces a flat list of entries with their full key
//! path and line number; knows nothing about what the keys mean. Depends on std only.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem at one line of a configuration file; shown as `FILE:LINE: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file the line belongs to.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// One `key: value` line, with the keys of the blocks that enclose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Key path from the top level down to this line's own key (`["front", "listen"]`).
    pub keys: Vec<String>,
    /// The value, trimmed; empty for block headers such as `front:`.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

impl Entry {
    /// The key path joined with dots (`front.listen`).
    pub fn path(&self) -> String {
        self.keys.join(".")
    }

    /// Whether this entry sits at `path` (segments separated by `.` or `/`).
    #[cfg(test)]
    pub fn is_at(&self, path: &str) -> bool {
        let mut wanted = path.split(['.', '/']);
        let mut own = self.keys.iter();
        loop {
            match (wanted.next(), own.next()) {
                (None, None) => return true,
                (Some(w), Some(k)) if w == k => {}
                _ => return false,
            }
        }
    }
}

/// A parsed configuration file: every entry in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    file: PathBuf,
    entries: Vec<Entry>,
}

/// Characters trimmed from keys and values, and the ones that make a line blank.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

impl ConfigFile {
    /// Parses raw file contents; the text must be UTF-8.
    pub fn parse_bytes(file: &Path, bytes: &[u8]) -> Result<ConfigFile, ParseError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => ConfigFile::parse(file, text),
            Err(e) => {
                let good = bytes.get(..e.valid_up_to()).unwrap_or_default();
                let line = good.iter().filter(|b| **b == b'\n').count() + 1;
                Err(error_at(file, line, "invalid UTF-8"))
            }
        }
    }

    /// Parses configuration text. `file` is only used to label errors.
    pub fn parse(file: &Path, text: &str) -> Result<ConfigFile, ParseError> {
        let mut entries = Vec::new();
        // Keys of the most recent entry at each depth: the ancestors of the next line.
        let mut stack: Vec<String> = Vec::new();
        // Depth of the previous non-comment line; the first line must be at depth 0.
        let mut last_depth: Option<usize> = None;
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            if raw.chars().all(is_space) {
                continue;
            }
            let depth = raw.bytes().take_while(|b| *b == b'\t').count();
            let rest = raw.get(depth..).unwrap_or_default();
            if rest.starts_with('#') {
                continue;
            }
            if depth > last_depth.map_or(0, |d| d + 1) {
                return Err(error_at(file, line, "invalid indent"));
            }
            if rest.starts_with(is_space) {
                return Err(error_at(
                    file,
                    line,
                    "unexpected whitespace (indent with TABs only)",
                ));
            }
            let Some((key, value)) = rest.split_once([':', '=']) else {
                return Err(error_at(
                    file,
                    line,
                    "expected `key: value` or `key = value`",
                ));
            };
            stack.truncate(depth);
            stack.push(key.trim_matches(is_space).to_string());
            entries.push(Entry {
                keys: stack.clone(),
                value: value.trim_matches(is_space).to_string(),
                line,
            });
            last_depth = Some(depth);
        }
        Ok(ConfigFile {
            file: file.to_path_buf(),
            entries,
        })
    }

    /// The file this was parsed from.
    #[cfg(test)]
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every entry in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The last entry at `path` (`front.polling_timeout` or `front/polling_timeout`).
    #[cfg(test)]
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.is_at(path))
    }

    /// The value of the last entry at `path`.
    #[cfg(test)]
    pub fn value(&self, path: &str) -> Option<&str> {
        self.get(path).map(|e| e.value.as_str())
    }

    /// Every entry at `path`, in file order (for repeatable keys such as `admin.allow`).
    #[cfg(test)]
    pub fn get_all<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.is_at(path))
    }

    /// An error about `entry`, labelled with this file and the entry's line.
    pub fn error(&self, entry: &Entry, reason: impl Into<String>) -> ParseError {
        error_at(&self.file, entry.line, reason)
    }
}

fn error_at(file: &Path, line: usize, reason: impl Into<String>) -> ParseError {
    ParseError {
        file: file.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ParseError> {
        ConfigFile::parse(Path::new("test.conf"), text)
    }

    fn err_line(text: &str) -> (usize, String) {
        match parse(text) {
            Ok(cfg) => panic!("expected an error, got {cfg:?}"),
            Err(e) => (e.line, e.reason),
        }
    }

    #[test]
    fn nested_blocks_give_paths() {
        let cfg =
            parse("a = 1\nlogger:\n\tlevel: debug\n\trotate:\n\t\tsize: 10\nfront:\n\tx: y\n")
                .unwrap();
        assert_eq!(cfg.value("a"), Some("1"));
        assert_eq!(cfg.value("logger"), Some(""));
        assert_eq!(cfg.value("logger.level"), Some("debug"));
        assert_eq!(cfg.value("logger.rotate.size"), Some("10"));
        assert_eq!(cfg.value("logger/rotate/size"), Some("10"));
        assert_eq!(cfg.value("front.x"), Some("y"));
        assert_eq!(cfg.value("level"), None);
        assert_eq!(cfg.value("logger.rotate.size.more"), None);
        assert_eq!(cfg.get("front.x").map(|e| e.line), Some(7));
        assert_eq!(
            cfg.get("front.x").map(Entry::path).as_deref(),
            Some("front.x")
        );
    }

    #[test]
    fn first_separator_splits_and_values_are_trimmed() {
        let cfg = parse("listen = 0.0.0.0:8000\nurl: http://x=y\n  \nk\t=\t v \t\n").unwrap();
        assert_eq!(cfg.value("listen"), Some("0.0.0.0:8000"));
        assert_eq!(cfg.value("url"), Some("http://x=y"));
        assert_eq!(cfg.value("k"), Some("v"));
    }

    #[test]
    fn crlf_lines() {
        let cfg = parse("a: 1\r\nb:\r\n\tc = two\r\n\r\n# note\r\n\td: 3\r\n").unwrap();
        assert_eq!(cfg.value("a"), Some("1"));
        assert_eq!(cfg.value("b"), Some(""));
        assert_eq!(cfg.value("b.c"), Some("two"));
        assert_eq!(cfg.value("b.d"), Some("3"));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped_at_any_depth() {
        let text = "# top\n\n\t\t# deep comment\na:\n\t# inside\n\tb: 1\n\n\t\n\tc: 2\n";
        let cfg = parse(text).unwrap();
        let paths: Vec<String> = cfg.entries().iter().map(Entry::path).collect();
        assert_eq!(paths, ["a", "a.b", "a.c"]);
        assert_eq!(cfg.get("a.c").map(|e| e.line), Some(9));
    }

    #[test]
    fn last_repeat_wins_and_all_are_collected() {
        let cfg = parse("a:\n\tallow: 1\n\tk: x\n\tallow: 2\n\tk: y\n").unwrap();
        assert_eq!(cfg.value("a.k"), Some("y"));
        let all: Vec<&str> = cfg.get_all("a.allow").map(|e| e.value.as_str()).collect();
        assert_eq!(all, ["1", "2"]);
    }

    #[test]
    fn dedent_returns_to_outer_block() {
        let cfg = parse("a:\n\tb:\n\t\tc: 1\nd: 2\ne:\n\tf: 3\n").unwrap();
        assert_eq!(cfg.value("d"), Some("2"));
        assert_eq!(cfg.value("e.f"), Some("3"));
        assert_eq!(cfg.value("a.b.c"), Some("1"));
    }

    #[test]
    fn invalid_indent_reports_its_line() {
        assert_eq!(err_line("a:\n\t\tb: 1\n").0, 2);
        assert_eq!(err_line("\ta: 1\n").0, 1);
        let (line, reason) = err_line("a: 1\n# c\nb:\n\tc: 1\n\t\t\td: 2\n");
        assert_eq!(line, 5);
        assert_eq!(reason, "invalid indent");
    }

    #[test]
    fn space_indent_reports_its_line() {
        let (line, reason) = err_line("a:\n\tb: 1\n    c: 2\n");
        assert_eq!(line, 3);
        assert!(reason.contains("unexpected whitespace"), "{reason}");
        assert_eq!(err_line("a:\n\t b: 1\n").0, 2);
        assert_eq!(err_line("  # not a comment for iComet either\n").0, 1);
    }

    #[test]
    fn missing_separator_reports_its_line() {
        let (line, reason) = err_line("a: 1\n\nfront\n");
        assert_eq!(line, 3);
        assert!(reason.contains("expected"), "{reason}");
    }

    #[test]
    fn error_display_is_file_line_reason() {
        let err = ConfigFile::parse(Path::new("/etc/x.conf"), "a:\n\t\tb: 1\n").unwrap_err();
        assert_eq!(err.to_string(), "/etc/x.conf:2: invalid indent");
    }

    #[test]
    fn invalid_utf8_reports_its_line() {
        let err = ConfigFile::parse_bytes(Path::new("x"), b"a: 1\nb: \xff\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(ConfigFile::parse_bytes(Path::new("x"), b"a: 1\n").is_ok());
    }

    #[test]
    fn empty_text_has_no_entries() {
        assert!(parse("").unwrap().entries().is_empty());
        assert!(parse("\n\n# x\n").unwrap().entries().is_empty());
    }
}
