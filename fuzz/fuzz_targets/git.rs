#![no_main]
//! `cogbroker::fuzzing::git` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::git(data));
