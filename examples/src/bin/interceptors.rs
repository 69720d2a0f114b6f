//! `interceptors`: a server with a logging interceptor and a bearer-token check, and a
//! client that attaches the token and counts latency per method; runs every kind of
//! RPC through them, then one call without the token, and prints the counts.

use rgrpc_examples::demo::route_guide_tour;
use rgrpc_examples::greeter::Greeter;
use rgrpc_examples::helloworld::{GreeterStub, HelloRequest, register_greeter_server};
use rgrpc_examples::interceptors::{AttachToken, BearerAuth, LatencyCounter, Logger};
use rgrpc_examples::route_guide::RouteGuide;
use rgrpc_examples::routeguide::register_route_guide_server;
use rgrpc_runtime::{Channel, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target = format!("http://{}", listener.local_addr()?);
    // The logger first: it is the outermost, so it also logs refused calls.
    let mut server = Server::new().interceptor(Logger).interceptor(BearerAuth {
        token: "open-sesame".into(),
    });
    register_greeter_server(&mut server, Greeter);
    register_route_guide_server(&mut server, RouteGuide::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));

    let latency = LatencyCounter::default();
    let channel = Channel::builder(&target)
        .interceptor(latency.clone())
        .interceptor(AttachToken {
            token: "open-sesame".into(),
        })
        .connect()
        .await?;
    route_guide_tour(channel).await?;

    let no_token = GreeterStub::new(Channel::connect(&target).await?);
    let refused = no_token
        .say_hello(HelloRequest {
            name: "stranger".into(),
        })
        .await
        .expect_err("no token: refused");
    println!(
        "without a token: {:?} {:?} (www-authenticate: {:?})",
        refused.code(),
        refused.message(),
        refused.metadata().get("www-authenticate")
    );

    for (method, m) in latency.snapshot() {
        println!(
            "[client] {method}: {} calls, {} errors, mean {:?}, max {:?}",
            m.calls,
            m.errors,
            m.total / m.calls.max(1) as u32,
            m.max
        );
    }
    let _ = stop.send(());
    serving.await??;
    Ok(())
}
