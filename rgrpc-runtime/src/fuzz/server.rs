//! The server-connection target: arbitrary bytes as the client's side of an in-memory
//! stream into the real connection driver (`transport::server::serve_connection`, the
//! h2 handshake, the frame observer, request checks, routing, the message reader and
//! the writer), for a `Server` with a test service of all four RPC kinds.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::{Input, no_panic_inside, paused_runtime};
use crate::server::service::{Handler, MethodDesc, ServiceDesc, StreamDesc};
use crate::server::{RecvStream, SendStream, Server, ServerContext};
use crate::status::{Code, Status};
use crate::transport::io::{BoxIo, PeerAddr};

/// The client connection preface (RFC 9113 section 3.4) and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// The in-memory stream's buffer in each direction: small, so that both sides' write
/// paths block and resume.
const PIPE: usize = 4096;

/// How long, in paused (virtual) time, the connection may take to end once the
/// client's side has closed. Nothing legitimate waits on a timer then: a connection
/// still open after this is stuck.
const END_WITHIN: Duration = Duration::from_secs(30);

static SERVICE: ServiceDesc = ServiceDesc {
    service_name: "fuzz.Echo",
    // No .proto behind it: nothing for reflection to serve.
    files: &[],
    methods: &[MethodDesc {
        method_name: "Unary",
    }],
    streams: &[
        StreamDesc {
            stream_name: "ServerStream",
            server_streams: true,
            client_streams: false,
        },
        StreamDesc {
            stream_name: "ClientStream",
            server_streams: false,
            client_streams: true,
        },
        StreamDesc {
            stream_name: "Bidi",
            server_streams: true,
            client_streams: true,
        },
    ],
    metadata: "fuzz.proto",
};

/// A failure chosen by the request: `!` then a code byte and the message, so inputs
/// reach the status and trailer encoding with arbitrary text.
fn fail_if_asked(request: &str) -> Result<(), Status> {
    match request.strip_prefix('!') {
        Some(rest) => {
            let code = rest.bytes().next().map_or(2, |b| i32::from(b % 16) + 1);
            Err(Status::new(Code::from_i32(code), rest))
        }
        None => Ok(()),
    }
}

pub(crate) fn test_server(tight: bool) -> Server {
    let mut server = if tight {
        Server::new()
            .max_concurrent_streams(4)
            .initial_stream_window_size(1024)
            .initial_connection_window_size(1024)
            .max_recv_message_size(1024)
            .max_header_list_size(1024)
            .send_compression(crate::Encoding::Gzip)
            .inline_dispatch(false)
    } else {
        Server::new()
    };
    server.register_service(
        &SERVICE,
        vec![
            Handler::unary(|ctx: ServerContext, request: String| async move {
                fail_if_asked(&request)?;
                // Request metadata echoed back: exercises the setters on received values.
                if let Some(value) = ctx.metadata().get("x-echo") {
                    ctx.set_header_value("x-echo", value)?;
                }
                Ok(request)
            }),
            Handler::server_streaming(
                |_ctx, request: String, mut tx: SendStream<String>| async move {
                    fail_if_asked(&request)?;
                    for _ in 0..request.len() % 4 {
                        tx.send(&request).await?;
                    }
                    Ok(())
                },
            ),
            Handler::client_streaming(|_ctx, mut rx: RecvStream<String>| async move {
                let mut all = String::new();
                while let Some(request) = rx.message().await? {
                    fail_if_asked(&request)?;
                    all.push_str(&request);
                }
                Ok(all)
            }),
            Handler::bidi_streaming(
                |_ctx, mut rx: RecvStream<String>, mut tx: SendStream<String>| async move {
                    while let Some(request) = rx.message().await? {
                        fail_if_asked(&request)?;
                        tx.send(&request).await?;
                    }
                    Ok(())
                },
            ),
        ],
    );
    server
}

fn peer() -> PeerAddr {
    PeerAddr::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 50051)))
}

/// The server connection. Input: a mode byte (bit 0: prepend the client preface and an
/// empty SETTINGS, so the rest is read as frames; bits 1-2: after the input, nothing,
/// a graceful stop, a graceful stop with no grace, or a forced stop; bit 3: tight
/// limits: 4 streams, 1 KiB windows, messages and header lists, gzip responses, every
/// stream spawned), then the bytes the client sends.
pub fn server_connection(data: &[u8]) {
    server_connection_output(data);
}

/// [`server_connection`], returning what the server wrote (for tests that check a seed
/// reaches the handlers).
pub fn server_connection_output(data: &[u8]) -> Vec<u8> {
    let mut input = Input::new(data);
    let mode = input.u8();
    let bytes = input.rest();
    let mut sent = Vec::with_capacity(PREFACE.len() + bytes.len());
    if mode & 1 == 1 {
        sent.extend_from_slice(PREFACE);
    }
    sent.extend_from_slice(bytes);
    let out = no_panic_inside(|| paused_runtime().block_on(serve(sent, mode)));
    check_frames(&out);
    out
}

async fn serve(sent: Vec<u8>, mode: u8) -> Vec<u8> {
    let server = test_server(mode & 8 != 0);
    let handle = server.handle();
    let (client, server_io) = tokio::io::duplex(PIPE);
    let conn = tokio::spawn(server.serve_connection_for_fuzzing(BoxIo::other(server_io), peer()));
    let (mut rd, mut wr) = tokio::io::split(client);
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        // An error is the server's side closing without a shutdown: what it wrote
        // before that is all there is.
        let _ = rd.read_to_end(&mut out).await;
        out
    });
    // The server may close before it has read everything: then the write fails.
    let _ = wr.write_all(&sent).await;
    // Paused clock: this sleep ends only once every task waits, i.e. when the server
    // has done all it can with the bytes.
    tokio::time::sleep(Duration::from_millis(1)).await;
    match (mode >> 1) & 3 {
        0 => {}
        1 => handle.graceful_stop(),
        2 => handle.graceful_stop_within(Duration::ZERO),
        _ => handle.stop(),
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    let _ = wr.shutdown().await;
    drop(wr);
    tokio::time::timeout(END_WITHIN, conn)
        .await
        .expect("the connection did not end after the client's side closed")
        .expect("the connection task did not panic");
    tokio::time::timeout(END_WITHIN, reader)
        .await
        .expect("the server's side did not close after its connection ended")
        .expect("the reader task did not panic")
}

/// What one side wrote after the client preface (the server's bytes, or the client's
/// past its preface): whole HTTP/2 frames (RFC 9113 section 4.1), the first one its
/// SETTINGS (section 3.4); HEADERS and DATA only on client-initiated (odd) streams,
/// never a PUSH_PROMISE (our server never pushes; a client may not), SETTINGS, PING and
/// GOAWAY only on stream 0.
pub(crate) fn check_frames(mut out: &[u8]) {
    let mut first = true;
    while !out.is_empty() {
        assert!(out.len() >= 9, "a partial frame header at the end: {out:?}");
        let len = u32::from_be_bytes([0, out[0], out[1], out[2]]) as usize;
        let kind = out[3];
        let stream = u32::from_be_bytes([out[5], out[6], out[7], out[8]]) & 0x7fff_ffff;
        assert!(out.len() >= 9 + len, "a partial frame at the end");
        if first {
            assert_eq!(kind, 0x4, "the first frame is not SETTINGS");
            first = false;
        }
        match kind {
            0x0 | 0x1 => assert!(stream % 2 == 1, "HEADERS/DATA on stream {stream}"),
            0x5 => panic!("PUSH_PROMISE sent"),
            0x4 | 0x6 | 0x7 => assert_eq!(stream, 0, "frame type {kind} on stream {stream}"),
            _ => {}
        }
        out = &out[9 + len..];
    }
}

/// `io`, with everything written through it copied into the returned buffer.
pub(crate) fn tap<T>(io: T) -> (Tap<T>, Arc<Mutex<Vec<u8>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tap = Tap {
        inner: io,
        seen: seen.clone(),
    };
    (tap, seen)
}

/// Copies everything written through it into a shared buffer.
pub(crate) struct Tap<T> {
    inner: T,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tap<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            this.seen.lock().unwrap().extend_from_slice(&buf[..*n]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The kinds of client session [`record_client_session`] knows, for the seed corpus.
pub const SESSIONS: &[&str] = &[
    "unary",
    "unary_gzip",
    "unary_metadata_timeout",
    "unary_error",
    "server_stream",
    "client_stream",
    "bidi",
    "unknown_method",
    "oversized_prefix",
];

/// What a real h2 client writes for one session kind of [`SESSIONS`], to seed the
/// corpus of [`server_connection`] (with a leading mode byte of 0). `None` for an
/// unknown kind.
pub fn record_client_session(kind: &str) -> Option<Vec<u8>> {
    if !SESSIONS.contains(&kind) {
        return None;
    }
    let kind = kind.to_owned();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tap_seen = seen.clone();
    paused_runtime().block_on(async move {
        let server = test_server(false);
        let (client, server_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(server.serve_connection_for_fuzzing(BoxIo::other(server_io), peer()));
        let tap = Tap {
            inner: client,
            seen: tap_seen,
        };
        let (mut send, conn) = h2::client::handshake(tap).await.expect("h2 handshake");
        tokio::spawn(conn);
        let method = match kind.as_str() {
            "server_stream" => "ServerStream",
            "client_stream" => "ClientStream",
            "bidi" => "Bidi",
            "unknown_method" => "Nope",
            _ => "Unary",
        };
        let mut request = http::Request::post(format!("http://fuzz/fuzz.Echo/{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        let mut messages: Vec<Bytes> = vec![frame_message(b"hello", false)];
        match kind.as_str() {
            "unary_gzip" => {
                request = request.header("grpc-encoding", "gzip");
                let mut buf = bytes::BytesMut::new();
                let framed = crate::codec::compression::encode_frame(
                    &"hello hello hello".to_string(),
                    &mut buf,
                    usize::MAX,
                    Some(crate::Encoding::Gzip),
                )
                .expect("gzip");
                messages = vec![framed];
            }
            "unary_metadata_timeout" => {
                request = request
                    .header("grpc-timeout", "10S")
                    .header("x-echo", "echo me")
                    .header("x-trace-bin", "AAEC/w");
            }
            "unary_error" => messages = vec![frame_message(b"!\x05not found: 100%", false)],
            "client_stream" | "bidi" => {
                messages = vec![
                    frame_message(b"one", false),
                    frame_message(b"two", false),
                    frame_message(b"three", false),
                ]
            }
            "oversized_prefix" => messages = vec![Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff])],
            _ => {}
        }
        let request = request.body(()).expect("a valid request");
        let (response, mut body) = send.send_request(request, false).expect("send request");
        for message in messages {
            body.send_data(message, false).expect("send data");
        }
        body.send_data(Bytes::new(), true).expect("end stream");
        if let Ok(response) = response.await {
            let mut body = response.into_body();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let _ = body.trailers().await;
        }
        drop(send);
        tokio::time::sleep(Duration::from_millis(1)).await;
    });
    let seen = seen.lock().unwrap().clone();
    Some(seen)
}

/// One uncompressed length-prefixed message holding `text` as a protobuf string
/// (prost's `String` message: field 1).
fn frame_message(text: &[u8], compressed: bool) -> Bytes {
    let mut payload = Vec::with_capacity(text.len() + 2);
    if !text.is_empty() {
        payload.push(0x0a);
        prost::encoding::encode_varint(text.len() as u64, &mut payload);
        payload.extend_from_slice(text);
    }
    crate::codec::frame(&payload, compressed, &mut bytes::BytesMut::new())
}
