//! The control buffer's queue: many producers, one consumer, bounded in items, with
//! storage that grows only as items arrive and shrinks back when drained.
//!
//! tokio's bounded mpsc allocates its first block of 32 slots with the channel, 2.5 KiB
//! per connection at our item size, whether or not the connection ever sends; an idle
//! connection here holds an empty `VecDeque` (no allocation). The bound is checked under
//! the queue's own lock, so an item costs one lock to push and one to take; a producer
//! that finds the queue full waits on [`Shared::room`] (its deadline still runs) and
//! looks again when the consumer has taken an item. (A semaphore of `bound` permits did
//! this before: its acquire future and its locked release cost ~150 instructions an
//! item, both when the queue had room.) A waiting producer holds its own item, so the
//! waiters are bounded by the producers; a new producer may take the room a woken one
//! was about to use, which only makes that one look again.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

/// An empty queue whose storage grew past this many items is released, so a burst does
/// not pin its high-water mark for the life of the connection.
const KEEP_CAPACITY: usize = 64;

struct State<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    senders: usize,
    receiving: bool,
    /// Producers waiting for room: the consumer wakes one per item it takes.
    waiting: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Most items queued at once.
    bound: usize,
    /// Woken (one waiter) as an item is taken, (all) when the receiver goes.
    room: Notify,
}

/// Why [`Shared::push`] did not queue an item.
enum Refused<T> {
    Full(T),
    Closed(T),
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every critical section is a few field updates that cannot panic half-way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` if the receiver is there and the queue has room; a full queue
    /// counts the caller among the waiters when `wait` is set.
    fn push(&self, item: T, wait: bool) -> Result<(), Refused<T>> {
        let mut state = self.lock();
        if !state.receiving {
            return Err(Refused::Closed(item));
        }
        if state.items.len() >= self.bound {
            state.waiting += usize::from(wait);
            return Err(Refused::Full(item));
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

/// Takes a waiting producer off the count, however its wait ends (room, closing, or
/// its future dropped at a deadline).
struct Waiting<'a, T>(&'a Shared<T>);

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
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
            waiting: 0,
        }),
        bound,
        room: Notify::new(),
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
        let mut item = match self.shared.push(item, false) {
            Ok(()) => return Ok(()),
            Err(Refused::Closed(item)) => return Err(item),
            Err(Refused::Full(item)) => item,
        };
        loop {
            // Registered before looking, so an item taken in between still wakes us.
            let mut room = pin!(self.shared.room.notified());
            room.as_mut().enable();
            item = match self.shared.push(item, true) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed(item)) => return Err(item),
                Err(Refused::Full(item)) => item,
            };
            let _waiting = Waiting(&self.shared);
            room.await;
        }
    }

    /// Queues `item` if there is room now.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.shared
            .push(item, false)
            .map_err(|refused| match refused {
                Refused::Full(item) => TrySendError::Full(item),
                Refused::Closed(item) => TrySendError::Closed(item),
            })
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
            let waiting = state.waiting > 0;
            drop(state);
            if waiting {
                self.shared.room.notify_one();
            }
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
        // Waiting producers look again, find the receiver gone and get their item back.
        self.shared.room.notify_waiters();
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
    async fn every_waiting_producer_gets_in_and_a_dropped_one_is_no_longer_counted() {
        let (tx, mut rx) = channel::<u32>(1);
        tx.send(0).await.ok().unwrap();
        // A producer that gives up (its deadline) while waiting.
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), tx.send(99));
        assert!(gave_up.await.is_err(), "the queue is full: it waits");
        assert_eq!(
            tx.shared.lock().waiting,
            0,
            "a dropped waiter is not counted"
        );
        let waiting: Vec<_> = (1..=4)
            .map(|i| {
                let tx = tx.clone();
                tokio::spawn(async move { tx.send(i).await.is_ok() })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(tx.shared.lock().waiting, 4);
        let mut got = Vec::new();
        while got.len() < 5 {
            got.push(poll_fn(|cx| rx.poll_recv(cx)).await.unwrap());
        }
        for w in waiting {
            assert!(w.await.unwrap());
        }
        got.sort();
        assert_eq!(got, [0, 1, 2, 3, 4], "each waiter's item arrives once");
        assert_eq!(tx.shared.lock().waiting, 0);
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
