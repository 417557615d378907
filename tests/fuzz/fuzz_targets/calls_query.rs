//! `hotline::fuzz::calls_query` under libFuzzer: see that function for what it reads and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline::fuzz::calls_query(data));
