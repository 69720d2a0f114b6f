//! `routeguide-server [--addr HOST:PORT | --addr unix:PATH]`: serves
//! routeguide.RouteGuide on TCP (default 127.0.0.1:10000) or a Unix domain socket
//! until Ctrl-C.

use rgrpc_examples::{addr_flag, route_guide::RouteGuide, routeguide::register_route_guide_server};
use rgrpc_runtime::{Listener, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = addr_flag("127.0.0.1:10000")?;
    let mut server = Server::new();
    register_route_guide_server(&mut server, RouteGuide::default());
    let listener = Listener::bind(&addr).await?;
    println!("routeguide server listening on {}", listener.local_addr()?);
    // A Unix socket's file is removed when the server stops, but not after a crash:
    // then bind fails (address in use) until the stale file is deleted.
    server
        .serve_with_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
