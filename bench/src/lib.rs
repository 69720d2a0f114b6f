//! rgrpc side of the benchmarks: `grpc.testing.BenchmarkService` served and driven over
//! rgrpc. `bench-tonic/` is the same on tonic; `scripts/bench.sh` runs both.

#![deny(missing_docs)]

pub mod pb {
    //! Generated from proto/grpc/testing/benchmark_service.proto.
    #![allow(missing_docs)]
    rgrpc_runtime::include_proto!("grpc.testing");
}

pub mod common;
pub mod load;
pub mod observe;
pub mod server;
