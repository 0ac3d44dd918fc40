#![no_main]
//! `cogbroker::fuzzing::docker` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::docker(data));
