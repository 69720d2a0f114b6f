//! The Rust side of gRPC's interop suite (grpc/grpc `doc/interop-test-descriptions.md`):
//! a `grpc.testing.TestService` server ([`server`]) and the interop client's test cases
//! ([`client`]), run by the `rgrpc-interop-server` and `rgrpc-interop-client` binaries
//! and judged against grpcio by `tests/interop/run.py`.

#![deny(missing_docs)]

pub mod pb {
    //! Generated from proto/grpc/testing/{test,messages,empty}.proto.
    #![allow(missing_docs)]
    rgrpc_runtime::include_proto!("grpc.testing");
}

mod cases;
pub mod client;
pub mod flags;
pub mod server;
