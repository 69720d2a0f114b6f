//! The header names the runtime reads and writes, built once at compile time.
//!
//! Looking a header up by `&str` parses and validates the name on every call (http's
//! `HdrName::from_static` and `parse_hdr` were ~8% of a unary client call's
//! instructions under callgrind); a `HeaderName` constant only hashes.

use http::HeaderName;

pub(crate) use http::header::{CONTENT_TYPE, TE, USER_AGENT};

// The status headers live with `Status`, which reads and writes them (and so imports
// nothing from this layer).
pub(crate) use crate::status::GRPC_STATUS;
/// The message encoding of this side's messages.
pub(crate) const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// The encodings this side accepts.
pub(crate) const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
/// The call's deadline, relative.
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
