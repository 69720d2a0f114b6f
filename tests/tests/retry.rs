//! Retries and hedging (gRFC A6) end to end on 127.0.0.1, against a server whose
//! handlers fail on purpose: the first N attempts of a call fail with a chosen code,
//! optionally with a pushback trailer; hedged calls have a slow first attempt. The
//! server records every attempt (with its `grpc-previous-rpc-attempts`) and every
//! attempt that was cancelled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rgrpc_runtime::{
    BoxFuture, CallOptions, Channel, ClientCall, ClientInterceptor, ClientNext, Code, Metadata,
    RecvStream, Request, RpcInfo, SendStream, Server, ServerContext, StatsEvent, StatsHandler,
    Status,
};
use rgrpc_tests::grpc_testing::{
    Payload, SimpleRequest, SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse, TestServiceServer, TestServiceStub,
    register_test_service_server,
};
use rgrpc_tests::{no_leaks, wait_until, within};

/// What the server saw of one call (keyed by its `x-call` header).
#[derive(Debug, Default, Clone)]
struct Seen {
    /// `grpc-previous-rpc-attempts` of each attempt, in arrival order (None: absent).
    attempts: Vec<Option<u32>>,
    /// Attempts whose handler was dropped before it finished (cancelled).
    cancelled: usize,
    /// Request messages each attempt received (streaming calls).
    messages: Vec<usize>,
}

#[derive(Clone, Default)]
struct Flaky {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

/// A request's instructions, in its payload body: `fail=N` (the first N attempts fail),
/// `code=C` (with code C, default UNAVAILABLE), `pushback=V` (the failures carry
/// `grpc-retry-pushback-ms: V`), `slow_first=MS` (attempt 0 sleeps MS before answering),
/// `slow=MS` (every attempt does), `early=1` (a streaming handler fails right after the
/// first message instead of reading them all). A streaming handler reads its request
/// (the instructions are in the first message), then sleeps as `slow_first` says;
/// under `slow_first` a client-streaming answer's size counts its attempt in millions.
fn instructions(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Sleeps as `slow_first` and `slow` say for attempt `n`.
async fn slow(body: &[u8], n: u32) {
    let how = instructions(body);
    let ms = match (how.get("slow_first"), how.get("slow")) {
        (Some(ms), _) if n == 0 => ms,
        (_, Some(ms)) => ms,
        _ => return,
    };
    tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
}

struct CancelGuard {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    call: String,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            let mut seen = self.seen.lock().unwrap();
            seen.entry(self.call.clone()).or_default().cancelled += 1;
        }
    }
}

impl Flaky {
    /// Records the attempt; its number (0 for the first).
    fn attempt(&self, ctx: &ServerContext) -> (String, u32, CancelGuard) {
        let call = ctx.metadata().get("x-call").unwrap_or("").to_owned();
        let previous = ctx
            .metadata()
            .get("grpc-previous-rpc-attempts")
            .map(|v| v.parse().expect("grpc-previous-rpc-attempts is an integer"));
        let mut seen = self.seen.lock().unwrap();
        let entry = seen.entry(call.clone()).or_default();
        entry.attempts.push(previous);
        let n = entry.attempts.len() as u32 - 1;
        let guard = CancelGuard {
            seen: self.seen.clone(),
            call: call.clone(),
            done: false,
        };
        (call, n, guard)
    }

    fn seen(&self, call: &str) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .get(call)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the instructions fail attempt `n`.
    fn fails(&self, body: &[u8], n: u32) -> bool {
        self.outcome(body, n).is_err()
    }

    /// The outcome the instructions give attempt `n`.
    fn outcome(&self, body: &[u8], n: u32) -> Result<(), Status> {
        let how = instructions(body);
        let fail: u32 = how.get("fail").map_or(0, |v| v.parse().unwrap());
        if n >= fail {
            return Ok(());
        }
        let code = match how.get("code").map(String::as_str) {
            Some("INTERNAL") => Code::Internal,
            Some("ABORTED") => Code::Aborted,
            _ => Code::Unavailable,
        };
        let mut status = Status::new(code, format!("attempt {n} fails on purpose"));
        if let Some(pushback) = how.get("pushback") {
            let mut trailers = Metadata::new();
            trailers.insert("grpc-retry-pushback-ms", pushback).unwrap();
            status.metadata_mut().merge(trailers);
        }
        Err(status)
    }
}

impl TestServiceServer for Flaky {
    async fn unary_call(
        &self,
        ctx: &ServerContext,
        request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        let (_call, n, mut guard) = self.attempt(ctx);
        let body = request.payload.map(|p| p.body).unwrap_or_default();
        slow(&body, n).await;
        let outcome = self.outcome(&body, n);
        guard.done = true;
        outcome?;
        Ok(SimpleResponse {
            payload: Some(Payload {
                body: format!("attempt {n}").into_bytes(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn streaming_output_call(
        &self,
        ctx: &ServerContext,
        request: StreamingOutputCallRequest,
        mut responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let (_call, n, mut guard) = self.attempt(ctx);
        let body = request.payload.map(|p| p.body).unwrap_or_default();
        slow(&body, n).await;
        let outcome = self.outcome(&body, n);
        guard.done = true;
        outcome?;
        let response = StreamingOutputCallResponse {
            payload: Some(Payload {
                body: format!("attempt {n}").into_bytes(),
                ..Default::default()
            }),
        };
        responses.send(&response).await?;
        responses.send(&response).await
    }

    async fn streaming_input_call(
        &self,
        ctx: &ServerContext,
        mut requests: RecvStream<StreamingInputCallRequest>,
    ) -> Result<StreamingInputCallResponse, Status> {
        let (call, n, mut guard) = self.attempt(ctx);
        let mut count = 0;
        let mut total = 0;
        let mut first_body = Vec::new();
        while let Some(request) = requests.message().await? {
            let body = request.payload.map(|p| p.body).unwrap_or_default();
            if count == 0 {
                first_body = body.clone();
            }
            total += body.len();
            count += 1;
            if count == 1
                && instructions(&first_body).contains_key("early")
                && self.fails(&first_body, n)
            {
                break;
            }
        }
        self.seen
            .lock()
            .unwrap()
            .entry(call)
            .or_default()
            .messages
            .push(count);
        slow(&first_body, n).await;
        let outcome = self.outcome(&first_body, n);
        guard.done = true;
        outcome?;
        if instructions(&first_body).contains_key("slow_first") {
            total += n as usize * 1_000_000;
        }
        Ok(StreamingInputCallResponse {
            aggregated_payload_size: total as i32,
        })
    }

    async fn full_duplex_call(
        &self,
        ctx: &ServerContext,
        mut requests: RecvStream<StreamingOutputCallRequest>,
        mut responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let (call, n, mut guard) = self.attempt(ctx);
        let mut count = 0;
        let mut first_body = Vec::new();
        while let Some(request) = requests.message().await? {
            if count == 0 {
                first_body = request.payload.map(|p| p.body).unwrap_or_default();
            }
            count += 1;
            if count == 1
                && instructions(&first_body).contains_key("early")
                && self.fails(&first_body, n)
            {
                break;
            }
        }
        self.seen
            .lock()
            .unwrap()
            .entry(call)
            .or_default()
            .messages
            .push(count);
        slow(&first_body, n).await;
        let outcome = self.outcome(&first_body, n);
        guard.done = true;
        outcome?;
        let response = StreamingOutputCallResponse {
            payload: Some(Payload {
                body: format!("attempt {n}").into_bytes(),
                ..Default::default()
            }),
        };
        responses.send(&response).await?;
        Ok(())
    }
}

struct Fixture {
    flaky: Flaky,
    target: String,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

async fn serve() -> Fixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let flaky = Flaky::default();
    let mut server = Server::new();
    register_test_service_server(&mut server, flaky.clone());
    let serving = tokio::spawn(server.serve_with_incoming(listener));
    Fixture {
        flaky,
        target,
        serving,
    }
}

fn channel(fixture: &Fixture, config: &str) -> TestServiceStub {
    TestServiceStub::new(
        Channel::builder(&fixture.target)
            .service_config(config)
            .unwrap()
            .build()
            .unwrap(),
    )
}

/// A retry policy for TestService: `attempts` in all, 10-20 ms backoff, retrying `codes`.
fn retry_config(attempts: u32, codes: &str) -> String {
    format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "grpc.testing.TestService"}}],
            "retryPolicy": {{"maxAttempts": {attempts}, "initialBackoff": "0.01s",
            "maxBackoff": "0.02s", "backoffMultiplier": 2,
            "retryableStatusCodes": [{codes}]}}}}]}}"#
    )
}

fn unary(call: &str, body: &str) -> Request<SimpleRequest> {
    let mut metadata = Metadata::new();
    metadata.insert("x-call", call).unwrap();
    Request::with_options(
        SimpleRequest {
            payload: Some(Payload {
                body: body.as_bytes().to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        },
        CallOptions::new()
            .with_metadata(metadata)
            .with_timeout(Duration::from_secs(10)),
    )
}

fn answer(response: &rgrpc_runtime::Response<SimpleResponse>) -> String {
    String::from_utf8_lossy(&response.get_ref().payload.as_ref().unwrap().body).into_owned()
}

#[tokio::test]
async fn a_unary_call_is_retried_until_it_succeeds_with_the_attempt_count_on_the_wire() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(4, r#""UNAVAILABLE""#));
        let response = within(10, client.unary_call(unary("a", "fail=2")))
            .await
            .expect("the third attempt succeeds");
        assert_eq!(answer(&response), "attempt 2");
        // A6: absent on the first attempt, then 1, 2.
        assert_eq!(
            fixture.flaky.seen("a").attempts,
            vec![None, Some(1), Some(2)]
        );
    })
    .await;
}

#[tokio::test]
async fn max_attempts_bounds_the_attempts_and_the_last_status_is_returned() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(3, r#""UNAVAILABLE""#));
        let err = within(10, client.unary_call(unary("b", "fail=9")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.message(), "attempt 2 fails on purpose");
        assert_eq!(fixture.flaky.seen("b").attempts.len(), 3);
        // Above 5 counts as 5 (A6 "Limits on Retries and Hedges").
        let client = channel(&fixture, &retry_config(9, r#""UNAVAILABLE""#));
        let _ = within(10, client.unary_call(unary("c", "fail=9"))).await;
        assert_eq!(fixture.flaky.seen("c").attempts.len(), 5);
    })
    .await;
}

#[tokio::test]
async fn codes_that_are_not_retryable_are_not_retried() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(4, r#""UNAVAILABLE""#));
        let err = within(10, client.unary_call(unary("d", "fail=1,code=INTERNAL")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert_eq!(fixture.flaky.seen("d").attempts.len(), 1);
        // Without a policy nothing is retried either.
        let plain = TestServiceStub::new(Channel::lazy(&fixture.target).unwrap());
        let err = within(10, plain.unary_call(unary("e", "fail=1")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(fixture.flaky.seen("e").attempts.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn pushback_delays_the_next_attempt_or_stops_retries() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(4, r#""UNAVAILABLE""#));
        let started = Instant::now();
        within(10, client.unary_call(unary("f", "fail=1,pushback=300")))
            .await
            .expect("retried after the pushback");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(fixture.flaky.seen("f").attempts.len(), 2);
        for stop in ["-1", "soon"] {
            let call = format!("g{stop}");
            let err = within(
                10,
                client.unary_call(unary(&call, &format!("fail=3,pushback={stop}"))),
            )
            .await
            .unwrap_err();
            assert_eq!(err.code(), Code::Unavailable);
            assert_eq!(
                fixture.flaky.seen(&call).attempts.len(),
                1,
                "pushback {stop}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_throttle_stops_retries_when_too_many_calls_fail() {
    no_leaks(async {
        let fixture = serve().await;
        let config = r#"{"methodConfig": [{"name": [{"service": "grpc.testing.TestService"}],
            "retryPolicy": {"maxAttempts": 2, "initialBackoff": "0.001s", "maxBackoff": "0.001s",
            "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}],
            "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.5}}"#;
        let client = channel(&fixture, config);
        // As grpc-go: every failed attempt whose code is retryable takes a token, and a
        // retry needs more than maxTokens / 2 left after it. 4 -> 3 (retried) -> 2 (not).
        let mut attempts = Vec::new();
        for i in 0..4 {
            let call = format!("n{i}");
            let _ = within(10, client.unary_call(unary(&call, "fail=9"))).await;
            attempts.push(fixture.flaky.seen(&call).attempts.len());
        }
        assert_eq!(attempts, vec![2, 1, 1, 1]);
        // Successes refill it, 0.5 each, up to 4: then a failing call is retried again.
        for i in 0..8 {
            within(10, client.unary_call(unary(&format!("o{i}"), "fail=0")))
                .await
                .unwrap();
        }
        let _ = within(10, client.unary_call(unary("p", "fail=9"))).await;
        assert_eq!(fixture.flaky.seen("p").attempts.len(), 2);
        // Full again (8 successes). A6: a failure also counts when its pushback says
        // stop, whatever its code: two non-retryable INTERNAL failures with pushback -1
        // take 4 -> 3 -> 2, and a retryable failure is then not retried.
        for i in 0..8 {
            within(10, client.unary_call(unary(&format!("r{i}"), "fail=0")))
                .await
                .unwrap();
        }
        for i in 0..2 {
            let call = format!("s{i}");
            let _ = within(
                10,
                client.unary_call(unary(&call, "fail=9,code=INTERNAL,pushback=-1")),
            )
            .await;
            assert_eq!(fixture.flaky.seen(&call).attempts.len(), 1);
        }
        let _ = within(10, client.unary_call(unary("t", "fail=9"))).await;
        assert_eq!(fixture.flaky.seen("t").attempts.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_deadline_spans_every_attempt() {
    no_leaks(async {
        let fixture = serve().await;
        let config = r#"{"methodConfig": [{"name": [{"service": "grpc.testing.TestService"}],
            "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.4s", "maxBackoff": "0.4s",
            "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#;
        let client = channel(&fixture, config);
        let request = unary("q", "fail=9,pushback=400").timeout(Duration::from_millis(600));
        let started = Instant::now();
        let err = within(10, client.unary_call(request)).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(900), "{took:?}");
        // 0 ms and 400 ms: the third attempt would start after the deadline.
        assert_eq!(fixture.flaky.seen("q").attempts.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_request_larger_than_the_replay_buffer_is_not_retried() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(3, r#""UNAVAILABLE""#));
        // 300 KiB: past the 256 KiB a call may keep for another attempt (A6 buffering).
        let mut body = "fail=1,".to_owned();
        body.push_str(&"x".repeat(300 * 1024));
        let err = within(10, client.unary_call(unary("r", &body)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(fixture.flaky.seen("r").attempts.len(), 1);
        // A small one on the same channel is retried.
        within(10, client.unary_call(unary("s", "fail=1")))
            .await
            .expect("retried");
        assert_eq!(fixture.flaky.seen("s").attempts.len(), 2);
    })
    .await;
}

fn options(call: &str, timeout: Duration) -> CallOptions {
    let mut metadata = Metadata::new();
    metadata.insert("x-call", call).unwrap();
    CallOptions::new()
        .with_metadata(metadata)
        .with_timeout(timeout)
}

fn input(body: &[u8]) -> StreamingInputCallRequest {
    StreamingInputCallRequest {
        payload: Some(Payload {
            body: body.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn output(body: &str) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        payload: Some(Payload {
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_client_streaming_call_is_retried_and_the_server_sees_every_message_again() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(4, r#""UNAVAILABLE""#));
        // The handler reads every message, then the first two attempts fail.
        let mut call = client
            .streaming_input_call(options("cs", Duration::from_secs(10)))
            .await
            .unwrap();
        for body in [&b"fail=2"[..], b"second", b"third"] {
            call.send(&input(body)).await.unwrap();
        }
        let response = within(10, call.close_and_recv())
            .await
            .expect("the third attempt succeeds");
        assert_eq!(response.get_ref().aggregated_payload_size, 6 + 6 + 5);
        let seen = fixture.flaky.seen("cs");
        assert_eq!(seen.attempts, vec![None, Some(1), Some(2)]);
        // Every attempt got the whole request again, and its end.
        assert_eq!(seen.messages, vec![3, 3, 3]);

        // The attempt fails after the first message, while the client is still
        // sending: what it sent after is kept and replayed too.
        let mut call = client
            .streaming_input_call(options("cs-early", Duration::from_secs(10)))
            .await
            .unwrap();
        call.send(&input(b"fail=1,early=1")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        call.send(&input(b"late")).await.unwrap();
        let response = within(10, call.close_and_recv()).await.expect("retried");
        assert_eq!(response.get_ref().aggregated_payload_size, 14 + 4);
        let seen = fixture.flaky.seen("cs-early");
        assert_eq!(seen.attempts, vec![None, Some(1)]);
        assert_eq!(seen.messages, vec![1, 2]);
    })
    .await;
}

#[tokio::test]
async fn a_bidi_call_is_retried_while_it_sends_and_the_new_attempt_gets_the_replay() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(3, r#""UNAVAILABLE""#));
        let call = client
            .full_duplex_call(options("bidi", Duration::from_secs(10)))
            .await
            .unwrap();
        let (mut sink, mut responses) = call.split();
        // The first attempt fails on the first message; the sender goes on, from
        // another task, while the receiver's read retries the call.
        let sending = tokio::spawn(async move {
            sink.send(&output("fail=1,early=1")).await?;
            tokio::time::sleep(Duration::from_millis(150)).await;
            sink.send(&output("two")).await?;
            sink.send(&output("three")).await?;
            sink.close_send().await
        });
        let first = within(10, responses.message()).await.expect("retried");
        assert!(first.is_some());
        assert_eq!(within(10, responses.message()).await.unwrap(), None);
        within(10, sending).await.unwrap().unwrap();
        let seen = fixture.flaky.seen("bidi");
        assert_eq!(seen.attempts, vec![None, Some(1)]);
        assert_eq!(seen.messages, vec![1, 3]);

        // Failing after the close: the replay closes the new attempt too.
        let mut call = client
            .full_duplex_call(options("bidi-closed", Duration::from_secs(10)))
            .await
            .unwrap();
        call.send(&output("fail=2")).await.unwrap();
        call.send(&output("more")).await.unwrap();
        call.close_send().await.unwrap();
        assert!(within(10, call.message()).await.unwrap().is_some());
        assert_eq!(within(10, call.message()).await.unwrap(), None);
        let seen = fixture.flaky.seen("bidi-closed");
        assert_eq!(seen.attempts, vec![None, Some(1), Some(2)]);
        assert_eq!(seen.messages, vec![2, 2, 2]);
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_sent_more_than_the_per_call_buffer_commits_and_is_not_retried() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(3, r#""UNAVAILABLE""#));
        // 5 x 64 KiB: past the 256 KiB a call may keep (A6 buffering). The call
        // commits to its first attempt, which fails.
        let mut call = client
            .streaming_input_call(options("big", Duration::from_secs(10)))
            .await
            .unwrap();
        let mut first = b"fail=1,".to_vec();
        first.resize(64 * 1024, b'x');
        call.send(&input(&first)).await.unwrap();
        for _ in 0..4 {
            call.send(&input(&[b'y'; 64 * 1024])).await.unwrap();
        }
        let err = within(10, call.close_and_recv()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        let seen = fixture.flaky.seen("big");
        assert_eq!(seen.attempts.len(), 1);
        assert_eq!(seen.messages, vec![5]);
        // Under the bound (3 x 64 KiB) the same call is retried.
        let mut call = client
            .streaming_input_call(options("fits", Duration::from_secs(10)))
            .await
            .unwrap();
        call.send(&input(&first)).await.unwrap();
        for _ in 0..2 {
            call.send(&input(&[b'y'; 64 * 1024])).await.unwrap();
        }
        within(10, call.close_and_recv()).await.expect("retried");
        assert_eq!(fixture.flaky.seen("fits").messages, vec![3, 3]);
    })
    .await;
}

#[tokio::test]
async fn a_retried_stream_ends_at_its_deadline() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &retry_config(5, r#""UNAVAILABLE""#));
        let started = Instant::now();
        let mut call = client
            .streaming_input_call(options("late", Duration::from_millis(600)))
            .await
            .unwrap();
        call.send(&input(b"fail=9,pushback=400")).await.unwrap();
        let err = within(10, call.close_and_recv()).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(900), "{took:?}");
        // 0 ms and 400 ms: the third attempt would start after the deadline.
        assert_eq!(fixture.flaky.seen("late").attempts.len(), 2);
    })
    .await;
}

/// A hedging policy for TestService: `attempts` in all, `delay` apart, `non_fatal`.
fn hedging_config(attempts: u32, delay: &str, non_fatal: &str, throttling: &str) -> String {
    format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "grpc.testing.TestService"}}],
            "hedgingPolicy": {{"maxAttempts": {attempts}, "hedgingDelay": "{delay}",
            "nonFatalStatusCodes": [{non_fatal}]}}}}]{throttling}}}"#
    )
}

#[tokio::test]
async fn a_hedged_call_returns_the_fastest_answer_and_cancels_the_others() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &hedging_config(3, "0.3s", r#""UNAVAILABLE""#, ""));
        // Attempt 0 takes 5 s; attempt 1, sent 300 ms later, answers at once.
        let started = Instant::now();
        let response = within(10, client.unary_call(unary("h", "slow_first=5000")))
            .await
            .expect("the hedge answers");
        assert_eq!(answer(&response), "attempt 1");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{took:?}");
        let seen = fixture.flaky.seen("h");
        assert_eq!(seen.attempts, vec![None, Some(1)]);
        // The slow attempt was cancelled: its handler was dropped.
        wait_until(5, || fixture.flaky.seen("h").cancelled == 1).await;

        // Server streaming too: the winner's messages, the loser cancelled.
        let mut responses = client
            .streaming_output_call(Request::with_options(
                output("slow_first=5000"),
                options("hs", Duration::from_secs(10)),
            ))
            .await
            .unwrap();
        let first = within(10, responses.message()).await.unwrap().unwrap();
        assert_eq!(first.payload.unwrap().body, b"attempt 1");
        assert!(within(10, responses.message()).await.unwrap().is_some());
        assert_eq!(within(10, responses.message()).await.unwrap(), None);
        wait_until(5, || fixture.flaky.seen("hs").cancelled == 1).await;
        assert_eq!(fixture.flaky.seen("hs").attempts.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_hedged_client_streaming_call_returns_the_fastest_answer_and_both_saw_every_message() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &hedging_config(3, "0.2s", r#""UNAVAILABLE""#, ""));
        // Attempt 0 reads the request, then takes 5 s; attempt 1, sent 200 ms later with
        // the request replayed, answers at once.
        let started = Instant::now();
        let mut call = client
            .streaming_input_call(options("hcs", Duration::from_secs(10)))
            .await
            .unwrap();
        for body in [&b"slow_first=5000"[..], b"two", b"three"] {
            call.send(&input(body)).await.unwrap();
        }
        let response = within(10, call.close_and_recv())
            .await
            .expect("the hedge answers");
        // Attempt 1's answer (its number in millions), over the whole request.
        assert_eq!(
            response.get_ref().aggregated_payload_size,
            1_000_000 + 15 + 3 + 5
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{took:?}");
        let seen = fixture.flaky.seen("hcs");
        assert_eq!(seen.attempts, vec![None, Some(1)]);
        // Both attempts got every message and the close.
        assert_eq!(seen.messages, vec![3, 3]);
        // The slow attempt was cancelled: its handler was dropped.
        wait_until(5, || fixture.flaky.seen("hcs").cancelled == 1).await;
    })
    .await;
}

#[tokio::test]
async fn a_hedged_bidi_call_sends_later_messages_to_every_attempt() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &hedging_config(3, "0.2s", r#""UNAVAILABLE""#, ""));
        let started = Instant::now();
        let call = client
            .full_duplex_call(options("hbidi", Duration::from_secs(10)))
            .await
            .unwrap();
        let (mut sink, mut responses) = call.split();
        // The sender, in another task, goes on once the server has seen the second
        // attempt: its later messages must reach both attempts.
        let flaky = fixture.flaky.clone();
        let sending = tokio::spawn(async move {
            sink.send(&output("slow_first=5000")).await?;
            wait_until(5, || flaky.seen("hbidi").attempts.len() == 2).await;
            sink.send(&output("two")).await?;
            sink.send(&output("three")).await?;
            sink.close_send().await
        });
        let first = within(10, responses.message())
            .await
            .expect("the hedge answers")
            .expect("a response");
        assert_eq!(first.payload.unwrap().body, b"attempt 1");
        assert_eq!(within(10, responses.message()).await.unwrap(), None);
        within(10, sending).await.unwrap().unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{took:?}");
        let seen = fixture.flaky.seen("hbidi");
        assert_eq!(seen.attempts, vec![None, Some(1)]);
        assert_eq!(seen.messages, vec![3, 3]);
        wait_until(5, || fixture.flaky.seen("hbidi").cancelled == 1).await;
    })
    .await;
}

#[tokio::test]
async fn a_hedged_stream_past_the_buffer_limit_commits_to_its_oldest_attempt() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &hedging_config(3, "0.3s", r#""UNAVAILABLE""#, ""));
        // Attempt 0 takes 1.5 s to answer; attempt 1 goes at 300 ms, attempt 2 would
        // at 600 ms. Once both run, the request passes the 256 KiB a call may keep:
        // no attempt has response headers, so the call commits to the oldest, the
        // other is cancelled, and no more hedges go.
        let mut call = client
            .streaming_input_call(options("hbig", Duration::from_secs(10)))
            .await
            .unwrap();
        let mut first = b"slow_first=1500,".to_vec();
        first.resize(64 * 1024, b'x');
        call.send(&input(&first)).await.unwrap();
        wait_until(5, || fixture.flaky.seen("hbig").attempts.len() == 2).await;
        for _ in 0..4 {
            call.send(&input(&[b'y'; 64 * 1024])).await.unwrap();
        }
        let response = within(10, call.close_and_recv())
            .await
            .expect("the oldest attempt answers");
        // Attempt 0's answer (no millions), over all five messages.
        assert_eq!(response.get_ref().aggregated_payload_size, 5 * 64 * 1024);
        let seen = fixture.flaky.seen("hbig");
        assert_eq!(seen.attempts, vec![None, Some(1)]);
        // Attempt 1 was reset while it read: it never finished its request.
        assert_eq!(seen.messages, vec![5]);
        assert_eq!(seen.cancelled, 1);
    })
    .await;
}

#[tokio::test]
async fn a_fatal_status_ends_a_hedged_call_at_once_and_a_non_fatal_one_sends_the_next() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &hedging_config(3, "1s", r#""UNAVAILABLE""#, ""));
        let started = Instant::now();
        let err = within(
            10,
            client.unary_call(unary("fatal", "fail=9,code=INTERNAL")),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(fixture.flaky.seen("fatal").attempts.len(), 1);
        // Non-fatal: each failure sends the next attempt at once, not after the 1 s
        // delay; the last status is the call's.
        let started = Instant::now();
        let err = within(10, client.unary_call(unary("nonfatal", "fail=9")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.message(), "attempt 2 fails on purpose");
        assert!(started.elapsed() < Duration::from_millis(900));
        assert_eq!(
            fixture.flaky.seen("nonfatal").attempts,
            vec![None, Some(1), Some(2)]
        );
        // A pushback that says stop: no more hedges.
        let err = within(10, client.unary_call(unary("stop", "fail=9,pushback=-1")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(fixture.flaky.seen("stop").attempts.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_throttle_stops_hedges_when_too_many_attempts_fail() {
    no_leaks(async {
        let fixture = serve().await;
        let throttling = r#", "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.5}"#;
        let config = hedging_config(3, "1s", r#""UNAVAILABLE""#, throttling);
        let client = channel(&fixture, &config);
        // Each non-fatal failure takes a token; a hedge needs more than 2 left.
        // 4 -> 3 (hedged) -> 2 (no more); then 2 -> 1, 1 -> 0: the first attempt only.
        let mut attempts = Vec::new();
        for i in 0..3 {
            let call = format!("t{i}");
            let started = Instant::now();
            let err = within(10, client.unary_call(unary(&call, "fail=9")))
                .await
                .unwrap_err();
            // Ended by the last failure, not by the deadline.
            assert_eq!(err.code(), Code::Unavailable, "{err:?}");
            assert!(started.elapsed() < Duration::from_secs(1));
            attempts.push(fixture.flaky.seen(&call).attempts.len());
        }
        assert_eq!(attempts, vec![2, 1, 1]);
    })
    .await;
}

#[tokio::test]
async fn the_deadline_ends_every_hedged_attempt() {
    no_leaks(async {
        let fixture = serve().await;
        let client = channel(&fixture, &hedging_config(3, "0.1s", r#""UNAVAILABLE""#, ""));
        // Each failure's pushback puts the next hedge 400 ms later: the third would go
        // at 800 ms, after the 600 ms deadline, which ends the call while it waits.
        let request = unary("hp", "fail=9,pushback=400").timeout(Duration::from_millis(600));
        let started = Instant::now();
        let err = within(10, client.unary_call(request)).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(750), "{took:?}");
        assert_eq!(fixture.flaky.seen("hp").attempts.len(), 2);
        // Three slow attempts in flight: the deadline ends them all.
        let request = unary("hd", "slow=5000").timeout(Duration::from_millis(500));
        let started = Instant::now();
        let err = within(10, client.unary_call(request)).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(900), "{took:?}");
        assert_eq!(
            fixture.flaky.seen("hd").attempts,
            vec![None, Some(1), Some(2)]
        );
        wait_until(5, || fixture.flaky.seen("hd").cancelled == 3).await;
    })
    .await;
}

/// Records the client's stats events: (call id, attempt, event).
#[derive(Default)]
struct Attempts {
    events: Mutex<Vec<(u64, u64, u32, String)>>,
}

impl StatsHandler for Attempts {
    fn handle(&self, rpc: &RpcInfo<'_>, event: &StatsEvent<'_>) {
        let event = match event {
            StatsEvent::Begin { .. } => "Begin".to_owned(),
            StatsEvent::End { status, .. } => format!(
                "End {:?}",
                status.as_ref().err().map_or(Code::Ok, |s| s.code())
            ),
            _ => return,
        };
        let mut events = self.events.lock().unwrap();
        events.push((rpc.id, rpc.call_id, rpc.attempt, event));
    }
}

/// Counts the calls the interceptor sees.
struct CountCalls(Arc<AtomicUsize>);

impl ClientInterceptor for CountCalls {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        next.run(call)
    }
}

#[tokio::test]
async fn stats_see_every_attempt_and_interceptors_the_call_once() {
    no_leaks(async {
        let fixture = serve().await;
        let stats = Arc::new(Attempts::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let build = |config: &str| {
            TestServiceStub::new(
                Channel::builder(&fixture.target)
                    .service_config(config)
                    .unwrap()
                    .stats_handler(stats.clone())
                    .interceptor(CountCalls(calls.clone()))
                    .build()
                    .unwrap(),
            )
        };
        let take = || std::mem::take(&mut *stats.events.lock().unwrap());
        let client = build(&retry_config(4, r#""UNAVAILABLE""#));
        within(10, client.unary_call(unary("st", "fail=2")))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        let events = take();
        let call_id = events[0].0;
        let shown: Vec<(u32, &str)> = events.iter().map(|e| (e.2, e.3.as_str())).collect();
        assert_eq!(
            shown,
            vec![
                (0, "Begin"),
                (0, "End Unavailable"),
                (1, "Begin"),
                (1, "End Unavailable"),
                (2, "Begin"),
                (2, "End Ok"),
            ]
        );
        assert!(events.iter().all(|e| e.1 == call_id), "{events:?}");
        let mut ids: Vec<u64> = events.iter().map(|e| e.0).collect();
        ids.dedup();
        assert_eq!(ids.len(), 3, "one id per attempt: {events:?}");

        // A retried stream: the same, per attempt.
        let mut call = client
            .streaming_input_call(options("st-stream", Duration::from_secs(10)))
            .await
            .unwrap();
        call.send(&input(b"fail=1")).await.unwrap();
        within(10, call.close_and_recv()).await.unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        let shown: Vec<(u32, String)> = take().into_iter().map(|e| (e.2, e.3)).collect();
        assert_eq!(
            shown,
            vec![
                (0, "Begin".to_owned()),
                (0, "End Unavailable".to_owned()),
                (1, "Begin".to_owned()),
                (1, "End Ok".to_owned()),
            ]
        );

        // A hedge: the loser ends CANCELLED.
        let client = build(&hedging_config(2, "0.2s", r#""UNAVAILABLE""#, ""));
        within(10, client.unary_call(unary("st-hedge", "slow_first=3000")))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        let mut shown: Vec<(u32, String)> = take().into_iter().map(|e| (e.2, e.3)).collect();
        shown.sort();
        assert_eq!(
            shown,
            vec![
                (0, "Begin".to_owned()),
                (0, "End Cancelled".to_owned()),
                (1, "Begin".to_owned()),
                (1, "End Ok".to_owned()),
            ]
        );
    })
    .await;
}
