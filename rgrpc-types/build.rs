//! Generates the `google.rpc` messages from the vendored googleapis protos with our
//! own generator (pure Rust, no protoc); `google.protobuf` stays `::prost_types`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    protoc_gen_rgrpc::Builder::new()
        .client(false)
        .server(false)
        // These two comments hold indented JSON/proto examples, which rustdoc would
        // run as Rust doctests (prost-build keeps indented blocks as code blocks).
        .disable_comments([
            ".google.rpc.ErrorInfo",
            ".google.rpc.BadRequest.FieldViolation.field",
        ])
        .compile(
            &[
                "proto/google/rpc/status.proto",
                "proto/google/rpc/error_details.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
