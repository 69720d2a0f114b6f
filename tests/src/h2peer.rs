//! A frame-level HTTP/2 peer for the hostile-peer tests: it writes whatever frames a
//! test asks for, including those a well-behaved client never sends, and reads the
//! server's frames back one by one (in the spirit of h2's `tests/h2-support` and
//! grpc-go's `test/servertester.go`).
//!
//! HPACK comes from `loona-hpack` so that header blocks are encoded independently of
//! the `h2` crate under test; the peer keeps one encoder and one decoder per
//! connection, as RFC 7541 requires (the dynamic tables are connection state).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 section 6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
}

/// Error codes (RFC 9113 section 7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// SETTINGS identifiers (RFC 9113 section 6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// One frame as it was on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Bytes,
}

impl Frame {
    /// A frame of any type, flags and payload: nothing is checked.
    pub fn new(kind: u8, flags: u8, stream: u32, payload: impl Into<Bytes>) -> Frame {
        Frame {
            kind,
            flags,
            stream,
            payload: payload.into(),
        }
    }

    /// SETTINGS with the given (identifier, value) pairs.
    pub fn settings(pairs: &[(u16, u32)]) -> Frame {
        let mut p = BytesMut::new();
        for &(id, value) in pairs {
            p.put_u16(id);
            p.put_u32(value);
        }
        Frame::new(kind::SETTINGS, 0, 0, p.freeze())
    }

    /// A SETTINGS acknowledgement.
    pub fn settings_ack() -> Frame {
        Frame::new(kind::SETTINGS, flag::ACK, 0, Bytes::new())
    }

    /// A PING with 8 bytes of opaque data.
    pub fn ping(data: u64) -> Frame {
        Frame::new(kind::PING, 0, 0, data.to_be_bytes().to_vec())
    }

    /// RST_STREAM with an error code.
    pub fn rst(stream: u32, error: u32) -> Frame {
        Frame::new(kind::RST_STREAM, 0, stream, error.to_be_bytes().to_vec())
    }

    /// WINDOW_UPDATE with any increment, zero and the reserved bit included.
    pub fn window_update(stream: u32, increment: u32) -> Frame {
        Frame::new(
            kind::WINDOW_UPDATE,
            0,
            stream,
            increment.to_be_bytes().to_vec(),
        )
    }

    /// DATA.
    pub fn data(stream: u32, payload: impl Into<Bytes>, end_stream: bool) -> Frame {
        let flags = if end_stream { flag::END_STREAM } else { 0 };
        Frame::new(kind::DATA, flags, stream, payload)
    }

    /// The frame's bytes: the 9-byte header (RFC 9113 section 4.1) and the payload.
    pub fn encode(&self, out: &mut BytesMut) {
        let len = self.payload.len();
        assert!(len < 1 << 24, "frame payload over 2^24 bytes");
        out.put_uint(len as u64, 3);
        out.put_u8(self.kind);
        out.put_u8(self.flags);
        out.put_u32(self.stream & 0x7fff_ffff);
        out.put_slice(&self.payload);
    }

    /// GOAWAY's (last stream id, error code, debug data).
    pub fn goaway(&self) -> Option<(u32, u32, Bytes)> {
        if self.kind != kind::GOAWAY || self.payload.len() < 8 {
            return None;
        }
        let mut p = self.payload.clone();
        let last = p.get_u32() & 0x7fff_ffff;
        let code = p.get_u32();
        Some((last, code, p))
    }

    /// RST_STREAM's error code.
    pub fn rst_code(&self) -> Option<u32> {
        (self.kind == kind::RST_STREAM && self.payload.len() == 4)
            .then(|| u32::from_be_bytes(self.payload[..4].try_into().unwrap()))
    }
}

/// How reading from the server ended, when it did not give a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing arrived in time.
    Timeout,
}

/// A gRPC exchange on one stream as the raw peer saw it.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Response headers (the first HEADERS block).
    pub headers: Vec<(String, String)>,
    /// DATA payloads concatenated.
    pub body: Vec<u8>,
    /// Trailers (a second HEADERS block), or the headers of a trailers-only answer.
    pub trailers: Vec<(String, String)>,
    /// RST_STREAM's code, when the server reset the stream.
    pub reset: Option<u32>,
}

impl Exchange {
    /// A header's value from the headers or trailers.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .chain(self.headers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `grpc-status`, when the server sent one.
    pub fn grpc_status(&self) -> Option<&str> {
        self.get("grpc-status")
    }
}

/// One raw connection to a server.
pub struct RawPeer {
    io: TcpStream,
    read: BytesMut,
    encoder: loona_hpack::Encoder<'static>,
    decoder: loona_hpack::Decoder<'static>,
    /// Frames read while looking for something else, in order.
    pub seen: Vec<Frame>,
}

impl RawPeer {
    /// A TCP connection and nothing else: no preface yet.
    pub async fn connect(addr: SocketAddr) -> RawPeer {
        let io = TcpStream::connect(addr).await.expect("connect");
        io.set_nodelay(true).expect("nodelay");
        RawPeer {
            io,
            read: BytesMut::with_capacity(16 * 1024),
            encoder: loona_hpack::Encoder::new(),
            decoder: loona_hpack::Decoder::new(),
            seen: Vec::new(),
        }
    }

    /// Preface, empty SETTINGS, the server's SETTINGS read and acknowledged.
    pub async fn handshake(addr: SocketAddr) -> RawPeer {
        let mut peer = RawPeer::connect(addr).await;
        peer.write(PREFACE).await.expect("preface");
        peer.send(&Frame::settings(&[])).await.expect("settings");
        let settings = peer
            .recv_kind(kind::SETTINGS, Duration::from_secs(5))
            .await
            .expect("server SETTINGS");
        assert_eq!(
            settings.flags & flag::ACK,
            0,
            "first SETTINGS is not an ack"
        );
        peer.send(&Frame::settings_ack()).await.expect("ack");
        peer
    }

    /// The server's SETTINGS values from a SETTINGS frame.
    pub fn settings_of(frame: &Frame) -> Vec<(u16, u32)> {
        frame
            .payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect()
    }

    /// Raw bytes, not necessarily frames.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await
    }

    /// One frame.
    pub async fn send(&mut self, frame: &Frame) -> std::io::Result<()> {
        let mut out = BytesMut::with_capacity(9 + frame.payload.len());
        frame.encode(&mut out);
        self.io.write_all(&out).await
    }

    /// Many frames in one write.
    pub async fn send_all(&mut self, frames: &[Frame]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        for frame in frames {
            frame.encode(&mut out);
        }
        self.io.write_all(&out).await
    }

    /// An HPACK block for the given header fields, in order, with this connection's
    /// encoder (so the server's decoder table stays in step).
    pub fn encode_headers(&mut self, fields: &[(&str, &str)]) -> Bytes {
        let fields: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        Bytes::from(self.encoder.encode(fields))
    }

    /// The request header fields of a gRPC call to `path`, then `extra`.
    pub fn grpc_request_fields<'a>(
        path: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut fields = vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        fields.extend_from_slice(extra);
        fields
    }

    /// HEADERS (END_HEADERS set) for a gRPC call.
    pub fn request(&mut self, stream: u32, path: &str, extra: &[(&str, &str)]) -> Frame {
        let block = self.encode_headers(&RawPeer::grpc_request_fields(path, extra));
        Frame::new(kind::HEADERS, flag::END_HEADERS, stream, block)
    }

    /// A header block as HEADERS plus as many CONTINUATION frames as the default
    /// SETTINGS_MAX_FRAME_SIZE (16 KiB, RFC 9113 section 4.2) requires, END_HEADERS on
    /// the last.
    pub fn header_frames(stream: u32, block: Bytes, end_stream: bool) -> Vec<Frame> {
        const MAX: usize = 16 * 1024;
        let mut frames = Vec::new();
        let mut rest = block;
        loop {
            let chunk = rest.split_to(rest.len().min(MAX));
            let kind = if frames.is_empty() {
                kind::HEADERS
            } else {
                kind::CONTINUATION
            };
            let mut flags = 0;
            if frames.is_empty() && end_stream {
                flags |= flag::END_STREAM;
            }
            if rest.is_empty() {
                flags |= flag::END_HEADERS;
            }
            frames.push(Frame::new(kind, flags, stream, chunk));
            if rest.is_empty() {
                return frames;
            }
        }
    }

    /// The next frame, within `within`.
    pub async fn recv(&mut self, within: Duration) -> Result<Frame, ReadEnd> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.read.len() >= 9 {
                let len = ((self.read[0] as usize) << 16)
                    | ((self.read[1] as usize) << 8)
                    | self.read[2] as usize;
                if self.read.len() >= 9 + len {
                    let mut head = self.read.split_to(9);
                    let payload = self.read.split_to(len).freeze();
                    head.advance(3);
                    let kind = head.get_u8();
                    let flags = head.get_u8();
                    let stream = head.get_u32() & 0x7fff_ffff;
                    return Ok(Frame {
                        kind,
                        flags,
                        stream,
                        payload,
                    });
                }
            }
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.read)).await {
                Err(_) => return Err(ReadEnd::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(ReadEnd::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Frames until one of `kind` arrives (the others are kept in `seen`).
    pub async fn recv_kind(&mut self, kind: u8, within: Duration) -> Result<Frame, ReadEnd> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.recv(left).await?;
            if frame.kind == kind {
                return Ok(frame);
            }
            self.seen.push(frame);
        }
    }

    /// Reads until the server sends GOAWAY; returns it (and keeps reading nothing more).
    pub async fn expect_goaway(&mut self, within: Duration) -> (u32, u32, Bytes) {
        let frame = self
            .recv_kind(kind::GOAWAY, within)
            .await
            .unwrap_or_else(|end| panic!("no GOAWAY within {within:?}: {end:?}"));
        frame.goaway().expect("well-formed GOAWAY")
    }

    /// Reads (and drops) everything until the server closes the connection. `Err` when
    /// it is still open after `within`.
    pub async fn closed_within(&mut self, within: Duration) -> Result<(), ReadEnd> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Ok(frame) => self.seen.push(frame),
                Err(ReadEnd::Closed) => return Ok(()),
                Err(ReadEnd::Timeout) => return Err(ReadEnd::Timeout),
            }
        }
    }

    /// Decodes a header block (HEADERS payload, padding and priority not used by the
    /// servers under test) with this connection's decoder.
    pub fn decode_headers(&mut self, block: &[u8]) -> Vec<(String, String)> {
        self.decoder
            .decode(block)
            .expect("server's HPACK block decodes")
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    }

    /// Reads the server's answer on `stream` until END_STREAM or RST_STREAM, answering
    /// nothing (the windows a test uses are large enough for its answers). Frames of
    /// other streams and connection frames are kept in `seen`; PINGs are acknowledged
    /// so keepalive does not interfere.
    pub async fn exchange(&mut self, stream: u32, within: Duration) -> Result<Exchange, ReadEnd> {
        let deadline = tokio::time::Instant::now() + within;
        let mut answer = Exchange::default();
        let mut got_headers = false;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.recv(left).await?;
            if frame.kind == kind::HEADERS {
                // Every block goes through the decoder, whatever its stream.
                let fields = self.decode_headers(&frame.payload);
                if frame.stream == stream {
                    if got_headers {
                        answer.trailers = fields;
                    } else {
                        got_headers = true;
                        answer.headers = fields.clone();
                        if frame.flags & flag::END_STREAM != 0 {
                            answer.trailers = fields;
                        }
                    }
                    if frame.flags & flag::END_STREAM != 0 {
                        return Ok(answer);
                    }
                    continue;
                }
            }
            if frame.stream == stream && frame.kind == kind::DATA {
                answer.body.extend_from_slice(&frame.payload);
                if frame.flags & flag::END_STREAM != 0 {
                    return Ok(answer);
                }
                continue;
            }
            if frame.stream == stream && frame.kind == kind::RST_STREAM {
                answer.reset = frame.rst_code();
                return Ok(answer);
            }
            if frame.kind == kind::PING && frame.flags & flag::ACK == 0 {
                let ack = Frame::new(kind::PING, flag::ACK, 0, frame.payload.clone());
                self.send(&ack).await.map_err(|_| ReadEnd::Closed)?;
            }
            self.seen.push(frame);
        }
    }

    /// A whole unary gRPC call on `stream`: HEADERS, one DATA with `message` framed
    /// (flag 0) and END_STREAM, then the answer.
    pub async fn unary(
        &mut self,
        stream: u32,
        path: &str,
        extra: &[(&str, &str)],
        message: &[u8],
    ) -> Result<Exchange, ReadEnd> {
        let headers = self.request(stream, path, extra);
        let data = Frame::data(stream, grpc_message(0, message), true);
        self.send_all(&[headers, data])
            .await
            .map_err(|_| ReadEnd::Closed)?;
        self.exchange(stream, Duration::from_secs(10)).await
    }
}

/// A gRPC length-prefixed message (PROTOCOL-HTTP2.md: compressed flag, 4-byte length).
pub fn grpc_message(compressed: u8, message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(compressed);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// A gRPC prefix that declares `declared` bytes, followed by `message` (which may be
/// shorter or longer).
pub fn grpc_prefix(compressed: u8, declared: u32, message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(compressed);
    out.put_u32(declared);
    out.put_slice(message);
    out.freeze()
}
