//! The accept loop and the per-connection task that owns the h2 server connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::stream::{StreamEnv, serve_stream};
use super::{Router, ServerConfig};
use crate::controlbuf::Writer;

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
    let handshake = builder.handshake::<_, bytes::Bytes>(io);
    let mut conn = match tokio::time::timeout(config.connection_timeout, handshake).await {
        Ok(Ok(conn)) => conn,
        _ => return,
    };
    let (writer, writer_task) = Writer::new();
    tokio::pin!(writer_task);
    let mut next_key = 0u64;
    let mut draining = *drain.borrow();
    if draining {
        conn.graceful_shutdown();
    }
    loop {
        tokio::select! {
            // The writer first: what it hands h2 is flushed by the accept poll below,
            // in the same wake-up.
            biased;
            () = &mut writer_task => {}
            accepted = conn.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    next_key += 1;
                    let env = StreamEnv {
                        router: router.clone(),
                        config: config.clone(),
                        writer: writer.clone(),
                        remote_addr,
                    };
                    tokio::spawn(serve_stream(env, next_key, request, respond));
                }
                Some(Err(_)) => return,
                None => break,
            },
            changed = drain.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.graceful_shutdown();
                }
            }
        }
    }
    // Accepting has ended; keep driving the writer and the connection until every
    // stream has flushed and the connection has closed.
    drop(writer);
    let closed = std::future::poll_fn(|cx| conn.poll_closed(cx));
    let _ = tokio::join!(closed, writer_task);
}
