//! Targets of the message layer: framing, the message reader, compression, timeouts.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::{Chunker, End, Input, model_frames, no_panic_inside, paused_runtime};
use crate::codec::compression::{self, Encoding};
use crate::codec::frame::{self, HEADER_LEN, RESERVE_AHEAD};
use crate::codec::reader::MessageReader;
use crate::codec::timeout as grpc_timeout;
use crate::status::Code;

/// Message framing. Input: a 3-byte limit, a 2-byte chunking seed, then the wire bytes,
/// fed to `decode` in chunks as DATA frames would bring them.
pub fn frame(data: &[u8]) {
    let mut input = Input::new(data);
    let max = input.u24() as usize;
    let seed = input.u16();
    let wire = input.rest();
    let (expected, expected_end) = model_frames(wire, max);

    let mut chunks = Chunker::new(seed, wire);
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    let mut got = Vec::new();
    let mut reframed = BytesMut::new();
    let end = loop {
        let (len_before, cap_before) = (buf.len(), buf.capacity());
        match frame::decode(&mut buf, max) {
            Ok(Some(f)) => {
                assert!(f.payload.len() <= max, "a frame over the limit");
                // encode(decode(x)) == x: the frame re-encodes to the bytes it came from.
                let again = frame::frame(&f.payload, f.compressed, &mut reframed);
                assert_eq!(&again[..], &wire[consumed..consumed + again.len()]);
                consumed += again.len();
                got.push(f);
            }
            Ok(None) => {
                // A declared length is a claim: what `decode` reserves for it must not
                // depend on it beyond RESERVE_AHEAD (Vec growth may double what was).
                let bound = 2 * cap_before.max(len_before) + 2 * (HEADER_LEN + RESERVE_AHEAD);
                assert!(
                    buf.capacity() <= bound,
                    "reserved {} bytes for {} buffered (bound {bound})",
                    buf.capacity(),
                    buf.len()
                );
                match chunks.next() {
                    // As the message reader appends a DATA chunk.
                    Some(chunk) if buf.is_empty() => buf = BytesMut::from(chunk),
                    Some(chunk) => buf.extend_from_slice(chunk),
                    None if buf.is_empty() => break End::Clean,
                    None => break End::Partial(buf.len()),
                }
            }
            Err(status) => match status.code() {
                Code::Internal => break End::BadFlag,
                Code::ResourceExhausted => break End::TooLarge,
                other => panic!("decode failed with {other:?}: {status}"),
            },
        }
    };
    let got: Vec<(bool, &[u8])> = got.iter().map(|f| (f.compressed, &f.payload[..])).collect();
    assert_eq!(got, expected);
    assert_eq!(end, expected_end);
    if let End::Partial(left) = end {
        assert_eq!(consumed + left, wire.len());
    }
}

/// The message reader over a real h2 stream. Input: a mode byte (bits 0-1: the
/// request's grpc-encoding, none, identity or gzip; bit 2: end with trailers instead of
/// END_STREAM on the last DATA), a 2-byte limit, a 2-byte chunking seed, then the body,
/// sent as DATA frames of the chunks' sizes through 64-byte flow-control windows.
pub fn message_reader(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let max = usize::from(input.u16());
    let seed = input.u16();
    let wire = input.rest();
    let encoding = match mode & 3 {
        0 => None,
        1 => Some(Encoding::Identity),
        _ => Some(Encoding::Gzip),
    };
    let trailers = mode & 4 != 0;

    // The model: the frames, each decompressed as the reader must, then the end.
    let (frames, end) = model_frames(wire, max);
    let mut expected: Vec<Result<(Bytes, bool), Code>> = Vec::new();
    for (compressed, payload) in frames {
        if !compressed {
            expected.push(Ok((Bytes::copy_from_slice(payload), false)));
            continue;
        }
        // compression.md: a compressed flag needs a grpc-encoding that compresses.
        let message = match encoding {
            None | Some(Encoding::Identity) => Err(Code::Internal),
            Some(encoding) => compression::decompress(encoding, payload, max)
                .map(|m| (m, true))
                .map_err(|s| s.code()),
        };
        let failed = message.is_err();
        expected.push(message);
        if failed {
            break;
        }
    }
    if expected.last().is_none_or(Result::is_ok) {
        match end {
            End::Clean => {}
            End::Partial(_) | End::BadFlag => expected.push(Err(Code::Internal)),
            End::TooLarge => expected.push(Err(Code::ResourceExhausted)),
        }
    }

    let got = no_panic_inside(|| {
        paused_runtime().block_on(read_through_h2(wire, seed, trailers, max, encoding))
    });
    assert_eq!(got, expected);
}

/// The flow-control windows of the reader target, stream and connection.
const WINDOW: u32 = 64;

/// How long the reader may take, in paused (virtual) time, before it counts as stuck.
const STALL: Duration = Duration::from_secs(60);

async fn read_through_h2(
    wire: &[u8],
    seed: u16,
    trailers: bool,
    max: usize,
    encoding: Option<Encoding>,
) -> Vec<Result<(Bytes, bool), Code>> {
    let (client_io, server_io) = tokio::io::duplex(16 * 1024);
    let chunks: Vec<Bytes> = Chunker::new(seed, wire)
        .map(Bytes::copy_from_slice)
        .collect();
    // The sender: an h2 client sending the chunks as DATA as the window allows.
    tokio::spawn(async move {
        let Ok((mut send, conn)) = h2::client::handshake(client_io).await else {
            return;
        };
        tokio::spawn(conn);
        let request = http::Request::post("http://fuzz/fuzz.Echo/Unary")
            .body(())
            .expect("a valid request");
        let Ok((_response, mut body)) = send.send_request(request, chunks.is_empty() && !trailers)
        else {
            return;
        };
        let count = chunks.len();
        for (i, mut chunk) in chunks.into_iter().enumerate() {
            let last = i + 1 == count && !trailers;
            // A chunk larger than the window goes out in pieces as capacity comes.
            while !chunk.is_empty() {
                body.reserve_capacity(chunk.len());
                while body.capacity() == 0 {
                    match std::future::poll_fn(|cx| body.poll_capacity(cx)).await {
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                }
                let piece = chunk.split_to(body.capacity().min(chunk.len()));
                if body.send_data(piece, last && chunk.is_empty()).is_err() {
                    return;
                }
            }
        }
        if trailers {
            let _ = body.send_trailers(http::HeaderMap::new());
        }
        // Keep the connection open until the reader is done with it.
        std::future::pending::<()>().await;
    });
    let mut builder = h2::server::Builder::new();
    // Small windows: the sender stalls unless the reader gives the window back. And no
    // more than 64 DATA frames in flight: h2 answers a pile of small unread DATA frames
    // (its budget is about 100 one-byte frames) with GOAWAY ENHANCE_YOUR_CALM.
    builder
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW);
    let mut conn = builder
        .handshake::<_, Bytes>(server_io)
        .await
        .expect("the in-memory h2 handshake succeeds");
    let (request, _respond) = conn
        .accept()
        .await
        .expect("the client sends its request")
        .expect("the request is well formed");
    tokio::spawn(async move { std::future::poll_fn(|cx| conn.poll_closed(cx)).await });
    let mut reader = MessageReader::new(request.into_body(), max, encoding);
    let mut got = Vec::new();
    let read_all = async {
        loop {
            match reader.next().await {
                Ok(Some(message)) => got.push(Ok((message, reader.last_compressed()))),
                Ok(None) => break,
                Err(status) => {
                    got.push(Err(status.code()));
                    break;
                }
            }
        }
    };
    tokio::time::timeout(STALL, read_all)
        .await
        .expect("the message reader stalled: is flow control released as bytes are taken?");
    got
}

/// Gzip with a limit. Input: a mode byte (bit 0: the payload is a message to compress
/// first, for the round trip), a 2-byte limit, then the payload.
pub fn compression(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let max = usize::from(input.u16());
    let payload = input.rest();

    // Identity never carries the compressed flag.
    let identity = compression::decompress(Encoding::Identity, payload, max);
    assert_eq!(identity.map_err(|s| s.code()).err(), Some(Code::Internal));
    // Only the two names we speak parse.
    let parsed = Encoding::parse(payload);
    match payload {
        b"gzip" => assert_eq!(parsed, Some(Encoding::Gzip)),
        b"identity" => assert_eq!(parsed, Some(Encoding::Identity)),
        _ => assert_eq!(parsed, None),
    }

    if mode & 1 == 1 {
        // Round trip: what we compress, we decompress, and the limit is exact.
        let message = payload.to_vec();
        let mut buf = BytesMut::new();
        let framed =
            compression::encode_frame(&message, &mut buf, usize::MAX, Some(Encoding::Gzip))
                .expect("compressing never fails");
        assert_eq!(framed[0], 1, "the compressed flag");
        let plain = prost::Message::encode_to_vec(&message);
        let back = compression::decompress(Encoding::Gzip, &framed[5..], plain.len())
            .expect("our own gzip decompresses");
        assert_eq!(&back[..], &plain[..]);
        if !plain.is_empty() {
            let short = compression::decompress(Encoding::Gzip, &framed[5..], plain.len() - 1);
            assert_eq!(short.err().map(|s| s.code()), Some(Code::ResourceExhausted));
        }
        return;
    }

    match compression::decompress(Encoding::Gzip, payload, max) {
        Ok(out) => {
            assert!(out.len() <= max, "{} bytes out, limit {max}", out.len());
            // A gzip stream is a series of members (RFC 1952 section 2.2): twice the
            // input is twice the output.
            let twice = compression::decompress(Encoding::Gzip, &payload.repeat(2), 2 * out.len())
                .expect("two members decompress");
            assert_eq!(&twice[..], &[&out[..], &out[..]].concat()[..]);
            // The limit is exact: the same input fits in exactly its own size...
            let again = compression::decompress(Encoding::Gzip, payload, out.len())
                .expect("fits in its own size");
            assert_eq!(again, out);
            // ...and not in one byte less.
            if !out.is_empty() {
                let less = compression::decompress(Encoding::Gzip, payload, out.len() - 1);
                assert_eq!(less.err().map(|s| s.code()), Some(Code::ResourceExhausted));
            }
        }
        Err(status) => match status.code() {
            Code::Internal => {}
            Code::ResourceExhausted => {
                // Over the limit means more than `max` bytes did inflate.
                if let Ok(out) = compression::decompress(Encoding::Gzip, payload, max + 1) {
                    assert_eq!(out.len(), max + 1);
                }
            }
            other => panic!("decompress failed with {other:?}: {status}"),
        },
    }
}

/// `grpc-timeout`. Input: the header value; also, as a number, a duration to format.
pub fn timeout(data: &[u8]) {
    // The model: "TimeoutValue TimeoutUnit", 1 to 8 ASCII digits, then H M S m u n.
    let model = data.split_last().and_then(|(&unit, digits)| {
        let nanos_per: u128 = match unit {
            b'H' => 3_600_000_000_000,
            b'M' => 60_000_000_000,
            b'S' => 1_000_000_000,
            b'm' => 1_000_000,
            b'u' => 1_000,
            b'n' => 1,
            _ => return None,
        };
        if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value: u128 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        Some(value * nanos_per)
    });
    let parsed = grpc_timeout::parse(data);
    assert_eq!(
        parsed.map(|d| d.as_nanos()),
        model,
        "{:?}",
        String::from_utf8_lossy(data)
    );

    // Formatting: at most 8 digits and a unit, never shorter than asked, at most one
    // unit longer; beyond 99999999 hours, that cap.
    let mut input = Input::new(data);
    let secs = u64::from(input.u24()) << 16 | u64::from(input.u16());
    let nanos = (u32::from(input.u16()) << 16 | u32::from(input.u16())) % 1_000_000_000;
    for d in [
        parsed.unwrap_or_default(),
        Duration::new(secs, nanos),
        Duration::new(secs >> 20, nanos),
    ] {
        let text = grpc_timeout::format(d);
        let back = grpc_timeout::parse(text.as_bytes()).expect("format parses back");
        let cap = Duration::from_secs(99_999_999 * 3600);
        if d <= cap {
            assert!(back >= d, "{d:?} formatted as {text} is shorter");
            let unit = grpc_timeout::parse(format!("1{}", &text[text.len() - 1..]).as_bytes())
                .expect("a unit parses");
            assert!(
                back - d < unit,
                "{d:?} formatted as {text} rounds up too far"
            );
        } else {
            assert_eq!(back, cap);
        }
    }
}
