//! What the server's and the channel's interceptors share: the kind of an RPC, the
//! per-call [`CallObserver`] an interceptor registers to see each message, the
//! response headers and the end of its call, and the erased message type the runtime
//! carries an interceptor's view of a message in.
//!
//! Messages are erased to `&dyn Any` (grpc-go passes `interface{}`): an interceptor
//! that knows the method's types downcasts, one that does not (logging, metrics) uses
//! the method name and the sizes. The side-specific halves are `server/interceptor.rs`
//! ([`crate::ServerInterceptor`]) and `client/interceptor.rs`
//! ([`crate::ClientInterceptor`]).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};

use crate::codec::compression::{self, Encoding};
use crate::metadata::Metadata;
use crate::status::Status;

/// The future an interceptor returns: boxed, so that neither the interceptor traits
/// nor [`crate::Server`] and [`crate::Channel`] carry a type parameter.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The four kinds of RPC (grpc-go's `StreamDesc` flags, and whether `UnaryServerInfo`
/// or `StreamServerInfo` describes the call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcKind {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response.
    ClientStreaming,
    /// One request, a stream of responses.
    ServerStreaming,
    /// Streams both ways.
    BidiStreaming,
}

impl RpcKind {
    /// Whether the client sends a stream of messages.
    pub fn client_streams(self) -> bool {
        matches!(self, RpcKind::ClientStreaming | RpcKind::BidiStreaming)
    }

    /// Whether the server sends a stream of messages.
    pub fn server_streams(self) -> bool {
        matches!(self, RpcKind::ServerStreaming | RpcKind::BidiStreaming)
    }

    /// The kind's name as the gRPC docs spell it: `unary`, `client_streaming`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RpcKind::Unary => "unary",
            RpcKind::ClientStreaming => "client_streaming",
            RpcKind::ServerStreaming => "server_streaming",
            RpcKind::BidiStreaming => "bidi_streaming",
        }
    }
}

/// Sees one call's messages, its response headers and its end; registered for that
/// call by an interceptor (`ServerCall::observe`, `ClientCall::observe`), which
/// makes one per call and so can keep the call's own state in it (a start time, a
/// message count). Every method has a default that does nothing.
///
/// "Received" and "sent" are from this side's point of view: on a server the
/// requests are received and the responses sent, on a client the reverse. The
/// methods run inline on the call's path: keep them short, and hand slow work to a
/// task.
pub trait CallObserver: Send + Sync + 'static {
    /// A message received, decoded, before the application sees it (a server's
    /// handler, a client's caller). `wire_size` is its length on the wire without the
    /// 5-byte prefix (compressed, if it came compressed). It may be changed in place
    /// (downcast to the method's type); an `Err` fails the call with that status
    /// instead of delivering the message.
    fn on_recv(&self, message: &mut dyn Any, wire_size: usize) -> Result<(), Status> {
        let _ = (message, wire_size);
        Ok(())
    }

    /// A message about to be encoded and sent; `size` is its encoded length
    /// (before compression). `Ok(Some(replacement))` sends `replacement` instead (it
    /// must be of the method's message type, or the send fails INTERNAL); an `Err`
    /// fails the send with that status and nothing goes out.
    fn on_send(
        &self,
        message: &dyn Any,
        size: usize,
    ) -> Result<Option<Box<dyn Any + Send>>, Status> {
        let _ = (message, size);
        Ok(None)
    }

    /// The response headers (initial metadata): on a server just before they are
    /// sent, on a client as received, before the caller sees them. Either way they
    /// may be changed.
    fn on_headers(&self, headers: &mut Metadata) {
        let _ = headers;
    }

    /// The call's end: its status (`Ok(())` for OK) and trailing metadata, on a
    /// server just before they are sent (the trailers may be changed; the status is
    /// the one the interceptor chain returned, or the deadline's or the
    /// cancellation's), on a client as received (or as ended locally: deadline,
    /// cancel), before the caller sees them.
    fn on_end(&self, status: &Result<(), Status>, trailers: &mut Metadata) {
        let _ = (status, trailers);
    }
}

/// A message with its type erased but still encodable: what a deferred unary reply,
/// an intercepted client request and a replacement are carried in.
pub(crate) trait AnyMessage: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn encoded_len(&self) -> usize;
    fn encode_frame(
        &self,
        buf: &mut BytesMut,
        max_send: usize,
        encoding: Option<Encoding>,
    ) -> Result<Bytes, Status>;
    /// Replaces the message with `with`, which must be of its type.
    fn replace(&mut self, with: Box<dyn Any + Send>) -> Result<(), Status>;
}

impl<T: prost::Message + 'static> AnyMessage for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn encoded_len(&self) -> usize {
        prost::Message::encoded_len(self)
    }
    fn encode_frame(
        &self,
        buf: &mut BytesMut,
        max_send: usize,
        encoding: Option<Encoding>,
    ) -> Result<Bytes, Status> {
        compression::encode_frame(self, buf, max_send, encoding)
    }
    fn replace(&mut self, with: Box<dyn Any + Send>) -> Result<(), Status> {
        *self = *downcast::<T>(with)?;
        Ok(())
    }
}

/// The replacement an observer returned, as the method's type.
pub(crate) fn downcast<T: 'static>(with: Box<dyn Any + Send>) -> Result<Box<T>, Status> {
    with.downcast::<T>().map_err(|_| {
        Status::internal(format!(
            "an interceptor replaced a message with one that is not a {}",
            std::any::type_name::<T>()
        ))
    })
}

/// The observers of one call, in the order their interceptors registered them (the
/// chain's order, outermost first). Made only for calls that have interceptors.
///
/// Each event reaches them in the order the message passes the interceptors. The
/// outermost interceptor is nearest the wire on a server (wire -> first -> ... ->
/// handler) and nearest the caller on a client (caller -> first -> ... -> wire), so:
/// a server's requests meet the observers outermost first and its responses,
/// headers and end innermost first; a client's requests outermost first and its
/// responses, headers and end innermost first.
pub(crate) struct Observers {
    list: Vec<Box<dyn CallObserver>>,
    server: bool,
}

impl Observers {
    pub(crate) fn new(list: Vec<Box<dyn CallObserver>>, server: bool) -> Observers {
        Observers { list, server }
    }

    /// The observers, outermost first or innermost first.
    fn ordered(&self, outermost_first: bool) -> impl Iterator<Item = &dyn CallObserver> {
        let n = self.list.len();
        (0..n).map(move |i| {
            let i = if outermost_first { i } else { n - 1 - i };
            &*self.list[i]
        })
    }

    pub(crate) fn recv(&self, message: &mut dyn Any, wire_size: usize) -> Result<(), Status> {
        self.ordered(self.server)
            .try_for_each(|o| o.on_recv(message, wire_size))
    }

    /// Runs `on_send` of each observer over `message`; a replacement is what the next
    /// observer sees and what is sent. `None`: send `message` as it is.
    pub(crate) fn send<T: prost::Message + 'static>(
        &self,
        message: &T,
    ) -> Result<Option<Box<T>>, Status> {
        let mut replaced: Option<Box<T>> = None;
        for observer in self.ordered(!self.server) {
            let current: &T = replaced.as_deref().unwrap_or(message);
            let size = prost::Message::encoded_len(current);
            if let Some(with) = observer.on_send(current, size)? {
                replaced = Some(downcast::<T>(with)?);
            }
        }
        Ok(replaced)
    }

    /// [`Observers::send`] over an erased message, replaced in place.
    pub(crate) fn send_erased(&self, message: &mut dyn AnyMessage) -> Result<(), Status> {
        for observer in self.ordered(!self.server) {
            let size = message.encoded_len();
            if let Some(with) = observer.on_send(message.as_any(), size)? {
                message.replace(with)?;
            }
        }
        Ok(())
    }

    pub(crate) fn headers(&self, headers: &mut Metadata) {
        self.ordered(false).for_each(|o| o.on_headers(headers));
    }

    pub(crate) fn end(&self, status: &Result<(), Status>, trailers: &mut Metadata) {
        self.ordered(false).for_each(|o| o.on_end(status, trailers));
    }
}
