//! Fuzz target `requests`: see `contactd_fuzz::requests` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::requests(data));
