//! Fuzz target `paging`: see `contactd_fuzz::paging` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contactd_fuzz::paging(data));
