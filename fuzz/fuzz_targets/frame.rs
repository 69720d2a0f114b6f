//! Message framing: the 5-byte prefix decoder over a chunked stream. The body and its invariants: `rgrpc_runtime::fuzz::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::frame(data));
