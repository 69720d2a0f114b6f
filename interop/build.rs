fn main() -> Result<(), Box<dyn std::error::Error>> {
    // grpc.testing (test.proto imports empty.proto and messages.proto); parsed in pure
    // Rust, so no protoc is needed.
    protoc_gen_rgrpc::Builder::new()
        .compile(&["../proto/grpc/testing/test.proto"], &["../proto"])?;
    Ok(())
}
