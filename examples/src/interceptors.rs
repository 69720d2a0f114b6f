//! Interceptors as users write them: a bearer-token check that answers
//! UNAUTHENTICATED, a logging interceptor (one line per call), and a per-method
//! latency counter; `interceptors` (src/bin/interceptors.rs) runs them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rgrpc_runtime::{
    BoxFuture, CallObserver, ClientCall, ClientInterceptor, ClientNext, Code, Metadata, ServerCall,
    ServerInterceptor, ServerNext, Status,
};

/// Server: lets a call through only with `authorization: Bearer <token>`; others are
/// answered UNAUTHENTICATED with a `www-authenticate` trailer, and their handler
/// never runs.
pub struct BearerAuth {
    /// The one token accepted.
    pub token: String,
}

impl ServerInterceptor for BearerAuth {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let presented = call
                .metadata()
                .get("authorization")
                .and_then(|v| v.strip_prefix("Bearer "));
            if presented != Some(self.token.as_str()) {
                call.context()
                    .set_trailer_value("www-authenticate", "Bearer realm=\"example\"")?;
                return Err(Status::unauthenticated("missing or invalid bearer token"));
            }
            // The handler has no use for the credential.
            call.metadata_mut().remove("authorization");
            next.run(call).await
        })
    }
}

/// Client: sends `authorization: Bearer <token>` with every call.
pub struct AttachToken {
    /// The token sent.
    pub token: String,
}

impl ClientInterceptor for AttachToken {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            call.metadata_mut()
                .insert("authorization", &format!("Bearer {}", self.token))?;
            next.run(call).await
        })
    }
}

/// Server: prints one line per call when it ends: method, kind, peer, status,
/// messages each way and duration.
pub struct Logger;

/// The per-call half of [`Logger`].
struct LogLine {
    method: String,
    kind: rgrpc_runtime::RpcKind,
    peer: String,
    start: Instant,
    received: AtomicUsize,
    sent: AtomicUsize,
}

impl CallObserver for LogLine {
    fn on_recv(&self, _: &mut dyn std::any::Any, _: usize) -> Result<(), Status> {
        self.received.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn on_send(
        &self,
        _: &dyn std::any::Any,
        _: usize,
    ) -> Result<Option<Box<dyn std::any::Any + Send>>, Status> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }

    fn on_end(&self, status: &Result<(), Status>, _: &mut Metadata) {
        let code = status.as_ref().err().map_or(Code::Ok, Status::code);
        println!(
            "[server] {} {} from {} -> {code:?} ({} in, {} out) in {:?}",
            self.method,
            self.kind.as_str(),
            self.peer,
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
            self.start.elapsed()
        );
    }
}

impl ServerInterceptor for Logger {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ServerCall,
        next: ServerNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            call.observe(LogLine {
                method: call.full_method().to_owned(),
                kind: call.kind(),
                peer: call.peer().to_string(),
                start: Instant::now(),
                received: AtomicUsize::new(0),
                sent: AtomicUsize::new(0),
            });
            next.run(call).await
        })
    }
}

/// Client: counts calls and their latency per method, streaming calls until their
/// last message (grpc-go's classic metrics interceptor).
#[derive(Clone, Default)]
pub struct LatencyCounter {
    by_method: Arc<Mutex<BTreeMap<&'static str, MethodLatency>>>,
}

/// One method's calls, as [`LatencyCounter`] counted them.
#[derive(Clone, Copy, Debug, Default)]
pub struct MethodLatency {
    /// Calls ended.
    pub calls: u64,
    /// Calls ended with a status other than OK.
    pub errors: u64,
    /// Their time, summed.
    pub total: Duration,
    /// The slowest.
    pub max: Duration,
}

impl LatencyCounter {
    /// What was counted so far, by full method name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, MethodLatency> {
        self.by_method
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The per-call half of [`LatencyCounter`].
struct Timer {
    method: &'static str,
    start: Instant,
    counter: LatencyCounter,
}

impl CallObserver for Timer {
    fn on_end(&self, status: &Result<(), Status>, _: &mut Metadata) {
        let took = self.start.elapsed();
        let mut all = self
            .counter
            .by_method
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let m = all.entry(self.method).or_default();
        m.calls += 1;
        m.errors += u64::from(status.is_err());
        m.total += took;
        m.max = m.max.max(took);
    }
}

impl ClientInterceptor for LatencyCounter {
    fn intercept<'a>(
        &'a self,
        call: &'a mut ClientCall,
        next: ClientNext<'a>,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            call.observe(Timer {
                method: call.full_method(),
                start: Instant::now(),
                counter: self.clone(),
            });
            next.run(call).await
        })
    }
}
