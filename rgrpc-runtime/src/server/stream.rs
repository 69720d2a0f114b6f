//! One incoming stream: check the request head, route it, run the handler, and send
//! the response through the connection's writer. `transport::dispatch` decides where
//! the future runs.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_core::{FusedStream, Stream};
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::{Semaphore, oneshot};

use super::context::{RequestMetadata, ServerContext};
use super::interceptor::{ServerCall, ServerInterceptor, ServerNext};
use super::panic;
use super::request::{self, Reject};
use super::{Router, ServerConfig};
use crate::codec;
use crate::codec::compression::{ACCEPT_ENCODING, Encoding};
use crate::codec::reader::{MessageReader, Received};
use crate::interceptor::{AnyMessage, Observers};
use crate::metadata::Metadata;
use crate::stats::{CallStats, Payload, StatsEvent, StatsHandler};
use crate::status::Status;
use crate::trace::CallTrace;
use crate::transport::controlbuf::{self, Item, StreamKey, UnaryReply, Writer};
use crate::transport::dispatch::{self, StreamFuture};
use crate::transport::headers::{CONTENT_TYPE, GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_STATUS};
use crate::transport::server::{Accepted, ConnShared, StreamGuard, StreamHandler};

/// What every stream of a server needs: the routes and the call settings. The server
/// side of the transport seam (`transport::server::StreamHandler`).
pub(crate) struct Streams {
    pub router: Router,
    pub config: ServerConfig,
    /// In the order added, the first outermost; empty costs a call one branch.
    pub interceptors: Vec<Arc<dyn ServerInterceptor>>,
    /// Sees every routed call's events; none costs a call one branch per event.
    pub stats: Option<Arc<dyn StatsHandler>>,
}

impl StreamHandler for Arc<Streams> {
    fn serve(&self, stream: Accepted) -> StreamFuture {
        // User code runs in `start_call` (a stats handler's Begin and InHeader, a
        // subscriber's new span), on the connection's task: a panic there must end
        // only this stream, as a panic inside the stream's future does (see
        // `transport::dispatch`). Nothing of the stream is used after it (its
        // response half is dropped: h2 resets the stream), so AssertUnwindSafe holds.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| start_call(self, stream))) {
            Ok(call) => call,
            Err(_) => Box::pin(std::future::ready(())),
        }
    }
}

/// The untyped server side of one call, handed to an erased [`crate::Handler`].
pub struct ServerStream {
    reader: MessageReader,
    sender: Arc<Sender>,
}

/// The send side of one server stream:
///
/// ```text
///   Idle ──first message or header──▶ Streaming ──finish (trailers)──▶ Done
///     │ unary reply: headers, message and OK trailers as one item ───▶ Done
///     └─ finish before any header: a Trailers-Only response ────────▶ Done
/// ```
enum SendState {
    /// Nothing sent; we hold h2's response handle. `watcher` is the reset watch
    /// (`client_reset`), woken when the handle moves on to the writer.
    Idle {
        respond: SendResponse<Bytes>,
        watcher: Option<Waker>,
    },
    /// Headers queued; messages follow, metered by `quota`. `reset` fires if the
    /// client resets the stream while the writer holds it idle.
    Streaming {
        encoding: Option<Encoding>,
        quota: Arc<Semaphore>,
        reset: oneshot::Receiver<()>,
    },
    /// The whole response, status included, is queued.
    Done,
}

/// The sending half shared by the handler's [`SendStream`] and the task that sends the
/// final status after the handler returns.
pub(super) struct Sender {
    key: StreamKey,
    max_send: usize,
    ctx: ServerContext,
    state: Mutex<SendState>,
    /// Set, once, for a call that has interceptors (before its handler starts): the
    /// call's observers and the slot its unary reply waits in. Unset, every check
    /// of it is one load.
    intercepted: OnceLock<Intercepted>,
    /// The call's stats, when the server has a stats handler.
    stats: Option<CallStats>,
    /// The call's span, when a subscriber wants it.
    trace: Option<CallTrace>,
}

/// What an intercepted call adds to its sender.
struct Intercepted {
    observers: Observers,
    /// A unary or client-streaming reply, held until the interceptor chain returns
    /// (so that the interceptors see it and can change it, and their status decides
    /// whether it goes out). At most one message.
    reply: Mutex<Option<Box<dyn AnyMessage>>>,
}

impl Sender {
    /// Makes this an intercepted call (only the first call has an effect).
    pub(super) fn intercept(&self, observers: Observers) {
        let _ = self.intercepted.set(Intercepted {
            observers,
            reply: Mutex::new(None),
        });
    }

    fn observers(&self) -> Option<&Observers> {
        self.intercepted.get().map(|i| &i.observers)
    }

    /// Whether the receive side must report each message (to observers or stats).
    fn watches_requests(&self) -> bool {
        self.stats.is_some() || self.trace.is_some() || self.intercepted.get().is_some()
    }

    /// Whether the end must be reported (to stats or the span).
    fn reports_end(&self) -> bool {
        self.stats.is_some() || self.trace.is_some()
    }

    /// Shows a decoded request to the observers and reports it to the stats handler.
    fn received(
        &self,
        message: &mut dyn std::any::Any,
        length: usize,
        reader: &MessageReader,
    ) -> Result<(), Status> {
        if let Some(trace) = &self.trace {
            trace.received();
        }
        if let Some(stats) = &self.stats {
            let payload = Payload {
                length,
                wire_length: reader.last_wire_size() + codec::frame::HEADER_LEN,
                compressed: reader.last_compressed(),
            };
            stats.payload(self.ctx.full_method(), false, payload);
        }
        match self.observers() {
            Some(observers) => observers.recv(message, reader.last_wire_size()),
            None => Ok(()),
        }
    }

    /// Reports a message handed to the writer as `frame`.
    fn sent<T: AnyMessage + ?Sized>(&self, message: &T, frame: &Bytes) {
        if let Some(trace) = &self.trace {
            trace.sent();
        }
        if let Some(stats) = &self.stats {
            let payload = Payload {
                length: message.encoded_len(),
                wire_length: frame.len(),
                compressed: frame.first() == Some(&1),
            };
            stats.payload(self.ctx.full_method(), true, payload);
        }
    }

    /// Reports the end of the call.
    fn ended(&self, status: &Result<(), Status>) {
        if let Some(stats) = &self.stats {
            stats.end(self.ctx.full_method(), status);
        }
        if let Some(trace) = &self.trace {
            trace.end(status);
        }
    }

    /// The unary reply a handler left for the interceptors.
    pub(super) fn take_reply(&self) -> Option<Box<dyn AnyMessage>> {
        let intercepted = self.intercepted.get()?;
        intercepted
            .reply
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// A unary or client-streaming handler's reply: encoded now and then sent with its
    /// OK status (`send_step`), or, when the call is intercepted, kept for the chain.
    /// Not async: the message is encoded before the first await, so it takes no room
    /// in the handler's future (one allocation per call) while the item waits for
    /// the writer.
    fn reply<T: prost::Message + 'static>(&self, message: T) -> ReplyStep {
        match self.intercepted.get() {
            None => self.unary_step(message),
            Some(intercepted) => {
                *intercepted.reply.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Box::new(message));
                ReplyStep::Done(Ok(()))
            }
        }
    }

    /// Sends the reply the interceptors let through, after the observers saw it.
    pub(super) async fn send_reply(&self, mut reply: Box<dyn AnyMessage>) -> Result<(), Status> {
        if let Some(observers) = self.observers() {
            observers.send_erased(&mut *reply)?;
        }
        let step = self.unary_step(reply);
        self.send_step(step).await
    }

    /// What a unary reply still has to do once encoded.
    async fn send_step(&self, step: ReplyStep) -> Result<(), Status> {
        match step {
            ReplyStep::Done(result) => result,
            // Queued now when there is room (no future to build and poll); a full
            // control buffer is waited on boxed, so every call's future does not
            // reserve room for that rare wait.
            ReplyStep::Queue(item) => match self.writer().try_send(item)? {
                None => Ok(()),
                Some(item) => Box::pin(self.writer().send(item)).await,
            },
            // Rare (the headers went out before the reply): boxed, so that the common
            // path's future stays small.
            ReplyStep::Stream(message) => {
                Box::pin(self.send_frame(&*message, &mut BytesMut::new(), true)).await
            }
        }
    }

    /// The connection's writer (reached through the context, which holds the
    /// connection: one handle fewer to clone and drop per call).
    fn writer(&self) -> &Writer {
        &self.ctx.conn().writer
    }

    fn state(&self) -> MutexGuard<'_, SendState> {
        // Every transition is a single assignment: a panic cannot leave it half-made.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Idle -> Streaming: queues the response headers if they have not gone out, and
    /// returns the response encoding and the stream's write quota.
    async fn start(&self) -> Result<(Option<Encoding>, Arc<Semaphore>), Status> {
        let item = {
            let mut state = self.state();
            match &*state {
                SendState::Streaming {
                    encoding, quota, ..
                } => return Ok((*encoding, quota.clone())),
                SendState::Done => {
                    return Err(Status::internal("send after the call finished"));
                }
                SendState::Idle { .. } => {}
            }
            let (head, encoding) = self.response_head();
            let quota = controlbuf::new_quota();
            let (on_reset, reset) = oneshot::channel();
            let SendState::Idle { respond, watcher } = std::mem::replace(
                &mut *state,
                SendState::Streaming {
                    encoding,
                    quota: quota.clone(),
                    reset,
                },
            ) else {
                unreachable!("matched Idle above")
            };
            if let Some(watcher) = watcher {
                watcher.wake();
            }
            (
                Item::Respond {
                    key: self.key,
                    respond,
                    head: Box::new(head),
                    end_of_stream: false,
                    on_reset: Some(on_reset),
                    quota: Some(quota.clone()),
                },
                encoding,
                quota,
            )
        };
        let (item, encoding, quota) = item;
        self.writer().send(item).await?;
        Ok((encoding, quota))
    }

    /// The response headers (with the handler's initial metadata) and the encoding.
    fn response_head(&self) -> (http::Response<()>, Option<Encoding>) {
        let (metadata, encoding) = self.header_metadata(false);
        let mut head = grpc_response_head(metadata.len() + usize::from(encoding.is_some()));
        metadata.write_headers(head.headers_mut());
        if let Some(encoding) = encoding {
            head.headers_mut()
                .insert(GRPC_ENCODING, HeaderValue::from_static(encoding.as_str()));
        }
        (head, encoding)
    }

    /// The initial metadata, as the observers leave it, and the response encoding.
    /// Reported as OutHeader unless it goes in a Trailers-Only response.
    fn header_metadata(&self, trailers_only: bool) -> (Metadata, Option<Encoding>) {
        let (mut metadata, encoding) = self.ctx.take_header();
        if let Some(observers) = self.observers() {
            observers.headers(&mut metadata);
        }
        if let (Some(stats), false) = (&self.stats, trailers_only) {
            let event = StatsEvent::OutHeader {
                metadata: &metadata,
                compression: encoding,
            };
            stats.emit(self.ctx.full_method(), &event);
        }
        (metadata, encoding)
    }

    /// The trailers for `status` with the handler's trailing metadata, as the
    /// observers leave it.
    fn trailers(&self, status: &Result<(), Status>) -> HeaderMap {
        let mut metadata = self.ctx.take_trailer();
        if let Some(observers) = self.observers() {
            observers.end(status, &mut metadata);
        }
        if let Some(stats) = &self.stats {
            let event = StatsEvent::OutTrailer {
                metadata: &metadata,
            };
            stats.emit(self.ctx.full_method(), &event);
        }
        if status.is_ok() && metadata.is_empty() {
            return OK_TRAILERS.clone();
        }
        let status_headers = if status.is_ok() { 1 } else { STATUS_HEADERS };
        let mut trailers = HeaderMap::with_capacity(status_headers + metadata.len());
        match status {
            Err(status) => status.write_trailers(&mut trailers),
            Ok(()) => {
                trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
            }
        }
        metadata.write_headers(&mut trailers);
        trailers
    }

    /// Idle -> Done: a unary call's whole response (headers, message, OK trailers) as
    /// one item. Already streaming (a client-streaming handler that sent headers):
    /// the message, boxed, for `send_frame`, then the status from `finish`.
    fn unary_step<M: IntoAnyMessage>(&self, message: M) -> ReplyStep {
        let mut state = self.state();
        if !matches!(*state, SendState::Idle { .. }) {
            return ReplyStep::Stream(message.into_any());
        }
        let (head, encoding) = self.response_head();
        let mut buf = BytesMut::new();
        // Encoding fails before anything went out: the state stays Idle and the
        // status is sent as a Trailers-Only response.
        let data = match message
            .message()
            .encode_frame(&mut buf, self.max_send, encoding)
        {
            Ok(data) => data,
            Err(status) => return ReplyStep::Done(Err(status)),
        };
        self.sent(message.message(), &data);
        let trailers = self.trailers(&Ok(()));
        let SendState::Idle { respond, watcher } = std::mem::replace(&mut *state, SendState::Done)
        else {
            unreachable!("checked Idle above, under the same lock")
        };
        if let Some(watcher) = watcher {
            watcher.wake();
        }
        let reply = UnaryReply {
            respond,
            head,
            data,
            trailers,
        };
        // Inside the connection's task the writer would hand it to h2 later in this
        // same wake-up: do it now, without the item's box and the queue (~500
        // instructions a call; callgrind, h2load 8x50 10 B).
        if dispatch::in_connection_task() {
            reply.hand_to_h2();
            return ReplyStep::Done(Ok(()));
        }
        ReplyStep::Queue(Item::Unary(Box::new(reply)))
    }

    /// Shows `message` to the observers, then sends it (or their replacement).
    async fn send_message<T: prost::Message + 'static>(
        &self,
        message: &T,
        buf: &mut BytesMut,
        compress: bool,
    ) -> Result<(), Status> {
        if let Some(observers) = self.observers() {
            if let Some(replacement) = observers.send(message)? {
                return self.send_frame(&*replacement, buf, compress).await;
            }
        }
        self.send_frame(message, buf, compress).await
    }

    /// Encodes, compresses if the call compresses and `compress` allows, and sends.
    async fn send_frame<T: AnyMessage + ?Sized>(
        &self,
        message: &T,
        buf: &mut BytesMut,
        compress: bool,
    ) -> Result<(), Status> {
        let (encoding, quota) = self.start().await?;
        let encoding = encoding.filter(|_| compress);
        let frame = message.encode_frame(buf, self.max_send, encoding)?;
        let permits = Writer::acquire(&quota, frame.len()).await?;
        if self.reports_end() {
            self.sent(message, &frame);
        }
        self.writer()
            .send(Item::Data {
                key: self.key,
                data: frame,
                permits,
            })
            .await
    }

    /// -> Done: sends the status in the trailers, or as a Trailers-Only response when
    /// no headers went out (PROTOCOL-HTTP2.md, "Trailers-Only"). The item is queued
    /// at once when the queue has room; only a wait for room is a future of its own
    /// (boxed), so that every call's future does not carry one.
    async fn finish(&self, status: Result<(), Status>) {
        let Some(item) = self.final_item(status) else {
            return;
        };
        if let Ok(Some(item)) = self.writer().try_send(item) {
            let _ = Box::pin(self.writer().send(item)).await;
        }
    }

    /// The item that ends the stream with `status`, unless it has ended.
    fn final_item(&self, status: Result<(), Status>) -> Option<Item> {
        let mut state = self.state();
        Some(match std::mem::replace(&mut *state, SendState::Done) {
            SendState::Done => return None,
            SendState::Idle { respond, watcher } => {
                if let Some(watcher) = watcher {
                    watcher.wake();
                }
                let metadata = self.header_metadata(true).0;
                let trailers = self.trailers(&status);
                let mut head = grpc_response_head(metadata.len() + trailers.len());
                metadata.write_headers(head.headers_mut());
                head.headers_mut().extend(trailers);
                trailers_only(self.key, respond, head)
            }
            SendState::Streaming { .. } => Item::Trailers {
                key: self.key,
                trailers: Box::new(self.trailers(&status)),
            },
        })
    }
}

/// A unary reply after its message was encoded (`Sender::reply`).
enum ReplyStep {
    /// Nothing left to send: kept for the interceptors, or it failed to encode.
    Done(Result<(), Status>),
    /// The whole response, for the writer.
    Queue(Item),
    /// The headers had gone out: the message goes as streamed data.
    Stream(Box<dyn AnyMessage>),
}

/// A reply message, typed (from a handler) or already boxed (from the interceptors).
trait IntoAnyMessage {
    fn message(&self) -> &dyn AnyMessage;
    fn into_any(self) -> Box<dyn AnyMessage>;
}

impl<T: prost::Message + 'static> IntoAnyMessage for T {
    fn message(&self) -> &dyn AnyMessage {
        self
    }
    fn into_any(self) -> Box<dyn AnyMessage> {
        Box::new(self)
    }
}

impl IntoAnyMessage for Box<dyn AnyMessage> {
    fn message(&self) -> &dyn AnyMessage {
        &**self
    }
    fn into_any(self) -> Box<dyn AnyMessage> {
        self
    }
}

/// A response that is only headers with the status in them.
fn trailers_only(key: StreamKey, respond: SendResponse<Bytes>, head: http::Response<()>) -> Item {
    Item::Respond {
        key,
        respond,
        head: Box::new(head),
        end_of_stream: true,
        on_reset: None,
        quota: None,
    }
}

/// The headers a failed status takes at most: grpc-status, grpc-message,
/// grpc-status-details-bin (the status's own metadata aside).
const STATUS_HEADERS: usize = 3;

/// A response head with `content-type` and room for `more` headers: sized, because
/// `HeaderMap`'s first insert reserves six entries (624 bytes) where a unary reply
/// usually has one.
fn grpc_response_head(more: usize) -> http::Response<()> {
    // A clone of a built map costs half of building one (the hashing and probing of
    // an insert), callgrind, h2load 8x50; room for `more` only when some follow.
    let mut headers = RESPONSE_HEAD.clone();
    if more > 0 {
        headers.reserve(more);
    }
    let mut head = http::Response::new(());
    *head.headers_mut() = headers;
    head
}

/// The response headers of a call that sends no initial metadata and no encoding.
static RESPONSE_HEAD: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers
});

/// The trailers of an OK call that sends no trailing metadata (see `RESPONSE_HEAD`).
static OK_TRAILERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
    trailers
});

impl ServerStream {
    /// The call's context.
    pub fn context(&self) -> ServerContext {
        self.sender.ctx.clone()
    }

    /// Reads the single request of a unary or server-streaming call.
    pub async fn recv_single<T: prost::Message + Default + 'static>(
        &mut self,
    ) -> Result<T, Status> {
        // statuscodes.md: "Request cardinality violation (method requires exactly one
        // request but client sent some other number of requests) | UNIMPLEMENTED".
        let Some(payload) = self.reader.next_to_decode().await? else {
            return Err(Status::unimplemented(
                "request stream ended without a message for a single-request method",
            ));
        };
        self.sender
            .ctx
            .set_request_compressed(self.reader.last_compressed());
        let length = payload.len();
        let mut message = decode::<T>(payload)?;
        if self.sender.watches_requests() {
            self.sender.received(&mut message, length, &self.reader)?;
        }
        if self.reader.next().await?.is_some() {
            return Err(Status::unimplemented(
                "more than one request message for a single-request method",
            ));
        }
        Ok(message)
    }

    /// Sends one response message.
    pub async fn send_message<T: prost::Message + 'static>(
        &mut self,
        message: &T,
    ) -> Result<(), Status> {
        let mut buf = BytesMut::new();
        self.sender.send_message(message, &mut buf, true).await
    }

    /// Sends a unary call's response with its OK status in one control-buffer item
    /// (or, when the call is intercepted, leaves it for the interceptors).
    pub(crate) fn reply<T: prost::Message + 'static>(
        &mut self,
        message: T,
    ) -> impl Future<Output = Result<(), Status>> + Send + '_ {
        let step = self.sender.reply(message);
        self.sender.send_step(step)
    }

    /// Splits into typed halves.
    pub fn split<Req, Resp>(self) -> (RecvStream<Req>, SendStream<Resp>) {
        let observed = self.sender.watches_requests().then(|| self.sender.clone());
        (
            RecvStream {
                reader: self.reader,
                ctx: self.sender.ctx.clone(),
                ended: false,
                observed,
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

fn decode<T: prost::Message + Default>(payload: Received) -> Result<T, Status> {
    payload
        .decode()
        .map_err(|e| Status::internal(format!("failed to decode request: {e}")))
}

/// The requests of a client-streaming or bidi call, as the handler reads them.
///
/// Read with [`RecvStream::message`], or as a [`Stream`] of `Result<T, Status>`
/// (`StreamExt` adapters, `tokio-stream`, ...): each request is `Some(Ok(_))`; the
/// stream yields `None` once the client closed its side, and after one `Some(Err(_))`
/// when reading failed.
pub struct RecvStream<T> {
    reader: MessageReader,
    ctx: ServerContext,
    /// The `Stream` has yielded its end (`None`) or an error; it yields `None` now.
    ended: bool,
    /// The sender of a call with interceptors or stats, whose observers and stats
    /// handler see each request.
    observed: Option<Arc<Sender>>,
    _message: PhantomData<fn() -> T>,
}

impl<T: prost::Message + Default + 'static> Stream for RecvStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let item = ready!(this.poll_message(cx)).transpose();
        this.ended = !matches!(item, Some(Ok(_)));
        Poll::Ready(item)
    }
}

impl<T: prost::Message + Default + 'static> FusedStream for RecvStream<T> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl<T: prost::Message + Default + 'static> RecvStream<T> {
    /// The next message, or `None` once the client has closed its side.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        match ready!(self.reader.poll_to_decode(cx))? {
            Some(payload) => {
                self.ctx
                    .set_request_compressed(self.reader.last_compressed());
                let length = payload.len();
                let mut message = decode::<T>(payload)?;
                if let Some(sender) = &self.observed {
                    sender.received(&mut message, length, &self.reader)?;
                }
                Poll::Ready(Ok(Some(message)))
            }
            None => Poll::Ready(Ok(None)),
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

impl<T: prost::Message + 'static> SendStream<T> {
    /// Sends the call's only response with its OK status as one control-buffer item
    /// (a client-streaming reply, like a unary one), or leaves it for the
    /// interceptors.
    pub(crate) fn reply(self, message: T) -> impl Future<Output = Result<(), Status>> + Send {
        let step = self.sender.reply(message);
        async move { self.sender.send_step(step).await }
    }

    /// Sends one message; the response headers go out first if they have not yet.
    pub async fn send(&mut self, message: &T) -> Result<(), Status> {
        self.sender
            .send_message(message, &mut self.buf, self.compress)
            .await
    }

    /// Sends every message of `messages` in order, each as [`SendStream::send`] does
    /// (waiting while the client is not reading), e.g.
    /// `responses.send_all(futures_util::stream::iter(features)).await?`. Stops at the
    /// first send that fails and returns its status; later messages are not taken
    /// from the stream. The call ends when the handler returns.
    ///
    /// The items are the messages themselves. To forward a fallible source (another
    /// call's responses, items `Result<T, Status>`), loop over its `message()` and
    /// `send`, so that its error is returned instead of being taken for an end.
    pub async fn send_all<S: Stream<Item = T>>(&mut self, messages: S) -> Result<(), Status> {
        let mut messages = std::pin::pin!(messages);
        while let Some(message) = std::future::poll_fn(|cx| messages.as_mut().poll_next(cx)).await {
            self.send(&message).await?;
        }
        Ok(())
    }

    /// Turns compression of the following messages off or on; it applies only when the
    /// call has a response encoding (see [`ServerContext::set_compression`]).
    pub fn set_compress(&mut self, compress: bool) {
        self.compress = compress;
    }
}

/// A routed call, ready to run: what its future keeps beside the handler's. Checking,
/// routing and building the call happen before it is boxed (`start_call`), so the
/// request head, its header map and the routing state never take room in the future
/// that lives as long as the call (a box of 1.4 KiB per call went through glibc's slow
/// path; tcache serves up to 1 KiB).
pub(crate) struct RoutedCall {
    /// Counts the stream as active until the call has ended.
    guard: StreamGuard,
    /// Holds the call's context too.
    sender: Arc<Sender>,
    deadline: Option<Instant>,
}

/// Checks and routes an accepted stream and builds its call's future. A rejected
/// stream gets its answer here (HTTP) or in the returned future (a gRPC status, which
/// goes through the writer).
fn start_call(streams: &Arc<Streams>, accepted: Accepted) -> StreamFuture {
    let Accepted {
        key,
        request,
        mut respond,
        guard,
    } = accepted;
    let conn = guard.conn();
    let (parts, body) = request.into_parts();
    let checked = request::check(&parts).and_then(|head| {
        let handler = streams
            .router
            .route(parts.uri.path())
            .map_err(|status| Reject::Grpc {
                status,
                list_encodings: false,
            })?;
        Ok((head, handler))
    });
    let (head, handler) = match checked {
        Ok(checked) => checked,
        Err(Reject::Http(code)) => {
            reject_http(&mut respond, code);
            return Box::pin(std::future::ready(()));
        }
        Err(Reject::Grpc {
            status,
            list_encodings,
        }) => {
            // The status, and grpc-accept-encoding when the encoding was refused.
            let mut head = grpc_response_head(STATUS_HEADERS + 1);
            status.write_trailers(head.headers_mut());
            if list_encodings {
                head.headers_mut().insert(
                    GRPC_ACCEPT_ENCODING,
                    HeaderValue::from_static(ACCEPT_ENCODING),
                );
            }
            let item = trailers_only(key, respond, head);
            return Box::pin(async move {
                let _ = guard.conn().writer.send(item).await;
            });
        }
    };
    let deadline = head.timeout.map(|t| Instant::now() + t);
    let config = &streams.config;
    let intercepted = !streams.interceptors.is_empty();
    // The request metadata is sorted out here only when a stats handler or the
    // interceptors need it; otherwise on the handler's first read, if it reads it.
    let received = match streams.stats.is_some() || intercepted {
        true => RequestMetadata::Ready(Metadata::from_received(parts.headers)),
        false => RequestMetadata::Raw(parts.headers),
    };
    let stats = match (&streams.stats, &received) {
        (Some(stats), RequestMetadata::Ready(metadata)) => {
            let call = CallStats::begin(stats, parts.uri.path(), false, handler.kind);
            let event = StatsEvent::InHeader {
                metadata,
                compression: head.encoding,
            };
            call.emit(parts.uri.path(), &event);
            Some(call)
        }
        _ => None,
    };
    // An intercepted call's handler gets the metadata the interceptors leave.
    let (ctx_metadata, metadata) = match (intercepted, received) {
        (true, RequestMetadata::Ready(metadata)) => (None, Some(metadata)),
        (_, received) => (Some(received), None),
    };
    let ctx = ServerContext::new(
        parts.uri,
        ctx_metadata,
        deadline,
        conn.clone(),
        head.accepts_gzip,
        config.send_compression,
    );
    let trace = CallTrace::new(false, ctx.full_method(), &conn.peer);
    let sender = Arc::new(Sender {
        key,
        max_send: config.max_send_message_size,
        ctx,
        state: Mutex::new(SendState::Idle {
            respond,
            watcher: None,
        }),
        intercepted: OnceLock::new(),
        stats,
        trace,
    });
    let stream = ServerStream {
        reader: MessageReader::new(body, config.max_recv_message_size, head.encoding),
        sender: sender.clone(),
    };
    let routed = RoutedCall {
        guard,
        sender,
        deadline,
    };
    match (metadata, &routed.sender.trace) {
        // The usual call: the handler's future inside the call's, in one box.
        (None, None) => handler.call.run(stream, routed),
        // The handler (and interceptors) run inside the call's span, when there is
        // one; without, the future is not wrapped at all (no enter and exit per poll).
        (metadata, trace) => {
            let span = trace.as_ref().map(|trace| trace.span().clone());
            let call = match metadata {
                None => handler.call.call(stream),
                Some(metadata) => {
                    let call =
                        ServerCall::new(handler.kind, metadata, stream, routed.sender.clone());
                    Box::pin(intercept(streams.clone(), handler.clone(), call))
                }
            };
            let call = match span {
                Some(span) => Box::pin(tracing::Instrument::instrument(call, span)),
                None => call,
            };
            Box::pin(routed.run(call))
        }
    }
}

impl RoutedCall {
    /// Runs the call to its end (see `transport::dispatch` for where). The handler is
    /// polled alone first: a call that finishes in that poll (the usual unary call)
    /// never sets up its deadline timer or its watches, and they take no room in this
    /// future, which every call boxes; a call that waits boxes them then (`watch`).
    ///
    /// The handler's future is polled where it lies, as the block's own `Option`
    /// (`None` once it is dropped, on its return or where the call ends without it).
    /// Not an async fn: one moves each argument into a local of its body, so the
    /// handler's future would take its room twice (rust-lang/rust#62958) and this box
    /// would outgrow glibc's 1 KiB cache (+800 instructions a call; callgrind, h2load
    /// 8x50 10 B).
    #[allow(clippy::manual_async_fn)] // on purpose, as said above
    pub(crate) fn run<F>(self, handler: F) -> impl Future<Output = ()> + Send
    where
        F: Future<Output = Result<(), Status>> + Send,
    {
        // Wrapped here, before the block captures it: inside, it would be a move.
        let mut handler = Some(handler);
        async move {
            // SAFETY: `handler` is this future's own field, shadowed here so it is
            // never named or moved again, and this future is pinned whenever it is
            // polled: the place does not move until it is dropped (what
            // `std::pin::pin!` ensures, without its move).
            let mut handler = unsafe { Pin::new_unchecked(&mut handler) };
            let first =
                std::future::poll_fn(|cx| Poll::Ready(panic::poll_caught(handler.as_mut(), cx)))
                    .await;
            let result = match first {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    let watched = watch(&self.sender, self.guard.conn(), handler, self.deadline);
                    match Box::pin(watched).await {
                        Some(result) => result,
                        // Reset by the client or cancelled with the connection: `watch`
                        // ended the call.
                        None => return,
                    }
                }
            };
            // The stream's guard (in `self`) is dropped after this: the call counts
            // as active until its status is out.
            match self.sender.reports_end() {
                false => self.sender.finish(result).await,
                true => {
                    self.sender.finish(result.clone()).await;
                    self.sender.ended(&result);
                }
            }
        }
    }
}

/// How a waiting call ended (`watch`).
enum End {
    /// The handler returned.
    Returned(Result<(), Status>),
    /// Its deadline passed.
    Deadline,
    /// The client reset the stream.
    Reset,
    /// The connection's calls were cancelled (forced stop).
    Cancelled,
}

/// Runs a call whose handler waited in its first poll until the handler returns, its
/// deadline passes, the client resets the stream or the connection's calls are
/// cancelled. The handler's future is dropped in the last three cases: that is how a
/// handler learns it was cancelled, and nothing of the call is left behind. Returns
/// the status to send, or `None` when the call has ended here (reset, cancelled).
async fn watch<F>(
    sender: &Sender,
    conn: &ConnShared,
    mut call: Pin<&mut Option<F>>,
    deadline: Option<Instant>,
) -> Option<Result<(), Status>>
where
    F: Future<Output = Result<(), Status>>,
{
    // In place: this future is boxed already (`RoutedCall::run`).
    let mut timer = std::pin::pin!(
        deadline.map(|d| tokio::time::sleep_until(tokio::time::Instant::from_std(d)))
    );
    let mut reset = std::pin::pin!(client_reset(sender));
    let mut cancelled = std::pin::pin!(conn.cancelled.wait());
    // The handler was polled just before (`RoutedCall::run`), in the same wake-up.
    let mut polled = true;
    let end = std::future::poll_fn(|cx| {
        if !std::mem::take(&mut polled) {
            if let Poll::Ready(result) = panic::poll_caught(call.as_mut(), cx) {
                return Poll::Ready(End::Returned(result));
            }
        }
        if let Some(timer) = timer.as_mut().as_pin_mut() {
            if timer.poll(cx).is_ready() {
                return Poll::Ready(End::Deadline);
            }
        }
        if reset.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Reset);
        }
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Cancelled);
        }
        Poll::Pending
    })
    .await;
    // Dropped in place (a returned handler's future is gone already).
    call.set(None);
    match end {
        End::Returned(result) => Some(result),
        End::Deadline => Some(Err(Status::deadline_exceeded("deadline exceeded"))),
        End::Reset => {
            sender.ctx.set_reset();
            let reset = Err(Status::cancelled("the client cancelled the call"));
            if let Some(observers) = sender.observers() {
                observers.end(&reset, &mut Metadata::new());
            }
            sender.ended(&reset);
            None
        }
        // Forced stop: the connection closes with a GOAWAY right after; the client
        // sees its call fail UNAVAILABLE.
        End::Cancelled => {
            let stopped = Err(Status::unavailable("the server is shutting down"));
            sender.finish(stopped.clone()).await;
            sender.ended(&stopped);
            None
        }
    }
}

/// An intercepted call: the chain, then the reply it let through (a unary or
/// client-streaming call's), sent with its OK status as one item, as a call without
/// interceptors sends it.
async fn intercept(
    streams: Arc<Streams>,
    handler: crate::Handler,
    mut call: ServerCall,
) -> Result<(), Status> {
    let next = ServerNext::new(&streams.interceptors, &handler);
    let result = next.run(&mut call).await;
    // Short-circuited: the observers still see the end.
    call.install_observers();
    let reply = call.take_response();
    match (result, reply) {
        (Ok(()), Some(reply)) => call.sender().send_reply(reply).await,
        (Ok(()), None) if !handler.kind.server_streams() => Err(Status::internal(
            "the interceptors ended a single-response call without a response",
        )),
        (result, _) => result,
    }
}

/// Completes when the client resets the stream. While the response handle is ours
/// (Idle) h2 is asked directly; once it is with the writer (Streaming) the writer
/// reports the reset through a oneshot (controlbuf `poll_resets`). A unary reply
/// handed over whole leaves nothing to watch.
async fn client_reset(sender: &Sender) {
    std::future::poll_fn(|cx| {
        let mut state = sender.state();
        match &mut *state {
            SendState::Idle { respond, watcher } => match respond.poll_reset(cx) {
                Poll::Ready(_) => Poll::Ready(()),
                Poll::Pending => {
                    // Woken again when the state moves on.
                    *watcher = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
            // Sent: the client reset the idle stream. Dropped: the writer forgot the
            // stream because h2 failed it (a reset seen while data was queued, or the
            // connection went away); it only forgets a healthy stream after the
            // trailers, and by then this future is gone. Either way the handler has
            // no one left to answer.
            SendState::Streaming { reset, .. } => std::pin::Pin::new(reset).poll(cx).map(|_| ()),
            SendState::Done => Poll::Pending,
        }
    })
    .await
}

fn reject_http(respond: &mut SendResponse<Bytes>, status: StatusCode) {
    let mut head = http::Response::new(());
    *head.status_mut() = status;
    let _ = respond.send_response(head, true);
}
