//! A write buffer between h2 and the socket, so that the frames one wake-up of a
//! connection's task produces leave in one write.
//!
//! h2's encoder hands the socket every DATA frame of 256 bytes or more (1 KiB or more
//! for a writer that is not vectored, as this one says it is not) with its own write
//! and flush (its chain threshold; h2 issue 902): a server answering 1 KiB calls made
//! one `writev` per reply (204k for 200k h2load requests) against 0.02 per reply at 10
//! bytes. Here h2's writes are copies into one buffer of at most
//! [`WRITE_BUFFER_BYTES`], and h2's flushes are deferred to the connection's driver,
//! which calls [`Flusher::poll_flush`] once at the end of every wake-up, after it has
//! polled h2 and the control-buffer writer: one syscall per batch.
//!
//! Safety of deferring: the driver flushes before its task goes to sleep, so no byte
//! h2 believes flushed waits longer than the rest of the current wake-up; if the
//! socket is full the flush registers the task for writability. Until the driver takes
//! over (during the handshake) and after it is gone, a flush is a real flush.
//!
//! Bound: the buffer never holds more than [`WRITE_BUFFER_BYTES`]; a write that would
//! overflow it first drains it to the socket (and waits if the socket is full). The
//! buffer is taken at the first write of a wake-up (not when the connection opens: a
//! touched page per idle connection showed in its RSS) and given up at every flush,
//! so idle connections hold none. Given up to a small per-thread stock of spares
//! ([`SPARES_PER_THREAD`]), not to the allocator: a fresh 16 KiB request every wake-up
//! made glibc's `malloc` consolidate its fast bins each time (any request of 1 KiB or
//! more does), which cost a busy server about 500 instructions per small call in the
//! request itself and more in the small allocations after it, which then missed
//! those bins.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes buffered at most per connection before a write goes to the socket: four
/// 16 KiB frames, one large write on loopback or a LAN.
pub(crate) const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// What the buffer reserves at the first write of a wake-up: one 16 KiB frame, or a
/// few hundred small replies. Reserved, not touched: only written bytes cost RSS.
const FIRST_RESERVE: usize = 16 * 1024;
/// Emptied buffers a thread keeps for the next wake-up of any connection it runs: one
/// serves connections that take turns on a worker, a few cover a connection whose
/// flush waits on a full socket while the others run. At most this many times
/// [`WRITE_BUFFER_BYTES`] per worker thread (its touched pages stay with the process
/// after a burst: per thread, not per connection).
const SPARES_PER_THREAD: usize = 4;

thread_local! {
    static SPARES: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `want` bytes: a spare if the thread has one.
fn take_buffer(want: usize) -> Vec<u8> {
    // `try_with`: a flush while the thread's locals are torn down gets a new buffer.
    let spare = SPARES.try_with(|spares| spares.borrow_mut().pop());
    let mut buf = spare.ok().flatten().unwrap_or_default();
    buf.reserve(want);
    buf
}

/// Keeps `buf`, emptied, as a spare if the thread has room for one.
fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > WRITE_BUFFER_BYTES {
        return;
    }
    buf.clear();
    let _ = SPARES.try_with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.len() < SPARES_PER_THREAD {
            spares.push(buf);
        }
    });
}

struct Shared<T> {
    io: T,
    buf: Vec<u8>,
    /// Bytes of `buf` before this offset were written by a partial write.
    written: usize,
    /// The driver has taken over flushing: h2's flushes leave the bytes buffered.
    deferred: bool,
    /// The kind of the write error that broke the connection, reported to every later
    /// write so h2 learns of it.
    broken: Option<io::ErrorKind>,
    /// h2 has flushed and written nothing since: its output ends on a frame boundary
    /// (its encoder hands over every frame whole before it flushes), so a frame of our
    /// own may be appended (see [`Flusher::inject`]).
    boundary: bool,
}

impl<T: AsyncWrite + Unpin> Shared<T> {
    fn check(&self) -> io::Result<()> {
        match self.broken {
            Some(kind) => Err(kind.into()),
            None => Ok(()),
        }
    }

    /// Writes the buffer to the socket until it is empty.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        while self.written < self.buf.len() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..])) {
                Ok(0) => return Poll::Ready(Err(self.fail(io::ErrorKind::WriteZero))),
                Ok(n) => self.written += n,
                Err(e) => return Poll::Ready(Err(self.fail(e.kind()))),
            }
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn fail(&mut self, kind: io::ErrorKind) -> io::Error {
        self.broken = Some(kind);
        kind.into()
    }

    /// Accepts up to `total` bytes of `bufs`: makes room first (draining to the
    /// socket), writes straight through when the buffer is empty and the write alone
    /// fills it, and otherwise copies.
    fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.buf.len() + total > WRITE_BUFFER_BYTES {
            ready!(self.poll_drain(cx))?;
        }
        if self.buf.is_empty() && total >= WRITE_BUFFER_BYTES {
            self.boundary = false;
            return match ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs)) {
                Ok(n) => Poll::Ready(Ok(n)),
                Err(e) => Poll::Ready(Err(self.fail(e.kind()))),
            };
        }
        if self.buf.capacity() == 0 {
            // The first write of a wake-up: room for the usual batch at once, rather
            // than a dozen doublings (each a realloc and a copy) from a few bytes.
            self.buf = take_buffer(total.max(FIRST_RESERVE));
        }
        let mut taken = 0;
        for b in bufs {
            let room = WRITE_BUFFER_BYTES - self.buf.len();
            if room == 0 {
                break;
            }
            let n = b.len().min(room);
            self.buf.extend_from_slice(&b[..n]);
            taken += n;
        }
        self.boundary = false;
        Poll::Ready(Ok(taken))
    }
}

/// The transport h2 reads and writes: reads pass through, writes are buffered.
pub(crate) struct CoalescingIo<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// The driver's handle: flushes what h2 wrote once per wake-up.
pub(crate) struct Flusher<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    // Only the connection's own task touches it; a panic there ends the connection,
    // so a poisoned state is never observed mid-update.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> CoalescingIo<T> {
    /// Wraps `io`. Flushes stay real until [`Flusher::take_over`].
    pub(crate) fn new(io: T) -> (CoalescingIo<T>, Flusher<T>) {
        let shared = Arc::new(Mutex::new(Shared {
            io,
            buf: Vec::new(),
            written: 0,
            deferred: false,
            broken: None,
            boundary: true,
        }));
        let flusher = Flusher {
            shared: shared.clone(),
        };
        (CoalescingIo { shared }, flusher)
    }
}

impl<T> Flusher<T> {
    /// From now on h2's flushes only leave the bytes buffered, and the caller promises
    /// to call [`Flusher::poll_flush`] before its task sleeps. Dropping the `Flusher`
    /// makes flushes real again.
    pub(crate) fn take_over(&self) {
        lock(&self.shared).deferred = true;
    }
}

impl<T> Flusher<T> {
    /// Runs `f` on the byte stream under the buffer (the driver reads the frame
    /// observer's notes this way, under the lock it already takes).
    pub(crate) fn with_io<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut lock(&self.shared).io)
    }

    /// Appends `frame`, a whole HTTP/2 frame of our own, to the bytes h2 wrote, if
    /// h2's output is at a frame boundary; returns whether it did. Used for what h2
    /// cannot send: a GOAWAY with debug data (`too_many_pings`, gRFC A8). The caller
    /// stops polling h2 afterwards, so h2 writes nothing after it.
    pub(crate) fn inject(&self, frame: &[u8]) -> bool {
        let mut shared = lock(&self.shared);
        if !shared.boundary || shared.broken.is_some() {
            return false;
        }
        shared.buf.extend_from_slice(frame);
        true
    }
}

impl<T: AsyncWrite + Unpin> Flusher<T> {
    /// Flushes what is buffered and shuts the write side down (after an injected
    /// GOAWAY the connection is closed by us, not by h2).
    pub(crate) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        ready!(shared.poll_drain(cx))?;
        Pin::new(&mut shared.io).poll_shutdown(cx)
    }

    /// Writes everything buffered. Pending means the socket is full and the task will
    /// be woken when it drains; an error is also reported to h2's next write.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        ready!(shared.poll_drain(cx))?;
        // Idle connections keep no buffer.
        give_back(std::mem::take(&mut shared.buf));
        Pin::new(&mut shared.io).poll_flush(cx)
    }
}

impl<T> Drop for Flusher<T> {
    fn drop(&mut self) {
        lock(&self.shared).deferred = false;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        lock(&self.shared).poll_write_slices(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        lock(&self.shared).poll_write_slices(cx, bufs)
    }

    /// No, though `poll_write_vectored` works: every write is a copy into the buffer,
    /// so slices save nothing, and a vectored writer costs h2 more. For each write it
    /// fills an array of 64 `IoSlice`s (tokio-util's `poll_write_buf`), and it chains
    /// DATA payloads from 256 bytes instead of copying them into its own buffer up to
    /// 1 KiB. Callgrind, h2load 8x50: 191 instructions fewer per 10 B call, 179 per
    /// 1 KiB call, 2.4k per 64 KiB call.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        shared.boundary = true;
        if shared.deferred {
            return Poll::Ready(shared.check());
        }
        ready!(shared.poll_drain(cx))?;
        Pin::new(&mut shared.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        ready!(shared.poll_drain(cx))?;
        Pin::new(&mut shared.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn flushed_buffers_are_reused_and_at_most_a_few_are_kept() {
        let first = take_buffer(FIRST_RESERVE);
        let ptr = first.as_ptr();
        give_back(first);
        let again = take_buffer(10);
        assert_eq!(again.as_ptr(), ptr, "the next wake-up reuses the spare");
        assert!(again.is_empty() && again.capacity() >= FIRST_RESERVE);
        for _ in 0..SPARES_PER_THREAD + 3 {
            give_back(vec![1u8; 100]);
        }
        give_back(again);
        let kept = SPARES.with(|spares| spares.borrow().len());
        assert_eq!(kept, SPARES_PER_THREAD);
        SPARES.with(|spares| spares.borrow_mut().clear());
        give_back(Vec::with_capacity(WRITE_BUFFER_BYTES + 1));
        give_back(Vec::new());
        assert_eq!(SPARES.with(|spares| spares.borrow().len()), 0);
    }

    #[tokio::test]
    async fn deferred_writes_reach_the_peer_only_when_the_driver_flushes() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let (mut io, flusher) = CoalescingIo::new(a);
        flusher.take_over();
        io.write_all(b"hello ").await.unwrap();
        io.write_all(b"world").await.unwrap();
        io.flush().await.unwrap();
        let mut got = [0u8; 11];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), b.read_exact(&mut got));
        assert!(
            early.await.is_err(),
            "nothing may leave before the driver flushes"
        );
        std::future::poll_fn(|cx| flusher.poll_flush(cx))
            .await
            .unwrap();
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
    }

    #[tokio::test]
    async fn the_buffer_never_exceeds_its_bound_and_keeps_the_byte_order() {
        // A peer buffer smaller than ours: writes must wait for the reader.
        let (a, mut b) = tokio::io::duplex(4096);
        let (mut io, flusher) = CoalescingIo::new(a);
        flusher.take_over();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        for chunk in data.chunks(7000) {
            io.write_all(chunk).await.unwrap();
            assert!(lock(&io.shared).buf.len() <= WRITE_BUFFER_BYTES);
        }
        std::future::poll_fn(|cx| flusher.poll_flush(cx))
            .await
            .unwrap();
        drop(flusher);
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), data);
    }

    #[tokio::test]
    async fn a_frame_is_injected_only_at_a_boundary() {
        let (a, mut b) = tokio::io::duplex(1024);
        let (mut io, flusher) = CoalescingIo::new(a);
        flusher.take_over();
        io.write_all(b"half").await.unwrap();
        assert!(!flusher.inject(b"X"), "mid-write: no boundary");
        io.flush().await.unwrap();
        assert!(flusher.inject(b"X"));
        std::future::poll_fn(|cx| flusher.poll_close(cx))
            .await
            .unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"halfX");
    }

    #[tokio::test]
    async fn without_a_flusher_a_flush_is_real() {
        let (a, mut b) = tokio::io::duplex(1024);
        let (mut io, flusher) = CoalescingIo::new(a);
        flusher.take_over();
        drop(flusher);
        io.write_all(b"now").await.unwrap();
        io.flush().await.unwrap();
        let mut got = [0u8; 3];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"now");
    }
}
