//! The header names the runtime reads and writes, built once at compile time.
//!
//! Looking a header up by `&str` parses and validates the name on every call (http's
//! `HdrName::from_static` and `parse_hdr` were ~8% of a unary client call's
//! instructions under callgrind); a `HeaderName` constant only hashes.

use http::HeaderName;

pub(crate) use http::header::{CONTENT_TYPE, TE, USER_AGENT};

/// The call's status code (PROTOCOL-HTTP2.md, "Status").
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The status message, percent-encoded.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// Binary status details (`google.rpc.Status`), base64.
pub(crate) const GRPC_STATUS_DETAILS_BIN: HeaderName =
    HeaderName::from_static("grpc-status-details-bin");
/// The message encoding of this side's messages.
pub(crate) const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// The encodings this side accepts.
pub(crate) const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
/// The call's deadline, relative.
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
