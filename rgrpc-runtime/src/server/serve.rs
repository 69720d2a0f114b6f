//! The accept loop: one task per accepted connection, driven by `transport::server`,
//! until a stop is requested; then the connections are told (graceful or forced) and
//! the loop returns once every one has closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::stream::Streams;
use super::trim::Trimmer;
use crate::transport::io::Listener;
use crate::transport::server::{ServerSettings, Stop, StreamHandler, serve_connection};

/// How long the loop pauses after a failed accept. A full descriptor table (EMFILE)
/// fails every accept at once; without a pause the loop would spin a core while the
/// descriptors stay exhausted. grpc-go backs off 5 ms doubling to 1 s; the first
/// step is enough here to stop the spin, and new descriptors are tried again soon.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(5);

pub(crate) async fn accept_loop(
    listener: Listener,
    streams: Arc<Streams>,
    settings: Arc<ServerSettings>,
    stop: Arc<watch::Sender<Stop>>,
    trimmer: Option<Arc<Trimmer>>,
    signal: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let handler: Arc<dyn StreamHandler> = Arc::new(streams);
    let mut stopping = stop.subscribe();
    let mut connections = JoinSet::new();
    tokio::pin!(signal);
    let mut signalled = false;
    while *stopping.borrow_and_update() == Stop::Running {
        tokio::select! {
            accepted = std::future::poll_fn(|cx| listener.poll_accept(cx)) => match accepted {
                Ok((io, peer)) => {
                    connections.spawn(serve_connection(
                        io,
                        peer,
                        settings.clone(),
                        handler.clone(),
                        stop.subscribe(),
                    ));
                }
                // Per-connection errors (ECONNABORTED, EMFILE) must not stop the server.
                Err(_) => tokio::time::sleep(ACCEPT_ERROR_PAUSE).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                if let Some(trimmer) = &trimmer {
                    trimmer.connection_closed();
                }
            }
            () = &mut signal, if !signalled => signalled = true,
            _ = stopping.changed() => {}
        }
    }
    // A Unix listener removes its socket file as it goes.
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}
