#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| statelog_cli::apply_line::fuzz(data));
