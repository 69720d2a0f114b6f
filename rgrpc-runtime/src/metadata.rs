//! Custom metadata: the user's HTTP/2 headers and trailers.
//!
//! Keys are lowercase ASCII (`0-9 a-z _ - .`); keys ending in `-bin` carry binary values,
//! base64-encoded on the wire. PROTOCOL-HTTP2.md: senders emit unpadded base64, receivers
//! accept padded and unpadded. Pseudo-headers and the headers gRPC itself owns never show
//! up here (see [`is_reserved`]).

use base64::Engine;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;

/// Initial or trailing metadata of a call.
#[derive(Clone, Default)]
pub struct Metadata {
    headers: HeaderMap,
}

/// A metadata key or value that cannot be sent.
#[derive(Debug, Clone)]
pub struct MetadataError {
    reason: String,
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for MetadataError {}

fn error(reason: String) -> MetadataError {
    MetadataError { reason }
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Adds an ASCII value under `key` (which must not end in `-bin`), keeping earlier ones.
    pub fn append(&mut self, key: &str, value: &str) -> Result<(), MetadataError> {
        let name = ascii_key(key)?;
        let value = HeaderValue::from_str(value)
            .ok()
            .filter(|_| value.bytes().all(|b| (0x20..=0x7e).contains(&b)))
            .ok_or_else(|| error(format!("metadata value for {key:?} is not printable ASCII")))?;
        self.headers.append(name, value);
        Ok(())
    }

    /// Replaces all values under `key` with one ASCII value.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), MetadataError> {
        self.remove(key);
        self.append(key, value)
    }

    /// Adds a binary value under `key`, which must end in `-bin`.
    pub fn append_bin(&mut self, key: &str, value: &[u8]) -> Result<(), MetadataError> {
        let name = checked_key(key)?;
        if !key.ends_with("-bin") {
            return Err(error(format!(
                "binary metadata key {key:?} must end in -bin"
            )));
        }
        let encoded = encode_bin(value);
        // Base64 is always a valid header value.
        let value = HeaderValue::from_str(&encoded).map_err(|e| error(e.to_string()))?;
        self.headers.append(name, value);
        Ok(())
    }

    /// Replaces all values under `key` with one binary value.
    pub fn insert_bin(&mut self, key: &str, value: &[u8]) -> Result<(), MetadataError> {
        self.remove(key);
        self.append_bin(key, value)
    }

    /// The first ASCII value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers.get(key).and_then(|v| v.to_str().ok())
    }

    /// All ASCII values under `key`.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.headers
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The first binary value under `key` (a `-bin` key), decoded. `None` when absent or
    /// not valid base64.
    pub fn get_bin(&self, key: &str) -> Option<Vec<u8>> {
        self.headers
            .get(key)
            .and_then(|v| decode_bin(v.as_bytes()).ok())
    }

    /// All binary values under `key`, decoded; values that are not base64 are skipped.
    pub fn get_all_bin(&self, key: &str) -> Vec<Vec<u8>> {
        self.headers
            .get_all(key)
            .iter()
            .filter_map(|v| decode_bin(v.as_bytes()).ok())
            .collect()
    }

    /// Removes every value under `key`.
    pub fn remove(&mut self, key: &str) {
        self.headers.remove(key);
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.headers.contains_key(key)
    }

    /// The keys, each once.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.headers.keys().map(HeaderName::as_str)
    }

    /// Moves every value of `other` into `self`.
    pub fn merge(&mut self, other: Metadata) {
        let mut last = None;
        for (name, value) in other.headers {
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                self.headers.append(name.clone(), value);
            }
        }
    }

    /// Like [`Metadata::from_headers`], keeping the received map itself: the reserved
    /// headers are removed from it instead of the others being copied into a new map
    /// (a request's header block is not needed once the call has been set up).
    pub(crate) fn from_received(mut map: HeaderMap) -> Metadata {
        // A handful of headers: a rescan per removal is cheaper than any collection.
        while let Some(name) = map.keys().find(|n| is_reserved(n.as_str())).cloned() {
            map.remove(&name);
        }
        Metadata { headers: map }
    }

    /// The user metadata in a received header block: everything but pseudo-headers and
    /// the headers gRPC reserves.
    pub(crate) fn from_headers(map: &HeaderMap) -> Metadata {
        let mut headers = HeaderMap::new();
        for (name, value) in map {
            if !is_reserved(name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
        Metadata { headers }
    }

    /// Writes the metadata into an outgoing header block.
    pub(crate) fn write_headers(&self, map: &mut HeaderMap) {
        for (name, value) in &self.headers {
            map.append(name.clone(), value.clone());
        }
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.headers.iter().map(|(k, v)| (k.as_str(), v)))
            .finish()
    }
}

/// Headers gRPC or HTTP/2 owns; they never appear in user metadata.
pub(crate) fn is_reserved(key: &str) -> bool {
    matches!(
        key,
        "content-type"
            | "te"
            | "grpc-timeout"
            | "grpc-encoding"
            | "grpc-accept-encoding"
            | "grpc-status"
            | "grpc-message"
            | "grpc-status-details-bin"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    ) || key.starts_with(':')
}

fn checked_key(key: &str) -> Result<HeaderName, MetadataError> {
    let valid = !key.is_empty()
        && key
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'_' | b'-' | b'.'));
    if !valid {
        return Err(error(format!(
            "metadata key {key:?} must be non-empty lowercase ASCII letters, digits, '_', '-' or '.'"
        )));
    }
    // gRFC A6: a server's handler sets `grpc-retry-pushback-ms` itself, as metadata
    // on its status, to slow or stop the client's retries.
    if is_reserved(key) || (key.starts_with("grpc-") && key != "grpc-retry-pushback-ms") {
        return Err(error(format!("metadata key {key:?} is reserved by gRPC")));
    }
    HeaderName::from_bytes(key.as_bytes()).map_err(|e| error(e.to_string()))
}

fn ascii_key(key: &str) -> Result<HeaderName, MetadataError> {
    if key.ends_with("-bin") {
        return Err(error(format!(
            "metadata key {key:?} ends in -bin: binary values go through the _bin methods"
        )));
    }
    checked_key(key)
}

/// Unpadded standard base64, as senders must emit.
pub(crate) fn encode_bin(value: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(value)
}

/// Whether `value` is padded or unpadded standard base64, checked without decoding (the
/// server checks every `-bin` request header this way before the handler runs).
pub(crate) fn is_valid_bin(value: &[u8]) -> bool {
    let trimmed = value
        .strip_suffix(b"==")
        .or_else(|| value.strip_suffix(b"="))
        .unwrap_or(value);
    let sextet = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    if !trimmed.iter().all(|&b| sextet(b).is_some()) {
        return false;
    }
    // A final group of one character carries fewer than 8 bits: never valid. In a
    // final group of two or three, the bits past the last whole byte must be zero, as
    // the decoder (RFC 4648 section 3.5, canonical encoding) insists.
    let last = trimmed.last().and_then(|&b| sextet(b)).unwrap_or(0);
    match trimmed.len() % 4 {
        1 => false,
        2 => last & 0b1111 == 0,
        3 => last & 0b11 == 0,
        _ => true,
    }
}

/// Decodes padded or unpadded standard base64.
pub(crate) fn decode_bin(value: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let trimmed = value
        .strip_suffix(b"==")
        .or_else(|| value.strip_suffix(b"="))
        .unwrap_or(value);
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_binary_values_round_trip() {
        let mut md = Metadata::new();
        md.insert("x-user", "alice").unwrap();
        md.append("x-user", "bob").unwrap();
        md.insert_bin("x-trace-bin", &[0, 1, 2, 255]).unwrap();
        assert_eq!(md.get("x-user"), Some("alice"));
        assert_eq!(md.get_all("x-user"), vec!["alice", "bob"]);
        assert_eq!(md.get_bin("x-trace-bin"), Some(vec![0, 1, 2, 255]));
        let mut map = HeaderMap::new();
        md.write_headers(&mut map);
        // Emitted unpadded.
        assert_eq!(map.get("x-trace-bin").unwrap(), "AAEC/w");
        assert_eq!(
            Metadata::from_headers(&map).get_bin("x-trace-bin"),
            Some(vec![0, 1, 2, 255])
        );
    }

    #[test]
    fn bin_values_are_checked_as_decoding_would() {
        for value in [&b""[..], b"AQ", b"AQ==", b"AQI", b"AQI=", b"AQID", b"+/+/"] {
            assert!(is_valid_bin(value), "{value:?}");
            assert!(decode_bin(value).is_ok(), "{value:?}");
        }
        for value in [
            &b"!!"[..],
            b"A",
            b"AQ=x",
            b"AQ===",
            b"A B",
            b"AQID-",
            b"AR",
            b"AQJ",
        ] {
            assert!(!is_valid_bin(value), "{value:?}");
            assert!(decode_bin(value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn padded_and_unpadded_base64_are_accepted() {
        assert_eq!(decode_bin(b"AAEC/w==").unwrap(), vec![0, 1, 2, 255]);
        assert_eq!(decode_bin(b"AAEC/w").unwrap(), vec![0, 1, 2, 255]);
        assert!(decode_bin(b"!!!").is_err());
    }

    #[test]
    fn bad_keys_and_values_are_errors() {
        let mut md = Metadata::new();
        assert!(md.insert("Upper", "x").is_err());
        assert!(md.insert("", "x").is_err());
        assert!(md.insert("sp ace", "x").is_err());
        assert!(md.insert("grpc-status", "0").is_err());
        assert!(md.insert("content-type", "x").is_err());
        assert!(md.insert("x-bin", "x").is_err());
        assert!(md.insert_bin("x-ascii", b"x").is_err());
        assert!(md.insert("x-ok", "line\nbreak").is_err());
        assert!(md.insert("x-ok", "caf\u{e9}").is_err());
        assert!(md.is_empty());
    }

    #[test]
    fn reserved_headers_never_reach_user_metadata() {
        let mut map = HeaderMap::new();
        map.insert("content-type", HeaderValue::from_static("application/grpc"));
        map.insert("grpc-timeout", HeaderValue::from_static("1S"));
        map.insert("te", HeaderValue::from_static("trailers"));
        map.insert("x-custom", HeaderValue::from_static("v"));
        map.append("grpc-accept-encoding", HeaderValue::from_static("gzip"));
        map.append("grpc-accept-encoding", HeaderValue::from_static("identity"));
        let md = Metadata::from_headers(&map);
        assert_eq!(md.keys().collect::<Vec<_>>(), vec!["x-custom"]);
        let mut more = map.clone();
        let md = Metadata::from_received(map);
        assert_eq!(md.keys().collect::<Vec<_>>(), vec!["x-custom"]);
        assert_eq!(md.get("x-custom"), Some("v"));
        // A fuller block of reserved names goes as well.
        for name in ["grpc-status", "grpc-message", "host", "upgrade"] {
            more.insert(name, HeaderValue::from_static("x"));
        }
        let md = Metadata::from_received(more);
        assert_eq!(md.keys().collect::<Vec<_>>(), vec!["x-custom"]);
    }
}
