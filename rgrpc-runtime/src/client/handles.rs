//! The typed face of a call: `Channel`'s four call methods and the handles of
//! streaming calls, thin shells over the untyped halves in `call.rs`.

use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};

use futures_core::{FusedStream, Stream};

use super::call::{Prepared, RecvHalf, SendHalf, Ticket};
use super::channel::Channel;
use super::interceptor;
use crate::call::{CallOptions, Request, Response};
use crate::codec::reader::Received;
use crate::interceptor::RpcKind;
use crate::metadata::Metadata;
use crate::status::Status;

fn decode<T: prost::Message + Default>(payload: Received) -> Result<T, Status> {
    payload
        .decode()
        .map_err(|e| Status::internal(format!("failed to decode response: {e}")))
}

/// Reads the single response of a unary or client-streaming call, then the status.
/// By reference: the half stays in the caller's future, not copied into this one.
async fn single_response<T: prost::Message + Default + 'static>(
    recv: &mut RecvHalf,
) -> Result<Response<T>, Status> {
    let Some(payload) = recv.message().await? else {
        return Err(Status::unimplemented("server sent no response message"));
    };
    let mut message = decode::<T>(payload)?;
    recv.received(&mut message)?;
    if recv.message().await?.is_some() {
        return Err(Status::unimplemented(
            "server sent more than one response message",
        ));
    }
    let headers = recv.headers.take().unwrap_or_default();
    let trailers = std::mem::take(&mut recv.trailers);
    Ok(Response::new(message, headers, trailers))
}

impl Channel {
    /// A unary call: one request, one response.
    ///
    /// The request is encoded when this is called, not when the future is first
    /// polled, so that the future holds the encoded message and not the request; the
    /// call's deadline, its stats (Begin) and its span start then too. A future
    /// dropped before its call has started ends its stats CANCELLED.
    pub fn invoke<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> impl Future<Output = Result<Response<Resp>, Status>> + Send + '_
    where
        Req: prost::Message + 'static,
        Resp: prost::Message + Default + 'static,
    {
        let (message, options) = request.into_parts();
        let mut start = match self.intercepted() {
            true => Start::Intercepted(Box::pin(interceptor::unary(self, path, message, options))),
            false => Start::Direct(Prepared::new(
                self,
                path,
                RpcKind::Unary,
                options,
                Some(&message),
            )),
        };
        async move {
            if let Start::Intercepted(call) = &mut start {
                return call.await;
            }
            let (prepared, ticket) = start.wait().await?;
            // Boxed: a call waiting for its connection holds only the prepared call.
            Box::pin(async move {
                let (send, mut recv) = prepared.open(ticket, None).await?;
                // Closed with the request: nothing of it is needed while the response comes.
                drop(send);
                single_response(&mut recv).await
            })
            .await
        }
    }

    /// A server-streaming call: one request, a stream of responses. The request is
    /// encoded when this is called, as [`Channel::invoke`]'s is.
    pub fn server_streaming<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> impl Future<Output = Result<ResponseStream<Resp>, Status>> + Send + '_
    where
        Req: prost::Message + 'static,
        Resp: prost::Message + Default + 'static,
    {
        let (message, options) = request.into_parts();
        let kind = RpcKind::ServerStreaming;
        let mut start = match self.intercepted() {
            true => Start::Intercepted(Box::pin(interceptor::open::<Req, Resp>(
                self,
                path,
                kind,
                Some(message),
                options,
            ))),
            false => Start::Direct(Prepared::new(self, path, kind, options, Some(&message))),
        };
        async move {
            let (_send, recv) = match &mut start {
                Start::Intercepted(opened) => opened.await?,
                Start::Direct(_) | Start::Taken => {
                    let (prepared, ticket) = start.wait().await?;
                    Box::pin(prepared.open(ticket, None)).await?
                }
            };
            Ok(ResponseStream {
                recv,
                ended: false,
                _message: PhantomData,
            })
        }
    }

    /// A client-streaming call.
    pub async fn client_streaming<Req, Resp>(
        &self,
        path: &'static str,
        options: CallOptions,
    ) -> Result<ClientStreamingCall<Req, Resp>, Status>
    where
        Req: prost::Message + 'static,
        Resp: prost::Message + Default + 'static,
    {
        let (send, recv) = self
            .open_streaming::<Req, Resp>(path, RpcKind::ClientStreaming, options)
            .await?;
        Ok(ClientStreamingCall {
            send,
            recv,
            _message: PhantomData,
        })
    }

    /// A bidirectional-streaming call.
    pub async fn bidi_streaming<Req, Resp>(
        &self,
        path: &'static str,
        options: CallOptions,
    ) -> Result<BidiStreamingCall<Req, Resp>, Status>
    where
        Req: prost::Message + 'static,
        Resp: prost::Message + Default + 'static,
    {
        let (send, recv) = self
            .open_streaming::<Req, Resp>(path, RpcKind::BidiStreaming, options)
            .await?;
        Ok(BidiStreamingCall {
            sender: RequestSink {
                send,
                _message: PhantomData,
            },
            responses: ResponseStream {
                recv,
                ended: false,
                _message: PhantomData,
            },
        })
    }
}

/// How a call with one request starts: through the interceptors (the chain's future,
/// boxed), or directly (the prepared call, or why it could not be prepared). Kept in
/// place in the call's future: moving the prepared call into a local of the future
/// would reserve room for it twice.
#[expect(
    clippy::large_enum_variant,
    reason = "the large variant is the common one; boxing it would cost every call an allocation"
)]
enum Start<'c, F> {
    Intercepted(Pin<Box<F>>),
    Direct(Result<Prepared<'c>, Status>),
    /// The prepared call has been taken out.
    Taken,
}

impl<'c, F> Start<'c, F> {
    /// A direct call: waits for its connection and stream, in place, and gives the
    /// prepared call back with them.
    async fn wait(&mut self) -> Result<(Prepared<'c>, Ticket), Status> {
        let waited = match self {
            Start::Direct(Ok(prepared)) => Some(prepared.wait().await),
            Start::Direct(Err(_)) | Start::Intercepted(_) | Start::Taken => None,
        };
        match (std::mem::replace(self, Start::Taken), waited) {
            (Start::Direct(Ok(prepared)), Some(Ok(ticket))) => Ok((prepared, ticket)),
            (Start::Direct(Err(status)), _) | (_, Some(Err(status))) => Err(status),
            (Start::Direct(Ok(_)) | Start::Intercepted(_) | Start::Taken, _) => {
                unreachable!("only a direct call waits here, once")
            }
        }
    }
}

impl Channel {
    /// Opens a client-streaming or bidi call, through the interceptors if any.
    async fn open_streaming<Req, Resp>(
        &self,
        path: &'static str,
        kind: RpcKind,
        options: CallOptions,
    ) -> Result<(SendHalf, RecvHalf), Status>
    where
        Req: prost::Message + 'static,
        Resp: prost::Message + Default + 'static,
    {
        if self.intercepted() {
            let opened = interceptor::open::<Req, Resp>(self, path, kind, None, options);
            return Box::pin(opened).await;
        }
        let mut prepared = Prepared::new::<Req>(self, path, kind, options, None)?;
        let ticket = prepared.wait().await?;
        Box::pin(prepared.open(ticket, None)).await
    }

    /// Whether the channel has interceptors (one branch per call when not).
    fn intercepted(&self) -> bool {
        !self.config().interceptors.is_empty()
    }
}

/// The responses of a server-streaming (or bidi) call. Dropping it before the end
/// cancels the call.
///
/// Read with [`ResponseStream::message`], or as a [`Stream`] of `Result<T, Status>`
/// (`StreamExt` adapters, `tokio-stream`, ...): each message is `Some(Ok(_))`, a
/// failed call ends with one `Some(Err(status))`, and after that, or after the server
/// ended the call with OK, the stream yields `None`. The two can be mixed; both read
/// the same call, and the call's deadline applies to both.
pub struct ResponseStream<T> {
    recv: RecvHalf,
    /// The `Stream` has yielded its end (`None`) or its error; it yields `None` now.
    ended: bool,
    _message: PhantomData<fn() -> T>,
}

impl<T: prost::Message + Default + 'static> Stream for ResponseStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let next = ready!(this.recv.poll_message_before_deadline(cx));
        let item = next
            .and_then(|m| m.map(|m| this.decode(m)).transpose())
            .transpose();
        this.ended = !matches!(item, Some(Ok(_)));
        Poll::Ready(item)
    }
}

impl<T: prost::Message + Default + 'static> FusedStream for ResponseStream<T> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl<T: prost::Message + Default + 'static> ResponseStream<T> {
    /// The next message; `None` once the server ended the call with OK, `Err` with
    /// any other status.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        match self.recv.message().await? {
            Some(payload) => self.decode(payload).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes a response and shows it to the call's observers.
    fn decode(&mut self, payload: Received) -> Result<T, Status> {
        let mut message = decode::<T>(payload)?;
        self.recv.received(&mut message)?;
        Ok(message)
    }

    /// The server's initial metadata, waiting for it if needed.
    pub async fn headers(&mut self) -> Result<Metadata, Status> {
        self.recv.headers().await.cloned()
    }

    /// The trailing metadata; complete once `message` has returned `None` or an error.
    pub fn trailers(&self) -> &Metadata {
        &self.recv.trailers
    }

    /// Whether the last message returned by `message` arrived compressed.
    pub fn last_message_compressed(&self) -> bool {
        self.recv.last_compressed
    }

    /// Cancels the call: the stream is reset and `message` returns CANCELLED.
    pub fn cancel(&mut self) {
        self.recv.cancel();
    }
}

/// The request side of a bidi call.
pub struct RequestSink<T> {
    send: SendHalf,
    _message: PhantomData<fn(T)>,
}

impl<T: prost::Message + 'static> RequestSink<T> {
    /// Sends one message, waiting while the server is not reading.
    pub async fn send(&mut self, message: &T) -> Result<(), Status> {
        self.send.send(message).await
    }

    /// Sends every message of `messages` in order, each as [`RequestSink::send`] does,
    /// e.g. `sink.send_all(futures_util::stream::iter(notes)).await?`. Stops at the
    /// first send that fails and returns its status; later messages are not taken
    /// from the stream. Does not close the request side ([`RequestSink::close_send`]).
    ///
    /// The items are the messages themselves. To forward a fallible source (another
    /// call's responses, items `Result<T, Status>`), loop over its `message()` and
    /// `send`, so that its error is returned instead of being taken for an end.
    pub async fn send_all<S: Stream<Item = T>>(&mut self, messages: S) -> Result<(), Status> {
        let mut messages = pin!(messages);
        while let Some(message) = poll_fn(|cx| messages.as_mut().poll_next(cx)).await {
            self.send.send(&message).await?;
        }
        Ok(())
    }

    /// Closes the request stream (END_STREAM).
    pub async fn close_send(&mut self) -> Result<(), Status> {
        self.send.close().await
    }

    /// Turns compression of the following messages off or on (only meaningful when the
    /// call was opened with `CallOptions::compression`).
    pub fn set_compress(&mut self, compress: bool) {
        self.send.compress = compress;
    }
}

/// A client-streaming call in progress.
pub struct ClientStreamingCall<Req, Resp> {
    send: SendHalf,
    recv: RecvHalf,
    _message: PhantomData<fn(Req) -> Resp>,
}

impl<Req: prost::Message + 'static, Resp: prost::Message + Default + 'static>
    ClientStreamingCall<Req, Resp>
{
    /// Sends one message, waiting while the server is not reading.
    pub async fn send(&mut self, message: &Req) -> Result<(), Status> {
        self.send.send(message).await
    }

    /// Sends every message of `messages` in order, each as
    /// [`ClientStreamingCall::send`] does; [`ClientStreamingCall::close_and_recv`]
    /// then ends the requests. Stops at the first send that fails and returns its
    /// status; later messages are not taken from the stream. The items are the
    /// messages themselves, as for [`RequestSink::send_all`].
    pub async fn send_all<S: Stream<Item = Req>>(&mut self, messages: S) -> Result<(), Status> {
        let mut messages = pin!(messages);
        while let Some(message) = poll_fn(|cx| messages.as_mut().poll_next(cx)).await {
            self.send.send(&message).await?;
        }
        Ok(())
    }

    /// The server's initial metadata, waiting for it if needed.
    pub async fn headers(&mut self) -> Result<Metadata, Status> {
        self.recv.headers().await.cloned()
    }

    /// Turns compression of the following messages off or on.
    pub fn set_compress(&mut self, compress: bool) {
        self.send.compress = compress;
    }

    /// Cancels the call: the stream is reset and `close_and_recv` returns CANCELLED.
    pub fn cancel(&mut self) {
        self.recv.cancel();
    }

    /// Closes the request stream and waits for the response.
    pub async fn close_and_recv(mut self) -> Result<Response<Resp>, Status> {
        self.send.close().await?;
        single_response(&mut self.recv).await
    }
}

/// A bidirectional-streaming call in progress. Its responses are also a [`Stream`],
/// as [`ResponseStream`]'s.
pub struct BidiStreamingCall<Req, Resp> {
    sender: RequestSink<Req>,
    responses: ResponseStream<Resp>,
}

impl<Req, Resp: prost::Message + Default + 'static> Stream for BidiStreamingCall<Req, Resp> {
    type Item = Result<Resp, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().responses).poll_next(cx)
    }
}

impl<Req, Resp: prost::Message + Default + 'static> FusedStream for BidiStreamingCall<Req, Resp> {
    fn is_terminated(&self) -> bool {
        self.responses.is_terminated()
    }
}

impl<Req: prost::Message + 'static, Resp: prost::Message + Default + 'static>
    BidiStreamingCall<Req, Resp>
{
    /// Sends one message.
    pub async fn send(&mut self, message: &Req) -> Result<(), Status> {
        self.sender.send(message).await
    }

    /// Sends every message of `messages`; see [`RequestSink::send_all`].
    pub async fn send_all<S: Stream<Item = Req>>(&mut self, messages: S) -> Result<(), Status> {
        self.sender.send_all(messages).await
    }

    /// Closes the request stream.
    pub async fn close_send(&mut self) -> Result<(), Status> {
        self.sender.close_send().await
    }

    /// The next response; see [`ResponseStream::message`].
    pub async fn message(&mut self) -> Result<Option<Resp>, Status> {
        self.responses.message().await
    }

    /// The server's initial metadata.
    pub async fn headers(&mut self) -> Result<Metadata, Status> {
        self.responses.headers().await
    }

    /// The trailing metadata, once the call has ended.
    pub fn trailers(&self) -> &Metadata {
        self.responses.trailers()
    }

    /// Turns compression of the following messages off or on.
    pub fn set_compress(&mut self, compress: bool) {
        self.sender.set_compress(compress);
    }

    /// Cancels the call: the stream is reset and `message` returns CANCELLED.
    pub fn cancel(&mut self) {
        self.responses.cancel();
    }

    /// Splits into a sender and a receiver usable from different tasks.
    pub fn split(self) -> (RequestSink<Req>, ResponseStream<Resp>) {
        (self.sender, self.responses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync + Unpin>() {}

    /// The `Stream` state (the boxed retry and the deadline's timer) keeps the handles
    /// movable between tasks and shareable, as they were.
    #[test]
    fn handles_are_send_sync_and_unpin() {
        send_sync::<ResponseStream<()>>();
        send_sync::<RequestSink<()>>();
        send_sync::<ClientStreamingCall<(), ()>>();
        send_sync::<BidiStreamingCall<(), ()>>();
        send_sync::<crate::RecvStream<()>>();
        send_sync::<crate::SendStream<()>>();
    }
}
