//! The floor under the small-unary server rate: h2 alone, answering every request
//! with a fixed 10-byte gRPC reply (HEADERS, DATA, trailers) from inside the
//! connection's task, its writes gathered and flushed once per wake-up as rgrpc's
//! `coalesce.rs` does. No routing, no request checks, no protobuf, no metadata, no
//! deadline, no keepalive: what is left is what any server on h2 pays per call, so
//! rgrpc's per-call CPU minus this one is the whole cost of its gRPC layer.
//!
//! `h2-floor` prints `LISTENING stack=h2floor pid=<pid> port=<port>` and serves until
//! Ctrl-C or for 1800 s (it ignores its arguments, so `scripts/bench.sh` starts it as
//! it starts the two servers). The request bodies are read (and their flow-control capacity
//! released) but not decoded; every request ends with a reply.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The reply to the benchmark's 10-byte request: a gRPC frame holding a
/// `SimpleResponse` with a 10-byte payload, as rgrpc's benchmark server answers it.
const REPLY: &[u8] = &[
    0, 0, 0, 0, 14, 0x0a, 0x0c, 0x12, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
/// Streams per connection (h2load opens 50); also bounds the streams waiting for
/// their request's end.
const MAX_STREAMS: u32 = 100;
/// Bytes h2 may leave in the write buffer before its writes wait for the socket.
const MAX_BUFFERED: usize = 1 << 20;
/// Accept-and-answer rounds per wake-up before the task yields to the others.
const ROUNDS_PER_WAKE: usize = 4;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "LISTENING stack=h2floor pid={} port={}",
        std::process::id(),
        listener.local_addr()?.port()
    );
    let serve = async {
        loop {
            let (socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            tokio::spawn(connection(socket));
        }
    };
    tokio::select! {
        result = serve => result,
        () = tokio::time::sleep(Duration::from_secs(1800)) => Ok(()),
        // A clean exit on Ctrl-C, so profilers (callgrind) write their output.
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// The bytes h2 wrote that have not reached the socket yet.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// h2 found the buffer full: wake the task once it has drained.
    blocked: bool,
}

fn lock(out: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // Poisoning needs a panic while the lock is held; nothing under it can panic, so
    // the buffer is whole either way.
    out.lock().unwrap_or_else(|e| e.into_inner())
}

/// What h2 reads and writes: reads from the socket, writes into the shared buffer.
struct Io {
    read: OwnedReadHalf,
    out: Arc<Mutex<Pending>>,
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut out = lock(&self.out);
        if out.bytes.len() >= MAX_BUFFERED {
            out.blocked = true;
            return Poll::Pending;
        }
        out.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Flushed by the connection task at the end of its wake-up.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn connection(socket: tokio::net::TcpStream) {
    let (read, mut write) = socket.into_split();
    let out = Arc::new(Mutex::new(Pending::default()));
    let io = Io {
        read,
        out: out.clone(),
    };
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .handshake::<_, Bytes>(io);
    tokio::pin!(handshake);
    let Some(mut conn) = poll_fn(|cx| {
        let shaken = handshake.as_mut().poll(cx);
        match (drain(&out, &mut write, cx), shaken) {
            (Poll::Ready(Err(_)), _) | (_, Poll::Ready(Err(_))) => Poll::Ready(None),
            (_, Poll::Ready(Ok(conn))) => Poll::Ready(Some(conn)),
            (_, Poll::Pending) => Poll::Pending,
        }
    })
    .await
    else {
        return;
    };
    // Streams accepted whose request has not ended yet.
    let mut waiting: Vec<(RecvStream, SendResponse<Bytes>)> = Vec::new();
    poll_fn(|cx| {
        let closed = serve_rounds(&mut conn, &mut waiting, cx);
        // Once per wake-up, and after the end too: h2's last bytes (its GOAWAY, the
        // last replies) still go out, as far as the socket takes them.
        match (drain(&out, &mut write, cx), closed) {
            (Poll::Ready(Err(_)), _) | (_, Poll::Ready(())) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    })
    .await;
}

/// Accepts streams and answers those whose request has ended, until nothing is new
/// (Pending) or the connection has ended (Ready); after `ROUNDS_PER_WAKE` busy rounds
/// the task wakes itself and yields.
fn serve_rounds(
    conn: &mut h2::server::Connection<Io, Bytes>,
    waiting: &mut Vec<(RecvStream, SendResponse<Bytes>)>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    for _ in 0..ROUNDS_PER_WAKE {
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    waiting.push((request.into_body(), respond));
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        let mut answered = false;
        let mut i = 0;
        while i < waiting.len() {
            if request_ended(&mut waiting[i].0, cx) {
                answer(waiting.swap_remove(i).1);
                answered = true;
            } else {
                i += 1;
            }
        }
        if !answered {
            // Nothing new for h2, and the last poll_accept encoded the rest.
            return Poll::Pending;
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Reads the request's DATA (releasing its capacity); true once the request ended.
fn request_ended(body: &mut RecvStream, cx: &mut Context<'_>) -> bool {
    loop {
        match body.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = body.flow_control().release_capacity(data.len());
            }
            Poll::Ready(_) => return true,
            Poll::Pending => return false,
        }
    }
}

/// HEADERS, the reply's DATA and the OK trailers, queued in h2.
fn answer(mut respond: SendResponse<Bytes>) {
    let mut head = Response::new(());
    head.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let Ok(mut send) = respond.send_response(head, false) else {
        return;
    };
    let _ = send.send_data(Bytes::from_static(REPLY), false);
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(
        http::HeaderName::from_static("grpc-status"),
        HeaderValue::from_static("0"),
    );
    let _ = send.send_trailers(trailers);
}

/// Writes the buffered bytes to the socket: Ready(Ok) once empty, Pending (woken when
/// the socket can take more) if it is full.
fn drain(
    out: &Mutex<Pending>,
    write: &mut OwnedWriteHalf,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>> {
    let mut out = lock(out);
    let mut sent = 0;
    let result = loop {
        if sent == out.bytes.len() {
            break Poll::Ready(Ok(()));
        }
        match Pin::new(&mut *write).poll_write(cx, &out.bytes[sent..]) {
            Poll::Ready(Ok(0)) => break Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => sent += n,
            Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
            Poll::Pending => break Poll::Pending,
        }
    };
    out.bytes.drain(..sent);
    if out.blocked && out.bytes.len() < MAX_BUFFERED {
        out.blocked = false;
        cx.waker().wake_by_ref();
    }
    result
}
