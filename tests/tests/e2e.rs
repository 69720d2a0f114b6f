//! All four RPC kinds end to end over real sockets, and the behaviours around them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rgrpc_examples::helloworld::{GreeterStub, HelloReply, HelloRequest};
use rgrpc_examples::routeguide::{Point, Rectangle, RouteGuideStub, RouteNote};
use rgrpc_runtime::{CallOptions, Channel, Code, Encoding, Metadata, Request};
use rgrpc_tests::grpc_testing::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, StreamingOutputCallRequest,
    TestServiceStub,
};
use rgrpc_tests::{start, wait_until, within};

#[tokio::test]
async fn unary_round_trip() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = GreeterStub::new(Channel::connect(&server.target()).await.unwrap());
        let reply = within(
            10,
            client.say_hello(HelloRequest {
                name: "world".into(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(reply.into_inner().message, "Hello world");
    })
    .await;
}

#[tokio::test]
async fn server_client_and_bidi_streaming() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = RouteGuideStub::new(Channel::connect(&server.target()).await.unwrap());
        let everything = Rectangle {
            lo: Some(Point {
                latitude: 0,
                longitude: -900_000_000,
            }),
            hi: Some(Point {
                latitude: 900_000_000,
                longitude: 0,
            }),
        };
        let mut features = within(10, client.list_features(everything)).await.unwrap();
        let mut n = 0;
        while let Some(f) = within(10, features.message()).await.unwrap() {
            assert!(!f.name.is_empty());
            n += 1;
        }
        assert_eq!(n, rgrpc_examples::route_guide::features().len());

        let mut route = within(10, client.record_route(CallOptions::default()))
            .await
            .unwrap();
        let a = Point {
            latitude: 407_000_000,
            longitude: -747_000_000,
        };
        let b = Point {
            latitude: 408_000_000,
            longitude: -746_000_000,
        };
        for p in [a, b, a] {
            within(10, route.send(&p)).await.unwrap();
        }
        let summary = within(10, route.close_and_recv())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(summary.point_count, 3);
        assert_eq!(summary.feature_count, 3);
        assert_eq!(
            summary.distance,
            2 * rgrpc_examples::route_guide::distance(&a, &b)
        );

        let chat = within(10, client.route_chat(CallOptions::default()))
            .await
            .unwrap();
        let (mut tx, mut rx) = chat.split();
        let spot = Some(Point {
            latitude: 5,
            longitude: 5,
        });
        within(
            10,
            tx.send(&RouteNote {
                location: spot,
                message: "one".into(),
            }),
        )
        .await
        .unwrap();
        within(
            10,
            tx.send(&RouteNote {
                location: spot,
                message: "two".into(),
            }),
        )
        .await
        .unwrap();
        // The second note is answered with the first while the request stream is still open.
        let first = within(10, rx.message()).await.unwrap().unwrap();
        assert_eq!(first.message, "one");
        within(10, tx.close_send()).await.unwrap();
        assert!(within(10, rx.message()).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn unknown_methods_and_services_are_unimplemented() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let channel = Channel::connect(&server.target()).await.unwrap();
        for (path, message) in [
            ("/helloworld.Greeter/Nope", "unknown method Nope"),
            ("/no.Such/Thing", "unknown service no.Such"),
        ] {
            let request = Request::new(HelloRequest::default());
            let call = channel.invoke::<HelloRequest, HelloReply>(path, request);
            let err = within(10, call).await.unwrap_err();
            assert_eq!(err.code(), Code::Unimplemented, "{path}");
            assert!(err.message().contains(message), "{path}: {}", err.message());
        }
        // A method the implementation did not override answers with the trait's default.
        let client = TestServiceStub::new(channel);
        let err = within(10, client.empty_call(Empty::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        assert_eq!(err.message(), "method EmptyCall not implemented");
    })
    .await;
}

#[tokio::test]
async fn many_concurrent_calls_share_one_connection() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let channel = Channel::connect(&server.target()).await.unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..500 {
            let client = GreeterStub::new(channel.clone());
            calls.spawn(async move {
                let reply = client
                    .say_hello(HelloRequest {
                        name: format!("n{i}"),
                    })
                    .await
                    .unwrap();
                assert_eq!(reply.into_inner().message, format!("Hello n{i}"));
            });
        }
        within(30, async {
            while let Some(joined) = calls.join_next().await {
                joined.unwrap();
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn max_concurrent_streams_makes_callers_wait_not_fail() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s.max_concurrent_streams(2)).await;
        let channel = Channel::connect(&server.target()).await.unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..50 {
            let client = GreeterStub::new(channel.clone());
            calls.spawn(async move {
                client
                    .say_hello(HelloRequest {
                        name: format!("{i}"),
                    })
                    .await
            });
        }
        within(30, async {
            while let Some(joined) = calls.join_next().await {
                joined.unwrap().unwrap();
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn slow_reader_blocks_the_streaming_sender_with_bounded_memory() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        const SIZE: i32 = 64 * 1024;
        const COUNT: usize = 400; // 25 MiB in all if nothing held the sender back
        let request = StreamingOutputCallRequest {
            response_parameters: (0..COUNT)
                .map(|_| ResponseParameters {
                    size: SIZE,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let mut stream = within(10, client.streaming_output_call(request))
            .await
            .unwrap();
        // Do not read: the sender must stall once flow control and the write quota are full.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = server.probe.sent.load(Ordering::SeqCst);
        // Client stream window (1 MiB) + connection window slack + the 64 KiB write quota
        // + the message being encoded: about 18 messages of 64 KiB; 24 leaves room for
        // framing overhead, and is far below COUNT.
        assert!(
            sent <= 24,
            "sender ran ahead of the reader: {sent} messages sent"
        );
        assert!(sent >= 1, "sender made no progress");
        let mut received = 0;
        while let Some(msg) = within(30, stream.message()).await.unwrap() {
            assert_eq!(msg.payload.unwrap().body.len(), SIZE as usize);
            received += 1;
        }
        assert_eq!(received, COUNT);
    })
    .await;
}

#[tokio::test]
async fn panicking_handler_fails_only_its_call() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let channel = Channel::connect(&server.target()).await.unwrap();
        let client = TestServiceStub::new(channel.clone());
        let greeter = GreeterStub::new(channel);
        // A stream in flight on the same connection across the panic: one message now,
        // the second 300 ms later.
        let mut slow = within(
            10,
            client.streaming_output_call(StreamingOutputCallRequest {
                response_parameters: vec![
                    ResponseParameters {
                        size: 10,
                        ..Default::default()
                    },
                    ResponseParameters {
                        size: 10,
                        interval_us: 300_000,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        assert!(within(10, slow.message()).await.unwrap().is_some());
        let err = within(
            10,
            client.unary_call(SimpleRequest {
                fill_username: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert!(err.message().contains("panicked"), "{}", err.message());
        // The connection and its other streams keep going.
        assert!(within(10, slow.message()).await.unwrap().is_some());
        assert!(within(10, slow.message()).await.unwrap().is_none());
        let reply = within(
            10,
            greeter.say_hello(HelloRequest {
                name: "after".into(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(reply.into_inner().message, "Hello after");
    })
    .await;
}

#[tokio::test]
async fn status_codes_messages_and_metadata_cross_the_wire() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let special = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
        let err = within(
            10,
            client.unary_call(SimpleRequest {
                response_status: Some(EchoStatus {
                    code: 2,
                    message: special.into(),
                }),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::Unknown);
        assert_eq!(err.message(), special);

        let mut request = Request::new(SimpleRequest {
            response_size: 3,
            ..Default::default()
        });
        request.metadata_mut().insert("x-echo", "hello").unwrap();
        request
            .metadata_mut()
            .insert_bin("x-echo-trailer-bin", &[0xab, 0xab, 0xab])
            .unwrap();
        let response = within(10, client.unary_call(request)).await.unwrap();
        assert_eq!(response.headers().get("x-echo"), Some("hello"));
        assert_eq!(
            response.trailers().get_bin("x-echo-trailer-bin"),
            Some(vec![0xab, 0xab, 0xab])
        );
        assert!(!response.trailers().contains_key("grpc-status"));
        assert_eq!(response.into_inner().payload.unwrap().body.len(), 3);
    })
    .await;
}

#[tokio::test]
async fn gzip_both_ways() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let request = Request::with_options(
            SimpleRequest {
                response_size: 100_000,
                response_compressed: Some(rgrpc_tests::grpc_testing::BoolValue { value: true }),
                payload: Some(Payload {
                    body: vec![1; 50_000],
                    ..Default::default()
                }),
                ..Default::default()
            },
            CallOptions::default().with_compression(Encoding::Gzip),
        );
        let response = within(10, client.unary_call(request)).await.unwrap();
        assert_eq!(
            response.into_inner().payload.unwrap().body,
            vec![0; 100_000]
        );
    })
    .await;
}

#[tokio::test]
async fn oversized_messages_are_resource_exhausted_both_ways() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s.max_recv_message_size(1024)).await;
        let channel = Channel::connect(&server.target()).await.unwrap();
        let client = TestServiceStub::new(channel.clone());
        let big = SimpleRequest {
            payload: Some(Payload {
                body: vec![0; 4096],
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = within(10, client.unary_call(big)).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        // Response larger than the client's per-call limit.
        let options = CallOptions {
            max_recv_message_size: Some(100),
            ..Default::default()
        };
        let request = Request::with_options(
            SimpleRequest {
                response_size: 1000,
                ..Default::default()
            },
            options,
        );
        let err = within(10, client.unary_call(request)).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        // The connection still serves other calls.
        let ok = within(
            10,
            client.unary_call(SimpleRequest {
                response_size: 10,
                ..Default::default()
            }),
        )
        .await;
        assert!(ok.is_ok(), "{ok:?}");
    })
    .await;
}

#[tokio::test]
async fn deadline_expires_on_both_sides_and_the_handler_is_dropped() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let request = Request::new(SimpleRequest {
            payload: Some(Payload {
                body: b"sleep".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .timeout(Duration::from_millis(200));
        let err = within(10, client.unary_call(request)).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) > 0).await;
    })
    .await;
}

#[tokio::test]
async fn dropping_a_call_cancels_the_server_handler() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let call = client.unary_call(SimpleRequest {
            payload: Some(Payload {
                body: b"sleep".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        });
        // Let the request reach the handler, then give up on it.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), call)
                .await
                .is_err()
        );
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) > 0).await;
        assert_eq!(server.probe.finished.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_calls() {
    rgrpc_tests::no_leaks(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = rgrpc_runtime::Server::new();
        rgrpc_examples::helloworld::register_greeter_server(
            &mut server,
            rgrpc_examples::greeter::Greeter,
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve_with_shutdown(listener, async {
            let _ = stopped.await;
        }));
        let client = GreeterStub::new(Channel::connect(&format!("http://{addr}")).await.unwrap());
        within(10, client.say_hello(HelloRequest { name: "x".into() }))
            .await
            .unwrap();
        stop.send(()).unwrap();
        within(10, serving).await.unwrap().unwrap();
        let err = within(10, client.say_hello(HelloRequest { name: "y".into() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    })
    .await;
}

#[test]
fn metadata_rejects_bad_keys_without_panicking() {
    let mut md = Metadata::new();
    assert!(md.insert("Bad Key", "v").is_err());
    assert!(md.insert("grpc-timeout", "1S").is_err());
    assert!(md.insert_bin("x-bin", &[0, 255]).is_ok());
}

#[tokio::test]
async fn status_details_and_peer_information() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let err = within(
            10,
            client.unary_call(SimpleRequest {
                response_status: Some(EchoStatus {
                    code: 9,
                    message: "details:\u{1}rich".into(),
                }),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(err.message(), "with details");
        assert_eq!(err.details().as_ref(), b"\x01rich");

        let mut request = Request::new(SimpleRequest {
            fill_oauth_scope: true,
            ..Default::default()
        })
        .timeout(Duration::from_secs(30));
        request.metadata_mut().insert("x-custom", "1").unwrap();
        let response = within(10, client.unary_call(request)).await.unwrap();
        assert_eq!(response.headers().get("x-remote-ip"), Some("127.0.0.1"));
        // The handler's metadata (read lazily, on its first read): the user's headers,
        // none of the reserved ones the request also carried.
        let keys = response
            .headers()
            .get("x-metadata-keys")
            .unwrap_or_default();
        let keys: Vec<&str> = keys.split(',').collect();
        assert!(keys.contains(&"x-custom"), "{keys:?}");
        for reserved in ["content-type", "te", "grpc-timeout", "grpc-accept-encoding"] {
            assert!(!keys.contains(&reserved), "{reserved} in {keys:?}");
        }
        assert_eq!(
            response.headers().get("x-authority"),
            Some(server.addr.to_string().as_str())
        );
    })
    .await;
}

#[tokio::test]
async fn cancelling_a_stream_after_its_headers_drops_the_idle_handler() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let request = StreamingOutputCallRequest {
            response_parameters: vec![
                ResponseParameters {
                    size: 10,
                    ..Default::default()
                },
                // The handler then sleeps 20 s before its second message: it is neither
                // sending nor receiving when the client goes away.
                ResponseParameters {
                    size: 10,
                    interval_us: 20_000_000,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut stream = within(10, client.streaming_output_call(request))
            .await
            .unwrap();
        assert!(within(10, stream.message()).await.unwrap().is_some());
        stream.cancel();
        assert_eq!(
            within(10, stream.message()).await.unwrap_err().code(),
            Code::Cancelled
        );
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) > 0).await;
        assert_eq!(server.probe.finished.load(Ordering::SeqCst), 0);
    })
    .await;
}

/// Like the test above, but the stream still has data queued when the client goes
/// away: the writer learns of the reset from h2 failing that data and forgets the
/// stream, and the idle handler must be dropped all the same.
#[tokio::test]
async fn cancelling_a_stream_with_queued_data_drops_the_idle_handler() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        let request = StreamingOutputCallRequest {
            response_parameters: vec![
                // 1.5 MiB against the client's 1 MiB stream window: half a MiB stays queued
                // while nobody reads. The send returns at once (it holds half the quota).
                ResponseParameters {
                    size: 1536 * 1024,
                    ..Default::default()
                },
                ResponseParameters {
                    size: 10,
                    interval_us: 20_000_000,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let stream = within(10, client.streaming_output_call(request))
            .await
            .unwrap();
        wait_until(10, || server.probe.sent.load(Ordering::SeqCst) > 0).await;
        drop(stream);
        wait_until(10, || server.probe.dropped.load(Ordering::SeqCst) > 0).await;
        assert_eq!(server.probe.finished.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test]
async fn callers_beyond_max_concurrent_streams_wait_without_killing_the_connection() {
    rgrpc_tests::no_leaks(async {
        // One stream at a time, 20 ms per call, 200 callers with 300 ms deadlines: most
        // callers time out while waiting. They must wait on our side (bounded), not pile
        // up in h2's pending-open queue and then reset streams en masse, which makes the
        // server's h2 GOAWAY the connection (ENHANCE_YOUR_CALM, too_many_resets).
        let server = start(|s| s.max_concurrent_streams(1)).await;
        let channel = Channel::connect(&server.target()).await.unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let client = TestServiceStub::new(channel.clone());
            calls.spawn(async move {
                let request = StreamingOutputCallRequest {
                    response_parameters: vec![ResponseParameters {
                        size: 1,
                        interval_us: 20_000,
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let request = Request::new(request).timeout(Duration::from_millis(300));
                let mut stream = client.streaming_output_call(request).await?;
                while stream.message().await?.is_some() {}
                Ok::<(), rgrpc_runtime::Status>(())
            });
        }
        let (mut ok, mut expired) = (0, 0);
        within(30, async {
            while let Some(joined) = calls.join_next().await {
                match joined.unwrap() {
                    Ok(()) => ok += 1,
                    Err(s) if s.code() == Code::DeadlineExceeded => expired += 1,
                    Err(s) => panic!("a caller failed with {s:?}"),
                }
            }
        })
        .await;
        assert!(ok >= 1, "no call completed ({expired} expired)");
        // The connection survived: a fresh call on the same channel works.
        let client = GreeterStub::new(channel);
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

/// A handler that waits must not hold up the other streams of its connection, whether
/// streams are polled first in the connection task (the default) or all spawned.
#[tokio::test]
async fn a_waiting_handler_does_not_hold_up_its_connection() {
    rgrpc_tests::no_leaks(async {
        for inline in [true, false] {
            let server = start(|s| s.inline_dispatch(inline)).await;
            let channel = Channel::connect(&server.target()).await.unwrap();
            let client = TestServiceStub::new(channel.clone());
            // Sleeps 10 s in its handler; dropped at the end of the round.
            let sleeper = tokio::spawn({
                let client = client.clone();
                async move {
                    client
                        .unary_call(SimpleRequest {
                            payload: Some(Payload {
                                body: b"sleep".to_vec(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        })
                        .await
                }
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
            let greeter = GreeterStub::new(channel);
            within(8, async {
                for i in 0..20 {
                    let name = format!("n{i}");
                    let reply = greeter
                        .say_hello(HelloRequest { name: name.clone() })
                        .await
                        .unwrap();
                    assert_eq!(reply.into_inner().message, format!("Hello {name}"));
                }
            })
            .await;
            assert!(
                !sleeper.is_finished(),
                "the sleeping call ended before the other calls were done (inline={inline})"
            );
            sleeper.abort();
        }
    })
    .await;
}
