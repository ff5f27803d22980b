//! libFuzzer entry of the `http_query` target; the harness and its invariants are in
//! `rcomet_fuzz::http`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcomet_fuzz::http::http_query(data));
