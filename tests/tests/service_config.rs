//! The service config (gRFC A2) end to end: per-method and per-service timeouts, size
//! limits, waitForReady and loadBalancingConfig, each against real servers on loopback
//! addresses, and how a call's own options combine with them.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rgrpc_runtime::{CallOptions, Channel, Code, LbPolicy, Request};
use rgrpc_tests::grpc_testing::{
    Payload, ResponseParameters, SimpleRequest, StreamingOutputCallRequest, TestServiceStub,
};
use rgrpc_tests::{TestServer, sleeping_request, start, start_on, within};

fn calls(server: &TestServer) -> usize {
    server.probe.finished.load(Ordering::SeqCst)
}

fn client(target: &str, service_config: &str) -> TestServiceStub {
    let channel = Channel::builder(target)
        .service_config(service_config)
        .unwrap_or_else(|e| panic!("{service_config}: {e:?}"))
        .build()
        .unwrap();
    TestServiceStub::new(channel)
}

/// Runs a call that the server would hold for 10 s; returns how long it took to fail
/// DEADLINE_EXCEEDED.
async fn deadline_after(fut: impl Future<Output = Result<(), rgrpc_runtime::Status>>) -> Duration {
    let began = Instant::now();
    let err = within(10, fut)
        .await
        .expect_err("the call outlived its timeout");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    began.elapsed()
}

/// A method's timeout applies; a call's own timeout applies only when it is smaller.
#[tokio::test]
async fn a_method_timeout_applies_and_the_smaller_timeout_wins() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = client(
            &server.target(),
            r#"{"methodConfig": [{
                "name": [{"service": "grpc.testing.TestService", "method": "UnaryCall"}],
                "timeout": "0.3s"
            }]}"#,
        );
        // Connect first, so the timings below are the calls'.
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        let took =
            deadline_after(async { client.unary_call(sleeping_request()).await.map(drop) }).await;
        assert!(
            took >= Duration::from_millis(280) && took < Duration::from_secs(3),
            "failed after {took:?}, configured 300 ms"
        );
        // A longer call timeout does not extend it.
        let longer = Request::new(sleeping_request()).timeout(Duration::from_secs(5));
        let took = deadline_after(async { client.unary_call(longer).await.map(drop) }).await;
        assert!(took < Duration::from_secs(3), "failed after {took:?}");
        // A shorter one wins.
        let shorter = Request::new(sleeping_request()).timeout(Duration::from_millis(50));
        let took = deadline_after(async { client.unary_call(shorter).await.map(drop) }).await;
        assert!(took < Duration::from_millis(280), "failed after {took:?}");
    })
    .await;
}

/// An entry naming only the service applies to its other methods; the method's own
/// entry wins for that method; the default `{}` applies to other services.
#[tokio::test]
async fn a_service_default_applies_to_another_method() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let channel = Channel::builder(&server.target())
            .service_config(
                r#"{"methodConfig": [
                    {"name": [{"service": "grpc.testing.TestService", "method": "UnaryCall"}],
                     "timeout": "20s"},
                    {"name": [{"service": "grpc.testing.TestService"}], "timeout": "0.3s"},
                    {"name": [{}], "maxRequestMessageBytes": 10}
                ]}"#,
            )
            .unwrap()
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel.clone());
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        // StreamingOutputCall: its second message comes 10 s after the first.
        let request = StreamingOutputCallRequest {
            response_parameters: vec![
                ResponseParameters {
                    size: 1,
                    ..Default::default()
                },
                ResponseParameters {
                    size: 1,
                    interval_us: 10_000_000,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let took = deadline_after(async {
            let mut stream = client.streaming_output_call(request).await?;
            while stream.message().await?.is_some() {}
            Ok(())
        })
        .await;
        assert!(
            took >= Duration::from_millis(280) && took < Duration::from_secs(3),
            "failed after {took:?}, the service's timeout is 300 ms"
        );
        // UnaryCall has its own entry (20 s), not the service's 300 ms: this call's own
        // 1 s timeout is the smaller.
        let request = Request::new(sleeping_request()).timeout(Duration::from_secs(1));
        let took = deadline_after(async { client.unary_call(request).await.map(drop) }).await;
        assert!(
            took >= Duration::from_millis(950),
            "failed after {took:?}: the service's 300 ms applied to a method with its own entry"
        );
        // The default applies to another service (and not to TestService, whose requests
        // above were larger than its 10 bytes).
        let greeter = rgrpc_examples::helloworld::GreeterStub::new(channel);
        let hello = |name: &str| rgrpc_examples::helloworld::HelloRequest { name: name.into() };
        within(10, greeter.say_hello(hello("short")))
            .await
            .expect("under the default's limit");
        let err = within(10, greeter.say_hello(hello("longer than ten bytes")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    })
    .await;
}

/// maxRequestMessageBytes fails a large request on the client, before anything is
/// sent; maxResponseMessageBytes a large response; a call's own limit overrides both.
#[tokio::test]
async fn size_limits_apply_per_method() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = client(
            &server.target(),
            r#"{"methodConfig": [{"name": [{"service": "grpc.testing.TestService"}],
                "maxRequestMessageBytes": 1024, "maxResponseMessageBytes": "1024"}]}"#,
        );
        let request = |size: usize| SimpleRequest {
            payload: Some(Payload {
                body: vec![1; size],
                ..Default::default()
            }),
            ..Default::default()
        };
        within(10, client.unary_call(request(500))).await.unwrap();
        let err = within(10, client.unary_call(request(2000)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message()
                .contains("trying to send message larger than max"),
            "not the client's own limit: {err:?}"
        );
        let err = within(
            10,
            client.unary_call(SimpleRequest {
                response_size: 2000,
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        // The handler ran for the small request and the large response only.
        assert_eq!(calls(&server), 2);
        let mut options = CallOptions::new();
        options.max_send_message_size = Some(4096);
        options.max_recv_message_size = Some(4096);
        let big = Request::with_options(
            SimpleRequest {
                response_size: 2000,
                ..request(2000)
            },
            options,
        );
        within(10, client.unary_call(big))
            .await
            .expect("the call's own limits win");
    })
    .await;
}

/// waitForReady from the config: a call made before the server listens waits for it;
/// a call that asks for fail-fast still fails at once.
#[tokio::test]
async fn wait_for_ready_from_the_config() {
    rgrpc_tests::no_leaks(async {
        let addr = std::net::TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let channel = Channel::builder(&addr.to_string())
            .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(200))
            .service_config(
                r#"{"methodConfig": [{"name": [{"service": "grpc.testing.TestService"}],
                    "waitForReady": true, "timeout": "10s"}]}"#,
            )
            .unwrap()
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel);
        let waiting = tokio::spawn({
            let client = client.clone();
            async move { client.unary_call(SimpleRequest::default()).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the call waits for a server");
        let fail_fast = Request::with_options(
            SimpleRequest::default(),
            CallOptions::new().with_wait_for_ready(false),
        );
        let err = within(10, client.unary_call(fail_fast)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        let server = start_on(&addr.to_string(), |s| s).await;
        within(10, waiting)
            .await
            .unwrap()
            .expect("completed once the server started");
        assert_eq!(calls(&server), 1);
    })
    .await;
}

/// loadBalancingConfig: the first supported policy (round_robin, after an unknown
/// one) spreads calls over two servers, over the builder's pick_first.
#[tokio::test]
async fn load_balancing_config_round_robin_spreads_calls() {
    rgrpc_tests::no_leaks(async {
        let a = start_on("127.0.0.2:0", |s| s).await;
        let b = start_on("127.0.0.3:0", |s| s).await;
        let channel = Channel::builder(&format!("ipv4:{},{}", a.addr, b.addr))
            .lb_policy(LbPolicy::PickFirst)
            .service_config(
                r#"{"loadBalancingConfig": [{"weighted_round_robin": {}}, {"round_robin": {}}]}"#,
            )
            .unwrap()
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel);
        // Until both subchannels are Ready (each connects on its own).
        for _ in 0..200 {
            if calls(&a) > 0 && calls(&b) > 0 {
                break;
            }
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = (calls(&a), calls(&b));
        for _ in 0..100 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
        }
        let got = (calls(&a) - before.0, calls(&b) - before.1);
        assert!(
            (45..=55).contains(&got.0) && got.0 + got.1 == 100,
            "round_robin over two Ready servers gave {got:?}"
        );
    })
    .await;
}

/// A bad config fails the builder with INVALID_ARGUMENT naming the field.
#[tokio::test]
async fn a_bad_config_names_its_field() {
    rgrpc_tests::no_leaks(async {
        let err = Channel::builder("127.0.0.1:1")
            .service_config(r#"{"methodConfig": [{"name": [{}], "timeout": "soon"}]}"#)
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            r#"service config: methodConfig[0].timeout: expected a duration like "1.5s", got "soon""#
        );
        let err = Channel::builder("127.0.0.1:1")
            .service_config(r#"{"loadBalancingConfig": [{"grpclb": {}}]}"#)
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .contains("loadBalancingConfig: no supported policy"),
            "{err:?}"
        );
    })
    .await;
}
