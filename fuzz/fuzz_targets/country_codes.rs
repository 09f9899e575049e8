//! Fuzz target `country_codes`: see `contactd_fuzz::country_codes` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::country_codes(data));
