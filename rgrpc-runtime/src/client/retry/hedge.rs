//! The attempts of a hedged call (gRFC A6 "Hedging Policy"): the first attempt at
//! once, another every `hedgingDelay` (each on a fresh pick) up to `maxAttempts`, all
//! in flight together, until one answers. A unary or server-streaming request goes
//! whole with each open; a client- or bidi-streaming request's messages are in its
//! replay buffer (`replay.rs`), which gives each new attempt every message sent so far
//! and every later one to each live attempt. Such a hedge runs in a task of its own
//! (the caller may still be sending, not reading). Past the buffer limit the call
//! commits: to the attempt that has response headers, else to the oldest running one;
//! the others are cancelled and no more go.
//!
//! ```text
//!            ┌── timer (hedgingDelay; a pushback's delay) ──▶ open one more attempt
//!   Hedge ───┤                                                  (throttle permitting)
//!            ├── an attempt's response headers, OK, or a fatal status ──▶ Won
//!            ├── a non-fatal status ──▶ the next attempt at once (pushback: later,
//!            │                          or never); the status is kept
//!            └── nothing in flight and nothing more to send ──▶ Failed(last status)
//! ```
//!
//! Dropping the `Hedge` (a winner was found, or the call ended: deadline, cancel)
//! drops every other attempt's response future: h2 then resets each stream with
//! RST_STREAM CANCEL, so the server sees the cancellations.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::buffer::CallBudget;
use super::policy::{HedgingPolicy, Pushback, pushback};
use super::throttle::Throttle;
use crate::client::call::{BoxFuture, Replay, Started, reattempt};
use crate::metadata::Metadata;
use crate::stats::CallStats;
use crate::status::{Code, Status, status_from_h2};

/// How a hedged call's attempts came out.
pub(crate) enum Outcome {
    /// This attempt answered first with headers (a Trailers-Only response too: OK or
    /// a fatal status); the call goes on with it alone.
    Won(Started, http::Response<h2::RecvStream>),
    /// No attempt answered: the last non-fatal status, or a fatal failure to open.
    Failed(Status),
}

/// Who polls a hedge.
pub(crate) enum Driven {
    /// The call's receiving half: a whole request's call waits on its answer from
    /// the start.
    Inline(Box<Hedge>),
    /// A task of its own: a streamed request's receiving half may not be polled until
    /// the request is sent (a client-streaming call's `close_and_recv`), and the hedges
    /// must go out meanwhile. Dropping this ends the task, and the hedge with it.
    Task(
        tokio::sync::oneshot::Receiver<Outcome>,
        tokio::task::JoinHandle<()>,
    ),
}

impl Driven {
    /// Runs `hedge` in a task of its own.
    pub(crate) fn spawn(mut hedge: Box<Hedge>) -> Driven {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let outcome = std::future::poll_fn(|cx| hedge.poll(cx)).await;
            if let Err(Outcome::Won(attempt, _)) = tx.send(outcome) {
                // The call is gone: the winner goes too.
                hedge.cancel(&attempt);
            }
        });
        Driven::Task(rx, task)
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        match self {
            Driven::Inline(hedge) => hedge.poll(cx),
            Driven::Task(rx, _) => Pin::new(rx).poll(cx).map(|outcome| {
                outcome.unwrap_or_else(|_| Outcome::Failed(Status::cancelled("hedge ended")))
            }),
        }
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        if let Driven::Task(_, task) = self {
            task.abort();
        }
    }
}

/// A hedged call before one of its attempts answered.
pub(crate) struct Hedge {
    policy: HedgingPolicy,
    /// What each new attempt sends; its `previous_attempts` is the attempts started.
    replay: Replay,
    deadline: Option<Instant>,
    /// The attempts in flight: at most `maxAttempts` (5, A6's cap).
    live: Vec<Started>,
    /// The attempt being opened (one at a time), boxed: a call needs it rarely.
    opening: Option<BoxFuture<Result<Started, Status>>>,
    /// When the next attempt is due; `None`: now.
    next: Option<Pin<Box<tokio::time::Sleep>>>,
    /// No more attempts (a pushback said stop, or the throttle).
    stopped: bool,
    /// The last non-fatal status, returned when every attempt failed.
    last: Option<Status>,
    throttle: Option<Arc<Throttle>>,
    /// The first attempt's stats: each new attempt's are made from them.
    template: Option<Arc<CallStats>>,
    /// A whole request's share of the channel's replay budget, released with the
    /// hedge; a streamed request's is in its outbox.
    _budget: Option<CallBudget>,
}

impl Hedge {
    /// A hedge whose first attempt is `first`.
    pub(crate) fn new(
        policy: HedgingPolicy,
        replay: Replay,
        deadline: Option<Instant>,
        first: Started,
        throttle: Option<Arc<Throttle>>,
        budget: Option<CallBudget>,
    ) -> Hedge {
        let template = first.stats.clone();
        let next = delay(policy.hedging_delay);
        Hedge {
            policy,
            replay,
            deadline,
            live: vec![first],
            opening: None,
            next,
            stopped: false,
            last: None,
            throttle,
            template,
            _budget: budget,
        }
    }

    /// Drives the attempts until one wins or all have failed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        loop {
            self.committed();
            if let Some(opening) = &mut self.opening {
                if let Poll::Ready(opened) = opening.as_mut().poll(cx) {
                    self.opening = None;
                    match opened {
                        Ok(started) => self.live.push(started),
                        // Committed meanwhile (past the buffer limit): the attempt
                        // could not have the whole request, and is not one.
                        Err(_) if self.stopped => {}
                        // A hedge that could not be opened (no pick, the connection
                        // closed) got no answer from a server, and A6 makes a status
                        // fatal when an attempt receives it: with attempts in flight it
                        // only stops further hedges, and they decide the call.
                        Err(status)
                            if !self.live.is_empty()
                                && !self.policy.non_fatal.contains(status.code()) =>
                        {
                            self.stopped = true;
                            self.last = Some(status);
                        }
                        Err(status) => {
                            if let Some(outcome) = self.failed(status, Pushback::None) {
                                return Poll::Ready(outcome);
                            }
                        }
                    }
                    continue;
                }
            }
            if let Some(outcome) = self.poll_live(cx) {
                return Poll::Ready(outcome);
            }
            let attempts = self.replay.previous_attempts + 1;
            if !self.stopped && attempts < self.policy.max_attempts && self.opening.is_none() {
                let due = match &mut self.next {
                    None => true,
                    Some(timer) => timer.as_mut().poll(cx).is_ready(),
                };
                if due {
                    // A6: after the first, a hedge goes only while the throttle allows.
                    if self.throttle.as_ref().is_none_or(|t| t.allows_retry()) {
                        self.open_next();
                        continue;
                    }
                    self.stopped = true;
                }
            }
            let more = !self.stopped && attempts < self.policy.max_attempts;
            if self.live.is_empty() && self.opening.is_none() && !more {
                let status = self
                    .last
                    .take()
                    .unwrap_or_else(|| Status::unavailable("every hedged attempt failed"));
                return Poll::Ready(Outcome::Failed(status));
            }
            // Every future in flight and the timer were polled: their wakers are set.
            return Poll::Pending;
        }
    }

    /// Polls each attempt in flight once; a failed one is taken out (and its status
    /// judged), a winner is returned.
    fn poll_live(&mut self, cx: &mut Context<'_>) -> Option<Outcome> {
        let mut i = 0;
        while i < self.live.len() {
            let polled = Pin::new(&mut self.live[i].response).poll(cx);
            let Poll::Ready(answer) = polled else {
                i += 1;
                continue;
            };
            let attempt = self.live.swap_remove(i);
            let (status, pushback) = match answer {
                Ok(response) => match non_fatal(&self.policy, response) {
                    // A streamed request: the call commits to this attempt unless it
                    // has to another (past the buffer limit) meanwhile.
                    Ok(response) => match self.replay.outbox() {
                        Some(outbox) if !outbox.choose(attempt.attempt) => {
                            self.cancel(&attempt);
                            continue;
                        }
                        _ => return Some(Outcome::Won(attempt, response)),
                    },
                    Err(failure) => failure,
                },
                Err(e) => (status_from_h2(&e), Pushback::None),
            };
            if let Some(stats) = &attempt.stats {
                stats.end(self.replay.path, &Err(status.clone()));
            }
            if self.replay.outbox().is_some() {
                // Its stream may still be open for sending: the reset closes its write
                // quota, so the outbox drops it.
                attempt.conn.writer.reset(attempt.key, h2::Reason::CANCEL);
            }
            if let Some(outcome) = self.failed(status, pushback) {
                return Some(outcome);
            }
        }
        None
    }

    /// An attempt failed with `status` (or could not be opened): a fatal status ends
    /// the call; a non-fatal one counts against the throttle, is kept, and brings the
    /// next attempt forward (A6 "Summary of Retry and Hedging Logic").
    fn failed(&mut self, status: Status, pushback: Pushback) -> Option<Outcome> {
        if !self.policy.non_fatal.contains(status.code()) {
            return Some(Outcome::Failed(status));
        }
        if let Some(throttle) = &self.throttle {
            throttle.failure();
        }
        match pushback {
            Pushback::Stop => self.stopped = true,
            Pushback::After(wait) => self.next = delay(wait),
            Pushback::None => self.next = None,
        }
        self.last = Some(status);
        None
    }

    /// A streamed request's call that committed (past the buffer limit, to its oldest
    /// running attempt): no more attempts, and the others are cancelled.
    fn committed(&mut self) {
        let Some(outbox) = self.replay.outbox() else {
            return;
        };
        if self.stopped || !outbox.is_committed() {
            return;
        }
        self.stopped = true;
        let chosen = outbox.chosen();
        let (keep, cancel) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|attempt| Some(attempt.attempt) == chosen);
        self.live = keep;
        let cancel: Vec<Started> = cancel;
        for attempt in &cancel {
            self.cancel(attempt);
        }
    }

    /// An attempt that lost: reset (RST_STREAM CANCEL), its stats ended CANCELLED.
    fn cancel(&self, attempt: &Started) {
        if let Some(stats) = &attempt.stats {
            let cancelled = Err(Status::cancelled("another hedged attempt answered"));
            stats.end(self.replay.path, &cancelled);
        }
        attempt.conn.writer.reset(attempt.key, h2::Reason::CANCEL);
    }

    /// Opens the next attempt (on a fresh pick) and sets the timer for the one after.
    fn open_next(&mut self) {
        self.replay.previous_attempts += 1;
        let open = reattempt(
            self.replay.clone(),
            Duration::ZERO,
            self.deadline,
            self.template.clone(),
            true,
            Status::cancelled("hedged attempt not opened"),
        );
        self.opening = Some(Box::pin(open));
        self.next = delay(self.policy.hedging_delay);
    }
}

impl Drop for Hedge {
    fn drop(&mut self) {
        // The attempts still in flight lost (or the call ended): their response futures
        // go with the hedge, and h2 resets their streams with CANCEL.
        for attempt in &self.live {
            self.cancel(attempt);
        }
    }
}

/// A timer for `wait`, none for zero (the next attempt is due at once).
fn delay(wait: Duration) -> Option<Pin<Box<tokio::time::Sleep>>> {
    (!wait.is_zero()).then(|| Box::pin(tokio::time::sleep(wait)))
}

/// A response that ends its attempt with a non-fatal status (Trailers-Only) is that
/// status and the pushback in it; any other response wins the hedge.
fn non_fatal(
    policy: &HedgingPolicy,
    response: http::Response<h2::RecvStream>,
) -> Result<http::Response<h2::RecvStream>, (Status, Pushback)> {
    let (parts, body) = response.into_parts();
    if let Err(Err(status)) = crate::client::call::check_head(&parts) {
        if status.code() != Code::Ok && policy.non_fatal.contains(status.code()) {
            let trailers = Metadata::from_headers(&parts.headers);
            return Err((status, pushback(trailers.get("grpc-retry-pushback-ms"))));
        }
    }
    Ok(http::Response::from_parts(parts, body))
}
