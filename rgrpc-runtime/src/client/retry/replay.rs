//! The replay buffer of a streamed request (gRFC A6 "Memory Management (Buffering)"):
//! a client- or bidi-streaming call under a retry or hedging policy keeps every message
//! it sends until it commits, so that another attempt can be given the whole request
//! again. A retried call has one attempt at a time; a hedged one has every live attempt
//! as a target, and each message goes to each.
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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

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
    /// A hedged call (every live attempt is a target) rather than a retried one (one
    /// target at a time).
    hedged: bool,
    /// A hedged call's attempt the call committed to (its `attempt` number); `NONE`
    /// until then. Set once, by whichever comes first: the hedge's winner (response
    /// headers, A6) or the sender past the buffer limit (the oldest running attempt).
    chosen: AtomicU32,
    path: &'static str,
}

/// No attempt chosen yet.
const NONE: u32 = u32::MAX;

/// Where the current attempt's messages go.
#[derive(Clone)]
pub(crate) struct Target {
    pub conn: Arc<Conn>,
    pub key: StreamKey,
    pub quota: Arc<Semaphore>,
    /// The attempt's stats, when the channel has a stats handler.
    pub stats: Option<Arc<CallStats>>,
    /// Attempts before this one (`grpc-previous-rpc-attempts`): the attempt's number.
    pub attempt: u32,
}

struct State {
    /// The attempts the messages go to, oldest first, each with how many of `frames`
    /// it has been given: one for a retried call (none once handing it a message
    /// failed: it has ended, and the receiving half retries or ends the call), every
    /// live attempt for a hedged one (an attempt that has ended drops out).
    targets: Vec<(Target, usize)>,
    /// Every message sent so far, framed, with its length before compression (for the
    /// stats). Bounded by `budget`: at most 256 KiB per call and 16 MiB per channel
    /// (A6's `per_rpc_buffer_limit_in_bytes`, `retry_buffer_size_in_bytes`); a
    /// message past either commits the call and empties it.
    frames: Vec<(Bytes, usize)>,
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
    /// `hedged`: every attempt opened (`replay`) joins the others rather than
    /// replacing the current one.
    pub(crate) fn new(
        path: &'static str,
        budget: CallBudget,
        first: Target,
        hedged: bool,
    ) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: tokio::sync::Mutex::new(State {
                targets: vec![(first, 0)],
                frames: Vec::new(),
                closed: false,
                budget,
            }),
            committed: AtomicBool::new(false),
            hedged,
            chosen: AtomicU32::new(NONE),
            path,
        })
    }

    /// A hedged call commits to `attempt` (its response headers came first), unless
    /// it committed to another one already; whether `attempt` is the one.
    pub(crate) fn choose(&self, attempt: u32) -> bool {
        let chosen =
            match self
                .chosen
                .compare_exchange(NONE, attempt, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => attempt,
                Err(other) => other,
            };
        self.commit();
        chosen == attempt
    }

    /// The attempt a hedged call committed to, if it has.
    pub(crate) fn chosen(&self) -> Option<u32> {
        let chosen = self.chosen.load(Ordering::Acquire);
        (chosen != NONE).then_some(chosen)
    }

    /// Whether the call has committed to its current attempt.
    pub(crate) fn is_committed(&self) -> bool {
        self.committed.load(Ordering::Acquire)
    }

    /// Commits the call (A6: the response headers arrived, or the call ended): no more
    /// attempts; what was kept is released now, or, when a send holds the lock, by
    /// that send as it finishes.
    pub(crate) fn commit(&self) {
        self.committed.store(true, Ordering::Release);
        if let Ok(mut state) = self.state.try_lock() {
            self.release(&mut state);
        }
    }

    /// Keeps `frame` (`length` before compression) and hands it to the current
    /// attempt. A send to an attempt that has ended is not an error while the call is
    /// not committed: the message waits for the next attempt.
    pub(crate) async fn send(&self, frame: Bytes, length: usize) -> Result<Sent, Status> {
        let mut state = self.state.lock().await;
        if self.is_committed() || !state.budget.keep(frame.len()) {
            if self.hedged {
                // Past the limit with no winner yet: the oldest running attempt.
                if let Some((oldest, _)) = state.targets.first() {
                    let _ = self.chosen.compare_exchange(
                        NONE,
                        oldest.attempt,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
            }
            self.committed.store(true, Ordering::Release);
            self.release(&mut state);
            let target = state.targets.first().map(|(target, _)| target.clone());
            return Ok(Sent::Committed(target, frame));
        }
        state.frames.push((frame, length));
        self.flush(&mut state).await;
        // Committed while this held the lock (waiting for write quota): `commit` could
        // not release, so the buffer goes now rather than at the next send, which may
        // never come.
        if self.is_committed() {
            self.release(&mut state);
        }
        Ok(Sent::Kept)
    }

    /// Closes the request stream: now on the current attempt, and on every later one.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        state.closed = true;
        if self.is_committed() {
            self.release(&mut state);
        }
        for (target, _) in &state.targets {
            let _ = target
                .conn
                .writer
                .send(Item::CloseSend { key: target.key })
                .await;
        }
    }

    /// Gives a new attempt everything sent so far, and the close if it was sent;
    /// `false` when the call committed meanwhile (the buffer is gone, and the attempt
    /// cannot have the whole request). A retried call's new attempt replaces the
    /// current one; a hedged call's joins the others, and every later message goes to
    /// each.
    pub(crate) async fn replay(&self, target: Target) -> bool {
        let mut state = self.state.lock().await;
        if self.is_committed() {
            self.release(&mut state);
            return false;
        }
        if !self.hedged {
            state.targets.clear();
        }
        let key = (target.attempt, state.closed);
        state.targets.push((target, 0));
        self.flush(&mut state).await;
        let (attempt, true) = key else {
            return true;
        };
        if let Some((target, _)) = state.targets.iter().find(|(t, _)| t.attempt == attempt) {
            let _ = target
                .conn
                .writer
                .send(Item::CloseSend { key: target.key })
                .await;
        }
        true
    }

    /// Hands each attempt the messages it has not had yet; one that has ended drops
    /// out (the receiving half sees why).
    async fn flush(&self, state: &mut State) {
        let State {
            targets, frames, ..
        } = state;
        let mut i = 0;
        'targets: while i < targets.len() {
            let (target, sent) = &mut targets[i];
            while let Some((frame, length)) = frames.get(*sent) {
                let payload = Payload {
                    length: *length,
                    wire_length: frame.len(),
                    compressed: frame.first() == Some(&1),
                };
                if deliver(&target.conn, target.key, &target.quota, frame.clone())
                    .await
                    .is_err()
                {
                    targets.remove(i);
                    continue 'targets;
                }
                if let Some(stats) = &target.stats {
                    stats.payload(self.path, true, payload);
                }
                *sent += 1;
            }
            i += 1;
        }
    }

    /// No more attempts: drop what was kept and give its bytes back to the budget. A
    /// hedged call keeps only the attempt it chose (the others are reset: RST_STREAM
    /// CANCEL), or none when it ended without one.
    fn release(&self, state: &mut State) {
        state.frames = Vec::new();
        state.budget.commit();
        if self.hedged {
            let chosen = self.chosen();
            state.targets.retain(|(target, _)| {
                let keep = Some(target.attempt) == chosen;
                if !keep {
                    target.conn.writer.reset(target.key, h2::Reason::CANCEL);
                }
                keep
            });
        }
    }
}
