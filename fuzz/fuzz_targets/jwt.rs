#![no_main]
//! `cogbroker::fuzzing::jwt` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::jwt(data));
