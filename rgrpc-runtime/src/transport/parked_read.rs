//! A read that would block is remembered until the waker it left fires, so h2's
//! repeated reads within one wake-up of a connection cost a flag check.
//!
//! h2 reads from its byte stream every time it is polled, and a server's driver polls
//! it once per stream it accepts (`poll_accept` drives the connection first): a
//! wake-up that answered 50 small calls made 49 reads after the first had come back
//! `Pending`, each through the coalescing layer's lock, the frame observer, the byte
//! stream's box and tokio's readiness check (its waiter lock and a waker compare).
//!
//! Once a read has returned `Pending`, the layers below hold its waker for whatever
//! they wait on (the socket's readiness); until that waker fires, a new read could
//! only return `Pending` again. So the reads below get our own waker ([`ReadWake`]),
//! which records that it fired and wakes the reader's; a read while the last one is
//! parked and nothing has fired returns `Pending` at once. A read with another waker
//! than the parked one's goes down, so that the new waker is the one woken.
//!
//! ```text
//!   Open --read: Pending below--> Parked
//!     ^                             | read, nothing fired, same waker: Pending here
//!     +---- read after a fire, -----+
//!           or with another waker: goes down again
//! ```
//!
//! Writes go straight through.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The waker the reads below are given: notes the fire, then wakes the reader.
struct ReadWake {
    fired: AtomicBool,
    /// The waker of the read that parked.
    reader: Mutex<Waker>,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Set before the reader is woken, so the read it wakes for goes down.
        self.fired.store(true, Ordering::SeqCst);
        self.reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wake_by_ref();
    }
}

/// The state drawn in the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The next read goes down.
    Open,
    /// The last read returned `Pending` below, with our waker.
    Parked,
}

/// `T` with its reads parked (see the module doc).
pub(crate) struct ParkedRead<T> {
    io: T,
    state: Read,
    wake: Arc<ReadWake>,
    /// `wake` as a `Waker`, built once.
    waker: Waker,
    /// The reader's waker `wake` holds, kept here too so that a read compares without
    /// the lock.
    reader: Waker,
}

impl<T> ParkedRead<T> {
    /// Wraps `io`.
    pub(crate) fn new(io: T) -> ParkedRead<T> {
        let reader = Waker::noop().clone();
        let wake = Arc::new(ReadWake {
            fired: AtomicBool::new(false),
            reader: Mutex::new(reader.clone()),
        });
        ParkedRead {
            io,
            state: Read::Open,
            waker: Waker::from(wake.clone()),
            wake,
            reader,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParkedRead<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let same_reader = this.reader.will_wake(cx.waker());
        if this.state == Read::Parked && same_reader && !this.wake.fired.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        if !same_reader {
            this.reader = cx.waker().clone();
            *this.wake.reader.lock().unwrap_or_else(|e| e.into_inner()) = cx.waker().clone();
        }
        // Cleared before the read below registers our waker: a fire from here on is
        // seen by the next read.
        this.wake.fired.store(false, Ordering::SeqCst);
        let mut below = Context::from_waker(&this.waker);
        let read = Pin::new(&mut this.io).poll_read(&mut below, buf);
        this.state = match read {
            Poll::Pending => Read::Parked,
            Poll::Ready(_) => Read::Open,
        };
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParkedRead<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::AsyncWriteExt;

    /// Counts the reads that reach the byte stream below.
    struct Counted<T> {
        io: T,
        reads: Arc<AtomicUsize>,
    }

    impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    /// A parked reader over one end of a pipe, the other end, and the count of reads
    /// that reached the pipe.
    fn counted() -> (
        ParkedRead<Counted<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
        Arc<AtomicUsize>,
    ) {
        let (near, far) = tokio::io::duplex(64);
        let reads = Arc::new(AtomicUsize::new(0));
        let io = ParkedRead::new(Counted {
            io: near,
            reads: reads.clone(),
        });
        (io, far, reads)
    }

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_parked_read_waits_for_its_waker_and_then_reads_what_came() {
        let (mut io, mut far, reads) = counted();
        let woken = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut bytes = [0u8; 8];

        // Nothing to read: parked after one read below; the next ones stay here.
        for _ in 0..5 {
            let mut buf = ReadBuf::new(&mut bytes);
            assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "four reads kept from below"
        );

        // Bytes arrive: the waker below fires and wakes ours; the read goes down.
        far.write_all(b"ping").await.unwrap();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        let mut buf = ReadBuf::new(&mut bytes);
        assert!(matches!(
            Pin::new(&mut io).poll_read(&mut cx, &mut buf),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(buf.filled(), b"ping");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_read_with_another_waker_goes_down_and_is_the_one_woken() {
        let (mut io, mut far, reads) = counted();
        let first = Arc::new(CountWake(AtomicUsize::new(0)));
        let second = Arc::new(CountWake(AtomicUsize::new(0)));
        let first_waker = Waker::from(first.clone());
        let second_waker = Waker::from(second.clone());
        let mut bytes = [0u8; 8];
        let mut buf = ReadBuf::new(&mut bytes);
        let mut cx = Context::from_waker(&first_waker);
        assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
        let mut cx = Context::from_waker(&second_waker);
        assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        far.write_all(b"x").await.unwrap();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}
