//! `helloworld-server --addr HOST:PORT`: serves helloworld.Greeter.

use rgrpc_examples::{addr_flag, greeter::Greeter, helloworld::register_greeter_server};
use rgrpc_runtime::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = addr_flag("127.0.0.1:50051")?;
    let mut server = Server::new();
    register_greeter_server(&mut server, Greeter);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("helloworld server listening on {}", listener.local_addr()?);
    server
        .serve_with_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
