//! Faults: a peer process killed mid-stream (both directions), the TCP connection cut
//! in the middle, the server restarted. Every call in flight ends promptly with
//! UNAVAILABLE (statuscodes.md: "Some data transmitted ... before connection breaks",
//! client side) or is dropped on the server, nothing hangs, and new calls recover once
//! the server is back.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rgrpc_runtime::{CallOptions, Channel, Code, Request, Status};
use rgrpc_tests::grpc_testing::{
    SimpleRequest, StreamingOutputCallRequest, StreamingOutputCallResponse, TestServiceStub,
};
use rgrpc_tests::proxy::Proxy;
use rgrpc_tests::target::Target;
use rgrpc_tests::{sleeping_request, start, wait_until, within};
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_hostile-target");

/// A server stream that sends a message every 100 ms for a minute.
fn long_stream() -> StreamingOutputCallRequest {
    rgrpc_tests::spaced_stream(600, 1, Duration::from_millis(100))
}

/// Reads a response stream to its end; the final status.
async fn drain(
    stream: &mut rgrpc_runtime::ResponseStream<StreamingOutputCallResponse>,
) -> Result<(), Status> {
    while stream.message().await?.is_some() {}
    Ok(())
}

/// Calls in flight on `client`: a sleeping unary call and a server stream that has
/// delivered its first message.
async fn calls_in_flight(
    client: &TestServiceStub,
) -> (
    tokio::task::JoinHandle<
        Result<rgrpc_runtime::Response<rgrpc_tests::grpc_testing::SimpleResponse>, Status>,
    >,
    rgrpc_runtime::ResponseStream<StreamingOutputCallResponse>,
) {
    let unary = tokio::spawn({
        let client = client.clone();
        async move { client.unary_call(sleeping_request()).await }
    });
    let mut stream = within(10, client.streaming_output_call(long_stream()))
        .await
        .unwrap();
    within(10, stream.message())
        .await
        .unwrap()
        .expect("first streamed message");
    // The unary call was sent before the stream's first message came back.
    (unary, stream)
}

#[tokio::test]
async fn a_killed_server_fails_every_call_promptly_and_calls_recover_after_restart() {
    rgrpc_tests::no_leaks(async {
        let mut target = Target::spawn(BIN, &[]).await;
        let addr = target.addr;
        let channel = Channel::builder(&addr.to_string())
            .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(500))
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel);
        let (unary, mut stream) = calls_in_flight(&client).await;

        target.kill().await;
        let killed = Instant::now();
        let err = within(5, unary).await.unwrap().unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "unary in flight: {err:?}");
        let err = within(5, drain(&mut stream)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "stream in flight: {err:?}");
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "{:?}",
            killed.elapsed()
        );
        // While the server is down a fail-fast call fails, fast.
        let err = within(5, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");

        // Back on the same address: the channel reconnects on its own schedule.
        let _target = Target::spawn(BIN, &["--addr", &addr.to_string()]).await;
        let options = CallOptions::new()
            .with_wait_for_ready(true)
            .with_timeout(Duration::from_secs(10));
        within(
            15,
            client.unary_call(Request::with_options(SimpleRequest::default(), options)),
        )
        .await
        .expect("a call succeeds once the server is back");
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .expect("and fail-fast calls too");
    })
    .await;
}

#[tokio::test]
async fn a_killed_client_ends_its_server_handlers_promptly() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stream-client"))
            .arg(server.addr.to_string())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut line = String::new();
        within(
            10,
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line),
        )
        .await
        .unwrap();
        assert_eq!(line.trim(), "streaming");
        assert_eq!(server.probe.dropped.load(Ordering::SeqCst), 0);
        child.kill().await.unwrap();
        let killed = Instant::now();
        // Both handlers (the stream and the sleeping unary call) are dropped, not left
        // running until their work ends (the stream would run a minute, the sleep 10 s).
        wait_until(5, || server.probe.dropped.load(Ordering::SeqCst) == 2).await;
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "{:?}",
            killed.elapsed()
        );
        assert_eq!(server.probe.finished.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test]
async fn a_cut_connection_ends_calls_on_both_sides_and_the_next_call_reconnects() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let proxy = Proxy::start(server.addr).await;
        let channel = Channel::builder(&proxy.addr().to_string())
            .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(500))
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel);
        let (unary, mut stream) = calls_in_flight(&client).await;

        proxy.cut();
        let cut = Instant::now();
        let err = within(5, unary).await.unwrap().unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "unary in flight: {err:?}");
        let err = within(5, drain(&mut stream)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "stream in flight: {err:?}");
        wait_until(5, || server.probe.dropped.load(Ordering::SeqCst) == 2).await;
        assert!(
            cut.elapsed() < Duration::from_secs(2),
            "{:?}",
            cut.elapsed()
        );

        let options = CallOptions::new()
            .with_wait_for_ready(true)
            .with_timeout(Duration::from_secs(10));
        within(
            15,
            client.unary_call(Request::with_options(SimpleRequest::default(), options)),
        )
        .await
        .expect("a new connection through the proxy");
        assert_eq!(proxy.connections(), 2);
    })
    .await;
}

/// A server handler that stops reading: the client's sends block once the server's
/// windows (1 MiB stream, 2 MiB connection) and the client's 64 KiB write quota are
/// full, so the client holds a bounded amount however much the caller tries to send.
#[tokio::test]
async fn a_server_that_stops_reading_blocks_the_client_sender_with_bounded_memory() {
    rgrpc_tests::no_leaks(async {
        use rgrpc_runtime::{RecvStream, Server, ServerContext};
        use rgrpc_tests::grpc_testing::{
            StreamingInputCallRequest, StreamingInputCallResponse, TestServiceServer,
            register_test_service_server,
        };
        struct NotReading;
        impl TestServiceServer for NotReading {
            async fn streaming_input_call(
                &self,
                _ctx: &ServerContext,
                _requests: RecvStream<StreamingInputCallRequest>,
            ) -> Result<StreamingInputCallResponse, Status> {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(StreamingInputCallResponse::default())
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = Server::new();
        register_test_service_server(&mut server, NotReading);
        let serving = tokio::spawn(server.serve_with_incoming(listener));
        let client = TestServiceStub::new(Channel::lazy(&addr.to_string()).unwrap());
        let mut call = within(10, client.streaming_input_call(CallOptions::default()))
            .await
            .unwrap();
        // 400 messages (25 MiB) if nothing held the sender back.
        let sent = send_until_held(&mut call, 400, Duration::from_millis(500)).await;
        // 1 MiB stream window + 64 KiB quota + one in encoding: about 18 of 64 KiB.
        assert!((10..=24).contains(&sent), "{sent} messages of 64 KiB sent");
        drop(call);
        serving.abort();
    })
    .await;
}

/// A client whose server has stopped reading does not keep the connection once the
/// caller is gone: the client's socket is full, so h2 can write neither its RST_STREAM
/// nor its GOAWAY, and the connection's task must give up on them rather than live on
/// (with its buffers) for as long as the server holds the socket open.
#[tokio::test]
async fn a_connection_to_a_server_that_stopped_reading_ends_when_its_caller_is_gone() {
    // The server runs on a runtime of its own, so that the count of live tasks below
    // is the client's alone. It takes the call with both windows wide open (RFC 9113
    // 6.9.2), then never reads again until told.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (io, _) = listener.accept().await.unwrap();
            let mut conn = h2::server::Builder::new()
                .initial_window_size((1 << 31) - 1)
                .initial_connection_window_size((1 << 31) - 1)
                .handshake::<_, bytes::Bytes>(io)
                .await
                .unwrap();
            let stream = conn.accept().await.unwrap().unwrap();
            let _ = released.await;
            drop((stream, conn));
        });
    });
    rgrpc_tests::no_leaks(async {
        let client = TestServiceStub::new(Channel::lazy(&addr.to_string()).unwrap());
        let mut call = within(10, client.streaming_input_call(CallOptions::default()))
            .await
            .unwrap();
        // Until the socket is full and the call's write quota with it.
        let sent = send_until_held(&mut call, 1000, Duration::from_secs(2)).await;
        assert!(
            sent < 1000,
            "the server's socket never filled ({sent} sent)"
        );
        drop(call);
        drop(client);
    })
    .await;
    let _ = release.send(());
    server.join().unwrap();
}

/// Sends 64 KiB messages on `call` until `max` are sent, a send fails, or `within`
/// passes (the sender held back); how many were sent.
async fn send_until_held(
    call: &mut rgrpc_runtime::ClientStreamingCall<
        rgrpc_tests::grpc_testing::StreamingInputCallRequest,
        rgrpc_tests::grpc_testing::StreamingInputCallResponse,
    >,
    max: usize,
    within: Duration,
) -> usize {
    let message = rgrpc_tests::grpc_testing::StreamingInputCallRequest {
        payload: Some(rgrpc_tests::grpc_testing::Payload {
            body: vec![0; 64 * 1024],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut sent = 0;
    let _ = tokio::time::timeout(within, async {
        while sent < max && call.send(&message).await.is_ok() {
            sent += 1;
        }
    })
    .await;
    sent
}
