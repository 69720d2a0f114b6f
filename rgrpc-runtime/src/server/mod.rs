//! The server: a table of services, an accept loop over any listener (`serve`), and
//! per stream the checks, routing and the handler (`stream`); each connection is driven
//! by `transport::server`, which hands streams up through `stream::Streams`.

mod context;
pub(crate) mod interceptor;
mod panic;
mod path_hash;
mod request;
mod serve;
pub(crate) mod service;
mod stream;
mod trim;

pub use context::ServerContext;
pub use interceptor::{ServerCall, ServerInterceptor, ServerNext};
pub use stream::{RecvStream, SendStream, ServerStream};

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::codec;
use crate::stats::StatsHandler;
use crate::status::Status;
use crate::transport::io::Listener;
use crate::transport::server::{ServerSettings, Stop};
use service::{Handler, ServiceDesc};

/// Settings of the calls a server serves (the connection settings are the
/// transport's `ServerSettings`).
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub max_recv_message_size: usize,
    pub max_send_message_size: usize,
    pub send_compression: Option<crate::Encoding>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_recv_message_size: codec::DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: codec::DEFAULT_MAX_SEND_MESSAGE_SIZE,
            send_compression: None,
        }
    }
}

/// Routes `:path` to handlers.
pub(crate) struct Router {
    handlers: HashMap<String, Handler, path_hash::PathHash>,
    services: HashSet<&'static str>,
}

/// The services registered on a [`Server`], in registration order, including those
/// registered after this handle was made (grpc-go's `GetServiceInfo`, which its
/// reflection service reads per request). Made by [`Server::registered_services`];
/// cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct RegisteredServices {
    // Bounded by the number of `register_service` calls, which the program makes.
    descs: Arc<Mutex<Vec<&'static ServiceDesc>>>,
}

impl RegisteredServices {
    /// A snapshot of the registered services' descriptors.
    pub fn descs(&self) -> Vec<&'static ServiceDesc> {
        // Poisoning needs a panic while the lock is held; nothing in the
        // critical sections can panic, so the data is whole either way.
        self.descs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, desc: &'static ServiceDesc) {
        self.descs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(desc);
    }
}

/// The callbacks of [`ServerHandle::on_stop`]: `Some` until the first stop request
/// takes and runs them, `None` after.
type StopCallbacks = Mutex<Option<Vec<Box<dyn FnOnce() + Send>>>>;

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
    settings: ServerSettings,
    /// The stop requests of [`ServerHandle`]s, watched by the accept loop and every
    /// connection.
    stop: Arc<watch::Sender<Stop>>,
    /// Run once when the first stop is requested (see [`ServerHandle::on_stop`]).
    on_stop: Arc<StopCallbacks>,
    /// Every registered service's descriptor, for reflection.
    registered: RegisteredServices,
    /// Graceful shutdown by `serve_with_shutdown`'s signal cancels what is left
    /// after this long.
    shutdown_grace: Option<Duration>,
    /// Give freed memory back to the system after bursts of closed connections.
    trim_memory: bool,
    /// Run around every routed call, the first added outermost.
    interceptors: Vec<Arc<dyn ServerInterceptor>>,
    stats: Option<Arc<dyn StatsHandler>>,
}

/// Stops a running server from another task (grpc-go's `GracefulStop` and `Stop`).
/// Cheap to clone; made by [`Server::handle`] before serving.
#[derive(Clone)]
pub struct ServerHandle {
    stop: Arc<watch::Sender<Stop>>,
    on_stop: Arc<StopCallbacks>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("stop", &*self.stop.borrow())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Graceful stop: no new connections, GOAWAY on every connection (no new calls),
    /// calls in flight run to completion; `serve` returns once they have. Handlers
    /// see [`ServerContext::draining`] complete.
    pub fn graceful_stop(&self) {
        self.request(Stop::Graceful { cancel_at: None });
    }

    /// Graceful stop, but calls still running after `grace` are cancelled (their
    /// handlers are dropped, their clients see UNAVAILABLE).
    pub fn graceful_stop_within(&self, grace: Duration) {
        self.request(Stop::Graceful {
            cancel_at: Some(Instant::now() + grace),
        });
    }

    /// Forced stop: every call is cancelled now and every connection closed.
    pub fn stop(&self) {
        self.request(Stop::Forced);
    }

    /// Runs `callback` once when the server is first asked to stop (gracefully, by
    /// `serve_with_shutdown`'s signal, or forced), before any connection learns of it:
    /// the seam the health service uses to report NOT_SERVING as shutdown begins
    /// (grpc-go users call `health.Server.Shutdown` before `GracefulStop`). Runs it
    /// now when a stop was already requested. It runs on the thread that asked for
    /// the stop, so it must be quick and must not block.
    pub fn on_stop(&self, callback: impl FnOnce() + Send + 'static) {
        let mut callbacks = self.on_stop.lock().unwrap_or_else(|e| e.into_inner());
        match callbacks.as_mut() {
            Some(pending) => pending.push(Box::new(callback)),
            None => {
                drop(callbacks);
                callback();
            }
        }
    }

    fn request(&self, stop: Stop) {
        let callbacks = self
            .on_stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for callback in callbacks.into_iter().flatten() {
            callback();
        }
        self.stop.send_modify(|current| {
            *current = match (*current, stop) {
                (Stop::Forced, _) | (_, Stop::Forced) => Stop::Forced,
                (Stop::Graceful { cancel_at: a }, Stop::Graceful { cancel_at: b }) => {
                    Stop::Graceful {
                        cancel_at: match (a, b) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        },
                    }
                }
                (_, stop) => stop,
            }
        });
    }
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
            .field("settings", &self.settings)
            .field("interceptors", &self.interceptors.len())
            .field("stats_handler", &self.stats.is_some())
            .finish()
    }
}

impl Server {
    /// A server with default settings and no services.
    pub fn new() -> Server {
        Server {
            router: Router {
                handlers: HashMap::default(),
                services: HashSet::new(),
            },
            config: ServerConfig::default(),
            settings: ServerSettings::default(),
            stop: Arc::new(watch::channel(Stop::Running).0),
            on_stop: Arc::new(Mutex::new(Some(Vec::new()))),
            registered: RegisteredServices::default(),
            shutdown_grace: None,
            trim_memory: true,
            interceptors: Vec::new(),
            stats: None,
        }
    }

    /// A handle that stops this server once it serves (see [`ServerHandle`]).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            stop: self.stop.clone(),
            on_stop: self.on_stop.clone(),
        }
    }

    /// The services registered on this server, now and later (see
    /// [`RegisteredServices`]); what a reflection service lists.
    pub fn registered_services(&self) -> RegisteredServices {
        self.registered.clone()
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
        self.registered.push(desc);
        for (name, handler) in names.zip(handlers) {
            self.router
                .handlers
                .insert(format!("/{}/{}", desc.service_name, name), handler);
        }
    }

    /// Adds an interceptor around every call to a registered method (default: none).
    /// They run in the order added, the first outermost (grpc-go's
    /// `ChainUnaryInterceptor` and `ChainStreamInterceptor`); see
    /// [`ServerInterceptor`]. Calls to unknown methods are answered UNIMPLEMENTED
    /// before any interceptor runs.
    pub fn interceptor(mut self, interceptor: impl ServerInterceptor) -> Server {
        self.interceptors.push(Arc::new(interceptor));
        self
    }

    /// Reports the events of every routed call to `handler` (default: none; a
    /// second call replaces the first): grpc-go's `stats.Handler`, see
    /// [`StatsHandler`]. The same handler may serve several servers and channels.
    pub fn stats_handler(mut self, handler: Arc<dyn StatsHandler>) -> Server {
        self.stats = Some(handler);
        self
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

    /// SETTINGS_MAX_CONCURRENT_STREAMS per connection (default: 1024; grpc-go leaves it
    /// unlimited, which lets one peer hold any number of never-finishing streams).
    /// Streams past it are refused with REFUSED_STREAM; a client waits for a slot.
    /// `u32::MAX` is, in effect, no limit.
    pub fn max_concurrent_streams(mut self, streams: u32) -> Server {
        self.settings.max_concurrent_streams = streams;
        self
    }

    /// SETTINGS_INITIAL_WINDOW_SIZE for each stream.
    pub fn initial_stream_window_size(mut self, bytes: u32) -> Server {
        self.settings.initial_stream_window = bytes;
        self
    }

    /// The connection-level flow-control window.
    pub fn initial_connection_window_size(mut self, bytes: u32) -> Server {
        self.settings.initial_connection_window = bytes;
        self
    }

    /// SETTINGS_MAX_FRAME_SIZE (16 KiB to 16 MiB - 1).
    pub fn max_frame_size(mut self, bytes: u32) -> Server {
        self.settings.max_frame_size = bytes;
        self
    }

    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub fn max_header_list_size(mut self, bytes: u32) -> Server {
        self.settings.max_header_list_size = bytes;
        self
    }

    /// Compresses responses with `encoding` by default, for clients that accept it.
    pub fn send_compression(mut self, encoding: crate::Encoding) -> Server {
        self.config.send_compression = Some(encoding);
        self
    }

    /// How long a new connection has to complete the HTTP/2 handshake.
    pub fn connection_timeout(mut self, timeout: Duration) -> Server {
        self.settings.connection_timeout = timeout;
        self
    }

    /// Whether a new stream's handler is first polled inside its connection's task
    /// (default `true`). A call that completes in that poll (a unary handler that does
    /// not wait) costs no task spawn, and its reply is flushed with the others of the
    /// same wake-up. The first call still pending stays in the connection's task and is
    /// polled there when woken (a streaming call then answers each message in the
    /// wake-up that read it, with no task hop); other pending calls are spawned as
    /// their own tasks. A resident poll longer than 100 us moves that call into its own
    /// task; after a second inline poll that long within 32 the connection spawns the
    /// next 256 streams directly. The cost: a handler that computes (or blocks its
    /// thread) for long between two `.await`s holds up the other streams of its
    /// connection once before it is moved out. `false` spawns every stream as its own
    /// task, as grpc-go runs each in a goroutine; choose it for such handlers.
    pub fn inline_dispatch(mut self, inline: bool) -> Server {
        self.settings.inline_dispatch = inline;
        self
    }

    /// Pings each client after `time` without reading from it (default 2 hours) and
    /// closes the connection when nothing arrives within the keepalive timeout
    /// (grpc-go `ServerParameters.Time`).
    pub fn keepalive_time(mut self, time: Duration) -> Server {
        self.settings.keepalive.time = Some(time);
        self
    }

    /// How long to wait for any byte after a keepalive ping (default 20 s).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Server {
        self.settings.keepalive.timeout = timeout;
        self
    }

    /// The shortest interval between a client's pings that the server accepts
    /// (default 5 minutes; gRFC A8 `PERMIT_KEEPALIVE_TIME`). A client that pings more
    /// often gets GOAWAY ENHANCE_YOUR_CALM `too_many_pings` on its third offence.
    pub fn keepalive_min_time(mut self, min_time: Duration) -> Server {
        self.settings.enforcement.min_time = min_time;
        self
    }

    /// Whether clients may ping while they have no call (default `false`; gRFC A8
    /// `PERMIT_KEEPALIVE_WITHOUT_CALLS`).
    pub fn keepalive_permit_without_calls(mut self, permit: bool) -> Server {
        self.settings.enforcement.permit_without_stream = permit;
        self
    }

    /// Drains (GOAWAY) a connection that has had no call for `idle` (default: never;
    /// grpc-go `MaxConnectionIdle`).
    pub fn max_connection_idle(mut self, idle: Duration) -> Server {
        self.settings.max_connection_idle = Some(idle);
        self
    }

    /// Drains (GOAWAY) a connection once it is `age` old, +-10% jitter (default:
    /// never; grpc-go `MaxConnectionAge`, gRFC A9).
    pub fn max_connection_age(mut self, age: Duration) -> Server {
        self.settings.max_connection_age = Some(age);
        self
    }

    /// After max connection age, how long calls in flight may run before they are
    /// cancelled (default: as long as they take; grpc-go `MaxConnectionAgeGrace`).
    pub fn max_connection_age_grace(mut self, grace: Duration) -> Server {
        self.settings.max_connection_age_grace = Some(grace);
        self
    }

    /// Serves TLS (default: plaintext): every connection's TLS handshake runs in its
    /// own task under [`Server::connection_timeout`], and must negotiate ALPN `h2`.
    /// A plaintext client on a TLS server, and a TLS client on a plaintext one, is
    /// answered with a GOAWAY that says so and closed at once.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::ServerTlsConfig) -> Server {
        self.settings.tls = Some(config.acceptor());
        self
    }

    /// When `serve_with_shutdown`'s signal fires, how long calls in flight may run
    /// before they are cancelled (default: as long as they take).
    pub fn shutdown_grace(mut self, grace: Duration) -> Server {
        self.shutdown_grace = Some(grace);
        self
    }

    /// Whether the server asks the allocator to return freed memory to the system once
    /// a burst of connection closes is over (default: true; glibc only, see
    /// `server/trim.rs`: without it, thousands of closed connections leave tens of MiB
    /// of RSS behind). No call pays for it.
    pub fn trim_memory(mut self, trim: bool) -> Server {
        self.trim_memory = trim;
        self
    }

    /// Binds `addr` and serves until an I/O error on the listener or a stop through
    /// a [`ServerHandle`].
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.serve_with_incoming(listener).await
    }

    /// Serves connections accepted from `listener`: a [`Listener`] (TCP or Unix
    /// socket, e.g. `Listener::bind("unix:/run/app.sock")`) or a tokio listener.
    pub async fn serve_with_incoming(self, listener: impl Into<Listener>) -> std::io::Result<()> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves until `signal` completes, then stops gracefully: stops accepting, asks
    /// every connection to drain (GOAWAY) and returns once their calls have finished
    /// (or, with [`Server::shutdown_grace`], were cancelled when it ran out).
    pub async fn serve_with_shutdown(
        self,
        listener: impl Into<Listener>,
        signal: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let handle = self.handle();
        let grace = self.shutdown_grace;
        let signal = async move {
            signal.await;
            match grace {
                Some(grace) => handle.graceful_stop_within(grace),
                None => handle.graceful_stop(),
            }
        };
        let streams = Arc::new(stream::Streams {
            router: self.router,
            config: self.config,
            interceptors: self.interceptors,
            stats: self.stats,
        });
        serve::accept_loop(
            listener.into(),
            streams,
            Arc::new(self.settings),
            self.stop,
            self.trim_memory.then(|| Arc::new(trim::Trimmer::default())),
            signal,
        )
        .await
    }

    /// Serves one connection over `io`, as the accept loop would: the seam of the
    /// server-connection fuzz target, which has no listener. Stops through this
    /// server's [`ServerHandle`]s.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn serve_connection_for_fuzzing(
        self,
        io: crate::transport::io::BoxIo,
        peer: crate::transport::io::PeerAddr,
    ) -> impl Future<Output = ()> + Send + 'static {
        let streams: Arc<dyn crate::transport::server::StreamHandler> =
            Arc::new(Arc::new(stream::Streams {
                router: self.router,
                config: self.config,
                interceptors: self.interceptors,
                stats: self.stats,
            }));
        crate::transport::server::serve_connection(
            io,
            peer,
            Arc::new(self.settings),
            streams,
            self.stop.subscribe(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static A: ServiceDesc = ServiceDesc {
        service_name: "t.A",
        methods: &[],
        streams: &[],
        metadata: "a.proto",
        files: &[],
    };
    static B: ServiceDesc = ServiceDesc {
        service_name: "t.B",
        methods: &[],
        streams: &[],
        metadata: "b.proto",
        files: &[b"\x0a\x07b.proto"],
    };

    #[test]
    fn registered_services_include_later_registrations() {
        let mut server = Server::new();
        server.register_service(&A, Vec::new());
        let registered = server.registered_services();
        server.register_service(&B, Vec::new());
        let names: Vec<&str> = registered.descs().iter().map(|d| d.service_name).collect();
        assert_eq!(names, ["t.A", "t.B"]);
        assert_eq!(registered.descs()[1].files, [b"\x0a\x07b.proto"]);
    }

    #[test]
    fn on_stop_runs_once_before_the_stop_is_published() {
        let server = Server::new();
        let handle = server.handle();
        let runs = Arc::new(AtomicUsize::new(0));
        let stop = server.stop.clone();
        let counter = runs.clone();
        handle.on_stop(move || {
            // The connections have not been told yet.
            assert_eq!(*stop.borrow(), Stop::Running);
            counter.fetch_add(1, Ordering::SeqCst);
        });
        handle.graceful_stop();
        handle.stop();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(*server.stop.borrow(), Stop::Forced);
        // Registered after the stop: runs at once.
        let counter = runs.clone();
        handle.on_stop(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
