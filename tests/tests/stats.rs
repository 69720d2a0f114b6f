//! The stats hook end to end: the event sequence and the message sizes of unary,
//! streaming, compressed and failed calls, on the server and on the channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rgrpc_examples::route_guide::features;
use rgrpc_examples::routeguide::{Feature, Point, Rectangle, RouteGuideStub, RouteNote};
use rgrpc_runtime::{
    CallOptions, Channel, Code, Encoding, Payload, Request, RpcInfo, StatsEvent, StatsHandler,
};
use rgrpc_tests::grpc_testing::TestServiceStub;
use rgrpc_tests::grpc_testing::{
    BoolValue, EchoStatus, Empty, Payload as TestPayload, ResponseParameters, SimpleRequest,
    StreamingOutputCallRequest,
};
use rgrpc_tests::{start, wait_until, within};

/// One recorded event: the RPC's id, side, method and the event, formatted.
#[derive(Clone, Debug)]
struct Seen {
    id: u64,
    client: bool,
    method: String,
    event: String,
    duration: Option<Duration>,
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

fn payload(p: &Payload) -> String {
    format!("{} {} {}", p.length, p.wire_length, p.compressed)
}

impl StatsHandler for Recorder {
    fn handle(&self, rpc: &RpcInfo<'_>, event: &StatsEvent<'_>) {
        let mut duration = None;
        let event = match event {
            StatsEvent::Begin { kind } => format!("Begin {kind:?}"),
            StatsEvent::InHeader { compression, .. } => format!("InHeader {compression:?}"),
            StatsEvent::OutHeader { compression, .. } => format!("OutHeader {compression:?}"),
            StatsEvent::InPayload(p) => format!("InPayload {}", payload(p)),
            StatsEvent::OutPayload(p) => format!("OutPayload {}", payload(p)),
            StatsEvent::InTrailer { metadata } => {
                format!(
                    "InTrailer {}",
                    metadata.get("x-echo-trailer").unwrap_or("-")
                )
            }
            StatsEvent::OutTrailer { metadata } => {
                format!(
                    "OutTrailer {}",
                    metadata.get("x-echo-trailer").unwrap_or("-")
                )
            }
            StatsEvent::End {
                status,
                duration: d,
            } => {
                duration = Some(*d);
                format!(
                    "End {:?}",
                    status.as_ref().err().map_or(Code::Ok, |s| s.code())
                )
            }
            other => format!("{other:?}"),
        };
        self.seen.lock().unwrap().push(Seen {
            id: rpc.id,
            client: rpc.client,
            method: rpc.full_method.to_owned(),
            event,
            duration,
        });
    }
}

impl Recorder {
    /// The events of each RPC in the order the RPCs began, checking that each RPC's
    /// events share one method and one side and end with one End.
    fn rpcs(&self) -> Vec<(String, Vec<String>)> {
        let seen = self.seen.lock().unwrap().clone();
        let mut ids: Vec<u64> = Vec::new();
        for s in &seen {
            if !ids.contains(&s.id) {
                ids.push(s.id);
            }
        }
        ids.iter()
            .map(|id| {
                let events: Vec<&Seen> = seen.iter().filter(|s| s.id == *id).collect();
                let first = events[0];
                assert!(events.iter().all(|s| s.method == first.method));
                assert!(events.iter().all(|s| s.client == first.client));
                let ends: Vec<_> = events.iter().filter(|s| s.duration.is_some()).collect();
                assert_eq!(ends.len(), 1, "one End: {events:?}");
                assert!(ends[0].duration.unwrap() > Duration::ZERO);
                (
                    first.method.clone(),
                    events.iter().map(|s| s.event.clone()).collect(),
                )
            })
            .collect()
    }

    fn ended(&self) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|s| s.duration.is_some()).count()
    }
}

fn len(message: &impl prost::Message) -> usize {
    message.encoded_len()
}

/// Unary, server-, client- and bidi-streaming on routeguide, seen by a server and
/// a channel stats handler.
#[tokio::test]
async fn events_and_sizes_of_the_four_kinds_on_both_sides() {
    let server_stats = Arc::new(Recorder::default());
    let handler: Arc<dyn StatsHandler> = server_stats.clone();
    let server = start(move |s| s.stats_handler(handler)).await;
    let client_stats = Arc::new(Recorder::default());
    let channel = Channel::builder(&server.target())
        .stats_handler(client_stats.clone())
        .build()
        .unwrap();
    let client = RouteGuideStub::new(channel);

    let far = Point {
        latitude: 1,
        longitude: 1,
    };
    let feature = within(10, client.get_feature(far))
        .await
        .unwrap()
        .into_inner();
    let rect = Rectangle {
        lo: Some(Point {
            latitude: 400_000_000,
            longitude: -750_000_000,
        }),
        hi: Some(Point {
            latitude: 420_000_000,
            longitude: -730_000_000,
        }),
    };
    let mut listed = within(10, client.list_features(rect)).await.unwrap();
    let mut got: Vec<Feature> = Vec::new();
    while let Some(f) = within(10, listed.message()).await.unwrap() {
        got.push(f);
    }
    assert_eq!(got, features());
    let mut route = within(10, client.record_route(CallOptions::default()))
        .await
        .unwrap();
    let points: Vec<Point> = features()
        .iter()
        .filter_map(|f| f.location)
        .take(2)
        .collect();
    for p in &points {
        within(10, route.send(p)).await.unwrap();
    }
    let summary = within(10, route.close_and_recv())
        .await
        .unwrap()
        .into_inner();
    let mut chat = within(10, client.route_chat(CallOptions::default()))
        .await
        .unwrap();
    let note = |text: &str| RouteNote {
        location: Some(Point {
            latitude: 21,
            longitude: 21,
        }),
        message: text.into(),
    };
    within(10, chat.send(&note("first"))).await.unwrap();
    within(10, chat.send(&note("second"))).await.unwrap();
    within(10, chat.close_send()).await.unwrap();
    let reply = within(10, chat.message()).await.unwrap().unwrap();
    assert_eq!(reply.message, "first");
    assert!(within(10, chat.message()).await.unwrap().is_none());
    wait_until(10, || server_stats.ended() == 4).await;

    let p = |m: &dyn Fn() -> usize| {
        let n = m();
        format!("{n} {} false", n + 5)
    };
    let far_len = || len(&far);
    let feature_len = || len(&feature);
    let rect_len = || len(&rect);
    let route_paths = "/routeguide.RouteGuide/";
    let mut expect_server = vec![(
        format!("{route_paths}GetFeature"),
        vec![
            "Begin Unary".to_owned(),
            "InHeader None".into(),
            format!("InPayload {}", p(&far_len)),
            "OutHeader None".into(),
            format!("OutPayload {}", p(&feature_len)),
            "OutTrailer -".into(),
            "End Ok".into(),
        ],
    )];
    let mut listed_events = vec![
        "Begin ServerStreaming".to_owned(),
        "InHeader None".into(),
        format!("InPayload {}", p(&rect_len)),
        "OutHeader None".into(),
    ];
    for f in features() {
        listed_events.push(format!("OutPayload {}", p(&|| len(&f))));
    }
    listed_events.extend(["OutTrailer -".to_owned(), "End Ok".into()]);
    expect_server.push((format!("{route_paths}ListFeatures"), listed_events));
    let mut route_events = vec!["Begin ClientStreaming".to_owned(), "InHeader None".into()];
    for pt in &points {
        route_events.push(format!("InPayload {}", p(&|| len(pt))));
    }
    route_events.extend([
        "OutHeader None".to_owned(),
        format!("OutPayload {}", p(&|| len(&summary))),
        "OutTrailer -".into(),
        "End Ok".into(),
    ]);
    expect_server.push((format!("{route_paths}RecordRoute"), route_events));
    expect_server.push((
        format!("{route_paths}RouteChat"),
        vec![
            "Begin BidiStreaming".to_owned(),
            "InHeader None".into(),
            format!("InPayload {}", p(&|| len(&note("first")))),
            format!("InPayload {}", p(&|| len(&note("second")))),
            "OutHeader None".into(),
            format!("OutPayload {}", p(&|| len(&note("first")))),
            "OutTrailer -".into(),
            "End Ok".into(),
        ],
    ));
    assert_eq!(server_stats.rpcs(), expect_server);

    // The client's side mirrors it: Out for In, its request headers first.
    let mirrored: Vec<(String, Vec<String>)> = expect_server
        .iter()
        .map(|(method, events)| {
            let mut requests = Vec::new();
            let mut responses = Vec::new();
            for e in events {
                if let Some(rest) = e.strip_prefix("InPayload") {
                    requests.push(format!("OutPayload{rest}"));
                } else if let Some(rest) = e.strip_prefix("OutPayload") {
                    responses.push(format!("InPayload{rest}"));
                }
            }
            let mut client = vec![events[0].clone(), "OutHeader None".to_owned()];
            client.extend(requests);
            client.push("InHeader None".into());
            client.extend(responses);
            client.extend(["InTrailer -".to_owned(), "End Ok".into()]);
            (method.clone(), client)
        })
        .collect();
    assert_eq!(client_stats.rpcs(), mirrored);
}

/// Compressed both ways: the uncompressed and wire lengths differ, and the
/// compressed flag is reported.
#[tokio::test]
async fn compressed_payloads_report_both_lengths() {
    let server_stats = Arc::new(Recorder::default());
    let handler: Arc<dyn StatsHandler> = server_stats.clone();
    let server = start(move |s| s.stats_handler(handler)).await;
    let client_stats = Arc::new(Recorder::default());
    let channel = Channel::builder(&server.target())
        .stats_handler(client_stats.clone())
        .build()
        .unwrap();
    let request = SimpleRequest {
        response_size: 2000,
        response_compressed: Some(BoolValue { value: true }),
        payload: Some(TestPayload {
            body: vec![0; 3000],
            ..Default::default()
        }),
        ..Default::default()
    };
    let request_len = len(&request);
    let options = CallOptions::new().with_compression(Encoding::Gzip);
    let reply = within(
        10,
        TestServiceStub::new(channel).unary_call(Request::with_options(request, options)),
    )
    .await
    .unwrap();
    let response_len = len(reply.get_ref());
    wait_until(10, || server_stats.ended() == 1).await;
    let sizes = |recorder: &Recorder, prefix: &str| -> (usize, usize, bool) {
        let seen = recorder.seen.lock().unwrap();
        let line = seen
            .iter()
            .find_map(|s| s.event.strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {prefix}: {seen:?}"));
        let parts: Vec<&str> = line.split_whitespace().collect();
        (
            parts[0].parse().unwrap(),
            parts[1].parse().unwrap(),
            parts[2] == "true",
        )
    };
    let (length, wire, compressed) = sizes(&client_stats, "OutPayload ");
    assert_eq!(length, request_len);
    assert!(
        compressed && wire < length,
        "gzip shrinks zeros: {wire} vs {length}"
    );
    // The server saw the same message with the same sizes.
    assert_eq!(sizes(&server_stats, "InPayload "), (length, wire, true));
    let (length, wire, compressed) = sizes(&server_stats, "OutPayload ");
    assert_eq!(length, response_len);
    assert!(compressed && wire < length, "{wire} vs {length}");
    assert_eq!(sizes(&client_stats, "InPayload "), (length, wire, true));
    let seen = server_stats.seen.lock().unwrap();
    assert!(
        seen.iter().any(|s| s.event == "InHeader Some(Gzip)"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.event == "OutHeader Some(Gzip)"),
        "{seen:?}"
    );
}

/// An error before any response is a Trailers-Only reply: no response headers on
/// either side; the status reaches End on both.
#[tokio::test]
async fn a_failed_call_has_trailers_and_end_but_no_response_headers() {
    let server_stats = Arc::new(Recorder::default());
    let handler: Arc<dyn StatsHandler> = server_stats.clone();
    let server = start(move |s| s.stats_handler(handler)).await;
    let client_stats = Arc::new(Recorder::default());
    let channel = Channel::builder(&server.target())
        .stats_handler(client_stats.clone())
        .build()
        .unwrap();
    let request = SimpleRequest {
        response_status: Some(EchoStatus {
            code: Code::NotFound as i32,
            message: "nope".into(),
        }),
        ..Default::default()
    };
    let request_len = len(&request);
    let err = within(10, TestServiceStub::new(channel).unary_call(request))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    wait_until(10, || server_stats.ended() == 1).await;
    let payload = format!("{request_len} {} false", request_len + 5);
    let method = "/grpc.testing.TestService/UnaryCall".to_owned();
    assert_eq!(
        server_stats.rpcs(),
        [(
            method.clone(),
            vec![
                "Begin Unary".to_owned(),
                "InHeader None".into(),
                format!("InPayload {payload}"),
                "OutTrailer -".into(),
                "End NotFound".into(),
            ]
        )]
    );
    assert_eq!(
        client_stats.rpcs(),
        [(
            method,
            vec![
                "Begin Unary".to_owned(),
                "OutHeader None".into(),
                format!("OutPayload {payload}"),
                "InTrailer -".into(),
                "End NotFound".into(),
            ]
        )]
    );
}

/// A call that cannot connect still begins and ends on the client.
#[tokio::test]
async fn a_call_that_never_connects_begins_and_ends() {
    let client_stats = Arc::new(Recorder::default());
    let channel = Channel::builder("http://127.0.0.1:1")
        .stats_handler(client_stats.clone())
        .build()
        .unwrap();
    let err = within(
        10,
        RouteGuideStub::new(channel).get_feature(Point::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(
        client_stats.rpcs(),
        [(
            "/routeguide.RouteGuide/GetFeature".to_owned(),
            vec!["Begin Unary".to_owned(), "End Unavailable".into()]
        )]
    );
}

/// The example exporter counts calls per method and code and fills its histogram.
#[tokio::test]
async fn example_metrics_count_calls_and_latency() {
    let metrics = Arc::new(rgrpc_examples::stats::Metrics::default());
    let handler: Arc<dyn StatsHandler> = metrics.clone();
    let server = start(move |s| s.stats_handler(handler)).await;
    let stub = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
    for _ in 0..3 {
        within(10, stub.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
    }
    let failing = SimpleRequest {
        response_status: Some(EchoStatus {
            code: Code::Aborted as i32,
            message: "no".into(),
        }),
        ..Default::default()
    };
    within(10, stub.unary_call(failing)).await.unwrap_err();
    wait_until(10, || {
        metrics
            .snapshot()
            .values()
            .map(|m| m.calls.values().sum::<u64>())
            .sum::<u64>()
            == 4
    })
    .await;
    let all = metrics.snapshot();
    let unary = &all[&(false, "/grpc.testing.TestService/UnaryCall".to_owned())];
    assert_eq!(unary.calls[&(Code::Ok as i32)], 3);
    assert_eq!(unary.calls[&(Code::Aborted as i32)], 1);
    assert_eq!(unary.buckets.iter().sum::<u64>(), 4);
    let text = metrics.render();
    assert!(
        text.contains(
            "grpc_calls_total{side=\"server\",method=\"/grpc.testing.TestService/UnaryCall\",code=\"Aborted\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("le=\"+Inf\"} 4"), "{text}");
}

/// Panics in a stats handler's Begin for one method.
struct PanicsOnBegin;

impl StatsHandler for PanicsOnBegin {
    fn handle(&self, rpc: &RpcInfo<'_>, event: &StatsEvent<'_>) {
        if matches!(event, StatsEvent::Begin { .. }) && rpc.full_method.ends_with("/EmptyCall") {
            panic!("a stats handler that panics");
        }
    }
}

/// A panic in a server's stats handler (user code, run before the call's own future)
/// ends only its call: a stream in flight on the same connection finishes, and the
/// next call on it succeeds.
#[tokio::test]
async fn a_panicking_stats_handler_ends_only_its_call() {
    let server = start(|s| s.stats_handler(Arc::new(PanicsOnBegin))).await;
    let channel = Channel::connect(&server.target()).await.unwrap();
    let client = TestServiceStub::new(channel);
    // One message now, the second 300 ms later, across the panic.
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
    let err = within(10, client.empty_call(Empty::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");
    assert!(within(10, slow.message()).await.unwrap().is_some());
    assert!(within(10, slow.message()).await.unwrap().is_none());
    within(10, client.unary_call(SimpleRequest::default()))
        .await
        .unwrap();
}

/// A call dropped while it waits for a connection (wait-for-ready, nothing listening)
/// still ends on the client: Begin, then End CANCELLED when the caller gives up.
#[tokio::test]
async fn a_call_dropped_while_waiting_ends() {
    let client_stats = Arc::new(Recorder::default());
    let channel = Channel::builder("http://127.0.0.1:1")
        .stats_handler(client_stats.clone())
        .build()
        .unwrap();
    let options = CallOptions::new().with_wait_for_ready(true);
    let call = channel.invoke::<Point, Feature>(
        "/routeguide.RouteGuide/GetFeature",
        Request::with_options(Point::default(), options),
    );
    let gave_up = tokio::time::timeout(Duration::from_millis(300), call).await;
    assert!(gave_up.is_err(), "the call did not wait: {gave_up:?}");
    assert_eq!(
        client_stats.rpcs(),
        [(
            "/routeguide.RouteGuide/GetFeature".to_owned(),
            vec!["Begin Unary".to_owned(), "End Cancelled".into()]
        )]
    );
}
