//! `helloworld-server [--addr HOST:PORT | --addr unix:PATH]`: serves helloworld.Greeter
//! on TCP (default 127.0.0.1:50051) or a Unix domain socket until Ctrl-C, with
//! grpc.health.v1.Health and server reflection, so `grpcurl -plaintext
//! localhost:50051 list` works with no .proto at hand.

use rgrpc_examples::{addr_flag, greeter::Greeter, helloworld::register_greeter_server};
use rgrpc_health::ServingStatus;
use rgrpc_runtime::{Listener, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = addr_flag("127.0.0.1:50051")?;
    let mut server = Server::new();
    register_greeter_server(&mut server, Greeter);
    // Health: "" (the whole server) is SERVING from the start, and every status turns
    // NOT_SERVING when Ctrl-C begins the graceful shutdown.
    let health = rgrpc_health::register(&mut server);
    health.set_serving_status("helloworld.Greeter", ServingStatus::Serving);
    // Reflection (v1 and v1alpha) of every registered service.
    rgrpc_reflection::register(&mut server);
    let listener = Listener::bind(&addr).await?;
    println!("helloworld server listening on {}", listener.local_addr()?);
    // A Unix socket's file is removed when the server stops, but not after a crash:
    // then bind fails (address in use) until the stale file is deleted.
    server
        .serve_with_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
