//! Service descriptors and type-erased handlers: what generated code hands the server.
//!
//! The descriptor is static data (as grpc-go's `ServiceDesc`). The handlers are bound at
//! registration, because a Rust static cannot name the implementation's type; each is
//! erased to one trait object (`Erased`), so no generic reaches the server's public types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::interceptor::RpcKind;
use crate::server::stream::RoutedCall;
use crate::server::{RecvStream, SendStream, ServerContext, ServerStream};
use crate::status::Status;
use crate::transport::dispatch::StreamFuture;

/// A service: its full name, its RPCs, the .proto file it came from and that file's
/// encoded descriptor with those of its imports (what server reflection serves).
#[derive(Debug)]
pub struct ServiceDesc {
    /// Full service name, e.g. `helloworld.Greeter`.
    pub service_name: &'static str,
    /// Unary methods.
    pub methods: &'static [MethodDesc],
    /// Streaming methods.
    pub streams: &'static [StreamDesc],
    /// The .proto file that declared the service.
    pub metadata: &'static str,
    /// Encoded `google.protobuf.FileDescriptorProto`s: the file that declared the
    /// service first, then every file it imports, directly or not (each once). Generated
    /// code points these at per-file constants, so a file shared by several services is
    /// in the binary once. Empty for hand-written descriptors that do not need
    /// reflection.
    pub files: &'static [&'static [u8]],
}

/// A unary method.
#[derive(Debug)]
pub struct MethodDesc {
    /// The method's name, e.g. `SayHello`.
    pub method_name: &'static str,
}

/// A streaming method.
#[derive(Debug)]
pub struct StreamDesc {
    /// The method's name.
    pub stream_name: &'static str,
    /// The server sends a stream of messages.
    pub server_streams: bool,
    /// The client sends a stream of messages.
    pub client_streams: bool,
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One method's implementation behind its two entry points, so that its future's type
/// is known where the call's future is built.
pub(crate) trait Erased: Send + Sync {
    /// The handler's future alone, boxed: what the interceptor chain and a traced
    /// call wrap.
    fn call(&self, stream: ServerStream) -> BoxFuture<Result<(), Status>>;
    /// The whole call with the handler's future inside it: one allocation per call,
    /// where the handler's own box and the call's were two (388 instructions of a
    /// small unary call: the allocation, the copy into it, the indirect poll).
    fn run(&self, stream: ServerStream, call: RoutedCall) -> StreamFuture;
}

/// A constructor's closure from the stream to the handler's future.
struct Method<C>(C);

impl<C, Fut> Erased for Method<C>
where
    C: Fn(ServerStream) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    fn call(&self, stream: ServerStream) -> BoxFuture<Result<(), Status>> {
        Box::pin((self.0)(stream))
    }

    fn run(&self, stream: ServerStream, call: RoutedCall) -> StreamFuture {
        Box::pin(call.run((self.0)(stream)))
    }
}

/// One method's implementation, erased. Built by generated `register_*_server`
/// functions through the four constructors.
#[derive(Clone)]
pub struct Handler {
    pub(crate) call: Arc<dyn Erased>,
    /// Which constructor made it: what interceptors are told.
    pub(crate) kind: RpcKind,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handler")
    }
}

impl Handler {
    /// A unary handler: one request in, one response out.
    pub fn unary<Req, Resp, F, Fut>(f: F) -> Handler
    where
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
        F: Fn(ServerContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            call: Arc::new(Method(move |mut stream: ServerStream| {
                let f = f.clone();
                async move {
                    let request: Req = stream.recv_single().await?;
                    let response = f(stream.context(), request).await?;
                    stream.reply(response).await
                }
            })),
            kind: RpcKind::Unary,
        }
    }

    /// A server-streaming handler: one request in, a stream of responses out.
    pub fn server_streaming<Req, Resp, F, Fut>(f: F) -> Handler
    where
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
        F: Fn(ServerContext, Req, SendStream<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            call: Arc::new(Method(move |mut stream: ServerStream| {
                let f = f.clone();
                async move {
                    let request: Req = stream.recv_single().await?;
                    let ctx = stream.context();
                    let (_, tx) = stream.split::<Req, Resp>();
                    f(ctx, request, tx).await
                }
            })),
            kind: RpcKind::ServerStreaming,
        }
    }

    /// A client-streaming handler: a stream of requests in, one response out.
    pub fn client_streaming<Req, Resp, F, Fut>(f: F) -> Handler
    where
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
        F: Fn(ServerContext, RecvStream<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            call: Arc::new(Method(move |stream: ServerStream| {
                let f = f.clone();
                async move {
                    let ctx = stream.context();
                    let (rx, tx) = stream.split::<Req, Resp>();
                    let response = f(ctx, rx).await?;
                    tx.reply(response).await
                }
            })),
            kind: RpcKind::ClientStreaming,
        }
    }

    /// A bidirectional-streaming handler.
    pub fn bidi_streaming<Req, Resp, F, Fut>(f: F) -> Handler
    where
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
        F: Fn(ServerContext, RecvStream<Req>, SendStream<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            call: Arc::new(Method(move |stream: ServerStream| {
                let f = f.clone();
                async move {
                    let ctx = stream.context();
                    let (rx, tx) = stream.split::<Req, Resp>();
                    f(ctx, rx, tx).await
                }
            })),
            kind: RpcKind::BidiStreaming,
        }
    }
}
