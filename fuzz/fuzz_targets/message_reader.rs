//! The message reader over a real in-memory h2 stream. The body and its invariants: `rgrpc_runtime::fuzz::message_reader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::message_reader(data));
