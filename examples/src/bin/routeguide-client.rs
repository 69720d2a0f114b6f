//! `routeguide-client [--addr HOST:PORT | --addr unix:PATH]`: exercises all four RPC
//! kinds against a routeguide server (default 127.0.0.1:10000).

use rgrpc_examples::{addr_flag, demo};
use rgrpc_runtime::Channel;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = addr_flag("127.0.0.1:10000")?;
    // Channel::connect takes host:port, http://host:port and unix:path alike.
    let channel = Channel::connect(&addr).await?;
    demo::route_guide_tour(channel).await?;
    Ok(())
}
