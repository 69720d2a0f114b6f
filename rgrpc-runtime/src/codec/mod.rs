//! The gRPC message layer, free of I/O: length-prefixed framing, compression, the
//! message reader over an h2 body, and the `grpc-timeout` header.
//!
//! Everything here is pure or a small state machine over a buffer, so each decoder is
//! unit-tested (and fuzzed) without a socket.

pub(crate) mod compression;
pub(crate) mod frame;
pub(crate) mod reader;
pub(crate) mod timeout;

pub use frame::{DEFAULT_MAX_RECV_MESSAGE_SIZE, DEFAULT_MAX_SEND_MESSAGE_SIZE};
pub(crate) use frame::{decode, decode_whole, encode, frame};
