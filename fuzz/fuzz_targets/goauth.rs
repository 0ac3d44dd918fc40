#![no_main]
//! `cogbroker::fuzzing::goauth` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::goauth(data));
