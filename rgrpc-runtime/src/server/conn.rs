//! The accept loop and the per-connection task that owns the h2 server connection.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::dispatch::Dispatch;
use super::stream::{StreamEnv, serve_stream};
use super::{Router, ServerConfig};
use crate::coalesce::{CoalescingIo, Flusher};
use crate::controlbuf::{StreamKey, Writer, WriterTask, Written};

pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Arc<Router>,
    config: Arc<ServerConfig>,
    signal: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((io, _)) => {
                    connections.spawn(serve_connection(
                        io,
                        router.clone(),
                        config.clone(),
                        drain_rx.clone(),
                    ));
                }
                // Per-connection errors (ECONNABORTED, EMFILE) must not stop the server;
                // back off briefly so a full descriptor table does not spin the loop.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut signal => break,
        }
    }
    drop(listener);
    let _ = drain_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(
    io: TcpStream,
    router: Arc<Router>,
    config: Arc<ServerConfig>,
    mut drain: watch::Receiver<bool>,
) {
    let remote_addr = io.peer_addr().ok();
    let _ = io.set_nodelay(true);
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(config.initial_stream_window)
        .initial_connection_window_size(config.initial_connection_window)
        .max_frame_size(config.max_frame_size)
        .max_header_list_size(config.max_header_list_size)
        // h2's rapid-reset guard closes the connection when more than this many streams
        // the client reset are waiting to be accepted (default 20). Deadline-bound
        // clients under overload legitimately open streams that expire at once; our
        // accept loop drains them in the same wake-up, so a larger bound only costs a
        // few hundred bytes per pending stream, still bounded.
        .max_pending_accept_reset_streams(1024)
        // Bounds h2's own per-stream send buffer; the writer never exceeds the window.
        .max_send_buffer_size(crate::controlbuf::STREAM_WRITE_QUOTA);
    if let Some(n) = config.max_concurrent_streams {
        builder.max_concurrent_streams(n);
    }
    let (io, flusher) = CoalescingIo::new(io);
    let handshake = builder.handshake::<_, Bytes>(io);
    let conn = match tokio::time::timeout(config.connection_timeout, handshake).await {
        Ok(Ok(conn)) => conn,
        _ => return,
    };
    let (writer, writer_task) = Writer::new();
    flusher.take_over();
    let mut driver = Driver {
        conn,
        flusher,
        writer_task,
        dispatch: Dispatch::new(config.inline_dispatch),
        env: Some(StreamEnv {
            router,
            config,
            writer,
            remote_addr,
        }),
        next_key: 0,
    };
    let mut draining = *drain.borrow();
    if draining {
        driver.conn.graceful_shutdown();
    }
    loop {
        tokio::select! {
            biased;
            () = std::future::poll_fn(|cx| driver.poll(cx)) => break,
            changed = drain.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    driver.conn.graceful_shutdown();
                }
            }
        }
    }
}

/// Rounds of accept-write-flush one wake-up of the connection task runs before it
/// yields, so a connection that always has work does not hog its worker thread.
const ROUNDS_PER_WAKE: usize = 16;

/// Owns one h2 server connection, its writer, and the dispatch of its streams.
struct Driver {
    conn: h2::server::Connection<CoalescingIo<TcpStream>, Bytes>,
    /// Writes what h2 wrote during a wake-up, once, at its end (see `coalesce`).
    flusher: Flusher<TcpStream>,
    writer_task: WriterTask,
    dispatch: Dispatch,
    /// What each stream gets from the connection; `Some` while the connection accepts
    /// streams, `None` once h2 has said accepting ended.
    env: Option<StreamEnv>,
    next_key: StreamKey,
}

impl Driver {
    /// Serves the connection until it has closed and every stream has been written.
    ///
    /// Each round first accepts every stream h2 has ready, dispatching each (a small
    /// unary call completes right here and queues its reply), then lets the writer hand
    /// h2 everything queued, and polls h2 again, which encodes it into the coalescing
    /// buffer; the buffer is flushed once, at the end of the wake-up: all the replies
    /// produced in one wake-up leave in one write instead of one write per reply.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let done = self.poll_rounds(cx);
        self.writer_task.poll_resets(cx);
        // Every byte h2 wrote goes to the socket before the task sleeps; a full socket
        // wakes it again. A write error reaches h2 through its next write or read.
        let _ = self.flusher.poll_flush(cx);
        done
    }

    fn poll_rounds(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..ROUNDS_PER_WAKE {
            while let Some(env) = &self.env {
                match self.conn.poll_accept(cx) {
                    Poll::Ready(Some(Ok((request, respond)))) => {
                        self.next_key += 1;
                        let stream = serve_stream(env.clone(), self.next_key, request, respond);
                        self.dispatch.run(Box::pin(stream), cx);
                    }
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(()),
                    // Accepting has ended (GOAWAY, peer closed): keep writing until
                    // every stream has flushed.
                    Poll::Ready(None) => self.env = None,
                    Poll::Pending => break,
                }
            }
            let written = self.writer_task.poll_write(cx);
            // Closing: poll_closed writes out what the writer handed h2 and tells when
            // the connection is done (while accepting, the next poll_accept does both).
            if self.env.is_none() && self.conn.poll_closed(cx).is_ready() {
                return Poll::Ready(());
            }
            if written != Written::Frames {
                // Nothing new for h2, and the last h2 poll wrote out the rest.
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
