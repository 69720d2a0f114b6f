//! The control buffer's queue: many producers, one consumer, bounded in items, with
//! storage that grows only as items arrive and shrinks back when drained.
//!
//! tokio's bounded mpsc allocates its first block of 32 slots with the channel, 2.5 KiB
//! per connection at our item size, whether or not the connection ever sends; an idle
//! connection here holds an empty `VecDeque` (no allocation). The bound is a semaphore
//! of [`channel`]'s `bound` permits: a producer waits for a permit (its deadline still
//! runs), the consumer returns one per item taken.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::{Semaphore, TryAcquireError};

/// An empty queue whose storage grew past this many items is released, so a burst does
/// not pin its high-water mark for the life of the connection.
const KEEP_CAPACITY: usize = 64;

struct State<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    senders: usize,
    receiving: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    room: Semaphore,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every critical section is a few field updates that cannot panic half-way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        if !state.receiving {
            return Err(item);
        }
        state.items.push_back(item);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

/// A bounded queue of at most `bound` items.
pub(crate) fn channel<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waker: None,
            senders: 1,
            receiving: true,
        }),
        room: Semaphore::new(bound),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Why `try_send` did not queue the item.
pub(crate) enum TrySendError<T> {
    /// The queue holds `bound` items.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// A producer's handle.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item`, waiting for room; gives it back if the receiver is gone.
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        match self.shared.room.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(item),
        }
        self.shared.push(item)
    }

    /// Queues `item` if there is room now.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        match self.shared.room.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(item)),
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(item)),
        }
        self.shared.push(item).map_err(TrySendError::Closed)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let waker = if state.senders == 0 {
            state.waker.take()
        } else {
            None
        };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The consumer's handle.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(item) = state.items.pop_front() {
            if state.items.is_empty() && state.items.capacity() > KEEP_CAPACITY {
                state.items = VecDeque::new();
            }
            drop(state);
            self.shared.room.add_permits(1);
            return Poll::Ready(Some(item));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiving = false;
        let items = std::mem::take(&mut state.items);
        drop(state);
        // Waiting producers get their item back.
        self.shared.room.close();
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn items_arrive_in_order_and_the_end_is_reported() {
        let (tx, mut rx) = channel::<u32>(4);
        let tx2 = tx.clone();
        tx.send(1).await.ok().unwrap();
        tx2.send(2).await.ok().unwrap();
        drop(tx);
        drop(tx2);
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(1));
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(2));
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, None);
    }

    #[tokio::test]
    async fn a_full_queue_makes_producers_wait_until_the_consumer_takes() {
        let (tx, mut rx) = channel::<u32>(2);
        tx.send(1).await.ok().unwrap();
        tx.send(2).await.ok().unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(3).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the third item must wait for room");
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(1));
        assert!(waiting.await.unwrap());
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(2));
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(3));
    }

    #[tokio::test]
    async fn producers_get_their_item_back_once_the_receiver_is_gone() {
        let (tx, rx) = channel::<u32>(1);
        tx.send(1).await.ok().unwrap();
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(2).await }
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(blocked.await.unwrap(), Err(2));
        assert!(matches!(tx.try_send(3), Err(TrySendError::Closed(3))));
    }

    #[tokio::test]
    async fn storage_is_released_after_a_burst() {
        let (tx, mut rx) = channel::<u32>(1000);
        for i in 0..500 {
            tx.send(i).await.ok().unwrap();
        }
        for _ in 0..500 {
            poll_fn(|cx| rx.poll_recv(cx)).await;
        }
        assert_eq!(rx.shared.lock().items.capacity(), 0);
    }
}
