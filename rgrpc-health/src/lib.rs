//! `grpc.health.v1.Health` for rgrpc servers, as grpc's doc/health-checking.md
//! specifies it and grpc-go's `health` package serves it.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use rgrpc_health::ServingStatus;
//!
//! let mut server = rgrpc_runtime::Server::new();
//! // ... register the server's own services ...
//! let health = rgrpc_health::register(&mut server);
//! health.set_serving_status("helloworld.Greeter", ServingStatus::Serving);
//! server.serve("127.0.0.1:50051".parse().unwrap()).await
//! # }
//! ```
//!
//! - The whole server is `""`, SERVING from the start; other services are unknown
//!   until their status is set.
//! - `Check` answers the status, or NOT_FOUND for an unknown service.
//! - `Watch` sends the current status at once (SERVICE_UNKNOWN for an unknown
//!   service, without ending the call), then every change. A watcher that reads
//!   slowly sees the latest status, not each one in between: each watcher holds one
//!   pending update (grpc-go's buffer of one per watcher).
//! - `List` answers every known status, RESOURCE_EXHAUSTED above 100 services
//!   (health.proto).
//! - When the server is asked to stop (graceful or forced), every status becomes
//!   NOT_SERVING before any connection drains, and later updates are ignored
//!   ([`HealthReporter::shutdown`]); watchers get NOT_SERVING, then their call ends
//!   with OK as their connection drains (health.proto: the client retries
//!   elsewhere), so watchers do not hold the graceful stop.

#![deny(missing_docs)]

mod reporter;
mod service;

pub use reporter::HealthReporter;
pub use service::HealthService;

/// The generated `grpc.health.v1` package: messages, the `HealthStub` client and
/// the `HealthServer` trait.
pub mod pb {
    #![allow(missing_docs)]
    rgrpc_runtime::include_proto!("grpc.health.v1");
}

/// A service's serving status (`grpc.health.v1.HealthCheckResponse.ServingStatus`).
pub use pb::health_check_response::ServingStatus;

/// The full name of the health service, `grpc.health.v1.Health`.
pub const SERVICE_NAME: &str = "grpc.health.v1.Health";

/// Registers `grpc.health.v1.Health` on `server` and returns the handle that sets
/// statuses. The whole server (`""`) starts SERVING; when `server` is asked to stop,
/// the reporter is shut down ([`HealthReporter::shutdown`]).
pub fn register(server: &mut rgrpc_runtime::Server) -> HealthReporter {
    let reporter = HealthReporter::new();
    let on_stop = reporter.clone();
    server.handle().on_stop(move || on_stop.shutdown());
    pb::register_health_server(server, HealthService::new(reporter.clone()));
    reporter
}
