//! libFuzzer entry of the `snapshot` target; the harness and its invariants are in
//! `rcomet_fuzz::snapshot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcomet_fuzz::snapshot::snapshot(data));
