fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Pure-Rust .proto parsing: no protoc needed.
    protoc_gen_rgrpc::Builder::new().compile(
        &[
            "../proto/helloworld/helloworld.proto",
            "../proto/routeguide/route_guide.proto",
        ],
        &["../proto"],
    )?;
    Ok(())
}
