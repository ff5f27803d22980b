//! The project's own architecture document matches the tree: docs/ARCHITECTURE.md names every
//! `.rs` file of `src/` exactly once (as `src/...`), and names no file that does not exist; and
//! the worker stays a router: no function in `src/worker/` is longer than 60 lines.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_files() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .expect("under the crate")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Every `src/....rs` path the document mentions, with how often.
fn mentioned(doc: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = doc;
    while let Some(at) = rest.find("src/") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "/_.".contains(c)))
            .unwrap_or(tail.len());
        let path = tail[..end].trim_end_matches('.');
        if path.ends_with(".rs") {
            found.push(path.to_string());
        }
        rest = &tail[end.max(4)..];
    }
    found
}

#[test]
fn the_architecture_doc_names_every_source_file_once() {
    let doc =
        fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let files = src_files();
    let named = mentioned(&doc);
    let mut problems = Vec::new();
    for f in &files {
        let n = named.iter().filter(|m| *m == f).count();
        if n != 1 {
            problems.push(format!("{f} is named {n} times"));
        }
    }
    for m in named.iter().collect::<BTreeSet<_>>() {
        if !files.contains(m) {
            problems.push(format!("{m} is named but does not exist"));
        }
    }
    assert!(problems.is_empty(), "docs/ARCHITECTURE.md: {problems:#?}");
}

/// Length of each `fn` in `text` (from its `fn` line to the closing brace at the same indent).
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
            .iter()
            .any(|p| trimmed.starts_with(p));
        if !is_fn || trimmed.ends_with(';') {
            i += 1;
            continue;
        }
        let name = trimmed
            .split("fn ")
            .nth(1)
            .and_then(|r| r.split(['(', '<']).next())
            .unwrap_or("?")
            .to_string();
        let close = format!("{}}}", " ".repeat(indent));
        let end = (i + 1..lines.len())
            .find(|&k| lines[k] == close)
            .unwrap_or(i);
        out.push((name, end - i + 1));
        i = end + 1;
    }
    out
}

#[test]
fn no_worker_function_is_over_60_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("src/worker"), &mut files);
    let mut long = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).expect("read");
        for (name, n) in function_lengths(&text) {
            if n > 60 {
                long.push(format!("{}: {name} has {n} lines", f.display()));
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn the_length_counter_counts() {
    let text =
        "fn a() {\n    x;\n}\n\n    pub(super) fn b(\n        y: u8,\n    ) {\n        z;\n    }\n";
    assert_eq!(
        function_lengths(text),
        vec![("a".to_string(), 3), ("b".to_string(), 5)]
    );
}
