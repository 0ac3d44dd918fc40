#![no_main]
//! `cogbroker::fuzzing::token_query` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::token_query(data));
