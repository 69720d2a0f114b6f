//! Arbitrary server bytes into a client connection, in memory. The body and its invariants: `rgrpc_runtime::fuzz::client_connection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::client_connection(data));
