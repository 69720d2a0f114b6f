//! The interop server: `grpc.testing.TestService` with the server features of
//! grpc/grpc `doc/interop-test-descriptions.md` ("Server" section): EmptyCall,
//! UnaryCall, CacheableUnaryCall, CompressedResponse, CompressedRequest,
//! StreamingInputCall, StreamingOutputCall, FullDuplexCall, HalfDuplexCall, Echo Status,
//! Echo Metadata and `ResponseParameters.interval_us`. `UnimplementedCall` keeps the
//! generated default (UNIMPLEMENTED) and `UnimplementedService` is not registered, as
//! the unimplemented_* cases require.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use rgrpc_runtime::{
    Code, Encoding, Metadata, RecvStream, SendStream, Server, ServerContext, Status,
};
use tokio::net::TcpListener;

use crate::pb::{
    BoolValue, EchoStatus, Empty, Payload, PayloadType, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse, TestServiceServer, register_test_service_server,
};

/// Echo Metadata: echoed back in the initial metadata.
pub const ECHO_INITIAL_KEY: &str = "x-grpc-test-echo-initial";
/// Echo Metadata: echoed back in the trailing metadata.
pub const ECHO_TRAILING_KEY: &str = "x-grpc-test-echo-trailing-bin";

/// The largest payload one request may ask for. A response is one message and every
/// gRPC client's default receive limit is 4 MiB, so a larger one fails at the peer
/// anyway; the cap also bounds what a single request makes the server allocate
/// (`response_size` is an i32, up to 2 GiB).
const MAX_RESPONSE_PAYLOAD: usize = 4 * 1024 * 1024;

/// HalfDuplexCall holds every request until half-close. These bound that buffer: far
/// above what any interop case sends (one or a few small messages), far below what
/// would hurt the machine (each message alone may be up to the 4 MiB receive limit).
const HALF_DUPLEX_MAX_REQUESTS: usize = 1000;
const HALF_DUPLEX_MAX_BYTES: usize = 16 * 1024 * 1024;

/// How long [`serve`] lets calls in flight finish after the shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// `grpc.testing.TestService`.
#[derive(Clone, Debug)]
pub struct TestService {
    server_id: String,
}

impl Default for TestService {
    fn default() -> TestService {
        TestService::new("rgrpc-interop-server")
    }
}

impl TestService {
    /// A service that answers `fill_server_id` with `server_id`.
    pub fn new(server_id: impl Into<String>) -> TestService {
        TestService {
            server_id: server_id.into(),
        }
    }
}

/// Registers [`TestService`] (and nothing else) on `server`.
pub fn register(server: &mut Server) {
    register_test_service_server(server, TestService::default());
}

/// Serves [`TestService`] on `listener` until `shutdown` completes, then stops
/// accepting and gives calls in flight [`SHUTDOWN_GRACE`] to finish before returning
/// anyway (a client that holds a stream open must not keep the server up).
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_with_tls(listener, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given.
pub async fn serve_with_tls(
    listener: TcpListener,
    tls: Option<rgrpc_runtime::ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut server = Server::new();
    if let Some(tls) = tls {
        server = server.tls(tls);
    }
    register(&mut server);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    });
    tokio::pin!(serving);
    tokio::select! {
        result = &mut serving => return result,
        () = shutdown => {}
    }
    let _ = stop.send(());
    tokio::time::timeout(SHUTDOWN_GRACE, serving)
        .await
        .unwrap_or(Ok(()))
}

impl TestServiceServer for TestService {
    async fn empty_call(&self, ctx: &ServerContext, _request: Empty) -> Result<Empty, Status> {
        echo_metadata(ctx)?;
        Ok(Empty {})
    }

    async fn unary_call(
        &self,
        ctx: &ServerContext,
        request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        // CompressedResponse: compressed exactly when asked (chosen before anything
        // else can send the response headers, which carry grpc-encoding).
        ctx.set_compression(if is_true(&request.response_compressed) {
            Encoding::Gzip
        } else {
            Encoding::Identity
        });
        echo_metadata(ctx)?;
        check_expect_compressed(&request.expect_compressed, ctx.request_compressed())?;
        echo_status(&request.response_status)?;
        check_response_type(request.response_type)?;
        Ok(SimpleResponse {
            payload: Some(payload(request.response_type, request.response_size)?),
            server_id: if request.fill_server_id {
                self.server_id.clone()
            } else {
                String::new()
            },
            // fill_username / fill_oauth_scope need authentication, which this
            // plaintext server does not do; grpclb_route_type stays UNKNOWN (0).
            ..SimpleResponse::default()
        })
    }

    /// "The content of the request is ignored. It returns the SimpleResponse proto
    /// with the payload set to current timestamp ... formatted as ASCII decimal", with
    /// cache-control headers for a caching proxy (max-age 60 s).
    async fn cacheable_unary_call(
        &self,
        ctx: &ServerContext,
        _request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        echo_metadata(ctx)?;
        let mut cache = Metadata::new();
        cache
            .append("cache-control", "max-age=60, public")
            .map_err(|e| Status::internal(e.to_string()))?;
        ctx.set_header(cache)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Ok(SimpleResponse {
            payload: Some(Payload {
                r#type: PayloadType::Compressable as i32,
                body: nanos.to_string().into_bytes(),
            }),
            ..SimpleResponse::default()
        })
    }

    async fn streaming_output_call(
        &self,
        ctx: &ServerContext,
        request: StreamingOutputCallRequest,
        responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        echo_metadata(ctx)?;
        let mut out = Responder::new(ctx, responses);
        out.respond(&request).await
    }

    /// "Upon half close, returns ... aggregated_payload_size [=] the sum of all request
    /// payload bodies received", failing a message whose Compressed-Flag disagrees with
    /// its `expect_compressed`.
    async fn streaming_input_call(
        &self,
        ctx: &ServerContext,
        mut requests: RecvStream<StreamingInputCallRequest>,
    ) -> Result<StreamingInputCallResponse, Status> {
        echo_metadata(ctx)?;
        let mut total: i32 = 0;
        while let Some(request) = requests.message().await? {
            check_expect_compressed(
                &request.expect_compressed,
                requests.last_message_compressed(),
            )?;
            let size = request.payload.map_or(0, |p| p.body.len());
            total = i32::try_from(size)
                .ok()
                .and_then(|size| total.checked_add(size))
                .ok_or_else(|| Status::out_of_range("aggregated payload size exceeds i32"))?;
        }
        Ok(StreamingInputCallResponse {
            aggregated_payload_size: total,
        })
    }

    /// Each request is answered as it arrives; OK after half-close.
    async fn full_duplex_call(
        &self,
        ctx: &ServerContext,
        mut requests: RecvStream<StreamingOutputCallRequest>,
        responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        echo_metadata(ctx)?;
        let mut out = Responder::new(ctx, responses);
        while let Some(request) = requests.message().await? {
            out.respond(&request).await?;
        }
        Ok(())
    }

    /// Every request is buffered (bounded) until half-close, then answered in order.
    async fn half_duplex_call(
        &self,
        ctx: &ServerContext,
        mut requests: RecvStream<StreamingOutputCallRequest>,
        responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        echo_metadata(ctx)?;
        let mut buffered = Vec::new();
        let mut bytes = 0;
        while let Some(request) = requests.message().await? {
            bytes += request.encoded_len();
            if buffered.len() == HALF_DUPLEX_MAX_REQUESTS || bytes > HALF_DUPLEX_MAX_BYTES {
                return Err(Status::resource_exhausted(format!(
                    "HalfDuplexCall buffers at most {HALF_DUPLEX_MAX_REQUESTS} requests \
                     and {HALF_DUPLEX_MAX_BYTES} bytes"
                )));
            }
            buffered.push(request);
        }
        let mut out = Responder::new(ctx, responses);
        for request in &buffered {
            out.respond(request).await?;
        }
        Ok(())
    }
}

/// The response side of StreamingOutputCall, FullDuplexCall and HalfDuplexCall.
struct Responder<'a> {
    ctx: &'a ServerContext,
    responses: SendStream<StreamingOutputCallResponse>,
    /// gzip is the call's response encoding.
    compressing: bool,
    /// A message went out, and with it the response headers.
    sent: bool,
}

impl<'a> Responder<'a> {
    fn new(ctx: &'a ServerContext, responses: SendStream<StreamingOutputCallResponse>) -> Self {
        Responder {
            ctx,
            responses,
            compressing: false,
            sent: false,
        }
    }

    /// Echo Status, then one response per ResponseParameters: sleep `interval_us`
    /// ("like a sleep *before* sending the response"), then `size` zeros, with the
    /// Compressed-Flag set exactly when `compressed` asks for it.
    async fn respond(&mut self, request: &StreamingOutputCallRequest) -> Result<(), Status> {
        echo_status(&request.response_status)?;
        check_response_type(request.response_type)?;
        let params = &request.response_parameters;
        if params.iter().any(|p| is_true(&p.compressed)) && !self.compressing {
            // grpc-encoding travels in the response headers: once they are out it is
            // too late, and going on would send a message uncompressed that was asked
            // for compressed.
            if self.sent {
                return Err(Status::internal(
                    "compressed response asked for after the response headers were sent",
                ));
            }
            self.ctx.set_compression(Encoding::Gzip);
            self.compressing = true;
        }
        for p in params {
            if p.interval_us > 0 {
                tokio::time::sleep(Duration::from_micros(p.interval_us.unsigned_abs().into()))
                    .await;
            }
            let response = StreamingOutputCallResponse {
                payload: Some(payload(request.response_type, p.size)?),
            };
            self.responses.set_compress(is_true(&p.compressed));
            self.responses.send(&response).await?;
            self.sent = true;
        }
        Ok(())
    }
}

fn is_true(value: &Option<BoolValue>) -> bool {
    value.as_ref().is_some_and(|v| v.value)
}

/// Echo Metadata: "the server sends back exactly this key and the corresponding value"
/// in the initial metadata (`x-grpc-test-echo-initial`) or the trailing metadata
/// (`x-grpc-test-echo-trailing-bin`).
fn echo_metadata(ctx: &ServerContext) -> Result<(), Status> {
    let incoming = ctx.metadata();
    let bad = |e: rgrpc_runtime::MetadataError| Status::internal(format!("echo metadata: {e}"));
    let mut header = Metadata::new();
    for value in incoming.get_all(ECHO_INITIAL_KEY) {
        header.append(ECHO_INITIAL_KEY, value).map_err(bad)?;
    }
    if !header.is_empty() {
        ctx.set_header(header)?;
    }
    let mut trailer = Metadata::new();
    for value in incoming.get_all_bin(ECHO_TRAILING_KEY) {
        trailer.append_bin(ECHO_TRAILING_KEY, &value).map_err(bad)?;
    }
    if !trailer.is_empty() {
        ctx.set_trailer(trailer);
    }
    Ok(())
}

/// Echo Status: "the server closes the stream with the status code and message
/// contained within said response_status". Code 0 counts as absent (as in grpc-go).
fn echo_status(status: &Option<EchoStatus>) -> Result<(), Status> {
    match status {
        Some(s) if s.code != 0 => Err(Status::new(Code::from_i32(s.code), s.message.clone())),
        _ => Ok(()),
    }
}

/// CompressedRequest: "When the client sets expect_compressed to true, the server
/// expects the client request to be compressed. If it's not, it fails the RPC with
/// INVALID_ARGUMENT." Like gRPC C++'s server, a compressed request that says
/// `expect_compressed: false` fails too.
fn check_expect_compressed(expect: &Option<BoolValue>, compressed: bool) -> Result<(), Status> {
    match expect {
        Some(BoolValue { value: true }) if !compressed => Err(Status::invalid_argument(
            "expected compressed request, got uncompressed",
        )),
        Some(BoolValue { value: false }) if compressed => Err(Status::invalid_argument(
            "expected uncompressed request, got compressed",
        )),
        _ => Ok(()),
    }
}

/// UnaryCall: "If the server does not support the response_type, then it should fail
/// the RPC with INVALID_ARGUMENT."
fn check_response_type(response_type: i32) -> Result<(), Status> {
    match PayloadType::try_from(response_type) {
        Ok(PayloadType::Compressable) => Ok(()),
        _ => Err(Status::invalid_argument(format!(
            "unsupported response_type {response_type}"
        ))),
    }
}

/// A payload of `size` zeros.
fn payload(response_type: i32, size: i32) -> Result<Payload, Status> {
    let size = usize::try_from(size)
        .map_err(|_| Status::invalid_argument(format!("negative payload size {size}")))?;
    if size > MAX_RESPONSE_PAYLOAD {
        return Err(Status::resource_exhausted(format!(
            "payload of {size} bytes asked for; this server sends at most {MAX_RESPONSE_PAYLOAD}"
        )));
    }
    Ok(Payload {
        r#type: response_type,
        body: vec![0; size],
    })
}
