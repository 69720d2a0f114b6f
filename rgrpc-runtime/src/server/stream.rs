//! One incoming stream: validate the request, route it, run the handler, and send the
//! response through the connection's writer. `server::dispatch` decides where the
//! future runs.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::{Notify, Semaphore, oneshot};

use super::context::ServerContext;
use super::{Router, ServerConfig};
use crate::compression::{self, ACCEPT_ENCODING, Encoding};
use crate::controlbuf::{self, Item, StreamKey, UnaryReply, Writer};
use crate::headers::{
    CONTENT_TYPE, GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_STATUS, GRPC_TIMEOUT,
};
use crate::metadata::Metadata;
use crate::panic::CatchUnwind;
use crate::recv::MessageReader;
use crate::status::Status;
use crate::timeout;

/// What the stream task needs from its connection.
#[derive(Clone)]
pub(crate) struct StreamEnv {
    pub router: Arc<Router>,
    pub config: Arc<ServerConfig>,
    pub writer: Writer,
    pub remote_addr: Option<SocketAddr>,
}

/// The untyped server side of one call, handed to an erased [`crate::Handler`].
pub struct ServerStream {
    ctx: ServerContext,
    reader: MessageReader,
    sender: Arc<Sender>,
}

/// The sending half shared by the handler's [`SendStream`] and the task that sends the
/// final status after the handler returns.
struct Sender {
    writer: Writer,
    key: StreamKey,
    /// The stream's write quota, made when the first streamed message needs it (a
    /// unary reply never does).
    quota: OnceLock<Arc<Semaphore>>,
    max_send: usize,
    ctx: ServerContext,
    /// Present until the response headers are queued.
    respond: Mutex<Option<SendResponse<Bytes>>>,
    /// The response encoding, fixed when the headers are sent.
    encoding: OnceLock<Option<Encoding>>,
    /// Set once the whole response, status included, has been queued.
    finished: AtomicBool,
    /// Fires when the writer sees the client reset the stream after the headers.
    reset: Mutex<Option<oneshot::Receiver<()>>>,
    /// Notified when the response handle goes to the writer with the headers.
    headers_sent: Notify,
}

impl Sender {
    fn quota(&self) -> &Arc<Semaphore> {
        self.quota.get_or_init(controlbuf::new_quota)
    }

    fn take_respond(&self) -> Option<SendResponse<Bytes>> {
        self.respond
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Sends the response headers if they have not gone out; returns the response
    /// encoding.
    async fn start(&self) -> Result<Option<Encoding>, Status> {
        if let Some(respond) = self.take_respond() {
            let (head, encoding) = self.response_head();
            let _ = self.encoding.set(encoding);
            let quota = Some(self.quota().clone());
            let (on_reset, reset) = oneshot::channel();
            *self.reset.lock().unwrap_or_else(|e| e.into_inner()) = Some(reset);
            self.headers_sent.notify_one();
            let item = Item::Respond {
                key: self.key,
                respond,
                head: Box::new(head),
                end_of_stream: false,
                on_reset: Some(on_reset),
                quota,
            };
            self.writer.send(item).await?;
        }
        Ok(self.encoding.get().copied().flatten())
    }

    /// The response headers (with the handler's initial metadata) and the encoding.
    fn response_head(&self) -> (http::Response<()>, Option<Encoding>) {
        let mut head = grpc_response_head();
        let (metadata, encoding) = self.ctx.take_header();
        metadata.write_headers(head.headers_mut());
        if let Some(encoding) = encoding {
            head.headers_mut()
                .insert(GRPC_ENCODING, HeaderValue::from_static(encoding.as_str()));
        }
        (head, encoding)
    }

    /// The trailers for `status` (OK when `None`) with the handler's trailing metadata.
    fn trailers(&self, status: Option<&Status>) -> HeaderMap {
        let mut trailers = HeaderMap::new();
        match status {
            Some(status) => status.write_trailers(&mut trailers),
            None => {
                trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
            }
        }
        self.ctx.take_trailer().write_headers(&mut trailers);
        trailers
    }

    /// Sends a unary call's whole response (headers, message, OK trailers) as one item.
    async fn send_unary<T: prost::Message>(&self, message: &T) -> Result<(), Status> {
        let Some(respond) = self.take_respond() else {
            return self.send_message(message, &mut BytesMut::new(), true).await;
        };
        let (head, encoding) = self.response_head();
        let _ = self.encoding.set(encoding);
        let mut buf = BytesMut::new();
        let data = compression::encode_frame(message, &mut buf, self.max_send, encoding);
        let data = match data {
            Ok(data) => data,
            Err(status) => {
                // Nothing went out yet: put the handle back so the status is sent as a
                // Trailers-Only response.
                *self.respond.lock().unwrap_or_else(|e| e.into_inner()) = Some(respond);
                return Err(status);
            }
        };
        let trailers = self.trailers(None);
        self.finished.store(true, Ordering::Release);
        let item = Item::Unary(Box::new(UnaryReply {
            respond,
            head,
            data,
            trailers,
        }));
        self.writer.send(item).await
    }

    /// Encodes, compresses if the call compresses and `compress` allows, and sends.
    async fn send_message<T: prost::Message>(
        &self,
        message: &T,
        buf: &mut BytesMut,
        compress: bool,
    ) -> Result<(), Status> {
        let encoding = self.start().await?.filter(|_| compress);
        let frame = compression::encode_frame(message, buf, self.max_send, encoding)?;
        self.send_frame(frame).await
    }

    async fn send_frame(&self, frame: Bytes) -> Result<(), Status> {
        let permits = Writer::acquire(self.quota(), frame.len()).await?;
        self.writer
            .send(Item::Data {
                key: self.key,
                data: frame,
                permits,
            })
            .await
    }

    /// Sends the status: in the trailers, or as a Trailers-Only response when no
    /// headers went out (PROTOCOL-HTTP2.md, "Trailers-Only").
    async fn finish(&self, status: Result<(), Status>) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let trailers = self.trailers(status.err().as_ref());
        let item = match self.take_respond() {
            Some(respond) => {
                let mut head = grpc_response_head();
                self.ctx.take_header().0.write_headers(head.headers_mut());
                head.headers_mut().extend(trailers);
                Item::Respond {
                    key: self.key,
                    respond,
                    head: Box::new(head),
                    end_of_stream: true,
                    on_reset: None,
                    quota: None,
                }
            }
            None => Item::Trailers {
                key: self.key,
                trailers: Box::new(trailers),
            },
        };
        let _ = self.writer.send(item).await;
    }
}

fn grpc_response_head() -> http::Response<()> {
    let mut head = http::Response::new(());
    head.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    head
}

impl ServerStream {
    /// The call's context.
    pub fn context(&self) -> ServerContext {
        self.ctx.clone()
    }

    /// Reads the single request of a unary or server-streaming call.
    pub async fn recv_single<T: prost::Message + Default>(&mut self) -> Result<T, Status> {
        let Some(payload) = self.reader.next().await? else {
            return Err(Status::internal("request stream ended without a message"));
        };
        self.ctx
            .set_request_compressed(self.reader.last_compressed());
        let message = decode::<T>(payload)?;
        if self.reader.next().await?.is_some() {
            return Err(Status::internal(
                "more than one request message for a single-request method",
            ));
        }
        Ok(message)
    }

    /// Sends one response message.
    pub async fn send_message<T: prost::Message>(&mut self, message: &T) -> Result<(), Status> {
        let mut buf = BytesMut::new();
        self.sender.send_message(message, &mut buf, true).await
    }

    /// Sends a unary call's response with its OK status in one control-buffer item.
    pub(crate) async fn send_unary<T: prost::Message>(
        &mut self,
        message: &T,
    ) -> Result<(), Status> {
        self.sender.send_unary(message).await
    }

    /// Splits into typed halves.
    pub fn split<Req, Resp>(self) -> (RecvStream<Req>, SendStream<Resp>) {
        (
            RecvStream {
                reader: self.reader,
                ctx: self.ctx,
                _message: PhantomData,
            },
            SendStream {
                sender: self.sender,
                buf: BytesMut::new(),
                compress: true,
                _message: PhantomData,
            },
        )
    }
}

fn decode<T: prost::Message + Default>(payload: Bytes) -> Result<T, Status> {
    T::decode(payload).map_err(|e| Status::internal(format!("failed to decode request: {e}")))
}

/// The requests of a client-streaming or bidi call, as the handler reads them.
pub struct RecvStream<T> {
    reader: MessageReader,
    ctx: ServerContext,
    _message: PhantomData<fn() -> T>,
}

impl<T: prost::Message + Default> RecvStream<T> {
    /// The next message, or `None` once the client has closed its side.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        match self.reader.next().await? {
            Some(payload) => {
                self.ctx
                    .set_request_compressed(self.reader.last_compressed());
                decode(payload).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Whether the last message returned by `message` arrived compressed.
    pub fn last_message_compressed(&self) -> bool {
        self.reader.last_compressed()
    }
}

/// The responses of a server-streaming or bidi call, as the handler sends them. A send
/// waits while the client is not reading (the stream's write quota is spent).
pub struct SendStream<T> {
    sender: Arc<Sender>,
    /// Reused encode buffer.
    buf: BytesMut,
    compress: bool,
    _message: PhantomData<fn(T)>,
}

impl<T: prost::Message> SendStream<T> {
    /// Sends the call's only response with its OK status as one control-buffer item
    /// (a client-streaming reply, like a unary one).
    pub(crate) async fn send_unary(self, message: &T) -> Result<(), Status> {
        self.sender.send_unary(message).await
    }

    /// Sends one message; the response headers go out first if they have not yet.
    pub async fn send(&mut self, message: &T) -> Result<(), Status> {
        self.sender
            .send_message(message, &mut self.buf, self.compress)
            .await
    }

    /// Turns compression of the following messages off or on; it applies only when the
    /// call has a response encoding (see [`ServerContext::set_compression`]).
    pub fn set_compress(&mut self, compress: bool) {
        self.compress = compress;
    }
}

/// Handles one accepted stream to completion (see `server::dispatch` for where).
pub(crate) async fn serve_stream(
    env: StreamEnv,
    key: StreamKey,
    request: http::Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (parts, body) = request.into_parts();
    // PROTOCOL-HTTP2.md: ":method → POST"; anything else is not a gRPC request.
    if parts.method != http::Method::POST {
        reject_http(&mut respond, StatusCode::METHOD_NOT_ALLOWED);
        return;
    }
    // "If Content-Type does not begin with "application/grpc", gRPC servers SHOULD
    // respond with HTTP status of 415 (Unsupported Media Type)."
    let content_type = parts.headers.get(&CONTENT_TYPE).map(HeaderValue::as_bytes);
    let subtype_ok = match content_type {
        Some(ct) if ct.starts_with(b"application/grpc") => {
            matches!(&ct[16..], b"" | b"+proto") || ct[16..].starts_with(b";")
        }
        _ => {
            reject_http(&mut respond, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            return;
        }
    };
    let reject = |status: Status, respond: SendResponse<Bytes>| {
        let mut head = grpc_response_head();
        status.write_trailers(head.headers_mut());
        Item::Respond {
            key,
            respond,
            head: Box::new(head),
            end_of_stream: true,
            on_reset: None,
            quota: None,
        }
    };
    if !subtype_ok {
        let status = Status::unimplemented(
            "unsupported content-type: only application/grpc+proto is served",
        );
        let _ = env.writer.send(reject(status, respond)).await;
        return;
    }
    let path = parts.uri.path();
    let handler = match env.router.route(path) {
        Ok(handler) => handler.clone(),
        Err(status) => {
            let _ = env.writer.send(reject(status, respond)).await;
            return;
        }
    };
    let deadline = match parts.headers.get(&GRPC_TIMEOUT) {
        None => None,
        Some(value) => match timeout::parse(value.as_bytes()) {
            Some(d) => Some(Instant::now() + d),
            None => {
                let status = Status::internal(format!(
                    "malformed grpc-timeout {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ));
                let _ = env.writer.send(reject(status, respond)).await;
                return;
            }
        },
    };
    let encoding = match parts.headers.get(&GRPC_ENCODING) {
        None => None,
        Some(value) => match Encoding::parse(value.as_bytes()) {
            Some(encoding) => Some(encoding),
            None => {
                // compression.md: an unsupported encoding is UNIMPLEMENTED, and the
                // response lists what the server accepts.
                let status = Status::unimplemented(format!(
                    "grpc: Decompressor is not installed for grpc-encoding {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ));
                let mut item = reject(status, respond);
                if let Item::Respond { head, .. } = &mut item {
                    head.headers_mut().insert(
                        GRPC_ACCEPT_ENCODING,
                        HeaderValue::from_static(ACCEPT_ENCODING),
                    );
                }
                let _ = env.writer.send(item).await;
                return;
            }
        },
    };
    let accepts_gzip = parts
        .headers
        .get_all(&GRPC_ACCEPT_ENCODING)
        .iter()
        .any(|v| Encoding::Gzip.accepted_by(v.as_bytes()));
    let ctx = ServerContext::new(
        parts.uri,
        Metadata::from_received(parts.headers),
        deadline,
        env.remote_addr,
        accepts_gzip,
        env.config.send_compression,
    );
    let sender = Arc::new(Sender {
        writer: env.writer,
        key,
        quota: OnceLock::new(),
        max_send: env.config.max_send_message_size,
        ctx: ctx.clone(),
        respond: Mutex::new(Some(respond)),
        encoding: OnceLock::new(),
        finished: AtomicBool::new(false),
        reset: Mutex::new(None),
        headers_sent: Notify::new(),
    });
    let stream = ServerStream {
        ctx,
        reader: MessageReader::new(body, env.config.max_recv_message_size, encoding),
        sender: sender.clone(),
    };
    let call = CatchUnwind::new((handler.call)(stream));
    let deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
            None => std::future::pending().await,
        }
    };
    // The handler's future is dropped when the client resets the stream or the deadline
    // passes: that is how a handler learns it was cancelled, and nothing of the call is
    // left behind. The handler first: a call that finishes in its first poll (the
    // usual unary call) never sets up the timer or the reset watch.
    let result = tokio::select! {
        biased;
        result = call => result,
        () = deadline => Err(Status::deadline_exceeded("deadline exceeded")),
        () = client_reset(&sender) => return,
    };
    sender.finish(result).await;
}

/// Completes when the client resets the stream. Before the response headers go out the
/// stream task holds the response handle and asks h2 directly; afterwards the writer
/// holds the stream and reports the reset through a oneshot (controlbuf `poll_resets`).
async fn client_reset(sender: &Sender) {
    let headers_sent = sender.headers_sent.notified();
    let early = std::future::poll_fn(|cx| {
        let mut respond = sender.respond.lock().unwrap_or_else(|e| e.into_inner());
        match respond.as_mut() {
            Some(respond) => respond.poll_reset(cx).map(|_| true),
            None => std::task::Poll::Ready(false),
        }
    });
    let reset_early = tokio::select! {
        reset = early => reset,
        () = headers_sent => false,
    };
    if reset_early {
        return;
    }
    let later = sender
        .reset
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(later) = later {
        // Sent: the client reset the idle stream. Dropped: the writer forgot the stream
        // because h2 failed it (a reset seen while data was queued, or the connection
        // went away); it only forgets a healthy stream after the trailers, and by then
        // this future is gone. Either way the handler has no one left to answer.
        let _ = later.await;
        return;
    }
    // The whole response went out as one unary item: nothing left to watch.
    std::future::pending().await
}

fn reject_http(respond: &mut SendResponse<Bytes>, status: StatusCode) {
    let mut head = http::Response::new(());
    *head.status_mut() = status;
    let _ = respond.send_response(head, true);
}
