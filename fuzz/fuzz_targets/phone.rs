//! Fuzz target `phone`: see `contactd_fuzz::phone` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::phone(data));
