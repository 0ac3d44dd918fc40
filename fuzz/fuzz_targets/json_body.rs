#![no_main]
//! `cogbroker::fuzzing::json_body` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::json_body(data));
