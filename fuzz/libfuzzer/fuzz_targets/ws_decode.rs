//! libFuzzer entry of the `ws_decode` target; the harness and its invariants are in
//! `rcomet_fuzz::ws`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcomet_fuzz::ws::ws_decode(data));
