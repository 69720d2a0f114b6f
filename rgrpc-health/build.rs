fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The vendored grpc/health/v1/health.proto, through our own generator (pure Rust,
    // no protoc).
    protoc_gen_rgrpc::Builder::new().compile(&["proto/grpc/health/v1/health.proto"], &["proto"])?;
    Ok(())
}
