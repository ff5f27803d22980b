//! libFuzzer entry of the `jsonp_callback` target; the harness and its invariants are in
//! `rcomet_fuzz::jsonp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcomet_fuzz::jsonp::jsonp_callback(data));
