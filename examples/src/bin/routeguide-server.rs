//! `routeguide-server --addr HOST:PORT`: serves routeguide.RouteGuide.

use rgrpc_examples::{addr_flag, route_guide::RouteGuide, routeguide::register_route_guide_server};
use rgrpc_runtime::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = addr_flag("127.0.0.1:10000")?;
    let mut server = Server::new();
    register_route_guide_server(&mut server, RouteGuide::default());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("routeguide server listening on {}", listener.local_addr()?);
    server
        .serve_with_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
