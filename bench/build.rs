fn main() -> Result<(), Box<dyn std::error::Error>> {
    // grpc.testing.BenchmarkService (imports messages.proto); parsed in pure Rust.
    protoc_gen_rgrpc::Builder::new().compile(
        &["../proto/grpc/testing/benchmark_service.proto"],
        &["../proto"],
    )?;
    println!("cargo:rerun-if-changed=../proto/grpc/testing/benchmark_service.proto");
    Ok(())
}
