#![no_main]
//! `cogbroker::fuzzing::cargo` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::cargo(data));
