//! Turns a panicking handler into an INTERNAL status for its own call only.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::server::service::BoxFuture;
use crate::status::Status;

/// Polls a handler future, catching a panic in any poll.
pub(crate) struct CatchUnwind {
    inner: BoxFuture<Result<(), Status>>,
}

impl CatchUnwind {
    pub(crate) fn new(inner: BoxFuture<Result<(), Status>>) -> CatchUnwind {
        CatchUnwind { inner }
    }
}

impl Future for CatchUnwind {
    type Output = Result<(), Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future is dropped right after a panic, never polled again, so observing
        // a broken invariant inside it is impossible: AssertUnwindSafe holds.
        match catch_unwind(AssertUnwindSafe(|| self.inner.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Poll::Ready(Err(Status::internal(format!("handler panicked: {what}"))))
            }
        }
    }
}
