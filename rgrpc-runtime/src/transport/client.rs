//! The client connection driver: dials nothing itself (the caller hands it a byte
//! stream), performs the HTTP/2 handshake, then one task owns the h2 client connection,
//! its control-buffer writer, keepalive, and what it learns of the server's GOAWAY.
//! It knows nothing of channels: [`connect`] returns a [`Conn`] to open streams on.
//!
//! Lifecycle of a connection (the state callers read is [`Conn::is_ready`]):
//!
//! ```text
//!  Handshaking ──(h2 handshake + one PING round trip: the server's SETTINGS are in)──▶ Ready
//!      │ error, connect timeout                                                       │
//!      ▼                                                                              │ GOAWAY received,
//!   (failed dial)                                                                     │ every handle gone
//!                                                                                     ▼
//!   Closed ◀────────── streams done, h2 closed ─────────────────────────────────── Draining
//!     ▲   ◀── no call left and h2 still not closed after CLOSE_LINGER ─────────────────┘
//!     └──── keepalive timeout, I/O error (from Ready or Draining)
//! ```
//!
//! Draining: no new stream is opened on the connection (the channel dials another);
//! calls already on it finish. Streams the server never processed (ids above the
//! GOAWAY's last stream id) fail with a remote GOAWAY error, which the call layer
//! retries once on another connection (gRFC A6, transparent retry).
//!
//! Keepalive (gRFC A8): with `keepalive.time` set, the driver pings after that long
//! without a read and closes the connection (its calls fail UNAVAILABLE) when nothing
//! arrives within `keepalive.timeout`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Sleep;

use super::CLOSE_LINGER;
use super::coalesce::{CoalescingIo, Flusher};
use super::controlbuf::{STREAM_WRITE_QUOTA, Writer, WriterTask, Written};
use super::gate::Gate;
use super::io::BoxIo;
use super::keepalive::{Keepalive, PingAction, Pinger};
use super::observe::{GoAway, Observed, Side};
use super::parked_read::ParkedRead;
use super::signal::Signal;

/// Settings of a client connection.
#[derive(Clone, Debug)]
pub(crate) struct ClientSettings {
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    /// Time for the handshake, SETTINGS included (connection-backoff.md:
    /// MIN_CONNECT_TIMEOUT = 20 s).
    pub connect_timeout: Duration,
    pub keepalive: Keepalive,
    /// TLS on every connection (`None`: plaintext).
    #[cfg(feature = "tls")]
    pub tls: Option<super::tls::Connector>,
}

impl Default for ClientSettings {
    fn default() -> ClientSettings {
        ClientSettings {
            initial_stream_window: 1024 * 1024,
            initial_connection_window: 2 * 1024 * 1024,
            connect_timeout: Duration::from_secs(20),
            keepalive: Keepalive::client_default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Streams one connection opens at once when the server sets no MAX_CONCURRENT_STREAMS
/// (grpc-go's default server limit is unbounded too; this bounds our own memory).
const MAX_OPEN_STREAMS: usize = 10_000;

const READY: u8 = 0;
const DRAINING: u8 = 1;
const CLOSED: u8 = 2;

/// What the driver tells the connection's users.
#[derive(Debug)]
struct State {
    /// READY, DRAINING or CLOSED.
    phase: AtomicU8,
    /// The last stream id of the GOAWAY received (`u32::MAX` before any), set by the
    /// frame observer as the frame is read.
    goaway_last_stream_id: Arc<AtomicU32>,
    /// The GOAWAY said `too_many_pings` (gRFC A8: the client doubles its keepalive
    /// time).
    too_many_pings: AtomicBool,
    /// Stream permits handed out once Ready (0 before), to count active calls.
    limit: AtomicUsize,
    /// Set when the connection leaves Ready (GOAWAY, closed).
    left_ready: Signal,
}

impl State {
    /// Calls in flight: stream permits taken.
    fn active_calls(&self, streams: &Semaphore) -> usize {
        let limit = self.limit.load(Ordering::Acquire);
        limit.saturating_sub(streams.available_permits())
    }
}

/// One established HTTP/2 connection.
pub(crate) struct Conn {
    /// Cloned per call; calls only send once they hold a `streams` permit.
    pub send_request: h2::client::SendRequest<Bytes>,
    /// One permit per stream the server allows (its MAX_CONCURRENT_STREAMS, read once
    /// its SETTINGS have arrived), held for the life of each call's stream. Callers
    /// beyond the limit wait here, deadlines running, holding nothing: without it each
    /// fresh `SendRequest` clone is "ready", every caller queues a stream inside h2
    /// without bound, and expiring callers reset them en masse until the server's h2
    /// closes the connection (ENHANCE_YOUR_CALM, too_many_resets).
    pub streams: Arc<Semaphore>,
    pub writer: Writer,
    next_key: AtomicU64,
    state: Arc<State>,
}

impl Conn {
    /// A key for a new stream in the writer.
    pub(crate) fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether new streams may be opened on the connection (Ready).
    pub(crate) fn is_ready(&self) -> bool {
        // The GOAWAY's id is set as the frame is read, before the driver sees it.
        self.state.phase.load(Ordering::Acquire) == READY
            && self.state.goaway_last_stream_id.load(Ordering::Acquire) == u32::MAX
    }

    /// Whether the server's GOAWAY says it never processed stream `id` (it is above
    /// the last stream id), so the call may be retried elsewhere.
    pub(crate) fn was_refused(&self, id: u32) -> bool {
        id > self.state.goaway_last_stream_id.load(Ordering::Acquire)
    }

    /// Calls in flight on the connection (stream permits taken).
    pub(crate) fn active_calls(&self) -> usize {
        self.state.active_calls(&self.streams)
    }

    /// Completes once the connection is no longer Ready (the server sent GOAWAY, or
    /// the connection closed).
    pub(crate) async fn left_ready(&self) {
        self.state.left_ready.wait().await;
    }

    /// Whether the server closed the connection for too many pings.
    pub(crate) fn got_too_many_pings(&self) -> bool {
        self.state.too_many_pings.load(Ordering::Acquire)
    }
}

/// Reset streams h2 remembers per connection (for its reset-stream duration, 30 s), so
/// that frames still arriving on them are ignored rather than answered. Only streams
/// reset by expiring or cancelled calls take a slot (a few hundred bytes each, while
/// remembered).
const CLIENT_MAX_RESET_STREAMS: usize = 1024;

/// Runs the HTTP/2 handshake over `io` and starts the connection's driver task. The
/// connection is returned once the server's SETTINGS have arrived: before that h2
/// assumes unlimited concurrent streams and the first calls could be refused (grpc-go
/// also waits for the server preface).
pub(crate) async fn connect(io: BoxIo, settings: &ClientSettings) -> Result<Conn, String> {
    let goaway_last_stream_id = Arc::new(AtomicU32::new(u32::MAX));
    let observed = Observed::new(io, Side::Client).with_goaway_sink(goaway_last_stream_id.clone());
    let (io, flusher) = CoalescingIo::new(observed);
    let io = ParkedRead::new(io);
    let handshake = h2::client::Builder::new()
        .initial_window_size(settings.initial_stream_window)
        .initial_connection_window_size(settings.initial_connection_window)
        .max_send_buffer_size(STREAM_WRITE_QUOTA)
        // Calls whose deadline fires reset their streams; the server's answer may
        // already be on its way. h2 remembers only 10 reset streams by default and
        // answers frames on any other with RST_STREAM(STREAM_CLOSED), counting each as a
        // local error; after 1024 in the connection's life it sends GOAWAY
        // ENHANCE_YOUR_CALM and every call on it fails (seen under a deadline storm in
        // tests/overload.rs). Remembering more reset streams lets h2 ignore those
        // frames, as RFC 9113 section 5.4.2 allows; the count is a server's defence
        // against a flooding client and is off here, as grpc-go's client has none.
        .max_concurrent_reset_streams(CLIENT_MAX_RESET_STREAMS)
        .max_local_error_reset_streams(None)
        .handshake::<_, Bytes>(io);
    let (send_request, mut connection) =
        match tokio::time::timeout(settings.connect_timeout, handshake).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(format!("handshake: {e}")),
            Err(_) => return Err("handshake: timed out".into()),
        };
    let mut pings = connection.ping_pong();
    if let Some(pings) = &mut pings {
        // The server sends its SETTINGS before it answers a PING.
        pings
            .send_ping(h2::Ping::opaque())
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let state = Arc::new(State {
        phase: AtomicU8::new(READY),
        goaway_last_stream_id,
        too_many_pings: AtomicBool::new(false),
        limit: AtomicUsize::new(0),
        left_ready: Signal::default(),
    });
    let (writer, writer_task) = Writer::new();
    flusher.take_over();
    let (ready_tx, ready_rx) = oneshot::channel();
    let streams = Arc::new(Semaphore::new(0));
    let driver = Driver {
        connection,
        flusher,
        writer_task: Some(writer_task),
        pings,
        handshake: Some(ready_tx),
        pinger: Pinger::new(settings.keepalive),
        streams: streams.clone(),
        state: state.clone(),
        timer: Box::pin(tokio::time::sleep(Duration::from_secs(365 * 24 * 3600))),
        armed: None,
        linger: None,
    };
    tokio::spawn(driver.run());
    match tokio::time::timeout(settings.connect_timeout, ready_rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(refused))) => return Err(format!("handshake: {refused}")),
        Ok(Err(_)) => return Err("handshake: connection closed".into()),
        Err(_) => return Err("handshake: timed out waiting for the server's SETTINGS".into()),
    }
    // A server that sets no limit allows "unlimited" streams; cap what we open at once
    // so the permit count stays sane.
    let limit = send_request
        .current_max_send_streams()
        .min(MAX_OPEN_STREAMS);
    state.limit.store(limit, Ordering::Release);
    streams.add_permits(limit);
    Ok(Conn {
        streams,
        send_request,
        writer,
        next_key: AtomicU64::new(1),
        state,
    })
}

/// Owns one h2 client connection (see the module doc for its states).
struct Driver {
    connection: h2::client::Connection<super::H2Io, Bytes>,
    /// Writes what h2 wrote during a wake-up, once, at its end (see `coalesce`).
    flusher: Flusher<Observed>,
    /// `None` once every `Writer` handle is gone (the channel let the connection go).
    writer_task: Option<WriterTask>,
    pings: Option<h2::PingPong>,
    /// Told when the handshake's PING is acked (Handshaking -> Ready), or why the
    /// server refused the connection (a GOAWAY before it).
    handshake: Option<oneshot::Sender<Result<(), String>>>,
    pinger: Pinger,
    streams: Arc<Semaphore>,
    state: Arc<State>,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    /// Started when the last handle is gone and no call is left (`poll_linger`).
    linger: Option<Pin<Box<Sleep>>>,
}

impl Driver {
    async fn run(mut self) {
        // Made at the first poll, from the task's context.
        let mut gate: Option<Gate> = None;
        std::future::poll_fn(|cx| Gate::awake(&mut gate, cx, |cx, gate| self.poll(cx, gate))).await;
        self.set_phase(CLOSED);
        // Callers waiting for a stream permit learn at once that this connection is
        // gone (they see UNAVAILABLE and the channel dials again).
        self.streams.close();
    }

    /// One wake-up: the writer hands h2 what callers queued, h2 reads and writes, the
    /// observer's notes and the timers are acted on, and everything h2 wrote leaves in
    /// one flush (see `coalesce`).
    ///
    /// h2 alone is polled with the `gate`'s waker, everything else with the task's
    /// (`cx`): h2 wakes the task for each request the writer hands it, right here, and
    /// the rearm before h2's poll, which writes those requests out, keeps that from
    /// polling the task again for nothing (2.9 polls per c=1 ping-pong message
    /// without it, 2.0 with). A caller's request wakes the task through the writer's
    /// queue, past the gate, so one queued after the writer's poll is never lost.
    fn poll(&mut self, cx: &mut Context<'_>, gate: &Gate) -> Poll<()> {
        let mut queued = false;
        if let Some(writer) = &mut self.writer_task {
            match writer.poll_write(cx) {
                Written::Nothing => {}
                Written::Frames => queued = true,
                // Closed: every handle is gone; h2 finishes the streams left and closes.
                Written::Closed => {
                    self.writer_task = None;
                    self.set_phase(DRAINING);
                }
            }
        }
        gate.rearm();
        let done = Pin::new(&mut self.connection).poll(&mut Context::from_waker(gate.waker()));
        self.poll_pings(cx);
        let seen = self.flusher.with_io(Observed::take_seen);
        // A GOAWAY read in this round explains a loss better than h2's error does.
        self.poll_observed(seen.goaway);
        if let Poll::Ready(Err(e)) = &done {
            if let Some(handshake) = self.handshake.take() {
                // Lost before it was ever ready; over TLS 1.3 this is where a server
                // that refused our client certificate says so (its alert comes
                // after the client's side of the handshake is done).
                let _ = handshake.send(Err(format!("connection lost: {e}")));
            }
        }
        let closing = self.poll_timers(cx, seen.last_read);
        let _ = self.flusher.poll_flush(cx);
        if closing || (done.is_pending() && self.poll_linger(cx)) {
            return Poll::Ready(());
        }
        if queued && done.is_pending() && self.state.active_calls(&self.streams) > 1 {
            Self::let_callers_queue(cx);
        }
        done.map(|_| ())
    }

    /// After a wake-up that wrote, with other calls in flight: the task wakes itself,
    /// so tokio polls it again only after the tasks runnable now, the callers its
    /// reads woke among them. Their requests then wake a task already scheduled, and
    /// the next poll takes them in one batch and one flush. Without it, each caller's
    /// request woke the task into the slot tokio runs next, ahead of the other callers:
    /// a poll and a `sendto` per request, and one connection with 200 unary calls in
    /// flight lost 5-20% (h2's wake for the frames the writer hands it did this before
    /// the gate swallowed it, for every wake-up, c=1 included: there the extra poll
    /// finds nothing). The first request of a batch still leaves alone, in its own
    /// write; putting that flush off one pass as well (the driver did, when two
    /// responses had completed since the last flush) no longer changed the `sendto`
    /// count per call: 0.016 at 1x200, 0.042-0.046 at 8x50, 0.15-0.16 at 8x50
    /// against tonic's server, with and without.
    fn let_callers_queue(cx: &Context<'_>) {
        cx.waker().wake_by_ref();
    }

    /// Whether a connection the channel let go has lingered long enough: with every
    /// `Writer` handle gone, no call is left (a call holds its `Conn`, and the `Conn`
    /// its writer, for as long as it holds a stream permit) and h2 only has its last
    /// frames (resets, GOAWAY) to write; a server that does not read would hold the
    /// connection and this task for as long as it keeps the socket open, so after
    /// [`CLOSE_LINGER`] it is dropped.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> bool {
        if self.writer_task.is_some() {
            return false;
        }
        let linger = self
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_LINGER)));
        linger.as_mut().poll(cx).is_ready()
    }

    fn set_phase(&self, phase: u8) {
        // Only ever forward: READY -> DRAINING -> CLOSED.
        self.state.phase.fetch_max(phase, Ordering::AcqRel);
        self.state.left_ready.set();
    }

    fn poll_pings(&mut self, cx: &mut Context<'_>) {
        let Some(pings) = &mut self.pings else {
            return;
        };
        if let Poll::Ready(result) = pings.poll_pong(cx) {
            if let Some(ready) = self.handshake.take() {
                if result.is_ok() {
                    let _ = ready.send(Ok(()));
                }
            }
        }
    }

    /// A GOAWAY from the server: Draining, with the last stream id it processed.
    fn poll_observed(&mut self, goaway: Option<GoAway>) {
        if let Some(goaway) = goaway {
            if let Some(handshake) = self.handshake.take() {
                // A GOAWAY before the connection was ever ready: the server refused
                // it (our TLS port answers a plaintext client so, see `sniff`); its
                // debug data says why.
                let _ = handshake.send(Err(format!(
                    "the server refused the connection: GOAWAY {:?}{}",
                    h2::Reason::from(goaway.error_code),
                    if goaway.debug.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", String::from_utf8_lossy(&goaway.debug))
                    }
                )));
            }
            if goaway.error_code == u32::from(h2::Reason::ENHANCE_YOUR_CALM)
                && goaway.debug == b"too_many_pings"
            {
                self.state.too_many_pings.store(true, Ordering::Release);
            }
            self.set_phase(DRAINING);
        }
    }

    /// Keepalive. Returns true when the connection must close now.
    fn poll_timers(&mut self, cx: &mut Context<'_>, last_read: Instant) -> bool {
        if self.handshake.is_some() || !self.pinger.is_enabled() {
            return false;
        }
        let active = self.state.active_calls(&self.streams);
        // An ack (any read) after our ping: step the pinger now, not at the ack
        // deadline, so the next ping is due `time` after this read.
        if self.pinger.is_answered(last_read) {
            self.armed = None;
        }
        if self.pinger.is_dormant() && active > 0 {
            self.armed = None;
        }
        loop {
            if self.armed.is_some() && self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            match self.pinger.poll(Instant::now(), last_read, active) {
                PingAction::Wait => {}
                PingAction::Ping => {
                    if let Some(pings) = &mut self.pings {
                        let _ = pings.send_ping(h2::Ping::opaque());
                    }
                }
                // keepalive.md: no ack within the timeout: the transport is closed and
                // its calls fail UNAVAILABLE.
                PingAction::Close => return true,
            }
            self.armed = self.pinger.deadline(last_read);
            match self.armed {
                Some(at) => self
                    .timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at)),
                None => return false,
            }
        }
    }
}
