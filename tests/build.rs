fn main() -> Result<(), Box<dyn std::error::Error>> {
    protoc_gen_rgrpc::Builder::new()
        .compile(&["../proto/grpc/testing/test.proto"], &["../proto"])?;
    Ok(())
}
