//! The frame observer's target: `transport::frames::Scanner`, which reads every byte a
//! peer sends before h2 does (keepalive enforcement, GOAWAY, the frame log).

use super::{Chunker, Input};
use crate::transport::frames::{Detail, Frame, Kind, Scanner, Start};

/// The client connection preface (RFC 9113 section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The frame scanner. Input: a mode byte (bit 0: the bytes start with the client
/// preface, as a server reads them), a 2-byte chunking seed, then the bytes, fed in
/// chunks. Checks: the same frames, in order, as a model that parses the whole buffer
/// by RFC 9113 section 4.1; broken exactly when the preface does not match; every frame
/// prints (the frame log prints what peers send).
pub fn frame_scanner(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let seed = input.u16();
    let bytes = input.rest();
    let start = if mode & 1 == 1 {
        Start::Preface
    } else {
        Start::Frames
    };
    let (expected, expected_broken) = model(start, bytes);

    let mut scanner = Scanner::new(start);
    let mut got = Vec::new();
    for chunk in Chunker::new(seed, bytes) {
        scanner.feed(chunk, &mut |frame| {
            let _ = frame.to_string();
            got.push(frame.clone());
        });
    }
    assert_eq!(got, expected);
    assert_eq!(scanner.is_broken(), expected_broken);
}

/// The model: every frame whose header and whose detail's payload bytes are in `bytes`.
fn model(start: Start, mut bytes: &[u8]) -> (Vec<Frame>, bool) {
    if start == Start::Preface {
        let n = bytes.len().min(PREFACE.len());
        if bytes[..n] != PREFACE[..n] {
            return (Vec::new(), true);
        }
        bytes = &bytes[n..];
    }
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        let kind = match bytes[3] {
            0 => Kind::Data,
            1 => Kind::Headers,
            2 => Kind::Priority,
            3 => Kind::RstStream,
            4 => Kind::Settings,
            5 => Kind::PushPromise,
            6 => Kind::Ping,
            7 => Kind::GoAway,
            8 => Kind::WindowUpdate,
            9 => Kind::Continuation,
            other => Kind::Unknown(other),
        };
        let flags = bytes[4];
        let stream_id = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        let payload = &bytes[9..];
        let word = |i: usize| {
            u32::from_be_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]])
        };
        // What the detail needs, and whether it has arrived.
        let (need, detail): (usize, Box<dyn Fn() -> Detail>) = match kind {
            Kind::Ping if len >= 8 => (
                8,
                Box::new(|| Detail::Ping {
                    ack: flags & 1 != 0,
                    payload: payload[..8].try_into().unwrap(),
                }),
            ),
            Kind::GoAway if len >= 8 => {
                let kept = (len as usize).min(8 + 64);
                (
                    kept,
                    Box::new(move || Detail::GoAway {
                        last_stream_id: word(0) & 0x7fff_ffff,
                        error_code: word(4),
                        debug: payload[8..kept].to_vec(),
                    }),
                )
            }
            Kind::RstStream if len >= 4 => (
                4,
                Box::new(|| Detail::RstStream {
                    error_code: word(0),
                }),
            ),
            Kind::Settings => (
                0,
                Box::new(|| Detail::Settings {
                    ack: flags & 1 != 0,
                }),
            ),
            _ => (0, Box::new(|| Detail::None)),
        };
        if payload.len() < need {
            break;
        }
        frames.push(Frame {
            kind,
            flags,
            stream_id,
            len,
            detail: detail(),
        });
        if payload.len() < len as usize {
            break;
        }
        bytes = &payload[len as usize..];
    }
    (frames, false)
}
