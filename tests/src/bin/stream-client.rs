//! `stream-client ADDR`: opens calls to ADDR that the server keeps open (a server stream
//! that sends every 100 ms for a minute, and a unary call whose handler sleeps), prints
//! `streaming` once the first streamed message has arrived, and then waits to be killed.
//! The faults test kills it mid-stream.

use rgrpc_runtime::Channel;
use rgrpc_tests::grpc_testing::{ResponseParameters, StreamingOutputCallRequest, TestServiceStub};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).expect("stream-client ADDR");
    let client = TestServiceStub::new(Channel::lazy(&format!("http://{addr}")).unwrap());
    let sleeper = client.clone();
    tokio::spawn(async move { sleeper.unary_call(rgrpc_tests::sleeping_request()).await });
    let request = StreamingOutputCallRequest {
        response_parameters: vec![
            ResponseParameters {
                size: 1,
                interval_us: 100_000,
                ..Default::default()
            };
            600
        ],
        ..Default::default()
    };
    let mut stream = client.streaming_output_call(request).await.expect("call");
    stream
        .message()
        .await
        .expect("first message")
        .expect("a message");
    println!("streaming");
    while stream.message().await.ok().flatten().is_some() {}
}
