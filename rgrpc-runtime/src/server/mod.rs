//! The server: a table of services, an accept loop, one task per connection that owns
//! the h2 connection, and per stream a future polled first in that task and spawned as
//! its own task if it waits (see [`dispatch`], [`stream`]).

mod conn;
mod context;
mod dispatch;
mod stream;

pub use context::ServerContext;
pub use stream::{RecvStream, SendStream, ServerStream};

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::codec;
use crate::service::{Handler, ServiceDesc};
use crate::status::Status;

/// Settings of a server and of each connection it accepts.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub max_recv_message_size: usize,
    pub max_send_message_size: usize,
    pub max_concurrent_streams: Option<u32>,
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
    pub connection_timeout: Duration,
    pub send_compression: Option<crate::Encoding>,
    /// Poll each new stream once in the connection task before spawning it
    /// (see `dispatch`).
    pub inline_dispatch: bool,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_recv_message_size: codec::DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: codec::DEFAULT_MAX_SEND_MESSAGE_SIZE,
            max_concurrent_streams: None,
            // Larger than HTTP/2's 64 KiB default, as grpc-go and hyper do, so one
            // round trip carries more than one 64 KiB message.
            initial_stream_window: 1024 * 1024,
            initial_connection_window: 2 * 1024 * 1024,
            max_frame_size: 16 * 1024,
            // grpc-go's default max header list size is 16 MiB; 16 KiB is HTTP/2's
            // advertised default in most servers and ample for metadata.
            max_header_list_size: 16 * 1024,
            // grpc-go's default connection timeout: 120 s to finish the handshake.
            connection_timeout: Duration::from_secs(120),
            send_compression: None,
            inline_dispatch: true,
        }
    }
}

/// Routes `:path` to handlers.
pub(crate) struct Router {
    handlers: HashMap<String, Handler>,
    services: HashSet<&'static str>,
}

impl Router {
    /// Finds the handler for `/service/method`; unknown ones are UNIMPLEMENTED with the
    /// message grpc-go uses.
    pub(crate) fn route(&self, path: &str) -> Result<&Handler, Status> {
        if let Some(handler) = self.handlers.get(path) {
            return Ok(handler);
        }
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        match trimmed.rsplit_once('/') {
            Some((service, method)) if self.services.contains(service) => Err(
                Status::unimplemented(format!("unknown method {method} for service {service}")),
            ),
            Some((service, _)) => Err(Status::unimplemented(format!("unknown service {service}"))),
            None => Err(Status::unimplemented(format!(
                "malformed method name: {path:?}"
            ))),
        }
    }
}

/// A gRPC server. Register services with the generated `register_*_server` functions,
/// then call one of the `serve` methods.
pub struct Server {
    router: Router,
    config: ServerConfig,
}

impl Default for Server {
    fn default() -> Server {
        Server::new()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("services", &self.router.services)
            .field("config", &self.config)
            .finish()
    }
}

impl Server {
    /// A server with default settings and no services.
    pub fn new() -> Server {
        Server {
            router: Router {
                handlers: HashMap::new(),
                services: HashSet::new(),
            },
            config: ServerConfig::default(),
        }
    }

    /// Registers a service's handlers, given in the order of `desc.methods` then
    /// `desc.streams` (as generated code does).
    ///
    /// # Panics
    /// When the handler count does not match the descriptor or the service is already
    /// registered: both are programming errors (grpc-go panics likewise).
    pub fn register_service(&mut self, desc: &'static ServiceDesc, handlers: Vec<Handler>) {
        let names = desc
            .methods
            .iter()
            .map(|m| m.method_name)
            .chain(desc.streams.iter().map(|s| s.stream_name));
        assert_eq!(
            names.clone().count(),
            handlers.len(),
            "register_service({}): one handler per method",
            desc.service_name
        );
        assert!(
            self.router.services.insert(desc.service_name),
            "register_service: service {} registered twice",
            desc.service_name
        );
        for (name, handler) in names.zip(handlers) {
            self.router
                .handlers
                .insert(format!("/{}/{}", desc.service_name, name), handler);
        }
    }

    /// The largest message the server accepts (default 4 MiB); larger ones fail their
    /// call with RESOURCE_EXHAUSTED.
    pub fn max_recv_message_size(mut self, bytes: usize) -> Server {
        self.config.max_recv_message_size = bytes;
        self
    }

    /// The largest message the server sends.
    pub fn max_send_message_size(mut self, bytes: usize) -> Server {
        self.config.max_send_message_size = bytes;
        self
    }

    /// SETTINGS_MAX_CONCURRENT_STREAMS per connection (default: unlimited).
    pub fn max_concurrent_streams(mut self, streams: u32) -> Server {
        self.config.max_concurrent_streams = Some(streams);
        self
    }

    /// SETTINGS_INITIAL_WINDOW_SIZE for each stream.
    pub fn initial_stream_window_size(mut self, bytes: u32) -> Server {
        self.config.initial_stream_window = bytes;
        self
    }

    /// The connection-level flow-control window.
    pub fn initial_connection_window_size(mut self, bytes: u32) -> Server {
        self.config.initial_connection_window = bytes;
        self
    }

    /// SETTINGS_MAX_FRAME_SIZE (16 KiB to 16 MiB - 1).
    pub fn max_frame_size(mut self, bytes: u32) -> Server {
        self.config.max_frame_size = bytes;
        self
    }

    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub fn max_header_list_size(mut self, bytes: u32) -> Server {
        self.config.max_header_list_size = bytes;
        self
    }

    /// Compresses responses with `encoding` by default, for clients that accept it.
    pub fn send_compression(mut self, encoding: crate::Encoding) -> Server {
        self.config.send_compression = Some(encoding);
        self
    }

    /// How long a new connection has to complete the HTTP/2 handshake.
    pub fn connection_timeout(mut self, timeout: Duration) -> Server {
        self.config.connection_timeout = timeout;
        self
    }

    /// Whether a new stream's handler is first polled inside its connection's task
    /// (default `true`). A call that completes in that poll (a unary handler that does
    /// not wait) costs no task spawn, and its reply is flushed with the others of the
    /// same wake-up; a call still pending is spawned as its own task. After an inline
    /// poll longer than 100 us the connection spawns the next 256 streams directly.
    /// The cost: a handler that computes (or blocks its thread) for long before its
    /// first `.await` holds up the other streams of its connection while it does, once
    /// per 256 streams. `false` spawns every stream as its own task, as grpc-go runs
    /// each in a goroutine; choose it for such handlers.
    pub fn inline_dispatch(mut self, inline: bool) -> Server {
        self.config.inline_dispatch = inline;
        self
    }

    /// Binds `addr` and serves until an I/O error on the listener.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<()> {
        self.serve_with_incoming(TcpListener::bind(addr).await?)
            .await
    }

    /// Serves connections accepted from `listener`.
    pub async fn serve_with_incoming(self, listener: TcpListener) -> std::io::Result<()> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves until `signal` completes, then stops accepting, asks every connection to
    /// drain (GOAWAY) and returns once their streams have finished.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        conn::accept_loop(
            listener,
            Arc::new(self.router),
            Arc::new(self.config),
            signal,
        )
        .await
    }
}
