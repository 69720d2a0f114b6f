//! gRPC status: the 17 codes and the error value every call ends with.
//!
//! Wire form (PROTOCOL-HTTP2.md): `grpc-status` is the decimal code, `grpc-message` the
//! percent-encoded UTF-8 message, `grpc-status-details-bin` opaque bytes (a serialized
//! `google.rpc.Status` by convention).

use bytes::Bytes;
use std::fmt;

use http::HeaderName;

use crate::metadata::{Metadata, MetadataError};

/// The call's status code (PROTOCOL-HTTP2.md, "Status").
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The status message, percent-encoded.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// Binary status details (`google.rpc.Status`), base64.
pub(crate) const GRPC_STATUS_DETAILS_BIN: HeaderName =
    HeaderName::from_static("grpc-status-details-bin");

/// A gRPC status code (grpc/grpc doc/statuscodes.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    /// Not an error; returned on success.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error, e.g. a status from another address space with an unknown code.
    Unknown = 2,
    /// The client specified an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity that a client attempted to create already exists.
    AlreadyExists = 6,
    /// The caller does not have permission to execute the operation.
    PermissionDenied = 7,
    /// Some resource has been exhausted (quota, message size, ...).
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted, typically due to a concurrency issue.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or supported.
    Unimplemented = 12,
    /// An invariant expected by the system was broken.
    Internal = 13,
    /// The service is currently unavailable; retrying may help.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request lacks valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// The code for a wire value; values outside 0..=16 are `Unknown` (statuscodes.md).
    pub fn from_i32(value: i32) -> Code {
        match value {
            0 => Code::Ok,
            1 => Code::Cancelled,
            2 => Code::Unknown,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// Parses the `grpc-status` header value. A value that is not a decimal integer is
    /// `None`; the caller decides what that means.
    pub fn from_header(value: &[u8]) -> Option<Code> {
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(value)
            .ok()?
            .parse::<i32>()
            .ok()
            .map(Code::from_i32)
    }

    /// The code's canonical name, as grpc's `doc/statuscodes.md` spells it and other
    /// gRPC implementations print it: `OK`, `CANCELLED`, ..., `UNAVAILABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The static `grpc-status` header value.
    pub(crate) fn header_value(self) -> http::HeaderValue {
        const VALUES: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        http::HeaderValue::from_static(VALUES[self as usize])
    }

    /// Maps an HTTP status of a response that carries no `grpc-status`
    /// (http-grpc-status-mapping.md).
    pub fn from_http_status(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The outcome of an RPC that did not succeed: a code, a message, optional binary
/// details and the trailing metadata that came with it. Boxed so `Result<T, Status>`
/// stays one pointer wide.
#[derive(Clone)]
pub struct Status(Box<Inner>);

#[derive(Clone)]
struct Inner {
    code: Code,
    message: String,
    details: Bytes,
    metadata: Metadata,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status(Box::new(Inner {
            code,
            message: message.into(),
            details: Bytes::new(),
            metadata: Metadata::new(),
        }))
    }

    /// A status with binary details (`grpc-status-details-bin`).
    pub fn with_details(code: Code, message: impl Into<String>, details: Bytes) -> Status {
        let mut status = Status::new(code, message);
        status.0.details = details;
        status
    }

    constructors! {
        /// `CANCELLED`.
        cancelled => Cancelled,
        /// `UNKNOWN`.
        unknown => Unknown,
        /// `INVALID_ARGUMENT`.
        invalid_argument => InvalidArgument,
        /// `DEADLINE_EXCEEDED`.
        deadline_exceeded => DeadlineExceeded,
        /// `NOT_FOUND`.
        not_found => NotFound,
        /// `ALREADY_EXISTS`.
        already_exists => AlreadyExists,
        /// `PERMISSION_DENIED`.
        permission_denied => PermissionDenied,
        /// `RESOURCE_EXHAUSTED`.
        resource_exhausted => ResourceExhausted,
        /// `FAILED_PRECONDITION`.
        failed_precondition => FailedPrecondition,
        /// `ABORTED`.
        aborted => Aborted,
        /// `OUT_OF_RANGE`.
        out_of_range => OutOfRange,
        /// `UNIMPLEMENTED`.
        unimplemented => Unimplemented,
        /// `INTERNAL`.
        internal => Internal,
        /// `UNAVAILABLE`.
        unavailable => Unavailable,
        /// `DATA_LOSS`.
        data_loss => DataLoss,
        /// `UNAUTHENTICATED`.
        unauthenticated => Unauthenticated,
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The status message (already percent-decoded).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The binary details, empty when none were sent.
    pub fn details(&self) -> &Bytes {
        &self.0.details
    }

    /// Trailing metadata that came with (or will be sent with) this status.
    pub fn metadata(&self) -> &Metadata {
        &self.0.metadata
    }

    /// Mutable access to the status's trailing metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.0.metadata
    }

    /// A call's outcome from its trailers (or Trailers-Only headers), as
    /// [`Status::from_trailers`] reads them; OK builds no `Status` (one is boxed, and
    /// almost every call ends OK). PROTOCOL-HTTP2.md: OK is `grpc-status: 0`, and a
    /// client takes no message from it.
    pub(crate) fn result_from_trailers(map: &http::HeaderMap) -> Result<(), Status> {
        if map.get(&GRPC_STATUS).is_some_and(|v| v.as_bytes() == b"0") {
            return Ok(());
        }
        let status = Status::from_trailers(map);
        match status.code() {
            Code::Ok => Ok(()),
            _ => Err(status),
        }
    }

    /// Builds a status from a response's trailers (or Trailers-Only headers).
    /// Missing `grpc-status` is INTERNAL with a message that says so. Only a failed
    /// status carries the trailing metadata (an OK one is never handed out); the caller
    /// keeps its own copy for `trailers()`.
    pub(crate) fn from_trailers(map: &http::HeaderMap) -> Status {
        let code = match map.get(&GRPC_STATUS) {
            Some(value) => match Code::from_header(value.as_bytes()) {
                Some(code) => code,
                None => {
                    return Status::unknown(format!(
                        "malformed grpc-status {:?}",
                        String::from_utf8_lossy(value.as_bytes())
                    ));
                }
            },
            None => return Status::internal("the response ended without a grpc-status"),
        };
        let message = map
            .get(&GRPC_MESSAGE)
            .map(|v| decode_message(v.as_bytes()))
            .unwrap_or_default();
        let details = map
            .get(&GRPC_STATUS_DETAILS_BIN)
            .and_then(|v| crate::metadata::decode_bin(v.as_bytes()).ok())
            .map(Bytes::from)
            .unwrap_or_default();
        let mut status = Status::with_details(code, message, details);
        if code != Code::Ok {
            status.0.metadata = Metadata::from_headers(map);
        }
        status
    }

    /// Writes `grpc-status`, `grpc-message` and details into `map`.
    pub(crate) fn write_trailers(&self, map: &mut http::HeaderMap) {
        map.insert(GRPC_STATUS, self.0.code.header_value());
        if !self.0.message.is_empty() {
            let encoded = encode_message(&self.0.message);
            // Percent-encoding leaves only visible ASCII, always a valid header value.
            if let Ok(value) = http::HeaderValue::from_str(&encoded) {
                map.insert(GRPC_MESSAGE, value);
            }
        }
        if !self.0.details.is_empty() {
            let encoded = crate::metadata::encode_bin(&self.0.details);
            if let Ok(value) = http::HeaderValue::from_str(&encoded) {
                map.insert(GRPC_STATUS_DETAILS_BIN, value);
            }
        }
        self.0.metadata.write_headers(map);
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.0.code)
            .field("message", &self.0.message);
        if !self.0.details.is_empty() {
            d.field("details", &self.0.details);
        }
        d.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status {}: {}", self.0.code, self.0.message)
    }
}

impl std::error::Error for Status {}

impl From<h2::Error> for Status {
    fn from(err: h2::Error) -> Status {
        status_from_h2(&err)
    }
}

/// A key or value a handler or client tried to put in metadata is invalid: INTERNAL,
/// a bug on the sending side (grpc-go `stream.go` `newClientStream` fails a call with
/// invalid metadata `codes.Internal` too), with the message naming the key and what is
/// wrong. Lets a handler write `md.insert("x-served-by", "kv")?`.
impl From<MetadataError> for Status {
    fn from(err: MetadataError) -> Status {
        Status::internal(err.to_string())
    }
}

/// Maps an HTTP/2 error to a status (PROTOCOL-HTTP2.md, "Errors": RST_STREAM codes).
pub(crate) fn status_from_h2(err: &h2::Error) -> Status {
    use h2::Reason;
    match err.reason() {
        Some(Reason::CANCEL) => Status::cancelled(format!("stream cancelled: {err}")),
        Some(Reason::REFUSED_STREAM) => Status::unavailable(format!("stream refused: {err}")),
        Some(Reason::ENHANCE_YOUR_CALM) => {
            Status::resource_exhausted(format!("peer asked to enhance your calm: {err}"))
        }
        Some(Reason::INADEQUATE_SECURITY) => {
            Status::permission_denied(format!("inadequate security: {err}"))
        }
        Some(Reason::NO_ERROR) if err.is_go_away() => {
            Status::unavailable(format!("connection closed: {err}"))
        }
        _ if err.is_io() || err.is_go_away() => Status::unavailable(format!("transport: {err}")),
        _ => Status::internal(format!("transport: {err}")),
    }
}

/// Characters sent as-is in `grpc-message`: visible ASCII except `%` (PROTOCOL-HTTP2.md).
const MESSAGE_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// Percent-encodes a status message for `grpc-message`.
pub(crate) fn encode_message(message: &str) -> String {
    percent_encoding::utf8_percent_encode(message, MESSAGE_ESCAPES).to_string()
}

/// Percent-decodes `grpc-message`. Tolerant: a bad escape is kept as-is and invalid
/// UTF-8 is replaced, as the spec asks receivers not to fail on a malformed message.
pub(crate) fn decode_message(raw: &[u8]) -> String {
    String::from_utf8_lossy(&percent_encoding::percent_decode(raw).collect::<Vec<u8>>())
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_header_values() {
        for value in 0..=16 {
            let code = Code::from_i32(value);
            assert_eq!(code as i32, value);
            assert_eq!(
                Code::from_header(code.header_value().as_bytes()),
                Some(code)
            );
        }
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_header(b"-1"), None);
        assert_eq!(Code::from_header(b"1a"), None);
        assert_eq!(Code::from_header(b""), None);
    }

    #[test]
    fn codes_have_their_canonical_names() {
        // doc/statuscodes.md, in code order.
        const NAMES: [&str; 17] = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        for (value, name) in NAMES.iter().enumerate() {
            assert_eq!(Code::from_i32(value as i32).as_str(), *name);
        }
    }

    #[test]
    fn message_encoding_follows_the_spec() {
        assert_eq!(encode_message("hello world"), "hello world");
        assert_eq!(encode_message("100%"), "100%25");
        assert_eq!(encode_message("\t\ntab"), "%09%0Atab");
        assert_eq!(encode_message("héllo"), "h%C3%A9llo");
        let special = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
        assert_eq!(decode_message(encode_message(special).as_bytes()), special);
    }

    #[test]
    fn message_decoding_tolerates_bad_input() {
        assert_eq!(decode_message(b"%zz ok"), "%zz ok");
        assert_eq!(decode_message(b"trailing %"), "trailing %");
        assert_eq!(decode_message(b"%FF"), "\u{fffd}");
    }

    #[test]
    fn http_statuses_map_per_spec() {
        assert_eq!(Code::from_http_status(400), Code::Internal);
        assert_eq!(Code::from_http_status(401), Code::Unauthenticated);
        assert_eq!(Code::from_http_status(403), Code::PermissionDenied);
        assert_eq!(Code::from_http_status(404), Code::Unimplemented);
        for s in [429, 502, 503, 504] {
            assert_eq!(Code::from_http_status(s), Code::Unavailable);
        }
        assert_eq!(Code::from_http_status(500), Code::Unknown);
    }

    #[test]
    fn metadata_errors_are_internal_and_name_the_key() {
        fn insert(md: &mut Metadata) -> Result<(), Status> {
            md.insert("x-ok", "v")?;
            md.insert("Bad Key", "v")?;
            Ok(())
        }
        let mut md = Metadata::new();
        let status = insert(&mut md).unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().contains("\"Bad Key\""), "{status}");
        assert_eq!(md.get("x-ok"), Some("v"));
    }

    #[test]
    fn trailers_round_trip() {
        let status = Status::with_details(
            Code::NotFound,
            "no such thing",
            Bytes::from_static(b"\x00\x01"),
        );
        let mut map = http::HeaderMap::new();
        status.write_trailers(&mut map);
        let back = Status::from_trailers(&map);
        assert_eq!(back.code(), Code::NotFound);
        assert_eq!(back.message(), "no such thing");
        assert_eq!(back.details().as_ref(), b"\x00\x01");
        assert_eq!(
            Status::from_trailers(&http::HeaderMap::new()).code(),
            Code::Internal
        );
    }

    #[test]
    fn a_result_from_trailers_is_ok_only_for_grpc_status_0() {
        let mut map = http::HeaderMap::new();
        map.insert(GRPC_STATUS, http::HeaderValue::from_static("0"));
        map.insert(GRPC_MESSAGE, http::HeaderValue::from_static("ignored"));
        assert!(Status::result_from_trailers(&map).is_ok());
        map.insert(GRPC_STATUS, http::HeaderValue::from_static("5"));
        let failed = Status::result_from_trailers(&map).unwrap_err();
        assert_eq!(failed.code(), Code::NotFound);
        assert_eq!(failed.message(), "ignored");
        map.insert(GRPC_STATUS, http::HeaderValue::from_static("0x"));
        let malformed = Status::result_from_trailers(&map).unwrap_err();
        assert_eq!(malformed.code(), Code::Unknown);
        let missing = Status::result_from_trailers(&http::HeaderMap::new()).unwrap_err();
        assert_eq!(missing.code(), Code::Internal);
    }
}
