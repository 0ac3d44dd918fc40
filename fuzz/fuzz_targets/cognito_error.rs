#![no_main]
//! `cogbroker::fuzzing::cognito_error` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::cognito_error(data));
