//! `helloworld-client [--addr HOST:PORT | --addr unix:PATH] [--name NAME]`: calls
//! SayHello once on a helloworld server (default 127.0.0.1:50051).

use rgrpc_examples::{
    addr_flag,
    helloworld::{GreeterStub, HelloRequest},
};
use rgrpc_runtime::Channel;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = addr_flag("127.0.0.1:50051")?;
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .iter()
        .position(|a| a == "--name")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--name=").map(str::to_owned))
        })
        .unwrap_or_else(|| "world".to_owned());
    // Channel::connect takes host:port, http://host:port and unix:path alike.
    let channel = Channel::connect(&addr).await?;
    let client = GreeterStub::new(channel);
    let reply = client.say_hello(HelloRequest { name }).await?;
    println!("{}", reply.into_inner().message);
    Ok(())
}
