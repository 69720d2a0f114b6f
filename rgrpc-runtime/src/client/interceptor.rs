//! Client interceptors: an async chain around every call of a [`Channel`], in the
//! order they were added to its [`crate::ChannelBuilder`] (grpc-go's
//! `WithChainUnaryInterceptor` / `WithChainStreamInterceptor`: the first added is
//! the outermost).
//!
//! ```text
//!  caller ─▶ first.intercept(call, next) ─▶ ... ─▶ last ─▶ the call (run_call)
//!              │ before next: read / change the request metadata, the options and   │
//!              │   the request message; register a CallObserver; or return Err     │ wait, open,
//!              │   (nothing is sent) or Ok with ClientCall::set_response (a cache)  │ send, and for
//!              │ after next: a unary call's response, headers, trailers and status  │ unary: read
//!              ▼   (to read or change); a streaming call's stream is open           ▼ to the end
//! ```
//!
//! The chain runs under the call's deadline (its timeout and its method config's,
//! fixed as the call begins, as grpc-go's interceptors run under the call's context):
//! an interceptor that stalls ends the call DEADLINE_EXCEEDED, and the attempts get
//! what is left.
//!
//! The chain wraps the call as a whole, as grpc-go's interceptors do; `run_call` at
//! its end is the attempt layer (`call.rs`, `retry/`): one attempt, or the retry or
//! hedging policy's attempts, and a transparent retry; the stats handler sees each
//! attempt while the interceptors see the call once. A streaming call's chain
//! returns once its stream is open; its messages, headers and end reach the
//! [`CallObserver`]s (grpc-go's wrapped `ClientStream`). With no interceptor a call
//! takes the path it took before: one `is_empty` branch.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use super::call::{Prepared, RecvHalf, SendHalf, call_settings, until};
use super::channel::Channel;
use crate::call::{CallOptions, Response};
use crate::codec::reader::Received;
use crate::interceptor::{AnyMessage, BoxFuture, CallObserver, Observers, RpcKind, downcast};
use crate::metadata::Metadata;
use crate::status::Status;

/// An async client interceptor (grpc-go's `UnaryClientInterceptor` and
/// `StreamClientInterceptor` in one). Added with
/// [`crate::ChannelBuilder::interceptor`].
///
/// ```
/// use rgrpc_runtime::{BoxFuture, ClientCall, ClientInterceptor, ClientNext, Status};
///
/// struct BearerToken(String);
///
/// impl ClientInterceptor for BearerToken {
///     fn intercept<'a>(
///         &'a self,
///         call: &'a mut ClientCall,
///         next: ClientNext<'a>,
///     ) -> BoxFuture<'a, Result<(), Status>> {
///         Box::pin(async move {
///             call.metadata_mut()
///                 .insert("authorization", &format!("Bearer {}", self.0))?;
///             next.run(call).await
///         })
///     }
/// }
/// ```
pub trait ClientInterceptor: Send + Sync + 'static {
    /// Handles one call: usually does something, runs `next.run(call).await` (the
    /// rest of the chain and the call itself) and returns its status, or another.
    /// For a unary call `next.run` returns when the call has ended; for a streaming
    /// one when its stream is open (its end reaches [`CallObserver::on_end`]).
    /// Returning `Err` fails the call with that status; returning without running
    /// `next` sends nothing (a unary call then needs [`ClientCall::set_response`]).
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>>;
}

/// The rest of the chain after an interceptor, ending in the call.
pub struct ClientNext<'a> {
    rest: &'a [Arc<dyn ClientInterceptor>],
}

impl std::fmt::Debug for ClientNext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientNext")
            .field("interceptors_left", &self.rest.len())
            .finish()
    }
}

impl<'a> ClientNext<'a> {
    /// Runs the rest of the chain and the call (`run` takes `self`: at most once).
    pub fn run<'b>(self, call: &'b mut ClientCall) -> BoxFuture<'b, Result<(), Status>>
    where
        'a: 'b,
    {
        match self.rest.split_first() {
            Some((first, rest)) => first.intercept(call, ClientNext { rest }),
            None => Box::pin(run_call(call)),
        }
    }
}

type Decode = fn(Received) -> Result<Box<dyn Any + Send>, Status>;

/// One call as the channel's interceptors see it.
pub struct ClientCall {
    channel: Channel,
    path: &'static str,
    kind: RpcKind,
    options: CallOptions,
    /// The request of a unary or server-streaming call, until it is sent.
    request: Option<Box<dyn AnyMessage>>,
    /// Decodes a unary call's response as the method's type.
    decode: Decode,
    observers: Vec<Box<dyn CallObserver>>,
    ran: bool,
    /// The call's deadline, from its options and its method config, fixed when the
    /// call begins: the whole chain runs under it, and the attempts get what is left.
    deadline: Option<Instant>,
    /// A unary call's outcome, once `next.run` returned.
    response: Option<Box<dyn Any + Send>>,
    headers: Metadata,
    trailers: Metadata,
    /// A streaming call's open stream, handed to the caller when the chain returns.
    halves: Option<(SendHalf, RecvHalf)>,
}

impl std::fmt::Debug for ClientCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCall")
            .field("full_method", &self.path)
            .field("kind", &self.kind)
            .field("options", &self.options)
            .field("observers", &self.observers.len())
            .field("ran", &self.ran)
            .field("headers", &self.headers)
            .field("trailers", &self.trailers)
            .finish()
    }
}

fn decode_as<T: prost::Message + Default + 'static>(
    payload: Received,
) -> Result<Box<dyn Any + Send>, Status> {
    payload
        .decode::<T>()
        .map(|m| Box::new(m) as Box<dyn Any + Send>)
        .map_err(|e| Status::internal(format!("failed to decode response: {e}")))
}

impl ClientCall {
    fn new<Resp: prost::Message + Default + 'static>(
        channel: &Channel,
        path: &'static str,
        kind: RpcKind,
        options: CallOptions,
        request: Option<Box<dyn AnyMessage>>,
    ) -> ClientCall {
        let timeout = call_settings(channel, path, &options).1.timeout;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        ClientCall {
            channel: channel.clone(),
            path,
            kind,
            options,
            deadline,
            request,
            decode: decode_as::<Resp>,
            observers: Vec::new(),
            ran: false,
            response: None,
            headers: Metadata::new(),
            trailers: Metadata::new(),
            halves: None,
        }
    }

    /// The full method name, e.g. `/helloworld.Greeter/SayHello`.
    pub fn full_method(&self) -> &'static str {
        self.path
    }

    /// Which of the four kinds the method is.
    pub fn kind(&self) -> RpcKind {
        self.kind
    }

    /// The call's options (timeout, compression, metadata, ...).
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// The options to change before `next.run`.
    pub fn options_mut(&mut self) -> &mut CallOptions {
        &mut self.options
    }

    /// The request metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.options.metadata
    }

    /// The request metadata to change before `next.run` (sent with the headers).
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.options.metadata
    }

    /// The request of a unary or server-streaming call before it is sent, to read by
    /// downcasting to the method's request type.
    pub fn request(&self) -> Option<&dyn Any> {
        self.request.as_deref().map(AnyMessage::as_any)
    }

    /// The request, to change in place before `next.run`.
    pub fn request_mut(&mut self) -> Option<&mut dyn Any> {
        self.request.as_deref_mut().map(AnyMessage::as_any_mut)
    }

    /// Registers `observer` for this call: it sees every message, the response
    /// headers and the end (see [`CallObserver`]). Register before `next.run`.
    pub fn observe(&mut self, observer: impl CallObserver) {
        self.observers.push(Box::new(observer));
    }

    /// A unary call's response, after `next.run` returned OK, to read by downcasting
    /// to the method's response type.
    pub fn response(&self) -> Option<&dyn Any> {
        self.response.as_deref().map(|r| r as &dyn Any)
    }

    /// The response, to change in place.
    pub fn response_mut(&mut self) -> Option<&mut dyn Any> {
        self.response.as_deref_mut().map(|r| r as &mut dyn Any)
    }

    /// Sets a unary call's response (replacing the server's), e.g. from a cache
    /// without running `next`. It must be of the method's response type, or the call
    /// fails INTERNAL.
    pub fn set_response<T: Send + 'static>(&mut self, response: T) {
        self.response = Some(Box::new(response));
    }

    /// A unary call's response headers, after `next.run`.
    pub fn headers(&self) -> &Metadata {
        &self.headers
    }

    /// The response headers the caller will see.
    pub fn headers_mut(&mut self) -> &mut Metadata {
        &mut self.headers
    }

    /// A unary call's trailers, after `next.run` (also when it failed).
    pub fn trailers(&self) -> &Metadata {
        &self.trailers
    }

    /// The trailers the caller will see.
    pub fn trailers_mut(&mut self) -> &mut Metadata {
        &mut self.trailers
    }

    async fn run_chain(
        &mut self,
        interceptors: &[Arc<dyn ClientInterceptor>],
    ) -> Result<(), Status> {
        ClientNext { rest: interceptors }.run(self).await
    }
}

/// The end of the chain: the call itself. Where the attempts of a retry policy will
/// go (each its own stream, stats and trace; the interceptors above see one call).
async fn run_call(call: &mut ClientCall) -> Result<(), Status> {
    if std::mem::replace(&mut call.ran, true) {
        return Err(Status::internal("an interceptor ran the call twice"));
    }
    let observers = match call.observers.is_empty() {
        true => None,
        false => Some(Arc::new(Observers::new(
            std::mem::take(&mut call.observers),
            false,
        ))),
    };
    let mut options = call.options.clone();
    // What the chain left of the deadline (an interceptor may have shortened it through
    // `options_mut`, never lengthened it).
    if let Some(deadline) = call.deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        options.timeout = Some(options.timeout.map_or(left, |t| t.min(left)));
    }
    let request = match call.request.as_deref_mut() {
        Some(request) => {
            if let Some(observers) = &observers {
                observers.send_erased(request)?;
            }
            Some(&*request)
        }
        None => None,
    };
    let mut prepared = Prepared::new(&call.channel, call.path, call.kind, options, request)?;
    let ticket = prepared.wait().await?;
    let (send, mut recv) = prepared.open(ticket, observers).await?;
    if call.kind.server_streams() || call.kind.client_streams() {
        call.halves = Some((send, recv));
        return Ok(());
    }
    let result = async {
        let Some(payload) = recv.message().await? else {
            return Err(Status::unimplemented("server sent no response message"));
        };
        let mut response = (call.decode)(payload)?;
        recv.received(&mut *response)?;
        if recv.message().await?.is_some() {
            return Err(Status::unimplemented(
                "server sent more than one response message",
            ));
        }
        Ok(response)
    }
    .await;
    call.headers = recv.headers.take().unwrap_or_default();
    call.trailers = std::mem::take(&mut recv.trailers);
    call.response = Some(result?);
    Ok(())
}

/// An intercepted unary call.
pub(super) async fn unary<Req, Resp>(
    channel: &Channel,
    path: &'static str,
    message: Req,
    options: CallOptions,
) -> Result<Response<Resp>, Status>
where
    Req: prost::Message + 'static,
    Resp: prost::Message + Default + 'static,
{
    let request: Box<dyn AnyMessage> = Box::new(message);
    let mut call = ClientCall::new::<Resp>(channel, path, RpcKind::Unary, options, Some(request));
    let deadline = call.deadline;
    until(deadline, call.run_chain(&channel.config().interceptors)).await?;
    let Some(response) = call.response.take() else {
        return Err(Status::internal(
            "the interceptors ended a unary call without a response",
        ));
    };
    let response = downcast::<Resp>(response)?;
    Ok(Response::new(*response, call.headers, call.trailers))
}

/// An intercepted streaming call: the open stream the chain let through.
pub(super) async fn open<Req, Resp>(
    channel: &Channel,
    path: &'static str,
    kind: RpcKind,
    message: Option<Req>,
    options: CallOptions,
) -> Result<(SendHalf, RecvHalf), Status>
where
    Req: prost::Message + 'static,
    Resp: prost::Message + Default + 'static,
{
    let request = message.map(|m| Box::new(m) as Box<dyn AnyMessage>);
    let mut call = ClientCall::new::<Resp>(channel, path, kind, options, request);
    let deadline = call.deadline;
    until(deadline, call.run_chain(&channel.config().interceptors)).await?;
    call.halves.take().ok_or_else(|| {
        Status::internal("the interceptors ended a streaming call without opening it")
    })
}
