#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| postfleet_fuzz::facts(data));
