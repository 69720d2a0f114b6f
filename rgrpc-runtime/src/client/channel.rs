//! `Channel`: a cheap-to-clone handle on one HTTP/2 connection to a target, connected
//! eagerly or on first use and re-established after it fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::coalesce::CoalescingIo;
use crate::codec;
use crate::controlbuf::{Writer, Written};
use crate::status::Status;

/// Settings of a channel.
#[derive(Clone, Debug)]
pub(crate) struct ChannelConfig {
    pub max_recv_message_size: usize,
    pub max_send_message_size: usize,
    pub connect_timeout: Duration,
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
}

impl Default for ChannelConfig {
    fn default() -> ChannelConfig {
        ChannelConfig {
            max_recv_message_size: codec::DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: codec::DEFAULT_MAX_SEND_MESSAGE_SIZE,
            // connection-backoff.md: MIN_CONNECT_TIMEOUT = 20 seconds.
            connect_timeout: Duration::from_secs(20),
            initial_stream_window: 1024 * 1024,
            initial_connection_window: 2 * 1024 * 1024,
        }
    }
}

/// Streams one connection opens at once when the server sets no MAX_CONCURRENT_STREAMS
/// (grpc-go's default server limit is unbounded too; this bounds our own memory).
const MAX_OPEN_STREAMS: usize = 10_000;

/// A client connection to one target, shared by all clones. Many concurrent calls
/// multiplex on its HTTP/2 connection.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port` to dial.
    addr: String,
    /// `:authority` of every request.
    authority: http::uri::Authority,
    config: ChannelConfig,
    current: Mutex<Option<Arc<Conn>>>,
    /// Serializes dialing so concurrent first calls share one connection.
    dialing: tokio::sync::Mutex<()>,
}

/// One established HTTP/2 connection.
pub(crate) struct Conn {
    /// Cloned per call; calls only send once they hold a `streams` permit.
    pub send_request: h2::client::SendRequest<Bytes>,
    /// One permit per stream the server allows (its MAX_CONCURRENT_STREAMS, read once
    /// its SETTINGS have arrived), held for the life of each call's stream. Callers
    /// beyond the limit wait here, deadlines running, holding nothing: without it each
    /// fresh `SendRequest` clone is "ready", every caller queues a stream inside h2
    /// without bound, and expiring callers reset them en masse until the server's h2
    /// closes the connection (ENHANCE_YOUR_CALM, too_many_resets).
    pub streams: Arc<tokio::sync::Semaphore>,
    pub writer: Writer,
    next_key: AtomicU64,
    closed: Arc<AtomicBool>,
}

impl Conn {
    pub(crate) fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.inner.addr)
            .finish()
    }
}

impl Channel {
    /// Connects to `target` (`http://host:port` or `host:port`) now.
    pub async fn connect(target: &str) -> Result<Channel, Status> {
        let channel = Channel::lazy(target)?;
        channel.conn().await?;
        Ok(channel)
    }

    /// A channel that connects on its first call.
    pub fn lazy(target: &str) -> Result<Channel, Status> {
        Channel::with_config(target, ChannelConfig::default())
    }

    fn with_config(target: &str, config: ChannelConfig) -> Result<Channel, Status> {
        let rest = match target.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => {
                return Err(Status::invalid_argument(format!(
                    "unsupported scheme {scheme:?} in target {target:?}: only http is supported"
                )));
            }
            None => target,
        };
        let rest = rest.trim_end_matches('/');
        let authority: http::uri::Authority = rest
            .parse()
            .map_err(|e| Status::invalid_argument(format!("bad target {target:?}: {e}")))?;
        if authority.port_u16().is_none() {
            return Err(Status::invalid_argument(format!(
                "target {target:?} has no port"
            )));
        }
        Ok(Channel {
            inner: Arc::new(Inner {
                addr: rest.to_owned(),
                authority,
                config,
                current: Mutex::new(None),
                dialing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Sets the largest message this channel's calls accept (default 4 MiB).
    pub fn max_recv_message_size(self, bytes: usize) -> Channel {
        self.reconfigure(|c| c.max_recv_message_size = bytes)
    }

    /// Sets the largest message this channel's calls send.
    pub fn max_send_message_size(self, bytes: usize) -> Channel {
        self.reconfigure(|c| c.max_send_message_size = bytes)
    }

    fn reconfigure(self, f: impl FnOnce(&mut ChannelConfig)) -> Channel {
        let mut config = self.inner.config.clone();
        f(&mut config);
        // A new channel; the old connection (if any) stays with the old clones.
        Channel::with_config(&self.inner.addr, config).unwrap_or(self)
    }

    pub(crate) fn config(&self) -> &ChannelConfig {
        &self.inner.config
    }

    pub(crate) fn authority(&self) -> &http::uri::Authority {
        &self.inner.authority
    }

    /// The live connection, dialing if there is none or the last one failed.
    pub(crate) async fn conn(&self) -> Result<Arc<Conn>, Status> {
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let _dialing = self.inner.dialing.lock().await;
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let conn = Arc::new(self.dial().await?);
        *self.inner.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    fn live(&self) -> Option<Arc<Conn>> {
        let current = self.inner.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|c| !c.closed.load(Ordering::Acquire))
            .cloned()
    }

    async fn dial(&self) -> Result<Conn, Status> {
        let config = &self.inner.config;
        let addr = &self.inner.addr;
        let io = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await
        {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(Status::unavailable(format!("connecting to {addr}: {e}"))),
            Err(_) => {
                return Err(Status::unavailable(format!(
                    "connecting to {addr}: timed out"
                )));
            }
        };
        let _ = io.set_nodelay(true);
        let (io, flusher) = CoalescingIo::new(io);
        let handshake = h2::client::Builder::new()
            .initial_window_size(config.initial_stream_window)
            .initial_connection_window_size(config.initial_connection_window)
            .max_send_buffer_size(crate::controlbuf::STREAM_WRITE_QUOTA)
            .handshake::<_, Bytes>(io);
        let (send_request, mut connection) =
            match tokio::time::timeout(config.connect_timeout, handshake).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    return Err(Status::unavailable(format!("handshake with {addr}: {e}")));
                }
                Err(_) => {
                    return Err(Status::unavailable(format!(
                        "handshake with {addr}: timed out"
                    )));
                }
            };
        let ping = connection.ping_pong();
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        let (writer, mut writer_task) = Writer::new();
        flusher.take_over();
        // One task drives the h2 connection and its writer (see `Writer::new`). Each
        // wake-up: the writer hands h2 what callers queued, h2 reads and writes, and
        // everything h2 wrote leaves in one flush (see `coalesce`).
        tokio::spawn(async move {
            let mut writing = true;
            std::future::poll_fn(|cx| {
                // Closed: every handle is gone (the channel was dropped); h2 finishes
                // the streams left and closes.
                if writing && writer_task.poll_write(cx) == Written::Closed {
                    writing = false;
                }
                let done = Pin::new(&mut connection).poll(cx);
                let _ = flusher.poll_flush(cx);
                done.map(|_| ())
            })
            .await;
            flag.store(true, Ordering::Release);
        });
        // Like grpc-go, the connection is ready only once the server's SETTINGS have
        // arrived: before that h2 assumes unlimited concurrent streams and the first
        // calls could be refused. The server sends SETTINGS before it answers a PING.
        if let Some(mut ping) = ping {
            let pong = tokio::time::timeout(config.connect_timeout, ping.ping(h2::Ping::opaque()));
            match pong.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(Status::unavailable(format!("handshake with {addr}: {e}")));
                }
                Err(_) => {
                    return Err(Status::unavailable(format!(
                        "handshake with {addr}: timed out"
                    )));
                }
            }
        }
        // A server that sets no limit allows "unlimited" streams; cap what we open at
        // once so the permit count stays sane.
        let limit = send_request
            .current_max_send_streams()
            .min(MAX_OPEN_STREAMS);
        Ok(Conn {
            streams: Arc::new(tokio::sync::Semaphore::new(limit)),
            send_request,
            writer,
            next_key: AtomicU64::new(1),
            closed,
        })
    }
}
