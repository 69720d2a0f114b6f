//! `helloworld-server [--addr HOST:PORT | --addr unix:PATH]`: serves helloworld.Greeter
//! on TCP (default 127.0.0.1:50051) or a Unix domain socket until Ctrl-C.

use rgrpc_examples::{addr_flag, greeter::Greeter, helloworld::register_greeter_server};
use rgrpc_runtime::{Listener, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = addr_flag("127.0.0.1:50051")?;
    let mut server = Server::new();
    register_greeter_server(&mut server, Greeter);
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
