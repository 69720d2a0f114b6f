//! The replay buffer of a streamed request (gRFC A6 "Memory Management (Buffering)"):
//! a client- or bidi-streaming call under a retry policy keeps every message it sends
//! until it commits, so that another attempt can be given the whole request again.
//!
//! ```text
//!   sender ──send──▶ Outbox { frames kept, the current attempt } ──▶ attempt's stream
//!                        ▲ replay: a new attempt, the frames (and the close) again
//!   receiver ────────────┘ commit: response headers, or the budget passed
//! ```
//!
//! The sending half and the receiving half of a call may live in different tasks
//! (`BidiStreamingCall::split`), so the buffer is shared. Its lock is async and held
//! across the hand-over to the connection's writer: a replay and a new message never
//! interleave, so every attempt sees the messages in the order they were sent. The
//! lock is never held while waiting on an attempt that has ended: a failed attempt's
//! stream is reset first, which closes its write quota and wakes a waiting sender.
//! Calls without a retry policy have no `Outbox` and never take this lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::buffer::CallBudget;
use crate::client::call::deliver;
use crate::stats::{CallStats, Payload};
use crate::status::Status;
use crate::transport::client::Conn;
use crate::transport::controlbuf::{Item, StreamKey};

/// One call's buffer, shared by its two halves.
pub(crate) struct Outbox {
    state: tokio::sync::Mutex<State>,
    /// Set by either half; the buffer is released by whoever holds the lock next.
    committed: AtomicBool,
    path: &'static str,
}

/// Where the current attempt's messages go.
#[derive(Clone)]
pub(crate) struct Target {
    pub conn: Arc<Conn>,
    pub key: StreamKey,
    pub quota: Arc<Semaphore>,
    /// The attempt's stats, when the channel has a stats handler.
    pub stats: Option<Arc<CallStats>>,
}

struct State {
    /// The current attempt; `None` once handing it a message failed (it has ended, and
    /// the receiving half retries or ends the call).
    target: Option<Target>,
    /// Every message sent so far, framed, with its length before compression (for the
    /// stats). Bounded by `budget`: at most 256 KiB per call and 16 MiB per channel
    /// (A6's `per_rpc_buffer_limit_in_bytes`, `retry_buffer_size_in_bytes`); a
    /// message past either commits the call and empties it.
    frames: Vec<(Bytes, usize)>,
    /// How many of `frames` the current attempt has been given.
    sent: usize,
    /// The caller closed the request stream.
    closed: bool,
    budget: CallBudget,
}

/// What [`Outbox::send`] did with a message.
pub(crate) enum Sent {
    /// Kept, and handed to the current attempt if it is still there.
    Kept,
    /// Not kept, and given back: the call is committed. The caller sends it (and
    /// every later message) itself, to this attempt (`None`: the attempt has ended).
    Committed(Option<Target>, Bytes),
}

impl Outbox {
    pub(crate) fn new(path: &'static str, budget: CallBudget, first: Target) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: tokio::sync::Mutex::new(State {
                target: Some(first),
                frames: Vec::new(),
                sent: 0,
                closed: false,
                budget,
            }),
            committed: AtomicBool::new(false),
            path,
        })
    }

    /// Whether the call has committed to its current attempt.
    pub(crate) fn is_committed(&self) -> bool {
        self.committed.load(Ordering::Acquire)
    }

    /// Commits the call (A6: the response headers arrived, or the call ended): no more
    /// attempts; what was kept is released now, or by the sender's next message when
    /// it holds the lock.
    pub(crate) fn commit(&self) {
        self.committed.store(true, Ordering::Release);
        if let Ok(mut state) = self.state.try_lock() {
            state.release();
        }
    }

    /// Keeps `frame` (`length` before compression) and hands it to the current
    /// attempt. A send to an attempt that has ended is not an error while the call is
    /// not committed: the message waits for the next attempt.
    pub(crate) async fn send(&self, frame: Bytes, length: usize) -> Result<Sent, Status> {
        let mut state = self.state.lock().await;
        if self.is_committed() || !state.budget.keep(frame.len()) {
            self.committed.store(true, Ordering::Release);
            state.release();
            return Ok(Sent::Committed(state.target.clone(), frame));
        }
        state.frames.push((frame, length));
        self.flush(&mut state).await;
        Ok(Sent::Kept)
    }

    /// Closes the request stream: now on the current attempt, and on every later one.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        state.closed = true;
        if let Some(target) = &state.target {
            let _ = target
                .conn
                .writer
                .send(Item::CloseSend { key: target.key })
                .await;
        }
    }

    /// Gives a new attempt everything sent so far, and the close if it was sent;
    /// `false` when the call committed meanwhile (the buffer is gone, and the attempt
    /// cannot have the whole request).
    pub(crate) async fn replay(&self, target: Target) -> bool {
        let mut state = self.state.lock().await;
        if self.is_committed() {
            state.release();
            return false;
        }
        state.target = Some(target);
        state.sent = 0;
        self.flush(&mut state).await;
        if let (true, Some(target)) = (state.closed, &state.target) {
            let _ = target
                .conn
                .writer
                .send(Item::CloseSend { key: target.key })
                .await;
        }
        true
    }

    /// Hands the current attempt the messages it has not had yet.
    async fn flush(&self, state: &mut State) {
        while let (Some(target), Some((frame, length))) =
            (&state.target, state.frames.get(state.sent))
        {
            let sent = Payload {
                length: *length,
                wire_length: frame.len(),
                compressed: frame.first() == Some(&1),
            };
            if deliver(&target.conn, target.key, &target.quota, frame.clone())
                .await
                .is_err()
            {
                // The attempt has ended; the receiving half sees why.
                state.target = None;
                return;
            }
            if let Some(stats) = &target.stats {
                stats.payload(self.path, true, sent);
            }
            state.sent += 1;
        }
    }
}

impl State {
    /// No more attempts: drop what was kept and give its bytes back to the budget.
    fn release(&mut self) {
        self.frames = Vec::new();
        self.sent = 0;
        self.budget.commit();
    }
}
