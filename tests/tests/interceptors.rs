//! Server and client interceptors end to end: the chain's order, request metadata
//! changed and seen by the handler, short-circuits that never reach the handler (or
//! the network), responses, headers, trailers and statuses changed, and per-message
//! observation (and change) on all four RPC kinds, on both sides.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rgrpc_examples::route_guide::features;
use rgrpc_examples::routeguide::{Feature, Point, Rectangle, RouteGuideStub, RouteNote};
use rgrpc_runtime::{
    BoxFuture, CallObserver, CallOptions, Channel, ClientCall, ClientInterceptor, ClientNext, Code,
    Metadata, Request, RpcKind, ServerCall, ServerInterceptor, ServerNext, Status,
};
use rgrpc_tests::grpc_testing::{EchoStatus, SimpleRequest, SimpleResponse, TestServiceStub};
use rgrpc_tests::{start, within};

type Log = Arc<Mutex<Vec<String>>>;

fn lines(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Logs `name in` before the rest of the chain and `name out <code>` after, on
/// either side.
struct Tracer {
    name: &'static str,
    log: Log,
}

impl Tracer {
    fn entered(&self, full_method: &str, kind: impl std::fmt::Debug) {
        let line = format!("{} in {full_method} {kind:?}", self.name);
        self.log.lock().unwrap().push(line);
    }

    fn left(&self, result: &Result<(), Status>) {
        let code = result.as_ref().err().map_or(Code::Ok, Status::code);
        let line = format!("{} out {code:?}", self.name);
        self.log.lock().unwrap().push(line);
    }
}

impl ServerInterceptor for Tracer {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            self.entered(call.full_method(), call.kind());
            let result = next.run(call).await;
            self.left(&result);
            result
        })
    }
}

impl ClientInterceptor for Tracer {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            self.entered(call.full_method(), call.kind());
            let result = next.run(call).await;
            self.left(&result);
            result
        })
    }
}

async fn channel(target: String) -> Channel {
    Channel::connect(&target).await.unwrap()
}

fn echo_request() -> Request<SimpleRequest> {
    Request::new(SimpleRequest {
        response_size: 3,
        ..Default::default()
    })
}

#[tokio::test]
async fn server_chain_runs_in_the_order_added() {
    let log = Log::default();
    let (a, b) = (log.clone(), log.clone());
    let server = start(move |s| {
        s.interceptor(Tracer { name: "a", log: a })
            .interceptor(Tracer { name: "b", log: b })
    })
    .await;
    let client = TestServiceStub::new(channel(server.target()).await);
    within(10, client.unary_call(echo_request())).await.unwrap();
    let status = SimpleRequest {
        response_status: Some(EchoStatus {
            code: Code::NotFound as i32,
            message: "nope".into(),
        }),
        ..Default::default()
    };
    let err = within(10, client.unary_call(status)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        lines(&log),
        [
            "a in /grpc.testing.TestService/UnaryCall Unary",
            "b in /grpc.testing.TestService/UnaryCall Unary",
            "b out Ok",
            "a out Ok",
            "a in /grpc.testing.TestService/UnaryCall Unary",
            "b in /grpc.testing.TestService/UnaryCall Unary",
            "b out NotFound",
            "a out NotFound",
        ]
    );
}

/// Sets `x-echo` (the handler echoes it back as a header) and removes `x-secret`.
struct SetsMetadata;

impl ServerInterceptor for SetsMetadata {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let seen = call.metadata().get("x-secret").unwrap_or("none").to_owned();
            call.metadata_mut().remove("x-secret");
            call.metadata_mut()
                .insert("x-echo", &format!("set by the interceptor, saw {seen}"))?;
            next.run(call).await
        })
    }
}

#[tokio::test]
async fn server_metadata_changes_reach_the_handler() {
    let server = start(|s| s.interceptor(SetsMetadata)).await;
    let client = TestServiceStub::new(channel(server.target()).await);
    let mut request = echo_request();
    request.metadata_mut().insert("x-secret", "s3").unwrap();
    let reply = within(10, client.unary_call(request)).await.unwrap();
    assert_eq!(
        reply.headers().get("x-echo"),
        Some("set by the interceptor, saw s3")
    );
}

/// grpc-go's canonical example: a bearer token or UNAUTHENTICATED.
struct RequireToken {
    passed: Arc<AtomicUsize>,
}

impl ServerInterceptor for RequireToken {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            if call.metadata().get("authorization") != Some("Bearer good") {
                call.context()
                    .set_trailer_value("www-authenticate", "Bearer")?;
                return Err(Status::unauthenticated("bad token"));
            }
            self.passed.fetch_add(1, Ordering::SeqCst);
            next.run(call).await
        })
    }
}

#[tokio::test]
async fn server_short_circuit_never_reaches_the_handler() {
    let passed = Arc::new(AtomicUsize::new(0));
    let counter = passed.clone();
    let server = start(move |s| s.interceptor(RequireToken { passed: counter })).await;
    let stub = TestServiceStub::new(channel(server.target()).await);
    let err = within(10, stub.unary_call(echo_request()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "bad token");
    assert_eq!(err.metadata().get("www-authenticate"), Some("Bearer"));
    // Streaming calls are stopped before the handler too.
    let routes = RouteGuideStub::new(channel(server.target()).await);
    let mut features = within(10, routes.list_features(Rectangle::default()))
        .await
        .unwrap();
    let err = within(10, features.message()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let probe = &server.probe;
    assert_eq!(probe.finished.load(Ordering::SeqCst), 0);
    assert_eq!(
        probe.dropped.load(Ordering::SeqCst),
        0,
        "no handler started"
    );
    assert_eq!(passed.load(Ordering::SeqCst), 0);

    let mut request = echo_request();
    request
        .metadata_mut()
        .insert("authorization", "Bearer good")
        .unwrap();
    within(10, stub.unary_call(request)).await.unwrap();
    assert_eq!(probe.finished.load(Ordering::SeqCst), 1);
    assert_eq!(passed.load(Ordering::SeqCst), 1);
}

/// Adds a response header and a trailer (as an observer), and after the handler
/// rewrites the unary response, or turns its status into another.
struct RewritesResponse;

struct AddsHeaderAndTrailer {
    seen_end: Arc<Mutex<Option<Code>>>,
}

impl CallObserver for AddsHeaderAndTrailer {
    fn on_headers(&self, headers: &mut Metadata) {
        let echoed = headers.get("x-echo").unwrap_or("none").to_owned();
        headers.remove("x-echo");
        headers
            .insert("x-header", &format!("handler set {echoed}"))
            .unwrap();
    }

    fn on_end(&self, status: &Result<(), Status>, trailers: &mut Metadata) {
        *self.seen_end.lock().unwrap() = Some(status.as_ref().err().map_or(Code::Ok, Status::code));
        trailers.insert("x-trailer", "added").unwrap();
    }
}

impl ServerInterceptor for RewritesResponse {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let seen_end = Arc::new(Mutex::new(None));
            call.observe(AddsHeaderAndTrailer {
                seen_end: seen_end.clone(),
            });
            let result = next.run(call).await;
            assert!(seen_end.lock().unwrap().is_none(), "not ended yet");
            let response = call
                .response_mut()
                .and_then(|r| r.downcast_mut::<SimpleResponse>());
            match response {
                Some(response) => {
                    let payload = response.payload.get_or_insert_with(Default::default);
                    assert_eq!(payload.body, [0, 0, 0], "the handler's response");
                    payload.body = b"rewritten".to_vec();
                }
                None => assert!(result.is_err(), "a failed call has no response"),
            }
            match result {
                Err(status) if status.code() == Code::NotFound => {
                    Err(Status::permission_denied("was not found"))
                }
                other => other,
            }
        })
    }
}

#[tokio::test]
async fn server_changes_response_headers_trailers_and_status() {
    let server = start(|s| s.interceptor(RewritesResponse)).await;
    let client = TestServiceStub::new(channel(server.target()).await);
    let mut request = echo_request();
    request.metadata_mut().insert("x-echo", "hi").unwrap();
    let reply = within(10, client.unary_call(request)).await.unwrap();
    assert_eq!(reply.headers().get("x-header"), Some("handler set hi"));
    assert_eq!(reply.headers().get("x-echo"), None);
    assert_eq!(reply.trailers().get("x-trailer"), Some("added"));
    assert_eq!(reply.get_ref().payload.as_ref().unwrap().body, b"rewritten");

    let not_found = SimpleRequest {
        response_status: Some(EchoStatus {
            code: Code::NotFound as i32,
            message: "nope".into(),
        }),
        ..Default::default()
    };
    let err = within(10, client.unary_call(not_found)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), "was not found");
    assert_eq!(err.metadata().get("x-trailer"), Some("added"));
}

/// Counts each call's messages both ways with their sizes and records them at the
/// end: `kind recv=N (bytes) sent=M (bytes) end=Code`.
#[derive(Default)]
struct Counts {
    kind: Option<RpcKind>,
    recv: AtomicUsize,
    recv_bytes: AtomicUsize,
    sent: AtomicUsize,
    sent_bytes: AtomicUsize,
    log: Log,
}

impl CallObserver for Counts {
    fn on_recv(&self, _message: &mut dyn Any, wire_size: usize) -> Result<(), Status> {
        self.recv.fetch_add(1, Ordering::SeqCst);
        self.recv_bytes.fetch_add(wire_size, Ordering::SeqCst);
        Ok(())
    }

    fn on_send(
        &self,
        _message: &dyn Any,
        size: usize,
    ) -> Result<Option<Box<dyn Any + Send>>, Status> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.sent_bytes.fetch_add(size, Ordering::SeqCst);
        Ok(None)
    }

    fn on_end(&self, status: &Result<(), Status>, _trailers: &mut Metadata) {
        let code = status.as_ref().err().map_or(Code::Ok, Status::code);
        self.log.lock().unwrap().push(format!(
            "{:?} recv={} ({} B) sent={} ({} B) end={code:?}",
            self.kind.unwrap(),
            self.recv.load(Ordering::SeqCst),
            self.recv_bytes.load(Ordering::SeqCst),
            self.sent.load(Ordering::SeqCst),
            self.sent_bytes.load(Ordering::SeqCst),
        ));
    }
}

/// Registers a [`Counts`] on every call; on the server also moves every incoming
/// Point to the first feature's location and renames every outgoing Feature.
struct Observes {
    log: Log,
}

/// Changes messages: a received Point moves to the first feature, a sent Feature
/// is replaced by one named "renamed".
struct Rewrites;

impl CallObserver for Rewrites {
    fn on_recv(&self, message: &mut dyn Any, _wire_size: usize) -> Result<(), Status> {
        if let Some(point) = message.downcast_mut::<Point>() {
            *point = features()[0].location.unwrap();
        }
        Ok(())
    }

    fn on_send(
        &self,
        message: &dyn Any,
        _size: usize,
    ) -> Result<Option<Box<dyn Any + Send>>, Status> {
        Ok(message.downcast_ref::<Feature>().map(|f| {
            Box::new(Feature {
                name: "renamed".into(),
                location: f.location,
            }) as Box<dyn Any + Send>
        }))
    }
}

impl ServerInterceptor for Observes {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            call.observe(Counts {
                kind: Some(call.kind()),
                log: self.log.clone(),
                ..Counts::default()
            });
            call.observe(Rewrites);
            next.run(call).await
        })
    }
}

impl ClientInterceptor for Observes {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            call.observe(Counts {
                kind: Some(call.kind()),
                log: self.log.clone(),
                ..Counts::default()
            });
            next.run(call).await
        })
    }
}

/// The four kinds on routeguide: GetFeature, ListFeatures, RecordRoute (3 points)
/// and RouteChat (2 notes at one fresh place, so the second is answered with the
/// first). Returns what the client received.
async fn four_kinds(client: &RouteGuideStub, chat_at: i32) -> Vec<String> {
    let mut seen = Vec::new();
    let far = Point {
        latitude: 1,
        longitude: 1,
    };
    let feature = within(10, client.get_feature(far)).await.unwrap();
    seen.push(format!("feature {:?}", feature.get_ref().name));

    let all = Rectangle {
        lo: Some(Point {
            latitude: 0,
            longitude: -900_000_000,
        }),
        hi: Some(Point {
            latitude: 900_000_000,
            longitude: 0,
        }),
    };
    let mut listed = within(10, client.list_features(all)).await.unwrap();
    let mut names = Vec::new();
    while let Some(f) = within(10, listed.message()).await.unwrap() {
        names.push(f.name);
    }
    seen.push(format!("listed {names:?}"));

    let mut route = within(10, client.record_route(CallOptions::default()))
        .await
        .unwrap();
    for i in 0..3 {
        let p = Point {
            latitude: i,
            longitude: i,
        };
        within(10, route.send(&p)).await.unwrap();
    }
    let summary = within(10, route.close_and_recv()).await.unwrap();
    seen.push(format!(
        "route points={} features={}",
        summary.get_ref().point_count,
        summary.get_ref().feature_count
    ));

    let mut chat = within(10, client.route_chat(CallOptions::default()))
        .await
        .unwrap();
    let place = Some(Point {
        latitude: chat_at,
        longitude: chat_at,
    });
    for text in ["first", "second"] {
        let note = RouteNote {
            location: place,
            message: text.into(),
        };
        within(10, chat.send(&note)).await.unwrap();
    }
    within(10, chat.close_send()).await.unwrap();
    let mut notes = Vec::new();
    while let Some(note) = within(10, chat.message()).await.unwrap() {
        notes.push(note.message);
    }
    seen.push(format!("chat {notes:?}"));
    seen
}

#[tokio::test]
async fn server_observers_see_and_change_messages_of_all_four_kinds() {
    let log = Log::default();
    let observed = log.clone();
    let server = start(move |s| s.interceptor(Observes { log: observed })).await;
    let client = RouteGuideStub::new(channel(server.target()).await);
    let seen = four_kinds(&client, 11).await;
    // The Point that arrived far from any feature was moved onto the first one.
    // RouteChat's notes carry no Point of their own (only a location field), so
    // they are untouched; features sent back are all renamed.
    assert_eq!(
        seen,
        [
            "feature \"renamed\"",
            "listed [\"renamed\", \"renamed\", \"renamed\", \"renamed\", \"renamed\"]",
            "route points=3 features=3",
            "chat [\"first\"]",
        ]
    );
    let far = Point {
        latitude: 1,
        longitude: 1,
    };
    let point = prost::Message::encoded_len(&far);
    let rect = prost::Message::encoded_len(&Rectangle {
        lo: Some(Point {
            latitude: 0,
            longitude: -900_000_000,
        }),
        hi: Some(Point {
            latitude: 900_000_000,
            longitude: 0,
        }),
    });
    let renamed: usize = features()
        .iter()
        .map(|f| {
            prost::Message::encoded_len(&Feature {
                name: "renamed".into(),
                location: f.location,
            })
        })
        .sum();
    let renamed_first = prost::Message::encoded_len(&Feature {
        name: "renamed".into(),
        location: features()[0].location,
    });
    let points: usize = (0..3)
        .map(|i| {
            prost::Message::encoded_len(&Point {
                latitude: i,
                longitude: i,
            })
        })
        .sum();
    let note = |text: &str| {
        prost::Message::encoded_len(&RouteNote {
            location: Some(Point {
                latitude: 11,
                longitude: 11,
            }),
            message: text.into(),
        })
    };
    let log = lines(&log);
    assert_eq!(log.len(), 4, "{log:?}");
    // Counts is registered before Rewrites, so (outermost first in, innermost first
    // out) it sees requests before they are moved and responses after renaming.
    assert_eq!(
        log[0],
        format!("Unary recv=1 ({point} B) sent=1 ({renamed_first} B) end=Ok")
    );
    assert_eq!(
        log[1],
        format!("ServerStreaming recv=1 ({rect} B) sent=5 ({renamed} B) end=Ok")
    );
    assert!(
        log[2].starts_with(&format!("ClientStreaming recv=3 ({points} B) sent=1 (")),
        "{}",
        log[2]
    );
    assert_eq!(
        log[3],
        format!(
            "BidiStreaming recv=2 ({} B) sent=1 ({} B) end=Ok",
            note("first") + note("second"),
            note("first")
        )
    );
}

#[tokio::test]
async fn client_observers_see_messages_of_all_four_kinds() {
    let server = start(|s| s).await;
    let log = Log::default();
    let channel = Channel::builder(&server.target())
        .interceptor(Observes { log: log.clone() })
        .build()
        .unwrap();
    let client = RouteGuideStub::new(channel);
    let seen = four_kinds(&client, 12).await;
    assert_eq!(
        seen,
        [
            "feature \"\"",
            "listed [\"Berkshire Valley\", \"Patriots Path\", \"Bennett Road\", \"Old Mill\", \"Lake Ridge\"]",
            "route points=3 features=0",
            "chat [\"first\"]",
        ]
    );
    let log = lines(&log);
    assert_eq!(log.len(), 4, "{log:?}");
    let listed: usize = features().iter().map(prost::Message::encoded_len).sum();
    assert!(log[0].starts_with("Unary recv=1 ("), "{}", log[0]);
    assert!(log[0].ends_with("sent=1 (4 B) end=Ok"), "{}", log[0]);
    assert!(
        log[1].starts_with(&format!("ServerStreaming recv=5 ({listed} B) sent=1 (")),
        "{}",
        log[1]
    );
    assert!(log[1].ends_with("end=Ok"), "{}", log[1]);
    assert!(log[2].starts_with("ClientStreaming recv=1 ("), "{}", log[2]);
    assert!(log[2].contains(" sent=3 ("), "{}", log[2]);
    assert!(log[3].starts_with("BidiStreaming recv=1 ("), "{}", log[3]);
    assert!(log[3].contains(" sent=2 ("), "{}", log[3]);
}

#[tokio::test]
async fn client_chain_order_metadata_and_short_circuit() {
    let server = start(|s| s).await;
    let log = Log::default();
    let channel = Channel::builder(&server.target())
        .interceptor(Tracer {
            name: "a",
            log: log.clone(),
        })
        .interceptor(Tracer {
            name: "b",
            log: log.clone(),
        })
        .interceptor(ClientToken)
        .build()
        .unwrap();
    let client = TestServiceStub::new(channel);
    let reply = within(10, client.unary_call(echo_request())).await.unwrap();
    // The server echoes `x-echo`, which only the interceptor set.
    assert_eq!(reply.headers().get("x-echo"), Some("token=t0k3n"));
    let mut refused = echo_request();
    refused.metadata_mut().insert("x-refuse", "yes").unwrap();
    let err = within(10, client.unary_call(refused)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        lines(&log),
        [
            "a in /grpc.testing.TestService/UnaryCall Unary",
            "b in /grpc.testing.TestService/UnaryCall Unary",
            "b out Ok",
            "a out Ok",
            "a in /grpc.testing.TestService/UnaryCall Unary",
            "b in /grpc.testing.TestService/UnaryCall Unary",
            "b out FailedPrecondition",
            "a out FailedPrecondition",
        ]
    );
    // The refused call never reached the server: its handler ran once.
    assert_eq!(server.probe.finished.load(Ordering::SeqCst), 1);
}

/// Waits before running the rest of the chain, as a token refresh that stalls would.
struct Stalls(Duration);

impl ClientInterceptor for Stalls {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
            next.run(call).await
        })
    }
}

/// The call's deadline covers its interceptors (grpc-go runs them under the call's
/// context): one that stalls past it ends the call DEADLINE_EXCEEDED at the deadline,
/// and the time it took comes out of what the call has left.
#[tokio::test]
async fn client_interceptors_run_under_the_call_deadline() {
    let server = start(|s| s).await;
    let stalls = |wait| {
        let channel = Channel::builder(&server.target())
            .interceptor(Stalls(Duration::from_millis(wait)))
            .build()
            .unwrap();
        TestServiceStub::new(channel)
    };
    let timeout = |request: Request<SimpleRequest>, ms| request.timeout(Duration::from_millis(ms));
    let began = std::time::Instant::now();
    let err = within(10, stalls(5_000).unary_call(timeout(echo_request(), 300)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    // A stall inside the deadline leaves the call the rest of it.
    let reply = within(10, stalls(50).unary_call(timeout(echo_request(), 2_000))).await;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(server.probe.finished.load(Ordering::SeqCst), 1);
}

/// Adds `x-echo: token=...` to every call; refuses calls marked `x-refuse`.
struct ClientToken;

impl ClientInterceptor for ClientToken {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            if call.metadata().contains_key("x-refuse") {
                return Err(Status::failed_precondition("refused before sending"));
            }
            call.metadata_mut().insert("x-echo", "token=t0k3n")?;
            next.run(call).await
        })
    }
}

/// Answers from a "cache" without the network, or rewrites what came back.
struct ClientRewrites;

impl ClientInterceptor for ClientRewrites {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let request = call
                .request_mut()
                .and_then(|r| r.downcast_mut::<SimpleRequest>())
                .expect("a unary SimpleRequest");
            if request.response_size == 99 {
                call.set_response(SimpleResponse {
                    username: "cached".into(),
                    ..Default::default()
                });
                return Ok(());
            }
            request.response_size = 5;
            let result = next.run(call).await;
            call.headers_mut()
                .insert("x-client-header", "added")
                .unwrap();
            call.trailers_mut()
                .insert("x-client-trailer", "added")
                .unwrap();
            if let Some(r) = call
                .response_mut()
                .and_then(|r| r.downcast_mut::<SimpleResponse>())
            {
                r.username = format!("body of {}", r.payload.as_ref().unwrap().body.len());
            }
            match result {
                Err(status) if status.code() == Code::NotFound => Ok(()),
                other => other,
            }
        })
    }
}

#[tokio::test]
async fn client_changes_request_response_headers_trailers_and_status() {
    let server = start(|s| s).await;
    let channel = Channel::builder(&server.target())
        .interceptor(ClientRewrites)
        .build()
        .unwrap();
    let client = TestServiceStub::new(channel);
    let reply = within(10, client.unary_call(echo_request())).await.unwrap();
    // The request asked for 3 bytes; the interceptor made it 5.
    assert_eq!(reply.get_ref().payload.as_ref().unwrap().body.len(), 5);
    assert_eq!(reply.get_ref().username, "body of 5");
    assert_eq!(reply.headers().get("x-client-header"), Some("added"));
    assert_eq!(reply.trailers().get("x-client-trailer"), Some("added"));

    // A NOT_FOUND turned into OK without a response is still an error: a unary
    // call must have one.
    let not_found = SimpleRequest {
        response_status: Some(EchoStatus {
            code: Code::NotFound as i32,
            message: "nope".into(),
        }),
        ..Default::default()
    };
    let err = within(10, client.unary_call(not_found)).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");

    // Served from the "cache": a channel to a port nobody listens on still answers.
    let dead = Channel::builder("http://127.0.0.1:1")
        .interceptor(ClientRewrites)
        .build()
        .unwrap();
    let cached = SimpleRequest {
        response_size: 99,
        ..Default::default()
    };
    let reply = within(10, TestServiceStub::new(dead).unary_call(cached))
        .await
        .unwrap();
    assert_eq!(reply.get_ref().username, "cached");
}

/// Answers OK without running the handler or setting a response.
struct SkipsHandler;

impl ServerInterceptor for SkipsHandler {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        _next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let _ = call;
            Ok(())
        })
    }
}

#[tokio::test]
async fn server_ok_without_a_handler_or_response_is_internal() {
    let server = start(|s| s.interceptor(SkipsHandler)).await;
    let client = TestServiceStub::new(channel(server.target()).await);
    let err = within(10, client.unary_call(echo_request()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(server.probe.dropped.load(Ordering::SeqCst), 0);
}

/// The examples' interceptors: the token check refuses a call without the token
/// (its handler never runs) and the latency counter counts what got through.
#[tokio::test]
async fn example_interceptors_work_together() {
    use rgrpc_examples::interceptors::{AttachToken, BearerAuth, LatencyCounter, Logger};
    let server = start(|s| {
        s.interceptor(Logger).interceptor(BearerAuth {
            token: "tok".into(),
        })
    })
    .await;
    let latency = LatencyCounter::default();
    let with_token = Channel::builder(&server.target())
        .interceptor(latency.clone())
        .interceptor(AttachToken {
            token: "tok".into(),
        })
        .build()
        .unwrap();
    let stub = TestServiceStub::new(with_token);
    within(10, stub.unary_call(echo_request())).await.unwrap();
    let mut request = echo_request();
    request.metadata_mut().insert("x-echo", "ok").unwrap();
    within(10, stub.unary_call(request)).await.unwrap();
    let without = TestServiceStub::new(channel(server.target()).await);
    let err = within(10, without.unary_call(echo_request()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        err.metadata().get("www-authenticate"),
        Some("Bearer realm=\"example\"")
    );
    assert_eq!(server.probe.finished.load(Ordering::SeqCst), 2);
    let counted = latency.snapshot();
    let unary = counted["/grpc.testing.TestService/UnaryCall"];
    assert_eq!((unary.calls, unary.errors), (2, 0));
    assert!(unary.max > std::time::Duration::ZERO && unary.max <= unary.total);
}
