//! Turns a panicking handler into an INTERNAL status for its own call only.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::status::Status;

/// Polls a handler future in place, catching a panic in the poll. The future is
/// dropped (set to `None`) once it has returned or panicked, so it is never polled
/// again after a panic; `None` stays pending (nothing polls it then: its call has its
/// result).
pub(crate) fn poll_caught<F>(
    mut handler: Pin<&mut Option<F>>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Status>>
where
    F: Future<Output = Result<(), Status>>,
{
    let Some(future) = handler.as_mut().as_pin_mut() else {
        return Poll::Pending;
    };
    // The future is dropped right after a panic, never polled again, so observing a
    // broken invariant inside it is impossible: AssertUnwindSafe holds.
    let result = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(Poll::Pending) => return Poll::Pending,
        Ok(Poll::Ready(result)) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(Status::internal(format!("handler panicked: {what}")))
        }
    };
    handler.set(None);
    Poll::Ready(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_the_calls_internal_status_and_the_future_is_dropped() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut handler = std::pin::pin!(Some(async {
            panic!("the handler's own bug");
            #[allow(unreachable_code)]
            Ok(())
        }));
        let Poll::Ready(Err(status)) = poll_caught(handler.as_mut(), &mut cx) else {
            panic!("the panic was not caught");
        };
        assert_eq!(status.code(), crate::Code::Internal);
        assert!(status.message().contains("the handler's own bug"));
        assert!(handler.is_none(), "dropped, never polled again");
        assert!(poll_caught(handler.as_mut(), &mut cx).is_pending());
    }

    #[test]
    fn a_returned_handler_is_dropped_at_once() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut handler = std::pin::pin!(Some(std::future::ready(Ok(()))));
        assert!(matches!(
            poll_caught(handler.as_mut(), &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(handler.is_none());
    }
}
