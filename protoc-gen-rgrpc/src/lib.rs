//! Code generator for rgrpc: gRPC services from `.proto` files, in the shape
//! of grpc-go's `protoc-gen-go-grpc`.
//!
//! Two front ends share one generation function ([`generate_files`]), so
//! their outputs are identical:
//!
//! - the `protoc-gen-rgrpc` binary, a protoc plugin ([`plugin`]):
//!   `protoc --plugin=protoc-gen-rgrpc=PATH --rgrpc_out=OUT x.proto`;
//! - [`Builder`], for `build.rs`, which parses `.proto` files in pure Rust with
//!   protox, so a build needs no protoc.
//!
//! Messages come from prost-build. Service code follows the contract in
//! `docs/generated-code.md`: it goes descriptors -> IR (resolved names and
//! type paths) -> `quote!` -> prettyplease.
#![deny(missing_docs)]

mod build;
mod comments;
mod descriptors;
mod diagnostic;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
mod generate;
mod include;
mod ir;
mod messages;
mod names;
mod params;
mod pipeline;
pub mod plugin;
mod resolve;

pub use build::Builder;
pub use error::Error;
pub use params::{DEFAULT_RUNTIME_PATH, Options};
pub use pipeline::{GeneratedFile, generate_files};
