fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `.shared.v1` comes from the other crate: neither its messages nor this crate's
    // service code get their own copy of those types.
    protoc_gen_rgrpc::Builder::new()
        .extern_path(".shared.v1", "::rgrpc_example_shared_types::shared::v1")
        .compile(
            &["proto/bank/v1/bank.proto"],
            &["proto", "../shared-types/proto"],
        )?;
    Ok(())
}
