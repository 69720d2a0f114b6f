//! `stream-client ADDR`: opens calls to ADDR that the server keeps open (a server stream
//! that sends every 100 ms for a minute, and a unary call whose handler sleeps), prints
//! `streaming` once the first streamed message has arrived, and then waits to be killed.
//! The faults test kills it mid-stream.

use std::time::Duration;

use rgrpc_runtime::{CallOptions, Channel, Request};
use rgrpc_tests::grpc_testing::TestServiceStub;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).expect("stream-client ADDR");
    let client = TestServiceStub::new(Channel::lazy(&format!("http://{addr}")).unwrap());
    let sleeper = client.clone();
    let sleeping = Request::with_options(rgrpc_tests::sleeping_request(), {
        CallOptions::new()
            .with_wait_for_ready(true)
            .with_timeout(Duration::from_secs(60))
    });
    tokio::spawn(async move { sleeper.unary_call(sleeping).await });
    let request = rgrpc_tests::spaced_stream(600, 1, Duration::from_millis(100));
    // Wait-for-ready: a loaded machine may be slow to connect, and a fail-fast call
    // would then fail before the test gets to kill us mid-stream.
    let options = CallOptions::new()
        .with_wait_for_ready(true)
        .with_timeout(Duration::from_secs(60));
    let request = Request::with_options(request, options.clone());
    let mut stream = client.streaming_output_call(request).await.expect("call");
    stream
        .message()
        .await
        .expect("first message")
        .expect("a message");
    println!("streaming");
    while stream.message().await.ok().flatten().is_some() {}
}
