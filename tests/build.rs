fn main() -> Result<(), Box<dyn std::error::Error>> {
    protoc_gen_rgrpc::Builder::new()
        .compile(&["../proto/grpc/testing/test.proto"], &["../proto"])?;
    // For tests/reflection.rs: a service whose file imports the well-known types, whose
    // descriptors are copied into the generated file.
    protoc_gen_rgrpc::Builder::new().compile(&["../proto/codegen/wkt/wkt.proto"], &["../proto"])?;
    Ok(())
}
