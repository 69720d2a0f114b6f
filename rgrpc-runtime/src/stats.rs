//! The stats hook: grpc-go's `stats.Handler` events for every RPC, on a server
//! ([`crate::Server::stats_handler`]) and on a channel
//! ([`crate::ChannelBuilder::stats_handler`]). It is the seam a metrics or tracing
//! exporter (OpenTelemetry, Prometheus) sits on; `examples/src/stats.rs` keeps
//! per-method counts and latency histograms with it.
//!
//! The events of one RPC, in order (grpc-go's `Begin`, `InHeader`, `InPayload`,
//! `InTrailer`, `OutHeader`, `OutPayload`, `OutTrailer`, `End`):
//!
//! ```text
//!  server: Begin, InHeader, (InPayload | OutHeader | OutPayload)*, OutTrailer, End
//!  client: Begin, OutHeader, (OutPayload | InHeader | InPayload)*, InTrailer, End
//! ```
//!
//! A server's Trailers-Only reply (an error before any message) has no OutHeader; a
//! call that ends without trailers (reset, deadline, a lost connection) has none of
//! OutTrailer / InTrailer, but always an End. (grpc-go's server reports InHeader
//! before Begin; here Begin always comes first.)
//!
//! A client reports each attempt as its own RPC, as grpc-go does and gRFC A6 "Retry
//! and Hedging Statistics" asks: a call retried or hedged under a service-config
//! policy is one Begin..End per attempt, each with its own `id`, all with the call's
//! `call_id` and their `attempt` number (0, 1, ...). An attempt that lost a hedge, or
//! that the call's end cut short, ends CANCELLED. The call as a whole is what the
//! interceptors see (`ClientInterceptor`), and what the attempts sharing a `call_id`
//! add up to. A transparent retry (a stream the server never processed) stays inside
//! its attempt's events.
//!
//! With no handler set nothing is built or measured: each event point is one branch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::codec::compression::Encoding;
use crate::interceptor::RpcKind;
use crate::metadata::Metadata;
use crate::status::Status;

/// Receives the events of every RPC of a server or a channel. Called inline on the
/// call's path, from the call's task: keep it short (count, record, hand off).
pub trait StatsHandler: Send + Sync + 'static {
    /// One event of the RPC `rpc`.
    fn handle(&self, rpc: &RpcInfo<'_>, event: &StatsEvent<'_>);
}

/// Which RPC an event belongs to.
#[derive(Clone, Copy, Debug)]
pub struct RpcInfo<'a> {
    /// Unique in the process for the RPC's lifetime (an attempt, on a client): the key
    /// to keep per-RPC state under, as grpc-go's `TagRPC` context does.
    pub id: u64,
    /// The call this attempt belongs to: the `id` of its first attempt (so equal to
    /// `id` on a server and for every call that is not retried or hedged).
    pub call_id: u64,
    /// Attempts of the call before this one (gRFC A6 `grpc-previous-rpc-attempts`):
    /// 0 for the first, and always on a server.
    pub attempt: u32,
    /// The full method name, e.g. `/helloworld.Greeter/SayHello`.
    pub full_method: &'a str,
    /// Whether this is the client's side of the RPC.
    pub client: bool,
}

/// One event of an RPC (grpc-go's `stats.RPCStats` types).
#[derive(Debug)]
#[non_exhaustive]
pub enum StatsEvent<'a> {
    /// The RPC started: a server routed it; a client is about to open its stream.
    Begin {
        /// Which of the four kinds.
        kind: RpcKind,
    },
    /// Headers arrived: a server's request headers, a client's response headers
    /// (not a Trailers-Only response: that is InTrailer alone).
    InHeader {
        /// The metadata in them.
        metadata: &'a Metadata,
        /// The messages' `grpc-encoding`.
        compression: Option<Encoding>,
    },
    /// Headers were sent: a server's response headers, a client's request headers.
    OutHeader {
        /// The metadata sent with them.
        metadata: &'a Metadata,
        /// The messages' `grpc-encoding`.
        compression: Option<Encoding>,
    },
    /// A message was received.
    InPayload(Payload),
    /// A message was sent (handed to the connection's writer).
    OutPayload(Payload),
    /// The trailers arrived (client; also a Trailers-Only response).
    InTrailer {
        /// The trailing metadata.
        metadata: &'a Metadata,
    },
    /// The trailers were sent (server; also a Trailers-Only response).
    OutTrailer {
        /// The trailing metadata.
        metadata: &'a Metadata,
    },
    /// The RPC ended.
    End {
        /// Its status: `Ok(())` for OK.
        status: &'a Result<(), Status>,
        /// From Begin to now.
        duration: Duration,
    },
}

/// The sizes of one message (grpc-go's `InPayload` / `OutPayload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The encoded message, uncompressed.
    pub length: usize,
    /// Its bytes on the wire: the 5-byte prefix plus the (maybe compressed) message.
    pub wire_length: usize,
    /// Whether it went compressed.
    pub compressed: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One RPC's stats state: the handler, the RPC's id and when it began. Made only when
/// a handler is set.
pub(crate) struct CallStats {
    handler: Arc<dyn StatsHandler>,
    id: u64,
    call_id: u64,
    attempt: u32,
    client: bool,
    begin: Instant,
    kind: RpcKind,
}

impl CallStats {
    /// Begins an RPC: reports `Begin`.
    pub(crate) fn begin(
        handler: &Arc<dyn StatsHandler>,
        full_method: &str,
        client: bool,
        kind: RpcKind,
    ) -> CallStats {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let stats = CallStats {
            handler: handler.clone(),
            id,
            call_id: id,
            attempt: 0,
            client,
            begin: Instant::now(),
            kind,
        };
        stats.emit(full_method, &StatsEvent::Begin { kind });
        stats
    }

    /// Begins another attempt of this attempt's call (a client's retry or hedge),
    /// `attempt` being how many came before it: reports its `Begin`.
    pub(crate) fn next_attempt(&self, full_method: &str, attempt: u32) -> CallStats {
        let stats = CallStats {
            handler: self.handler.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            call_id: self.call_id,
            attempt,
            client: self.client,
            begin: Instant::now(),
            kind: self.kind,
        };
        stats.emit(full_method, &StatsEvent::Begin { kind: self.kind });
        stats
    }

    pub(crate) fn emit(&self, full_method: &str, event: &StatsEvent<'_>) {
        let rpc = RpcInfo {
            id: self.id,
            call_id: self.call_id,
            attempt: self.attempt,
            full_method,
            client: self.client,
        };
        self.handler.handle(&rpc, event);
    }

    /// Reports `End` with the time since `Begin`.
    pub(crate) fn end(&self, full_method: &str, status: &Result<(), Status>) {
        let duration = self.begin.elapsed();
        self.emit(full_method, &StatsEvent::End { status, duration });
    }

    pub(crate) fn payload(&self, full_method: &str, out: bool, payload: Payload) {
        let event = match out {
            true => StatsEvent::OutPayload(payload),
            false => StatsEvent::InPayload(payload),
        };
        self.emit(full_method, &event);
    }
}

impl std::fmt::Debug for CallStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallStats")
            .field("id", &self.id)
            .field("call_id", &self.call_id)
            .field("attempt", &self.attempt)
            .field("client", &self.client)
            .finish()
    }
}
