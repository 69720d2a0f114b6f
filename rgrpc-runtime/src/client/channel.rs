//! `Channel`: a cheap-to-clone handle on one HTTP/2 connection to a target, connected
//! eagerly or on first use, and replaced by a fresh one when it fails or the server
//! sends GOAWAY (the old one drains: its calls finish, no new ones go to it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::codec;
use crate::status::Status;
use crate::transport::client::{ClientSettings, Conn, connect};
use crate::transport::io::Address;
use crate::transport::keepalive::MIN_CLIENT_TIME;

/// Settings of a channel.
#[derive(Clone, Debug)]
pub(crate) struct ChannelConfig {
    pub max_recv_message_size: usize,
    pub max_send_message_size: usize,
    pub transport: ClientSettings,
}

impl Default for ChannelConfig {
    fn default() -> ChannelConfig {
        ChannelConfig {
            max_recv_message_size: codec::DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: codec::DEFAULT_MAX_SEND_MESSAGE_SIZE,
            transport: ClientSettings::default(),
        }
    }
}

/// A client connection to one target, shared by all clones. Many concurrent calls
/// multiplex on its HTTP/2 connection.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

struct Inner {
    /// What to dial.
    address: Address,
    /// `:authority` of every request.
    authority: http::uri::Authority,
    config: ChannelConfig,
    current: Mutex<Current>,
    /// Serializes dialing so concurrent first calls share one connection.
    dialing: tokio::sync::Mutex<()>,
}

struct Current {
    conn: Option<Arc<Conn>>,
    /// The keepalive time now in force: doubled each time a server answers
    /// `too_many_pings` (gRFC A8).
    keepalive_time: Option<Duration>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.inner.address.to_string())
            .finish()
    }
}

impl Channel {
    /// Connects to `target` now: `host:port`, `http://host:port`, `unix:/path` or
    /// `unix:relative/path` (grpc's doc/naming.md).
    pub async fn connect(target: &str) -> Result<Channel, Status> {
        let channel = Channel::lazy(target)?;
        channel.conn().await?;
        Ok(channel)
    }

    /// A channel that connects on its first call.
    pub fn lazy(target: &str) -> Result<Channel, Status> {
        let address = Address::parse(target).map_err(Status::invalid_argument)?;
        Ok(Channel::with_config(address, ChannelConfig::default()))
    }

    fn with_config(address: Address, config: ChannelConfig) -> Channel {
        Channel {
            inner: Arc::new(Inner {
                authority: address.authority(),
                address,
                current: Mutex::new(Current {
                    conn: None,
                    keepalive_time: config.transport.keepalive.time,
                }),
                config,
                dialing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Sets the largest message this channel's calls accept (default 4 MiB).
    pub fn max_recv_message_size(self, bytes: usize) -> Channel {
        self.reconfigure(|c| c.max_recv_message_size = bytes)
    }

    /// Sets the largest message this channel's calls send.
    pub fn max_send_message_size(self, bytes: usize) -> Channel {
        self.reconfigure(|c| c.max_send_message_size = bytes)
    }

    /// Pings the server after `time` without reading anything from it (gRFC A8;
    /// default: never). Clamped to at least 10 seconds, as A8 requires; servers
    /// usually allow one ping per 5 minutes unless configured otherwise.
    pub fn keepalive_time(self, time: Duration) -> Channel {
        self.reconfigure(|c| c.transport.keepalive.time = Some(time.max(MIN_CLIENT_TIME)))
    }

    /// How long to wait for any byte after a keepalive ping before the connection is
    /// closed and its calls fail UNAVAILABLE (default 20 s).
    pub fn keepalive_timeout(self, timeout: Duration) -> Channel {
        self.reconfigure(|c| c.transport.keepalive.timeout = timeout)
    }

    /// Whether keepalive pings are sent while no call is active (default `false`).
    pub fn keepalive_without_calls(self, permit: bool) -> Channel {
        self.reconfigure(|c| c.transport.keepalive.permit_without_stream = permit)
    }

    /// How long dialing and the HTTP/2 handshake may take (default 20 s,
    /// connection-backoff.md's MIN_CONNECT_TIMEOUT).
    pub fn connect_timeout(self, timeout: Duration) -> Channel {
        self.reconfigure(|c| c.transport.connect_timeout = timeout)
    }

    /// Keepalive below the A8 minimum, for tests of keepalive itself.
    #[doc(hidden)]
    pub fn keepalive_time_unclamped(self, time: Duration) -> Channel {
        self.reconfigure(|c| c.transport.keepalive.time = Some(time))
    }

    /// The keepalive time the next connection will use (doubled after each GOAWAY
    /// `too_many_pings`), for tests.
    #[doc(hidden)]
    pub fn keepalive_time_in_force(&self) -> Option<Duration> {
        self.current().keepalive_time
    }

    fn reconfigure(self, f: impl FnOnce(&mut ChannelConfig)) -> Channel {
        let mut config = self.inner.config.clone();
        f(&mut config);
        // A new channel; the old connection (if any) stays with the old clones.
        Channel::with_config(self.inner.address.clone(), config)
    }

    pub(crate) fn config(&self) -> &ChannelConfig {
        &self.inner.config
    }

    pub(crate) fn authority(&self) -> &http::uri::Authority {
        &self.inner.authority
    }

    /// The live connection, dialing if there is none, the last one failed or it is
    /// draining (the server sent GOAWAY).
    pub(crate) async fn conn(&self) -> Result<Arc<Conn>, Status> {
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let _dialing = self.inner.dialing.lock().await;
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let conn = Arc::new(self.dial().await?);
        self.current().conn = Some(conn.clone());
        Ok(conn)
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.inner.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> Option<Arc<Conn>> {
        let current = self.current();
        current.conn.as_ref().filter(|c| c.is_ready()).cloned()
    }

    async fn dial(&self) -> Result<Conn, Status> {
        let mut settings = self.inner.config.transport.clone();
        {
            let mut current = self.current();
            if current
                .conn
                .as_ref()
                .is_some_and(|c| c.got_too_many_pings())
            {
                // gRFC A8: after GOAWAY too_many_pings, double the keepalive time.
                current.keepalive_time = current.keepalive_time.map(|t| t.saturating_mul(2));
            }
            current.conn = None;
            settings.keepalive.time = current.keepalive_time;
        }
        let address = &self.inner.address;
        let timeout = settings.connect_timeout;
        let io = match tokio::time::timeout(timeout, address.connect()).await {
            Ok(Ok((io, _peer))) => io,
            Ok(Err(e)) => {
                return Err(Status::unavailable(format!("connecting to {address}: {e}")));
            }
            Err(_) => {
                return Err(Status::unavailable(format!(
                    "connecting to {address}: timed out"
                )));
            }
        };
        connect(io, &settings)
            .await
            .map_err(|e| Status::unavailable(format!("connecting to {address}: {e}")))
    }
}
