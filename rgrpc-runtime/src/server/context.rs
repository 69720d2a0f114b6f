//! What a handler knows about its call: incoming metadata, deadline, peer, and the
//! metadata it sends back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::compression::Encoding;
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
    metadata: Metadata,
    deadline: Option<Instant>,
    remote_addr: Option<SocketAddr>,
    /// Whether the client accepts gzip responses (its `grpc-accept-encoding`).
    accepts_gzip: bool,
    request_compressed: AtomicBool,
    outgoing: Mutex<Outgoing>,
}

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
        metadata: Metadata,
        deadline: Option<Instant>,
        remote_addr: Option<SocketAddr>,
        accepts_gzip: bool,
        compression: Option<Encoding>,
    ) -> ServerContext {
        ServerContext {
            inner: Arc::new(Inner {
                uri,
                metadata,
                deadline,
                remote_addr,
                accepts_gzip,
                request_compressed: AtomicBool::new(false),
                outgoing: Mutex::new(Outgoing {
                    compression,
                    ..Outgoing::default()
                }),
            }),
        }
    }

    /// The full method name, e.g. `/helloworld.Greeter/SayHello`.
    pub fn full_method(&self) -> &str {
        self.inner.uri.path()
    }

    /// The client's initial metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// When the call's deadline (from `grpc-timeout`) expires, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr
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
    /// headers have gone out (grpc-go's `SetHeader`).
    pub fn set_header(&self, metadata: Metadata) -> Result<(), Status> {
        let mut out = self.outgoing();
        if out.header_sent {
            return Err(Status::internal(
                "set_header called after headers were sent",
            ));
        }
        out.header.merge(metadata);
        Ok(())
    }

    /// Adds to the trailing metadata sent with the status (grpc-go's `SetTrailer`).
    pub fn set_trailer(&self, metadata: Metadata) {
        self.outgoing().trailer.merge(metadata);
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
