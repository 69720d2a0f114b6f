//! Arbitrary client bytes into a server connection, in memory. The body and its invariants: `rgrpc_runtime::fuzz::server_connection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rgrpc_runtime::fuzz::server_connection(data));
