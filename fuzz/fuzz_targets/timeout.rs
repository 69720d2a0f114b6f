//! grpc-timeout parsing and formatting. The body and its invariants: `rgrpc_runtime::fuzz::timeout`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::timeout(data));
