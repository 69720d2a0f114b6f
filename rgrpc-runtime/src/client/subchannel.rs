//! A subchannel: one address of a channel, with at most one connection, its own
//! connectivity state and its own reconnect backoff. Connecting happens in the
//! subchannel's task, never in a caller: callers pick a Ready subchannel or wait.
//!
//! ```text
//!   Idle ──connect()──▶ Connecting ──ok──▶ Ready ──GOAWAY / lost──▶ Idle
//!                         ▲     │ failed
//!                         │     ▼
//!                 backoff └── TransientFailure   (retried on its own schedule)
//!   (any) ──shutdown()──▶ Shutdown
//! ```

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::backoff::{Backoff, BackoffConfig, random_unit};
use super::state::ConnectivityState;
use crate::status::Status;
use crate::transport::client::{ClientSettings, Conn, connect};
use crate::transport::io::Address;

/// Told of every state change (the channel re-picks and re-aggregates).
pub(crate) type OnChange = Arc<dyn Fn(&Arc<Subchannel>) + Send + Sync>;

/// One address's connection (see the module doc).
pub(crate) struct Subchannel {
    address: Address,
    /// The address as text, for load balancers.
    label: String,
    settings: ClientSettings,
    on_change: OnChange,
    inner: Mutex<Inner>,
}

struct Inner {
    state: ConnectivityState,
    conn: Option<Arc<Conn>>,
    backoff: Backoff,
    /// Why the last attempt failed.
    last_error: Option<Status>,
    /// The keepalive time in force: doubled after each GOAWAY `too_many_pings`.
    keepalive_time: Option<Duration>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Subchannel {
    pub(crate) fn new(
        address: Address,
        settings: ClientSettings,
        backoff: BackoffConfig,
        on_change: OnChange,
    ) -> Arc<Subchannel> {
        Arc::new(Subchannel {
            inner: Mutex::new(Inner {
                state: ConnectivityState::Idle,
                conn: None,
                backoff: Backoff::new(backoff),
                last_error: None,
                keepalive_time: settings.keepalive.time,
                task: None,
            }),
            label: address.to_string(),
            address,
            settings,
            on_change,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update is a few assignments: a panic cannot leave it half-made.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address.
    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    /// The address as text.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The state now.
    pub(crate) fn state(&self) -> ConnectivityState {
        self.lock().state
    }

    /// Why the last connection attempt failed.
    pub(crate) fn last_error(&self) -> Option<Status> {
        self.lock().last_error.clone()
    }

    /// The keepalive time its next connection uses.
    pub(crate) fn keepalive_time(&self) -> Option<Duration> {
        self.lock().keepalive_time
    }

    /// The connection, if Ready and still accepting streams.
    pub(crate) fn ready_conn(&self) -> Option<Arc<Conn>> {
        let inner = self.lock();
        match (&inner.state, &inner.conn) {
            (ConnectivityState::Ready, Some(conn)) if conn.is_ready() => Some(conn.clone()),
            _ => None,
        }
    }

    /// Idle -> Connecting: starts the subchannel's task (once).
    pub(crate) fn connect(self: &Arc<Self>) {
        let mut inner = self.lock();
        if inner.state != ConnectivityState::Idle || inner.task.is_some() {
            return;
        }
        let this = self.clone();
        inner.task = Some(tokio::spawn(async move { this.run().await }));
    }

    /// -> Shutdown: stops connecting; the connection goes once its calls are done.
    pub(crate) fn shutdown(&self) {
        let mut inner = self.lock();
        inner.state = ConnectivityState::Shutdown;
        inner.conn = None;
        if let Some(task) = inner.task.take() {
            task.abort();
        }
    }

    fn set(self: &Arc<Self>, state: ConnectivityState, update: impl FnOnce(&mut Inner)) {
        {
            let mut inner = self.lock();
            if inner.state == ConnectivityState::Shutdown {
                return;
            }
            inner.state = state;
            update(&mut inner);
        }
        (self.on_change)(self);
    }

    /// Connects, with backoff, until connected; then watches the connection and
    /// goes Idle when it is lost.
    async fn run(self: Arc<Self>) {
        loop {
            self.set(ConnectivityState::Connecting, |_| {});
            let (timeout, keepalive_time) = {
                let inner = self.lock();
                (inner.backoff.connect_timeout(), inner.keepalive_time)
            };
            let mut settings = self.settings.clone();
            settings.keepalive.time = keepalive_time;
            settings.connect_timeout = timeout;
            let address = &self.address;
            let attempt = async {
                let (io, _peer) = address
                    .connect()
                    .await
                    .map_err(|e| format!("connecting to {address}: {e}"))?;
                // TLS inside the same attempt: under the same connect timeout.
                #[cfg(feature = "tls")]
                let io = match &settings.tls {
                    Some(tls) => tls
                        .connect(io)
                        .await
                        .map_err(|e| format!("connecting to {address}: {e}"))?,
                    None => io,
                };
                connect(io, &settings)
                    .await
                    .map_err(|e| format!("connecting to {address}: {e}"))
            };
            let result = match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(format!("connecting to {address}: timed out")),
            };
            match result {
                Ok(conn) => {
                    let conn = Arc::new(conn);
                    self.set(ConnectivityState::Ready, |inner| {
                        inner.conn = Some(conn.clone());
                        inner.backoff.reset();
                        inner.last_error = None;
                    });
                    conn.left_ready().await;
                    // Ready -> Idle: the next pick (or the policy) connects again.
                    self.set(ConnectivityState::Idle, |inner| {
                        inner.conn = None;
                        inner.task = None;
                        if conn.got_too_many_pings() {
                            // gRFC A8: double the keepalive time.
                            inner.keepalive_time =
                                inner.keepalive_time.map(|t| t.saturating_mul(2));
                        }
                    });
                    return;
                }
                Err(message) => {
                    let delay = self.lock().backoff.next_delay(random_unit());
                    self.set(ConnectivityState::TransientFailure, |inner| {
                        inner.last_error = Some(Status::unavailable(message));
                    });
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

impl Drop for Subchannel {
    fn drop(&mut self) {
        if let Some(task) = self.lock().task.take() {
            task.abort();
        }
    }
}
