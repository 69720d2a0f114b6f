//! The transport's production behaviours end to end on 127.0.0.1: keepalive both ways
//! (through a proxy that goes silent), ping enforcement against a raw-frame flooder,
//! connection age, graceful and forced shutdown, handlers that await draining, the
//! client's GOAWAY handling and transparent retry of refused streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rgrpc_examples::helloworld::{GreeterStub, HelloRequest};
use rgrpc_runtime::{Channel, Code, SendStream, Server, ServerContext, Status};
use rgrpc_tests::grpc_testing::{
    ResponseParameters, SimpleRequest, SimpleResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse, TestServiceServer, TestServiceStub, register_test_service_server,
};
use rgrpc_tests::proxy::Proxy;
use rgrpc_tests::{sleeping_request, start, wait_until, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// keepalive.md: a client pings after `time` without a read and, when nothing comes
/// back within `timeout`, closes the connection and fails its calls UNAVAILABLE.
#[tokio::test]
async fn the_client_detects_a_silent_server_within_keepalive_time_plus_timeout() {
    rgrpc_tests::no_leaks(async {
        // The server accepts the client's frequent pings (A8 would otherwise cut it off).
        let server = start(|s| s.keepalive_min_time(Duration::from_millis(10))).await;
        let proxy = Proxy::start(server.addr).await;
        let channel = Channel::lazy(&format!("http://{}", proxy.addr()))
            .unwrap()
            .keepalive_time_unclamped(Duration::from_millis(200))
            .keepalive_timeout(Duration::from_millis(300));
        let client = TestServiceStub::new(channel);
        // A healthy connection first: pings are answered, the call is unaffected.
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        let call = tokio::spawn(async move { client.unary_call(sleeping_request()).await });
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) == 0).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !call.is_finished(),
            "keepalive alone must not end a live call"
        );
        let stalled = Instant::now();
        proxy.stall();
        let err = within(10, call).await.unwrap().unwrap_err();
        let took = stalled.elapsed();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        // time + timeout = 0.5 s, plus scheduling slack; far below the 10 s sleep.
        assert!(took < Duration::from_secs(3), "detected after {took:?}");
    })
    .await;
}

/// The server's own keepalive: a client that goes silent is dropped, and its handlers
/// are cancelled.
#[tokio::test]
async fn the_server_detects_a_silent_client_and_cancels_its_calls() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| {
            s.keepalive_time(Duration::from_millis(200))
                .keepalive_timeout(Duration::from_millis(300))
        })
        .await;
        let proxy = Proxy::start(server.addr).await;
        let client = TestServiceStub::new(
            Channel::connect(&format!("http://{}", proxy.addr()))
                .await
                .unwrap(),
        );
        let _call = tokio::spawn(async move { client.unary_call(sleeping_request()).await });
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            server.probe.dropped.load(Ordering::SeqCst),
            0,
            "answered pings keep it"
        );
        let stalled = Instant::now();
        proxy.stall();
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) == 1).await;
        assert!(
            stalled.elapsed() < Duration::from_secs(3),
            "{:?}",
            stalled.elapsed()
        );
    })
    .await;
}

// A raw HTTP/2 client: the connection preface, frames written by hand.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads frames until a GOAWAY; returns its error code and debug data.
async fn read_goaway(io: &mut tokio::net::TcpStream) -> (u32, Vec<u8>) {
    let (_, payload) = read_frame_of(io, 0x7).await;
    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
    (code, payload[8..].to_vec())
}

/// gRFC A8: pings more often than the policy allows earn GOAWAY ENHANCE_YOUR_CALM
/// "too_many_pings" on the third offence; other connections are unaffected.
#[tokio::test]
async fn a_ping_flooding_client_gets_goaway_too_many_pings_and_others_are_unaffected() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let channel = Channel::connect(&server.target()).await.unwrap();
        let good = GreeterStub::new(channel);
        within(10, good.say_hello(HelloRequest { name: "a".into() }))
            .await
            .unwrap();
        let mut flood = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut out = PREFACE.to_vec();
        out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        for i in 0..10u64 {
            out.extend(frame(0x6, 0, 0, &i.to_be_bytes())); // PING
        }
        flood.write_all(&out).await.unwrap();
        let (code, debug) = within(10, read_goaway(&mut flood)).await;
        assert_eq!(code, 0xb, "ENHANCE_YOUR_CALM");
        assert_eq!(debug, b"too_many_pings");
        // Then the server closes the connection.
        let mut rest = Vec::new();
        within(10, flood.read_to_end(&mut rest)).await.unwrap();
        // The well-behaved connection still serves.
        within(10, good.say_hello(HelloRequest { name: "b".into() }))
            .await
            .unwrap();
    })
    .await;
}

/// gRFC A8: a client told `too_many_pings` doubles its keepalive time for the next
/// connection, and its next call succeeds on that connection.
#[tokio::test]
async fn a_client_told_too_many_pings_doubles_its_keepalive_time() {
    rgrpc_tests::no_leaks(async {
        // Default policy: no pings without calls; this client pings every 50 ms idle.
        let server = start(|s| s).await;
        let proxy = Proxy::start(server.addr).await;
        let channel = Channel::lazy(&format!("http://{}", proxy.addr()))
            .unwrap()
            .keepalive_time_unclamped(Duration::from_millis(50))
            .keepalive_without_calls(true);
        let client = GreeterStub::new(channel.clone());
        within(10, client.say_hello(HelloRequest { name: "a".into() }))
            .await
            .unwrap();
        // Three idle pings, the third one punished: the connection is closed.
        tokio::time::sleep(Duration::from_millis(600)).await;
        within(10, client.say_hello(HelloRequest { name: "b".into() }))
            .await
            .unwrap();
        assert_eq!(proxy.connections(), 2, "redialled after the GOAWAY");
        assert_eq!(
            channel.keepalive_time_in_force(),
            Some(Duration::from_millis(100))
        );
    })
    .await;
}

/// A SETTINGS flood (CVE-2019-9515) from a peer that does not read: h2 owes it at
/// most one ack at a time, and past the bound the server answers GOAWAY
/// ENHANCE_YOUR_CALM and closes; the flooder's bytes are not buffered meanwhile.
#[tokio::test]
async fn a_settings_flood_from_a_peer_that_does_not_read_is_cut_off() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let mut flood = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut out = PREFACE.to_vec();
        for _ in 0..2000 {
            out.extend(frame(0x4, 0, 0, &[])); // SETTINGS, never reading the acks
        }
        // The server stops reading at some point, or closes: either way the write ends.
        let _ = within(10, flood.write_all(&out)).await;
        let (code, debug) = within(10, read_goaway(&mut flood)).await;
        assert_eq!(code, 0xb, "ENHANCE_YOUR_CALM");
        assert_eq!(debug, b"too_many_settings");
        let mut rest = Vec::new();
        let _ = within(10, flood.read_to_end(&mut rest)).await;
        let client = GreeterStub::new(Channel::connect(&server.target()).await.unwrap());
        within(
            10,
            client.say_hello(HelloRequest {
                name: "after".into(),
            }),
        )
        .await
        .unwrap();
    })
    .await;
}

/// Reads frames until one of type `kind`; returns its flags and payload.
async fn read_frame_of(io: &mut tokio::net::TcpStream, kind: u8) -> (u8, Vec<u8>) {
    loop {
        let mut header = [0u8; 9];
        io.read_exact(&mut header)
            .await
            .expect("a frame before EOF");
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0; len];
        io.read_exact(&mut payload).await.unwrap();
        if header[3] == kind {
            return (header[4], payload);
        }
    }
}

/// RFC 9113 section 6.8, the way grpc-go does it: a first GOAWAY with the largest
/// stream id and a PING; the final GOAWAY, with the last stream id processed, only
/// once the PING is acked (streams opened in between are not lost).
#[tokio::test]
async fn graceful_goaway_is_two_steps_with_a_ping_between() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let mut io = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut out = PREFACE.to_vec();
        out.extend(frame(0x4, 0, 0, &[]));
        io.write_all(&out).await.unwrap();
        // The server's SETTINGS: the handshake is done.
        within(10, read_frame_of(&mut io, 0x4)).await;
        server.handle.graceful_stop();
        let (_, first) = within(10, read_frame_of(&mut io, 0x7)).await;
        assert_eq!(
            &first[0..4],
            &0x7fff_ffffu32.to_be_bytes(),
            "first GOAWAY: max id"
        );
        assert_eq!(&first[4..8], &0u32.to_be_bytes(), "NO_ERROR");
        let ping = loop {
            let (flags, payload) = within(10, read_frame_of(&mut io, 0x6)).await;
            if flags & 0x1 == 0 {
                break payload;
            }
        };
        // Nothing final before our ack.
        let early =
            tokio::time::timeout(Duration::from_millis(200), read_frame_of(&mut io, 0x7)).await;
        assert!(
            early.is_err(),
            "final GOAWAY before the PING ack: {early:?}"
        );
        io.write_all(&frame(0x6, 0x1, 0, &ping)).await.unwrap();
        let (_, last) = within(10, read_frame_of(&mut io, 0x7)).await;
        assert_eq!(
            &last[0..4],
            &0u32.to_be_bytes(),
            "final GOAWAY: no stream processed"
        );
    })
    .await;
}

/// Pings at the permitted rate are never punished (the same flood, slowed down).
#[tokio::test]
async fn pings_within_the_policy_keep_the_connection() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| {
            s.keepalive_min_time(Duration::from_millis(50))
                .keepalive_permit_without_calls(true)
        })
        .await;
        let mut io = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut out = PREFACE.to_vec();
        out.extend(frame(0x4, 0, 0, &[]));
        io.write_all(&out).await.unwrap();
        for i in 0..6u64 {
            io.write_all(&frame(0x6, 0, 0, &i.to_be_bytes()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        // No GOAWAY within a while: only SETTINGS, SETTINGS ACK and PING ACKs arrive.
        let got = tokio::time::timeout(Duration::from_millis(300), read_goaway(&mut io)).await;
        assert!(got.is_err(), "policy-abiding pings got a GOAWAY: {got:?}");
    })
    .await;
}

/// gRFC A9: max connection age drains the connection with GOAWAY; the call in flight
/// finishes inside the grace period and the next call goes to a new connection.
#[tokio::test]
async fn max_connection_age_drains_while_the_call_in_flight_finishes() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| {
            s.max_connection_age(Duration::from_millis(300))
                .max_connection_age_grace(Duration::from_secs(5))
        })
        .await;
        let proxy = Proxy::start(server.addr).await;
        let client = TestServiceStub::new(
            Channel::connect(&format!("http://{}", proxy.addr()))
                .await
                .unwrap(),
        );
        // Two responses 500 ms apart: the stream outlives the connection's age.
        let request = StreamingOutputCallRequest {
            response_parameters: vec![
                ResponseParameters {
                    size: 1,
                    interval_us: 200_000,
                    ..Default::default()
                },
                ResponseParameters {
                    size: 1,
                    interval_us: 500_000,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut stream = within(10, client.streaming_output_call(request))
            .await
            .unwrap();
        let mut got = 0;
        while let Some(_message) = within(10, stream.message()).await.unwrap() {
            got += 1;
        }
        assert_eq!(got, 2);
        assert_eq!(proxy.connections(), 1);
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        assert_eq!(proxy.connections(), 2, "the aged connection was drained");
    })
    .await;
}

/// Past the grace period, what is left is cancelled.
#[tokio::test]
async fn max_connection_age_grace_cancels_what_is_left() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| {
            s.max_connection_age(Duration::from_millis(200))
                .max_connection_age_grace(Duration::from_millis(300))
        })
        .await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let started = Instant::now();
        let err = within(10, client.unary_call(sleeping_request()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) == 1).await;
    })
    .await;
}

/// A client that receives GOAWAY (here from max connection age, every 150 ms) keeps
/// calling with no failed call: new calls go to new connections.
#[tokio::test]
async fn a_client_that_receives_goaway_moves_to_a_new_connection_without_failing_calls() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s.max_connection_age(Duration::from_millis(150))).await;
        let proxy = Proxy::start(server.addr).await;
        let client = GreeterStub::new(
            Channel::connect(&format!("http://{}", proxy.addr()))
                .await
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut calls = 0;
        while Instant::now() < deadline {
            let mut batch = Vec::new();
            for i in 0..8 {
                let client = client.clone();
                batch.push(tokio::spawn(async move {
                    client
                        .say_hello(HelloRequest {
                            name: format!("{i}"),
                        })
                        .await
                }));
            }
            for call in batch {
                within(10, call)
                    .await
                    .unwrap()
                    .expect("no call fails across GOAWAY");
                calls += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(calls > 50, "{calls}");
        assert!(
            proxy.connections() >= 4,
            "connections: {}",
            proxy.connections()
        );
    })
    .await;
}

/// A service whose watch streams until the server drains.
struct Watcher {
    ended: Arc<AtomicUsize>,
}

impl TestServiceServer for Watcher {
    async fn unary_call(
        &self,
        _ctx: &ServerContext,
        _request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        Ok(SimpleResponse::default())
    }

    async fn streaming_output_call(
        &self,
        ctx: &ServerContext,
        _request: StreamingOutputCallRequest,
        mut responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        responses
            .send(&StreamingOutputCallResponse::default())
            .await?;
        ctx.draining().await;
        self.ended.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn serve_watcher() -> (
    String,
    rgrpc_runtime::ServerHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
    Arc<AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    let ended = Arc::new(AtomicUsize::new(0));
    let mut server = Server::new();
    register_test_service_server(
        &mut server,
        Watcher {
            ended: ended.clone(),
        },
    );
    let handle = server.handle();
    let serving = tokio::spawn(server.serve_with_incoming(listener));
    (target, handle, serving, ended)
}

/// Graceful stop: a long-lived stream whose handler awaits `ctx.draining()` ends
/// cleanly with OK, the server returns, new calls fail.
#[tokio::test]
async fn graceful_stop_lets_a_watch_end_cleanly() {
    rgrpc_tests::no_leaks(async {
        let (target, handle, serving, ended) = serve_watcher().await;
        let client = TestServiceStub::new(Channel::connect(&target).await.unwrap());
        let mut watch = within(
            10,
            client.streaming_output_call(StreamingOutputCallRequest::default()),
        )
        .await
        .unwrap();
        within(10, watch.message())
            .await
            .unwrap()
            .expect("first message");
        handle.graceful_stop();
        assert!(
            within(10, watch.message()).await.unwrap().is_none(),
            "ended with OK"
        );
        within(10, serving).await.unwrap().unwrap();
        assert_eq!(ended.load(Ordering::SeqCst), 1);
        let err = within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    })
    .await;
}

/// Graceful stop with calls genuinely in flight completes them.
#[tokio::test]
async fn graceful_stop_completes_calls_in_flight() {
    rgrpc_tests::no_leaks(async {
        let mut server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let request = rgrpc_tests::spaced_stream(2, 3, Duration::from_millis(300));
        let mut calls = Vec::new();
        for _ in 0..5 {
            calls.push(
                within(10, client.streaming_output_call(request.clone()))
                    .await
                    .unwrap(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.handle.graceful_stop();
        for mut call in calls {
            let mut got = 0;
            while within(10, call.message()).await.unwrap().is_some() {
                got += 1;
            }
            assert_eq!(got, 2);
        }
        server.served(10).await;
        assert_eq!(server.probe.finished.load(Ordering::SeqCst), 5);
    })
    .await;
}

/// A graceful stop with a deadline cancels what is still running when it passes;
/// a forced stop cancels at once.
#[tokio::test]
async fn stop_with_a_deadline_cancels_what_is_left() {
    rgrpc_tests::no_leaks(async {
        let mut server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let call = tokio::spawn({
            let client = client.clone();
            async move { client.unary_call(sleeping_request()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = Instant::now();
        server
            .handle
            .graceful_stop_within(Duration::from_millis(300));
        let err = within(10, call).await.unwrap().unwrap_err();
        assert!(
            matches!(err.code(), Code::Unavailable | Code::Cancelled),
            "{err:?}"
        );
        server.served(10).await;
        let took = stopping.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(server.probe.dropped.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn a_forced_stop_cancels_at_once() {
    rgrpc_tests::no_leaks(async {
        let mut server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let call = tokio::spawn(async move { client.unary_call(sleeping_request()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = Instant::now();
        server.handle.stop();
        let err = within(10, call).await.unwrap().unwrap_err();
        assert!(
            matches!(err.code(), Code::Unavailable | Code::Cancelled),
            "{err:?}"
        );
        server.served(10).await;
        assert!(
            stopping.elapsed() < Duration::from_secs(2),
            "{:?}",
            stopping.elapsed()
        );
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) == 1).await;
    })
    .await;
}

/// A forced stop ends even when the client has stopped reading: the server's socket is
/// full, so its GOAWAY cannot be written out and h2 never finishes closing. Handlers end
/// at once (h2 fails every stream on the abrupt GOAWAY), and the connection is dropped
/// after its linger (`CLOSE_LINGER`, one second), so `serve` returns while the client
/// still holds the socket open.
#[tokio::test]
async fn a_forced_stop_ends_even_when_the_client_has_stopped_reading() {
    use rgrpc_tests::h2peer::{Frame, RawPeer};
    rgrpc_tests::no_leaks(async {
        let mut server = start(|s| s).await;
        let mut peer = RawPeer::handshake(server.addr).await;
        // Both windows wide open (RFC 9113 6.5.2, 6.9): only the socket holds the
        // server back.
        peer.send_all(&[
            Frame::settings(&[(0x4, (1 << 31) - 1)]),
            Frame::window_update(0, (1 << 31) - 1 - 65_535),
        ])
        .await
        .unwrap();
        let body = grpc_message(&rgrpc_tests::spaced_stream(128, 1 << 20, Duration::ZERO));
        let unary = grpc_message(&sleeping_request());
        let sleep_head = peer.request(1, "/grpc.testing.TestService/UnaryCall", &[]);
        let stream_head = peer.request(3, "/grpc.testing.TestService/StreamingOutputCall", &[]);
        peer.send_all(&[
            sleep_head,
            Frame::data(1, unary, true),
            stream_head,
            Frame::data(3, body, true),
        ])
        .await
        .unwrap();
        // The handler sends until the socket and its write quota are full, then waits.
        let sent = || server.probe.sent.load(Ordering::SeqCst);
        wait_until(10, || sent() > 0).await;
        let mut last = 0;
        while sent() != last {
            last = sent();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(last < 128, "the server was never held back ({last} sent)");
        assert_eq!(server.probe.dropped.load(Ordering::SeqCst), 0);
        let stopping = Instant::now();
        server.handle.stop();
        // Both handlers: the stream's (its send fails) and the sleeping one.
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) == 2).await;
        let took = stopping.elapsed();
        assert!(
            took < Duration::from_millis(600),
            "the handlers waited for the connection to close: {took:?}"
        );
        server.served(10).await;
        let took = stopping.elapsed();
        assert!(
            took >= Duration::from_millis(500),
            "{took:?}: the GOAWAY went out?"
        );
        drop(peer);
    })
    .await;
}

/// One uncompressed gRPC message (PROTOCOL-HTTP2.md, Length-Prefixed-Message).
fn grpc_message(message: &impl prost::Message) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.encoded_len() as u32).to_be_bytes());
    message.encode(&mut framed).expect("a Vec grows");
    framed
}

/// grpc-go waits at most 5 s for the client to ack the PING of a graceful GOAWAY
/// (http2_server.go, `outgoingGoAwayHandler`); h2 waits for it without limit, and
/// until it comes it accepts new streams and never closes the connection. A client
/// that never acks must not hold a graceful stop: after the wait, new streams are
/// refused (REFUSED_STREAM: not processed, the client may retry them elsewhere), the
/// call in flight finishes, and the connection closes once it has.
#[tokio::test]
async fn a_graceful_stop_does_not_wait_on_a_client_that_never_acks_its_ping() {
    use rgrpc_tests::h2peer::{Frame, RawPeer, code, kind};
    rgrpc_tests::no_leaks(async {
        let mut server = start(|s| s).await;
        let mut peer = RawPeer::handshake(server.addr).await;
        let slow = SimpleRequest {
            payload: Some(rgrpc_tests::grpc_testing::Payload {
                body: b"delay_ms:6500".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let call = peer.request(1, "/grpc.testing.TestService/UnaryCall", &[]);
        peer.send_all(&[call, Frame::data(1, grpc_message(&slow), true)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = Instant::now();
        server.handle.graceful_stop();
        let (last, reason, _) = peer.expect_goaway(Duration::from_secs(5)).await;
        assert_eq!(
            (last, reason),
            ((1 << 31) - 1, code::NO_ERROR),
            "first GOAWAY"
        );
        let ping = peer.recv_kind(kind::PING, Duration::from_secs(5)).await;
        assert!(ping.is_ok(), "the drain PING (never acked): {ping:?}");
        // Past the wait, a new stream is refused, not served.
        tokio::time::sleep_until((stopping + Duration::from_millis(5500)).into()).await;
        let late = peer.request(3, "/grpc.testing.TestService/UnaryCall", &[]);
        peer.send_all(&[
            late,
            Frame::data(3, grpc_message(&SimpleRequest::default()), true),
        ])
        .await
        .unwrap();
        let reset = peer
            .recv_kind(kind::RST_STREAM, Duration::from_secs(5))
            .await
            .expect("the late stream is reset");
        assert_eq!(
            (reset.stream, reset.rst_code()),
            (3, Some(code::REFUSED_STREAM))
        );
        server.served(10).await;
        assert_eq!(
            server.probe.finished.load(Ordering::SeqCst),
            1,
            "the slow call finished"
        );
        assert!(
            stopping.elapsed() < Duration::from_secs(9),
            "{:?}",
            stopping.elapsed()
        );
        drop(peer);
    })
    .await;
}

/// A fake server on h2 directly: resets the first `refuse` streams with `reason`,
/// answers the others with an empty SimpleResponse; counts the streams it saw.
async fn fake_server(refuse: usize, reason: h2::Reason) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let (io, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(io).await.unwrap();
        while let Some(Ok((_request, mut respond))) = conn.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            if n < refuse {
                respond.send_reset(reason);
                continue;
            }
            let head = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut send = respond.send_response(head, false).unwrap();
            send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false)
                .unwrap();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            send.send_trailers(trailers).unwrap();
        }
    });
    (target, seen)
}

/// gRFC A6: a stream the server refused before processing it (RST_STREAM
/// REFUSED_STREAM) is retried transparently, once.
#[tokio::test]
async fn a_refused_stream_is_retried_transparently_once() {
    rgrpc_tests::no_leaks(async {
        let (target, seen) = fake_server(1, h2::Reason::REFUSED_STREAM).await;
        let client = TestServiceStub::new(Channel::connect(&target).await.unwrap());
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .expect("retried and answered");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        // Refused twice: one transparent retry only, then the failure is the caller's.
        let (target, seen) = fake_server(2, h2::Reason::REFUSED_STREAM).await;
        let client = TestServiceStub::new(Channel::connect(&target).await.unwrap());
        let err = within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    })
    .await;
}

/// Anything else is not retried here (retry policies are the channel's business).
#[tokio::test]
async fn other_resets_are_not_retried() {
    rgrpc_tests::no_leaks(async {
        let (target, seen) = fake_server(1, h2::Reason::INTERNAL_ERROR).await;
        let client = TestServiceStub::new(Channel::connect(&target).await.unwrap());
        let err = within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{err:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    })
    .await;
}
