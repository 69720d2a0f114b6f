//! Helpers for rgrpc's end-to-end tests: a TestService instrumented to observe flow
//! control, panics and cancellation, a server on an ephemeral port, and test-step
//! bounds; the raw-frame peer (h2peer) for what a well-behaved client never sends.

#![allow(missing_docs)]

pub mod grpc_testing {
    rgrpc_runtime::include_proto!("grpc.testing");
}

pub mod h2peer;
pub mod peers;
pub mod proxy;
pub mod target;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grpc_testing::{
    Payload, ResponseParameters, SimpleRequest, SimpleResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse, TestServiceServer,
};
use rgrpc_runtime::{Code, Metadata, SendStream, Server, ServerContext, Status};

/// Counters the tests read while calls run.
#[derive(Default, Debug)]
pub struct Probe {
    /// Messages the streaming handler has handed to `send` successfully.
    pub sent: AtomicUsize,
    /// Handlers whose future was dropped before finishing.
    pub dropped: AtomicUsize,
    /// Handlers that ran to completion.
    pub finished: AtomicUsize,
}

struct DropGuard(Arc<Probe>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.1 {
            self.0.finished.fetch_add(1, Ordering::SeqCst);
        } else {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A TestService for tests:
/// - UnaryCall: payload of `response_size` zeros; `response_status` is returned as the
///   status (a message `details:X` returns binary details X); `fill_oauth_scope` echoes
///   the peer address, authority and TLS state (`x-tls`, `x-alpn`, `x-peer-certs`,
///   `x-peer-cert-bin`: the client's leaf certificate, DER) as headers; `fill_username` panics (the panic test); `x-echo` metadata is echoed as a
///   header and `x-echo-trailer-bin` as a trailer; a `payload.body` of "sleep" sleeps 10 s,
///   one of "delay_ms:N" sleeps N ms.
/// - StreamingOutputCall: one response per `response_parameters` entry, each after
///   its `interval_us`.
/// - EmptyCall is left unimplemented (the default body).
pub struct Instrumented {
    pub probe: Arc<Probe>,
}

impl TestServiceServer for Instrumented {
    async fn unary_call(
        &self,
        ctx: &ServerContext,
        request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        let mut guard = DropGuard(self.probe.clone(), false);
        if request.fill_username {
            panic!("handler asked to panic");
        }
        if request.payload.as_ref().is_some_and(|p| p.body == b"sleep") {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        if let Some(ms) = request
            .payload
            .as_ref()
            .and_then(|p| p.body.strip_prefix(b"delay_ms:"))
            .and_then(|ms| std::str::from_utf8(ms).ok()?.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(v) = ctx.metadata().get("x-echo") {
            let mut md = Metadata::new();
            md.insert("x-echo", v)?;
            ctx.set_header(md)?;
        }
        if let Some(v) = ctx.metadata().get_bin("x-echo-trailer-bin") {
            let mut md = Metadata::new();
            md.insert_bin("x-echo-trailer-bin", &v)?;
            ctx.set_trailer(md);
        }
        if request.fill_oauth_scope {
            // Peer information, echoed for the test to check.
            let mut md = Metadata::new();
            let remote = ctx
                .remote_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            md.insert("x-remote-ip", &remote)?;
            md.insert("x-authority", ctx.authority().unwrap_or(""))?;
            md.insert("x-tls", if ctx.is_tls() { "true" } else { "false" })?;
            md.insert(
                "x-alpn",
                &String::from_utf8_lossy(ctx.alpn_protocol().unwrap_or_default()),
            )?;
            md.insert("x-peer-certs", &ctx.peer_certificates().len().to_string())?;
            let keys: Vec<&str> = ctx.metadata().keys().collect();
            md.insert("x-metadata-keys", &keys.join(","))?;
            if let Some(leaf) = ctx.peer_certificates().first() {
                md.insert_bin("x-peer-cert-bin", leaf)?;
            }
            ctx.set_header(md)?;
        }
        if request.response_compressed.is_some_and(|b| b.value) {
            ctx.set_compression(rgrpc_runtime::Encoding::Gzip);
        }
        guard.1 = true;
        if let Some(status) = request.response_status {
            if let Some(details) = status.message.strip_prefix("details:") {
                return Err(Status::with_details(
                    Code::from_i32(status.code),
                    "with details",
                    bytes::Bytes::copy_from_slice(details.as_bytes()),
                ));
            }
            return Err(Status::new(Code::from_i32(status.code), status.message));
        }
        Ok(SimpleResponse {
            payload: Some(Payload {
                body: vec![0; request.response_size as usize],
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn streaming_output_call(
        &self,
        _ctx: &ServerContext,
        request: StreamingOutputCallRequest,
        mut responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let mut guard = DropGuard(self.probe.clone(), false);
        for param in &request.response_parameters {
            if param.interval_us > 0 {
                tokio::time::sleep(Duration::from_micros(param.interval_us as u64)).await;
            }
            let response = StreamingOutputCallResponse {
                payload: Some(Payload {
                    body: vec![7; param.size as usize],
                    ..Default::default()
                }),
            };
            responses.send(&response).await?;
            self.probe.sent.fetch_add(1, Ordering::SeqCst);
        }
        guard.1 = true;
        Ok(())
    }
}

/// A UnaryCall request whose handler ([`Instrumented`]) sleeps 10 s.
pub fn sleeping_request() -> SimpleRequest {
    SimpleRequest {
        payload: Some(Payload {
            body: b"sleep".to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A StreamingOutputCall request for `count` messages of `size` bytes, each sent
/// `interval` after the one before it (the first `interval` after the call starts).
pub fn spaced_stream(count: usize, size: i32, interval: Duration) -> StreamingOutputCallRequest {
    let interval_us = i32::try_from(interval.as_micros()).expect("an interval under 35 minutes");
    StreamingOutputCallRequest {
        response_parameters: vec![
            ResponseParameters {
                size,
                interval_us,
                ..Default::default()
            };
            count
        ],
        ..Default::default()
    }
}

/// A running server; shuts down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub probe: Arc<Probe>,
    /// Stops the server (graceful or forced).
    pub handle: rgrpc_runtime::ServerHandle,
    /// Completes when `serve` has returned.
    pub serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts helloworld, routeguide and the instrumented TestService on 127.0.0.1:0.
pub async fn start(configure: impl FnOnce(Server) -> Server) -> TestServer {
    start_on("127.0.0.1:0", configure).await
}

/// [`start`] on `addr` (e.g. `127.0.0.2:0`, or a port to restart a server on).
pub async fn start_on(addr: &str, configure: impl FnOnce(Server) -> Server) -> TestServer {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let addr = listener.local_addr().expect("local addr");
    let probe = Arc::new(Probe::default());
    let mut server = configure(Server::new());
    rgrpc_examples::helloworld::register_greeter_server(
        &mut server,
        rgrpc_examples::greeter::Greeter,
    );
    rgrpc_examples::routeguide::register_route_guide_server(
        &mut server,
        rgrpc_examples::route_guide::RouteGuide::default(),
    );
    grpc_testing::register_test_service_server(
        &mut server,
        Instrumented {
            probe: probe.clone(),
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let handle = server.handle();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        probe,
        handle,
        serving: Some(serving),
        stop: Some(stop),
    }
}

impl TestServer {
    /// `http://addr`.
    pub fn target(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for `serve` to return (after a stop), at most `secs`; fails the test if
    /// it does not, or returns an error.
    pub async fn served(&mut self, secs: u64) {
        let serving = self.serving.take().expect("serve awaited once");
        within(secs, serving)
            .await
            .expect("serve task")
            .expect("serve returned an error");
    }
}

/// Waits until `ready()` holds, checking every 10 ms; fails the test after `secs`.
pub async fn wait_until(secs: u64, ready: impl Fn() -> bool) {
    within(secs, async {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Runs an end-to-end test's body, then fails the test if any task it started is still
/// alive 5 s after the body returned: servers, their connections and handlers,
/// channels with their subchannels and connections, calls. Everything of ours that
/// holds a connection, a stream or a buffer lives in one of those tasks, so a count of
/// zero means none is left (grpc-go's `internal/grpctest` leak check, on tokio's
/// count of alive tasks). The body must drop what it made before it returns.
pub async fn no_leaks(body: impl std::future::Future<Output = ()>) {
    body.await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metrics.num_alive_tasks() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "leak: {} tasks still alive 5 s after the test ended",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Bounds a test step: fails the test instead of hanging.
pub async fn within<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("step timed out")
}
