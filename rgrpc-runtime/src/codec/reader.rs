//! Reading framed messages off an h2 body, with flow control released as bytes are
//! taken and the receive limit enforced before a message is buffered.

use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};

use crate::codec;
use crate::codec::compression::{self, Encoding};
use crate::codec::frame::Payload;
use crate::status::{Status, status_from_h2};

/// A message's payload from [`MessageReader::next_to_decode`]: a view of h2's receive
/// buffer when the message lay whole at the front of a DATA chunk, else bytes of its
/// own (our buffer, or inflated).
pub(crate) struct Received {
    payload: Bytes,
    view: bool,
}

impl Received {
    /// The payload's length (uncompressed).
    pub(crate) fn len(&self) -> usize {
        self.payload.len()
    }

    /// Decodes the message. A view is decoded from a slice: prost copies the
    /// message's `bytes` fields out, exactly sized, so nothing the caller keeps pins
    /// h2's buffer, and the whole-message copy `next` makes is saved (a small unary
    /// request: one allocation fewer, two with a `bytes` field). Bytes of its own
    /// are decoded from themselves, so a large `bytes` field shares them, uncopied.
    pub(crate) fn decode<T: prost::Message + Default>(self) -> Result<T, prost::DecodeError> {
        match self.view {
            true => T::decode(&self.payload[..]),
            false => T::decode(self.payload),
        }
    }
}

/// Reads one stream's messages.
pub(crate) struct MessageReader {
    body: h2::RecvStream,
    /// A received chunk not yet read, while `buf` is empty: whole messages at its front
    /// are copied out one by one (the usual small request is one DATA frame, one
    /// allocation, where copying the chunk into `buf` and splitting it took two); a
    /// partial one moves into `buf`. At most one of the two holds bytes.
    chunk: Bytes,
    /// Holds at most one partial message (bounded by `max_recv`) plus one DATA chunk.
    buf: BytesMut,
    max_recv: usize,
    eof: bool,
    /// The peer's `grpc-encoding`, if it declared one.
    encoding: Option<Encoding>,
    last_compressed: bool,
    /// The last message's length on the wire (after the prefix, before inflating).
    last_wire_size: usize,
}

impl MessageReader {
    pub(crate) fn new(
        body: h2::RecvStream,
        max_recv: usize,
        encoding: Option<Encoding>,
    ) -> MessageReader {
        MessageReader {
            body,
            chunk: Bytes::new(),
            buf: BytesMut::new(),
            max_recv,
            eof: false,
            encoding,
            last_compressed: false,
            last_wire_size: 0,
        }
    }

    /// Whether the last message returned by `next` arrived compressed.
    pub(crate) fn last_compressed(&self) -> bool {
        self.last_compressed
    }

    /// The length on the wire of the last message returned by `next` (its payload,
    /// compressed if it came compressed; without the 5-byte prefix).
    pub(crate) fn last_wire_size(&self) -> usize {
        self.last_wire_size
    }

    /// The next message's payload, `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// [`MessageReader::next`] as a poll: all its state is in `self`, so a `Pending`
    /// loses nothing and the handles' `Stream` impls need no future of their own.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, Status>> {
        self.poll_received(cx, Payload::Owned)
            .map_ok(|next| next.map(|received| received.payload))
    }

    /// The next message, for a caller that decodes it at once ([`Received::decode`]).
    pub(crate) async fn next_to_decode(&mut self) -> Result<Option<Received>, Status> {
        std::future::poll_fn(|cx| self.poll_to_decode(cx)).await
    }

    /// [`MessageReader::next_to_decode`] as a poll.
    pub(crate) fn poll_to_decode(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Received>, Status>> {
        self.poll_received(cx, Payload::View)
    }

    /// The next message; one at the front of a received chunk is copied out, or with
    /// `Payload::View` handed out as a view of the chunk.
    fn poll_received(
        &mut self,
        cx: &mut Context<'_>,
        payload: Payload,
    ) -> Poll<Result<Option<Received>, Status>> {
        loop {
            if let Some((frame, view)) = self.next_frame(payload)? {
                self.last_compressed = frame.compressed;
                self.last_wire_size = frame.payload.len();
                if !frame.compressed {
                    return Poll::Ready(Ok(Some(Received {
                        payload: frame.payload,
                        view,
                    })));
                }
                // compression.md: a compressed flag without a grpc-encoding is a
                // protocol error.
                let Some(encoding) = self.encoding else {
                    return Poll::Ready(Err(Status::internal(
                        "compressed flag set but no grpc-encoding was sent",
                    )));
                };
                return Poll::Ready(
                    compression::decompress(encoding, &frame.payload, self.max_recv).map(
                        |payload| {
                            Some(Received {
                                payload,
                                view: false,
                            })
                        },
                    ),
                );
            }
            if self.eof {
                if !self.buf.is_empty() {
                    return Poll::Ready(Err(Status::internal(format!(
                        "stream ended inside a message ({} bytes left over)",
                        self.buf.len()
                    ))));
                }
                return Poll::Ready(Ok(None));
            }
            match ready!(self.body.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    // The bytes now live in `buf`, which the size check bounds: give the
                    // window back so the peer can keep sending.
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    if self.buf.is_empty() {
                        self.chunk = chunk;
                    } else {
                        self.buf.extend_from_slice(&chunk);
                    }
                }
                Some(Err(err)) => return Poll::Ready(Err(status_from_h2(&err))),
                None => self.eof = true,
            }
        }
    }

    /// The next whole frame received, if there is one, and whether its payload is a
    /// view of h2's chunk: from the chunk while it holds whole frames at its front,
    /// then from the buffer (ours), where a partial one moves.
    fn next_frame(
        &mut self,
        payload: Payload,
    ) -> Result<Option<(codec::frame::Frame, bool)>, Status> {
        if !self.chunk.is_empty() {
            if let Some(frame) = codec::decode_whole(&mut self.chunk, self.max_recv, payload)? {
                return Ok(Some((frame, payload == Payload::View)));
            }
            self.buf.extend_from_slice(&self.chunk);
            self.chunk.clear();
        }
        Ok(codec::decode(&mut self.buf, self.max_recv)?.map(|frame| (frame, false)))
    }

    /// The trailers, after `next` returned `None`.
    pub(crate) fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, Status>> {
        self.body.poll_trailers(cx).map_err(|e| status_from_h2(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message with a `bytes` field generated as `Bytes`, as our plugin generates it.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Blob {
        #[prost(bytes = "bytes", tag = "1")]
        body: Bytes,
    }

    fn wire(body: &[u8]) -> Bytes {
        prost::Message::encode_to_vec(&Blob {
            body: Bytes::copy_from_slice(body),
        })
        .into()
    }

    #[test]
    fn a_view_decodes_into_bytes_of_its_own_and_owned_bytes_are_shared() {
        // A view of a larger buffer, as h2's chunk is: the decoded field must not
        // point into it, or a handler that keeps it would pin the whole buffer.
        let chunk = [wire(b"hello"), Bytes::from(vec![7; 4096])].concat();
        let chunk = Bytes::from(chunk);
        let len = wire(b"hello").len();
        let range = chunk.as_ptr_range();
        let view = Received {
            payload: chunk.slice(..len),
            view: true,
        };
        let blob: Blob = view.decode().unwrap();
        assert_eq!(&blob.body[..], b"hello");
        assert!(
            !range.contains(&blob.body.as_ptr()),
            "copied out of the view"
        );

        // Bytes of its own (our buffer): the field shares them, uncopied.
        let owned = wire(b"world");
        let range = owned.as_ptr_range();
        let blob: Blob = Received {
            payload: owned,
            view: false,
        }
        .decode()
        .unwrap();
        assert_eq!(&blob.body[..], b"world");
        assert!(range.contains(&blob.body.as_ptr()), "shared, not copied");
    }
}
