//! Reading framed messages off an h2 body, with flow control released as bytes are
//! taken and the receive limit enforced before a message is buffered.

use bytes::{Bytes, BytesMut};

use crate::codec;
use crate::status::{Status, status_from_h2};

/// Reads one stream's messages.
pub(crate) struct MessageReader {
    body: h2::RecvStream,
    /// Holds at most one partial message (bounded by `max_recv`) plus one DATA chunk.
    buf: BytesMut,
    max_recv: usize,
    eof: bool,
}

impl MessageReader {
    pub(crate) fn new(body: h2::RecvStream, max_recv: usize) -> MessageReader {
        MessageReader { body, buf: BytesMut::new(), max_recv, eof: false }
    }

    /// The next message's payload, `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if let Some(frame) = codec::decode(&mut self.buf, self.max_recv)? {
                if frame.compressed {
                    // compression.md: a compressed flag without a negotiated encoding is
                    // a protocol error.
                    return Err(Status::internal(
                        "compressed flag set but no grpc-encoding was negotiated",
                    ));
                }
                return Ok(Some(frame.payload));
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
