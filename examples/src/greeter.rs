//! The helloworld Greeter service.

use rgrpc_runtime::{ServerContext, Status};

use crate::helloworld::{GreeterServer, HelloReply, HelloRequest};

/// Answers `Hello <name>`.
#[derive(Debug, Default)]
pub struct Greeter;

impl GreeterServer for Greeter {
    async fn say_hello(
        &self,
        _ctx: &ServerContext,
        request: HelloRequest,
    ) -> Result<HelloReply, Status> {
        Ok(HelloReply {
            message: format!("Hello {}", request.name),
        })
    }
}
