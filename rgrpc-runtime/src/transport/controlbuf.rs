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
//! 400 streams, so the writer does not. The client's driver, whose callers run in tasks
//! of their own, yields after a write while other calls are in flight:
//! `transport::client`, `Driver::let_callers_queue`.)
//!
//! The writer reaches h2 only through the port traits of `h2port` (the calls it makes
//! on a send stream and a response handle). Every type here takes a [`Port`] parameter
//! that defaults to [`H2`], so the rest of the crate writes `Item`, `Writer`,
//! `WriterTask` and gets h2's types, statically dispatched; the tests at the bottom put
//! a fake port under the writer that records each call and whose windows and resets
//! they control, as grpc-go's `controlbuf_test.go` does for its loopy writer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::Reason;
use tokio::sync::{Semaphore, oneshot};

use crate::status::Status;
use crate::transport::h2port::{H2, Port, RespondPort, SendPort};
use crate::transport::key_hash::KeyHash;
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

/// One instruction for the writer, over the send types of port `P` (h2's by default).
pub(crate) enum Item<P: Port = H2> {
    /// Put by the client when it has opened a stream with `send_request`; the writer
    /// takes the stream's send half. Not counted against the write quota.
    OpenClient {
        key: StreamKey,
        send: P::Send,
        then: Opened,
    },
    /// Put by the server's stream task: the whole response of a unary call (headers,
    /// the one message, trailers) in one item, so a unary reply costs one queue slot,
    /// and the writer hands it all to h2 at once. Not counted against the quota; bounded
    /// by the message size limit and the queue's item count. Boxed, like the header
    /// maps below, so an item is small (the queue's memory is items x their size).
    Unary(Box<UnaryReply<P>>),
    /// Put by the server's stream task: the response headers. With `end_of_stream` this is
    /// a Trailers-Only response and nothing more follows. `on_reset` fires if the client
    /// resets the stream while the writer holds it idle, so the stream task can drop the
    /// handler at once. Not counted against the quota.
    Respond {
        key: StreamKey,
        respond: P::Respond,
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

/// What follows a client stream's open (see [`Item::OpenClient`]). Holds no send type,
/// so it needs no port parameter.
pub(crate) enum Opened {
    /// The call's only request message (unary, server-streaming), sent with
    /// END_STREAM in the same item: one item per request instead of two. Bounded by
    /// the message size limit and the queue's item count.
    Whole(Bytes),
    /// Messages follow as `Item::Data`, metered by this write quota.
    Streaming(Arc<Semaphore>),
}

/// The whole response of a unary call (see [`Item::Unary`]), over port `P`.
pub(crate) struct UnaryReply<P: Port = H2> {
    pub respond: P::Respond,
    pub head: http::Response<()>,
    pub data: Bytes,
    pub trailers: http::HeaderMap,
}

impl<P: Port> UnaryReply<P> {
    /// Hands headers, message and trailers to h2 at once, untracked, for the same
    /// reasons as a client's whole request (`Opened::Whole`): nothing else is written
    /// to the stream, and a reset client is h2's to handle. The writer does this with
    /// an `Item::Unary`; a reply made inside the connection's task does it at once
    /// (`server::stream`, `Sender::unary_step`), where the item would only wait for
    /// the writer a few instructions later in the same wake-up.
    pub(crate) fn hand_to_h2(self) {
        let UnaryReply {
            mut respond,
            head,
            data,
            trailers,
        } = self;
        if let Ok(mut send) = respond.send_response(head, false) {
            if send.send_data(data, false).is_ok() {
                let _ = send.send_trailers(trailers);
            }
        }
    }
}

/// A producer's handle on a connection's writer (port `P`, h2's by default).
pub(crate) struct Writer<P: Port = H2> {
    tx: queue::Sender<Item<P>>,
}

// By hand: a derive would ask `P: Clone`, and `H2` is never built.
impl<P: Port> Clone for Writer<P> {
    fn clone(&self) -> Writer<P> {
        Writer {
            tx: self.tx.clone(),
        }
    }
}

impl<P: Port> Writer<P> {
    /// A writer for one connection: the handle producers clone, and the drain the
    /// connection's own task polls (`WriterTask::poll_write`) beside the h2 connection
    /// (see `server::conn` and `client::channel`), so a reply goes stream task ->
    /// connection task -> socket, with no third task in between.
    pub(crate) fn new() -> (Writer<P>, WriterTask<P>) {
        let (tx, rx) = queue::channel(CONTROL_QUEUE_ITEMS);
        let task = WriterTask {
            rx,
            streams: HashMap::default(),
            order: VecDeque::new(),
        };
        (Writer { tx }, task)
    }

    /// Queues `item`, waiting for room.
    pub(crate) async fn send(&self, item: Item<P>) -> Result<(), Status> {
        self.tx
            .send(item)
            .await
            .map_err(|_| Status::unavailable("connection closed"))
    }

    /// Queues `item` if there is room now; gives it back while the queue is full (the
    /// caller then waits with `send`, off its fast path).
    pub(crate) fn try_send(&self, item: Item<P>) -> Result<Option<Item<P>>, Status> {
        match self.tx.try_send(item) {
            Ok(()) => Ok(None),
            Err(queue::TrySendError::Full(item)) => Ok(Some(item)),
            Err(queue::TrySendError::Closed(_)) => Err(Status::unavailable("connection closed")),
        }
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
}

// Not generic (the default port), so callers write `Writer::acquire` with nothing to
// infer: the quota is the same whatever the port.
impl Writer {
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

/// One tracked stream: its send half, what is queued for it, and its quota.
struct Out<P: Port> {
    send: P::Send,
    queue: VecDeque<Pending>,
    quota: Arc<Semaphore>,
    /// Server streams: told when the client resets the stream (see `poll_resets`).
    on_reset: Option<oneshot::Sender<()>>,
}

/// Drains one connection's control buffer into h2, polled (`poll_write`) by the task
/// that owns the connection; it reports `Written::Closed` once every `Writer` handle
/// is gone and nothing is left to write.
pub(crate) struct WriterTask<P: Port = H2> {
    rx: queue::Receiver<Item<P>>,
    /// Keyed by our own counter: a multiply for a hash (`key_hash`), not SipHash.
    streams: HashMap<StreamKey, Out<P>, KeyHash>,
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

impl<P: Port> WriterTask<P> {
    /// Starts tracking a stream whose send half h2 has handed us.
    fn open(
        &mut self,
        key: StreamKey,
        send: P::Send,
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

    fn accept(&mut self, item: Item<P>) {
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
                reply.hand_to_h2();
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
    fn turn(out: &mut Out<P>, cx: &mut Context<'_>) -> Turn {
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

impl<P: Port> WriterTask<P> {
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

#[cfg(test)]
mod tests {
    //! The writer against a fake port (grpc-go: `controlbuf_test.go`): the fake records
    //! every call, and the test sets each stream's window, the connection's window and
    //! the peer's resets, then polls `poll_write` by hand.

    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use std::time::Duration;

    /// One call the writer made on a fake stream or response handle.
    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        /// `send_response`.
        Headers { status: u16, end_of_stream: bool },
        /// `send_data`.
        Data { data: Bytes, end_of_stream: bool },
        /// `send_trailers`.
        Trailers(http::HeaderMap),
        /// `send_reset`.
        Reset(Reason),
    }

    /// One fake stream's flow control and peer state.
    #[derive(Default)]
    struct StreamState {
        /// The stream's send window: what the test granted minus what was sent.
        window: usize,
        /// The capacity the writer last asked for (`reserve_capacity`).
        reserved: usize,
        /// Left by a pending `poll_capacity`; woken by a grant or a peer reset.
        capacity_waker: Option<Waker>,
        /// How often the writer called `poll_capacity`.
        capacity_polls: usize,
        /// Set by the test: the peer reset the stream.
        peer_reset: Option<Reason>,
        /// Left by a pending `poll_reset`; woken by a peer reset.
        reset_waker: Option<Waker>,
        /// How often the writer called `poll_reset`.
        reset_polls: usize,
    }

    /// Everything the fake peer knows, shared by the test and the fake handles.
    struct World {
        /// Each fake stream by id.
        streams: HashMap<u64, StreamState>,
        /// The connection's send window, shared by every stream.
        conn_window: usize,
        /// Every call, in the order the writer made them: (stream id, call).
        log: Vec<(u64, Call)>,
        /// DATA bytes handed over beyond the capacity the fake had assigned.
        beyond_window: usize,
    }

    impl World {
        /// What h2 would assign stream `id`: its reservation, within both windows.
        fn capacity(&self, id: u64) -> usize {
            let s = &self.streams[&id];
            s.reserved.min(s.window).min(self.conn_window)
        }
    }

    /// The test's handle on the fake peer.
    #[derive(Clone)]
    struct Peer(Arc<Mutex<World>>);

    impl Peer {
        /// No streams; an unlimited connection window.
        fn new() -> Peer {
            Peer(Arc::new(Mutex::new(World {
                streams: HashMap::new(),
                conn_window: usize::MAX,
                log: Vec::new(),
                beyond_window: 0,
            })))
        }

        /// The shared state, locked.
        fn world(&self) -> std::sync::MutexGuard<'_, World> {
            self.0.lock().unwrap()
        }

        /// A client stream's send half with a send window of `window`.
        fn stream(&self, id: u64, window: usize) -> FakeStream {
            let state = StreamState {
                window,
                ..StreamState::default()
            };
            self.world().streams.insert(id, state);
            FakeStream {
                peer: self.clone(),
                id,
            }
        }

        /// A server stream's response handle; its send half gets a window of `window`.
        fn respond(&self, id: u64, window: usize) -> FakeRespond {
            let _ = self.stream(id, window);
            FakeRespond {
                peer: self.clone(),
                id,
            }
        }

        /// WINDOW_UPDATE on stream `id`: wakes a writer waiting for capacity.
        fn grant(&self, id: u64, n: usize) {
            let waker = {
                let mut world = self.world();
                let s = world.streams.get_mut(&id).unwrap();
                s.window += n;
                s.capacity_waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }

        /// WINDOW_UPDATE on the connection: wakes every stream waiting for capacity.
        fn grant_conn(&self, n: usize) {
            let wakers: Vec<Waker> = {
                let mut world = self.world();
                world.conn_window += n;
                let streams = world.streams.values_mut();
                streams.filter_map(|s| s.capacity_waker.take()).collect()
            };
            wakers.into_iter().for_each(Waker::wake);
        }

        /// The peer sends RST_STREAM on stream `id`.
        fn reset_by_peer(&self, id: u64, reason: Reason) {
            let wakers = {
                let mut world = self.world();
                let s = world.streams.get_mut(&id).unwrap();
                s.peer_reset = Some(reason);
                [s.capacity_waker.take(), s.reset_waker.take()]
            };
            wakers.into_iter().flatten().for_each(Waker::wake);
        }

        /// Every call made on stream `id`, in order.
        fn calls(&self, id: u64) -> Vec<Call> {
            let world = self.world();
            let calls = world.log.iter().filter(|(i, _)| *i == id);
            calls.map(|(_, c)| c.clone()).collect()
        }

        /// The DATA bytes handed over on stream `id`, concatenated.
        fn sent(&self, id: u64) -> Vec<u8> {
            let mut bytes = Vec::new();
            for call in self.calls(id) {
                if let Call::Data { data, .. } = call {
                    bytes.extend_from_slice(&data);
                }
            }
            bytes
        }

        /// The stream of each DATA call, in the order the writer made them.
        fn data_order(&self) -> Vec<u64> {
            let world = self.world();
            let data = world
                .log
                .iter()
                .filter(|(_, c)| matches!(c, Call::Data { .. }));
            data.map(|(id, _)| *id).collect()
        }

        /// Reads stream `id`'s fake state.
        fn stream_state<T>(&self, id: u64, f: impl FnOnce(&StreamState) -> T) -> T {
            f(&self.world().streams[&id])
        }
    }

    /// A fake `h2::SendStream`.
    struct FakeStream {
        peer: Peer,
        id: u64,
    }

    impl FakeStream {
        /// Records `call` on this stream.
        fn log(&self, call: Call) {
            self.peer.world().log.push((self.id, call));
        }
    }

    impl SendPort for FakeStream {
        fn reserve_capacity(&mut self, capacity: usize) {
            let mut world = self.peer.world();
            world.streams.get_mut(&self.id).unwrap().reserved = capacity;
        }

        fn capacity(&self) -> usize {
            self.peer.world().capacity(self.id)
        }

        fn poll_capacity(
            &mut self,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<usize, h2::Error>>> {
            let mut world = self.peer.world();
            let capacity = world.capacity(self.id);
            let s = world.streams.get_mut(&self.id).unwrap();
            s.capacity_polls += 1;
            if let Some(reason) = s.peer_reset {
                return Poll::Ready(Some(Err(h2::Error::from(reason))));
            }
            if capacity > 0 {
                return Poll::Ready(Some(Ok(capacity)));
            }
            s.capacity_waker = Some(cx.waker().clone());
            Poll::Pending
        }

        fn send_data(&mut self, data: Bytes, end_of_stream: bool) -> Result<(), h2::Error> {
            {
                let mut world = self.peer.world();
                if let Some(reason) = world.streams[&self.id].peer_reset {
                    return Err(h2::Error::from(reason));
                }
                let capacity = world.capacity(self.id);
                world.beyond_window += data.len().saturating_sub(capacity);
                world.conn_window = world.conn_window.saturating_sub(data.len());
                let s = world.streams.get_mut(&self.id).unwrap();
                s.window = s.window.saturating_sub(data.len());
                s.reserved = s.reserved.saturating_sub(data.len());
            }
            self.log(Call::Data {
                data,
                end_of_stream,
            });
            Ok(())
        }

        fn send_trailers(&mut self, trailers: http::HeaderMap) -> Result<(), h2::Error> {
            self.log(Call::Trailers(trailers));
            Ok(())
        }

        fn send_reset(&mut self, reason: Reason) {
            self.log(Call::Reset(reason));
        }

        fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reason, h2::Error>> {
            let mut world = self.peer.world();
            let s = world.streams.get_mut(&self.id).unwrap();
            s.reset_polls += 1;
            match s.peer_reset {
                Some(reason) => Poll::Ready(Ok(reason)),
                None => {
                    s.reset_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    /// A fake `h2::server::SendResponse`.
    struct FakeRespond {
        peer: Peer,
        id: u64,
    }

    impl RespondPort for FakeRespond {
        type Send = FakeStream;

        fn send_response(
            &mut self,
            response: http::Response<()>,
            end_of_stream: bool,
        ) -> Result<FakeStream, h2::Error> {
            let headers = Call::Headers {
                status: response.status().as_u16(),
                end_of_stream,
            };
            self.peer.world().log.push((self.id, headers));
            Ok(FakeStream {
                peer: self.peer.clone(),
                id: self.id,
            })
        }
    }

    /// The fake port.
    enum Fake {}

    impl Port for Fake {
        type Send = FakeStream;
        type Respond = FakeRespond;
    }

    /// Counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A counting waker and its counter.
    fn counter() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    /// How often the counter's waker was woken.
    fn wakes(counter: &Counter) -> usize {
        counter.0.load(Ordering::SeqCst)
    }

    /// One `poll_write` with a waker that does nothing.
    fn poll(task: &mut WriterTask<Fake>) -> Written {
        task.poll_write(&mut Context::from_waker(Waker::noop()))
    }

    /// One `poll_write` with `waker`.
    fn poll_with(task: &mut WriterTask<Fake>, waker: &Waker) -> Written {
        task.poll_write(&mut Context::from_waker(waker))
    }

    /// Bytes 0, 1, 2, ... (mod 251), so a reordering or a lost chunk shows.
    fn pattern(len: usize) -> Bytes {
        (0..len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    /// Response headers: 200, no fields.
    fn head() -> Box<http::Response<()>> {
        Box::new(http::Response::new(()))
    }

    /// OK trailers.
    fn ok_trailers() -> http::HeaderMap {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        trailers
    }

    /// Opens a streaming client stream on `send`; its write quota.
    async fn open_client(
        writer: &Writer<Fake>,
        key: StreamKey,
        send: FakeStream,
    ) -> Arc<Semaphore> {
        let quota = new_quota();
        let then = Opened::Streaming(quota.clone());
        writer
            .send(Item::OpenClient { key, send, then })
            .await
            .unwrap();
        quota
    }

    /// Sends a server stream's headers (messages follow); its write quota.
    async fn respond(
        writer: &Writer<Fake>,
        key: StreamKey,
        respond: FakeRespond,
        on_reset: Option<oneshot::Sender<()>>,
    ) -> Arc<Semaphore> {
        let quota = new_quota();
        let item = Item::Respond {
            key,
            respond,
            head: head(),
            end_of_stream: false,
            on_reset,
            quota: Some(quota.clone()),
        };
        writer.send(item).await.unwrap();
        quota
    }

    /// Queues `data` on `key`, holding its permits of `quota`.
    async fn send_data(writer: &Writer<Fake>, quota: &Semaphore, key: StreamKey, data: Bytes) {
        let permits = Writer::acquire(quota, data.len()).await.unwrap();
        writer
            .send(Item::Data { key, data, permits })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn data_goes_only_as_the_window_allows_and_the_quota_returns_when_h2_took_it_all() {
        let peer = Peer::new();
        let (writer, mut task) = Writer::<Fake>::new();
        let quota = open_client(&writer, 1, peer.stream(1, 1000)).await;
        let message = pattern(3000);
        send_data(&writer, &quota, 1, message.clone()).await;
        let held = STREAM_WRITE_QUOTA - 3000;
        assert_eq!(quota.available_permits(), held);

        let (counter, waker) = counter();
        assert_eq!(poll_with(&mut task, &waker), Written::Frames);
        assert_eq!(
            peer.sent(1),
            message[..1000],
            "only the granted window goes"
        );
        assert_eq!(
            quota.available_permits(),
            held,
            "h2 has not taken it all yet"
        );
        assert_eq!(poll_with(&mut task, &waker), Written::Nothing);
        assert_eq!(peer.sent(1).len(), 1000, "no window, nothing more");

        assert_eq!(wakes(&counter), 0);
        peer.grant(1, 1500);
        assert_eq!(wakes(&counter), 1, "poll_capacity left the writer's waker");
        assert_eq!(poll_with(&mut task, &waker), Written::Frames);
        assert_eq!(peer.sent(1), message[..2500]);
        assert_eq!(quota.available_permits(), held);

        peer.grant(1, 10_000);
        assert_eq!(poll_with(&mut task, &waker), Written::Frames);
        assert_eq!(peer.sent(1), message, "every byte, in order");
        assert_eq!(
            quota.available_permits(),
            STREAM_WRITE_QUOTA,
            "permits back"
        );
        assert_eq!(peer.world().beyond_window, 0);
        let ends = peer.calls(1).into_iter().filter(|c| {
            matches!(
                c,
                Call::Data {
                    end_of_stream: true,
                    ..
                }
            )
        });
        assert_eq!(ends.count(), 0, "data alone never ends the stream");
    }

    #[tokio::test]
    async fn streams_take_turns_so_a_large_one_cannot_starve_another() {
        let peer = Peer::new();
        // Two chunks' worth of connection window at a time, shared by both streams.
        peer.world().conn_window = 2 * MAX_CHUNK;
        let (writer, mut task) = Writer::<Fake>::new();
        let a = open_client(&writer, 1, peer.stream(1, usize::MAX / 2)).await;
        let b = open_client(&writer, 2, peer.stream(2, usize::MAX / 2)).await;
        let (big_a, big_b) = (pattern(4 * MAX_CHUNK), pattern(4 * MAX_CHUNK + 7));
        writer
            .send(Item::Data {
                key: 1,
                data: big_a.clone(),
                permits: 0,
            })
            .await
            .unwrap();
        writer
            .send(Item::Data {
                key: 2,
                data: big_b.clone(),
                permits: 0,
            })
            .await
            .unwrap();

        assert_eq!(poll(&mut task), Written::Frames);
        assert_eq!(
            peer.data_order(),
            [1, 2],
            "one chunk each, not two for the first"
        );
        for _ in 0..4 {
            peer.grant_conn(2 * MAX_CHUNK);
            poll(&mut task);
        }
        assert_eq!(peer.data_order(), [1, 2, 1, 2, 1, 2, 1, 2, 2]);
        assert_eq!(peer.sent(1), big_a);
        assert_eq!(peer.sent(2), big_b);
        for call in peer.calls(1).into_iter().chain(peer.calls(2)) {
            let Call::Data { data, .. } = call else {
                unreachable!("only data was queued")
            };
            assert!(data.len() <= MAX_CHUNK);
        }
        assert_eq!(peer.world().beyond_window, 0);
        drop((a, b));
    }

    #[tokio::test]
    async fn a_reset_jumps_ahead_of_queued_data_and_closes_the_quota() {
        let peer = Peer::new();
        let (writer, mut task) = Writer::<Fake>::new();
        let quota = respond(&writer, 5, peer.respond(5, 100), None).await;
        send_data(&writer, &quota, 5, pattern(1000)).await;
        send_data(&writer, &quota, 5, pattern(1000)).await;
        assert_eq!(poll(&mut task), Written::Frames);
        assert_eq!(peer.sent(5).len(), 100);

        // A sender waiting on the quota, which is used up.
        let left = quota.available_permits() as u32;
        quota.try_acquire_many(left).unwrap().forget();
        let waiting = tokio::spawn({
            let quota = quota.clone();
            async move { Writer::acquire(&quota, 10).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());

        let reason = Reason::CANCEL;
        writer.send(Item::Reset { key: 5, reason }).await.unwrap();
        peer.grant(5, 10_000);
        assert_eq!(poll(&mut task), Written::Frames);
        send_data(&writer, &Semaphore::new(STREAM_WRITE_QUOTA), 5, pattern(10)).await;
        poll(&mut task);

        let calls = peer.calls(5);
        assert_eq!(calls.len(), 3, "headers, one chunk, the reset: {calls:?}");
        assert_eq!(calls.last(), Some(&Call::Reset(Reason::CANCEL)));
        assert_eq!(
            peer.sent(5).len(),
            100,
            "nothing of the stream after the reset"
        );
        assert!(quota.is_closed());
        assert!(
            waiting.await.unwrap().is_err(),
            "the waiting sender is told"
        );
    }

    #[tokio::test]
    async fn trailers_go_after_all_queued_data_and_end_the_stream() {
        let peer = Peer::new();
        let (writer, mut task) = Writer::<Fake>::new();
        let quota = respond(&writer, 3, peer.respond(3, 10), None).await;
        send_data(&writer, &quota, 3, pattern(8)).await;
        send_data(&writer, &quota, 3, pattern(8)).await;
        let trailers = Box::new(ok_trailers());
        writer
            .send(Item::Trailers { key: 3, trailers })
            .await
            .unwrap();
        assert_eq!(poll(&mut task), Written::Frames);
        assert_eq!(peer.sent(3).len(), 10);
        assert!(!peer.calls(3).iter().any(|c| matches!(c, Call::Trailers(_))));

        peer.grant(3, 100);
        assert_eq!(poll(&mut task), Written::Frames);
        let calls = peer.calls(3);
        let expected_head = Call::Headers {
            status: 200,
            end_of_stream: false,
        };
        assert_eq!(calls.first(), Some(&expected_head));
        assert_eq!(calls.last(), Some(&Call::Trailers(ok_trailers())));
        assert_eq!(peer.sent(3).len(), 16);
        assert!(quota.is_closed(), "the stream is forgotten");

        // Forgotten: what is still sent to the key is dropped.
        let count = calls.len();
        send_data(&writer, &Semaphore::new(STREAM_WRITE_QUOTA), 3, pattern(4)).await;
        assert_eq!(poll(&mut task), Written::Frames);
        assert_eq!(peer.calls(3).len(), count);
    }

    #[tokio::test]
    async fn close_send_goes_after_queued_data_as_an_empty_end_of_stream() {
        let peer = Peer::new();
        let (writer, mut task) = Writer::<Fake>::new();
        let quota = open_client(&writer, 4, peer.stream(4, 5)).await;
        send_data(&writer, &quota, 4, pattern(9)).await;
        writer.send(Item::CloseSend { key: 4 }).await.unwrap();
        poll(&mut task);
        assert!(peer.calls(4).iter().all(|c| {
            matches!(
                c,
                Call::Data {
                    end_of_stream: false,
                    ..
                }
            )
        }));
        peer.grant(4, 100);
        poll(&mut task);
        let end = Call::Data {
            data: Bytes::new(),
            end_of_stream: true,
        };
        assert_eq!(peer.calls(4).last(), Some(&end));
        assert_eq!(peer.sent(4), pattern(9));
        assert!(quota.is_closed());
    }

    #[tokio::test]
    async fn a_client_reset_of_an_idle_server_stream_is_reported_and_closes_its_quota() {
        let peer = Peer::new();
        let (writer, mut task) = Writer::<Fake>::new();
        let (idle_tx, mut idle_rx) = oneshot::channel();
        let idle = respond(&writer, 1, peer.respond(1, 100), Some(idle_tx)).await;
        let (busy_tx, mut busy_rx) = oneshot::channel();
        let busy = respond(&writer, 2, peer.respond(2, 0), Some(busy_tx)).await;
        send_data(&writer, &busy, 2, pattern(10)).await;
        poll(&mut task);

        let (counter, waker) = counter();
        task.poll_resets(&mut Context::from_waker(&waker));
        assert!(idle_rx.try_recv().is_err(), "no reset yet");
        assert!(!idle.is_closed());
        peer.reset_by_peer(1, Reason::CANCEL);
        assert_eq!(wakes(&counter), 1, "poll_reset kept the waker");
        peer.reset_by_peer(2, Reason::CANCEL);
        task.poll_resets(&mut Context::from_waker(&waker));

        assert!(idle_rx.try_recv().is_ok(), "the idle stream's task is told");
        assert!(idle.is_closed());
        assert_eq!(peer.stream_state(2, |s| s.reset_polls), 0);
        assert!(
            busy_rx.try_recv().is_err(),
            "a stream with data is not reported here"
        );
        assert!(!busy.is_closed());

        // The idle stream is forgotten; the busy one learns of the reset in its turn.
        let count = peer.calls(1).len();
        send_data(&writer, &Semaphore::new(STREAM_WRITE_QUOTA), 1, pattern(4)).await;
        poll(&mut task);
        assert_eq!(peer.calls(1).len(), count);
        assert!(busy.is_closed());
        assert_eq!(peer.sent(2).len(), 0);
    }

    #[tokio::test]
    async fn written_says_nothing_frames_or_closed() {
        let peer = Peer::new();
        let (writer, mut task) = Writer::<Fake>::new();
        assert_eq!(poll(&mut task), Written::Nothing, "nothing queued");
        let quota = open_client(&writer, 1, peer.stream(1, 0)).await;
        send_data(&writer, &quota, 1, pattern(10)).await;
        assert_eq!(poll(&mut task), Written::Frames, "items taken");
        assert_eq!(poll(&mut task), Written::Nothing, "waiting for window");

        let other = writer.clone();
        drop(writer);
        assert_eq!(poll(&mut task), Written::Nothing, "a handle is left");
        drop(other);
        assert_eq!(poll(&mut task), Written::Nothing, "data is left");
        peer.grant(1, 4);
        assert_eq!(
            poll(&mut task),
            Written::Frames,
            "some data went, some is left"
        );
        assert_eq!(peer.sent(1).len(), 4);
        peer.grant(1, 100);
        assert_eq!(poll(&mut task), Written::Closed);
        assert_eq!(
            peer.sent(1),
            pattern(10),
            "the last data went before Closed"
        );
        assert_eq!(poll(&mut task), Written::Closed);
    }

    #[tokio::test]
    async fn one_poll_takes_at_most_a_batch_and_asks_to_be_polled_again() {
        let peer = Peer::new();
        let (writer, mut task) = Writer::<Fake>::new();
        let _quota = open_client(&writer, 1, peer.stream(1, usize::MAX / 2)).await;
        let extra = 10;
        for i in 0..BATCH_ITEMS + extra {
            let data = Bytes::from(vec![i as u8]);
            writer
                .send(Item::Data {
                    key: 1,
                    data,
                    permits: 0,
                })
                .await
                .unwrap();
        }

        let (counter, waker) = counter();
        assert_eq!(poll_with(&mut task, &waker), Written::Frames);
        // The open and BATCH_ITEMS - 1 messages.
        assert_eq!(peer.sent(1).len(), BATCH_ITEMS - 1);
        assert_eq!(wakes(&counter), 1, "woken to come back for the rest");
        assert_eq!(poll_with(&mut task, &waker), Written::Frames);
        assert_eq!(peer.sent(1).len(), BATCH_ITEMS + extra);
        assert_eq!(wakes(&counter), 1, "a short batch does not wake itself");
        let expected: Vec<u8> = (0..BATCH_ITEMS + extra).map(|i| i as u8).collect();
        assert_eq!(peer.sent(1), expected);
    }

    #[tokio::test]
    async fn a_unary_reply_and_a_whole_request_go_to_h2_at_once() {
        let peer = Peer::new();
        let (writer, mut task) = Writer::<Fake>::new();
        let message = pattern(100 * 1024);
        let reply = UnaryReply {
            respond: peer.respond(1, 0),
            head: *head(),
            data: message.clone(),
            trailers: ok_trailers(),
        };
        writer.send(Item::Unary(Box::new(reply))).await.unwrap();
        let then = Opened::Whole(message.clone());
        let send = peer.stream(2, 0);
        writer
            .send(Item::OpenClient { key: 2, send, then })
            .await
            .unwrap();
        assert_eq!(poll(&mut task), Written::Frames);

        let reply = [
            Call::Headers {
                status: 200,
                end_of_stream: false,
            },
            Call::Data {
                data: message.clone(),
                end_of_stream: false,
            },
            Call::Trailers(ok_trailers()),
        ];
        assert_eq!(peer.calls(1), reply);
        let request = Call::Data {
            data: message,
            end_of_stream: true,
        };
        assert_eq!(peer.calls(2), [request]);
        for id in [1, 2] {
            assert_eq!(peer.stream_state(id, |s| s.capacity_polls), 0, "no wait");
        }
        // h2 buffers them beyond the window, bounded by the message size limit.
        assert_eq!(peer.world().beyond_window, 2 * 100 * 1024);
    }

    #[tokio::test]
    async fn the_queue_holds_control_queue_items_and_then_makes_producers_wait() {
        let (writer, mut task) = Writer::<Fake>::new();
        let reset = || Item::Reset {
            key: 99,
            reason: Reason::CANCEL,
        };
        let quick = Duration::from_secs(5);
        for _ in 0..CONTROL_QUEUE_ITEMS {
            let sent = tokio::time::timeout(quick, writer.send(reset())).await;
            assert!(sent.is_ok(), "room for CONTROL_QUEUE_ITEMS items");
        }
        let full = tokio::time::timeout(Duration::from_millis(50), writer.send(reset())).await;
        assert!(full.is_err(), "the next item waits for room");
        poll(&mut task);
        let sent = tokio::time::timeout(quick, writer.send(reset())).await;
        assert!(sent.is_ok(), "room again once the writer took a batch");
    }

    #[tokio::test]
    async fn try_send_queues_while_there_is_room_and_gives_the_item_back_when_full() {
        let (writer, task) = Writer::<Fake>::new();
        let reset = || Item::Reset {
            key: 99,
            reason: Reason::CANCEL,
        };
        for _ in 0..CONTROL_QUEUE_ITEMS {
            assert!(matches!(writer.try_send(reset()), Ok(None)), "queued");
        }
        assert!(
            matches!(
                writer.try_send(reset()),
                Ok(Some(Item::Reset { key: 99, .. }))
            ),
            "full: the item comes back for `send`"
        );
        drop(task);
        let closed = writer.try_send(reset()).err().map(|status| status.code());
        assert_eq!(closed, Some(crate::Code::Unavailable), "the writer is gone");
    }
}
