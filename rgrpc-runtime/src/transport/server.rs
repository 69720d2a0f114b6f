//! The server connection driver: one task per accepted connection owns its h2 server
//! connection, the control-buffer writer, keepalive, the connection's lifetime limits
//! and its GOAWAY, and hands each accepted stream up to the server layer through
//! [`StreamHandler`] (as grpc-go's `ServerTransport.HandleStreams` takes a function).
//! This module knows nothing of routing or services.
//!
//! Lifecycle of a connection:
//!
//! ```text
//!  Handshaking ──(TLS, then preface + SETTINGS within connection_timeout)──▶ Ready
//!      │ timeout, bad preface, TLS on a plaintext port or the reverse,  │
//!      │ server stop                                                    │
//!      ▼                                                           │ server stop (graceful),
//!   (dropped)                                                      │ max age, max idle
//!                                                                  ▼
//!                  ┌────────────────────────────── Draining { cancel_at }
//!                  │ last stream done                  │ cancel_at passed, forced stop
//!                  ▼                                   ▼
//!               Closed ◀── h2 closed, or linger over ── Cancelling
//!                  ▲
//!                  └── keepalive timeout, too many pings, I/O error (from any state)
//! ```
//!
//! A closing connection lingers at most [`CLOSE_LINGER`] for its last bytes (the
//! GOAWAY) to be written; against a peer that does not read, it is then dropped with
//! them unwritten, so a stop never waits on a peer.
//!
//! Draining is h2's graceful GOAWAY, which is grpc-go's: a first GOAWAY with the
//! largest stream id and a PING, then, once the PING is acked, the GOAWAY with the last
//! stream id really processed; streams at or below it run to completion, so no call in
//! flight is lost (RFC 9113 section 6.8). h2 waits for that ack without limit; as
//! grpc-go, the driver waits [`DRAIN_ACK_WAIT`] (5 s) and then refuses new streams
//! itself and closes the connection once its calls are done ([`DrainAck`]), so a
//! client that never acks cannot hold a graceful stop. Cancelling tells every stream
//! of the connection that its call is cancelled (handlers are dropped; their
//! `ServerContext::cancelled` completes) and closes the connection with a GOAWAY.
//!
//! Keepalive (gRFC A8, doc/keepalive.md): the server pings after `keepalive.time` of
//! read inactivity and closes the connection when no byte arrives within
//! `keepalive.timeout`. The client's pings are counted against the enforcement policy
//! (`keepalive::PingStrikes`); the third offence is answered with GOAWAY
//! ENHANCE_YOUR_CALM and debug data `too_many_pings`, and the connection is closed.
//! h2 answers PINGs itself, so the driver learns of them from the frame observer on
//! the read path (`observe`). h2 keeps at most one PING ack and one SETTINGS ack
//! pending and stops reading while it cannot write them, so a flood from a peer that
//! does not read costs bounded memory.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::Reason;
use h2::server::SendResponse;
use tokio::sync::watch;
use tokio::time::Sleep;

use super::CLOSE_LINGER;
use super::coalesce::{CoalescingIo, Flusher};
use super::controlbuf::{STREAM_WRITE_QUOTA, StreamKey, Writer, WriterTask, Written};
use super::dispatch::{Dispatch, StreamFuture};
use super::gate::Gate;
use super::io::{BoxIo, PeerAddr, TlsInfo};
use super::keepalive::{EnforcementPolicy, Keepalive, PingAction, PingStrikes, Pinger};
use super::observe::{Observed, Side};
use super::parked_read::ParkedRead;
use super::resident::Resident;
use super::signal::Signal;
use super::sniff::{self, Opening};

/// Streams one client connection may have open at once unless the server says
/// otherwise. grpc-go and grpc C++ advertise no limit, so a peer can open streams that
/// never finish until the server runs out of memory (each holds h2 stream state and a
/// handler task, about 2-3 KiB, plus whatever the handler keeps). 1024 bounds that to a
/// few MiB per connection while staying far above what one client needs in practice
/// (RFC 9113 section 6.5.2 asks for no less than 100; a client past the limit waits
/// for a slot, it is not failed). Streams beyond the advertised limit are refused by
/// h2 with REFUSED_STREAM (RFC 9113 section 5.1.2).
pub(crate) const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1024;

/// Settings of every connection a server accepts.
#[derive(Clone, Debug)]
pub(crate) struct ServerSettings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS, always advertised ([`DEFAULT_MAX_CONCURRENT_STREAMS`]).
    pub max_concurrent_streams: u32,
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
    /// Time for the client's preface and SETTINGS (grpc-go: 120 s).
    pub connection_timeout: Duration,
    /// Poll each new stream once in the connection task before spawning it.
    pub inline_dispatch: bool,
    /// The server's own pings.
    pub keepalive: Keepalive,
    /// What the server allows of the client's pings.
    pub enforcement: EnforcementPolicy,
    /// A connection with no call for this long is drained (grpc-go
    /// `MaxConnectionIdle`; default infinite).
    pub max_connection_idle: Option<Duration>,
    /// A connection older than this (+-10% jitter) is drained (grpc-go
    /// `MaxConnectionAge`; default infinite).
    pub max_connection_age: Option<Duration>,
    /// After max age (or a graceful stop with a deadline), how long calls in flight
    /// have before they are cancelled (grpc-go `MaxConnectionAgeGrace`; default
    /// infinite).
    pub max_connection_age_grace: Option<Duration>,
    /// TLS on every connection (`None`: plaintext).
    #[cfg(feature = "tls")]
    pub tls: Option<super::tls::Acceptor>,
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            // Larger than HTTP/2's 64 KiB default, as grpc-go and hyper do, so one
            // round trip carries more than one 64 KiB message.
            initial_stream_window: 1024 * 1024,
            initial_connection_window: 2 * 1024 * 1024,
            max_frame_size: 16 * 1024,
            // 16 KiB is HTTP/2's advertised default in most servers and ample for
            // metadata (grpc-go allows 16 MiB).
            max_header_list_size: 16 * 1024,
            connection_timeout: Duration::from_secs(120),
            inline_dispatch: true,
            keepalive: Keepalive::server_default(),
            enforcement: EnforcementPolicy::default(),
            max_connection_idle: None,
            max_connection_age: None,
            max_connection_age_grace: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// How the server asks its connections to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Serving.
    Running,
    /// Drain: GOAWAY, let calls in flight finish; cancel what is left at `cancel_at`.
    Graceful { cancel_at: Option<Instant> },
    /// Cancel every call now and close.
    Forced,
}

/// What the streams of one connection share with it.
pub(crate) struct ConnShared {
    /// The connection's control buffer.
    pub writer: Writer,
    /// The peer's address.
    pub peer: PeerAddr,
    /// What TLS established, on a TLS connection.
    pub tls: Option<Box<TlsInfo>>,
    /// Set when the connection starts draining (GOAWAY sent).
    pub draining: Signal,
    /// Set when the connection's calls are cancelled (forced stop, grace expired,
    /// keepalive timeout, policy violation).
    pub cancelled: Signal,
    /// Streams accepted and not yet finished.
    active: AtomicUsize,
    /// When `active` last dropped to zero (tracked only with a max idle).
    idle_since: Option<Mutex<Instant>>,
}

impl std::fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnShared")
            .field("peer", &self.peer)
            .field("draining", &self.draining.is_set())
            .field("cancelled", &self.cancelled.is_set())
            .finish()
    }
}

impl ConnShared {
    /// The peer's TCP address, if it is a TCP peer.
    pub(crate) fn remote_addr(&self) -> Option<SocketAddr> {
        self.peer.tcp()
    }
}

/// Held by the future serving one stream; counts it as active until dropped.
#[derive(Debug)]
pub(crate) struct StreamGuard {
    conn: Arc<ConnShared>,
}

impl StreamGuard {
    fn new(conn: &Arc<ConnShared>) -> StreamGuard {
        conn.active.fetch_add(1, Ordering::Relaxed);
        StreamGuard { conn: conn.clone() }
    }

    /// The connection the stream belongs to.
    pub(crate) fn conn(&self) -> &Arc<ConnShared> {
        &self.conn
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.conn.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(idle) = &self.conn.idle_since {
                *idle.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
        }
    }
}

/// A stream h2 accepted, handed up to the server layer.
pub(crate) struct Accepted {
    /// The stream's key in the connection's writer.
    pub key: StreamKey,
    /// The request head and body.
    pub request: http::Request<h2::RecvStream>,
    /// The response half.
    pub respond: SendResponse<Bytes>,
    /// Counts the stream as active; gives access to the connection.
    pub guard: StreamGuard,
}

/// The server layer's side of the seam: turns each accepted stream into the future
/// that serves it.
pub(crate) trait StreamHandler: Send + Sync + 'static {
    /// The future that serves `stream` to completion.
    fn serve(&self, stream: Accepted) -> StreamFuture;
}

/// Serves one accepted connection until it has closed.
pub(crate) async fn serve_connection(
    io: BoxIo,
    peer: PeerAddr,
    settings: Arc<ServerSettings>,
    handler: Arc<dyn StreamHandler>,
    mut stop: watch::Receiver<Stop>,
) {
    // Two steps, and the driver is never moved after an await: an async fn keeps a
    // slot for every local that lives across an await, moved-from or not, and the
    // task's size is an idle connection's memory.
    // Boxed: the task holds the handshake only while it runs, then the driver.
    let handshaking = Box::pin(handshake(io, peer, settings, handler));
    // A stop (graceful or forced) drops a connection still handshaking, as grpc-go
    // closes a transport that finishes its handshake after the server stopped: it has
    // no call to finish, and a stalled client must not hold the stop for up to the
    // connection timeout.
    let Some(mut driver) = (tokio::select! {
        driver = handshaking => driver,
        _ = stop.wait_for(|s| *s != Stop::Running) => None,
    }) else {
        return;
    };
    driver.run(&mut stop).await;
}

/// Handshaking: TLS first on a TLS server, then our SETTINGS out, the client's
/// preface and SETTINGS in, all within the connection timeout.
async fn handshake(
    io: BoxIo,
    peer: PeerAddr,
    settings: Arc<ServerSettings>,
    handler: Arc<dyn StreamHandler>,
) -> Option<Driver> {
    let deadline = tokio::time::Instant::now() + settings.connection_timeout;
    // Not boxed: small, since what only some connections need (the TLS handshake, a
    // refusal's drain) is boxed inside it.
    let (io, tls) = tokio::time::timeout_at(deadline, secure(io, &settings))
        .await
        .ok()??;
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(settings.initial_stream_window)
        .initial_connection_window_size(settings.initial_connection_window)
        .max_frame_size(settings.max_frame_size)
        .max_header_list_size(settings.max_header_list_size)
        // h2's rapid-reset guard closes the connection when more than this many streams
        // the client reset are waiting to be accepted (default 20). Deadline-bound
        // clients under overload legitimately open streams that expire at once; our
        // accept loop drains them in the same wake-up, so a larger bound only costs a
        // few hundred bytes per pending stream, still bounded.
        .max_pending_accept_reset_streams(1024)
        // Bounds h2's own per-stream send buffer; the writer never exceeds the window.
        .max_send_buffer_size(STREAM_WRITE_QUOTA);
    builder.max_concurrent_streams(settings.max_concurrent_streams);
    let mut observed = Observed::new(io, Side::Server);
    if matches!(peer, PeerAddr::Unix(_)) {
        observed = observed.with_authority_fix();
    }
    let (io, flusher) = CoalescingIo::new(observed);
    let io = ParkedRead::new(io);
    // Boxed: the handshake future is about as large as the connection itself.
    let handshake = Box::pin(tokio::time::timeout_at(
        deadline,
        builder.handshake::<_, Bytes>(io),
    ));
    let conn = handshake.await.ok()?.ok()?;
    Some(Driver::new(conn, flusher, peer, tls, settings, handler))
}

/// The byte stream h2 runs over: the socket on a plaintext server, TLS over it on a
/// TLS server. The client's first byte is looked at first (`sniff`): a plaintext
/// client on a TLS port, or a TLS client on a plaintext port, is answered with a
/// GOAWAY saying so and closed, instead of failing later with a message that does
/// not say why. `None`: the connection is not served.
async fn secure(mut io: BoxIo, settings: &ServerSettings) -> Option<(BoxIo, Option<Box<TlsInfo>>)> {
    let opening = match io.peek_first().await {
        Ok(Some(first)) => Some(Opening::of(first)),
        // Closed before a byte, or a stream that cannot be peeked at.
        Ok(None) if matches!(io, BoxIo::Tcp(_)) => return None,
        Ok(None) => None,
        Err(_) => return None,
    };
    #[cfg(feature = "tls")]
    if let Some(acceptor) = &settings.tls {
        if opening == Some(Opening::Plaintext) {
            Box::pin(io.refuse(&sniff::refusal(sniff::TLS_REQUIRED))).await;
            return None;
        }
        // Boxed: rustls' handshake state is kilobytes, and a plaintext server's
        // connections must not carry room for it.
        let (io, info) = Box::pin(acceptor.accept(io)).await.ok()?;
        return Some((io, Some(Box::new(info))));
    }
    let _ = settings;
    if opening == Some(Opening::Tls) {
        // Boxed: the drain's read buffer is a kilobyte of future.
        Box::pin(io.refuse(&sniff::refusal(sniff::TLS_NOT_SPOKEN))).await;
        return None;
    }
    Some((io, None))
}

impl Driver {
    /// Ready: the driver of a connection whose handshake is done.
    fn new(
        conn: h2::server::Connection<super::H2Io, Bytes>,
        flusher: Flusher<Observed>,
        peer: PeerAddr,
        tls: Option<Box<TlsInfo>>,
        settings: Arc<ServerSettings>,
        handler: Arc<dyn StreamHandler>,
    ) -> Driver {
        let (writer, writer_task) = Writer::new();
        flusher.take_over();
        let now = Instant::now();
        let shared = Arc::new(ConnShared {
            writer,
            peer,
            tls,
            draining: Signal::default(),
            cancelled: Signal::default(),
            active: AtomicUsize::new(0),
            idle_since: settings.max_connection_idle.map(|_| Mutex::new(now)),
        });
        Driver {
            pings: None,
            conn,
            flusher,
            writer_task,
            dispatch: Dispatch::new(settings.inline_dispatch),
            resident: None,
            handler: Some(handler),
            shared,
            next_key: 0,
            last_stream_id: 0,
            phase: Phase::Ready,
            pinger: Pinger::new(settings.keepalive),
            strikes: PingStrikes::new(settings.enforcement),
            settings_seen: (0, now),
            age_limit: settings.max_connection_age.map(|age| now + jittered(age)),
            settings,
            timer: Box::pin(tokio::time::sleep_until(far_future())),
            armed: None,
        }
    }

    /// Ready and after: polls the connection until it is done, applying the server's
    /// stop requests as they come.
    async fn run(&mut self, stop: &mut watch::Receiver<Stop>) {
        let driver = self;
        let mut stopped = false;
        // Made at the first poll, from the task's context.
        let mut gate: Option<Gate> = None;
        loop {
            if !stopped {
                let request = *stop.borrow_and_update();
                driver.on_stop(request);
            }
            tokio::select! {
                biased;
                () = std::future::poll_fn(|cx| {
                    Gate::awake(&mut gate, cx, |_, gate| {
                        driver.poll(&mut Context::from_waker(gate.waker()), gate)
                    })
                }) => break,
                changed = stop.changed(), if !stopped => {
                    // The server is gone without a word: treat it as a graceful stop.
                    if changed.is_err() {
                        stopped = true;
                        driver.on_stop(Stop::Graceful { cancel_at: None });
                    }
                }
            }
        }
    }
}

/// `age` +-10%, as grpc-go jitters MaxConnectionAge so that connections made together
/// do not all reconnect together (gRFC A9).
fn jittered(age: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(age.as_nanos() as u64);
    // A uniform value in [-0.1, 0.1].
    let unit = (hasher.finish() % 2001) as f64 / 1000.0 - 1.0;
    age.mul_f64(1.0 + unit * 0.1)
}

/// A deadline the timer is parked at when nothing is due (a year away).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

/// Rounds of accept-write-flush one wake-up of the connection task runs before it
/// yields, so a connection that always has work does not hog its worker thread.
const ROUNDS_PER_WAKE: usize = 16;
/// Streams accepted in a row after which the writer hands h2 what they queued, before
/// the next accept. h2 encodes it at that accept (each `poll_accept` polls the
/// connection) and drops the replies' header maps and boxes, so the next calls'
/// allocations reuse them from glibc's per-thread cache (7 chunks per size) instead of
/// its slower bins: handing over once per round, after up to ~50 accepted calls,
/// cost 0.6k instructions more per small call (callgrind, h2load 8x50) and more in
/// CPU time (BENCHMARKS.md, session 22). The bytes still leave in one write per
/// wake-up: h2's writes only fill the coalescing buffer.
const HAND_OVER_EVERY: usize = 4;
/// Streams accepted in a row after which what h2 has written so far goes to the socket
/// before the next accept, so that a client with many calls in flight on the one
/// connection gets the first replies of a large batch while the server still answers
/// the rest, and both sides work at once instead of in turn. Above the 50 streams an
/// h2load connection keeps in flight, so small batches still leave in one write per
/// wake-up.
const FLUSH_EVERY: usize = 64;
/// SETTINGS frames a client may send per [`SETTINGS_WINDOW`]. A client sends one at
/// the start and rarely another; each costs the server an ack and a settings update,
/// so a flood is answered with GOAWAY ENHANCE_YOUR_CALM (CVE-2019-9515, "settings
/// flood"), whether or not the peer reads.
const MAX_SETTINGS_PER_WINDOW: u32 = 100;
/// The window [`MAX_SETTINGS_PER_WINDOW`] counts over.
const SETTINGS_WINDOW: Duration = Duration::from_secs(60);

/// How long a draining connection waits for the client to ack the PING sent with the
/// first GOAWAY (grpc-go's wait, `outgoingGoAwayHandler` in http2_server.go).
const DRAIN_ACK_WAIT: Duration = Duration::from_secs(5);
/// How often a connection that gave up on that ack checks whether its last call
/// has ended (nothing wakes it when one does).
const GAVE_UP_CHECK: Duration = Duration::from_millis(100);

/// The connection's state after the handshake (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepting streams.
    Ready,
    /// GOAWAY sent; streams in flight finish; at `cancel_at` the rest are cancelled.
    Draining {
        cancel_at: Option<Instant>,
        ack: DrainAck,
    },
    /// Calls cancelled, GOAWAY queued; closed when h2 is done or at `drop_at`.
    Cancelling { drop_at: Instant },
    /// Done: h2 is no longer polled; what is buffered (a GOAWAY of our own,
    /// `too_many_pings`) is written and the socket shut, or, at `drop_at`, the
    /// connection is dropped with it unwritten.
    Closed { drop_at: Instant },
}

/// Where a draining connection is with the PING of its first GOAWAY. h2 sends the
/// final GOAWAY (the last stream id it processed) when the ack comes and then closes
/// the connection once idle; until then it accepts new streams (the client may have
/// sent them before it saw the GOAWAY) and never closes, and it waits without limit.
///
/// ```text
///   Waiting(by) ──PING ACK read──▶ Acked            (h2 finishes the drain)
///       │ `by` passed (DRAIN_ACK_WAIT)
///       ▼
///    GaveUp: new streams are refused (REFUSED_STREAM: not processed, so the client
///            may retry them elsewhere); once no call is left, the connection
///            closes with h2's abrupt GOAWAY (nothing left to cancel)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DrainAck {
    Waiting(Instant),
    Acked,
    GaveUp,
}

/// Owns one h2 server connection, its writer, its timers and the dispatch of its
/// streams.
struct Driver {
    conn: h2::server::Connection<super::H2Io, Bytes>,
    /// Writes what h2 wrote during a wake-up, once, at its end (see `coalesce`).
    flusher: Flusher<Observed>,
    writer_task: WriterTask,
    dispatch: Dispatch,
    /// The one waiting stream polled in this task (`resident`); the slot is made at
    /// the first stream (a connection that never had a call does not pay for it) and
    /// kept.
    resident: Option<Box<Resident>>,
    /// Turns streams into futures; `None` once h2 has said accepting ended.
    handler: Option<Arc<dyn StreamHandler>>,
    shared: Arc<ConnShared>,
    next_key: StreamKey,
    /// The highest stream id accepted (for a GOAWAY of our own).
    last_stream_id: u32,
    phase: Phase,
    settings: Arc<ServerSettings>,
    /// Taken from h2 at the first keepalive ping, not before: once taken, h2
    /// registers the task's waker for it at every poll (about 15 ns of a small call),
    /// and a busy connection never pings.
    pings: Option<h2::PingPong>,
    pinger: Pinger,
    strikes: PingStrikes,
    /// SETTINGS received in the current window, and when it began.
    settings_seen: (u32, Instant),
    age_limit: Option<Instant>,
    /// One timer for every deadline of the connection, armed at the nearest.
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Driver {
    /// Serves the connection until it has closed and every stream has been written.
    ///
    /// Each round first accepts every stream h2 has ready, dispatching each (a small
    /// unary call completes right here and queues its reply) and letting the writer
    /// hand h2 what is queued after every [`HAND_OVER_EVERY`] of them, then polls the
    /// resident stream if the read woke it, then hands h2 the rest and polls h2 again,
    /// which encodes it into the coalescing buffer; the buffer is flushed once, at the
    /// end of the wake-up: all the replies produced in one wake-up leave in one write
    /// instead of one write per reply.
    ///
    /// `cx` is the `gate`'s: wakes while this runs do not poll it again for nothing.
    fn poll(&mut self, cx: &mut Context<'_>, gate: &Gate) -> Poll<()> {
        if let Phase::Closed { drop_at } = self.phase {
            return self.poll_close(cx, drop_at);
        }
        let done = self.poll_rounds(cx, gate);
        self.writer_task.poll_resets(cx);
        let seen = self.flusher.with_io(Observed::take_seen);
        self.poll_observed(seen.pings, seen.ping_acks, seen.settings);
        self.poll_timers(cx, seen.last_read);
        if let Phase::Closed { drop_at } = self.phase {
            return self.poll_close(cx, drop_at);
        }
        // Every byte h2 wrote goes to the socket before the task sleeps; a full socket
        // wakes it again. A write error reaches h2 through its next write or read.
        let _ = self.flusher.poll_flush(cx);
        done
    }

    /// Closed: writes out what is buffered and shuts the socket, or gives up at
    /// `drop_at` (ready either way: the task then drops the connection).
    fn poll_close(&mut self, cx: &mut Context<'_>, drop_at: Instant) -> Poll<()> {
        // h2 is not polled again: a resident stream ends in its own task.
        if let Some(resident) = &mut self.resident {
            resident.move_out();
        }
        if self.flusher.poll_close(cx).is_ready() {
            return Poll::Ready(());
        }
        if self.armed != Some(drop_at) {
            self.armed = Some(drop_at);
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(drop_at));
        }
        self.timer.as_mut().poll(cx)
    }

    fn poll_rounds(&mut self, cx: &mut Context<'_>, gate: &Gate) -> Poll<()> {
        for _ in 0..ROUNDS_PER_WAKE {
            let mut handed = false;
            let mut accepted = 0;
            while let Some(handler) = &self.handler {
                // Each h2 poll sees what h2 woke the task for (`gate`).
                gate.rearm();
                match self.conn.poll_accept(cx) {
                    Poll::Ready(Some(Ok((_, mut respond)))) if self.refuses_streams() => {
                        respond.send_reset(Reason::REFUSED_STREAM);
                    }
                    Poll::Ready(Some(Ok((request, respond)))) => {
                        self.next_key += 1;
                        self.last_stream_id = u32::from(respond.stream_id());
                        let stream = handler.serve(Accepted {
                            key: self.next_key,
                            request,
                            respond,
                            guard: StreamGuard::new(&self.shared),
                        });
                        self.dispatch.run(stream, &mut self.resident, cx);
                        accepted += 1;
                        if accepted % HAND_OVER_EVERY == 0 {
                            handed |= self.writer_task.poll_write(cx) == Written::Frames;
                        }
                        if accepted % FLUSH_EVERY == 0 {
                            // A full socket is written out by the flush at the end.
                            let _ = self.flusher.poll_flush(cx);
                        }
                    }
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(()),
                    // Accepting has ended (GOAWAY, peer closed): keep writing until
                    // every stream has flushed.
                    Poll::Ready(None) => self.handler = None,
                    Poll::Pending => break,
                }
            }
            // The read h2 just did may have woken the resident stream: it answers now,
            // and the writer below hands its reply to h2 in this same wake-up.
            self.dispatch.poll_resident(&mut self.resident);
            // What was handed over inside the loop, an accept (an h2 poll) followed.
            let written = self.writer_task.poll_write(cx);
            if handed || written == Written::Frames {
                // gRFC A8: sending headers or data resets the client's ping strikes.
                self.strikes.reset();
            }
            // Closing: poll_closed writes out what the writer handed h2 and tells when
            // the connection is done (while accepting, the next poll_accept does both).
            // No `gate.rearm()` before this h2 poll: it comes after this round's writer
            // and resident polls, so a mark it cleared could be theirs. A closing
            // connection may be polled once more for nothing; it is never left asleep.
            if self.handler.is_none() && self.conn.poll_closed(cx).is_ready() {
                return Poll::Ready(());
            }
            if written != Written::Frames {
                // Nothing new for h2, and the last h2 poll wrote out the rest.
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Whether new streams are refused (see [`DrainAck`]).
    fn refuses_streams(&self) -> bool {
        matches!(
            self.phase,
            Phase::Draining {
                ack: DrainAck::GaveUp,
                ..
            }
        )
    }

    /// Acts on the frames the observer saw: the client's PINGs against the policy,
    /// its PING ACKs against a drain's wait, its SETTINGS against the flood bound.
    fn poll_observed(&mut self, pings: u32, ping_acks: u32, settings: u32) {
        if let Phase::Draining {
            cancel_at,
            ack: DrainAck::Waiting(_),
        } = self.phase
        {
            // Ours is the only PING in flight while draining but for a keepalive
            // ping's; either ack shows a client that answers.
            if ping_acks > 0 {
                self.phase = Phase::Draining {
                    cancel_at,
                    ack: DrainAck::Acked,
                };
                self.armed = None;
            }
        }
        if pings == 0 && settings == 0 {
            return;
        }
        let now = Instant::now();
        if settings > 0 {
            let (count, since) = &mut self.settings_seen;
            if now >= *since + SETTINGS_WINDOW {
                *count = 0;
                *since = now;
            }
            *count += settings;
            if *count > MAX_SETTINGS_PER_WINDOW {
                self.enhance_your_calm(b"too_many_settings");
                return;
            }
        }
        let active = self.shared.active.load(Ordering::Relaxed);
        for _ in 0..pings {
            if self.strikes.on_ping(now, active) {
                self.enhance_your_calm(b"too_many_pings");
                return;
            }
        }
    }

    /// GOAWAY ENHANCE_YOUR_CALM with debug data (gRFC A8: `too_many_pings`), then
    /// close. h2 cannot send debug data, so the frame is appended to h2's output at a
    /// frame boundary and h2 is not polled again; when h2's output is mid-frame (rare:
    /// only while the socket is full), h2's own GOAWAY without debug data is sent
    /// instead.
    fn enhance_your_calm(&mut self, debug: &[u8]) {
        if matches!(self.phase, Phase::Cancelling { .. } | Phase::Closed { .. }) {
            return;
        }
        self.shared.draining.set();
        self.shared.cancelled.set();
        let frame = goaway_frame(self.last_stream_id, Reason::ENHANCE_YOUR_CALM, debug);
        if self.flusher.inject(&frame) {
            self.phase = Phase::Closed {
                drop_at: Instant::now() + CLOSE_LINGER,
            };
        } else {
            self.conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
            self.phase = Phase::Cancelling {
                drop_at: Instant::now() + CLOSE_LINGER,
            };
        }
    }

    /// Applies the server's stop request.
    fn on_stop(&mut self, stop: Stop) {
        match stop {
            Stop::Running => {}
            Stop::Graceful { cancel_at } => self.drain(cancel_at),
            Stop::Forced => self.cancel(),
        }
    }

    /// Ready -> Draining: the two-step graceful GOAWAY (see the module doc).
    fn drain(&mut self, cancel_at: Option<Instant>) {
        match self.phase {
            Phase::Ready => {
                self.shared.draining.set();
                self.conn.graceful_shutdown();
                self.phase = Phase::Draining {
                    cancel_at,
                    ack: DrainAck::Waiting(Instant::now() + DRAIN_ACK_WAIT),
                };
            }
            Phase::Draining {
                cancel_at: old,
                ack,
            } => {
                // A stop with a deadline tightens a drain without one.
                let cancel_at = match (old, cancel_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.phase = Phase::Draining { cancel_at, ack };
            }
            Phase::Cancelling { .. } | Phase::Closed { .. } => {}
        }
        self.armed = None;
    }

    /// -> Cancelling: every call is cancelled and the connection closes with a GOAWAY.
    fn cancel(&mut self) {
        if matches!(self.phase, Phase::Cancelling { .. } | Phase::Closed { .. }) {
            return;
        }
        self.shared.draining.set();
        self.shared.cancelled.set();
        self.conn.abrupt_shutdown(Reason::NO_ERROR);
        self.phase = Phase::Cancelling {
            drop_at: Instant::now() + CLOSE_LINGER,
        };
        self.armed = None;
    }

    /// The nearest deadline of the connection.
    fn next_deadline(&self, last_read: Instant) -> Option<Instant> {
        let mut next = self.pinger.deadline(last_read);
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        match self.phase {
            Phase::Ready => {
                consider(self.age_limit);
                consider(self.idle_deadline());
            }
            Phase::Draining { cancel_at, ack } => {
                consider(cancel_at);
                match ack {
                    DrainAck::Waiting(by) => consider(Some(by)),
                    DrainAck::Acked => {}
                    DrainAck::GaveUp => consider(Some(Instant::now() + GAVE_UP_CHECK)),
                }
            }
            Phase::Cancelling { drop_at } | Phase::Closed { drop_at } => consider(Some(drop_at)),
        }
        next
    }

    /// When the connection counts as idle, if it is idle now; while calls are active,
    /// a check one idle period from now.
    fn idle_deadline(&self) -> Option<Instant> {
        let max_idle = self.settings.max_connection_idle?;
        let since = self.shared.idle_since.as_ref()?;
        if self.shared.active.load(Ordering::Acquire) > 0 {
            return Some(Instant::now() + max_idle);
        }
        Some(*since.lock().unwrap_or_else(|e| e.into_inner()) + max_idle)
    }

    /// Fires what is due and re-arms the timer at the next deadline.
    fn poll_timers(&mut self, cx: &mut Context<'_>, last_read: Instant) {
        if let Some(pings) = &mut self.pings {
            // Clears h2's record of our last ping once its ack is in.
            let _ = pings.poll_pong(cx);
        }
        // An ack (any read) after our ping: step the pinger now, not at the ack
        // deadline, so the next ping is due `time` after this read.
        if self.pinger.is_answered(last_read) {
            self.armed = None;
        }
        // Dormant keepalive wakes when a call starts.
        if self.pinger.is_dormant() && self.shared.active.load(Ordering::Relaxed) > 0 {
            self.armed = None;
        }
        loop {
            if self.armed.is_some() && self.timer.as_mut().poll(cx).is_pending() {
                return;
            }
            // Fired, or never armed: run what is due, then arm at the next deadline.
            self.fire(Instant::now(), last_read);
            if matches!(self.phase, Phase::Closed { .. }) {
                return;
            }
            let next = self.next_deadline(last_read);
            self.armed = next;
            let at = next.map_or_else(far_future, tokio::time::Instant::from_std);
            self.timer.as_mut().reset(at);
            if next.is_none() {
                // Parked: polled again only when something else re-arms it.
                let _ = self.timer.as_mut().poll(cx);
                return;
            }
        }
    }

    fn fire(&mut self, now: Instant, last_read: Instant) {
        let active = self.shared.active.load(Ordering::Relaxed);
        match self.pinger.poll(now, last_read, active) {
            PingAction::Wait => {}
            PingAction::Ping => {
                if self.pings.is_none() {
                    self.pings = self.conn.ping_pong();
                }
                if let Some(pings) = &mut self.pings {
                    let _ = pings.send_ping(h2::Ping::opaque());
                }
            }
            PingAction::Close => {
                // keepalive.md: no ack within the timeout: the peer is gone.
                self.cancel();
                return;
            }
        }
        match self.phase {
            Phase::Ready => {
                if self.age_limit.is_some_and(|at| now >= at) {
                    self.drain(
                        self.settings
                            .max_connection_age_grace
                            .map(|grace| now + grace),
                    );
                } else if self.idle_deadline().is_some_and(|at| now >= at) && active == 0 {
                    self.drain(None);
                }
            }
            Phase::Draining { cancel_at, ack } => {
                if cancel_at.is_some_and(|at| now >= at) {
                    self.cancel();
                    return;
                }
                let ack = match ack {
                    DrainAck::Waiting(by) if now >= by => DrainAck::GaveUp,
                    ack => ack,
                };
                self.phase = Phase::Draining { cancel_at, ack };
                if ack == DrainAck::GaveUp && active == 0 {
                    // h2 will not close it: the abrupt GOAWAY has no call to cancel.
                    self.cancel();
                }
            }
            Phase::Cancelling { drop_at } => {
                // The linger is over: dropped at once, h2's GOAWAY unwritten.
                if now >= drop_at {
                    self.phase = Phase::Closed { drop_at };
                }
            }
            Phase::Closed { .. } => {}
        }
    }
}

/// A GOAWAY frame (RFC 9113 section 6.8): 9-byte header, last stream id, error code,
/// debug data.
fn goaway_frame(last_stream_id: u32, reason: Reason, debug: &[u8]) -> Vec<u8> {
    let len = 8 + debug.len();
    let mut frame = Vec::with_capacity(9 + len);
    frame.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    frame.push(0x7); // GOAWAY
    frame.push(0); // no flags
    frame.extend_from_slice(&0u32.to_be_bytes()); // stream 0
    frame.extend_from_slice(&(last_stream_id & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(&u32::from(reason).to_be_bytes());
    frame.extend_from_slice(debug);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frames::{Detail, Kind, Scanner, Start};

    #[test]
    fn our_goaway_frame_parses_back() {
        let frame = goaway_frame(7, Reason::ENHANCE_YOUR_CALM, b"too_many_pings");
        let mut seen = Vec::new();
        Scanner::new(Start::Frames).feed(&frame, &mut |f| seen.push(f.clone()));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].kind, Kind::GoAway);
        assert_eq!(
            seen[0].detail,
            Detail::GoAway {
                last_stream_id: 7,
                error_code: 0xb,
                debug: b"too_many_pings".to_vec()
            }
        );
    }

    #[test]
    fn max_age_jitter_stays_within_ten_percent() {
        let age = Duration::from_secs(100);
        for _ in 0..200 {
            let j = jittered(age);
            assert!(
                j >= Duration::from_secs(90) && j <= Duration::from_secs(110),
                "{j:?}"
            );
        }
    }
}
#[cfg(test)]
mod size {
    use super::*;

    struct Nop;

    impl StreamHandler for Nop {
        fn serve(&self, _stream: Accepted) -> StreamFuture {
            Box::pin(async {})
        }
    }

    /// A plaintext connection's handshake holds no room for TLS: rustls' handshake
    /// state and a refusal's drain are boxed only when they run (measured on `secure`,
    /// the part of the handshake future they sit in). Boxed inline, they
    /// made every connection allocate (and free, leaving a hole in the heap) a future
    /// of kilobytes, 1.1 KiB of RSS per idle connection (BENCHMARKS.md, session 23).
    #[tokio::test]
    async fn a_handshake_future_holds_no_room_for_tls() {
        let (io, _peer) = tokio::io::duplex(64);
        let settings = ServerSettings::default();
        let secure = secure(BoxIo::other(io), &settings);
        let size = std::mem::size_of_val(&secure);
        // 352 B in a release build, 1,432 B with the TLS handshake inline.
        assert!(size <= 512, "secure {size} B");
    }

    /// The connection task's future is most of an idle connection's memory: the
    /// driver (h2's connection is ~1.3 KiB of it) and little else. It was 3.3 KiB
    /// while the async fn kept slots for moved-from locals.
    #[tokio::test]
    async fn a_connection_task_is_the_driver_and_little_more() {
        let (io, _peer) = tokio::io::duplex(64);
        let (_stop, stopping) = watch::channel(Stop::Running);
        let task = serve_connection(
            BoxIo::other(io),
            PeerAddr::Unix(None),
            Arc::new(ServerSettings::default()),
            Arc::new(Nop),
            stopping,
        );
        let task = std::mem::size_of_val(&task);
        let driver = std::mem::size_of::<Driver>();
        assert!(task <= driver + 512, "task {task} B, driver {driver} B");
    }
}
