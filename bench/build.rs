fn main() -> Result<(), Box<dyn std::error::Error>> {
    // grpc.testing.BenchmarkService (imports messages.proto); parsed in pure Rust.
    // bytes fields as `Bytes`, as bench-tonic does: decoding a payload slices the
    // received buffer instead of copying it.
    protoc_gen_rgrpc::Builder::new().bytes(["."]).compile(
        &["../proto/grpc/testing/benchmark_service.proto"],
        &["../proto"],
    )?;
    Ok(())
}
