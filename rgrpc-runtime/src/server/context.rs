//! What a handler knows about its call: incoming metadata, deadline, peer, its
//! cancellation and the server's draining, and the metadata it sends back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::transport::io::PeerAddr;
use crate::transport::server::ConnShared;
use crate::transport::signal::Signal;

use crate::codec::compression::Encoding;
use crate::metadata::Metadata;
use crate::status::Status;

/// The server-side context of one call, cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The request's URI: `:path` is the full method, plus `:authority`. Kept whole
    /// (moved, not copied) so neither costs an allocation per call.
    uri: http::Uri,
    /// The request metadata until the handler first reads it (see `RequestMetadata`).
    pending_metadata: Mutex<Option<RequestMetadata>>,
    /// The request metadata, once read.
    metadata: OnceLock<Metadata>,
    deadline: Option<Instant>,
    /// The connection: its peer, and its draining and cancelled signals.
    conn: Arc<ConnShared>,
    /// Set when the client resets the call.
    reset: Signal,
    /// Whether the client accepts gzip responses (its `grpc-accept-encoding`).
    accepts_gzip: bool,
    request_compressed: AtomicBool,
    outgoing: Mutex<Outgoing>,
}

/// The request metadata before the handler reads it.
pub(crate) enum RequestMetadata {
    /// The request's header block, reserved headers and all: sorted out into
    /// [`Metadata`] on the first read, so a call whose handler never reads its
    /// metadata never pays for it (removing the reserved headers was ~700
    /// instructions of a small unary call).
    Raw(http::HeaderMap),
    /// Already sorted out: a call whose stats handler saw it, or an intercepted
    /// call's metadata as its interceptors left it.
    Ready(Metadata),
}

impl std::fmt::Debug for RequestMetadata {
    // The raw block still holds the reserved headers: shown only as unread.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestMetadata::Raw(_) => f.write_str("RequestMetadata(unread)"),
            RequestMetadata::Ready(metadata) => metadata.fmt(f),
        }
    }
}

impl RequestMetadata {
    fn into_metadata(self) -> Metadata {
        match self {
            RequestMetadata::Raw(map) => Metadata::from_received(map),
            RequestMetadata::Ready(metadata) => metadata,
        }
    }
}

/// What [`ServerContext::metadata`] returns for an intercepted call before its
/// interceptors hand the metadata on.
static NO_METADATA: std::sync::LazyLock<Metadata> = std::sync::LazyLock::new(Metadata::new);

#[derive(Debug, Default)]
struct Outgoing {
    header: Metadata,
    trailer: Metadata,
    header_sent: bool,
    compression: Option<Encoding>,
}

impl ServerContext {
    pub(crate) fn new(
        uri: http::Uri,
        metadata: Option<RequestMetadata>,
        deadline: Option<Instant>,
        conn: Arc<ConnShared>,
        accepts_gzip: bool,
        compression: Option<Encoding>,
    ) -> ServerContext {
        ServerContext {
            inner: Arc::new(Inner {
                uri,
                pending_metadata: Mutex::new(metadata),
                metadata: OnceLock::new(),
                deadline,
                conn,
                reset: Signal::default(),
                accepts_gzip,
                request_compressed: AtomicBool::new(false),
                outgoing: Mutex::new(Outgoing {
                    compression,
                    ..Outgoing::default()
                }),
            }),
        }
    }

    /// The call's connection (the server's stream layer reaches its writer here
    /// instead of holding a handle of its own per call).
    pub(crate) fn conn(&self) -> &ConnShared {
        &self.inner.conn
    }

    /// The full method name, e.g. `/helloworld.Greeter/SayHello`.
    pub fn full_method(&self) -> &str {
        self.inner.uri.path()
    }

    /// The client's initial metadata (as the server's interceptors left it).
    pub fn metadata(&self) -> &Metadata {
        if let Some(metadata) = self.inner.metadata.get() {
            return metadata;
        }
        // Under the lock, so that a second reader waits for the first one's result
        // instead of finding the pending metadata gone.
        let mut pending = self.pending();
        if let Some(metadata) = self.inner.metadata.get() {
            return metadata;
        }
        match pending.take() {
            Some(metadata) => self.inner.metadata.get_or_init(|| metadata.into_metadata()),
            // An intercepted call before its handler starts (an interceptor reads
            // `ServerCall::metadata` instead): empty until then.
            None => &NO_METADATA,
        }
    }

    /// Sets the request metadata of an intercepted call, as its handler starts.
    pub(crate) fn set_metadata(&self, metadata: Metadata) {
        *self.pending() = Some(RequestMetadata::Ready(metadata));
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<RequestMetadata>> {
        // Poisoning needs a panic while the lock is held; nothing in the critical
        // section can panic, so the data is whole either way.
        self.inner
            .pending_metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// When the call's deadline (from `grpc-timeout`) expires, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// The client's TCP address (`None` over a Unix socket; see [`ServerContext::peer`]).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.conn.remote_addr()
    }

    /// The client's address, TCP or Unix socket.
    pub fn peer(&self) -> &PeerAddr {
        &self.inner.conn.peer
    }

    /// The client's certificate chain (DER, its own certificate first) on a TLS
    /// connection where it presented one; empty otherwise.
    pub fn peer_certificates(&self) -> &[bytes::Bytes] {
        match &self.inner.conn.tls {
            Some(tls) => &tls.peer_certificates,
            None => &[],
        }
    }

    /// The protocol ALPN negotiated on a TLS connection (`b"h2"`); `None` on a
    /// plaintext one.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.inner
            .conn
            .tls
            .as_ref()
            .and_then(|tls| tls.alpn_protocol.as_deref())
    }

    /// Whether the call came over TLS.
    pub fn is_tls(&self) -> bool {
        self.inner.conn.tls.is_some()
    }

    /// Completes when the call is cancelled: its deadline passed, the client reset
    /// it, or the server was stopped without grace (grpc-go handlers select on
    /// `ctx.Done()`). The handler's own future is dropped then anyway; this is for
    /// work it handed to other tasks, and for cleanup.
    pub async fn cancelled(&self) {
        let deadline = async {
            match self.inner.deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.inner.reset.wait() => {}
            () = self.inner.conn.cancelled.wait() => {}
            () = deadline => {}
        }
    }

    /// Whether the call is cancelled (see [`ServerContext::cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.inner.reset.is_set()
            || self.inner.conn.cancelled.is_set()
            || self.inner.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Completes when the call's connection starts to drain: the server is shutting
    /// down gracefully, or the connection reached its max age or idle time. Calls
    /// in flight may finish; a long-lived stream (a watch) should wind up now and
    /// return, or it is cancelled when the grace period ends.
    pub async fn draining(&self) {
        self.inner.conn.draining.wait().await;
    }

    /// Whether the call's connection is draining (see [`ServerContext::draining`]).
    pub fn is_draining(&self) -> bool {
        self.inner.conn.draining.is_set()
    }

    /// The client reset the call.
    pub(crate) fn set_reset(&self) {
        self.inner.reset.set();
    }

    /// The request's `:authority`.
    pub fn authority(&self) -> Option<&str> {
        self.inner.uri.authority().map(|a| a.as_str())
    }

    /// Whether the last request message read so far arrived compressed.
    pub fn request_compressed(&self) -> bool {
        self.inner.request_compressed.load(Ordering::Relaxed)
    }

    pub(crate) fn set_request_compressed(&self, compressed: bool) {
        self.inner
            .request_compressed
            .store(compressed, Ordering::Relaxed);
    }

    /// Chooses the response encoding for this call. It takes effect only if the client
    /// accepts it (compression.md: never compress with an encoding the peer did not
    /// list) and only before the response headers are sent.
    pub fn set_compression(&self, encoding: Encoding) {
        self.outgoing().compression = Some(encoding);
    }

    /// Adds to the initial metadata sent with the response headers. Fails once the
    /// headers have gone out (grpc-go's `SetHeader`). For one value,
    /// [`ServerContext::set_header_value`] needs no map.
    pub fn set_header(&self, metadata: Metadata) -> Result<(), Status> {
        self.header_open()?.header.merge(metadata);
        Ok(())
    }

    /// Adds one ASCII value under `key` to the initial metadata, keeping values added
    /// before (as [`Metadata::append`]): `ctx.set_header_value("x-served-by", "kv")?`.
    /// Fails INTERNAL for a key or value [`Metadata`] rejects, and once the headers
    /// have gone out, as [`ServerContext::set_header`].
    pub fn set_header_value(&self, key: &str, value: &str) -> Result<(), Status> {
        Ok(self.header_open()?.header.append(key, value)?)
    }

    /// Adds one binary value under `key` (which must end in `-bin`) to the initial
    /// metadata, as [`ServerContext::set_header_value`] does an ASCII one.
    pub fn set_header_bin(&self, key: &str, value: &[u8]) -> Result<(), Status> {
        Ok(self.header_open()?.header.append_bin(key, value)?)
    }

    /// Adds to the trailing metadata sent with the status (grpc-go's `SetTrailer`).
    /// For one value, [`ServerContext::set_trailer_value`] needs no map.
    pub fn set_trailer(&self, metadata: Metadata) {
        self.outgoing().trailer.merge(metadata);
    }

    /// Adds one ASCII value under `key` to the trailing metadata, keeping values added
    /// before (as [`Metadata::append`]). Fails INTERNAL only for a key or value
    /// [`Metadata`] rejects.
    pub fn set_trailer_value(&self, key: &str, value: &str) -> Result<(), Status> {
        Ok(self.outgoing().trailer.append(key, value)?)
    }

    /// Adds one binary value under `key` (which must end in `-bin`) to the trailing
    /// metadata, as [`ServerContext::set_trailer_value`] does an ASCII one.
    pub fn set_trailer_bin(&self, key: &str, value: &[u8]) -> Result<(), Status> {
        Ok(self.outgoing().trailer.append_bin(key, value)?)
    }

    /// The outgoing metadata, if the headers have not gone out yet.
    fn header_open(&self) -> Result<std::sync::MutexGuard<'_, Outgoing>, Status> {
        let out = self.outgoing();
        if out.header_sent {
            return Err(Status::internal(
                "response metadata set after the headers were sent",
            ));
        }
        Ok(out)
    }

    fn outgoing(&self) -> std::sync::MutexGuard<'_, Outgoing> {
        // A panic while holding this lock cannot leave it inconsistent (plain merges).
        self.inner
            .outgoing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the headers sent and returns the initial metadata to put in them and the
    /// response encoding.
    pub(crate) fn take_header(&self) -> (Metadata, Option<Encoding>) {
        let mut out = self.outgoing();
        out.header_sent = true;
        let encoding = match out.compression {
            Some(Encoding::Gzip) if self.inner.accepts_gzip => Some(Encoding::Gzip),
            _ => None,
        };
        (std::mem::take(&mut out.header), encoding)
    }

    pub(crate) fn take_trailer(&self) -> Metadata {
        std::mem::take(&mut self.outgoing().trailer)
    }
}
