//! Server interceptors: an async chain around every routed call, in the order they
//! were added to the [`crate::Server`] (grpc-go's `ChainUnaryInterceptor` /
//! `ChainStreamInterceptor`: the first added is the outermost).
//!
//! ```text
//!  request head ─▶ route ─▶ first.intercept(call, next) ─▶ ... ─▶ last ─▶ handler
//!                               │ before next: read / change the request metadata,
//!                               │   register a CallObserver, or return Err (the
//!                               │   handler never runs; the status is the reply)
//!                               │ after next: the handler's status (returned, maybe
//!                               ▼   changed), a unary reply (ServerCall::response_mut)
//!  trailers ◀── status and trailers ◀── deferred unary reply ◀── chain returns
//! ```
//!
//! One trait for all four RPC kinds: the call says which ([`ServerCall::kind`], with
//! [`ServerCall::full_method`]: grpc-go's `UnaryServerInfo` / `StreamServerInfo`).
//! What grpc-go's stream interceptor does by wrapping the `ServerStream` (seeing
//! each `RecvMsg` / `SendMsg`), a [`CallObserver`] does here, for every kind. With
//! no interceptor the call takes the path it took before: one `is_empty` branch.

use std::sync::Arc;

use super::ServerContext;
use super::service::Handler;
use super::stream::{Sender, ServerStream};
use crate::interceptor::{AnyMessage, BoxFuture, CallObserver, Observers, RpcKind};
use crate::metadata::Metadata;
use crate::status::Status;
use crate::transport::io::PeerAddr;

/// An async server interceptor (grpc-go's `UnaryServerInterceptor` and
/// `StreamServerInterceptor` in one). Added with [`crate::Server::interceptor`].
///
/// ```
/// use rgrpc_runtime::{BoxFuture, ServerCall, ServerInterceptor, ServerNext, Status};
///
/// struct RequireToken;
///
/// impl ServerInterceptor for RequireToken {
///     fn intercept<'a>(
///         &'a self,
///         call: &'a mut ServerCall,
///         next: ServerNext<'a>,
///     ) -> BoxFuture<'a, Result<(), Status>> {
///         Box::pin(async move {
///             if call.metadata().get("authorization") != Some("Bearer let-me-in") {
///                 return Err(Status::unauthenticated("missing or wrong bearer token"));
///             }
///             next.run(call).await
///         })
///     }
/// }
/// ```
pub trait ServerInterceptor: Send + Sync + 'static {
    /// Handles one call: usually does something, runs `next.run(call).await` (the
    /// rest of the chain and the handler) and returns its status, or another.
    /// Returning without running `next` answers the call with the returned status
    /// (an `Ok` without a handler is answered INTERNAL for a unary or
    /// client-streaming call, which must have a response, unless the interceptor set
    /// one with [`ServerCall::set_response`]).
    ///
    /// A deadline, a client's reset or a forced stop drops the chain's future, as it
    /// drops a handler's; the end still reaches the call's observers
    /// ([`CallObserver::on_end`]).
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>>;
}

/// The rest of the chain after an interceptor, ending in the handler.
pub struct ServerNext<'a> {
    rest: &'a [Arc<dyn ServerInterceptor>],
    handler: &'a Handler,
}

impl std::fmt::Debug for ServerNext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerNext")
            .field("interceptors_left", &self.rest.len())
            .finish()
    }
}

impl<'a> ServerNext<'a> {
    pub(super) fn new(rest: &'a [Arc<dyn ServerInterceptor>], handler: &'a Handler) -> Self {
        ServerNext { rest, handler }
    }

    /// Runs the rest of the chain and the handler; returns the handler's status (or
    /// an inner interceptor's). `run` takes `self`: the handler runs at most once.
    pub fn run<'b>(self, call: &'b mut ServerCall) -> BoxFuture<'b, Result<(), Status>>
    where
        'a: 'b,
    {
        match self.rest.split_first() {
            Some((first, rest)) => first.intercept(
                call,
                ServerNext {
                    rest,
                    handler: self.handler,
                },
            ),
            None => Box::pin(run_handler(call, self.handler)),
        }
    }
}

/// One call as the server's interceptors see it.
pub struct ServerCall {
    kind: RpcKind,
    ctx: ServerContext,
    /// The request metadata; the handler gets a copy when it starts.
    metadata: Metadata,
    /// Registered by the interceptors; moved to the sender when the handler starts
    /// (or, if it never does, when the chain returns).
    observers: Vec<Box<dyn CallObserver>>,
    /// The handler's stream, until the handler runs.
    stream: Option<ServerStream>,
    sender: Arc<Sender>,
    /// A unary or client-streaming handler's reply, held back until the chain returns.
    response: Option<Box<dyn AnyMessage>>,
}

impl std::fmt::Debug for ServerCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCall")
            .field("full_method", &self.full_method())
            .field("kind", &self.kind)
            .field("metadata", &self.metadata)
            .field("observers", &self.observers.len())
            .field("handler_ran", &self.stream.is_none())
            .finish()
    }
}

impl ServerCall {
    pub(super) fn new(
        kind: RpcKind,
        metadata: Metadata,
        stream: ServerStream,
        sender: Arc<Sender>,
    ) -> ServerCall {
        ServerCall {
            kind,
            ctx: stream.context(),
            metadata,
            observers: Vec::new(),
            stream: Some(stream),
            sender,
            response: None,
        }
    }

    /// The full method name, e.g. `/helloworld.Greeter/SayHello`.
    pub fn full_method(&self) -> &str {
        self.ctx.full_method()
    }

    /// Which of the four kinds the method is.
    pub fn kind(&self) -> RpcKind {
        self.kind
    }

    /// The client's address.
    pub fn peer(&self) -> &PeerAddr {
        self.ctx.peer()
    }

    /// The call's context: deadline, cancellation, and the response metadata to add
    /// to (`set_header`, `set_trailer`). Its request metadata is set when the handler
    /// starts; until then read [`ServerCall::metadata`].
    pub fn context(&self) -> &ServerContext {
        &self.ctx
    }

    /// The client's request metadata, as the handler will see it.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The request metadata to change before `next.run`: the handler sees the
    /// changes (in [`ServerContext::metadata`]). Changes made after the handler
    /// started reach nobody.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Registers `observer` for this call: it sees every message, the response
    /// headers and the end (see [`CallObserver`]). Register before `next.run`.
    pub fn observe(&mut self, observer: impl CallObserver) {
        self.observers.push(Box::new(observer));
    }

    /// After `next.run`, the reply of a unary or client-streaming handler that has
    /// not gone out yet (it is sent when the chain returns `Ok`), to read by
    /// downcasting to the method's response type.
    pub fn response(&self) -> Option<&dyn std::any::Any> {
        self.response.as_deref().map(AnyMessage::as_any)
    }

    /// The reply, to change in place (see [`ServerCall::response`]).
    pub fn response_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        self.response.as_deref_mut().map(AnyMessage::as_any_mut)
    }

    /// Sets the reply of a unary or client-streaming call (replacing the handler's),
    /// e.g. from a cache without running `next`. It must be of the method's response
    /// type: the client decodes it as that.
    pub fn set_response<T: prost::Message + 'static>(&mut self, response: T) {
        self.response = Some(Box::new(response));
    }

    /// Hands the observers to the sender, once: when the handler starts, or when the
    /// chain returns without it.
    pub(super) fn install_observers(&mut self) {
        let observers = Observers::new(std::mem::take(&mut self.observers), true);
        self.sender.intercept(observers);
    }

    pub(super) fn sender(&self) -> &Arc<Sender> {
        &self.sender
    }

    /// The reply to send when the chain returned OK.
    pub(super) fn take_response(&mut self) -> Option<Box<dyn AnyMessage>> {
        self.response.take()
    }
}

/// The end of the chain: the handler, with the interceptors' metadata and observers.
async fn run_handler(call: &mut ServerCall, handler: &Handler) -> Result<(), Status> {
    let Some(stream) = call.stream.take() else {
        return Err(Status::internal("an interceptor ran the handler twice"));
    };
    call.ctx.set_metadata(call.metadata.clone());
    call.install_observers();
    let result = handler.call.call(stream).await;
    if let Some(reply) = call.sender.take_reply() {
        call.response = Some(reply);
    }
    result
}
