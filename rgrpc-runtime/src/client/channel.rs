//! `Channel`: a cheap-to-clone handle on a target: resolver -> load-balancing policy ->
//! one subchannel per address, each with its own connection, state and backoff. A call
//! picks a Ready subchannel's connection or waits for one (wait-for-ready), or fails
//! UNAVAILABLE at once while the channel is in TRANSIENT_FAILURE (fail-fast, the
//! default). Nothing a caller does dials: subchannels connect in their own tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::{Notify, watch};

use super::backoff::BackoffConfig;
use super::balancer::{Endpoint, LoadBalancer};
use super::interceptor::ClientInterceptor;
use super::resolver::{self, AddressSink, Resolver, ResolverBuilder, Target};
use super::retry::buffer::{ChannelBudget, DEFAULT_PER_CALL_BYTES, DEFAULT_PER_CHANNEL_BYTES};
use super::retry::throttle::Throttle;
use super::service_config::ServiceConfig;
use super::state::ConnectivityState;
use super::subchannel::Subchannel;
use crate::codec;
use crate::codec::compression::ACCEPT_ENCODING;
use crate::stats::StatsHandler;
use crate::status::Status;
use crate::transport::client::{ClientSettings, Conn};
use crate::transport::headers::{CONTENT_TYPE, GRPC_ACCEPT_ENCODING, TE, USER_AGENT};
use crate::transport::io::Address;
use crate::transport::keepalive::MIN_CLIENT_TIME;

/// The bytes waiting calls may hold per channel by default: a client that issues
/// calls faster than the servers take them gets RESOURCE_EXHAUSTED beyond this,
/// instead of growing without bound (grpc-go queues them all).
pub(crate) const DEFAULT_MAX_WAITING_BYTES: usize = 64 * 1024 * 1024;

/// grpc's user-agent form: `grpc-<language>-<implementation>/<version>`.
const DEFAULT_USER_AGENT: &str = concat!("grpc-rust-rgrpc/", env!("CARGO_PKG_VERSION"));

/// What one waiting call costs besides its encoded message, counted against the
/// budget: its future while waiting (488 B for a unary call, `call::Prepared` and
/// its wait), its deadline's timer (112 B, boxed) and the task around it, rounded up.
const WAITING_CALL_BYTES: usize = 1024;

/// How a channel spreads calls over its addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LbPolicy {
    /// Connect to the addresses in order and send every call to the first that
    /// connects (grpc's default).
    #[default]
    PickFirst,
    /// Connect to every address and send calls to the Ready ones in turn.
    RoundRobin,
}

/// Settings of a channel.
#[derive(Clone)]
pub(crate) struct ChannelConfig {
    pub max_recv_message_size: usize,
    pub max_send_message_size: usize,
    pub transport: ClientSettings,
    pub lb_policy: LbPolicy,
    /// A user's policy; when set it replaces `lb_policy` (every address connected).
    pub balancer: Option<Arc<dyn LoadBalancer>>,
    /// Connections per address (a pool, for when one HTTP/2 connection is the
    /// bottleneck).
    pub connections_per_address: usize,
    pub backoff: BackoffConfig,
    /// An unused channel lets its connections go after this long (grpc-go: 30 min).
    pub idle_timeout: Option<Duration>,
    /// Bytes calls waiting for a connection or a stream may hold in all.
    pub max_waiting_bytes: usize,
    /// The `user-agent` of every call.
    pub user_agent: http::HeaderValue,
    /// Request compression for calls that do not choose their own.
    pub compression: Option<crate::Encoding>,
    /// Per-method defaults for calls; `None` (no service config) costs a call nothing.
    pub service_config: Option<Arc<ServiceConfig>>,
    /// Run around every call, the first added outermost; empty costs a call one
    /// branch.
    pub interceptors: Vec<Arc<dyn ClientInterceptor>>,
    /// Sees every attempt's events; none costs a call one branch per event.
    pub stats: Option<Arc<dyn StatsHandler>>,
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("max_recv_message_size", &self.max_recv_message_size)
            .field("max_send_message_size", &self.max_send_message_size)
            .field("transport", &self.transport)
            .field("lb_policy", &self.lb_policy)
            .field("custom_balancer", &self.balancer.is_some())
            .field("connections_per_address", &self.connections_per_address)
            .field("backoff", &self.backoff)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_waiting_bytes", &self.max_waiting_bytes)
            .field("user_agent", &self.user_agent)
            .field("compression", &self.compression)
            .field("service_config", &self.service_config.is_some())
            .field("interceptors", &self.interceptors.len())
            .field("stats_handler", &self.stats.is_some())
            .finish()
    }
}

impl ChannelConfig {
    /// Whether every address is kept connected (round_robin and users' policies).
    fn connects_all(&self) -> bool {
        self.balancer.is_some() || self.lb_policy == LbPolicy::RoundRobin
    }
}

impl Default for ChannelConfig {
    fn default() -> ChannelConfig {
        ChannelConfig {
            max_recv_message_size: codec::DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: codec::DEFAULT_MAX_SEND_MESSAGE_SIZE,
            transport: ClientSettings::default(),
            lb_policy: LbPolicy::PickFirst,
            balancer: None,
            connections_per_address: 1,
            backoff: BackoffConfig::default(),
            idle_timeout: Some(Duration::from_secs(30 * 60)),
            max_waiting_bytes: DEFAULT_MAX_WAITING_BYTES,
            user_agent: http::HeaderValue::from_static(DEFAULT_USER_AGENT),
            compression: None,
            service_config: None,
            interceptors: Vec::new(),
            stats: None,
        }
    }
}

/// The gRPC request headers that do not depend on the call (PROTOCOL-HTTP2.md,
/// "Requests"), with room for a call's own few.
fn request_headers(config: &ChannelConfig) -> http::HeaderMap {
    let mut headers = http::HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(USER_AGENT, config.user_agent.clone());
    headers.insert(
        GRPC_ACCEPT_ENCODING,
        HeaderValue::from_static(ACCEPT_ENCODING),
    );
    headers
}

/// A client channel to one target, shared by all clones. Many concurrent calls
/// multiplex on each HTTP/2 connection.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    /// `:authority` of every request.
    authority: http::uri::Authority,
    /// The headers every request starts with (`request_headers`).
    request_headers: http::HeaderMap,
    config: ChannelConfig,
    /// A resolver given to this channel for its own scheme.
    resolver_builder: Option<Arc<dyn ResolverBuilder>>,
    core: Mutex<Core>,
    /// Woken on every change of a subchannel or of the addresses: waiting callers
    /// pick again. Each waiter's node lives in its own future (bounded by the calls).
    changed: Notify,
    state: watch::Sender<ConnectivityState>,
    /// When the last call was picked, for the idle timeout.
    last_pick: Mutex<std::time::Instant>,
    /// Bytes held by calls waiting for a connection or a stream permit.
    waiting_bytes: AtomicUsize,
    /// gRFC A6 `retryThrottling` from the service config: shared by every call.
    throttle: Option<Arc<Throttle>>,
    /// What calls keep of their requests for another attempt, all calls together.
    retry_budget: Arc<ChannelBudget>,
}

#[derive(Default)]
struct Core {
    /// Started by the first call (the channel is Idle until then).
    resolver: Option<Box<dyn Resolver>>,
    subchannels: Vec<Arc<Subchannel>>,
    /// The resolver's last error, reported while there are no addresses.
    resolve_error: Option<Status>,
    /// Round robin's next index.
    next: usize,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.inner.target)
            .field("state", &self.state())
            .finish()
    }
}

/// Builds a [`Channel`] with every option in one place.
#[derive(Clone)]
pub struct ChannelBuilder {
    target: String,
    config: ChannelConfig,
    resolver: Option<Arc<dyn ResolverBuilder>>,
    #[cfg(feature = "tls")]
    tls: Option<crate::ClientTlsConfig>,
}

impl std::fmt::Debug for ChannelBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelBuilder")
            .field("target", &self.target)
            .field("config", &self.config)
            .finish()
    }
}

impl ChannelBuilder {
    /// Adds an interceptor around every call of the channel (default: none). They
    /// run in the order added, the first outermost (grpc-go's
    /// `WithChainUnaryInterceptor` and `WithChainStreamInterceptor`); see
    /// [`ClientInterceptor`].
    pub fn interceptor(mut self, interceptor: impl ClientInterceptor) -> ChannelBuilder {
        self.config.interceptors.push(Arc::new(interceptor));
        self
    }

    /// Reports the events of every call (each attempt) to `handler` (default: none;
    /// a second call replaces the first): grpc-go's `stats.Handler`, see
    /// [`StatsHandler`].
    pub fn stats_handler(mut self, handler: Arc<dyn StatsHandler>) -> ChannelBuilder {
        self.config.stats = Some(handler);
        self
    }

    /// The load-balancing policy (default pick_first). A service config's
    /// `loadBalancingConfig` wins over it, whichever is set first (as in grpc, where
    /// the service config's policy overrides the channel's default).
    pub fn lb_policy(mut self, policy: LbPolicy) -> ChannelBuilder {
        self.config.lb_policy = policy;
        self
    }

    /// A load-balancing policy of your own (see [`LoadBalancer`]); replaces
    /// `lb_policy`.
    pub fn load_balancer(mut self, balancer: impl LoadBalancer) -> ChannelBuilder {
        self.config.balancer = Some(Arc::new(balancer));
        self
    }

    /// Opens `n` connections to each address (default 1) and spreads calls over
    /// them: the pool users of grpc-go and tonic build by hand when one HTTP/2
    /// connection becomes the bottleneck.
    pub fn connections_per_address(mut self, n: usize) -> ChannelBuilder {
        self.config.connections_per_address = n.max(1);
        self
    }

    /// After this long without a call, the channel closes its connections and stops
    /// resolving, and goes Idle; the next call starts again (default 30 minutes, as
    /// grpc-go; `None` never).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> ChannelBuilder {
        self.config.idle_timeout = timeout;
        self
    }

    /// The bytes calls waiting for a connection or a stream permit may hold in all
    /// (their encoded messages plus about 1 KiB each; default 64 MiB); a call past it
    /// fails RESOURCE_EXHAUSTED at once.
    pub fn max_waiting_bytes(mut self, bytes: usize) -> ChannelBuilder {
        self.config.max_waiting_bytes = bytes;
        self
    }

    /// The `user-agent` prefix of every call: `PREFIX grpc-rust-rgrpc/VERSION`, as
    /// grpc-go puts a user's agent before its own (default: just rgrpc's).
    pub fn user_agent(mut self, prefix: &str) -> Result<ChannelBuilder, Status> {
        let value = format!("{prefix} {DEFAULT_USER_AGENT}");
        self.config.user_agent = http::HeaderValue::try_from(value)
            .map_err(|_| Status::invalid_argument(format!("bad user agent {prefix:?}")))?;
        Ok(self)
    }

    /// Compresses the requests of calls that do not choose an encoding themselves
    /// (default none).
    pub fn default_compression(mut self, encoding: crate::Encoding) -> ChannelBuilder {
        self.config.compression = Some(encoding);
        self
    }

    /// The service config (gRFC A2, grpc's `doc/service_config.md`) as JSON:
    ///
    /// - `loadBalancingConfig`: a list such as `[{"round_robin": {}}]`; the first
    ///   policy this channel implements (`pick_first`, `round_robin`) wins, unknown
    ///   ones are skipped, a list with none is an error. It overrides
    ///   [`ChannelBuilder::lb_policy`].
    /// - `methodConfig`: a list of `{"name": [{"service": "pkg.Svc", "method": "M"}],
    ///   "timeout": "1.5s", "waitForReady": true, "maxRequestMessageBytes": N,
    ///   "maxResponseMessageBytes": N}`. A call uses the entry naming its method, else
    ///   the one naming its service (`{"service": "pkg.Svc"}`), else the default
    ///   (`{}`); a name in two entries is an error. The entry gives the call defaults:
    ///   its own [`crate::CallOptions`] win, except that of two timeouts the smaller
    ///   applies, and a size limit from the config is capped by the channel's.
    /// - `retryPolicy` and `hedgingPolicy` per method, and the top-level
    ///   `retryThrottling` (gRFC A6; see the README's retry section).
    ///
    /// Unknown fields are ignored. An invalid config is INVALID_ARGUMENT naming the
    /// field, e.g. `service config: methodConfig[0].timeout: expected a duration like
    /// "1.5s", got "soon"`. A later call replaces the config.
    pub fn service_config(mut self, json: &str) -> Result<ChannelBuilder, Status> {
        let config = ServiceConfig::parse(json)
            .map_err(|e| Status::invalid_argument(format!("service config: {e}")))?;
        self.config.service_config = Some(Arc::new(config));
        Ok(self)
    }

    /// A resolver for this channel's target scheme (e.g. a [`super::ManualResolver`]).
    pub fn resolver(mut self, resolver: impl ResolverBuilder) -> ChannelBuilder {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// The largest message this channel's calls accept (default 4 MiB).
    pub fn max_recv_message_size(mut self, bytes: usize) -> ChannelBuilder {
        self.config.max_recv_message_size = bytes;
        self
    }

    /// The largest message this channel's calls send (default 4 GiB).
    pub fn max_send_message_size(mut self, bytes: usize) -> ChannelBuilder {
        self.config.max_send_message_size = bytes;
        self
    }

    /// Pings the server after `time` without reading from it (default never; at least
    /// 10 s, as gRFC A8 requires).
    pub fn keepalive_time(mut self, time: Duration) -> ChannelBuilder {
        self.config.transport.keepalive.time = Some(time.max(MIN_CLIENT_TIME));
        self
    }

    /// How long to wait for any byte after a keepalive ping (default 20 s).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> ChannelBuilder {
        self.config.transport.keepalive.timeout = timeout;
        self
    }

    /// Whether keepalive pings are sent while no call is active (default false).
    pub fn keepalive_without_calls(mut self, permit: bool) -> ChannelBuilder {
        self.config.transport.keepalive.permit_without_stream = permit;
        self
    }

    /// The least time one connection attempt may take (default 20 s,
    /// connection-backoff.md's MIN_CONNECT_TIMEOUT).
    pub fn connect_timeout(mut self, timeout: Duration) -> ChannelBuilder {
        self.config.transport.connect_timeout = timeout;
        self.config.backoff.min_connect_timeout = timeout;
        self
    }

    /// The first reconnect backoff (default 1 s) and the largest (default 120 s);
    /// the multiplier (1.6) and jitter (0.2) are connection-backoff.md's.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> ChannelBuilder {
        self.config.backoff.initial = initial;
        self.config.backoff.max = max.max(initial);
        self
    }

    /// HTTP/2 stream and connection flow-control windows (default 1 MiB / 2 MiB).
    pub fn initial_window_sizes(mut self, stream: u32, connection: u32) -> ChannelBuilder {
        self.config.transport.initial_stream_window = stream;
        self.config.transport.initial_connection_window = connection;
        self
    }

    /// Dials TLS with these settings (default: plaintext, or for an `https://`
    /// target `ClientTlsConfig::new()`: the platform's roots). Works with every
    /// target scheme (`dns:`, `ipv4:` lists, ...). The server's certificate must
    /// match the target's host, or the config's
    /// [`server_name`](crate::ClientTlsConfig::server_name) override, which is then
    /// every call's `:authority` too. The TLS handshake runs under the connect
    /// timeout; a plaintext server fails the connection at once (UNAVAILABLE
    /// saying so).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::ClientTlsConfig) -> ChannelBuilder {
        self.tls = Some(config);
        self
    }

    /// Keepalive below the A8 minimum, for tests of keepalive itself.
    #[doc(hidden)]
    pub fn keepalive_time_unclamped(mut self, time: Duration) -> ChannelBuilder {
        self.config.transport.keepalive.time = Some(time);
        self
    }

    /// The channel; it connects on its first call.
    pub fn build(mut self) -> Result<Channel, Status> {
        if let Some(policy) = self
            .config
            .service_config
            .as_ref()
            .and_then(|c| c.lb_policy)
        {
            self.config.lb_policy = policy;
        }
        let scheme = self.resolver.as_ref().map(|r| r.scheme().to_owned());
        // `https://host[:port]` is `dns:host[:port]` over TLS.
        let (target_text, https) = match self.target.strip_prefix("https://") {
            Some(rest) => (rest.trim_end_matches('/'), true),
            None => (self.target.as_str(), false),
        };
        let target = Target::parse(target_text, scheme.as_deref());
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut authority = target.authority();
        #[cfg(feature = "tls")]
        {
            let tls = match self.tls.take() {
                Some(tls) => Some(tls),
                None if https => Some(crate::ClientTlsConfig::new()),
                None => None,
            };
            if let Some(tls) = tls {
                let connector = tls
                    .connector(authority.host())
                    .map_err(|e| Status::invalid_argument(format!("TLS: {e}")))?;
                if let Some(name) = tls.server_name_override() {
                    authority = name.parse().map_err(|_| {
                        Status::invalid_argument(format!("TLS: bad server name {name:?}"))
                    })?;
                }
                self.config.transport.tls = Some(connector);
            }
        }
        #[cfg(not(feature = "tls"))]
        if https {
            return Err(Status::invalid_argument(format!(
                "target {:?}: https:// needs rgrpc-runtime's `tls` feature",
                self.target
            )));
        }
        if target.scheme == "unix" || target.scheme == "dns" {
            // Reject what cannot be dialled now rather than on the first call.
            if target.scheme == "unix" {
                Address::parse(&format!("unix:{}", target.endpoint))
                    .map_err(Status::invalid_argument)?;
            } else if target.endpoint.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "target {:?} names no host",
                    self.target
                )));
            }
        }
        Ok(Channel {
            inner: Inner::new(authority, target, self.config, self.resolver),
        })
    }

    /// The channel, connected: waits until it is Ready, or fails as a fail-fast call
    /// would.
    pub async fn connect(self) -> Result<Channel, Status> {
        let channel = self.build()?;
        channel.pick("", false).await?;
        Ok(channel)
    }
}

impl Channel {
    /// A builder for a channel to `target` (see [`Channel::connect`] for the forms).
    pub fn builder(target: &str) -> ChannelBuilder {
        ChannelBuilder {
            target: target.to_owned(),
            config: ChannelConfig::default(),
            resolver: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Connects to `target` now: `host:port`, `http://host:port`,
    /// `dns:[//authority/]host[:port]`, `ipv4:a:p,b:p`, `ipv6:[a]:p,...`,
    /// `unix:/path` or `unix:relative/path` (grpc's doc/naming.md).
    pub async fn connect(target: &str) -> Result<Channel, Status> {
        Channel::builder(target).connect().await
    }

    /// A channel that connects on its first call.
    pub fn lazy(target: &str) -> Result<Channel, Status> {
        Channel::builder(target).build()
    }

    /// Sets the largest message this channel's calls accept (default 4 MiB). Makes a
    /// new channel: prefer [`Channel::builder`].
    pub fn max_recv_message_size(self, bytes: usize) -> Channel {
        self.reconfigure(|b| b.max_recv_message_size(bytes))
    }

    /// Sets the largest message this channel's calls send. Makes a new channel.
    pub fn max_send_message_size(self, bytes: usize) -> Channel {
        self.reconfigure(|b| b.max_send_message_size(bytes))
    }

    /// See [`ChannelBuilder::keepalive_time`]. Makes a new channel.
    pub fn keepalive_time(self, time: Duration) -> Channel {
        self.reconfigure(|b| b.keepalive_time(time))
    }

    /// See [`ChannelBuilder::keepalive_timeout`]. Makes a new channel.
    pub fn keepalive_timeout(self, timeout: Duration) -> Channel {
        self.reconfigure(|b| b.keepalive_timeout(timeout))
    }

    /// See [`ChannelBuilder::keepalive_without_calls`]. Makes a new channel.
    pub fn keepalive_without_calls(self, permit: bool) -> Channel {
        self.reconfigure(|b| b.keepalive_without_calls(permit))
    }

    /// See [`ChannelBuilder::connect_timeout`]. Makes a new channel.
    pub fn connect_timeout(self, timeout: Duration) -> Channel {
        self.reconfigure(|b| b.connect_timeout(timeout))
    }

    /// Keepalive below the A8 minimum, for tests of keepalive itself.
    #[doc(hidden)]
    pub fn keepalive_time_unclamped(self, time: Duration) -> Channel {
        self.reconfigure(|b| b.keepalive_time_unclamped(time))
    }

    /// The keepalive time the next connection will use (doubled after each GOAWAY
    /// `too_many_pings`), for tests.
    #[doc(hidden)]
    pub fn keepalive_time_in_force(&self) -> Option<Duration> {
        let core = self.inner.core();
        match core.subchannels.first() {
            Some(sc) => sc.keepalive_time(),
            None => self.inner.config.transport.keepalive.time,
        }
    }

    fn reconfigure(self, f: impl FnOnce(ChannelBuilder) -> ChannelBuilder) -> Channel {
        // The TLS connector, if any, is already in the config's transport settings.
        let builder = ChannelBuilder {
            target: String::new(),
            config: self.inner.config.clone(),
            resolver: self.inner.resolver_builder.clone(),
            #[cfg(feature = "tls")]
            tls: None,
        };
        let config = f(builder).config;
        // A new channel; the old connections stay with the old clones.
        Channel {
            inner: Inner::new(
                self.inner.authority.clone(),
                self.inner.target.clone(),
                config,
                self.inner.resolver_builder.clone(),
            ),
        }
    }

    /// The channel's connectivity state now.
    pub fn state(&self) -> ConnectivityState {
        *self.inner.state.borrow()
    }

    /// Waits until the state differs from `from`, and returns the new state. Bound
    /// it with a timeout: an idle channel stays Idle until a call is made or
    /// [`Channel::connect_now`] is called.
    pub async fn wait_for_state_change(&self, from: ConnectivityState) -> ConnectivityState {
        let mut rx = self.inner.state.subscribe();
        match rx.wait_for(|s| *s != from).await {
            Ok(state) => *state,
            Err(_) => ConnectivityState::Shutdown,
        }
    }

    /// Starts resolving and connecting without waiting for a call (grpc-go's
    /// `Connect`). Outside a tokio runtime it does nothing.
    pub fn connect_now(&self) {
        // Resolvers and subchannels run as tasks: outside a tokio runtime there is
        // nothing to start them on, and the first call will.
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = self.inner.try_pick("");
        }
    }

    pub(crate) fn config(&self) -> &ChannelConfig {
        &self.inner.config
    }

    /// The channel's retry throttle, when its service config has one.
    pub(crate) fn throttle(&self) -> Option<&Arc<Throttle>> {
        self.inner.throttle.as_ref()
    }

    /// The channel's replay budget (gRFC A6 buffering).
    pub(crate) fn retry_budget(&self) -> &Arc<ChannelBudget> {
        &self.inner.retry_budget
    }

    pub(crate) fn authority(&self) -> &http::uri::Authority {
        &self.inner.authority
    }

    /// The headers every request of this channel starts with, built once: a call
    /// clones them (two allocations, no hashing) where four inserts into an empty map
    /// cost about three times as much.
    pub(crate) fn request_headers(&self) -> &http::HeaderMap {
        &self.inner.request_headers
    }

    /// `:scheme` of every request: `https` over TLS (PROTOCOL-HTTP2.md).
    pub(crate) fn scheme(&self) -> http::uri::Scheme {
        #[cfg(feature = "tls")]
        if self.inner.config.transport.tls.is_some() {
            return http::uri::Scheme::HTTPS;
        }
        http::uri::Scheme::HTTP
    }

    /// Counts a call that is about to wait, with `message` bytes, against the
    /// channel's waiting budget until the guard drops.
    pub(crate) fn hold_waiting(&self, message: usize) -> Result<WaitingGuard<'_>, Status> {
        let cost = message.saturating_add(WAITING_CALL_BYTES);
        let held = self.inner.waiting_bytes.fetch_add(cost, Ordering::AcqRel);
        let guard = WaitingGuard {
            counter: &self.inner.waiting_bytes,
            cost,
        };
        if held.saturating_add(cost) > self.inner.config.max_waiting_bytes {
            return Err(Status::resource_exhausted(format!(
                "too many calls waiting: {held} bytes held, the channel allows {}",
                self.inner.config.max_waiting_bytes
            )));
        }
        Ok(guard)
    }

    /// A Ready connection for a call. Fail-fast (`wait_for_ready` false) fails
    /// UNAVAILABLE while the channel is in TRANSIENT_FAILURE; otherwise the call
    /// waits for a connection.
    pub(crate) async fn pick(
        &self,
        full_method: &str,
        wait_for_ready: bool,
    ) -> Result<Arc<Conn>, Status> {
        let mut changed = std::pin::pin!(self.changed());
        std::future::poll_fn(|cx| self.poll_pick(full_method, wait_for_ready, changed.as_mut(), cx))
            .await
    }

    /// What `poll_pick` waits on between its tries.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.changed.notified()
    }

    /// [`Channel::pick`] as a poll, for a caller that keeps `changed` (from
    /// [`Channel::changed`]) in its own future and runs its deadline beside it
    /// (`client::call`). Every try first registers `changed`, so that a change
    /// between the try and the wait is not lost.
    pub(crate) fn poll_pick<'c>(
        &'c self,
        full_method: &str,
        wait_for_ready: bool,
        mut changed: Pin<&mut tokio::sync::futures::Notified<'c>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Arc<Conn>, Status>> {
        loop {
            changed.as_mut().enable();
            match self.inner.try_pick(full_method) {
                Pick::Ready(conn) => return Poll::Ready(Ok(conn)),
                Pick::Queue => {}
                Pick::Fail(status) if !wait_for_ready => return Poll::Ready(Err(status)),
                Pick::Fail(_) => {}
            }
            ready!(changed.as_mut().poll(cx));
            changed.set(self.changed());
        }
    }
}

/// A waiting call's share of the channel's waiting budget.
pub(crate) struct WaitingGuard<'a> {
    counter: &'a AtomicUsize,
    cost: usize,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.cost, Ordering::AcqRel);
    }
}

/// What a pick found.
enum Pick {
    Ready(Arc<Conn>),
    /// Nothing Ready yet, but something is connecting (or resolving).
    Queue,
    /// Every address has failed (or resolution has).
    Fail(Status),
}

impl Inner {
    /// An Idle channel: nothing resolved, no subchannel.
    fn new(
        authority: http::uri::Authority,
        target: Target,
        config: ChannelConfig,
        resolver_builder: Option<Arc<dyn ResolverBuilder>>,
    ) -> Arc<Inner> {
        let throttle = config
            .service_config
            .as_ref()
            .and_then(|sc| sc.retry_throttling)
            .map(|t| Arc::new(Throttle::new(t)));
        Arc::new(Inner {
            throttle,
            retry_budget: ChannelBudget::new(DEFAULT_PER_CALL_BYTES, DEFAULT_PER_CHANNEL_BYTES),
            request_headers: request_headers(&config),
            authority,
            target,
            config,
            resolver_builder,
            core: Mutex::new(Core::default()),
            changed: Notify::new(),
            state: watch::channel(ConnectivityState::Idle).0,
            last_pick: Mutex::new(std::time::Instant::now()),
            waiting_bytes: AtomicUsize::new(0),
        })
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        // Updates are a few assignments: a panic cannot leave the core half-made.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_pick(self: &Arc<Self>, full_method: &str) -> Pick {
        if self.config.idle_timeout.is_some() {
            *self.last_pick.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        }
        let mut core = self.core();
        if core.resolver.is_none() {
            drop(core);
            self.start_resolver();
            core = self.core();
        }
        if core.subchannels.is_empty() {
            return match &core.resolve_error {
                Some(status) => Pick::Fail(status.clone()),
                None => Pick::Queue,
            };
        }
        if let Some(balancer) = &self.config.balancer {
            let ready: Vec<(Arc<Conn>, &Subchannel)> = core
                .subchannels
                .iter()
                .filter_map(|sc| sc.ready_conn().map(|conn| (conn, &**sc)))
                .collect();
            if ready.is_empty() {
                for sc in &core.subchannels {
                    sc.connect();
                }
                return waiting_or_failed(&core.subchannels);
            }
            let endpoints: Vec<Endpoint<'_>> = ready
                .iter()
                .map(|(conn, sc)| Endpoint::new(sc.label(), conn.active_calls()))
                .collect();
            let index = balancer.pick(full_method, &endpoints);
            let index = if index < ready.len() { index } else { 0 };
            return Pick::Ready(ready[index].0.clone());
        }
        let n = core.subchannels.len();
        let start = core.next;
        match self.config.lb_policy {
            LbPolicy::PickFirst => {
                let (pick, next) = pick_first(&core.subchannels, start);
                core.next = next;
                pick
            }
            LbPolicy::RoundRobin => {
                for i in 0..n {
                    let index = (start + i) % n;
                    if let Some(conn) = core.subchannels[index].ready_conn() {
                        core.next = index + 1;
                        return Pick::Ready(conn);
                    }
                }
                for sc in &core.subchannels {
                    sc.connect();
                }
                waiting_or_failed(&core.subchannels)
            }
        }
    }

    /// Idle -> resolving: builds the resolver, whose addresses arrive in
    /// `on_addresses` (perhaps before this returns, so no lock is held meanwhile).
    fn start_resolver(self: &Arc<Self>) {
        {
            let mut core = self.core();
            if core.resolver.is_some() {
                return;
            }
            core.resolver = Some(Box::new(NoResolver));
        }
        let _ = self.state.send_replace(ConnectivityState::Connecting);
        let weak = Arc::downgrade(self);
        let sink = AddressSink::new(move |update| {
            if let Some(inner) = weak.upgrade() {
                inner.on_addresses(update);
            }
        });
        let started = resolver::build(&self.target, self.resolver_builder.as_ref(), sink);
        if let Some(timeout) = self.config.idle_timeout {
            tokio::spawn(watch_idle(
                Arc::downgrade(self),
                self.state.subscribe(),
                timeout,
            ));
        }
        {
            let mut core = self.core();
            match started {
                Ok(resolver) => core.resolver = Some(resolver),
                Err(status) => core.resolve_error = Some(status),
            }
        }
        self.on_change();
    }

    /// The resolver's news: keep the subchannels of addresses still listed, add the
    /// new ones, shut the others down.
    fn on_addresses(self: &Arc<Self>, update: Result<Vec<Address>, Status>) {
        {
            let mut core = self.core();
            match update {
                Err(status) => core.resolve_error = Some(status),
                Ok(addresses) => {
                    core.resolve_error = None;
                    let mut old = std::mem::take(&mut core.subchannels);
                    let mut seen: Vec<&Address> = Vec::new();
                    for address in &addresses {
                        if seen.contains(&address) {
                            continue;
                        }
                        seen.push(address);
                        for _ in 0..self.config.connections_per_address {
                            let sc = match old.iter().position(|sc| sc.address() == address) {
                                Some(i) => old.remove(i),
                                None => self.subchannel(address.clone()),
                            };
                            core.subchannels.push(sc);
                        }
                    }
                    for sc in old {
                        sc.shutdown();
                    }
                    if self.config.connects_all() {
                        for sc in &core.subchannels {
                            sc.connect();
                        }
                    }
                }
            }
        }
        self.on_change();
    }

    fn subchannel(self: &Arc<Self>, address: Address) -> Arc<Subchannel> {
        let weak: Weak<Inner> = Arc::downgrade(self);
        Subchannel::new(
            address,
            self.config.transport.clone(),
            self.config.backoff,
            Arc::new(move |sc: &Arc<Subchannel>| {
                if let Some(inner) = weak.upgrade() {
                    let state = sc.state();
                    if matches!(
                        state,
                        ConnectivityState::Idle | ConnectivityState::TransientFailure
                    ) {
                        // A connection lost or refused: the addresses may be stale.
                        if let Some(resolver) = &inner.core().resolver {
                            resolver.resolve_now();
                        }
                    }
                    if state == ConnectivityState::Idle && inner.config.connects_all() {
                        // round_robin keeps every address connected.
                        sc.connect();
                    }
                    inner.on_change();
                }
            }),
        )
    }

    /// Re-aggregates the channel's state and wakes waiting callers.
    fn on_change(&self) {
        let state = {
            let core = self.core();
            if core.subchannels.is_empty() {
                match (&core.resolver, &core.resolve_error) {
                    (None, _) => ConnectivityState::Idle,
                    (Some(_), Some(_)) => ConnectivityState::TransientFailure,
                    (Some(_), None) => ConnectivityState::Connecting,
                }
            } else {
                ConnectivityState::aggregate(core.subchannels.iter().map(|sc| sc.state()))
            }
        };
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        self.changed.notify_waiters();
    }
}

/// Ends the channel's activity once it has had no call for `timeout` and none is in
/// flight: subchannels shut down, resolver dropped, state Idle. The task ends then,
/// or when the channel is gone; the next call starts a new one.
async fn watch_idle(
    channel: Weak<Inner>,
    mut state: watch::Receiver<ConnectivityState>,
    timeout: Duration,
) {
    loop {
        let since = match channel.upgrade() {
            Some(inner) => *inner.last_pick.lock().unwrap_or_else(|e| e.into_inner()),
            None => return,
        };
        // Ends with the channel (its state sender is dropped), not 30 minutes later.
        tokio::select! {
            () = tokio::time::sleep_until((since + timeout).into()) => {}
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        let Some(inner) = channel.upgrade() else {
            return;
        };
        let last = *inner.last_pick.lock().unwrap_or_else(|e| e.into_inner());
        let busy = inner
            .core()
            .subchannels
            .iter()
            .any(|sc| sc.ready_conn().is_some_and(|c| c.active_calls() > 0));
        if last.elapsed() >= timeout && !busy {
            let (resolver, subchannels) = {
                let mut core = inner.core();
                (core.resolver.take(), std::mem::take(&mut core.subchannels))
            };
            for sc in &subchannels {
                sc.shutdown();
            }
            drop(resolver);
            inner.on_change();
            return;
        }
        if busy {
            *inner.last_pick.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        }
    }
}

/// A resolver placeholder while the real one is being built.
struct NoResolver;

impl Resolver for NoResolver {}

/// pick_first: the first address that connects takes every call (spread over its
/// pool of connections, if it has one); the next address is tried only when every
/// earlier one has failed. Returns the pick and the next rotation index.
fn pick_first(subchannels: &[Arc<Subchannel>], next: usize) -> (Pick, usize) {
    if let Some((first, conn)) = subchannels
        .iter()
        .find_map(|sc| Some((sc, sc.ready_conn()?)))
    {
        let address = first.address();
        let pool = || subchannels.iter().filter(move |sc| sc.address() == address);
        let size = pool().count();
        if size == 1 {
            // One connection to the address (the default): nothing to rotate.
            return (Pick::Ready(conn), 1);
        }
        for i in 0..size {
            let index = (next + i) % size;
            let Some(conn) = pool().nth(index).and_then(|sc| sc.ready_conn()) else {
                continue;
            };
            // The rest of the pool connects too.
            for sc in pool() {
                sc.connect();
            }
            return (Pick::Ready(conn), index + 1);
        }
    }
    if subchannels
        .iter()
        .any(|sc| sc.state() == ConnectivityState::Connecting)
    {
        return (Pick::Queue, next);
    }
    // The first address not yet tried (or lost) is next.
    if let Some(sc) = subchannels
        .iter()
        .find(|sc| sc.state() == ConnectivityState::Idle)
    {
        sc.connect();
        return (Pick::Queue, next);
    }
    (waiting_or_failed(subchannels), next)
}

/// Nothing Ready: queue while anything connects, fail once everything has failed.
fn waiting_or_failed(subchannels: &[Arc<Subchannel>]) -> Pick {
    if subchannels.iter().any(|sc| {
        matches!(
            sc.state(),
            ConnectivityState::Connecting | ConnectivityState::Idle
        )
    }) {
        return Pick::Queue;
    }
    let last = subchannels.iter().find_map(|sc| sc.last_error());
    Pick::Fail(last.unwrap_or_else(|| Status::unavailable("no address is reachable")))
}

impl Drop for Inner {
    fn drop(&mut self) {
        let core = self.core.get_mut().unwrap_or_else(|e| e.into_inner());
        for sc in &core.subchannels {
            sc.shutdown();
        }
        let _ = self.state.send_replace(ConnectivityState::Shutdown);
    }
}
