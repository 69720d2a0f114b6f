//! `--observe`: what a production deployment installs, for measuring its cost per
//! call: one interceptor (a metadata check, as an auth interceptor makes, then the
//! rest of the chain) and a stats handler (relaxed counters per event, as a metrics
//! exporter keeps). `none` (the default) installs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rgrpc_runtime::{
    BoxFuture, ClientCall, ClientInterceptor, ClientNext, RpcInfo, ServerCall, ServerInterceptor,
    ServerNext, StatsEvent, StatsHandler, Status,
};

/// What `--observe` installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observe {
    /// Nothing (the default).
    None,
    /// One interceptor.
    Interceptor,
    /// The stats handler.
    Stats,
    /// Both.
    Both,
}

impl Observe {
    /// Parses `none`, `interceptor`, `stats` or `both`.
    pub fn parse(value: &str) -> Result<Observe, String> {
        Ok(match value {
            "none" => Observe::None,
            "interceptor" => Observe::Interceptor,
            "stats" => Observe::Stats,
            "both" => Observe::Both,
            other => {
                return Err(format!(
                    "--observe {other:?}: expected none, interceptor, stats or both"
                ));
            }
        })
    }

    /// Whether an interceptor is installed.
    pub fn interceptor(self) -> bool {
        matches!(self, Observe::Interceptor | Observe::Both)
    }

    /// The stats handler, if one is installed.
    pub fn stats(self) -> Option<Arc<dyn StatsHandler>> {
        matches!(self, Observe::Stats | Observe::Both)
            .then(|| Arc::new(Counters::default()) as Arc<dyn StatsHandler>)
    }
}

/// Looks for a metadata key and lets the call through (both sides).
pub struct CheckMetadata;

impl ServerInterceptor for CheckMetadata {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            if call.metadata().contains_key("x-deny") {
                return Err(Status::permission_denied("denied"));
            }
            next.run(call).await
        })
    }
}

impl ClientInterceptor for CheckMetadata {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            if call.metadata().contains_key("x-deny") {
                return Err(Status::permission_denied("denied"));
            }
            next.run(call).await
        })
    }
}

/// Counts calls, messages and bytes each way.
#[derive(Default)]
pub struct Counters {
    calls: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    nanos: AtomicU64,
}

impl StatsHandler for Counters {
    fn handle(&self, _rpc: &RpcInfo<'_>, event: &StatsEvent<'_>) {
        match event {
            StatsEvent::InPayload(p) | StatsEvent::OutPayload(p) => {
                self.messages.fetch_add(1, Ordering::Relaxed);
                self.bytes
                    .fetch_add(p.wire_length as u64, Ordering::Relaxed);
            }
            StatsEvent::End { duration, .. } => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.nanos
                    .fetch_add(duration.as_nanos() as u64, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}
