//! gzip decompression with a limit. The body and its invariants: `rgrpc_runtime::fuzz::compression`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::compression(data));
