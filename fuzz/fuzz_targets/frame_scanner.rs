//! The frame observer's scanner over chunked bytes. The body and its invariants: `rgrpc_runtime::fuzz::frame_scanner`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::frame_scanner(data));
