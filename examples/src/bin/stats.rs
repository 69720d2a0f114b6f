//! `stats`: a server and a channel sharing one stats handler ([`Metrics`]); runs every
//! kind of RPC a few times and prints the per-method counts and latency histograms in
//! Prometheus' text format.

use std::sync::Arc;

use rgrpc_examples::demo::route_guide_tour;
use rgrpc_examples::greeter::Greeter;
use rgrpc_examples::helloworld::{GreeterStub, HelloRequest, register_greeter_server};
use rgrpc_examples::route_guide::RouteGuide;
use rgrpc_examples::routeguide::register_route_guide_server;
use rgrpc_examples::stats::Metrics;
use rgrpc_runtime::{Channel, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target = format!("http://{}", listener.local_addr()?);
    let mut server = Server::new().stats_handler(metrics.clone());
    register_greeter_server(&mut server, Greeter);
    register_route_guide_server(&mut server, RouteGuide::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));

    let channel = Channel::builder(&target)
        .stats_handler(metrics.clone())
        .connect()
        .await?;
    let greeter = GreeterStub::new(channel.clone());
    for name in ["a", "b", "c"] {
        greeter
            .say_hello(HelloRequest { name: name.into() })
            .await?;
    }
    route_guide_tour(channel).await?;

    let _ = stop.send(());
    serving.await??;
    print!("{}", metrics.render());
    Ok(())
}
