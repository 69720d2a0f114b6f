fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Messages only: this crate has no services, and needs no runtime.
    protoc_gen_rgrpc::Builder::new()
        .client(false)
        .server(false)
        .compile(&["proto/shared/v1/types.proto"], &["proto"])?;
    Ok(())
}
