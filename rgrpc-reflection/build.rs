fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The vendored reflection protos, through our own generator (pure Rust, no protoc).
    protoc_gen_rgrpc::Builder::new().compile(
        &[
            "proto/grpc/reflection/v1/reflection.proto",
            "proto/grpc/reflection/v1alpha/reflection.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
