//! The frame observer: a byte stream wrapper that notes which HTTP/2 frames cross it,
//! for what h2 does not tell its user.
//!
//! h2 answers PINGs and SETTINGS itself and reports neither; a GOAWAY reaches the client
//! only as failed streams. The drivers need all three: the server counts a client's
//! PINGs against its keepalive policy (gRFC A8), the client marks its connection
//! draining the moment a GOAWAY arrives and learns its last stream id and debug data,
//! and both stamp the time of the last read (keepalive's proof of life). So the bytes
//! h2 reads pass through a [`Scanner`] first: it reads each 9-byte frame header and
//! skips payloads by counting, a few instructions per frame and constant memory
//! whatever the peer sends.
//!
//! The frame log: with the environment variable `RGRPC_FRAME_LOG` set (to anything but
//! `0` or empty), every frame received and sent is printed to stderr, one line each
//! (like grpc-go's `GODEBUG=http2debug=2`). When it is unset, the written bytes are not
//! scanned at all.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::authority::AuthorityFix;
use super::frames::{Detail, Frame, Kind, Scanner, Start};
use super::io::BoxIo;

/// Which end of the connection this is, for the log and the preface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The server: its input starts with the client's connection preface.
    Server,
    /// The client.
    Client,
}

/// A GOAWAY the peer sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GoAway {
    /// The highest stream id the peer may have processed.
    pub last_stream_id: u32,
    /// The error code (0 = NO_ERROR).
    pub error_code: u32,
    /// The first bytes of the debug data (grpc sends `too_many_pings` here).
    pub debug: Vec<u8>,
}

/// What the peer sent since the driver last looked.
#[derive(Debug)]
pub(crate) struct Seen {
    /// When bytes were last read from the peer.
    pub last_read: Instant,
    /// PING frames without ACK received since the last `take_seen`.
    pub pings: u32,
    /// PING ACKs received since the last `take_seen`.
    pub ping_acks: u32,
    /// SETTINGS frames without ACK received since the last `take_seen`.
    pub settings: u32,
    /// The last GOAWAY received.
    pub goaway: Option<GoAway>,
}

/// Whether `RGRPC_FRAME_LOG` asks for the frame log (read once).
pub(crate) fn frame_log_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var_os("RGRPC_FRAME_LOG").is_some_and(|v| !v.is_empty() && v != "0")
    })
}

/// Numbers connections in the frame log.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// The frame log's state for one connection.
struct Log {
    conn: u64,
    side: Side,
    send: Scanner,
}

/// A byte stream whose frames are observed (see the module doc).
pub(crate) struct Observed {
    io: BoxIo,
    recv: Scanner,
    log: Option<Box<Log>>,
    /// What the driver reads (through the coalescing layer's lock, see
    /// `coalesce::Flusher::with_io`).
    pub seen: Seen,
    /// Lowered to a received GOAWAY's last stream id the moment it is read, before h2
    /// fails the streams above it, so a failed call can tell whether it was refused.
    goaway_sink: Option<Arc<AtomicU32>>,
    /// Unix-socket servers: the `:authority` rewrite on the read path (see
    /// `authority`); boxed, as few connections need it.
    fix: Option<Box<AuthorityFix>>,
}

impl Observed {
    /// Wraps `io` of the `side` end of a connection.
    pub(crate) fn new(io: BoxIo, side: Side) -> Observed {
        let start = match side {
            Side::Server => Start::Preface,
            Side::Client => Start::Frames,
        };
        let log = frame_log_enabled().then(|| {
            Box::new(Log {
                conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
                side,
                send: Scanner::new(match side {
                    Side::Server => Start::Frames,
                    Side::Client => Start::Preface,
                }),
            })
        });
        Observed {
            io,
            recv: Scanner::new(start),
            log,
            seen: Seen {
                last_read: Instant::now(),
                pings: 0,
                ping_acks: 0,
                settings: 0,
                goaway: None,
            },
            goaway_sink: None,
            fix: None,
        }
    }

    /// Also rewrites socket-path `:authority` values so h2 accepts them (see
    /// `authority`): for servers on a Unix socket.
    pub(crate) fn with_authority_fix(mut self) -> Observed {
        self.fix = Some(Box::new(AuthorityFix::new()));
        self
    }

    /// A read through the `:authority` rewrite: hands on what it has made ready,
    /// reading more from the socket when it has none.
    fn poll_read_fixed(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(fix) = self.fix.as_deref_mut() else {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        };
        loop {
            if !fix.ready().is_empty() {
                let n = fix.ready().len().min(buf.remaining());
                buf.put_slice(&fix.ready()[..n]);
                fix.consume(n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 4096];
            let room = fix.room().min(chunk.len());
            let mut read = ReadBuf::new(&mut chunk[..room]);
            std::task::ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                fix.finish();
                if fix.ready().is_empty() {
                    return Poll::Ready(Ok(())); // end of input
                }
                continue;
            }
            fix.push(read.filled());
        }
    }

    /// Also lowers `sink` to the last stream id of every GOAWAY read.
    pub(crate) fn with_goaway_sink(mut self, sink: Arc<AtomicU32>) -> Observed {
        self.goaway_sink = Some(sink);
        self
    }

    /// What the peer sent since the last call: the counts and the GOAWAY are taken,
    /// the time of the last read copied. One call (one lock) per driver wake-up.
    pub(crate) fn take_seen(&mut self) -> Seen {
        Seen {
            last_read: self.seen.last_read,
            pings: std::mem::take(&mut self.seen.pings),
            ping_acks: std::mem::take(&mut self.seen.ping_acks),
            settings: std::mem::take(&mut self.seen.settings),
            goaway: self.seen.goaway.take(),
        }
    }

    fn on_read(&mut self, bytes: &[u8]) {
        self.seen.last_read = Instant::now();
        if self.recv.is_broken() {
            // Not HTTP/2 (a bad preface): h2 rejects the connection itself.
            return;
        }
        let seen = &mut self.seen;
        let sink = self.goaway_sink.as_deref();
        let log = self.log.as_deref().map(|l| (l.conn, l.side));
        // Without the log, whole DATA and HEADERS frames are skipped: nothing here
        // acts on them.
        self.recv
            .feed_skipping_streams(bytes, log.is_none(), &mut |frame: &Frame| {
                if let Some((conn, side)) = log {
                    print_frame(conn, side, "recv", frame);
                }
                match (&frame.kind, &frame.detail) {
                    (Kind::Ping, Detail::Ping { ack: false, .. }) => seen.pings += 1,
                    (Kind::Ping, Detail::Ping { ack: true, .. }) => seen.ping_acks += 1,
                    (Kind::Settings, Detail::Settings { ack: false }) => seen.settings += 1,
                    (
                        Kind::GoAway,
                        Detail::GoAway {
                            last_stream_id,
                            error_code,
                            debug,
                        },
                    ) => {
                        if let Some(sink) = sink {
                            sink.fetch_min(*last_stream_id, Ordering::AcqRel);
                        }
                        seen.goaway = Some(GoAway {
                            last_stream_id: *last_stream_id,
                            error_code: *error_code,
                            debug: debug.clone(),
                        });
                    }
                    _ => {}
                }
            });
    }

    fn on_write(&mut self, bufs: &[IoSlice<'_>], mut n: usize) {
        let Some(log) = self.log.as_deref_mut() else {
            return;
        };
        let (conn, side) = (log.conn, log.side);
        for b in bufs {
            if n == 0 {
                break;
            }
            let take = b.len().min(n);
            n -= take;
            log.send.feed(&b[..take], &mut |frame: &Frame| {
                print_frame(conn, side, "send", frame);
            });
        }
    }
}

fn print_frame(conn: u64, side: Side, dir: &str, frame: &Frame) {
    let side = match side {
        Side::Server => "server",
        Side::Client => "client",
    };
    eprintln!("rgrpc-frame {side} conn={conn} {dir} {frame}");
}

impl AsyncRead for Observed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = self.poll_read_fixed(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let filled = &buf.filled()[before..];
            if !filled.is_empty() {
                self.on_read(filled);
            }
        }
        result
    }
}

impl AsyncWrite for Observed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.on_write(&[IoSlice::new(buf)], n);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            self.on_write(bufs, n);
        }
        result
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn seen_counts_pings_between_the_stream_frames_it_skips() {
        let (near, mut far) = tokio::io::duplex(4096);
        let mut observed = Observed::new(BoxIo::other(near), Side::Client);
        let mut bytes = frame(0x1, 0x5, 1, &[]); // HEADERS, END_STREAM | END_HEADERS
        bytes.extend(frame(0x6, 0x0, 0, &[7; 8])); // PING
        bytes.extend(frame(0x0, 0x1, 3, b"abc")); // DATA, END_STREAM
        bytes.extend(frame(0x6, 0x1, 0, &[7; 8])); // PING ACK
        bytes.extend(frame(0x0, 0x0, 5, b"abc")); // DATA, more to come
        far.write_all(&bytes).await.unwrap();
        let mut read = vec![0; bytes.len()];
        observed.read_exact(&mut read).await.unwrap();
        let seen = observed.take_seen();
        assert_eq!((seen.pings, seen.ping_acks), (1, 1));
        let again = observed.take_seen();
        assert_eq!(
            (again.pings, again.ping_acks),
            (0, 0),
            "counted since the last take"
        );
    }
}
