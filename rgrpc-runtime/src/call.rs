//! What a client passes with a call and gets back: [`Request`], [`Response`],
//! [`CallOptions`].

use std::time::Duration;

use crate::metadata::Metadata;

/// Per-call settings: metadata to send, a timeout, and message size limits that
/// override the channel's. With a service config on the channel
/// ([`crate::ChannelBuilder::service_config`]) the call's method config fills in what
/// is unset here; a timeout set in both takes the smaller.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Initial metadata sent with the request headers.
    pub metadata: Metadata,
    /// The call fails with DEADLINE_EXCEEDED after this long; sent as `grpc-timeout`.
    /// The service config's `timeout`, if smaller, wins.
    pub timeout: Option<Duration>,
    /// Overrides the channel's receive limit (and the service config's
    /// `maxResponseMessageBytes`) for this call.
    pub max_recv_message_size: Option<usize>,
    /// Overrides the channel's send limit (and the service config's
    /// `maxRequestMessageBytes`) for this call.
    pub max_send_message_size: Option<usize>,
    /// Compresses request messages with this encoding (sent as `grpc-encoding`).
    pub compression: Option<crate::Encoding>,
    /// Wait-for-ready: while the channel has no Ready connection the call waits for
    /// one (or for its deadline) instead of failing UNAVAILABLE at once in
    /// TRANSIENT_FAILURE (fail-fast). `None`: the channel's service config decides
    /// (`waitForReady`), else fail-fast, grpc's default.
    pub wait_for_ready: Option<bool>,
}

impl CallOptions {
    /// Default options.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Compresses the request messages.
    pub fn with_compression(mut self, encoding: crate::Encoding) -> CallOptions {
        self.compression = Some(encoding);
        self
    }

    /// Makes the call wait for a Ready connection (see [`CallOptions::wait_for_ready`]).
    pub fn with_wait_for_ready(mut self, wait: bool) -> CallOptions {
        self.wait_for_ready = Some(wait);
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> CallOptions {
        self.metadata = metadata;
        self
    }
}

/// A request message with its call options.
#[derive(Clone, Debug, Default)]
pub struct Request<T> {
    message: T,
    options: CallOptions,
}

impl<T> Request<T> {
    /// A request with default options.
    pub fn new(message: T) -> Request<T> {
        Request {
            message,
            options: CallOptions::default(),
        }
    }

    /// A request with `options`.
    pub fn with_options(message: T, options: CallOptions) -> Request<T> {
        Request { message, options }
    }

    /// Sets the call's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Request<T> {
        self.options.timeout = Some(timeout);
        self
    }

    /// The message.
    pub fn message(&self) -> &T {
        &self.message
    }

    /// The metadata to send.
    pub fn metadata(&self) -> &Metadata {
        &self.options.metadata
    }

    /// Mutable access to the metadata to send.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.options.metadata
    }

    /// The call options.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// Mutable access to the call options.
    pub fn options_mut(&mut self) -> &mut CallOptions {
        &mut self.options
    }

    /// Splits into message and options.
    pub fn into_parts(self) -> (T, CallOptions) {
        (self.message, self.options)
    }
}

impl<T> From<T> for Request<T> {
    fn from(message: T) -> Request<T> {
        Request::new(message)
    }
}

/// A response message with the metadata the server sent around it.
#[derive(Clone, Debug, Default)]
pub struct Response<T> {
    message: T,
    headers: Metadata,
    trailers: Metadata,
}

impl<T> Response<T> {
    pub(crate) fn new(message: T, headers: Metadata, trailers: Metadata) -> Response<T> {
        Response {
            message,
            headers,
            trailers,
        }
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, consuming the response.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The server's initial metadata.
    pub fn headers(&self) -> &Metadata {
        &self.headers
    }

    /// The server's trailing metadata.
    pub fn trailers(&self) -> &Metadata {
        &self.trailers
    }
}
