//! Retries and hedging (gRFC A6) end to end on 127.0.0.1, against a server whose
//! handlers fail on purpose: the first N attempts of a call fail with a chosen code,
//! optionally with a pushback trailer; hedged calls have a slow first attempt. The
//! server records every attempt (with its `grpc-previous-rpc-attempts`) and every
//! attempt that was cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rgrpc_runtime::{
    CallOptions, Channel, Code, Metadata, RecvStream, Request, SendStream, Server, ServerContext,
    Status,
};
use rgrpc_tests::grpc_testing::{
    Payload, SimpleRequest, SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse, TestServiceServer, TestServiceStub,
    register_test_service_server,
};
use rgrpc_tests::{no_leaks, within};

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
/// `grpc-retry-pushback-ms: V`), `slow_first=MS` (attempt 0 sleeps MS before answering).
fn instructions(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
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
        if let Some(ms) = instructions(&body).get("slow_first") {
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            }
        }
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
        }
        self.seen
            .lock()
            .unwrap()
            .entry(call)
            .or_default()
            .messages
            .push(count);
        let outcome = self.outcome(&first_body, n);
        guard.done = true;
        outcome?;
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
        }
        self.seen
            .lock()
            .unwrap()
            .entry(call)
            .or_default()
            .messages
            .push(count);
        let outcome = self.outcome(&first_body, n);
        guard.done = true;
        outcome?;
        responses
            .send(&StreamingOutputCallResponse::default())
            .await?;
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
