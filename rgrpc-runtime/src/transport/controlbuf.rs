//! The control buffer and its writer: per connection, one bounded queue of closed-enum
//! items drained by one task that turns them into h2 calls (grpc-go's controlBuf +
//! loopyWriter).
//!
//! Bounds, and why:
//! - The queue holds at most [`CONTROL_QUEUE_ITEMS`] items; a producer waits for room
//!   (its deadline still fires), so a client that issues calls faster than they complete
//!   cannot grow it (grpc-go's controlBuf is unbounded there).
//! - Each stream has a write quota of [`STREAM_WRITE_QUOTA`] (grpc-go's writeQuota); a
//!   message holds at most half of it until h2 has taken its bytes, so a stream has at
//!   most max(64 KiB, two messages) of DATA queued here or in h2, and a sender that
//!   outruns its receiver waits on the quota.
//! - The writer hands h2 only as many bytes as the stream's flow-control window allows
//!   (reserve_capacity / poll_capacity): h2's `send_data` would otherwise buffer without
//!   limit (h2 src/share.rs; hyper's PipeToSendStream does the same).
//!
//! Streams with data are served round-robin, one chunk each per pass, so one large
//! stream cannot starve the others. The writer runs inside the task that owns the h2
//! connection, beside it, so everything queued since the last wake-up goes out with
//! one flush (`coalesce`); after [`BATCH_ITEMS`] items it asks to be polled again, so
//! one producer burst cannot hold the connection task in one loop. (grpc-go's loopy writer also yields once on a small batch; measured
//! here it only added a scheduler pass: c=1 unary p50 78 -> 119 us, and no gain at
//! 400 streams, so we do not.)

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::Reason;
use h2::server::SendResponse;
use tokio::sync::{Semaphore, oneshot};

use crate::status::Status;
use crate::transport::queue;

/// Items queued at once per connection. 1024 items cover several hundred concurrent
/// streams each with a header, a message and trailers in flight.
pub(crate) const CONTROL_QUEUE_ITEMS: usize = 1024;
/// Bytes of DATA one stream may have queued but not yet taken by h2 (grpc-go: 64 KiB).
pub(crate) const STREAM_WRITE_QUOTA: usize = 64 * 1024;
/// Items the writer takes per wake-up before yielding to let h2 flush.
const BATCH_ITEMS: usize = 256;
/// Largest piece of one stream's data handed to h2 per round-robin turn.
const MAX_CHUNK: usize = 64 * 1024;

/// Identifies a stream within one connection's writer.
pub(crate) type StreamKey = u64;

/// One instruction for the writer.
pub(crate) enum Item {
    /// Put by the client when it has opened a stream with `send_request`; the writer
    /// takes the stream's send half. Not counted against the write quota.
    OpenClient {
        key: StreamKey,
        send: h2::SendStream<Bytes>,
        then: Opened,
    },
    /// Put by the server's stream task: the whole response of a unary call (headers,
    /// the one message, trailers) in one item, so a unary reply costs one queue slot,
    /// and the writer hands it all to h2 at once. Not counted against the quota; bounded
    /// by the message size limit and the queue's item count. Boxed, like the header
    /// maps below, so an item is small (the queue's memory is items x their size).
    Unary(Box<UnaryReply>),
    /// Put by the server's stream task: the response headers. With `end_of_stream` this is
    /// a Trailers-Only response and nothing more follows. `on_reset` fires if the client
    /// resets the stream while the writer holds it idle, so the stream task can drop the
    /// handler at once. Not counted against the quota.
    Respond {
        key: StreamKey,
        respond: SendResponse<Bytes>,
        head: Box<http::Response<()>>,
        end_of_stream: bool,
        on_reset: Option<oneshot::Sender<()>>,
        /// The stream's write quota when messages follow (not `end_of_stream`).
        quota: Option<Arc<Semaphore>>,
    },
    /// A framed message (never empty: at least its 5-byte prefix). Holds `permits` of
    /// the stream's write quota, returned when h2 has taken the bytes. The stream's end
    /// is a separate item (`Trailers` on the server, `CloseSend` on the client).
    Data {
        key: StreamKey,
        data: Bytes,
        permits: u32,
    },
    /// Server trailers (status); ends the stream.
    Trailers {
        key: StreamKey,
        trailers: Box<http::HeaderMap>,
    },
    /// Client close-send: an empty DATA frame with END_STREAM.
    CloseSend { key: StreamKey },
    /// Abort the stream with RST_STREAM; jumps ahead of the stream's queued data.
    Reset { key: StreamKey, reason: Reason },
}

/// What follows a client stream's open (see [`Item::OpenClient`]).
pub(crate) enum Opened {
    /// The call's only request message (unary, server-streaming), sent with
    /// END_STREAM in the same item: one item per request instead of two. Bounded by
    /// the message size limit and the queue's item count.
    Whole(Bytes),
    /// Messages follow as `Item::Data`, metered by this write quota.
    Streaming(Arc<Semaphore>),
}

/// The whole response of a unary call (see [`Item::Unary`]).
pub(crate) struct UnaryReply {
    pub respond: SendResponse<Bytes>,
    pub head: http::Response<()>,
    pub data: Bytes,
    pub trailers: http::HeaderMap,
}

/// A producer's handle on a connection's writer.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: queue::Sender<Item>,
}

impl Writer {
    /// A writer for one connection: the handle producers clone, and the drain the
    /// connection's own task polls (`WriterTask::poll_write`) beside the h2 connection
    /// (see `server::conn` and `client::channel`), so a reply goes stream task ->
    /// connection task -> socket, with no third task in between.
    pub(crate) fn new() -> (Writer, WriterTask) {
        let (tx, rx) = queue::channel(CONTROL_QUEUE_ITEMS);
        let task = WriterTask {
            rx,
            streams: HashMap::new(),
            order: VecDeque::new(),
        };
        (Writer { tx }, task)
    }

    /// Queues `item`, waiting for room.
    pub(crate) async fn send(&self, item: Item) -> Result<(), Status> {
        self.tx
            .send(item)
            .await
            .map_err(|_| Status::unavailable("connection closed"))
    }

    /// Queues a reset without waiting (for `Drop`); when the queue is full the reset is
    /// sent from a task so it is not lost.
    pub(crate) fn reset(&self, key: StreamKey, reason: Reason) {
        match self.tx.try_send(Item::Reset { key, reason }) {
            Ok(()) | Err(queue::TrySendError::Closed(_)) => {}
            Err(queue::TrySendError::Full(item)) => {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    let tx = self.tx.clone();
                    handle.spawn(async move {
                        let _ = tx.send(item).await;
                    });
                }
            }
        }
    }

    /// Waits for `len` bytes of a stream's write quota (at most half of it, so a message
    /// larger than the quota still goes through, at most two such at a time).
    pub(crate) async fn acquire(quota: &Semaphore, len: usize) -> Result<u32, Status> {
        // Half the quota at most: two large messages can be queued, so the sender
        // encodes the next while the writer feeds h2 the last.
        let permits = len.min(STREAM_WRITE_QUOTA / 2) as u32;
        match quota.acquire_many(permits).await {
            Ok(p) => {
                p.forget();
                Ok(permits)
            }
            Err(_) => Err(Status::cancelled(
                "stream closed before the message could be sent",
            )),
        }
    }
}

/// A fresh write quota for one stream.
pub(crate) fn new_quota() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(STREAM_WRITE_QUOTA))
}

enum Pending {
    Data { data: Bytes, permits: u32 },
    Trailers(http::HeaderMap),
    End,
}

struct Out {
    send: h2::SendStream<Bytes>,
    queue: VecDeque<Pending>,
    quota: Arc<Semaphore>,
    /// Server streams: told when the client resets the stream (see `poll_resets`).
    on_reset: Option<oneshot::Sender<()>>,
}

/// Drains one connection's control buffer into h2, polled (`poll_write`) by the task
/// that owns the connection; it reports `Written::Closed` once every `Writer` handle
/// is gone and nothing is left to write.
pub(crate) struct WriterTask {
    rx: queue::Receiver<Item>,
    streams: HashMap<StreamKey, Out>,
    /// Streams with queued work, in round-robin order; each key at most once.
    order: VecDeque<StreamKey>,
}

/// What one turn of a stream achieved.
enum Turn {
    /// Handed something to h2; the stream may have more.
    Progress,
    /// Waiting for flow-control capacity (the waker is registered) or nothing queued.
    Idle,
    /// The stream is finished or failed: forget it.
    Done,
}

impl WriterTask {
    /// Starts tracking a stream whose send half h2 has handed us.
    fn open(
        &mut self,
        key: StreamKey,
        send: h2::SendStream<Bytes>,
        quota: Arc<Semaphore>,
        on_reset: Option<oneshot::Sender<()>>,
    ) {
        let queue = VecDeque::new();
        self.streams.insert(
            key,
            Out {
                send,
                queue,
                quota,
                on_reset,
            },
        );
    }

    fn accept(&mut self, item: Item) {
        match item {
            Item::OpenClient {
                key,
                mut send,
                then,
            } => match then {
                // The whole request in one go: h2 sends it as the window allows. It
                // holds no quota and is bounded by the message size limit; waiting for
                // capacity instead would cost a second write, since h2 grants none to a
                // stream until its HEADERS are out. Nothing else is ever written to the
                // stream, so the writer does not track it (a cancel is the RST_STREAM h2
                // sends when the call drops its response half).
                Opened::Whole(data) => {
                    let _ = send.send_data(data, true);
                }
                Opened::Streaming(quota) => self.open(key, send, quota, None),
            },
            Item::Unary(reply) => {
                let UnaryReply {
                    mut respond,
                    head,
                    data,
                    trailers,
                } = *reply;
                // Headers, message and trailers handed to h2 at once, untracked, for
                // the same reasons as a client's whole request above.
                if let Ok(mut send) = respond.send_response(head, false) {
                    if send.send_data(data, false).is_ok() {
                        let _ = send.send_trailers(trailers);
                    }
                }
            }
            Item::Respond {
                key,
                mut respond,
                head,
                end_of_stream,
                on_reset,
                quota,
            } => match (respond.send_response(*head, end_of_stream), quota) {
                (Ok(send), Some(quota)) if !end_of_stream => self.open(key, send, quota, on_reset),
                (Err(_), Some(quota)) => quota.close(),
                _ => {}
            },
            Item::Data { key, data, permits } => {
                self.enqueue(key, Pending::Data { data, permits });
            }
            Item::Trailers { key, trailers } => self.enqueue(key, Pending::Trailers(*trailers)),
            Item::CloseSend { key } => self.enqueue(key, Pending::End),
            Item::Reset { key, reason } => {
                if let Some(mut out) = self.streams.remove(&key) {
                    out.send.send_reset(reason);
                    out.quota.close();
                }
            }
        }
    }

    fn enqueue(&mut self, key: StreamKey, pending: Pending) {
        // A stream that is gone (reset, failed) drops what is still sent to it.
        if let Some(out) = self.streams.get_mut(&key) {
            if out.queue.is_empty() {
                self.order.push_back(key);
            }
            out.queue.push_back(pending);
        }
    }

    /// Gives one stream one turn.
    fn turn(out: &mut Out, cx: &mut Context<'_>) -> Turn {
        let Some(front) = out.queue.front_mut() else {
            return Turn::Idle;
        };
        match front {
            Pending::Data { data, permits } => {
                out.send.reserve_capacity(data.len());
                let mut capacity = out.send.capacity();
                if capacity == 0 {
                    match out.send.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(n))) => capacity = n,
                        Poll::Ready(Some(Err(_)) | None) => return Turn::Done,
                        Poll::Pending => return Turn::Idle,
                    }
                    if capacity == 0 {
                        return Turn::Idle;
                    }
                }
                let n = capacity.min(data.len()).min(MAX_CHUNK);
                let chunk = data.split_to(n);
                if out.send.send_data(chunk, false).is_err() {
                    return Turn::Done;
                }
                if data.is_empty() {
                    out.quota.add_permits(*permits as usize);
                    out.queue.pop_front();
                }
                Turn::Progress
            }
            Pending::Trailers(_) => {
                let Some(Pending::Trailers(trailers)) = out.queue.pop_front() else {
                    unreachable!("front was Trailers")
                };
                let _ = out.send.send_trailers(trailers);
                Turn::Done
            }
            Pending::End => {
                let _ = out.send.send_data(Bytes::new(), true);
                Turn::Done
            }
        }
    }

    /// Server streams held idle (headers sent, nothing queued) learn of a client reset
    /// only here: h2 reports it through `poll_reset`, and the stream task is told so it
    /// drops the handler (issue: a streaming handler that is not sending or receiving
    /// would otherwise run on). Streams with queued data see the reset as a failed
    /// `poll_capacity`/`send_data` in `turn`. The server's connection driver calls this
    /// once per wake-up (not per writer round): one poll per idle server stream, and
    /// `poll_reset` keeps the waker. Unary replies are never tracked here.
    pub(crate) fn poll_resets(&mut self, cx: &mut Context<'_>) {
        self.streams.retain(|_, out| {
            if out.on_reset.is_none() || !out.queue.is_empty() {
                return true;
            }
            if out.send.poll_reset(cx).is_pending() {
                return true;
            }
            out.quota.close();
            if let Some(tx) = out.on_reset.take() {
                let _ = tx.send(());
            }
            false
        });
    }

    /// Round-robins the streams with queued work until none can progress; true if any
    /// did.
    fn drain(&mut self, cx: &mut Context<'_>) -> bool {
        let mut any = false;
        loop {
            let mut progressed = false;
            for _ in 0..self.order.len() {
                let Some(key) = self.order.pop_front() else {
                    break;
                };
                let Some(out) = self.streams.get_mut(&key) else {
                    continue;
                };
                match Self::turn(out, cx) {
                    turn @ (Turn::Progress | Turn::Idle) => {
                        progressed |= matches!(turn, Turn::Progress);
                        if !out.queue.is_empty() {
                            self.order.push_back(key);
                        }
                    }
                    Turn::Done => {
                        progressed = true;
                        if let Some(out) = self.streams.remove(&key) {
                            out.quota.close();
                        }
                    }
                }
            }
            if !progressed {
                return any;
            }
            any = true;
        }
    }
}

/// What one poll of the writer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Handed h2 nothing new; the waker is registered for more.
    Nothing,
    /// Handed h2 frames or resets: poll the h2 connection so it writes them out.
    Frames,
    /// Every `Writer` handle is gone and nothing is left to write.
    Closed,
}

impl WriterTask {
    /// Takes up to [`BATCH_ITEMS`] queued items and hands h2 what the streams' windows
    /// allow.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Written {
        let mut taken = 0;
        let mut closed = false;
        while taken < BATCH_ITEMS {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(item)) => {
                    self.accept(item);
                    taken += 1;
                }
                Poll::Ready(None) => {
                    closed = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        let drained = self.drain(cx);
        if closed && self.order.is_empty() {
            return Written::Closed;
        }
        if taken == BATCH_ITEMS {
            // More items are waiting: come back for them after h2 has had its turn.
            cx.waker().wake_by_ref();
        }
        if taken > 0 || drained {
            Written::Frames
        } else {
            Written::Nothing
        }
    }
}
