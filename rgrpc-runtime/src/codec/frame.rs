//! Message framing (PROTOCOL-HTTP2.md, "Length-Prefixed-Message"): a 1-byte compressed
//! flag, a 4-byte big-endian length, then the message. Pure functions over buffers.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::status::Status;

/// Default limit on a received message: 4 MiB, as grpc-go and grpc-java.
pub const DEFAULT_MAX_RECV_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Default limit on a sent message: unbounded in grpc-go; we cap it at `u32::MAX` framing.
pub const DEFAULT_MAX_SEND_MESSAGE_SIZE: usize = u32::MAX as usize;

/// Length of the frame header.
pub(crate) const HEADER_LEN: usize = 5;

/// Encodes `msg` with its frame header and returns the frame; `buf` as in
/// [`framed`].
pub(crate) fn encode<M: prost::Message>(
    msg: &M,
    buf: &mut BytesMut,
    max_send: usize,
) -> Result<Bytes, Status> {
    let len = msg.encoded_len();
    if len > max_send {
        return Err(Status::resource_exhausted(format!(
            "trying to send message larger than max ({len} vs. {max_send})"
        )));
    }
    framed(buf, false, len, |out| {
        // `framed` reserved the room, so encoding cannot run out of space.
        msg.encode(out)
            .map_err(|e| Status::internal(format!("encoding message: {e}")))
    })
}

/// Frames an already-encoded (possibly compressed) payload; `buf` as in [`framed`].
pub(crate) fn frame(payload: &[u8], compressed: bool, buf: &mut BytesMut) -> Bytes {
    let Ok(frame) = framed(buf, compressed, payload.len(), |out| {
        out.put_slice(payload);
        Ok::<_, std::convert::Infallible>(())
    });
    frame
}

/// One frame of a `len`-byte payload that `fill` writes after the header. `buf` keeps
/// its spare capacity for the next message; an empty `buf` with no capacity (a one-shot
/// encode, such as a unary reply's) is left alone and the frame gets an allocation of
/// its own, sized exactly, without the second one for `bytes`' shared header that
/// splitting a frame off a buffer costs.
fn framed<E>(
    buf: &mut BytesMut,
    compressed: bool,
    len: usize,
    fill: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Bytes, E> {
    let one_shot = buf.capacity() == 0;
    // Exact: a Vec whose length is its capacity becomes `Bytes` in place.
    let mut own = BytesMut::with_capacity(if one_shot { HEADER_LEN + len } else { 0 });
    let out = if one_shot { &mut own } else { buf };
    out.reserve(HEADER_LEN + len);
    out.put_u8(u8::from(compressed));
    out.put_u32(len as u32);
    fill(out)?;
    Ok(match one_shot {
        true => own.freeze(),
        false => out.split().freeze(),
    })
}

/// One received message, not yet decompressed.
#[derive(Debug, PartialEq)]
pub(crate) struct Frame {
    pub compressed: bool,
    pub payload: Bytes,
}

/// Takes one complete frame off the front of `buf`, or `None` when more bytes are needed.
/// Most bytes reserved ahead of a partial message's arrival (see `decode`).
pub(crate) const RESERVE_AHEAD: usize = 64 * 1024;

/// A declared length over `max_recv` fails before the payload is buffered, so a buffer
/// never holds more than one frame of at most `max_recv` bytes plus one DATA chunk.
pub(crate) fn decode(buf: &mut BytesMut, max_recv: usize) -> Result<Option<Frame>, Status> {
    let Some((compressed, len)) = header(buf, max_recv)? else {
        return Ok(None);
    };
    if buf.len() < HEADER_LEN + len {
        // Room for what is still missing, but not more than RESERVE_AHEAD at once: a
        // declared length is only a claim until the bytes arrive, and reserving all of
        // it would let a 5-byte header pin max_recv bytes per stream.
        buf.reserve((HEADER_LEN + len - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    Ok(Some(Frame {
        compressed,
        payload: buf.split_to(len).freeze(),
    }))
}

/// How [`decode_whole`] hands out a message at the front of a received chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    /// Copied into an allocation of its own: the caller may keep it.
    Owned,
    /// A view of the chunk, for a caller that decodes it from a slice and drops it.
    View,
}

/// Takes one complete frame off the front of a received chunk, or `None` when the chunk
/// does not hold a whole frame at its front: the caller then buffers the rest and goes
/// on with [`decode`]. The payload is copied into an allocation of its own, exactly
/// sized: a slice of the chunk would share h2's receive buffer, and a message's
/// `bytes` field (generated as `Bytes`) kept by a handler would pin all of it. With
/// [`Payload::View`] it is that slice, for a caller that decodes it from `&[u8]`
/// (prost then copies the `bytes` fields out) and drops it.
pub(crate) fn decode_whole(
    chunk: &mut Bytes,
    max_recv: usize,
    payload: Payload,
) -> Result<Option<Frame>, Status> {
    match header(chunk, max_recv)? {
        Some((compressed, len)) if chunk.len() >= HEADER_LEN + len => {
            let payload = match payload {
                Payload::View => chunk.slice(HEADER_LEN..HEADER_LEN + len),
                Payload::Owned => Bytes::copy_from_slice(&chunk[HEADER_LEN..HEADER_LEN + len]),
            };
            chunk.advance(HEADER_LEN + len);
            Ok(Some(Frame {
                compressed,
                payload,
            }))
        }
        _ => Ok(None),
    }
}

/// The compressed flag and declared length of the frame at the front of `buf`, checked;
/// `None` while fewer than [`HEADER_LEN`] bytes are there.
fn header(buf: &[u8], max_recv: usize) -> Result<Option<(bool, usize)>, Status> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let compressed = match buf[0] {
        0 => false,
        1 => true,
        flag => {
            return Err(Status::internal(format!(
                "invalid compressed flag {flag} in message header"
            )));
        }
    };
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > max_recv {
        return Err(Status::resource_exhausted(format!(
            "received message larger than max ({len} vs. {max_recv})"
        )));
    }
    Ok(Some((compressed, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_come_off_a_chunk_and_a_partial_one_stays() {
        let mut out = BytesMut::new();
        let wire: Vec<u8> = [
            frame(b"one", false, &mut out),
            frame(b"two!", true, &mut out),
            frame(b"partial", false, &mut out).slice(..8),
        ]
        .concat();
        let mut chunk = Bytes::from(wire);
        let first = decode_whole(&mut chunk, 100, Payload::Owned)
            .unwrap()
            .unwrap();
        assert_eq!((first.compressed, &first.payload[..]), (false, &b"one"[..]));
        let second = decode_whole(&mut chunk, 100, Payload::Owned)
            .unwrap()
            .unwrap();
        assert_eq!(
            (second.compressed, &second.payload[..]),
            (true, &b"two!"[..])
        );
        assert_eq!(decode_whole(&mut chunk, 100, Payload::Owned).unwrap(), None);
        assert_eq!(chunk.len(), 8, "the partial frame is left for the buffer");
        assert_eq!(
            decode_whole(&mut Bytes::from_static(b"\0\0"), 100, Payload::Owned).unwrap(),
            None
        );
        let bad_flag = decode_whole(
            &mut Bytes::from_static(b"\x02\0\0\0\0"),
            100,
            Payload::Owned,
        );
        assert_eq!(bad_flag.unwrap_err().code(), crate::Code::Internal);
        let too_big = decode_whole(
            &mut Bytes::from_static(b"\0\0\0\x01\0"),
            100,
            Payload::Owned,
        );
        assert_eq!(too_big.unwrap_err().code(), crate::Code::ResourceExhausted);
    }

    #[test]
    fn an_owned_payload_is_a_copy_and_a_view_shares_the_chunk() {
        let mut out = BytesMut::new();
        let wire = [
            frame(b"one", false, &mut out),
            frame(b"two", false, &mut out),
        ]
        .concat();
        let mut chunk = Bytes::from(wire);
        let range = chunk.as_ptr_range();
        let owned = decode_whole(&mut chunk, 100, Payload::Owned)
            .unwrap()
            .unwrap();
        let view = decode_whole(&mut chunk, 100, Payload::View)
            .unwrap()
            .unwrap();
        assert_eq!(
            (&owned.payload[..], &view.payload[..]),
            (&b"one"[..], &b"two"[..])
        );
        assert!(
            !range.contains(&owned.payload.as_ptr()),
            "an owned payload is copied"
        );
        assert!(
            range.contains(&view.payload.as_ptr()),
            "a view shares the chunk"
        );
        assert!(chunk.is_empty());
    }

    #[test]
    fn a_one_shot_encode_and_a_reused_buffer_frame_alike() {
        // A string is a message of one length-delimited field: tag, length, bytes.
        let msg = String::from("hi");
        let mut fresh = BytesMut::new();
        let one_shot = encode(&msg, &mut fresh, 100).unwrap();
        assert_eq!(
            fresh.capacity(),
            0,
            "a one-shot encode leaves the buffer alone"
        );
        let mut reused = BytesMut::with_capacity(256);
        let first = encode(&msg, &mut reused, 100).unwrap();
        let second = encode(&msg, &mut reused, 100).unwrap();
        assert_eq!(one_shot, first);
        assert_eq!(first, second);
        assert_eq!(&one_shot[..HEADER_LEN], &[0, 0, 0, 0, 4]);
        assert!(
            reused.capacity() > 0,
            "the spare capacity is kept for the next"
        );
        let framed = frame(&one_shot[HEADER_LEN..], true, &mut BytesMut::new());
        assert_eq!(&framed[..HEADER_LEN], &[1, 0, 0, 0, 4]);
        assert_eq!(framed[HEADER_LEN..], one_shot[HEADER_LEN..]);
    }

    #[test]
    fn frames_round_trip_across_chunk_boundaries() {
        let mut out = BytesMut::new();
        let a = frame(b"hello", false, &mut out);
        let b = frame(b"", true, &mut out);
        let wire: Vec<u8> = [a.as_ref(), b.as_ref()].concat();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.put_u8(byte);
            while let Some(f) = decode(&mut buf, 100).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                Frame {
                    compressed: false,
                    payload: Bytes::from_static(b"hello")
                },
                Frame {
                    compressed: true,
                    payload: Bytes::new()
                },
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_length_fails_before_buffering() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 1, 0][..]);
        let err = decode(&mut buf, 255).unwrap_err();
        assert_eq!(err.code(), crate::Code::ResourceExhausted);
        assert!(err.message().contains("256 vs. 255"), "{}", err.message());
    }

    #[test]
    fn a_declared_length_reserves_at_most_reserve_ahead() {
        // 4 MiB claimed, nothing of it sent yet.
        let mut buf = BytesMut::from(&[0u8, 0, 0x40, 0, 0][..]);
        assert!(decode(&mut buf, 4 << 20).unwrap().is_none());
        assert!(
            buf.capacity() <= HEADER_LEN + RESERVE_AHEAD,
            "{}",
            buf.capacity()
        );
    }

    #[test]
    fn bad_flag_is_internal() {
        let mut buf = BytesMut::from(&[7u8, 0, 0, 0, 0][..]);
        assert_eq!(
            decode(&mut buf, 10).unwrap_err().code(),
            crate::Code::Internal
        );
    }

    #[test]
    fn encode_respects_send_limit() {
        let mut buf = BytesMut::new();
        let big = "x".repeat(100);
        assert_eq!(
            encode(&big, &mut buf, 10).unwrap_err().code(),
            crate::Code::ResourceExhausted
        );
        let ok = encode(&big, &mut buf, 1000).unwrap();
        assert_eq!(&ok[..5], &[0, 0, 0, 0, 102]);
    }
}

/// Random-input checks of the pure decoders (a poor man's fuzz target, run on every
/// `cargo test`): no input may panic, and every accepted frame respects the limit.
#[cfg(test)]
mod random_input {
    use super::*;

    /// xorshift64*: deterministic, dependency-free.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed | 1)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self, max_len: usize) -> Vec<u8> {
            let len = (self.next() as usize) % (max_len + 1);
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn decoders_never_panic_on_random_bytes() {
        let mut rng = Rng::new(0x5eed);
        for _ in 0..20_000 {
            let input = rng.bytes(64);
            let mut buf = BytesMut::from(&input[..]);
            let max = (rng.next() % 64) as usize;
            while let Ok(Some(frame)) = decode(&mut buf, max) {
                assert!(frame.payload.len() <= max);
            }
            let _ = crate::codec::timeout::parse(&input);
            let _ = crate::status::Code::from_header(&input);
            let _ = crate::status::decode_message(&input);
            let _ = crate::metadata::decode_bin(&input);
            let _ = crate::codec::compression::decompress(crate::Encoding::Gzip, &input, max);
            let mut map = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(&input) {
                map.insert("grpc-status", v.clone());
                map.insert("grpc-message", v.clone());
                map.insert("grpc-status-details-bin", v);
                let _ = crate::Status::from_trailers(&map);
            }
        }
    }
}
