//! The seam between the control buffer's writer and h2's send types: the few calls the
//! writer makes on a stream's send half and on a server's response handle, as traits
//! that h2's types implement and a test fake can implement too.
//!
//! Why it exists: the writer's rules (feed h2 only what the window allows, round-robin
//! the streams, a reset jumps ahead of queued data, trailers go last, quotas come back
//! only when h2 has taken a message) are worth unit tests against a fake that records
//! every call and whose flow-control window the test controls, as grpc-go tests its
//! loopy writer in `internal/transport/controlbuf_test.go`. With h2's types welded in,
//! the only way to see those rules was a real connection, where a window or a reset
//! cannot be set at a chosen moment.
//!
//! Static dispatch only: the control buffer's types take a [`Port`] type parameter
//! whose default is [`H2`], so the rest of the crate names them without parameters and
//! gets the same code as before (each call below forwards to h2's inherent method of
//! the same name; no boxing, no allocation).

use std::task::{Context, Poll};

use bytes::Bytes;
use h2::Reason;

/// The calls the writer makes on one stream's send half (`h2::SendStream`); each means
/// what h2's method of the same name means.
pub(crate) trait SendPort {
    /// Asks for `capacity` bytes of flow-control window in total for this stream.
    fn reserve_capacity(&mut self, capacity: usize);
    /// The window assigned to this stream now: what `send_data` may take without h2
    /// buffering beyond it.
    fn capacity(&self) -> usize;
    /// Waits for assigned capacity to grow (registers the waker while pending);
    /// `Ready(None)` or an error when the stream can send no more.
    fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<usize, h2::Error>>>;
    /// Hands h2 a DATA payload, ending the stream if `end_of_stream`.
    fn send_data(&mut self, data: Bytes, end_of_stream: bool) -> Result<(), h2::Error>;
    /// Hands h2 the trailers, which end the stream.
    fn send_trailers(&mut self, trailers: http::HeaderMap) -> Result<(), h2::Error>;
    /// Aborts the stream with RST_STREAM `reason`.
    fn send_reset(&mut self, reason: Reason);
    /// Ready once the peer has reset the stream (registers the waker while pending).
    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reason, h2::Error>>;
}

/// The call the writer makes on a server stream's response handle
/// (`h2::server::SendResponse`).
pub(crate) trait RespondPort {
    /// The send half the response headers open.
    type Send: SendPort;
    /// Hands h2 the response headers; the stream's send half unless `end_of_stream`
    /// ended it (then the half is inert).
    fn send_response(
        &mut self,
        response: http::Response<()>,
        end_of_stream: bool,
    ) -> Result<Self::Send, h2::Error>;
}

/// A family of send types the control buffer works over: h2's ([`H2`]) or a test
/// fake's. `Send + 'static` because items cross tasks (stream task -> connection task)
/// and a reset may be queued from a spawned task.
pub(crate) trait Port: 'static {
    /// A stream's send half.
    type Send: SendPort + Send + 'static;
    /// A server stream's response handle; opens a [`Port::Send`].
    type Respond: RespondPort<Send = Self::Send> + Send + 'static;
}

/// h2's send types; the default port of every control-buffer type. Never built: it
/// names a type family.
pub(crate) enum H2 {}

impl Port for H2 {
    type Send = h2::SendStream<Bytes>;
    type Respond = h2::server::SendResponse<Bytes>;
}

impl SendPort for h2::SendStream<Bytes> {
    #[inline]
    fn reserve_capacity(&mut self, capacity: usize) {
        h2::SendStream::reserve_capacity(self, capacity)
    }

    #[inline]
    fn capacity(&self) -> usize {
        h2::SendStream::capacity(self)
    }

    #[inline]
    fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<usize, h2::Error>>> {
        h2::SendStream::poll_capacity(self, cx)
    }

    #[inline]
    fn send_data(&mut self, data: Bytes, end_of_stream: bool) -> Result<(), h2::Error> {
        h2::SendStream::send_data(self, data, end_of_stream)
    }

    #[inline]
    fn send_trailers(&mut self, trailers: http::HeaderMap) -> Result<(), h2::Error> {
        h2::SendStream::send_trailers(self, trailers)
    }

    #[inline]
    fn send_reset(&mut self, reason: Reason) {
        h2::SendStream::send_reset(self, reason)
    }

    #[inline]
    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reason, h2::Error>> {
        h2::SendStream::poll_reset(self, cx)
    }
}

impl RespondPort for h2::server::SendResponse<Bytes> {
    type Send = h2::SendStream<Bytes>;

    #[inline]
    fn send_response(
        &mut self,
        response: http::Response<()>,
        end_of_stream: bool,
    ) -> Result<h2::SendStream<Bytes>, h2::Error> {
        h2::server::SendResponse::send_response(self, response, end_of_stream)
    }
}
