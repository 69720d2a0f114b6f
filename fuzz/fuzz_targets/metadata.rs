//! Metadata: -bin base64, received header maps, the setters. The body and its invariants: `rgrpc_runtime::fuzz::metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::metadata(data));
