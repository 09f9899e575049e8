//! Fuzz target `choices`: see `contactd_fuzz::choices` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::choices(data));
