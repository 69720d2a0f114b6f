//! `demo`: starts a server on an ephemeral port in this process and calls all four
//! kinds of RPC on it, printing what came back.

use rgrpc_examples::demo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo::run().await
}
