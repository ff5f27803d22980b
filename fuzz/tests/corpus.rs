//! The short fuzzing run of `make test`: every target's harness (the same function the
//! coverage-guided driver in `libfuzzer/` calls) over its committed corpus (`corpus/<target>/`)
//! and over inputs generated from it: mutants (bit flips, interesting bytes and tokens, cuts,
//! copies, splices with other corpus files) and random bytes, from a fixed seed, so every run
//! checks the same inputs. `FUZZ_SMOKE_N` sets the number of generated inputs per target
//! (default 10,000), `FUZZ_SMOKE_SEED` the seed. A failing input is written to the system's
//! temporary folder and named in the failure; replay it with
//! `cargo fuzz run --fuzz-dir fuzz/libfuzzer --sanitizer none TARGET FILE`, and once fixed add it
//! to the corpus.
//!
//! Not coverage-guided on purpose: building the libFuzzer targets takes cargo-fuzz and an
//! instrumented release build of the whole crate (minutes on a 2-core machine) before the first
//! input runs; these inputs run in about a second. `make fuzz` is the coverage-guided run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rcomet_fuzz::{digest, Harness, TARGETS};

/// The committed corpus may not grow beyond this (all targets together).
const CORPUS_BUDGET: u64 = 200 * 1024;

/// Generated inputs stay below libFuzzer's default `-max_len`.
const MAX_LEN: usize = 4096;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_files(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a corpus file");
            (path, bytes)
        })
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// xorshift64*: the generator of the mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes and tokens the parsers treat specially.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b"=",
    b"&",
    b"%",
    b"%0",
    b"%41",
    b"+",
    b"#",
    b"?",
    b";",
    b",",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"0\r\n\r\n",
    b"ffffffffffffffff",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Expect: 100-continue",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"\x81\xfe",
    b"\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff",
    b"\x88\x82",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\xc3",
    b"\xe4\xbd",
    b"\xf0\x9f\x98",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] =
                    [0, 0x7f, 0x80, 0xff, b'\r', b'\n', b'0', b'9', b'a', b'F'][rng.below(10)];
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                out.splice(at..at, token.iter().copied());
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(16)).min(len);
                out.drain(from..to);
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(64)).min(len);
                let copy = out[from..to].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, copy);
            }
            5 => out.truncate(rng.below(len + 1)),
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())].1;
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + 1 + rng.below(256)).min(other.len());
                    let at = rng.below(len + 1);
                    out.splice(at..at, other[from..to].iter().copied());
                }
            }
            7 if len > 0 => {
                let at = rng.below(len);
                out[at] = out[at].wrapping_add(1 + rng.below(3) as u8);
            }
            _ => {
                let at = rng.below(len + 1);
                let random: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, random);
            }
        }
    }
    out.truncate(MAX_LEN);
    out
}

/// Runs `harness` on `input`; a panic is reported with the input, saved to a file.
fn run_one(target: &str, harness: Harness, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| harness(input))).is_ok() {
        return;
    }
    let saved = std::env::temp_dir().join(format!("rcomet-fuzz-{target}-{:016x}", digest(input)));
    let note = match std::fs::write(&saved, input) {
        Ok(()) => format!("saved to {}", saved.display()),
        Err(e) => format!("could not save it to {}: {e}", saved.display()),
    };
    panic!(
        "{target}: {what} failed ({} bytes, {note}): {:?}",
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(512)])
    );
}

fn smoke(target: &str) {
    let harness: Harness = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, harness)| *harness)
        .expect("a target of rcomet_fuzz::TARGETS");
    let corpus = corpus_files(target);
    assert!(!corpus.is_empty(), "corpus/{target} is empty");
    for (path, bytes) in &corpus {
        run_one(target, harness, bytes, &path.display().to_string());
    }
    let count = env_number("FUZZ_SMOKE_N", 10_000);
    let seed = env_number("FUZZ_SMOKE_SEED", 0x5eed) ^ digest(target.as_bytes());
    let mut rng = Rng(seed | 1);
    for i in 0..count {
        let input = if i % 16 == 15 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let base = &corpus[rng.below(corpus.len())].1;
            mutate(&mut rng, base, &corpus)
        };
        run_one(target, harness, &input, &format!("generated input {i}"));
    }
}

macro_rules! smoke_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                smoke(stringify!($target));
            }
        )*

        #[test]
        fn every_target_has_a_smoke_test() {
            let tested = [$(stringify!($target)),*];
            let targets: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
            assert_eq!(targets, tested);
        }
    };
}

smoke_tests!(
    http_request,
    http_chunked,
    http_query,
    config,
    jsonp_callback,
    ws_decode,
    ws_handshake,
    ws_command,
    snapshot,
);

/// The libFuzzer driver has one binary per target, each calling its harness, and every corpus
/// folder belongs to a target.
#[test]
fn drivers_and_corpus_folders_match_the_targets() {
    let driver = fuzz_dir().join("libfuzzer");
    let manifest =
        std::fs::read_to_string(driver.join("Cargo.toml")).expect("libfuzzer/Cargo.toml");
    for (name, _) in TARGETS {
        let source = driver.join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains(&format!("::{name}(data)")),
            "{} calls its harness",
            source.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "libfuzzer/Cargo.toml has a [[bin]] {name}"
        );
    }
    let mut folders: Vec<String> = std::fs::read_dir(fuzz_dir().join("corpus"))
        .expect("corpus/")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    folders.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(folders, names);
}

#[test]
fn corpus_stays_small() {
    fn size(path: &Path) -> u64 {
        if path.is_dir() {
            std::fs::read_dir(path)
                .expect("a folder")
                .map(|e| size(&e.expect("an entry").path()))
                .sum()
        } else {
            std::fs::metadata(path).map_or(0, |m| m.len())
        }
    }
    let total = size(&fuzz_dir().join("corpus"));
    assert!(total <= CORPUS_BUDGET, "the corpus is {total} bytes");
}
