//! The first byte of a connection, and what the server answers when it is the wrong
//! protocol for the port: TLS on a plaintext port, plaintext on a TLS port.
//!
//! A TLS connection opens with a handshake record, whose first byte is its content
//! type, 22 (RFC 8446 section 5.1: `handshake(22)`); an HTTP/2 client opens with the
//! preface `PRI * HTTP/2.0` (RFC 9113 section 3.4), whose first byte is `P`. One byte
//! tells them apart, so the server decides on the first byte it can peek at, without
//! waiting for more.
//!
//! Without this a plaintext client on a TLS port waits for a TLS answer that never
//! makes sense to it, and a TLS client on a plaintext port gets h2's SETTINGS as a
//! corrupt TLS record; both fail, but with messages that do not say why. With it the
//! server answers in the client's own protocol where it can: an HTTP/2 client gets
//! SETTINGS and a GOAWAY whose debug data says the port needs TLS (our client puts it
//! in its UNAVAILABLE status), and a TLS client gets the same bytes, which are not a
//! TLS record, so it fails its handshake at once.

/// RFC 8446 section 5.1: the content type of a handshake record (a ClientHello).
const TLS_HANDSHAKE: u8 = 22;

/// What the first byte of a connection says the client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opening {
    /// A TLS record (a ClientHello).
    Tls,
    /// Anything else: the HTTP/2 preface, HTTP/1, or junk.
    Plaintext,
}

impl Opening {
    /// Classifies the first byte a client sent.
    pub(crate) fn of(first: u8) -> Opening {
        if first == TLS_HANDSHAKE {
            Opening::Tls
        } else {
            Opening::Plaintext
        }
    }
}

/// The debug data of the GOAWAY a TLS port sends to a plaintext client. Both texts
/// stay within the 64 bytes of debug data our frame observer keeps.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) const TLS_REQUIRED: &str = "this port requires TLS; use https:// or a TLS config";

/// The debug data of the GOAWAY a plaintext port sends to a TLS client.
pub(crate) const TLS_NOT_SPOKEN: &str = "this port does not use TLS; dial it without TLS";

/// An empty SETTINGS frame and a GOAWAY (last stream 0, PROTOCOL_ERROR) carrying
/// `debug`: what a server sends before it closes a connection it will not serve
/// (RFC 9113 sections 3.4, 6.5 and 6.8: the server preface is a SETTINGS frame, and a
/// GOAWAY may carry opaque debug data).
pub(crate) fn refusal(debug: &str) -> Vec<u8> {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const PROTOCOL_ERROR: u32 = 0x1;
    let mut out = Vec::with_capacity(9 + 9 + 8 + debug.len());
    // Frame header: 24-bit length, type, flags, 31-bit stream id (section 4.1).
    out.extend_from_slice(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
    let len = (8 + debug.len()) as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[GOAWAY, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&PROTOCOL_ERROR.to_be_bytes());
    out.extend_from_slice(debug.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_tells_tls_from_the_http2_preface() {
        assert_eq!(Opening::of(22), Opening::Tls);
        assert_eq!(Opening::of(b'P'), Opening::Plaintext);
        assert_eq!(Opening::of(b'G'), Opening::Plaintext);
        assert_eq!(Opening::of(0), Opening::Plaintext);
    }

    #[test]
    fn the_texts_fit_what_the_client_keeps_of_debug_data() {
        assert!(TLS_REQUIRED.len() <= 64 && TLS_NOT_SPOKEN.len() <= 64);
    }

    #[test]
    fn the_refusal_is_settings_then_a_goaway_with_the_debug_data() {
        let bytes = refusal("no");
        assert_eq!(&bytes[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        // GOAWAY header: length 10, type 7, no flags, stream 0.
        assert_eq!(&bytes[9..18], &[0, 0, 10, 7, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[18..22], &[0, 0, 0, 0], "last stream id");
        assert_eq!(&bytes[22..26], &[0, 0, 0, 1], "PROTOCOL_ERROR");
        assert_eq!(&bytes[26..], b"no");
        // The first byte is not a TLS record type: a TLS client fails at once.
        assert_eq!(Opening::of(bytes[0]), Opening::Plaintext);
    }
}
