//! gRPC server reflection for rgrpc servers: `grpc.reflection.v1` and the
//! `grpc.reflection.v1alpha` that older clients (grpcurl 1.8, grpc_cli) speak, as
//! grpc's doc/server-reflection.md specifies and grpc-go's `reflection` package
//! serves it.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let mut server = rgrpc_runtime::Server::new();
//! // ... register services, in any order before or after reflection ...
//! rgrpc_reflection::register(&mut server);
//! server.serve("127.0.0.1:50051".parse().unwrap()).await
//! # }
//! ```
//!
//! It serves every service registered on the server (itself included) and the
//! descriptors that generated code embeds in each `ServiceDesc` (`files`: the
//! service's `.proto` file and its transitive imports, source info stripped):
//!
//! - `list_services`: the registered services' full names, sorted;
//! - `file_by_filename`, `file_containing_symbol` (services, methods, messages, enums
//!   and their values, nested types, fields, oneofs, extensions),
//!   `file_containing_extension`: the file, then those of its transitive imports
//!   not yet sent on this stream (the proto allows leaving those out);
//! - `all_extension_numbers_of_type`: the known extension numbers of a message,
//!   possibly none;
//! - what is not found is an `error_response` with NOT_FOUND, and the stream goes on;
//!   a request with no `message_request` ends the stream with INVALID_ARGUMENT, as
//!   grpc-go's does.

#![deny(missing_docs)]

mod index;
mod service;

pub use service::ReflectionService;

/// The generated `grpc.reflection.v1` package: messages, the `ServerReflectionStub`
/// client and the `ServerReflectionServer` trait.
pub mod v1 {
    #![allow(missing_docs)]
    rgrpc_runtime::include_proto!("grpc.reflection.v1");
}

/// The generated `grpc.reflection.v1alpha` package (deprecated upstream, same wire
/// format as v1).
pub mod v1alpha {
    #![allow(missing_docs)]
    rgrpc_runtime::include_proto!("grpc.reflection.v1alpha");
}

/// Registers `grpc.reflection.v1.ServerReflection` and
/// `grpc.reflection.v1alpha.ServerReflection` on `server`, serving every service
/// registered on it, before or after this call.
pub fn register(server: &mut rgrpc_runtime::Server) {
    let service = ReflectionService::new(server.registered_services());
    v1::register_server_reflection_server(server, service.clone());
    v1alpha::register_server_reflection_server(server, service);
}
