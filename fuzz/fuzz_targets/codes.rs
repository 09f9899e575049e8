//! Fuzz target `codes`: see `contactd_fuzz::codes` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::codes(data));
