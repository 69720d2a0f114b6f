//! Reading framed messages off an h2 body, with flow control released as bytes are
//! taken and the receive limit enforced before a message is buffered.

use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};

use crate::codec;
use crate::codec::compression::{self, Encoding};
use crate::status::{Status, status_from_h2};

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
        loop {
            if let Some(frame) = self.next_frame()? {
                self.last_compressed = frame.compressed;
                self.last_wire_size = frame.payload.len();
                if !frame.compressed {
                    return Poll::Ready(Ok(Some(frame.payload)));
                }
                // compression.md: a compressed flag without a grpc-encoding is a
                // protocol error.
                let Some(encoding) = self.encoding else {
                    return Poll::Ready(Err(Status::internal(
                        "compressed flag set but no grpc-encoding was sent",
                    )));
                };
                return Poll::Ready(
                    compression::decompress(encoding, &frame.payload, self.max_recv).map(Some),
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

    /// The next whole frame received, if there is one: from the chunk while it holds
    /// whole frames at its front, then from the buffer, where a partial one moves.
    fn next_frame(&mut self) -> Result<Option<codec::frame::Frame>, Status> {
        if !self.chunk.is_empty() {
            if let Some(frame) = codec::decode_whole(&mut self.chunk, self.max_recv)? {
                return Ok(Some(frame));
            }
            self.buf.extend_from_slice(&self.chunk);
            self.chunk.clear();
        }
        codec::decode(&mut self.buf, self.max_recv)
    }

    /// The trailers, after `next` returned `None`.
    pub(crate) fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, Status>> {
        self.body.poll_trailers(cx).map_err(|e| status_from_h2(&e))
    }
}
