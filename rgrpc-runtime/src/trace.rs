//! A `tracing` span per RPC, on both sides: `grpc` at DEBUG level, with the full
//! method, the side, the peer, and, recorded when the RPC ends, the status code, the
//! duration and the messages each way.
//!
//! ```text
//!  grpc{rpc.system="grpc" rpc.method="/pkg.Svc/M" side="server" peer="127.0.0.1:5000"
//!       grpc.status_code=0 duration_us=87 messages_received=1 messages_sent=1}
//! ```
//!
//! Disabled (no subscriber, or none that wants DEBUG spans of `rgrpc_runtime`), making
//! the span is one check of its callsite's cached interest and nothing more is built,
//! counted or recorded (`CallTrace::new` returns `None`; every later point is a
//! branch). DEBUG, not INFO, so that an application logging at INFO does not pay a
//! span per call without asking. A server's handler (and its interceptors) run inside
//! the span, so their own events nest under it; a client's span is not entered (its
//! calls are driven from the caller's task), it records the call all the same.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::status::{Code, Status};

/// One RPC's span and what it counts while enabled.
pub(crate) struct CallTrace {
    span: tracing::Span,
    start: Instant,
    received: AtomicU64,
    sent: AtomicU64,
}

impl CallTrace {
    /// The span of a new RPC, or `None` when no subscriber wants it. `peer` is only
    /// formatted when it does.
    pub(crate) fn new(
        client: bool,
        full_method: &str,
        peer: &dyn std::fmt::Display,
    ) -> Option<CallTrace> {
        let side = if client { "client" } else { "server" };
        let span = tracing::debug_span!(
            "grpc",
            rpc.system = "grpc",
            rpc.method = full_method,
            side,
            peer = %peer,
            grpc.status_code = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            messages_received = tracing::field::Empty,
            messages_sent = tracing::field::Empty,
        );
        if span.is_disabled() {
            return None;
        }
        Some(CallTrace {
            span,
            start: Instant::now(),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        })
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how the RPC ended (the span closes when the last handle drops it).
    pub(crate) fn end(&self, status: &Result<(), Status>) {
        let code = status.as_ref().err().map_or(Code::Ok, Status::code);
        let span = &self.span;
        span.record("grpc.status_code", code as i64);
        span.record("duration_us", self.start.elapsed().as_micros() as u64);
        span.record("messages_received", self.received.load(Ordering::Relaxed));
        span.record("messages_sent", self.sent.load(Ordering::Relaxed));
    }
}
