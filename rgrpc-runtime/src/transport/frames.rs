//! Observing HTTP/2 frames on the raw byte stream.
//!
//! h2 answers PING and SETTINGS frames itself and never tells its user which frames the
//! peer sent, yet the transport needs some of them: the server enforces keepalive policy
//! by counting received PINGs (gRFC A8), the client wants to notice a GOAWAY and its
//! last-stream-id, and both sides want a frame log for debugging (like grpc-go's
//! `GODEBUG=http2debug=2`). So the bytes are observed before h2 parses them (and the
//! bytes we write are fed to a second scanner for the log of sent frames).
//!
//! This is cheap: frames are parsed from their 9-byte header (RFC 9113 section 4.1), the
//! client's side of the stream first has its 24-byte preface checked (section 3.4), and only
//! the few payload fields we act on are kept: the PING opaque data (section 6.7) and the
//! GOAWAY last-stream-id, error code and some debug data (section 6.8). Everything else
//! is skipped by counting, so the work is a counter per frame and memory is constant.

use std::fmt;

/// The client connection preface (RFC 9113 section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Most payload bytes ever kept: a GOAWAY's fixed 8 bytes plus 64 bytes of debug data.
const MAX_KEPT: usize = 8 + 64;
/// The reserved bit of stream ids (RFC 9113 section 4.1), masked off.
const STREAM_ID_MASK: u32 = 0x7fff_ffff;
/// The known frame types, indexed by type octet, with their RFC 9113 names.
const KINDS: [(Kind, &str); 10] = [
    (Kind::Data, "DATA"),
    (Kind::Headers, "HEADERS"),
    (Kind::Priority, "PRIORITY"),
    (Kind::RstStream, "RST_STREAM"),
    (Kind::Settings, "SETTINGS"),
    (Kind::PushPromise, "PUSH_PROMISE"),
    (Kind::Ping, "PING"),
    (Kind::GoAway, "GOAWAY"),
    (Kind::WindowUpdate, "WINDOW_UPDATE"),
    (Kind::Continuation, "CONTINUATION"),
];
/// Error code names, space-separated, in code order (RFC 9113 section 7).
const ERROR_NAMES: &str = "NO_ERROR PROTOCOL_ERROR INTERNAL_ERROR FLOW_CONTROL_ERROR \
    SETTINGS_TIMEOUT STREAM_CLOSED FRAME_SIZE_ERROR REFUSED_STREAM CANCEL COMPRESSION_ERROR \
    CONNECT_ERROR ENHANCE_YOUR_CALM INADEQUATE_SECURITY HTTP_1_1_REQUIRED";

/// Which side's bytes these are: a server's inbound bytes (and a client's outbound bytes)
/// start with the 24-byte client connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
/// (RFC 9113 section 3.4); everything else starts directly with frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// The stream begins with the client preface (server inbound, client outbound).
    Preface,
    /// The stream begins directly with frames.
    Frames,
}

/// HTTP/2 frame types (RFC 9113 section 6), Unknown(u8) for extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// DATA (0x0).
    Data,
    /// HEADERS (0x1).
    Headers,
    /// PRIORITY (0x2).
    Priority,
    /// RST_STREAM (0x3).
    RstStream,
    /// SETTINGS (0x4).
    Settings,
    /// PUSH_PROMISE (0x5).
    PushPromise,
    /// PING (0x6).
    Ping,
    /// GOAWAY (0x7).
    GoAway,
    /// WINDOW_UPDATE (0x8).
    WindowUpdate,
    /// CONTINUATION (0x9).
    Continuation,
    /// Any other type octet (extension frames, which receivers ignore).
    Unknown(u8),
}

impl Kind {
    /// How many payload bytes `Detail` needs from a frame of this kind and length; zero
    /// when it needs none or the payload is too short to hold the fields.
    fn needs(self, len: u32) -> usize {
        match (self, len as usize) {
            (Kind::Ping, 8..) => 8,
            (Kind::GoAway, len @ 8..) => len.min(MAX_KEPT),
            (Kind::RstStream, 4..) => 4,
            _ => 0,
        }
    }
}

/// One frame seen on the wire: its 9-byte header, plus the few payload fields the
/// transport acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The frame type.
    pub kind: Kind,
    /// The flags octet, uninterpreted.
    pub flags: u8,
    /// The stream identifier, reserved bit masked off.
    pub stream_id: u32,
    /// The payload length from the header.
    pub len: u32,
    /// The payload fields decoded for this kind of frame.
    pub detail: Detail,
}

/// The payload fields decoded from a frame: `None` for other kinds, and for frames whose
/// payload is too short to hold the fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Nothing decoded.
    None,
    /// PING: whether the ACK flag (0x1) is set, and the 8-byte opaque payload (the first
    /// 8 bytes, should a malformed PING be longer).
    Ping {
        /// The ACK flag.
        ack: bool,
        /// The opaque data.
        payload: [u8; 8],
    },
    /// GOAWAY: last stream id (reserved bit masked), error code, and up to 64 bytes of debug data.
    GoAway {
        /// The highest stream id the sender might have acted on.
        last_stream_id: u32,
        /// The error code (RFC 9113 section 7).
        error_code: u32,
        /// The first (at most 64) bytes of additional debug data.
        debug: Vec<u8>,
    },
    /// RST_STREAM: error code.
    RstStream {
        /// The error code (RFC 9113 section 7).
        error_code: u32,
    },
    /// SETTINGS: ack flag.
    Settings {
        /// The ACK flag.
        ack: bool,
    },
}

impl Frame {
    /// Parses a 9-byte frame header (RFC 9113 section 4.1); the detail is still `None`.
    fn parse(b: &[u8; 9]) -> Frame {
        let ty = b[3];
        Frame {
            kind: KINDS
                .get(usize::from(ty))
                .map_or(Kind::Unknown(ty), |k| k.0),
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & STREAM_ID_MASK,
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            detail: Detail::None,
        }
    }

    /// Sets the detail from `kept`, the first `Kind::needs` bytes of the payload.
    fn decode(&mut self, kept: &[u8]) {
        let word = |i: usize| u32::from_be_bytes([kept[i], kept[i + 1], kept[i + 2], kept[i + 3]]);
        let ack = self.flags & 0x1 != 0;
        self.detail = match (self.kind, kept.len()) {
            (Kind::Ping, 8) => Detail::Ping {
                ack,
                payload: kept.try_into().expect("8 bytes"),
            },
            (Kind::GoAway, 8..) => Detail::GoAway {
                last_stream_id: word(0) & STREAM_ID_MASK,
                error_code: word(4),
                debug: kept[8..].to_vec(),
            },
            (Kind::RstStream, 4) => Detail::RstStream {
                error_code: word(0),
            },
            (Kind::Settings, _) => Detail::Settings { ack },
            _ => Detail::None,
        };
    }
}

/// Where the scanner is in the byte stream:
///
/// ```text
///  Start::Preface           Start::Frames
///        |                        |
///        v         24 bytes       v         9 bytes
///  Preface{matched} -----> Header{buf,filled} -----> Payload{frame,kept,remaining}
///        |                   ^         |  len 0         |
///        | mismatch          |         +--<-------------+ remaining == 0
///        v                   +------<--+
///      Broken
/// ```
///
/// A frame is reported when its header is complete if it needs no payload bytes, else
/// once `Kind::needs` of them are kept.
enum State {
    /// Checking the client preface.
    Preface {
        /// Preface bytes matched so far.
        matched: usize,
    },
    /// Collecting a frame header.
    Header {
        /// The header bytes so far.
        buf: [u8; 9],
        /// How many of `buf` are filled.
        filled: usize,
    },
    /// Inside a payload: keeping its first `Kind::needs` bytes, then skipping the rest.
    Payload {
        /// The frame, from its header (detail filled in once reported).
        frame: Frame,
        /// The payload bytes kept for the detail.
        kept: [u8; MAX_KEPT],
        /// Payload bytes not yet consumed (kept or skipped).
        remaining: u32,
    },
    /// The preface did not match; input is ignored.
    Broken,
}

/// The state at a frame boundary.
const HEADER: State = State::Header {
    buf: [0; 9],
    filled: 0,
};

/// An incremental frame-header scanner: fed the byte stream in arbitrary pieces (as
/// reads or writes happen), it reports each frame once its header and the payload
/// bytes needed for `detail` have arrived. It never buffers more than the 9-byte header
/// plus at most 8+64+8 bytes of payload (it skips the rest of each payload by counting),
/// so its memory is constant whatever the peer sends.
///
/// Feed it exactly the bytes that were transferred: the filled part of a read buffer, and
/// of a write only the `n` bytes the write reported, so retried writes are not counted twice.
pub(crate) struct Scanner {
    /// Where in the stream we are.
    state: State,
}

impl Scanner {
    /// A scanner for a stream that begins as `start` says.
    pub(crate) fn new(start: Start) -> Scanner {
        let state = match start {
            Start::Preface => State::Preface { matched: 0 },
            Start::Frames => HEADER,
        };
        Scanner { state }
    }

    /// Scans `bytes`, calling `on_frame` for every frame completed within them, in order.
    pub(crate) fn feed(&mut self, bytes: &[u8], on_frame: &mut dyn FnMut(&Frame)) {
        self.feed_skipping_streams(bytes, false, on_frame);
    }

    /// [`Scanner::feed`] for a caller that has no use for DATA and HEADERS frames (the
    /// reader without a frame log: they are most frames, two a unary call). With
    /// `skip_streams`, those that lie whole in `bytes` are skipped without being
    /// decoded or reported; one split across reads is reported to `on_frame`, as every
    /// other frame is.
    pub(crate) fn feed_skipping_streams(
        &mut self,
        mut bytes: &[u8],
        skip_streams: bool,
        on_frame: &mut dyn FnMut(&Frame),
    ) {
        if let State::Header { filled: 0, .. } = self.state {
            bytes = Self::whole_frames(bytes, skip_streams, on_frame);
        }
        while !bytes.is_empty() {
            match &mut self.state {
                State::Broken => return,
                State::Preface { matched } => {
                    let want = &PREFACE[*matched..];
                    let n = want.len().min(bytes.len());
                    if bytes[..n] != want[..n] {
                        self.state = State::Broken;
                        return;
                    }
                    *matched += n;
                    bytes = &bytes[n..];
                    if *matched == PREFACE.len() {
                        self.state = HEADER;
                    }
                }
                State::Header { buf, filled } => {
                    let n = (buf.len() - *filled).min(bytes.len());
                    buf[*filled..*filled + n].copy_from_slice(&bytes[..n]);
                    *filled += n;
                    bytes = &bytes[n..];
                    if *filled == buf.len() {
                        let mut frame = Frame::parse(buf);
                        if frame.kind.needs(frame.len) == 0 {
                            frame.decode(&[]);
                            on_frame(&frame);
                        }
                        let (kept, remaining) = ([0; MAX_KEPT], frame.len);
                        self.state = match remaining {
                            0 => HEADER,
                            _ => State::Payload {
                                frame,
                                kept,
                                remaining,
                            },
                        };
                    }
                }
                State::Payload {
                    frame,
                    kept,
                    remaining,
                } => {
                    let need = frame.kind.needs(frame.len);
                    let filled = (frame.len - *remaining) as usize;
                    let n = bytes.len().min(*remaining as usize);
                    if filled < need {
                        let take = (need - filled).min(n);
                        kept[filled..filled + take].copy_from_slice(&bytes[..take]);
                        if filled + take == need {
                            frame.decode(&kept[..need]);
                            on_frame(frame);
                        }
                    }
                    *remaining -= n as u32;
                    bytes = &bytes[n..];
                    if *remaining == 0 {
                        self.state = HEADER;
                    }
                }
            }
        }
    }

    /// At a frame boundary: reports the whole frames at the front of `bytes` straight
    /// from them (a read usually holds only whole frames), and returns the rest for the
    /// state machine. The same frames as feeding them through the states, without
    /// copying each header and moving each frame into a state (the random-chunking
    /// test compares the two).
    fn whole_frames<'a>(
        mut bytes: &'a [u8],
        skip_streams: bool,
        on_frame: &mut dyn FnMut(&Frame),
    ) -> &'a [u8] {
        while let Some(head) = bytes.first_chunk::<9>() {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let Some(payload) = bytes.get(9..9 + len) else {
                break;
            };
            bytes = &bytes[9 + len..];
            // DATA (0x0) and HEADERS (0x1).
            if skip_streams && matches!(head[3], 0 | 1) {
                continue;
            }
            let mut frame = Frame::parse(head);
            frame.decode(&payload[..frame.kind.needs(frame.len)]);
            on_frame(&frame);
        }
        bytes
    }

    /// Set once the input stopped looking like HTTP/2 (the preface did not match); from
    /// then on `feed` ignores its input (h2 itself will reject the connection).
    pub(crate) fn is_broken(&self) -> bool {
        matches!(self.state, State::Broken)
    }
}

/// Writes an error code by its RFC 9113 section 7 name, or in hex if unknown.
fn write_code(f: &mut fmt::Formatter<'_>, code: u32) -> fmt::Result {
    match ERROR_NAMES.split(' ').nth(code as usize) {
        Some(name) => write!(f, " code={name}"),
        None => write!(f, " code={code:#x}"),
    }
}

impl fmt::Display for Frame {
    /// One log line, e.g. `GOAWAY flags=0x0 stream=0 len=8 last_stream=5 code=NO_ERROR`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = KINDS.iter().find(|k| k.0 == self.kind);
        f.write_str(name.map_or("UNKNOWN", |k| k.1))?;
        if let Kind::Unknown(ty) = self.kind {
            write!(f, "({ty:#04x})")?;
        }
        let (flags, stream_id, len) = (self.flags, self.stream_id, self.len);
        write!(f, " flags={flags:#x} stream={stream_id} len={len}")?;
        match &self.detail {
            Detail::Ping { ack: true, .. } | Detail::Settings { ack: true } => f.write_str(" ack"),
            Detail::GoAway {
                last_stream_id,
                error_code,
                debug,
            } => {
                write!(f, " last_stream={last_stream_id}")?;
                write_code(f, *error_code)?;
                if !debug.is_empty() {
                    write!(f, " debug=\"{}\"", debug.escape_ascii())?;
                }
                Ok(())
            }
            Detail::RstStream { error_code } => write_code(f, *error_code),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes one frame; `sid` is written as given (reserved bit included).
    fn enc(ty: u8, flags: u8, sid: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        v.extend([ty, flags]);
        v.extend(sid.to_be_bytes());
        [v, payload.to_vec()].concat()
    }

    /// Feeds `chunks` in order to a fresh scanner; returns the frames and `is_broken`.
    fn scan(start: Start, chunks: &[&[u8]]) -> (Vec<Frame>, bool) {
        let mut s = Scanner::new(start);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |f| out.push(f.clone()));
        }
        (out, s.is_broken())
    }

    /// Scans one buffer of whole frames.
    fn one(bytes: &[u8]) -> Vec<Frame> {
        scan(Start::Frames, &[bytes]).0
    }

    /// The details of the frames in one buffer.
    fn details(bytes: &[u8]) -> Vec<Detail> {
        one(bytes).into_iter().map(|f| f.detail).collect()
    }

    #[test]
    fn skipping_takes_whole_data_and_headers_and_reports_the_rest() {
        let split = enc(1, 0x5, 7, &[0; 20]);
        let first = [
            enc(1, 0x4, 1, &[0; 12]), // HEADERS, END_HEADERS only
            enc(0, 0x1, 1, &[0; 15]), // DATA, END_STREAM
            enc(6, 0, 0, &[3; 8]),    // PING
            enc(1, 0x5, 3, &[0; 9]),  // HEADERS, END_STREAM
            split[..12].to_vec(),     // a HEADERS split across reads
        ]
        .concat();
        let mut s = Scanner::new(Start::Frames);
        let mut reported = Vec::new();
        s.feed_skipping_streams(&first, true, &mut |f| reported.push(f.clone()));
        s.feed_skipping_streams(&split[12..], true, &mut |f| reported.push(f.clone()));
        let kinds: Vec<_> = reported.iter().map(|f| (f.kind, f.stream_id)).collect();
        assert_eq!(kinds, [(Kind::Ping, 0), (Kind::Headers, 7)]);
        // Without skipping, every frame is reported, as `feed` does.
        let (all, _) = scan(Start::Frames, &[&first, &split[12..]]);
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn header_of_each_kind() {
        let names = "Data Headers Priority RstStream Settings PushPromise Ping GoAway \
            WindowUpdate Continuation Unknown(10) Unknown(255)";
        for (ty, name) in (0..=10).chain([255]).zip(names.split(' ')) {
            let f = &one(&enc(ty, 0x25, 3, &[]))[0];
            let got = (format!("{:?}", f.kind), f.flags, f.stream_id, f.len);
            assert_eq!(got, (name.to_string(), 0x25, 3, 0));
        }
        let f = &one(&enc(1, 4, 0x8000_0007, &[7; 300]))[0];
        assert_eq!((f.stream_id, f.len, &f.detail), (7, 300, &Detail::None));
    }

    #[test]
    fn ping_ack_and_payload() {
        let p = [1, 2, 3, 4, 5, 6, 7, 8];
        let ping = |ack| Detail::Ping { ack, payload: p };
        let bytes = [enc(6, 0, 0, &p), enc(6, 1, 0, &p), enc(6, 0xff, 0, &p)].concat();
        assert_eq!(details(&bytes), [ping(false), ping(true), ping(true)]);
    }

    #[test]
    fn goaway_fields_masking_and_truncation() {
        let p = [&[0x80, 0, 0, 5, 0, 0, 0, 11][..], &[b'x'; 100]].concat();
        let goaway = |debug| Detail::GoAway {
            last_stream_id: 5,
            error_code: 11,
            debug,
        };
        let bytes = [
            enc(7, 0, 0, &p),
            enc(7, 0, 0, &p[..8]),
            enc(7, 0, 0, &p[..9]),
        ]
        .concat();
        let want = [goaway(vec![b'x'; 64]), goaway(vec![]), goaway(vec![b'x'])];
        assert_eq!(details(&bytes), want);
        assert_eq!(one(&bytes)[0].len, 108);
    }

    #[test]
    fn rst_stream_and_settings() {
        let bytes = [
            enc(3, 0, 9, &[0, 0, 0, 8]),
            enc(4, 1, 0, &[]),
            enc(4, 0, 0, &[0, 3, 0, 0, 0, 100]),
        ];
        let want = [
            Detail::RstStream { error_code: 8 },
            Detail::Settings { ack: true },
            Detail::Settings { ack: false },
        ];
        assert_eq!(details(&bytes.concat()), want);
    }

    #[test]
    fn short_payloads_give_no_detail() {
        let bytes = [
            enc(6, 1, 0, &[]),
            enc(6, 0, 0, &[1, 2, 3]),
            enc(7, 0, 0, &[0, 0, 0, 1]),
            enc(3, 0, 1, &[0, 0]),
            enc(8, 0, 0, &[0, 0, 0, 1]),
        ];
        let lens: Vec<u32> = one(&bytes.concat()).iter().map(|f| f.len).collect();
        assert_eq!(lens, [0, 3, 4, 2, 4]);
        assert_eq!(details(&bytes.concat()), [const { Detail::None }; 5]);
    }

    #[test]
    fn zero_length_frames_back_to_back() {
        let bytes: Vec<u8> = (0..5u32).flat_map(|i| enc(0, 0, i, &[])).collect();
        let ids: Vec<u32> = one(&bytes).iter().map(|f| f.stream_id).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn huge_payload_is_skipped_by_counting() {
        let mut got = Vec::new();
        let mut push = |f: &Frame| got.push(f.clone());
        let mut s = Scanner::new(Start::Frames);
        s.feed(&[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1], &mut push);
        let zeros = vec![0u8; 4096];
        s.feed(&zeros[1..], &mut push); // 0xff_ffff = 4096 * 4096 - 1 bytes in all
        for _ in 1..4096 {
            s.feed(&zeros, &mut push);
        }
        s.feed(&enc(6, 0, 0, &[9; 8]), &mut push);
        let log: Vec<String> = got.iter().map(Frame::to_string).collect();
        assert_eq!(
            log,
            [
                "DATA flags=0x0 stream=1 len=16777215",
                "PING flags=0x0 stream=0 len=8"
            ]
        );
    }

    #[test]
    fn preface_then_frames() {
        let settings = enc(4, 0, 0, &[]);
        let (got, broken) = scan(Start::Preface, &[&PREFACE[..5], &PREFACE[5..], &settings]);
        assert_eq!((got.len(), broken), (1, false));
        let (got, broken) = scan(Start::Preface, &[&[&PREFACE[..], &settings].concat()]);
        assert_eq!((got.len(), broken), (1, false));
    }

    #[test]
    fn preface_mismatch() {
        let (got, broken) = scan(Start::Preface, &[b"GET / HTTP/1.1\r\n", &enc(4, 0, 0, &[])]);
        assert_eq!((got.len(), broken), (0, true));
        let mut bad = *PREFACE;
        bad[20] = b'X';
        let mut s = Scanner::new(Start::Preface);
        let mut none = |_: &Frame| panic!("no frames");
        s.feed(&bad[..18], &mut none);
        assert!(!s.is_broken());
        s.feed(&bad[18..], &mut none);
        assert!(s.is_broken());
        s.feed(&enc(4, 0, 0, &[]), &mut none);
        assert!(s.is_broken());
    }

    #[test]
    fn random_chunking_gives_same_frames() {
        let goaway = [&[0, 0, 0, 3, 0, 0, 0, 2][..], &[b'd'; 90]].concat();
        let stream = [
            &PREFACE[..],
            &enc(4, 0, 0, &[0, 4, 0, 1, 0, 0]),
            &enc(4, 1, 0, &[]),
            &enc(1, 4, 1, &[0x82; 57]),
            &enc(0, 0, 1, &[0xaa; 1000]),
            &enc(0, 1, 1, &[]),
            &enc(6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]),
            &enc(6, 1, 0, &[8; 8]),
            &enc(6, 0, 0, &[]),
            &enc(3, 0, 0x8000_0003, &[0, 0, 0, 8]),
            &enc(0x42, 0xff, 7, &[1; 20]),
            &enc(7, 0, 0, &goaway),
            &enc(7, 0, 0, &[0; 4]),
        ]
        .concat();
        let (want, _) = scan(Start::Preface, &[&stream]);
        assert_eq!(want.len(), 12);
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan(Start::Preface, &bytewise).0, want);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15; // xorshift64 state
        for round in 0..500 {
            let max = [2, 10, 30, 200, 2000][round % 5];
            let (mut chunks, mut rest) = (Vec::new(), &stream[..]);
            while !rest.is_empty() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (chunk, tail) = rest.split_at(((x % max) as usize).min(rest.len()));
                chunks.push(chunk); // empty chunks included
                rest = tail;
            }
            assert_eq!(scan(Start::Preface, &chunks).0, want, "round {round}");
        }
    }

    #[test]
    fn display() {
        let calm = [&[0, 0, 0, 1, 0, 0, 0, 0xb][..], b"calm\n"].concat();
        let bytes = [
            enc(6, 1, 0, &[0; 8]),
            enc(6, 0, 0, &[0; 8]),
            enc(1, 4, 1, &[0; 57]),
            enc(7, 0, 0, &[0, 0, 0, 5, 0, 0, 0, 0]),
            enc(7, 0, 0, &calm),
            enc(3, 0, 3, &[0, 0, 0, 0xd]),
            enc(3, 0, 3, &[0, 0, 0, 0xe]),
            enc(4, 1, 0, &[]),
            enc(0xb, 0x10, 0, &[]),
        ];
        let log: Vec<String> = one(&bytes.concat()).iter().map(Frame::to_string).collect();
        let want = [
            "PING flags=0x1 stream=0 len=8 ack",
            "PING flags=0x0 stream=0 len=8",
            "HEADERS flags=0x4 stream=1 len=57",
            "GOAWAY flags=0x0 stream=0 len=8 last_stream=5 code=NO_ERROR",
            "GOAWAY flags=0x0 stream=0 len=13 last_stream=1 code=ENHANCE_YOUR_CALM debug=\"calm\\n\"",
            "RST_STREAM flags=0x0 stream=3 len=4 code=HTTP_1_1_REQUIRED",
            "RST_STREAM flags=0x0 stream=3 len=4 code=0xe",
            "SETTINGS flags=0x1 stream=0 len=0 ack",
            "UNKNOWN(0x0b) flags=0x10 stream=0 len=0",
        ];
        assert_eq!(log, want);
    }
}
