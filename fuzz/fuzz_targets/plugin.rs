//! The protoc plugin on arbitrary stdin. The body and its invariants: `protoc_gen_rgrpc::fuzz::plugin`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protoc_gen_rgrpc::fuzz::plugin(data));
