fn main() -> Result<(), Box<dyn std::error::Error>> {
    // No system protoc: the vendored binary from the protoc-bin-vendored crate.
    // SAFETY: build scripts are single-threaded here; nothing else reads the variable.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    tonic_prost_build::configure()
        // bytes fields as `Bytes`: the streaming handlers clone the response per
        // message (tonic's streams yield owned messages); with Vec<u8> each clone would
        // copy the payload, a cost rgrpc (which sends `&T`) does not pay.
        .bytes(".")
        .compile_protos(
            &["../proto/grpc/testing/benchmark_service.proto"],
            &["../proto"],
        )?;
    println!("cargo:rerun-if-changed=../proto/grpc/testing/benchmark_service.proto");
    Ok(())
}
