//! `routeguide-client --addr HOST:PORT`: exercises all four RPC kinds.

use rgrpc_examples::{addr_flag, demo};
use rgrpc_runtime::Channel;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = addr_flag("127.0.0.1:10000")?;
    let channel = Channel::connect(&format!("http://{addr}")).await?;
    demo::route_guide_tour(channel).await?;
    Ok(())
}
