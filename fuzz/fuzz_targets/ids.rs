//! Fuzz target `ids`: see `contactd_fuzz::ids` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::ids(data));
