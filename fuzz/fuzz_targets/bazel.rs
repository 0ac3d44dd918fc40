#![no_main]
//! `cogbroker::fuzzing::bazel` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::bazel(data));
