//! libFuzzer entry of the `ws_command` target; the harness and its invariants are in
//! `rcomet_fuzz::ws_command`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcomet_fuzz::ws_command::ws_command(data));
