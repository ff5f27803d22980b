//! libFuzzer entry of the `config` target; the harness and its invariants are in
//! `rcomet_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcomet_fuzz::config::config(data));
