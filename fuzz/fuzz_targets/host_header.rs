#![no_main]
//! `cogbroker::fuzzing::host_header` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::host_header(data));
