#![no_main]
//! `cogbroker::fuzzing::srp_challenge` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::srp_challenge(data));
