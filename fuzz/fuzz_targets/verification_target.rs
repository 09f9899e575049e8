//! Fuzz target `verification_target`: see `contactd_fuzz::verification_target` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::verification_target(data));
