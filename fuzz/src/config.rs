//! Target of the configuration-file parser: `ConfigFile::parse_bytes` (the syntax) and
//! `config::from_bytes` (the keys, values and checks, as `rcomet FILE` loads a file).
//!
//! Invariants:
//! * an error names this file and a line that exists;
//! * the entries' lines increase, and each entry's key path is its parent block's path plus one
//!   key (indentation never skips a level);
//! * the entries written back canonically (`TAB`s, `key: value`) parse to the same entries;
//! * a loaded config passes `Config::validate`, its warnings name this file, and the canonical
//!   text loads to the same config with as many warnings (or fails as well).
//!
//! An input whose `admin.listen` or `front.listen` host is a name is not loaded: the loader would
//! resolve it, and a fuzzer must not send DNS queries.

use std::net::IpAddr;
use std::path::Path;

use rcomet::config::{self, ConfigFile, Entry};

/// The file every input is loaded as (relative paths in it are taken from `/etc/rcomet`).
const PATH: &str = "/etc/rcomet/fuzz.conf";

/// `data` is a configuration file's contents.
pub fn config(data: &[u8]) {
    let path = Path::new(PATH);
    let lines = data.split(|&b| b == b'\n').count();
    let file = match ConfigFile::parse_bytes(path, data) {
        Ok(file) => file,
        Err(e) => {
            assert_eq!(e.file, path);
            assert!(
                e.line >= 1 && e.line <= lines,
                "error at line {} of {lines}",
                e.line
            );
            assert!(config::from_bytes(path, data).is_err());
            return;
        }
    };
    check_entries(file.entries(), lines);
    let canonical = render(file.entries());
    let again = ConfigFile::parse_bytes(path, &canonical).unwrap_or_else(|e| {
        panic!(
            "canonical text {:?} does not parse: {e}",
            String::from_utf8_lossy(&canonical)
        )
    });
    assert_eq!(again.entries().len(), file.entries().len());
    for (i, (a, b)) in file.entries().iter().zip(again.entries()).enumerate() {
        assert_eq!(a.keys, b.keys);
        assert_eq!(a.value, b.value);
        assert_eq!(b.line, i + 1);
    }
    if file.entries().iter().any(needs_resolver) {
        return;
    }
    match (
        config::from_bytes(path, data),
        config::from_bytes(path, &canonical),
    ) {
        (Ok((c, warnings)), Ok((c2, warnings2))) => {
            assert!(c.validate().is_ok());
            assert_eq!(c, c2, "the canonical text loads differently");
            assert_eq!(warnings.len(), warnings2.len());
            for w in &warnings {
                assert!(w.starts_with(&format!("{PATH}:")), "warning {w:?}");
            }
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("the text gives {a:?}, its canonical form {b:?}"),
    }
}

fn check_entries(entries: &[Entry], lines: usize) {
    let mut previous: Option<&Entry> = None;
    for entry in entries {
        assert!(entry.line >= 1 && entry.line <= lines);
        let Some((own, parents)) = entry.keys.split_last() else {
            panic!("an entry without a key at line {}", entry.line);
        };
        assert!(!own.contains([':', '=', '\n']), "key {own:?}");
        match previous {
            None => assert!(parents.is_empty(), "the first entry is indented"),
            Some(prev) => {
                assert!(entry.line > prev.line);
                assert!(
                    parents.len() <= prev.keys.len() && parents == &prev.keys[..parents.len()],
                    "line {}: {:?} does not nest under {:?}",
                    entry.line,
                    entry.keys,
                    prev.keys
                );
            }
        }
        previous = Some(entry);
    }
}

/// The entries as a canonical file: one `key: value` line each, indented by TABs.
fn render(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        out.extend(std::iter::repeat_n(
            b'\t',
            entry.keys.len().saturating_sub(1),
        ));
        out.extend_from_slice(entry.keys.last().map_or("", String::as_str).as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(entry.value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Whether loading `entry` would resolve a host name (the same steps as the loader's listen
/// parser: split at the last colon, a valid port, brackets stripped, not empty, not an IP).
fn needs_resolver(entry: &Entry) -> bool {
    let path = entry.path();
    if path != "admin.listen" && path != "front.listen" {
        return false;
    }
    let Some((host, port)) = entry.value.trim().rsplit_once(':') else {
        return false;
    };
    if port.trim().parse::<u16>().is_err() {
        return false;
    }
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    !host.is_empty() && host.parse::<IpAddr>().is_err()
}
