//! One client call, untyped: open a stream, send, close-send, receive headers,
//! messages and trailers. Unary is this same path with one message each way (grpc-go `invoke`).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use tokio::sync::Semaphore;

use super::channel::Channel;
use super::retry;
use super::retry::buffer::CallBudget;
use super::retry::hedge::{self, Hedge};
use super::retry::policy::{Policy, Pushback};
use super::retry::replay::{Outbox, Sent, Target};
use super::retry::throttle::Throttle;
use super::service_config::{CallSettings, MethodConfig};
use crate::call::CallOptions;
use crate::codec::compression::{self, Encoding};
use crate::codec::reader::{MessageReader, Received};
use crate::codec::timeout;
use crate::interceptor::{AnyMessage, Observers, RpcKind};
use crate::metadata::Metadata;
use crate::stats::{CallStats, Payload, StatsEvent};
use crate::status::{Code, Status, status_from_h2};
use crate::trace::CallTrace;
use crate::transport::client::Conn;
use crate::transport::controlbuf::{self, Item, Opened, StreamKey, Writer};
use crate::transport::headers::{CONTENT_TYPE, GRPC_ENCODING, GRPC_STATUS, GRPC_TIMEOUT};

/// The call's method config in the channel's service config, and the call's options
/// over it (`MethodConfig::apply`); no service config: one branch, no lookup.
pub(super) fn call_settings<'c>(
    channel: &'c Channel,
    path: &str,
    options: &CallOptions,
) -> (Option<&'c MethodConfig>, CallSettings) {
    let config = channel.config();
    let method = config
        .service_config
        .as_deref()
        .and_then(|service_config| service_config.method(path));
    let settings = MethodConfig::apply(
        method,
        options,
        config.max_send_message_size,
        config.max_recv_message_size,
    );
    (method, settings)
}

/// Runs `fut` against the call's deadline.
pub(super) async fn until<T>(
    deadline: Option<Instant>,
    fut: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let mut fut = std::pin::pin!(fut);
    let mut timer = None;
    poll_fn(|cx| poll_until(deadline, &mut timer, cx, |cx| fut.as_mut().poll(cx))).await
}

/// A deadline's timer, made by `poll_expired` once a step has had to wait. Boxed: a
/// tokio `Sleep` is 112 B, and every call's future would reserve room for it while
/// only the calls that wait with a deadline make one (a waiting call then holds
/// 8 B here plus the box; a step that waits pays one allocation for it).
type Timer = Option<Pin<Box<tokio::time::Sleep>>>;

/// Polls `step`, then the deadline. The timer is made only once the step has had to
/// wait, so a step that completes at once (most of them) sets up no timer; a caller
/// that polls its step in place (`wait_for_stream`, `start_on`) keeps it and `timer`
/// once each in its own frame, where `tokio::time::timeout_at` would hold a second
/// copy of the step.
fn poll_until<T>(
    deadline: Option<Instant>,
    timer: &mut Timer,
    cx: &mut Context<'_>,
    step: impl FnOnce(&mut Context<'_>) -> Poll<Result<T, Status>>,
) -> Poll<Result<T, Status>> {
    if let Poll::Ready(result) = step(cx) {
        return Poll::Ready(result);
    }
    poll_expired(deadline, timer, cx).map(Err)
}

/// Ready with DEADLINE_EXCEEDED once `deadline` has passed (the timer is made on the
/// first poll); never without a deadline.
fn poll_expired(
    deadline: Option<Instant>,
    timer: &mut Timer,
    cx: &mut Context<'_>,
) -> Poll<Status> {
    let Some(deadline) = deadline else {
        return Poll::Pending;
    };
    let timer = timer.get_or_insert_with(|| {
        let at = tokio::time::Instant::from_std(deadline);
        Box::pin(tokio::time::sleep_until(at))
    });
    ready!(timer.as_mut().poll(cx));
    Poll::Ready(Status::deadline_exceeded("deadline exceeded"))
}

/// Hands one framed message to a stream: waits for its write quota, then queues it.
pub(super) async fn deliver(
    conn: &Conn,
    key: StreamKey,
    quota: &Semaphore,
    frame: Bytes,
) -> Result<(), Status> {
    let permits = Writer::acquire(quota, frame.len()).await?;
    conn.writer
        .send(Item::Data {
            key,
            data: frame,
            permits,
        })
        .await
}

/// The sending half of a call.
pub(super) struct SendHalf {
    conn: Arc<Conn>,
    path: &'static str,
    key: StreamKey,
    /// The stream's write quota; none when the request went whole with the open.
    quota: Option<Arc<Semaphore>>,
    deadline: Option<Instant>,
    max_send: usize,
    buf: BytesMut,
    closed: bool,
    encoding: Option<Encoding>,
    pub(super) compress: bool,
    /// An intercepted call's observers (each request passes them).
    observers: Option<Arc<Observers>>,
    /// The attempt's stats, when the channel has a stats handler.
    stats: Option<Arc<CallStats>>,
    /// The attempt's span, when a subscriber wants it.
    trace: Option<Arc<CallTrace>>,
    /// A streamed request under a retry policy, until the call commits: the messages
    /// go through the replay buffer, to whichever attempt is current (`conn`, `key`,
    /// `quota` and `stats` above are the first attempt's until then). `None` for every
    /// other call: one branch.
    outbox: Option<Arc<Outbox>>,
}

impl SendHalf {
    pub(super) async fn send<T: prost::Message + 'static>(
        &mut self,
        message: &T,
    ) -> Result<(), Status> {
        // No quota: the request went whole with the open, so the stream is closed too.
        let (false, Some(_)) = (self.closed, &self.quota) else {
            return Err(Status::internal("send after close_send"));
        };
        let encoding = self.encoding.filter(|_| self.compress);
        let replacement = match &self.observers {
            Some(observers) => observers.send(message)?,
            None => None,
        };
        let measure = self.stats.is_some() || self.outbox.is_some();
        let (frame, length) = match replacement {
            Some(replacement) => (
                compression::encode_frame(&*replacement, &mut self.buf, self.max_send, encoding)?,
                measure.then(|| replacement.encoded_len()),
            ),
            None => (
                compression::encode_frame(message, &mut self.buf, self.max_send, encoding)?,
                measure.then(|| message.encoded_len()),
            ),
        };
        let length = length.unwrap_or(0);
        let result = match &self.outbox {
            None => self.deliver(frame, length).await,
            Some(outbox) => match until(self.deadline, outbox.send(frame, length)).await {
                Ok(Sent::Kept) => Ok(()),
                Ok(Sent::Committed(target, frame)) => {
                    // From here on the call's one attempt is the current one.
                    self.outbox = None;
                    match target {
                        Some(target) => {
                            self.conn = target.conn;
                            self.key = target.key;
                            self.quota = Some(target.quota);
                            self.stats = target.stats;
                            self.deliver(frame, length).await
                        }
                        None => Err(Status::cancelled(
                            "stream closed before the message could be sent",
                        )),
                    }
                }
                Err(status) => Err(status),
            },
        };
        if let (Some(trace), Ok(())) = (&self.trace, &result) {
            trace.sent();
        }
        result
    }

    /// Hands `frame` to this half's stream under the call's deadline.
    async fn deliver(&mut self, frame: Bytes, length: usize) -> Result<(), Status> {
        let Some(quota) = &self.quota else {
            return Err(Status::internal("send after close_send"));
        };
        let sent = Payload {
            length,
            wire_length: frame.len(),
            compressed: frame.first() == Some(&1),
        };
        let result = until(self.deadline, deliver(&self.conn, self.key, quota, frame)).await;
        if result
            .as_ref()
            .is_err_and(|s| s.code() == Code::DeadlineExceeded)
        {
            self.conn.writer.reset(self.key, h2::Reason::CANCEL);
        }
        if let (Some(stats), Ok(())) = (&self.stats, &result) {
            stats.payload(self.path, true, sent);
        }
        result
    }

    pub(super) async fn close(&mut self) -> Result<(), Status> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if let Some(outbox) = &self.outbox {
            until(self.deadline, async {
                outbox.close().await;
                Ok(())
            })
            .await?;
            return Ok(());
        }
        self.conn
            .writer
            .send(Item::CloseSend { key: self.key })
            .await
    }
}

impl Drop for SendHalf {
    fn drop(&mut self) {
        // A dropped sender ends the request stream, like a finished iterator in tonic.
        if !self.closed {
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                return;
            };
            if let Some(outbox) = self.outbox.take() {
                // Every later attempt is closed too.
                handle.spawn(async move { outbox.close().await });
                return;
            }
            let writer = self.conn.writer.clone();
            let key = self.key;
            handle.spawn(async move {
                let _ = writer.send(Item::CloseSend { key }).await;
            });
        }
    }
}

/// The receive side of a call:
///
/// ```text
///   Head ──response headers──▶ Body ──trailers, or a read error──▶ Done
///    │ ▲                        ▲                                   ▲
///    │ └──reopened── Retry ──failed to reopen───────────────────────┤
///    ├──refused: never processed (once)──▶ Retry                    │
///    └──a retryable status, uncommitted (retry policy)──▶ Retry     │
///   Head ──Trailers-Only, a head that is not gRPC, an h2 error──────┤
///   Hedging ──an attempt's headers──▶ Body; fatal, all failed───────┘
///   any state ──deadline, cancel──▶ Done
/// ```
enum RecvState {
    /// Waiting for the response headers.
    Head(h2::client::ResponseFuture),
    /// Opening the call again on the channel's live connection (gRFC A6 transparent
    /// retry, at most once per call): `start` is async, so its future is kept here,
    /// boxed since a call needs it rarely. In a `Mutex` only so the call handles stay
    /// `Sync`; it is only ever reached through `&mut` (`get_mut`, never locked).
    Retry(Mutex<BoxFuture<Result<Started, Status>>>),
    /// A hedged call's attempts, until one answers (`retry/hedge.rs`): polled here,
    /// or in a task of their own for a streamed request. In a `Mutex` for the same
    /// reason as `Retry`.
    Hedging(Mutex<hedge::Driven>),
    /// Reading messages, then the trailers.
    Body(MessageReader),
    /// The call has ended with this status (OK or not).
    Done(Result<(), Status>),
}

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The receiving half of a call. Poll-based (`poll_head`, `poll_message`): every state
/// is in `self`, so the `Stream` impls of the handles poll it directly, and the async
/// `headers` and `message` are those polls run against the deadline.
pub(super) struct RecvHalf {
    conn: Arc<Conn>,
    key: StreamKey,
    deadline: Option<Instant>,
    max_recv: usize,
    state: RecvState,
    pub(super) headers: Option<Metadata>,
    pub(super) trailers: Metadata,
    /// Whether the last message returned arrived compressed.
    pub(super) last_compressed: bool,
    /// The last message's length on the wire, and decoded (uncompressed).
    last_wire_size: usize,
    last_len: usize,
    /// The attempt's stats, when the channel has a stats handler.
    stats: Option<Arc<CallStats>>,
    /// The attempt's span, when a subscriber wants it.
    trace: Option<Arc<CallTrace>>,
    path: &'static str,
    /// An intercepted call's observers: each response, the headers and the end
    /// pass them.
    observers: Option<Arc<Observers>>,
    /// This call's share of the server's MAX_CONCURRENT_STREAMS; released when the call
    /// ends (or is dropped).
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// What another attempt needs: present while the call may still be retried (its
    /// request went whole with the open, and it is not committed).
    replay: Option<Replay>,
    /// The method's retry policy, while the call may still use it.
    retrying: Option<Box<Retrying>>,
    /// The channel's retry throttle: every call's end counts (A6).
    throttle: Option<Arc<Throttle>>,
    /// The deadline's timer while a message is awaited (`message`, or `poll_next` of
    /// a `Stream`, which cannot hold a future): made once per call, on the first poll
    /// that waits, and only then.
    stream_timer: Timer,
}

/// A call's request, kept so that another attempt can send it: a stream the server
/// never processed is opened again on another connection (gRFC A6 transparent retry:
/// once, not counted against any retry policy), and a retry or hedging policy's
/// attempts each send it again.
#[derive(Clone)]
pub(super) struct Replay {
    channel: Channel,
    pub(super) path: &'static str,
    /// The call's request metadata (all of its options that the attempts use); none
    /// when it is empty, as for most calls: inline it would add 88 B to every call's
    /// future, and a unary call's would outgrow glibc's per-thread cache (1032 B).
    metadata: Option<Box<Metadata>>,
    /// After the service config.
    wait_for_ready: bool,
    encoding: Option<Encoding>,
    request: Kept,
    /// The whole request's length before compression (for a new attempt's stats).
    request_len: usize,
    /// Attempts made before the current one (`grpc-previous-rpc-attempts` of the
    /// current one).
    pub(super) previous_attempts: u32,
    /// The one transparent retry (A6: not counted against maxAttempts) is still there.
    transparent_left: bool,
}

impl Replay {
    /// A streamed request's replay buffer.
    pub(super) fn outbox(&self) -> Option<&Arc<Outbox>> {
        match &self.request {
            Kept::Streamed(outbox) => Some(outbox),
            Kept::Whole(_) => None,
        }
    }
}

/// What is kept of a call's request.
#[derive(Clone)]
enum Kept {
    /// The one message of a unary or server-streaming call, framed.
    Whole(Bytes),
    /// A client- or bidi-streaming call's messages so far (and whether it closed),
    /// shared with its sending half.
    Streamed(Arc<Outbox>),
}

/// A call under a retry policy (gRFC A6), while it is not committed. Boxed in the
/// receiving half: calls without a policy carry one empty pointer.
struct Retrying {
    policy: Arc<Policy>,
    /// Retries since the last pushback (the backoff's `n` starts over after one).
    since_pushback: u32,
    /// A whole request's share of the channel's replay budget, released at the
    /// commit; a streamed request's is in its `Outbox`.
    budget: Option<CallBudget>,
}

impl RecvHalf {
    /// Cancels the call: resets the stream (RST_STREAM CANCEL) and ends it locally with
    /// CANCELLED. A call that already ended keeps its status.
    pub(super) fn cancel(&mut self) {
        if !matches!(self.state, RecvState::Done(_)) {
            // finish() resets the stream for a CANCELLED end.
            let _ = self.finish(Err(Status::cancelled("call cancelled by the client")));
        }
    }

    /// Reports a decoded response to the stats handler and shows it to the
    /// observers; one that rejects it ends the call with its status (and resets the
    /// stream, as a cancel does).
    pub(super) fn received(&mut self, message: &mut dyn std::any::Any) -> Result<(), Status> {
        if let Some(trace) = &self.trace {
            trace.received();
        }
        if let Some(stats) = &self.stats {
            let payload = Payload {
                length: self.last_len,
                wire_length: self.last_wire_size + crate::codec::frame::HEADER_LEN,
                compressed: self.last_compressed,
            };
            stats.payload(self.path, false, payload);
        }
        let Some(observers) = &self.observers else {
            return Ok(());
        };
        if let Err(status) = observers.recv(message, self.last_wire_size) {
            if !matches!(self.state, RecvState::Done(_)) {
                self.conn.writer.reset(self.key, h2::Reason::CANCEL);
                self.permit = None;
                self.state = RecvState::Done(Err(status.clone()));
                let failed = Err(status.clone());
                observers.end(&failed, &mut self.trailers);
                if let Some(stats) = &self.stats {
                    stats.end(self.path, &failed);
                }
                if let Some(trace) = &self.trace {
                    trace.end(&failed);
                }
            }
            return Err(status);
        }
        Ok(())
    }

    fn finish(&mut self, result: Result<(), Status>) -> Result<(), Status> {
        if let (Some(throttle), Ok(())) = (&self.throttle, &result) {
            throttle.success();
        }
        self.commit();
        if let Some(observers) = &self.observers {
            observers.end(&result, &mut self.trailers);
        }
        if let Some(stats) = &self.stats {
            stats.end(self.path, &result);
        }
        if let Some(trace) = &self.trace {
            trace.end(&result);
        }
        if let Err(status) = &result {
            if status.code() == Code::DeadlineExceeded || status.code() == Code::Cancelled {
                self.conn.writer.reset(self.key, h2::Reason::CANCEL);
            }
        }
        self.state = RecvState::Done(result.clone());
        self.permit = None;
        result
    }

    /// Ends the call with `status` (the deadline's) unless it has ended already;
    /// returns how it ended.
    fn expire(&mut self, status: Status) -> Result<(), Status> {
        match &self.state {
            RecvState::Done(result) => result.clone(),
            _ => self.finish(Err(status)),
        }
    }

    /// Waits for the response headers; a Trailers-Only response ends the call here.
    pub(super) async fn headers(&mut self) -> Result<&Metadata, Status> {
        let deadline = self.deadline;
        if let Err(status) = until(deadline, poll_fn(|cx| self.poll_head(cx).map(Ok))).await {
            let _ = self.expire(status);
        }
        match &self.state {
            RecvState::Done(Err(status)) if self.headers.is_none() => Err(status.clone()),
            _ => Ok(self.headers.get_or_insert_with(Metadata::new)),
        }
    }

    /// Drives the call past its response headers: to Body, or to Done when the head
    /// ended it. No deadline here; the callers add it.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.state {
                RecvState::Head(fut) => {
                    let stream_id = u32::from(fut.stream_id());
                    match ready!(Pin::new(fut).poll(cx)) {
                        Err(e) => {
                            if self.refused(&e, stream_id) {
                                self.retry(Duration::ZERO, status_from_h2(&e), false);
                                continue;
                            }
                            let status = status_from_h2(&e);
                            if self.policy_retry(&status, None) {
                                continue;
                            }
                            let _ = self.finish(Err(status));
                        }
                        Ok(response) => self.head_received(response),
                    }
                }
                RecvState::Retry(fut) => {
                    let fut = fut.get_mut().unwrap_or_else(|e| e.into_inner());
                    match ready!(fut.as_mut().poll(cx)) {
                        Ok(started) => {
                            self.conn = started.conn;
                            self.key = started.key;
                            self.state = RecvState::Head(started.response);
                            self.permit = Some(started.permit);
                            self.stats = started.stats;
                        }
                        Err(status) => {
                            let _ = self.finish(Err(status));
                        }
                    }
                }
                RecvState::Hedging(hedge) => {
                    let hedge = hedge.get_mut().unwrap_or_else(|e| e.into_inner());
                    let outcome = ready!(hedge.poll(cx));
                    // Dropping the hedge cancels the attempts that lost.
                    self.state = RecvState::Done(Ok(()));
                    match outcome {
                        hedge::Outcome::Won(started, response) => {
                            self.conn = started.conn;
                            self.key = started.key;
                            self.permit = Some(started.permit);
                            self.stats = started.stats;
                            self.head_received(response);
                        }
                        hedge::Outcome::Failed(status) => {
                            let _ = self.finish(Err(status));
                        }
                    }
                }
                RecvState::Body(_) | RecvState::Done(_) => return Poll::Ready(()),
            }
        }
    }

    /// Head -> Body, or -> Done for a Trailers-Only response or a head that is not gRPC.
    fn head_received(&mut self, response: http::Response<h2::RecvStream>) {
        let (parts, body) = response.into_parts();
        // A Trailers-Only failure before the commit may be retried (A6): the response
        // headers, which commit the call, never came.
        if self.retrying.is_some() {
            if let Err(Err(status)) = check_head(&parts) {
                let trailers = Metadata::from_headers(&parts.headers);
                if self.policy_retry(&status, Some(&trailers)) {
                    return;
                }
            }
        }
        // Committed (A6): response headers arrived, or the call ends here.
        self.commit();
        let mut headers = Metadata::from_headers(&parts.headers);
        if let Some(observers) = &self.observers {
            observers.headers(&mut headers);
        }
        self.headers = Some(headers);
        match check_head(&parts) {
            Ok(encoding) => {
                if let (Some(stats), Some(headers)) = (&self.stats, &self.headers) {
                    let event = StatsEvent::InHeader {
                        metadata: headers,
                        compression: encoding,
                    };
                    stats.emit(self.path, &event);
                }
                self.state = RecvState::Body(MessageReader::new(body, self.max_recv, encoding));
            }
            Err(head_status) => {
                if parts.headers.contains_key(&GRPC_STATUS) {
                    self.trailers = Metadata::from_headers(&parts.headers);
                    self.trailers_arrived();
                }
                let _ = self.finish(head_status);
            }
        }
    }

    fn trailers_arrived(&self) {
        if let Some(stats) = &self.stats {
            let event = StatsEvent::InTrailer {
                metadata: &self.trailers,
            };
            stats.emit(self.path, &event);
        }
    }

    /// No more attempts (gRFC A6 "When Retries are Valid"): the policy and the kept
    /// request are dropped, a streamed request's buffer released.
    fn commit(&mut self) {
        self.retrying = None;
        if let Some(replay) = self.replay.take() {
            if let Kept::Streamed(outbox) = &replay.request {
                outbox.commit();
            }
        }
    }

    /// Whether the server never processed the stream: it was refused (RST_STREAM
    /// REFUSED_STREAM) or lies above the last stream id of the server's GOAWAY.
    fn refused(&self, e: &h2::Error, stream_id: u32) -> bool {
        self.replay.as_ref().is_some_and(|r| r.transparent_left)
            && (e.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (e.is_go_away() && e.is_remote() && self.conn.was_refused(stream_id)))
    }

    /// gRFC A6 after a failed attempt that did not commit the call: whether another
    /// attempt goes out (then the call is in Retry, waiting out its backoff). The
    /// status must be retryable; a failure counts against the throttle; the server's
    /// pushback can stop retries or set the wait; maxAttempts, the throttle and the
    /// replay budget bound them.
    fn policy_retry(&mut self, status: &Status, trailers: Option<&Metadata>) -> bool {
        let (Some(retrying), Some(replay)) = (self.retrying.as_deref_mut(), &self.replay) else {
            return false;
        };
        let Policy::Retry(policy) = &*retrying.policy else {
            return false;
        };
        let pushback =
            retry::policy::pushback(trailers.and_then(|t| t.get("grpc-retry-pushback-ms")));
        // A6 "Throttling Retry Attempts and Hedged RPCs": a failure counts when its code
        // is retryable or when the server's pushback says not to retry, whatever the code.
        let retryable = policy.retryable.contains(status.code());
        if !retryable && pushback != Pushback::Stop {
            return false;
        }
        if let Some(throttle) = &self.throttle {
            throttle.failure();
        }
        if !retryable {
            return false;
        }
        let committed = match (&replay.request, &retrying.budget) {
            (Kept::Streamed(outbox), _) => outbox.is_committed(),
            (Kept::Whole(_), Some(budget)) => budget.is_committed(),
            (Kept::Whole(_), None) => false,
        };
        let allowed = pushback != Pushback::Stop
            && replay.previous_attempts + 1 < policy.max_attempts
            && self.throttle.as_ref().is_none_or(|t| t.allows_retry())
            && !committed;
        if !allowed {
            return false;
        }
        let wait = match pushback {
            Pushback::After(wait) => {
                retrying.since_pushback = 0;
                wait
            }
            Pushback::None | Pushback::Stop => {
                retrying.since_pushback += 1;
                policy.backoff(retrying.since_pushback, super::backoff::random_unit())
            }
        };
        self.retry(wait, status.clone(), true);
        true
    }

    /// Head -> Retry: opens the call again, after `wait`, on the channel's live
    /// connection (a new one if this one is draining), as the next attempt (`counted`:
    /// a policy retry, with its own stats) or as the one transparent retry. `failed`
    /// is the status the call ends with if the request can no longer be replayed.
    /// Only called while `replay` is there.
    fn retry(&mut self, wait: Duration, failed: Status, counted: bool) {
        let Some(replay) = self.replay.as_mut() else {
            return;
        };
        if counted {
            replay.previous_attempts += 1;
        } else {
            replay.transparent_left = false;
        }
        let replay = replay.clone();
        // The failed attempt is done with: reset its stream (a streamed request's
        // sender may wait on its write quota; the reset closes it) and free its slot.
        self.conn.writer.reset(self.key, h2::Reason::CANCEL);
        self.permit = None;
        if let (true, Some(stats)) = (counted, &self.stats) {
            stats.end(self.path, &Err(failed.clone()));
        }
        let stats = self.stats.clone();
        let reopen = reattempt(replay, wait, self.deadline, stats, counted, failed);
        self.state = RecvState::Retry(Mutex::new(Box::pin(reopen)));
    }

    /// The next message, `None` once the call ended with OK.
    pub(super) async fn message(&mut self) -> Result<Option<Received>, Status> {
        if let RecvState::Done(result) = &self.state {
            return result.clone().map(|()| None);
        }
        poll_fn(|cx| self.poll_message_before_deadline(cx)).await
    }

    /// [`RecvHalf::message`] as a poll (for it and for a `Stream`): the deadline's
    /// timer is `stream_timer`.
    pub(super) fn poll_message_before_deadline(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Received>, Status>> {
        if let Poll::Ready(result) = self.poll_message(cx) {
            return Poll::Ready(result);
        }
        // As `poll_until`: the call first, then the timer.
        let status = ready!(poll_expired(self.deadline, &mut self.stream_timer, cx));
        Poll::Ready(self.expire(status).map(|()| None))
    }

    /// The next message without a deadline: the head first if it has not come, then
    /// the body; at its end the trailers, whose status ends the call.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Received>, Status>> {
        ready!(self.poll_head(cx));
        let reader = match &mut self.state {
            RecvState::Done(result) => return Poll::Ready(result.clone().map(|()| None)),
            RecvState::Head(_) | RecvState::Retry(_) | RecvState::Hedging(_) => {
                unreachable!("poll_head moved past")
            }
            RecvState::Body(reader) => reader,
        };
        // Every caller decodes a response at once (`Received::decode`).
        let status = match ready!(reader.poll_to_decode(cx)) {
            Ok(Some(payload)) => {
                self.last_compressed = reader.last_compressed();
                self.last_wire_size = reader.last_wire_size();
                self.last_len = payload.len();
                return Poll::Ready(Ok(Some(payload)));
            }
            Err(status) => Err(status),
            // The body ended (reading it again returns `None` at once, so a Pending
            // here resumes here).
            Ok(None) => match ready!(reader.poll_trailers(cx)) {
                Ok(Some(map)) => {
                    let result = Status::result_from_trailers(&map);
                    self.trailers = Metadata::from_received(map);
                    self.trailers_arrived();
                    result
                }
                Ok(None) => Err(Status::internal(
                    "server closed the stream without sending trailers",
                )),
                Err(status) => Err(status),
            },
        };
        Poll::Ready(self.finish(status).map(|()| None))
    }
}

impl Drop for RecvHalf {
    fn drop(&mut self) {
        // Cancelling a call = dropping it before its end: reset the stream so the server
        // learns of it (PROTOCOL-HTTP2.md: RST_STREAM CANCEL).
        if !matches!(self.state, RecvState::Done(_)) {
            self.conn.writer.reset(self.key, h2::Reason::CANCEL);
            self.commit();
            let dropped = Err(Status::cancelled("the caller dropped the call"));
            if let Some(observers) = &self.observers {
                observers.end(&dropped, &mut self.trailers);
            }
            if let Some(stats) = &self.stats {
                stats.end(self.path, &dropped);
            }
            if let Some(trace) = &self.trace {
                trace.end(&dropped);
            }
        }
    }
}

/// Checks the response headers (PROTOCOL-HTTP2.md, http-grpc-status-mapping.md).
/// `Ok(())` means messages follow; `Err` carries how the call ended.
pub(super) fn check_head(
    parts: &http::response::Parts,
) -> Result<Option<Encoding>, Result<(), Status>> {
    if parts.status != http::StatusCode::OK {
        let code = Code::from_http_status(parts.status.as_u16());
        if parts.headers.contains_key(&GRPC_STATUS) {
            return Err(Status::result_from_trailers(&parts.headers));
        }
        return Err(Err(Status::new(
            code,
            format!(
                "unexpected HTTP status code {} received from server",
                parts.status.as_u16()
            ),
        )));
    }
    if parts.headers.contains_key(&GRPC_STATUS) {
        return Err(Status::result_from_trailers(&parts.headers));
    }
    let content_type = parts.headers.get(&CONTENT_TYPE).map(HeaderValue::as_bytes);
    match content_type {
        Some(ct) if ct.starts_with(b"application/grpc") => {
            match parts.headers.get(&GRPC_ENCODING) {
                None => Ok(None),
                Some(value) => match Encoding::parse(value.as_bytes()) {
                    Some(encoding) => Ok(Some(encoding)),
                    None => Err(Err(Status::internal(format!(
                        "server sent unsupported grpc-encoding {:?}",
                        String::from_utf8_lossy(value.as_bytes())
                    )))),
                },
            }
        }
        other => Err(Err(Status::unknown(format!(
            "unexpected content-type {:?} in response",
            other.map(String::from_utf8_lossy)
        )))),
    }
}

/// A call ready to wait for its connection and stream permit (`Prepared::wait`, which
/// gives them as a `Ticket`), then to open its stream (`Prepared::open`). Kept small: a
/// waiting call holds this much plus its encoded message (the rest of the call is
/// boxed only once it can go out).
pub(super) struct Prepared<'a> {
    want: Want<'a>,
    /// The request metadata: what is left of the call's options once they are applied.
    metadata: Metadata,
    encoding: Option<Encoding>,
    max_send: usize,
    max_recv: usize,
    first: Option<Bytes>,
    /// The attempt's stats (begun here), and the request's encoded length for them.
    stats: BegunStats,
    first_len: usize,
    /// The attempt's span (made here), when a subscriber wants it.
    trace: Option<Arc<CallTrace>>,
    /// The method's retry policy (A6) from the service config.
    policy: Option<Arc<Policy>>,
}

/// A call's stats from their Begin until its stream opens: ended CANCELLED if the call
/// is dropped before that (a caller that gave up waiting, or a future dropped without
/// being polled), so that every Begin has its End.
struct BegunStats {
    stats: Option<Arc<CallStats>>,
    path: &'static str,
}

impl BegunStats {
    /// Ends them with `result` (a failure to start).
    fn end(&mut self, result: &Result<(), Status>) {
        if let Some(stats) = self.stats.take() {
            stats.end(self.path, result);
        }
    }

    /// The stream opened: the call's halves carry the stats on.
    fn take(mut self) -> Option<Arc<CallStats>> {
        self.stats.take()
    }
}

impl Drop for BegunStats {
    fn drop(&mut self) {
        if self.stats.is_some() {
            self.end(&Err(Status::cancelled(
                "the call was dropped before it started",
            )));
        }
    }
}

/// What an attempt waits for its stream with (`wait_for_stream`): kept together so
/// that the wait holds one reference to them, not a copy in every future it nests.
struct Want<'a> {
    channel: &'a Channel,
    /// The full method, for the LB policy's pick.
    path: &'static str,
    /// After the method config.
    wait_for_ready: bool,
    deadline: Option<Instant>,
}

/// A connection and one of its stream permits: what `Prepared::wait` gets.
pub(super) struct Ticket {
    conn: Arc<Conn>,
    permit: tokio::sync::OwnedSemaphorePermit,
}

impl<'a> Prepared<'a> {
    /// Encodes the call's only request message (`first`, when given). Not async, so
    /// that none of its arguments stay in the waiting call's future.
    pub(super) fn new<M: AnyMessage + ?Sized>(
        channel: &'a Channel,
        path: &'static str,
        kind: RpcKind,
        options: CallOptions,
        first: Option<&M>,
    ) -> Result<Prepared<'a>, Status> {
        let config = channel.config();
        let (method, settings) = call_settings(channel, path, &options);
        // A timeout too far to represent (10,000 years is valid protobuf) is none.
        let deadline = settings.timeout.and_then(|t| Instant::now().checked_add(t));
        let (max_send, max_recv) = (settings.max_send, settings.max_recv);
        let encoding = options
            .compression
            .or(config.compression)
            .filter(|e| *e != Encoding::Identity);
        let mut buf = BytesMut::new();
        let first_frame = match first {
            Some(message) => Some(message.encode_frame(&mut buf, max_send, encoding)?),
            None => None,
        };
        let stats = config
            .stats
            .as_ref()
            .map(|handler| Arc::new(CallStats::begin(handler, path, true, kind)));
        let first_len = match (&stats, first) {
            (Some(_), Some(message)) => message.encoded_len(),
            _ => 0,
        };
        let stats = BegunStats { stats, path };
        let first = first_frame;
        let trace = CallTrace::new(true, path, channel.authority()).map(Arc::new);
        let policy = method.and_then(|m| m.policy.clone());
        Ok(Prepared {
            want: Want {
                channel,
                path,
                wait_for_ready: settings.wait_for_ready,
                deadline,
            },
            metadata: options.metadata,
            encoding,
            max_send,
            max_recv,
            first,
            stats,
            first_len,
            trace,
            policy,
        })
    }

    /// Waits for a Ready connection and a stream permit on it, holding a share of
    /// the channel's budget for waiting calls meanwhile. The ticket is for `open`.
    pub(super) async fn wait(&mut self) -> Result<Ticket, Status> {
        let waiting = self.first.as_ref().map_or(0, Bytes::len);
        let _budget = match self.want.channel.hold_waiting(waiting) {
            Ok(budget) => budget,
            Err(status) => return Err(self.failed(status)),
        };
        let waited = wait_for_stream(&self.want).await;
        waited.map_err(|status| self.failed(status))
    }

    /// Ends the attempt's stats with a failure to start.
    fn failed(&mut self, status: Status) -> Status {
        self.stats.end(&Err(status.clone()));
        if let Some(trace) = &self.trace {
            trace.end(&Err(status.clone()));
        }
        status
    }
}

/// Waits for a Ready connection, then for one of its stream permits (the server's
/// MAX_CONCURRENT_STREAMS, `Conn::streams`), under one deadline.
async fn wait_for_stream(want: &Want<'_>) -> Result<Ticket, Status> {
    // One timer for both steps, and each step's future only while it runs.
    let mut timer = None;
    let conn = {
        let Want {
            channel,
            path,
            wait_for_ready,
            deadline,
        } = want;
        let mut changed = std::pin::pin!(channel.changed());
        poll_fn(|cx| {
            poll_until(*deadline, &mut timer, cx, |cx| {
                channel.poll_pick(path, *wait_for_ready, changed.as_mut(), cx)
            })
        })
        .await?
    };
    let permit = {
        let mut permit = std::pin::pin!(conn.streams.clone().acquire_owned());
        poll_fn(|cx| {
            poll_until(want.deadline, &mut timer, cx, |cx| {
                let closed = |_| Status::unavailable("connection closed");
                permit.as_mut().poll(cx).map_err(closed)
            })
        })
        .await?
    };
    Ok(Ticket { conn, permit })
}

impl<'a> Prepared<'a> {
    /// Opens the stream; the request is queued with it when the call has only one.
    /// `observers`: an intercepted call's.
    ///
    /// Not an `async fn`: its arguments would be kept twice in the future (as
    /// arguments and as the body's locals); the block uses them in place (`mut self`
    /// included: here it makes no second copy).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn's future keeps its arguments beside the body's copies of them"
    )]
    pub(super) fn open(
        mut self,
        ticket: Ticket,
        observers: Option<Arc<Observers>>,
    ) -> impl Future<Output = Result<(SendHalf, RecvHalf), Status>> + Send + 'a {
        async move {
            // Opened from `self`'s fields in place; taken apart only after, so that the
            // future does not hold a second copy of them while the open waits.
            let want = &self.want;
            let attempt = Attempt {
                first: self.first.clone(),
                previous_attempts: 0,
            };
            let started = start_on(
                want.channel,
                want.path,
                &self.metadata,
                self.encoding,
                want.deadline,
                attempt,
                ticket,
            )
            .await;
            let mut started = match started {
                Ok(started) => started,
                Err(status) => return Err(self.failed(status)),
            };
            let Prepared {
                want:
                    Want {
                        channel,
                        path,
                        wait_for_ready,
                        deadline,
                    },
                metadata,
                encoding,
                max_send,
                max_recv,
                first,
                stats,
                first_len,
                trace,
                policy,
            } = self;
            let closed = first.is_some();
            if let (Some(trace), Some(_)) = (&trace, &first) {
                trace.sent();
            }
            let stats = stats.take();
            if let Some(stats) = &stats {
                report_open(stats, path, &metadata, encoding, first.as_ref(), first_len);
            }
            let throttle = channel.throttle().cloned();
            // gRFC A6: a call is retried or hedged while what it sent fits the replay
            // budget. Calls without a policy take none of the branches below that build
            // anything.
            let mut retrying = None;
            let mut outbox = None;
            let mut hedging = None;
            let policy = policy.as_ref().map(|p| (p, &**p));
            // A streamed request's replay buffer, with this attempt as its first target.
            let streamed = |hedged| {
                let target = started.target(stats.clone())?;
                let budget = CallBudget::new(channel.retry_budget().clone());
                Some(Outbox::new(path, budget, target, hedged))
            };
            match (policy, &first) {
                (Some((policy, Policy::Retry(_))), Some(request)) => {
                    let mut budget = CallBudget::new(channel.retry_budget().clone());
                    if budget.keep(request.len()) {
                        retrying = Some(Box::new(Retrying {
                            policy: policy.clone(),
                            since_pushback: 0,
                            budget: Some(budget),
                        }));
                    }
                }
                (Some((policy, Policy::Retry(_))), None) => {
                    // A streamed request: every message is kept in the outbox.
                    outbox = streamed(false);
                    if outbox.is_some() {
                        retrying = Some(Box::new(Retrying {
                            policy: policy.clone(),
                            since_pushback: 0,
                            budget: None,
                        }));
                    }
                }
                (Some((_, Policy::Hedging(hedge))), Some(request)) => {
                    let mut budget = CallBudget::new(channel.retry_budget().clone());
                    if budget.keep(request.len()) {
                        hedging = Some((hedge.clone(), Some(budget)));
                    }
                }
                (Some((_, Policy::Hedging(hedge))), None) => {
                    // A streamed request: every message is kept in the outbox, and goes to
                    // every live attempt.
                    outbox = streamed(true);
                    if outbox.is_some() {
                        hedging = Some((hedge.clone(), None));
                    }
                }
                (None, _) => {}
            }
            let kept = match (first, &outbox) {
                (Some(request), _) => Some(Kept::Whole(request)),
                (None, Some(outbox)) => Some(Kept::Streamed(outbox.clone())),
                (None, None) => None,
            };
            let replay = kept.map(|request| Replay {
                channel: channel.clone(),
                path,
                metadata: (!metadata.is_empty()).then(|| Box::new(metadata)),
                wait_for_ready,
                encoding,
                request,
                request_len: first_len,
                previous_attempts: 0,
                transparent_left: true,
            });
            let send = SendHalf {
                conn: started.conn.clone(),
                key: started.key,
                quota: started.quota.take(),
                deadline,
                max_send,
                // A new buffer for the messages streamed after the first: what is left of
                // the first one's is shared with it and would keep it alive.
                buf: BytesMut::new(),
                closed,
                encoding,
                compress: true,
                observers: observers.clone(),
                stats: stats.clone(),
                trace: trace.clone(),
                path,
                outbox,
            };
            let key = started.key;
            let (conn, state, permit, stats, replay) = match (hedging, replay) {
                (Some((policy, budget)), Some(replay)) => {
                    // The attempts, this first one included, live in the hedge until one
                    // answers.
                    let conn = started.conn.clone();
                    let first = Started { stats, ..started };
                    // A streamed request's outbox is committed by the call (`commit`).
                    let kept = replay.outbox().is_some().then(|| replay.clone());
                    let hedge =
                        Hedge::new(policy, replay, deadline, first, throttle.clone(), budget);
                    let hedge = Box::new(hedge);
                    let driven = match kept {
                        None => hedge::Driven::Inline(hedge),
                        Some(_) => hedge::Driven::spawn(hedge),
                    };
                    let state = RecvState::Hedging(Mutex::new(driven));
                    (conn, state, None, None, kept)
                }
                (_, replay) => {
                    let state = RecvState::Head(started.response);
                    (started.conn, state, Some(started.permit), stats, replay)
                }
            };
            let recv = RecvHalf {
                conn,
                key,
                deadline,
                max_recv,
                state,
                headers: None,
                trailers: Metadata::new(),
                last_compressed: false,
                last_wire_size: 0,
                last_len: 0,
                stats,
                trace,
                path,
                observers,
                permit,
                replay,
                retrying,
                throttle,
                stream_timer: None,
            };
            Ok((send, recv))
        }
    }
}

/// A stream opened on a connection: one attempt of a call.
pub(super) struct Started {
    pub(super) conn: Arc<Conn>,
    pub(super) key: StreamKey,
    pub(super) response: h2::client::ResponseFuture,
    /// The stream's write quota; none when the request went whole with the open.
    quota: Option<Arc<Semaphore>>,
    permit: tokio::sync::OwnedSemaphorePermit,
    /// The attempt's stats, when the channel has a stats handler.
    pub(super) stats: Option<Arc<CallStats>>,
    /// Attempts before this one (`grpc-previous-rpc-attempts`).
    pub(super) attempt: u32,
}

impl Started {
    /// This attempt as a replay buffer's target; `None` when its request went whole
    /// with the open (no write quota: nothing more is sent on it).
    fn target(&self, stats: Option<Arc<CallStats>>) -> Option<Target> {
        Some(Target {
            conn: self.conn.clone(),
            key: self.key,
            quota: self.quota.clone()?,
            stats,
            attempt: self.attempt,
        })
    }
}

/// `grpc-previous-rpc-attempts` (gRFC A6).
const GRPC_PREVIOUS_RPC_ATTEMPTS: http::HeaderName =
    http::HeaderName::from_static("grpc-previous-rpc-attempts");

/// Waits for a stream (see [`wait_for_stream`]) and opens it: another attempt.
async fn start(
    channel: &Channel,
    path: &'static str,
    metadata: &Metadata,
    wait_for_ready: bool,
    encoding: Option<Encoding>,
    deadline: Option<Instant>,
    attempt: Attempt,
) -> Result<Started, Status> {
    let want = Want {
        channel,
        path,
        wait_for_ready,
        deadline,
    };
    let ticket = wait_for_stream(&want).await?;
    start_on(channel, path, metadata, encoding, deadline, attempt, ticket).await
}

/// What one attempt sends with its open: the whole request (for calls that have only
/// one) and how many attempts came before it.
struct Attempt {
    first: Option<Bytes>,
    previous_attempts: u32,
}

/// Builds the request head and opens the stream on the ticket's connection; `first` is
/// a whole request sent with the open.
///
/// Not an `async fn`, as `Prepared::open` is not: the block uses its arguments in place.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future keeps its arguments beside the body's copies of them"
)]
fn start_on<'c>(
    channel: &'c Channel,
    path: &'static str,
    metadata: &'c Metadata,
    encoding: Option<Encoding>,
    deadline: Option<Instant>,
    attempt: Attempt,
    ticket: Ticket,
) -> impl Future<Output = Result<Started, Status>> + Send + 'c {
    async move {
        // The permit is ours: h2 has room for the stream, so this is ready at once
        // unless the connection is going away. Polled in place, so the call's future
        // holds the h2 handle and nothing more while it waits.
        let mut sender = ticket.conn.send_request.clone();
        let mut timer = None;
        poll_fn(|cx| {
            poll_until(deadline, &mut timer, cx, |cx| {
                sender.poll_ready(cx).map_err(|e| status_from_h2(&e))
            })
        })
        .await?;
        let request = request_head(
            channel,
            path,
            metadata,
            encoding,
            deadline,
            attempt.previous_attempts,
        )?;
        let (response, send) = sender
            .send_request(request, false)
            .map_err(|e| status_from_h2(&e))?;
        drop(sender);
        let Ticket { conn, permit } = ticket;
        let key = conn.next_key();
        // A request sent whole with the open needs no quota: nothing else is written.
        let (then, quota) = match attempt.first {
            Some(data) => (Opened::Whole(data), None),
            None => {
                let quota = controlbuf::new_quota();
                (Opened::Streaming(quota.clone()), Some(quota))
            }
        };
        let open = Item::OpenClient { key, send, then };
        if let Some(open) = conn.writer.try_send(open)? {
            // The control buffer is full: wait for room. Boxed, so that the future of
            // every call does not reserve room for this rare wait and the item in it.
            Box::pin(until(deadline, conn.writer.send(open))).await?;
        }
        Ok(Started {
            conn,
            key,
            response,
            quota,
            permit,
            stats: None,
            attempt: attempt.previous_attempts,
        })
    }
}

/// An attempt's request head: the method's URI and the gRPC request headers.
fn request_head(
    channel: &Channel,
    path: &'static str,
    metadata: &Metadata,
    encoding: Option<Encoding>,
    deadline: Option<Instant>,
    previous_attempts: u32,
) -> Result<http::Request<()>, Status> {
    // From the parts: the path is `'static` (generated constants), so it is checked
    // but not copied, and the scheme and authority are already parsed.
    let path_and_query =
        http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from_static(path.as_bytes()))
            .map_err(|e| Status::internal(format!("bad method path {path:?}: {e}")))?;
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(channel.scheme());
    parts.authority = Some(channel.authority().clone());
    parts.path_and_query = Some(path_and_query);
    let uri = http::Uri::from_parts(parts)
        .map_err(|e| Status::internal(format!("bad method path {path:?}: {e}")))?;
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(uri)
        .body(())
        .map_err(|e| Status::internal(format!("building request: {e}")))?;
    *request.headers_mut() = channel.request_headers().clone();
    let headers = request.headers_mut();
    if let Some(encoding) = encoding {
        headers.insert(GRPC_ENCODING, HeaderValue::from_static(encoding.as_str()));
    }
    if let Some(deadline) = deadline {
        // What is left of the deadline now, after dialing: the server must not think
        // it has longer than the client will wait. Only ASCII digits and a unit
        // letter: always a valid header value.
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(value) = HeaderValue::try_from(timeout::format(left)) {
            headers.insert(GRPC_TIMEOUT, value);
        }
    }
    metadata.write_headers(headers);
    if previous_attempts > 0 {
        // A6 "Exposed Retry Metadata": absent on the first attempt, then 1, 2, ...
        headers.insert(
            GRPC_PREVIOUS_RPC_ATTEMPTS,
            HeaderValue::from(previous_attempts),
        );
    }
    Ok(request)
}

/// Another attempt of a call (a retry, a hedge, or its transparent retry): after
/// `wait`, on a fresh pick, sending the kept request again; a streamed request's
/// messages (and its close) are replayed onto the new stream. With `new_attempt` the
/// attempt has stats of its own, made from `stats` (Begin after the wait, OutHeader,
/// the request's OutPayload); otherwise it goes on with `stats`. `failed`: how the call
/// ends if a streamed request committed meanwhile and can no longer be replayed.
pub(super) async fn reattempt(
    replay: Replay,
    wait: Duration,
    deadline: Option<Instant>,
    stats: Option<Arc<CallStats>>,
    new_attempt: bool,
    failed: Status,
) -> Result<Started, Status> {
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let Replay {
        channel,
        path,
        metadata,
        wait_for_ready,
        encoding,
        request,
        request_len,
        previous_attempts,
        transparent_left: _,
    } = replay;
    let metadata = metadata.map(|m| *m).unwrap_or_default();
    let stats = match (new_attempt, stats) {
        (true, Some(stats)) => Some(Arc::new(stats.next_attempt(path, previous_attempts))),
        (_, stats) => stats,
    };
    let first = match &request {
        Kept::Whole(request) => Some(request.clone()),
        Kept::Streamed(_) => None,
    };
    let attempt = Attempt {
        first: first.clone(),
        previous_attempts,
    };
    let opened = start(
        &channel,
        path,
        &metadata,
        wait_for_ready,
        encoding,
        deadline,
        attempt,
    )
    .await;
    let ended = |status: Status| {
        if let (true, Some(stats)) = (new_attempt, &stats) {
            stats.end(path, &Err(status.clone()));
        }
        status
    };
    let mut started = opened.map_err(ended)?;
    // Until it is handed back, the attempt is reset if the call drops this future (a
    // streamed attempt's stream is held by the writer, so dropping it is not enough).
    let mut guard = Unfinished {
        conn: &started.conn,
        key: started.key,
        stats: stats.as_deref().filter(|_| new_attempt),
        path,
    };
    if let (true, Some(stats)) = (new_attempt, &stats) {
        report_open(
            stats,
            path,
            &metadata,
            encoding,
            first.as_ref(),
            request_len,
        );
    }
    if let (Kept::Streamed(outbox), Some(target)) = (&request, started.target(stats.clone())) {
        if !outbox.replay(target).await {
            guard.stats = None;
            return Err(ended(failed));
        }
    }
    guard.disarm();
    started.stats = stats;
    Ok(started)
}

/// An attempt's OutHeader, and the OutPayload of a request sent whole with the open
/// (`length` before compression).
fn report_open(
    stats: &CallStats,
    path: &'static str,
    metadata: &Metadata,
    encoding: Option<Encoding>,
    first: Option<&Bytes>,
    length: usize,
) {
    let event = StatsEvent::OutHeader {
        metadata,
        compression: encoding,
    };
    stats.emit(path, &event);
    if let Some(first) = first {
        let payload = Payload {
            length,
            wire_length: first.len(),
            compressed: first.first() == Some(&1),
        };
        stats.payload(path, true, payload);
    }
}

/// An attempt that was opened but not handed to the call: reset (RST_STREAM CANCEL)
/// when dropped, its stats ended CANCELLED.
struct Unfinished<'a> {
    conn: &'a Conn,
    key: StreamKey,
    stats: Option<&'a CallStats>,
    path: &'static str,
}

impl Unfinished<'_> {
    fn disarm(mut self) {
        self.stats = None;
        self.key = StreamKey::MAX;
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.key == StreamKey::MAX {
            return;
        }
        self.conn.writer.reset(self.key, h2::Reason::CANCEL);
        if let Some(stats) = self.stats {
            let cancelled = Err(Status::cancelled("the call ended before the attempt"));
            stats.end(self.path, &cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    /// A call waiting for its connection holds its state plus its message: the unary
    /// call's future (what a task per call reserves) stays within 512 B, the rest of
    /// the call is boxed once it can go out. It was 3.4 KiB with everything inline,
    /// then 1152 B, then 752 B; now the prepared call keeps only the request metadata
    /// of its options (240 B in all), the wait reads its arguments through one
    /// reference (`Want`) and polls the channel's pick in place, and the deadline's
    /// timer (a 112 B `Sleep`) is boxed, made only by a call that has to wait.
    #[test]
    fn a_waiting_call_is_small() {
        let channel = crate::Channel::lazy("127.0.0.1:1").unwrap();
        let call = channel.invoke::<(), ()>("/a/b", crate::Request::new(()));
        let size = std::mem::size_of_val(&call);
        assert!(size <= 512, "a unary call's future is {size} bytes");
        let call = channel.server_streaming::<(), ()>("/a/b", crate::Request::new(()));
        let size = std::mem::size_of_val(&call);
        assert!(
            size <= 512,
            "a server-streaming call's future is {size} bytes"
        );
    }
}
