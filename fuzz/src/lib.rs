//! Fuzz harnesses for every rcomet parser that reads bytes from the network or from operators.
//! Each target is one function `fn(&[u8])` that feeds the bytes to the parser and checks, with
//! `assert!`, an invariant beyond "does not panic" (a round trip, a split-feeding equivalence, a
//! limit, a reference model). The same functions run in two drivers:
//!
//! * `libfuzzer/` (cargo-fuzz, libFuzzer, coverage-guided): `make fuzz`.
//! * `tests/corpus.rs` (an ordinary cargo test): every committed corpus file (`corpus/<target>/`)
//!   plus a few thousand mutants of them, in `make test`.
//!
//! Depends on the `rcomet` library only through its public API.

pub mod config;
pub mod http;
pub mod jsonp;
pub mod snapshot;
pub mod ws;
pub mod ws_command;

/// A harness: feeds one input to a parser and panics if an invariant fails.
pub type Harness = fn(&[u8]);

/// Every target: its name (the libFuzzer binary and the corpus folder) and its harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("http_request", http::http_request),
    ("http_chunked", http::http_chunked),
    ("http_query", http::http_query),
    ("config", config::config),
    ("jsonp_callback", jsonp::jsonp_callback),
    ("ws_decode", ws::ws_decode),
    ("ws_handshake", ws::ws_handshake),
    ("ws_command", ws_command::ws_command),
    ("snapshot", snapshot::snapshot),
];

/// A deterministic 64-bit digest of `data` (FNV-1a, then the splitmix finalizer): where a harness
/// needs "a random split" it takes it from the input, so a failure replays from its input alone.
pub fn digest(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Reads structure out of fuzz bytes: small numbers and slices, zero once the bytes run out.
pub struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }
}
