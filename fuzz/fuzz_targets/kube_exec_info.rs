#![no_main]
//! `cogbroker::fuzzing::kube_exec_info` under libFuzzer (`make fuzz`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogbroker::fuzzing::kube_exec_info(data));
