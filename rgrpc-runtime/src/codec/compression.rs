//! Message compression (compression.md): the encodings we speak and bounded gzip.

use std::io::{Read, Write};

use bytes::{Bytes, BytesMut};

use crate::codec;
use crate::status::Status;

/// A message encoding named in `grpc-encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
}

/// The `grpc-accept-encoding` value we send: every encoding we can decode.
pub(crate) const ACCEPT_ENCODING: &str = "gzip,identity";

impl Encoding {
    /// The header token.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
        }
    }

    /// Parses a `grpc-encoding` value; `None` for encodings we do not support.
    pub(crate) fn parse(value: &[u8]) -> Option<Encoding> {
        match value {
            b"identity" => Some(Encoding::Identity),
            b"gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }

    /// Whether a `grpc-accept-encoding` list names this encoding.
    pub(crate) fn accepted_by(self, list: &[u8]) -> bool {
        self == Encoding::Identity
            || list
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii() == self.as_str().as_bytes())
    }
}

/// Decompresses `payload`. Inflates at most `max + 1` bytes, so a small message that
/// inflates past the limit is RESOURCE_EXHAUSTED without being inflated in full.
///
/// A gzip stream is a series of members (RFC 1952 section 2.2), and every member is
/// read, as grpc-go's multistream `gzip.Reader` does; bytes after the last member that
/// are no member are an error, not ignored.
pub(crate) fn decompress(encoding: Encoding, payload: &[u8], max: usize) -> Result<Bytes, Status> {
    match encoding {
        Encoding::Identity => Err(Status::internal(
            "compressed flag set on a message with grpc-encoding identity",
        )),
        Encoding::Gzip => {
            let mut out = Vec::new();
            let mut decoder = flate2::read::MultiGzDecoder::new(payload).take(max as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| Status::internal(format!("failed to decompress message: {e}")))?;
            if out.len() > max {
                return Err(Status::resource_exhausted(format!(
                    "received message after decompression larger than max ({max})"
                )));
            }
            Ok(Bytes::from(out))
        }
    }
}

/// Encodes `msg`, compressing it when `encoding` is gzip, and frames it.
pub(crate) fn encode_frame<M: prost::Message>(
    msg: &M,
    buf: &mut BytesMut,
    max_send: usize,
    encoding: Option<Encoding>,
) -> Result<Bytes, Status> {
    match encoding {
        None | Some(Encoding::Identity) => codec::encode(msg, buf, max_send),
        Some(Encoding::Gzip) => {
            let len = msg.encoded_len();
            if len > max_send {
                return Err(Status::resource_exhausted(format!(
                    "trying to send message larger than max ({len} vs. {max_send})"
                )));
            }
            let plain = msg.encode_to_vec();
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(len / 2 + 32),
                flate2::Compression::fast(),
            );
            gz.write_all(&plain)
                .and_then(|()| gz.try_finish())
                .map_err(|e| Status::internal(format!("compressing message: {e}")))?;
            let compressed = gz
                .finish()
                .map_err(|e| Status::internal(format!("compressing: {e}")))?;
            Ok(codec::frame(&compressed, true, buf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips() {
        let msg = "hello ".repeat(100);
        let mut buf = BytesMut::new();
        let frame = encode_frame(&msg, &mut buf, 1 << 20, Some(Encoding::Gzip)).unwrap();
        assert_eq!(frame[0], 1);
        let back = decompress(Encoding::Gzip, &frame[5..], 1 << 20).unwrap();
        assert_eq!(back, Bytes::from(prost::Message::encode_to_vec(&msg)));
    }

    #[test]
    fn inflation_past_the_limit_stops_early() {
        let msg = "a".repeat(1 << 20);
        let mut buf = BytesMut::new();
        let frame = encode_frame(&msg, &mut buf, 1 << 21, Some(Encoding::Gzip)).unwrap();
        assert!(frame.len() < 10_000, "highly compressible");
        let err = decompress(Encoding::Gzip, &frame[5..], 1000).unwrap_err();
        assert_eq!(err.code(), crate::Code::ResourceExhausted);
    }

    /// Only the first member was read before (flate2's GzDecoder): two members
    /// decompressed to the first one's bytes, and junk after a member was ignored.
    #[test]
    fn every_gzip_member_is_read_and_trailing_junk_is_an_error() {
        let msg = "hello".to_string();
        let mut buf = BytesMut::new();
        let frame = encode_frame(&msg, &mut buf, 1 << 20, Some(Encoding::Gzip)).unwrap();
        let member = &frame[5..];
        let plain = prost::Message::encode_to_vec(&msg);
        let two = [member, member].concat();
        let back = decompress(Encoding::Gzip, &two, 100).unwrap();
        assert_eq!(back, Bytes::from([&plain[..], &plain[..]].concat()));
        // The limit counts both members.
        let err = decompress(Encoding::Gzip, &two, plain.len()).unwrap_err();
        assert_eq!(err.code(), crate::Code::ResourceExhausted);
        let junk = [member, b"junk"].concat();
        let err = decompress(Encoding::Gzip, &junk, 100).unwrap_err();
        assert_eq!(err.code(), crate::Code::Internal);
    }

    #[test]
    fn garbage_is_internal_not_a_panic() {
        let err = decompress(Encoding::Gzip, b"not gzip", 100).unwrap_err();
        assert_eq!(err.code(), crate::Code::Internal);
    }

    #[test]
    fn accept_lists_are_parsed() {
        assert!(Encoding::Gzip.accepted_by(b"identity, gzip"));
        assert!(!Encoding::Gzip.accepted_by(b"identity,deflate"));
        assert!(Encoding::Identity.accepted_by(b""));
        assert_eq!(Encoding::parse(b"snappy"), None);
    }
}
