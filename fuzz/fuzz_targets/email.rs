//! Fuzz target `email`: see `contactd_fuzz::email` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::email(data));
