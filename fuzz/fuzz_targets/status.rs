//! grpc-status, grpc-message and the status trailers. The body and its invariants: `rgrpc_runtime::fuzz::status`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::status(data));
