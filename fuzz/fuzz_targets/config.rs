#![no_main]
//! `cogbroker::fuzzing::config` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::config(data));
