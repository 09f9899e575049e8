//! Fuzz target `name`: see `contactd_fuzz::name` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::name(data));
