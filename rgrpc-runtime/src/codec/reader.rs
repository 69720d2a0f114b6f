//! Reading framed messages off an h2 body, with flow control released as bytes are
//! taken and the receive limit enforced before a message is buffered.

use bytes::{Bytes, BytesMut};

use crate::codec;
use crate::codec::compression::{self, Encoding};
use crate::status::{Status, status_from_h2};

/// Reads one stream's messages.
pub(crate) struct MessageReader {
    body: h2::RecvStream,
    /// Holds at most one partial message (bounded by `max_recv`) plus one DATA chunk.
    buf: BytesMut,
    max_recv: usize,
    eof: bool,
    /// The peer's `grpc-encoding`, if it declared one.
    encoding: Option<Encoding>,
    last_compressed: bool,
}

impl MessageReader {
    pub(crate) fn new(
        body: h2::RecvStream,
        max_recv: usize,
        encoding: Option<Encoding>,
    ) -> MessageReader {
        MessageReader {
            body,
            buf: BytesMut::new(),
            max_recv,
            eof: false,
            encoding,
            last_compressed: false,
        }
    }

    /// Whether the last message returned by `next` arrived compressed.
    pub(crate) fn last_compressed(&self) -> bool {
        self.last_compressed
    }

    /// The next message's payload, `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if let Some(frame) = codec::decode(&mut self.buf, self.max_recv)? {
                self.last_compressed = frame.compressed;
                if !frame.compressed {
                    return Ok(Some(frame.payload));
                }
                // compression.md: a compressed flag without a grpc-encoding is a
                // protocol error.
                let Some(encoding) = self.encoding else {
                    return Err(Status::internal(
                        "compressed flag set but no grpc-encoding was sent",
                    ));
                };
                return compression::decompress(encoding, &frame.payload, self.max_recv).map(Some);
            }
            if self.eof {
                if !self.buf.is_empty() {
                    return Err(Status::internal(format!(
                        "stream ended inside a message ({} bytes left over)",
                        self.buf.len()
                    )));
                }
                return Ok(None);
            }
            match self.body.data().await {
                Some(Ok(chunk)) => {
                    // The bytes now live in `buf`, which the size check bounds: give the
                    // window back so the peer can keep sending.
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    if self.buf.is_empty() {
                        self.buf = BytesMut::from(chunk);
                    } else {
                        self.buf.extend_from_slice(&chunk);
                    }
                }
                Some(Err(err)) => return Err(status_from_h2(&err)),
                None => self.eof = true,
            }
        }
    }

    /// The trailers, after `next` returned `None`.
    pub(crate) async fn trailers(&mut self) -> Result<Option<http::HeaderMap>, Status> {
        self.body.trailers().await.map_err(|e| status_from_h2(&e))
    }
}
