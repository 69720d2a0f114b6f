//! tonic side of the benchmarks: `grpc.testing.BenchmarkService` served and driven over
//! tonic 0.14, with the flags, loops and report of `../bench` (shared via `#[path]`).

#![deny(missing_docs)]

pub mod pb {
    //! Generated from proto/grpc/testing/benchmark_service.proto.
    #![allow(missing_docs)]
    tonic::include_proto!("grpc.testing");
}

#[path = "../../bench/src/common.rs"]
pub mod common;
pub mod load;
pub mod server;
